use joblet::cached;

trait Model {
    #[cached(dir = "cache")]
    fn predict(&self, x: f64) -> f64;
}

fn main() {}
