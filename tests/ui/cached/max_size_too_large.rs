use joblet::cached;

#[cached(dir = "cache", max_size = "99999999999999999999999999999T")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
