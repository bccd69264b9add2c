//! What a `parallel!(backend = processes, n_jobs = 2)` call of two trivial tasks takes when
//! its workers are kept from the call before (the default), against the same call with
//! `idle_timeout = 0`, whose workers start and end with it (as every call's did before
//! workers were kept). Each contender runs in a process of its own (they would share kept
//! workers otherwise), a first call and then 10, and the two alternate for 5 rounds, since a
//! shared machine's speed drifts by more than single timings differ; medians and ranges.
//!
//!     cargo run --release --example worker_start

use std::time::Instant;

use joblet::parallel;

mod measure;
use measure::{contender, summary};

const CALLS: usize = 10;

fn millis(f: impl FnOnce() -> Vec<u64>) -> f64 {
    let start = Instant::now();
    assert_eq!(f(), [0, 2]);
    start.elapsed().as_secs_f64() * 1000.0
}

/// One contender's calls, in this process: the first, then `CALLS` more.
fn calls(kept: bool) -> Vec<f64> {
    (0..=CALLS)
        .map(|_| {
            if kept {
                millis(|| parallel!(backend = processes, n_jobs = 2, batch_size = 1; for i in 0..2u64 => i * 2))
            } else {
                millis(|| parallel!(backend = processes, n_jobs = 2, batch_size = 1, idle_timeout = 0; for i in 0..2u64 => i * 2))
            }
        })
        .collect()
}

fn main() {
    if let Some(arg) = std::env::args().nth(1) {
        let times = calls(arg == "kept");
        println!(
            "{}",
            times
                .iter()
                .map(f64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        return;
    }
    let (mut first, mut kept, mut started) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let times = contender("kept");
        first.push(times[0]);
        kept.extend_from_slice(&times[1..]);
        let times = contender("new");
        first.push(times[0]);
        started.extend_from_slice(&times[1..]);
    }
    summary("a process's first call, starting its workers", first);
    summary("later calls, workers kept from the call before", kept);
    summary(
        "later calls, workers started for each (idle_timeout = 0)",
        started,
    );
}
