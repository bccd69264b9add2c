use joblet::cached;

const CACHE_SLOT: u32 = 3;

#[cached(dir = CACHE_SLOT)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
