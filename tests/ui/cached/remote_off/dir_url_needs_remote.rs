use joblet::cached;

#[cached(dir = "s3://bucket/cache")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
