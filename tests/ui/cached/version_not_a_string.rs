use joblet::cached;

#[cached(dir = "cache", version = 2)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
