//! A 1 GiB `Array<f64>` captured by the body of a `parallel!(backend = processes, n_jobs = 2)`
//! of two tasks, each reading a thousand of its numbers: by default the array goes to the
//! workers in shared memory, mapped there without a copy (`max_nbytes`, 1 MiB); with
//! `max_nbytes = "2G"` it goes through each worker's pipe, as all captures did before. Each
//! contender runs in a process of its own (peaks are per process), alternating for 5 rounds;
//! medians and ranges of the call's time, the caller's peak memory and the workers'.
//!
//!     cargo run --release --example large_capture

use std::time::Instant;

use joblet::{Array, parallel};

mod measure;
use measure::{contender, peak_mb, summary};

const LEN: usize = 1 << 27; // 1 GiB of f64

/// One call, in this process: `time_s own_mb worker_mb` on stdout.
fn contend(shared: bool) {
    let data = Array::from((0..LEN).map(|i| i as f64).collect::<Vec<_>>());
    let before = peak_mb();
    let start = Instant::now();
    // Each task reports its worker's peak, the capture received.
    let done: Vec<(f64, f64)> = if shared {
        parallel!(backend = processes, n_jobs = 2, batch_size = 1;
            for t in 0..2usize => (data[t * LEN / 2..][..1000].iter().sum(), peak_mb()))
    } else {
        parallel!(backend = processes, n_jobs = 2, batch_size = 1, max_nbytes = "2G";
            for t in 0..2usize => (data[t * LEN / 2..][..1000].iter().sum(), peak_mb()))
    };
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(done[0].0, (0..1000).map(|i| i as f64).sum::<f64>());
    let worker = done[0].1.max(done[1].1);
    println!("{seconds} {} {worker}", peak_mb() - before);
}

fn main() {
    if let Some(arg) = std::env::args().nth(1) {
        return contend(arg == "shared");
    }
    let mut results = [(); 2].map(|_| [Vec::new(), Vec::new(), Vec::new()]);
    for _ in 0..5 {
        for (k, name) in ["shared", "pipe"].into_iter().enumerate() {
            for (i, value) in contender(name).into_iter().enumerate() {
                results[k][i].push(value);
            }
        }
    }
    let names = [
        "shared memory (the default)",
        "through the pipes (max_nbytes = \"2G\")",
    ];
    for (name, [times, own, workers]) in names.into_iter().zip(results) {
        summary(&format!("{name}, call, s"), times);
        summary(&format!("{name}, caller's peak beyond the array, MB"), own);
        summary(&format!("{name}, a worker's peak, MB"), workers);
    }
}
