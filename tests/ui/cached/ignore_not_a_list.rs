use joblet::cached;

#[cached(dir = "cache", ignore = verbose)]
fn square(x: u64, verbose: bool) -> u64 {
    let _ = verbose;
    x * x
}

fn main() {
    square(2, true);
}
