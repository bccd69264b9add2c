//! The threads backend: tasks on rayon thread pools, built once per size and kept for the
//! life of the process. Indexed inputs run in place, each rayon job a batch; any other input,
//! and every `generator` and `unordered` run, is read lazily through a
//! [`Stream`](super::stream::Stream), a job per batch. Each task runs under `catch_unwind`:
//! the first panic stops the tasks that have not started, and reaches the caller.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use super::batches::Batches;
use super::failure::{Failure, Payload, raise};
use super::options::{Backend, Options};
use super::results::{Ordered, Unordered};
use super::run::{Cancelled, Run};
use super::sequential::{exact_len, run_lazy, run_lazy_ordered};
use super::stream::{self, Done, Order, Stream};
use super::trace::{BatchClock, Trace};

std::thread_local! {
    /// Set on joblet's own worker threads: a `parallel!` run there is nested.
    static IN_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is one of joblet's worker threads, running a task.
fn on_worker_thread() -> bool {
    IN_WORKER.with(std::cell::Cell::get)
}

/// A pool of worker threads, and the background runs given up while their tasks still ran on
/// it: a new run goes to another pool meanwhile, rather than wait for tasks nobody wants.
struct Pool {
    threads: rayon::ThreadPool,
    size: usize,
    abandoned: AtomicUsize,
}

/// A pool of `n` workers that no given-up run occupies: built at its first use and kept for
/// the life of the process (one pool per distinct `n_jobs` a program uses, and one more while
/// a given-up run's tasks still run on it).
fn pool(n: usize) -> &'static Pool {
    static POOLS: Mutex<Vec<&'static Pool>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let free = pools
        .iter()
        .find(|p| p.size == n && p.abandoned.load(Ordering::Acquire) == 0);
    if let Some(pool) = free {
        return pool;
    }
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(move |i| format!("joblet-{n}-{i}"))
        .start_handler(|_| IN_WORKER.with(|w| w.set(true)))
        .build()
        .expect("cannot start worker threads");
    let pool = Box::leak(Box::new(Pool {
        threads,
        size: n,
        abandoned: AtomicUsize::new(0),
    }));
    pools.push(pool);
    pool
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
    let run = Run::new(opts, Some(total), workers, Backend::Threads, "list");
    let (min, max) = opts.batch.rayon_bounds();
    // Each piece of the input that rayon no longer splits is a batch (see `Batches`).
    let tasks = Batches::new(iter.with_min_len(min).with_max_len(max), &run);
    let job = || {
        if run.progress.enabled {
            tasks
                .map(|(i, item)| run.task::<_, _, true>(i, item, &f))
                .collect::<Vec<R>>()
        } else {
            tasks
                .map(|(i, item)| run.task::<_, _, false>(i, item, &f))
                .collect::<Vec<R>>()
        }
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        if nested {
            job()
        } else {
            // Also for one worker: outside `install`, rayon would use its global pool.
            pool(workers).threads.install(job)
        }
    }));
    run.finish(outcome)
}

/// Runs the tasks of any other iterable, read as batches are dispatched: at most
/// `pre_dispatch` batches ahead of those done, never the whole input at once. Results come
/// back in input order.
pub fn run_iter<I, F, R>(opts: &Options, tasks: I, f: F) -> Vec<R>
where
    I: IntoIterator,
    I::Item: Send,
    F: Fn(I::Item) -> R + Sync + Send,
    R: Send,
{
    if on_worker_thread() {
        // Nested: a worker that waited for batches here would hold a thread they need.
        return run_indexed(opts, tasks.into_iter().collect::<Vec<_>>(), f);
    }
    let iter = tasks.into_iter();
    let workers = opts.workers();
    let run = Run::new(opts, exact_len(&iter), workers, Backend::Threads, "list");
    let (sender, receiver) = channel();
    let outcome = pool(workers).threads.in_place_scope(|scope| {
        let backend = Scoped {
            scope,
            run: &run,
            f: &f,
            sender,
            receiver,
        };
        let order = Order::Input { hold: false };
        Stream::new(opts, workers, iter, backend, order, true).collect_all()
    });
    outcome.unwrap_or_else(|(index, failure)| raise(index, failure))
}

