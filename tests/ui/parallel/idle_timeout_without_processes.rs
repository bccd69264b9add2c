use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(backend = sequential, idle_timeout = 60; for i in 0..10 => i * 2);
}
