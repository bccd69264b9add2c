use joblet::cached;

#[cached(dir = "cache", max_size = "10 parsecs")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
