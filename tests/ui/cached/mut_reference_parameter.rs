use joblet::cached;

#[cached(dir = "cache")]
fn normalize(values: &mut Vec<f64>) -> f64 {
    let total: f64 = values.iter().sum();
    values.iter_mut().for_each(|v| *v /= total);
    total
}

fn main() {
    normalize(&mut vec![1.0]);
}
