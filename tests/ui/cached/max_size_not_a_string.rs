use joblet::cached;

#[cached(dir = "cache", max_size = 10_000_000)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
