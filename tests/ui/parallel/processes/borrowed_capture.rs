use joblet::parallel;

fn total(data: &[u64]) -> Vec<u64> {
    parallel!(backend = processes; for i in 0..data.len() => data[i] * 2)
}

fn main() {
    total(&[1, 2, 3]);
}
