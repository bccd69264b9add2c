use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(n_jobs = 2, max_nbytes = "1M"; for i in 0..10 => i * 2);
}
