use joblet::cached;

// Every mistake is reported at once, not only the first.
#[cached(dir = 1, colour = "blue", ignore = [nope])]
const fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    square(2);
}
