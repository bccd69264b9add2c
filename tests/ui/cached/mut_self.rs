use joblet::cached;

#[derive(serde::Serialize)]
struct Counter {
    n: u64,
}

impl Counter {
    #[cached(dir = "cache")]
    fn bump(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

fn main() {
    Counter { n: 0 }.bump();
}
