//! `parallel!` against the same loop written directly with rayon and against a sequential
//! loop, on 2 threads: the seed notebook's workload, and 100,000 trivial tasks, from a range
//! and from an iterator without an index; what a batch costs on threads and on worker
//! processes; and what a processes call costs with its workers kept from the call before.
//!
//!     cargo bench --bench parallel

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use joblet::parallel;
use rayon::prelude::*;

/// The seed notebook's task, kept real with `black_box`. Never inlined, so that every variant
/// runs the same machine code for it and only the scheduling differs.
#[inline(never)]
fn my_task(n: u64) -> u64 {
    let mut sum = 0;
    for m in 0..n {
        sum += black_box(m);
    }
    sum
}

fn seed(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("seed workload, 40000 tasks, 2 threads");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("parallel! batch_size = 1000", |b| {
        b.iter(|| parallel!(n_jobs = 2, batch_size = 1000; for i in 0..40000 => my_task(i)))
    });
    g.bench_function("parallel! batch_size = auto", |b| {
        b.iter(|| parallel!(n_jobs = 2; for i in 0..40000 => my_task(i)))
    });
    g.bench_function("parallel! backend = processes, batch_size = 1000", |b| {
        b.iter(|| {
            parallel!(backend = processes, n_jobs = 2, batch_size = 1000; for i in 0..40000 => my_task(i))
        })
    });
    g.bench_function("rayon into_par_iter().map().collect()", |b| {
        b.iter(|| {
            pool.install(|| {
                (0..40000u64)
                    .into_par_iter()
                    .map(my_task)
                    .collect::<Vec<_>>()
            })
        })
    });
    g.bench_function("rayon, usize range (indexed)", |b| {
        b.iter(|| {
            pool.install(|| {
                (0..40000usize)
                    .into_par_iter()
                    .map(|i| my_task(i as u64))
                    .collect::<Vec<_>>()
            })
        })
    });
    g.bench_function("sequential loop", |b| {
        b.iter(|| (0..40000u64).map(my_task).collect::<Vec<_>>())
    });
    g.finish();
}

fn trivial(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("100000 trivial tasks, 2 threads");
    g.bench_function("parallel!", |b| {
        b.iter(|| parallel!(n_jobs = 2; for i in 0..100_000u64 => black_box(i)))
    });
    g.bench_function("rayon into_par_iter().map().collect()", |b| {
        b.iter(|| {
            pool.install(|| {
                (0..100_000u64)
                    .into_par_iter()
                    .map(black_box)
                    .collect::<Vec<_>>()
            })
        })
    });
    g.bench_function("sequential loop", |b| {
        b.iter(|| (0..100_000u64).map(black_box).collect::<Vec<_>>())
    });
    // Read as batches are dispatched, never collected first.
    g.bench_function("parallel!, an iterator without an index", |b| {
        b.iter(|| parallel!(n_jobs = 2; for i in (0..100_000u64).filter(|_| true) => black_box(i)))
    });
    g.bench_function("rayon par_bridge, an iterator without an index", |b| {
        b.iter(|| {
            pool.install(|| {
                (0..100_000u64)
                    .filter(|_| true)
                    .par_bridge()
                    .map(black_box)
                    .collect::<Vec<_>>()
            })
        })
    });
    g.finish();
}

/// A processes call of two trivial tasks on 2 workers: with the workers of the call before
/// (the default), and with workers started for it and ended after (`idle_timeout = 0`).
/// `cargo run --release --example worker_start` runs the two alternately.
fn call_start(c: &mut Criterion) {
    let mut g = c.benchmark_group("processes call of 2 tasks, 2 workers");
    g.sample_size(30);
    g.bench_function("workers kept from the call before", |b| {
        b.iter(|| parallel!(backend = processes, n_jobs = 2, batch_size = 1; for i in 0..2u64 => black_box(i)))
    });
    g.bench_function("workers started for the call", |b| {
        b.iter(|| {
            parallel!(backend = processes, n_jobs = 2, batch_size = 1, idle_timeout = 0; for i in 0..2u64 => black_box(i))
        })
    });
    g.finish();
}

/// What a batch costs: runs of 1000 and of 5000 one-task batches of a trivial task on 2
/// workers. The difference between the two, over 4000, is the time a batch adds to a run
/// (two workers share it), without the start and end of the run; the processes backend's
/// includes its round trip through the pipes and the encoding of its input and result.
fn per_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("one-task batches, 2 workers");
    g.sample_size(20);
    for batches in [1000u64, 5000] {
        g.bench_function(format!("threads, {batches} batches"), |b| {
            b.iter(|| parallel!(n_jobs = 2, batch_size = 1; for i in 0..batches => black_box(i)))
        });
        g.bench_function(format!("processes, {batches} batches"), |b| {
            b.iter(|| {
                parallel!(backend = processes, n_jobs = 2, batch_size = 1; for i in 0..batches => black_box(i))
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    seed(&mut c);
    trivial(&mut c);
    per_batch(&mut c);
    call_start(&mut c);
    c.final_summary();
}
