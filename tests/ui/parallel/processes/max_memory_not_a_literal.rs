use joblet::parallel;

fn main() {
    let limit = "2 GiB";
    let _out: Vec<u64> = parallel!(backend = processes, max_memory = limit; for i in 0..10u64 => i);
}
