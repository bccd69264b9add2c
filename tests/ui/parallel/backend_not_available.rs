use joblet::parallel;

fn main() {
    let _out: Vec<i32> = parallel!(backend = processes; for i in 0..10 => i * 2);
}
