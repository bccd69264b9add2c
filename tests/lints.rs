//! The code `#[cached]` generates is clean under strict lints, including clippy's pedantic
//! group (`cargo clippy --all-targets` checks this file), so that users' own lint settings
//! never fire on code they did not write.
#![deny(warnings, missing_docs, clippy::all, clippy::pedantic)]

use joblet::cached;
use serde::{Deserialize, Serialize};

/// A documented public cached function.
#[cached(dir = "target/lints", ignore = [verbose], version = "1")]
#[must_use]
pub fn public(x: u64, values: &[f64], verbose: bool) -> Vec<f64> {
    if verbose {
        println!("{x}");
    }
    values.iter().map(|v| v * 2.0).collect()
}

/// A model with cached methods.
#[derive(Serialize, Deserialize)]
pub struct Model {
    weight: f64,
}

impl Model {
    /// A cached method.
    #[cached(dir = "target/lints")]
    #[must_use]
    pub fn predict(&self, x: f64) -> f64 {
        self.weight * x
    }
}

/// A cached async function returning a `Result`.
///
/// # Errors
/// When `s` is not a number.
#[cached(dir = "target/lints")]
pub async fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

#[test]
fn strictly_linted_functions_work() {
    assert_eq!(public(1, &[1.0], false), vec![2.0]);
    assert!(public::is_cached(1, &[1.0], true));
    assert!((Model { weight: 2.0 }.predict(2.0) - 4.0).abs() < f64::EPSILON);
    assert_eq!(pollster::block_on(parse("7".into())), Ok(7));
}

/// `parallel!` on every backend, with every option, under the same lints.
#[test]
fn strictly_linted_parallel_runs() {
    let scale = 2usize;
    let label = String::from("xy");
    let threads = joblet::parallel!(n_jobs = 2, batch_size = 2, on_error = collect;
        for i in 0..4usize => i * scale + label.len());
    assert_eq!(threads.len(), 4);
    #[cfg(feature = "processes")]
    {
        let processes = joblet::parallel!(backend = processes, n_jobs = 2, batch_size = 2,
            timeout = std::time::Duration::from_secs(60), max_memory = "4 GiB",
            max_nbytes = "1M", idle_timeout = 30, pre_dispatch = 4;
            for i in 0..4usize => i * scale + label.len());
        assert_eq!(processes, [2, 4, 6, 8]);
        let ordered: Vec<usize> = joblet::parallel!(backend = processes, return_as = generator;
            for i in 0..4usize => i * scale)
        .collect();
        assert_eq!(ordered, [0, 2, 4, 6]);
    }
    let ordered: Vec<usize> =
        joblet::parallel!(n_jobs = 2, pre_dispatch = 2, return_as = generator;
        for i in (0..4usize).map(|i| i + 1) => i * scale)
        .collect();
    assert_eq!(ordered, [2, 4, 6, 8]);
}
