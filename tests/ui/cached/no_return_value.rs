use joblet::cached;

#[cached(dir = "cache")]
fn log(x: u64) {
    println!("{x}");
}

fn main() {
    log(2);
}
