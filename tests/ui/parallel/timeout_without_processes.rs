use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(n_jobs = 2, timeout = 5, max_memory = "1 GiB"; for i in 0..10 => i * 2);
}
