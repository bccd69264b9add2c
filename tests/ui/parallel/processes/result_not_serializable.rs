use joblet::parallel;

struct Report(u64);

fn main() {
    let _out = parallel!(backend = processes; for i in 0..10u64 => Report(i));
}
