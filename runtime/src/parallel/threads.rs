//! The threads backend: tasks on rayon thread pools, built once per size and kept for the
//! life of the process. Each task runs under `catch_unwind`: the first panic records the
//! task's index, stops the tasks that have not started, and reaches the caller as a
//! [`TaskPanic`](super::TaskPanic) holding the original payload.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use super::options::{Backend, Options};
use super::run::{Cancelled, Run};
use super::sequential::run_lazy;
use super::trace::{BatchScope, CountTask};
use super::unordered::Unordered;

std::thread_local! {
    /// Set on joblet's own worker threads: a `parallel!` run there is nested.
    static IN_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is one of joblet's worker threads, running a task.
fn on_worker_thread() -> bool {
    IN_WORKER.with(std::cell::Cell::get)
}

/// The pool of `n` workers, built at its first use and kept for the life of the process
/// (one pool, and `n` threads, per distinct `n_jobs` a program uses).
fn pool(n: usize) -> &'static rayon::ThreadPool {
    static POOLS: OnceLock<Mutex<HashMap<usize, &'static rayon::ThreadPool>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    pools.entry(n).or_insert_with(|| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |i| format!("joblet-{n}-{i}"))
            .start_handler(|_| IN_WORKER.with(|w| w.set(true)))
            .build()
            .expect("cannot start worker threads");
        Box::leak(Box::new(pool))
    })
}

/// Runs the tasks of an indexed collection (range, vector, slice) on `n_jobs` threads,
/// without copying it; results come back in input order.
pub fn run_indexed<P, F, R>(opts: &Options, tasks: P, f: F) -> Vec<R>
where
    P: IntoParallelIterator,
    P::Iter: IndexedParallelIterator,
    F: Fn(P::Item) -> R + Sync + Send,
    R: Send,
{
    let iter = tasks.into_par_iter();
    let total = iter.len();
    // Inside a worker (a nested `parallel!`), the tasks join the current pool: no new
    // threads, and no worker blocks waiting for a pool it occupies. (A thread of the
    // user's own rayon pool is not a joblet worker: `n_jobs` holds there too.)
    let nested = on_worker_thread();
    let workers = if nested {
        rayon::current_num_threads()
    } else {
        opts.workers()
    };
    let run = Run::new(opts, Some(total), workers, Backend::Threads, false);
    let (min, max) = opts.batch.rayon_bounds();
    let tasks = iter.enumerate().with_min_len(min).with_max_len(max);
    // Each rayon job is a batch: it checks for a failure before it starts, and runs under
    // the caller's subscriber, in the run's span.
    let start_batch = || {
        run.batch_start();
        run.worker_batch()
    };
    let job = || {
        if run.progress.enabled {
            tasks
                .map_init(start_batch, |batch, (i, item)| {
                    run.task::<_, _, true>(batch, i, item, &f)
                })
                .collect::<Vec<R>>()
        } else {
            tasks
                .map_init(start_batch, |batch, (i, item)| {
                    run.task::<_, _, false>(batch, i, item, &f)
                })
                .collect::<Vec<R>>()
        }
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        if nested {
            job()
        } else {
            // Also for one worker: outside `install`, rayon would use its global pool.
            pool(workers).install(job)
        }
    }));
    run.finish(outcome)
}

/// Starts the tasks in the background and returns their results as they complete
/// (`return_as = unordered`). The tasks own what they use, since they outlive the call.
pub fn run_unordered<I, F, R>(opts: &Options, tasks: I, f: F) -> Unordered<R>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Sync + Send + 'static,
    R: Send + 'static,
{
    if on_worker_thread() {
        // Consumed inside a worker, background tasks on this pool could wait forever for
        // the worker that waits for them: run lazily, in place, instead.
        return run_lazy(opts, tasks.into_iter().collect::<Vec<_>>(), f);
    }
    let items: Vec<I::Item> = tasks.into_iter().collect();
    let total = items.len();
    let workers = opts.workers();
    let run = Arc::new(Run::new(opts, Some(total), workers, Backend::Threads, true));
    let (sender, receiver) = std::sync::mpsc::channel();
    let background = run.clone();
    let (min, max) = opts.batch.rayon_bounds();
    pool(workers).spawn(move || {
        let run = &background;
        items
            .into_par_iter()
            .enumerate()
            .with_min_len(min)
            .with_max_len(max)
            // Per batch, as in `run_indexed`: a sender, the caller's subscriber and the
            // run's span.
            .for_each_init(
                || (sender.clone(), run.worker_batch()),
                |(sender, batch), (i, item)| {
                    // After a failure, or once the consumer is gone, the rest is skipped.
                    if run.stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(item)));
                    if outcome.is_err() {
                        run.stopping.store(true, Ordering::Relaxed);
                        run.trace.failed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        if run.progress.enabled {
                            run.progress.count_one();
                        }
                        batch.count();
                    }
                    if sender.send((i, outcome)).is_err() {
                        run.stopping.store(true, Ordering::Relaxed);
                    }
                },
            );
        let _caller = run.enter_caller();
        run.trace.finish(run.trace.done());
        // Only now: the consumer's `next` gives `None` once every sender is gone, so one
        // that drains the results has seen every event of the run by then.
        drop(sender);
    });
    Unordered::background(total, receiver, run)
}

/// Runs the tasks of any other iterable: it is collected first, then run as a vector.
pub fn run_iter<I, F, R>(opts: &Options, tasks: I, f: F) -> Vec<R>
where
    I: IntoIterator,
    I::Item: Send,
    F: Fn(I::Item) -> R + Sync + Send,
    R: Send,
{
    run_indexed(opts, tasks.into_iter().collect::<Vec<_>>(), f)
}

/// What the threads backend adds to a run.
impl Run {
    /// Opens a batch on a worker: until it drops, the caller's subscriber is the default and
    /// the run's span is entered, so that the tasks' events reach the caller inside the span.
    fn worker_batch(&self) -> WorkerBatch<'_> {
        let caller = self.enter_caller();
        WorkerBatch {
            // A worker's batch is the rayon job, however many tasks it takes.
            batch: self.trace.batch(usize::MAX),
            _in_span: self.trace.span.enter(),
            _caller: caller,
        }
    }

    /// Called as a batch starts: after a failure, the batches not yet started never start.
    #[inline]
    fn batch_start(&self) {
        if self.stopping.load(Ordering::Relaxed) {
            panic::resume_unwind(Box::new(Cancelled));
        }
    }
}

/// On a worker: the batch is the rayon job, whatever its length. No comparison a task: it
/// measured doubling the time of 100,000 trivial tasks.
impl CountTask for WorkerBatch<'_> {
    #[inline(always)]
    fn count(&mut self) {
        self.batch.clock.tasks += 1;
    }
}

/// A batch on a worker. The fields drop in order: the batch reports itself while the span is
/// entered and the caller's subscriber is the default, then both are left.
struct WorkerBatch<'a> {
    batch: BatchScope<'a>,
    _in_span: tracing::span::Entered<'a>,
    _caller: Option<tracing::dispatcher::DefaultGuard>,
}
