use joblet::cached;

#[cached(dir = "cache", verbose = "loud")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
