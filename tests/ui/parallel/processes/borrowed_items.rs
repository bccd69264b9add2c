use joblet::parallel;

fn main() {
    let values = vec![1u64, 2, 3];
    let _out: Vec<u64> = parallel!(backend = processes; for v in &values => v * 2);
}
