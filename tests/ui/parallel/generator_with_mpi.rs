use joblet::parallel;

fn main() {
    let _lazy = parallel!(backend = mpi, return_as = generator; for i in 0..10 => i * 2);
}
