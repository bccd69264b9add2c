//! How much faster than a sequential loop each backend runs the seed workload (`my_task(n)`
//! for `n in 0..40000`, `n_jobs = 4`, `batch_size = 1000`): 15 rounds of the loop, then
//! `backend = processes`, then `backend = threads`, each round's times taken as ratios, and
//! the median ratio printed. Pairs cancel the drift of a shared machine's speed, which moves
//! single timings by more than the differences.
//!
//!     cargo run --release --example speedup

use std::hint::black_box;
use std::time::Instant;

use joblet::parallel;

#[inline(never)]
fn my_task(n: u64) -> u64 {
    let mut sum = 0;
    for m in 0..n {
        sum += black_box(m);
    }
    sum
}

fn seconds(f: impl FnOnce() -> Vec<u64>) -> f64 {
    let start = Instant::now();
    black_box(f());
    start.elapsed().as_secs_f64()
}

fn main() {
    const ROUNDS: usize = 15;
    let (mut processes, mut threads) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let sequential = seconds(|| (0..40000).map(my_task).collect());
        let p = seconds(
            || parallel!(backend = processes, n_jobs = 4, batch_size = 1000; for i in 0..40000 => my_task(i)),
        );
        let t = seconds(
            || parallel!(backend = threads, n_jobs = 4, batch_size = 1000; for i in 0..40000 => my_task(i)),
        );
        processes.push(sequential / p);
        threads.push(sequential / t);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, mut ratios) in [("processes", processes), ("threads", threads)] {
        ratios.sort_by(f64::total_cmp);
        println!(
            "backend = {name}: {:.2}x faster than the sequential loop (median of {ROUNDS} rounds; range {:.2}-{:.2}x), on {cores} cores",
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1],
        );
    }
}
