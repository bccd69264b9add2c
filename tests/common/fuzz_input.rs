//! What the fuzz target (`fuzz/fuzz_targets/load.rs`) does with each input, shared with the
//! regression test that replays the inputs it found bugs with (`tests/fuzz_regressions.rs`):
//! the bytes as an entry file, loaded as values of many types, every array read in full, and
//! the folder listed as `joblet report` lists it.

use std::collections::HashMap;
use std::path::Path;

use joblet::Array;
use serde::{Deserialize, Serialize};

/// A value with array sections, as the zero-copy path loads them.
#[derive(Serialize, Deserialize)]
pub struct Arrays {
    pub name: String,
    pub a: Array<f64>,
    pub b: Option<Array<u8>>,
    pub c: Vec<Array<i32>>,
}

/// Loads the file at `path` (in a cache-shaped folder under `root`) as each type, and lists
/// `root`. Any outcome but a panic, an abort or a fault is fine: errors are expected.
pub fn load_every_way(root: &Path, path: &Path) {
    let _ = joblet::load::<u64>(path);
    let _ = joblet::load::<String>(path);
    let _ = joblet::load::<Vec<u8>>(path).map(|v| v.len());
    let _ = joblet::load::<Vec<f64>>(path).map(|v| v.iter().sum::<f64>());
    let _ = joblet::load::<(String, u32, Vec<u8>)>(path);
    let _ = joblet::load::<HashMap<String, Vec<i64>>>(path);
    let _ = joblet::load::<Option<Vec<(u16, f32)>>>(path);
    if let Ok(array) = joblet::load::<Array<u16>>(path) {
        let _ = array.verify();
        let _ = array.iter().map(|&x| u64::from(x)).sum::<u64>();
    }
    if let Ok(value) = joblet::load::<Arrays>(path) {
        let _ = value.a.verify() && value.b.as_ref().is_none_or(Array::verify);
        let _ = value.a.iter().sum::<f64>();
        let _ = value
            .b
            .map(|b| b.iter().map(|&x| u64::from(x)).sum::<u64>());
        let _ = value
            .c
            .iter()
            .flat_map(|c| c.iter())
            .fold(0i32, |a, &x| a.wrapping_add(x));
    }
    let _ = joblet::Memory::new(root).entries();
}
