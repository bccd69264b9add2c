use joblet::cached;

#[cached(dir = "cache")]
const fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
