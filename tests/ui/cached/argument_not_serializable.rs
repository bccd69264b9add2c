use joblet::cached;

struct Matrix(Vec<f64>);

#[cached(dir = "cache")]
fn trace(m: &Matrix, scale: f64) -> f64 {
    m.0.iter().sum::<f64>() * scale
}

fn main() {
    trace(&Matrix(vec![1.0]), 2.0);
}
