use joblet::cached;

#[cached(dir = "cache", name = features)]
fn extract(text: &str) -> usize {
    text.len()
}

fn main() {
    extract("a");
}
