//! The joblib course notebook's workload across the ranks of an MPI job: `my_task(n)` sums
//! `0..n`, for `n in 0..N`, with `batch_size = 1000`, for N = 40,000 (the notebook's) and
//! 160,000 (where spreading pays off more).
//!
//!     cargo build --release --features mpi --example mpi_seed
//!     target/release/examples/mpi_seed                    # one rank, no launcher: no MPI,
//!                                                         # beside threads and a plain loop
//!     mpiexec -n 2 target/release/examples/mpi_seed       # two ranks
//!
//! Every rank runs `main`: each builds the tasks, runs its share and gets every result. What
//! is wrapped in `joblet::mpi::on_root` runs once, on rank 0. The comparisons run only
//! without a launcher, since under one the other ranks would be waiting for rank 0 (MPI
//! waits by polling, on a core of its own) while it timed them. Threads per rank:
//! `JOBLET_N_JOBS` (default 1, for one rank per core).

use std::hint::black_box;
use std::time::{Duration, Instant};

use joblet::{mpi, parallel};

fn my_task(n: u64) -> u64 {
    let mut my_sum = 0;
    for m in 0..n {
        my_sum += black_box(m);
    }
    my_sum
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn main() {
    let n_jobs: i64 = std::env::var("JOBLET_N_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    for n in [40_000u64, 160_000] {
        // Every rank starts the clock together.
        mpi::barrier();
        let (spread, t_mpi) = timed(
            || parallel!(backend = mpi, n_jobs = n_jobs, batch_size = 1000; for i in 0..n => my_task(i)),
        );
        mpi::on_root(|| {
            println!(
                "N = {n}: backend = mpi, {} rank(s) x {n_jobs} thread(s): {t_mpi:.3?}",
                mpi::size()
            );
        });
        if mpi::size() == 1 {
            let (threads, t_threads) =
                timed(|| parallel!(n_jobs = 2, batch_size = 1000; for i in 0..n => my_task(i)));
            let (by_hand, t_by_hand) = timed(|| (0..n).map(my_task).collect::<Vec<_>>());
            assert_eq!(threads, by_hand);
            assert_eq!(spread, by_hand);
            println!(
                "N = {n}: backend = threads, n_jobs = 2: {t_threads:.3?}; sequential loop: {t_by_hand:.3?}"
            );
        } else {
            assert_eq!(spread[n as usize - 1], my_task(n - 1));
        }
    }
}
