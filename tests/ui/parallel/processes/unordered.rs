use joblet::parallel;

fn main() {
    let _out = parallel!(backend = processes, return_as = unordered; for i in 0..10u64 => i);
}
