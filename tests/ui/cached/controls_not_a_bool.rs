use joblet::cached;

#[cached(dir = "cache", controls = "no")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