/// A list run's batches, as jobs of a rayon scope: they may borrow the body and the run.
struct Scoped<'a, 'scope, F, R> {
    scope: &'a rayon::Scope<'scope>,
    run: &'scope Run,
    f: &'scope F,
    sender: Sender<Done<R>>,
    receiver: Receiver<Done<R>>,
}

impl<'scope, T, F, R> stream::Backend<T, R> for Scoped<'_, 'scope, F, R>
where
    T: Send + 'scope,
    F: Fn(T) -> R + Sync,
    R: Send + 'scope,
{
    fn run(&self) -> &Run {
        self.run
    }

    fn dispatch(&mut self, first: usize, items: Vec<T>) {
        let (run, f, sender) = (self.run, self.f, self.sender.clone());
        self.scope.spawn(move |_| {
            let _ = sender.send(run_batch(run, f, first, items));
        });
    }

    fn receive(&mut self) -> Option<Done<R>> {
        self.receiver.recv().ok()
    }

    fn stop(&mut self) {
        self.run.stopping.store(true, Ordering::Relaxed);
    }
}

/// Runs one batch on a worker: its tasks in order, until one fails or the run stops.
fn run_batch<T, R>(run: &Run, f: &impl Fn(T) -> R, first: usize, items: Vec<T>) -> Done<R> {
    let began = Instant::now();
    let mut outcomes = Vec::with_capacity(items.len());
    let batch = run.worker_batch();
    for item in items {
        if run.stopping.load(Ordering::Relaxed) {
            break;
        }
        match panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
            Ok(value) => {
                if run.progress.enabled {
                    run.progress.count_one();
                }
                outcomes.push(Ok(value));
            }
            Err(payload) => {
                run.stopping.store(true, Ordering::Relaxed);
                run.trace.failed.fetch_add(1, Ordering::Relaxed);
                let failure = Failure::Panicked(Payload::new(payload));
                let index = first + outcomes.len();
                run.trace.task_failed(index, &failure.describe(index));
                outcomes.push(Err(failure));
                break;
            }
        }
    }
    // The batch reports itself here, before the consumer can see its results; a failure is
    // its last outcome, and not a task done.
    let failed = matches!(outcomes.last(), Some(Err(_)));
    batch.ended(outcomes.len() - usize::from(failed));
    Done {
        first,
        outcomes,
        elapsed: began.elapsed(),
    }
}

/// Runs the tasks in the background and returns their results as they complete
/// (`return_as = unordered`). The tasks own what they use, since they outlive the call.
pub fn run_unordered<I, F, R>(opts: &Options, tasks: I, f: F) -> Unordered<R>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Sync + Send + 'static,
    R: Send + 'static,
{
    if on_worker_thread() {
        // Consumed inside a worker, background tasks on this pool could wait forever for
        // the worker that waits for them: run lazily, in place, instead.
        return run_lazy(opts, tasks, f);
    }
    Unordered::new(Box::new(background(
        opts,
        tasks,
        f,
        Order::Completion,
        "unordered",
    )))
}

/// Runs the tasks in the background and returns their results in input order, each as soon
/// as it and those before it are done (`return_as = generator`).
pub fn run_ordered<I, F, R>(opts: &Options, tasks: I, f: F) -> Ordered<R>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Sync + Send + 'static,
    R: Send + 'static,
{
    if on_worker_thread() {
        return run_lazy_ordered(opts, tasks, f);
    }
    let order = Order::Input { hold: true };
    Ordered::new(Box::new(background(opts, tasks, f, order, "generator")))
}

