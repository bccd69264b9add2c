use joblet::parallel;

fn main() {
    let _out: Vec<u64> = parallel!(backend = processes, max_nbytes = "a lot"; for i in 0..10u64 => i);
}
