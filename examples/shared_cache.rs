//! One cache for every machine that runs this program: results live in an object store, so a
//! sum one machine computed is a hit on every other. The cache is `JOBLET_CACHE_DIR`
//! (`s3://bucket/prefix`); each machine keeps what it loads in its local tier
//! (`JOBLET_LOCAL_TIER`, default `~/.cache/joblet`). The tasks run on worker processes, which
//! store and load through the bucket as the main process does.
//!
//!     cargo run --features remote --example shared_cache
//!
//! README.md, "Sharing a cache between machines", runs it against a local S3 server, as two
//! machines.

use std::hint::black_box;
use std::time::Instant;

use joblet::{cached, parallel};

/// The joblib course's `my_task`: the sum of `0..n`, cached where `JOBLET_CACHE_DIR` says.
#[cached]
fn my_task(n: u64) -> u64 {
    let mut sum = 0;
    for m in 0..n {
        sum += black_box(m);
    }
    sum
}

/// The tasks' sizes: `my_task(i * STEP)` for `i` in `0..40`.
const STEP: u64 = 2_000_000;

fn main() {
    let cache = std::env::var("JOBLET_CACHE_DIR").unwrap_or_default();
    if !cache.contains("://") {
        eprintln!("set JOBLET_CACHE_DIR to the bucket, e.g. s3://joblet/demo (see the README)");
        std::process::exit(2);
    }
    let start = Instant::now();
    let sums = parallel!(n_jobs = 4, backend = processes;
                         for i in 0..40u64 => my_task(i * STEP));
    let took = start.elapsed();
    for (i, sum) in sums.iter().enumerate() {
        let n = i as u64 * STEP;
        assert_eq!(*sum, n * n.saturating_sub(1) / 2, "my_task({n})");
    }
    println!("40 sums in {took:.2?}, cache {cache}");
}
