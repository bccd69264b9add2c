//! The joblib `Memory` example, in Rust: a function's results are computed once and loaded
//! afterwards, in this process and in the next one.
//!
//!     cargo run --release --example square      # run it twice: the second run computes nothing
//!
//! The cache lives in `target/joblet-demo`; delete it to start over.

use std::time::Instant;

use joblet::cached;

/// `np.square`: the element-wise square of a matrix.
#[cached(dir = "target/joblet-demo")]
fn square(a: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    println!("  computing square({a:?})");
    a.iter()
        .map(|row| row.iter().map(|x| x * x).collect())
        .collect()
}

/// Something worth caching: a second of work for a million values.
#[cached(dir = "target/joblet-demo")]
fn simulate(steps: u64, seed: u64) -> Vec<f64> {
    println!("  computing simulate({steps}, {seed}) ...");
    let mut state = seed as f64;
    (0..1_000_000u64)
        .map(|i| {
            for _ in 0..steps {
                state = (state * 1.000_001 + i as f64).sin();
            }
            state
        })
        .collect()
}

/// `np.vander(np.arange(n))` as floats.
fn vander(n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|i| (0..n).rev().map(|p| (i as f64).powi(p as i32)).collect())
        .collect()
}

fn timed<T>(label: &str, cached_before: bool, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let value = f();
    let how = if cached_before { "loaded" } else { "computed" };
    println!("{label}: {how} in {:.3?}", start.elapsed());
    value
}

fn main() {
    let a = vander(3);

    let before = square::is_cached(a.clone());
    let b = timed("b = square(a)", before, || square(a.clone()));
    let c = timed("c = square(a)", true, || square(a.clone()));
    assert_eq!(b, c);
    println!("square(a) = {c:?}\n");

    let before = simulate::is_cached(40, 7);
    let x = timed("simulate(40, 7)", before, || simulate(40, 7));
    let y = timed("simulate(40, 7)", true, || simulate(40, 7));
    assert_eq!(x, y);
    println!("simulate(40, 7)[..3] = {:?}", &y[..3]);

    if before {
        println!("\nEverything came from the cache in target/joblet-demo.");
    } else {
        println!("\nRun it again: the next process loads both results instead of computing them.");
    }
}
