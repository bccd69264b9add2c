use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(n_jobs = 4, verbose = 1, n_jobs = 2; for i in 0..10 => i * 2);
}
