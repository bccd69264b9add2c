use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(backend = mpi, pre_dispatch = 4; for i in 0..10 => i * 2);
}
