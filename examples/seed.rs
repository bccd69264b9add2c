//! The joblib course notebook, in Rust: `my_task(n)` sums `0..n`, run for `n in 0..40000` with
//! `n_jobs = 4`, `batch_size = 1000` and `verbose = 10` on each backend (threads, processes,
//! sequential), then sequentially by hand, with wall times.
//!
//!     cargo run --release --example seed
//!
//! (`black_box` keeps the loop real: without it the optimiser turns it into `n * (n - 1) / 2`.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use joblet::parallel;

fn my_task(n: u64) -> u64 {
    let mut my_sum = 0;
    for m in 0..n {
        my_sum += black_box(m);
    }
    my_sum
}

fn timed(label: &str, f: impl FnOnce() -> Vec<u64>) -> (Vec<u64>, Duration) {
    println!("\n{label}");
    let start = Instant::now();
    let results = f();
    let took = start.elapsed();
    println!("  -> {took:.3?}");
    (results, took)
}

fn main() {
    let n_jobs = 4;
    let batch_size = 1000;
    let verbose = 10;

    let (threads, t_threads) = timed("backend = threads", || {
        parallel!(n_jobs = n_jobs, batch_size = batch_size, verbose = verbose, backend = threads;
                  for i in 0..40000 => my_task(i))
    });
    let (processes, t_processes) = timed("backend = processes", || {
        parallel!(n_jobs = n_jobs, batch_size = batch_size, verbose = verbose, backend = processes;
                  for i in 0..40000 => my_task(i))
    });
    let (sequential, t_sequential) = timed("backend = sequential", || {
        parallel!(n_jobs = n_jobs, batch_size = batch_size, verbose = verbose, backend = sequential;
                  for i in 0..40000 => my_task(i))
    });
    let (by_hand, t_by_hand) = timed("by hand: (0..40000).map(my_task).collect()", || {
        (0..40000).map(my_task).collect()
    });

    assert_eq!(threads, by_hand);
    assert_eq!(processes, by_hand);
    assert_eq!(sequential, by_hand);
    let speedup = |t: Duration| t_by_hand.as_secs_f64() / t.as_secs_f64();
    println!(
        "\nthreads {t_threads:.3?} ({:.2}x faster than by hand), processes {t_processes:.3?} \
         ({:.2}x), sequential backend {t_sequential:.3?}, by hand {t_by_hand:.3?}, on {} cores",
        speedup(t_threads),
        speedup(t_processes),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
}
