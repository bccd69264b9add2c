use joblet::cached;

#[cached(dir = "cache", expires = "7 fortnights")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
