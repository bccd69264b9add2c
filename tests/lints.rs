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
