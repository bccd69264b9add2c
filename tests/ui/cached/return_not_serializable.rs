use joblet::cached;

#[derive(serde::Serialize)]
struct Report {
    total: f64,
}

#[cached(dir = "cache")]
fn report(values: Vec<f64>) -> Report {
    Report { total: values.iter().sum() }
}

fn main() {
    report(vec![1.0]);
}
