use joblet::cached;

#[cached(dir = "cache")]
struct Square(u64);

fn main() {}
