use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(n_jobs = 4; for Some(x) in vec![Some(1), None] => x * 2);
}
