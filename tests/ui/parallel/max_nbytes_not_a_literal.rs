use joblet::parallel;

fn main() {
    let limit = "1M";
    let _out: Vec<u64> = parallel!(backend = processes, max_nbytes = limit; for i in 0..10u64 => i);
}
