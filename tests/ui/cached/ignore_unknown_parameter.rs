use joblet::cached;

#[cached(dir = "cache", ignore = [verbose])]
fn square(x: u64, verbos: bool) -> u64 {
    if verbos {
        println!("squaring");
    }
    x * x
}

fn main() {
    square(2, true);
}