fn background<I, F, R>(
    opts: &Options,
    tasks: I,
    f: F,
    order: Order,
    return_as: &'static str,
) -> Stream<I::IntoIter, R, Background<F, R>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> R + Sync + Send + 'static,
    R: Send + 'static,
{
    let iter = tasks.into_iter();
    let workers = opts.workers();
    let run = Run::new(opts, exact_len(&iter), workers, Backend::Threads, return_as);
    let (sender, receiver) = channel();
    let backend = Background {
        pool: pool(workers),
        run: Arc::new(run),
        f: Arc::new(f),
        sender,
        receiver,
        jobs: Arc::new(Mutex::new(Jobs::default())),
    };
    Stream::new(opts, workers, iter, backend, order, true)
}

/// A background run's batches, as jobs spawned on its pool: they own what they use.
struct Background<F, R> {
    pool: &'static Pool,
    run: Arc<Run>,
    f: Arc<F>,
    sender: Sender<Done<R>>,
    receiver: Receiver<Done<R>>,
    jobs: Arc<Mutex<Jobs>>,
}

/// A background run's jobs on its pool: how many have not ended, and whether the run was
/// given up while some had not (which keeps new runs off the pool until they end).
#[derive(Default)]
struct Jobs {
    running: usize,
    abandoned: bool,
}

impl<T, F, R> stream::Backend<T, R> for Background<F, R>
where
    T: Send + 'static,
    F: Fn(T) -> R + Sync + Send + 'static,
    R: Send + 'static,
{
    fn run(&self) -> &Run {
        &self.run
    }

    fn dispatch(&mut self, first: usize, items: Vec<T>) {
        let (run, f, sender) = (self.run.clone(), self.f.clone(), self.sender.clone());
        let (jobs, pool) = (self.jobs.clone(), self.pool);
        jobs.lock().unwrap_or_else(|e| e.into_inner()).running += 1;
        pool.threads.spawn(move || {
            let _ = sender.send(run_batch(&run, &*f, first, items));
            let mut jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.running -= 1;
            if jobs.running == 0 && jobs.abandoned {
                pool.abandoned.fetch_sub(1, Ordering::Release);
            }
        });
    }

    fn receive(&mut self) -> Option<Done<R>> {
        self.receiver.recv().ok()
    }

    fn stop(&mut self) {
        self.run.stopping.store(true, Ordering::Relaxed);
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.running > 0 && !jobs.abandoned {
            jobs.abandoned = true;
            self.pool.abandoned.fetch_add(1, Ordering::Release);
        }
    }
}

/// What the threads backend adds to a run.
impl Run {
    /// Opens a batch on a worker: until it ends, the caller's subscriber is the default and
    /// the run's span is entered, so that the tasks' events reach the caller inside the span.
    pub(crate) fn worker_batch(&self) -> WorkerBatch<'_> {
        let caller = self.enter_caller();
        WorkerBatch {
            clock: self.trace.begin_batch(),
            trace: &self.trace,
            _in_span: self.trace.span.enter(),
            _caller: caller,
        }
    }

    /// Called as a batch starts: after a failure, the batches not yet started never start.
    #[inline]
    pub(crate) fn batch_start(&self) {
        if self.stopping.load(Ordering::Relaxed) {
            panic::resume_unwind(Box::new(Cancelled::before_start()));
        }
    }
}

/// A batch on a worker, which reports itself when it ends, while the span is entered and the
/// caller's subscriber is the default; both are left as it drops. (The fields drop in order.)
pub(crate) struct WorkerBatch<'a> {
    clock: BatchClock,
    trace: &'a Trace,
    _in_span: tracing::span::Entered<'a>,
    _caller: Option<tracing::dispatcher::DefaultGuard>,
}

impl WorkerBatch<'_> {
    /// The batch ended after `tasks` tasks: counted and reported.
    pub(crate) fn ended(mut self, tasks: usize) {
        self.clock.tasks = tasks;
        self.trace.end_batch(&self.clock);
    }

    /// A failure cut the batch short after `tasks` tasks: they count, the batch is not
    /// reported.
    pub(crate) fn cut_short(self, tasks: usize) {
        self.trace.cut_short(tasks);
    }
}
