use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(n_jobs = 2, pre_dispatch = 0; for i in 0..10 => i * 2);
}
