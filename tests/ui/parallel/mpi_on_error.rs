use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(backend = mpi, on_error = collect; for i in 0..10 => i * 2);
}
