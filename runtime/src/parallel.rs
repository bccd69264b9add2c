//! The runtime of `parallel!`: worker counts, thread pools, batches, joblib-style progress
//! output, panics, and `tracing` (a span and events per run, the caller's subscriber on workers).
//!
//! Tasks run on rayon thread pools built once per size and kept for the life of the process.
//! Each task runs under `catch_unwind`: the first panic records the task's index, stops the
//! tasks that have not started, and reaches the caller as a [`TaskPanic`] holding the original
//! payload.

use std::any::Any;
use std::fmt;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// How many tasks go to a worker at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Adapted to the run: rayon splits the work as workers run out of it.
    Auto,
    /// A fixed number of tasks per batch.
    Fixed(usize),
}

/// The options of one `parallel!` call.
#[derive(Debug, Clone)]
pub struct Options {
    n_jobs: i64,
    pub(crate) batch: Batch,
    verbose: u32,
    progress: bool,
}

impl Options {
    /// Options with joblib's meaning of `n_jobs` (`-1` all cores, `-2` all but one, ...).
    pub fn new(n_jobs: i64, batch: Batch, verbose: i64, progress: bool) -> Self {
        Options {
            n_jobs,
            batch,
            verbose: verbose.clamp(0, 50) as u32,
            progress,
        }
    }

    /// The same options, with no progress output.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn silent(&self) -> Self {
        Options {
            verbose: 0,
            progress: false,
            ..self.clone()
        }
    }

    /// The least and most tasks a rayon job takes: a fixed batch, or anything rayon chooses.
    #[cfg_attr(not(feature = "threads"), allow(dead_code))]
    fn batch_bounds(&self) -> (usize, usize) {
        match self.batch {
            Batch::Fixed(b) => (b, b),
            Batch::Auto => (1, usize::MAX),
        }
    }

    /// The number of workers: `n_jobs` when positive, else counted back from the cores.
    ///
    /// # Panics
    /// When `n_jobs` is 0, which joblib rejects too.
    pub fn workers(&self) -> usize {
        match self.n_jobs {
            0 => panic!("`n_jobs = 0` is not valid: give a number of workers, or -1 for all cores"),
            n if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            n => (cores() as i64 + 1 + n).max(1) as usize,
        }
    }
}

/// The number of cores, read once: on Linux, `available_parallelism` reads cgroup files at
/// every call.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// An integer of any type, as the `i64` that `n_jobs`, `batch_size` and `verbose` take: the
/// options are any integer expression, whatever its type.
pub trait Integer {
    /// The value as `i64`, saturated.
    fn to_i64(self) -> i64;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            fn to_i64(self) -> i64 {
                i64::try_from(self).unwrap_or(if self > 0 as $t { i64::MAX } else { i64::MIN })
            }
        }
    )*};
}
integer!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize
);

/// Any integer as an `i64`, saturated.
pub fn integer(n: impl Integer) -> i64 {
    n.to_i64()
}

/// Converts an integer of any type to a batch size.
pub fn batch_size(n: impl Integer) -> Batch {
    match n.to_i64() {
        n if n > 0 => Batch::Fixed(usize::try_from(n).unwrap_or(usize::MAX)),
        n => panic!("`batch_size = {n}` is not valid: give a positive number of tasks, or `auto`"),
    }
}

/// A task panicked. The payload is what the task panicked with.
///
/// ```
/// let caught = std::panic::catch_unwind(|| {
///     joblet_runtime::__private::run_sequential(
///         &joblet_runtime::__private::Options::new(1, joblet_runtime::__private::Batch::Auto, 0, false),
///         0..10,
///         |i: i32| if i == 7 { panic!("seven") } else { i },
///     )
/// });
/// let failure = caught.unwrap_err().downcast::<joblet_runtime::TaskPanic>().unwrap();
/// assert_eq!(failure.index(), 7);
/// assert_eq!(failure.message(), Some("seven"));
/// ```
pub struct TaskPanic {
    index: usize,
    payload: Box<dyn Any + Send>,
}

impl TaskPanic {
    /// The position of the failed task in the input.
    pub fn index(&self) -> usize {
        self.index
    }

    /// What the task panicked with.
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }

    /// What the task panicked with, to re-raise with `std::panic::resume_unwind`.
    pub fn into_payload(self) -> Box<dyn Any + Send> {
        self.payload
    }

    /// The panic message, when the payload is a string (as with `panic!("...")`), or the
    /// message of the inner task when this task failed in a nested `parallel!`.
    pub fn message(&self) -> Option<&str> {
        panic_message(&*self.payload)
            .or_else(|| self.payload.downcast_ref::<TaskPanic>()?.message())
            .or_else(|| Some(self.payload.downcast_ref::<TaskError>()?.message()))
    }
}

/// What a panic says: its message, that of the task that failed in a nested `parallel!`, or
/// that it is not a string.
pub(crate) fn describe_panic(payload: &(dyn Any + Send)) -> String {
    match (panic_message(payload), payload.downcast_ref::<TaskPanic>()) {
        (Some(message), _) => message.to_owned(),
        (None, Some(inner)) => inner.to_string(),
        (None, None) => "a panic payload that is not a string".to_owned(),
    }
}

/// The message of a panic payload that is a string, as `panic!("...")` makes.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Debug for TaskPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskPanic")
            .field("index", &self.index)
            .field("message", &self.message())
            .finish()
    }
}

impl fmt::Display for TaskPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A task that crashed its worker process, ran out of time or memory: it says so itself.
        if let Some(error) = self.payload.downcast_ref::<TaskError>() {
            return error.fmt(f);
        }
        match self.message() {
            Some(m) => write!(f, "task {} panicked: {m}", self.index),
            None => write!(f, "task {} panicked", self.index),
        }
    }
}

impl std::error::Error for TaskPanic {}

/// A task that failed: what `parallel!(on_error = collect; ...)` returns in place of its result,
/// and what `backend = processes` reports of a task that crashed its worker, ran over its
/// `timeout` or past its `max_memory`.
///
/// `parallel!(on_error = collect; for i in 0..4 => ...)` expands to about this:
///
/// ```
/// use joblet_runtime::TaskErrorKind;
/// use joblet_runtime::__private::{Batch, Options, catch, collected, run_sequential};
///
/// let opts = Options::new(1, Batch::Auto, 0, false);
/// let results = collected(run_sequential(&opts, 0..4, |i| catch(|| {
///     if i == 2 { panic!("two") }
///     i * 10
/// })));
/// assert_eq!(results[1], Ok(10));
/// let failed = results[2].as_ref().unwrap_err();
/// assert_eq!((failed.index(), failed.kind(), failed.message()), (2, TaskErrorKind::Panicked, "two"));
/// assert_eq!(failed.to_string(), "task 2 panicked: two");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    index: usize,
    kind: TaskErrorKind,
    message: String,
}

/// Why a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// The task panicked; the message is the panic's.
    Panicked,
    /// Its worker process was killed by this signal: a segmentation fault (11), an `abort()`
    /// (6), ... The message names it, with the worker's last line of output.
    Signal(i32),
    /// Its worker process exited with this code (the task called `std::process::exit`).
    Exited(i32),
    /// The task ran longer than `timeout`: its worker was killed and replaced.
    TimedOut,
    /// The task tried to allocate past `max_memory`: its worker was ended and replaced.
    OutOfMemory,
    /// Its input or its result could not be sent between processes (a `Serialize` or
    /// `Deserialize` implementation failed).
    Transfer,
}

impl TaskError {
    pub(crate) fn new(index: usize, kind: TaskErrorKind, message: impl Into<String>) -> Self {
        TaskError {
            index,
            kind,
            message: message.into(),
        }
    }

    /// A task that panicked with `payload`.
    pub(crate) fn panicked(index: usize, payload: &(dyn Any + Send)) -> Self {
        TaskError::new(index, TaskErrorKind::Panicked, describe_panic(payload))
    }

    /// The position of the failed task in the input.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Why it failed.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// What happened: the panic message, or a description of the crash.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same failure, at position `index` of the input.
    pub(crate) fn at(mut self, index: usize) -> Self {
        self.index = index;
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (index, message) = (self.index, &self.message);
        match self.kind {
            TaskErrorKind::Panicked => write!(f, "task {index} panicked: {message}"),
            TaskErrorKind::Signal(_) | TaskErrorKind::Exited(_) => {
                write!(f, "task {index} crashed its worker process: {message}")
            }
            TaskErrorKind::TimedOut => write!(f, "task {index} timed out: {message}"),
            TaskErrorKind::OutOfMemory => write!(f, "task {index} ran out of memory: {message}"),
            TaskErrorKind::Transfer => write!(f, "task {index} could not be sent: {message}"),
        }
    }
}

impl std::error::Error for TaskError {}

/// What a run does when a task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// No batch starts after the first failure, and the caller panics with a [`TaskPanic`].
    Stop,
    /// Every task runs; then, if any failed, the caller panics with the first failure.
    Continue,
}

/// Runs a task body under `catch_unwind`: the form of `on_error = collect` and
/// `on_error = continue` on the threads and sequential backends.
#[inline(always)]
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, TaskError> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| TaskError::panicked(0, &*payload))
}

/// The results of caught tasks, each failure at its position in the input.
pub fn collected<R>(results: Vec<Result<R, TaskError>>) -> Vec<Result<R, TaskError>> {
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| e.at(i)))
        .collect()
}

/// The results of tasks that have all run (or been left out by a failure): their values, or
/// a panic with the failure of the first in input order (`on_error = continue`). Each failure
/// already holds its task's index (see [`collected`]).
pub fn unwrap_all<R>(results: impl IntoIterator<Item = Result<R, TaskError>>) -> Vec<R> {
    let mut failure: Option<TaskError> = None;
    let values: Vec<R> = results
        .into_iter()
        .filter_map(|r| match r {
            Ok(value) => Some(value),
            Err(e) => {
                if failure.as_ref().is_none_or(|first| e.index < first.index) {
                    failure = Some(e);
                }
                None
            }
        })
        .collect();
    match failure {
        None => values,
        Some(first) => raise(first),
    }
}

/// Panics with a task's failure, as a [`TaskPanic`] whose message is the task's own: a panic
/// keeps its message, a crash carries the [`TaskError`] that describes it.
pub(crate) fn raise(failure: TaskError) -> ! {
    let index = failure.index;
    panic::resume_unwind(Box::new(TaskPanic {
        index,
        payload: payload(failure),
    }))
}

/// What a [`TaskPanic`] holds for a failure.
pub(crate) fn payload(failure: TaskError) -> Box<dyn Any + Send> {
    match failure.kind {
        TaskErrorKind::Panicked => Box::new(failure.message),
        _ => Box::new(failure),
    }
}

/// An unordered run over outcomes that arrive by other means (a processes run's channel).
#[cfg_attr(not(all(feature = "processes", unix)), allow(dead_code))]
pub(crate) fn unordered_from<R>(
    total: usize,
    outcomes: impl Iterator<Item = Outcome<R>> + Send + 'static,
) -> Unordered<R> {
    Unordered {
        inner: UnorderedInner::Lazy(Box::new(outcomes)),
        received: 0,
        total,
    }
}

/// Unwinds the tasks that were running or queued when another task failed.
struct Cancelled;

/// Where a run's tasks run.
#[derive(Clone, Copy)]
pub(crate) enum Backend {
    #[cfg(feature = "threads")]
    Threads,
    #[cfg(all(feature = "processes", unix))]
    Processes,
    Sequential,
}

impl Backend {
    /// The name `parallel!` takes, and `tracing` records.
    fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "threads")]
            Backend::Threads => "threads",
            #[cfg(all(feature = "processes", unix))]
            Backend::Processes => "processes",
            Backend::Sequential => "sequential",
        }
    }

    /// joblib's name, for its progress lines.
    pub(crate) fn joblib(self) -> &'static str {
        match self {
            #[cfg(feature = "threads")]
            Backend::Threads => "ThreadingBackend",
            #[cfg(all(feature = "processes", unix))]
            Backend::Processes => "ProcessesBackend",
            Backend::Sequential => "SequentialBackend",
        }
    }
}

/// The state of one run: progress, the first failure, the caller's subscriber and the run's
/// `tracing` span.
struct Run {
    progress: Progress,
    cancel: AtomicBool,
    failure: Mutex<Option<TaskPanic>>,
    /// The `tracing` subscriber active where `parallel!` was called (also a scoped one), for
    /// the workers to log to; `None` when there is none to pass on.
    caller: Option<tracing::Dispatch>,
    trace: Trace,
}

impl Run {
    fn new(
        opts: &Options,
        total: Option<usize>,
        workers: usize,
        backend: Backend,
        unordered: bool,
    ) -> Self {
        let caller = tracing::dispatcher::get_default(Clone::clone);
        Run {
            progress: Progress::start(opts, total, workers, backend.joblib()),
            cancel: AtomicBool::new(false),
            failure: Mutex::new(None),
            caller: (!caller.is::<tracing::subscriber::NoSubscriber>()).then_some(caller),
            trace: Trace::start(opts.batch, total, workers, backend, unordered),
        }
    }

    /// Makes the caller's subscriber this thread's default until the guard drops.
    #[cfg_attr(not(feature = "threads"), allow(dead_code))]
    fn enter_caller(&self) -> Option<tracing::dispatcher::DefaultGuard> {
        self.caller.as_ref().map(tracing::dispatcher::set_default)
    }

    /// Opens a batch on a worker: until it drops, the caller's subscriber is the default and
    /// the run's span is entered, so that the tasks' events reach the caller inside the span.
    #[cfg_attr(not(feature = "threads"), allow(dead_code))]
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
    #[cfg_attr(not(feature = "threads"), allow(dead_code))]
    #[inline]
    fn batch_start(&self) {
        if self.cancel.load(Ordering::Relaxed) {
            panic::resume_unwind(Box::new(Cancelled));
        }
    }

    /// Runs one task of `batch`; `COUNT` says whether progress output counts it (a constant,
    /// so that a silent run pays nothing). A panic is recorded and cancels the batches not
    /// started.
    #[inline(always)]
    fn task<T, R, const COUNT: bool>(
        &self,
        batch: &mut impl CountTask,
        index: usize,
        item: T,
        f: impl FnOnce(T) -> R,
    ) -> R {
        match panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
            Ok(value) => {
                if COUNT {
                    self.progress.count_one();
                }
                batch.count();
                value
            }
            Err(payload) => self.fail(index, payload),
        }
    }

    #[cold]
    fn fail(&self, index: usize, payload: Box<dyn Any + Send>) -> ! {
        self.cancel.store(true, Ordering::Relaxed);
        self.trace.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(TaskPanic { index, payload });
        }
        drop(first);
        panic::resume_unwind(Box::new(Cancelled));
    }

    /// Hands back the results, or re-raises the first failure in the caller.
    fn finish<R>(self, outcome: std::thread::Result<Vec<R>>) -> Vec<R> {
        match outcome {
            Ok(results) => {
                self.progress.finish(results.len());
                self.trace.finish(results.len());
                results
            }
            Err(other) => {
                self.progress.abandon();
                let failure = self.failure.into_inner().unwrap_or_else(|e| e.into_inner());
                if let Some(failure) = &failure {
                    self.trace.task_failed(failure.index, failure);
                }
                self.trace.finish(self.trace.done.load(Ordering::Relaxed));
                match failure {
                    Some(failure) => panic::resume_unwind(Box::new(failure)),
                    None => panic::resume_unwind(other),
                }
            }
        }
    }
}

/// The `tracing` side of a run: a `parallel` span around it, and debug events as it starts,
/// as each batch completes, and as it finishes. The events are emitted here, in functions that
/// are not generic, so that each is one callsite whatever the task types.
pub(crate) struct Trace {
    pub(crate) span: tracing::Span,
    start: Instant,
    /// Whether batch events are wanted, asked once a run: only then does a batch read the
    /// clock. Everything else a batch pays is a counter.
    batch_events: bool,
    /// Batches reported so far, which numbers the next.
    batches: AtomicUsize,
    /// Tasks completed, summed a batch at a time (no atomic operation a task).
    done: AtomicUsize,
    /// Tasks that panicked.
    pub(crate) failed: AtomicUsize,
}

impl Trace {
    pub(crate) fn start(
        batch: Batch,
        total: Option<usize>,
        workers: usize,
        backend: Backend,
        unordered: bool,
    ) -> Self {
        let batch_size: &dyn tracing::Value = match &batch {
            Batch::Fixed(b) => b,
            Batch::Auto => &"auto",
        };
        // INFO, the level `#[instrument]` gives a function: a run is an operation the user
        // wrote, and its span is the context of the user's own events in tasks, which are
        // mostly INFO. A span prints no line of its own; the run's events are DEBUG, as a
        // library's should be, so a program logging at INFO gets context and no extra lines.
        let span = tracing::info_span!(
            "parallel",
            backend = backend.name(),
            n_jobs = workers,
            tasks = total,
            batch_size,
            return_as = if unordered { "unordered" } else { "list" },
        );
        span.in_scope(|| tracing::debug!("run started"));
        Trace {
            span,
            start: Instant::now(),
            batch_events: tracing::event_enabled!(tracing::Level::DEBUG),
            batches: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }
    }

    /// Opens a batch, to be closed with [`Trace::end_batch`].
    pub(crate) fn begin_batch(&self) -> BatchClock {
        BatchClock {
            tasks: 0,
            began: self.batch_events.then(Instant::now),
            // A batch that begins while the thread unwinds (a run in a destructor) still
            // reports; one that the unwinding interrupts does not.
            unwinding: self.batch_events && std::thread::panicking(),
        }
    }

    /// A batch that closes itself when dropped, and gives way to the next after `size` tasks.
    fn batch(&self, size: usize) -> BatchScope<'_> {
        BatchScope {
            clock: self.begin_batch(),
            trace: self,
            size,
        }
    }

    /// Counts a completed task of `batch`; once that makes `size`, reports the batch and says
    /// so.
    #[inline(always)]
    fn count(&self, batch: &mut BatchClock, size: usize) -> bool {
        batch.tasks += 1;
        let full = batch.tasks == size;
        if full {
            self.end_batch(batch);
        }
        full
    }

    /// Counts a batch's tasks, and reports it unless a failure cut it short.
    pub(crate) fn end_batch(&self, batch: &BatchClock) {
        if batch.tasks == 0 {
            return;
        }
        self.done.fetch_add(batch.tasks, Ordering::Relaxed);
        let Some(began) = batch.began else { return };
        if !std::thread::panicking() || batch.unwinding {
            let index = self.batches.fetch_add(1, Ordering::Relaxed);
            self.span.in_scope(|| {
                tracing::debug!(
                    batch = index,
                    tasks = batch.tasks,
                    elapsed = ?began.elapsed(),
                    "batch done"
                );
            });
        }
    }

    #[cold]
    pub(crate) fn task_failed(&self, index: usize, failure: &dyn fmt::Display) {
        self.span
            .in_scope(|| tracing::error!(task = index, "{failure}"));
    }

    /// Reports the end of the run: `tasks` completed, and how many failed if any did.
    /// Tasks completed so far, as batches reported them.
    #[cfg_attr(not(all(feature = "processes", unix)), allow(dead_code))]
    pub(crate) fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    pub(crate) fn finish(&self, tasks: usize) {
        let failed = self.failed.load(Ordering::Relaxed);
        self.span.in_scope(|| {
            tracing::debug!(
                tasks,
                failed = (failed > 0).then_some(failed),
                elapsed = ?self.start.elapsed(),
                "run finished"
            );
        });
    }
}

/// A batch as it runs: its tasks so far, and when it began when batch events are wanted.
pub(crate) struct BatchClock {
    pub(crate) tasks: usize,
    began: Option<Instant>,
    unwinding: bool,
}

/// A batch that reports itself when dropped, also when a failure unwinds through it (its
/// completed tasks still count).
struct BatchScope<'a> {
    trace: &'a Trace,
    clock: BatchClock,
    /// Tasks a batch takes before the next begins.
    size: usize,
}

/// A batch that counts the tasks [`Run::task`] completes.
trait CountTask {
    fn count(&mut self);
}

/// On one thread: a new batch begins once this one is full.
impl CountTask for BatchScope<'_> {
    #[inline(always)]
    fn count(&mut self) {
        if self.trace.count(&mut self.clock, self.size) {
            self.clock = self.trace.begin_batch();
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

impl Drop for BatchScope<'_> {
    fn drop(&mut self) {
        self.trace.end_batch(&self.clock);
    }
}

/// A batch on a worker. The fields drop in order: the batch reports itself while the span is
/// entered and the caller's subscriber is the default, then both are left.
#[cfg_attr(not(feature = "threads"), allow(dead_code))]
struct WorkerBatch<'a> {
    batch: BatchScope<'a>,
    _in_span: tracing::span::Entered<'a>,
    _caller: Option<tracing::dispatcher::DefaultGuard>,
}

/// The exact number of tasks, when the iterator tells.
fn exact_len(iter: &impl Iterator) -> Option<usize> {
    match iter.size_hint() {
        (lo, Some(hi)) if lo == hi => Some(lo),
        _ => None,
    }
}

/// The number of tasks a sequential batch takes. With `auto`, the whole run is one batch:
/// on one thread, in order, splitting changes nothing.
fn sequential_batch(opts: &Options) -> usize {
    match opts.batch {
        Batch::Fixed(b) => b,
        Batch::Auto => usize::MAX,
    }
}

/// Runs the tasks one after the other on the calling thread: `backend = sequential`, a single
/// worker, or a build without the `threads` feature.
pub fn run_sequential<I, F, R>(opts: &Options, tasks: I, f: F) -> Vec<R>
where
    I: IntoIterator,
    F: Fn(I::Item) -> R,
{
    let iter = tasks.into_iter();
    let run = Run::new(opts, exact_len(&iter), 1, Backend::Sequential, false);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        run.trace.span.in_scope(|| {
            let mut batch = run.trace.batch(sequential_batch(opts));
            let tasks = iter.enumerate();
            if run.progress.enabled {
                tasks
                    .map(|(i, item)| run.task::<_, _, true>(&mut batch, i, item, &f))
                    .collect()
            } else {
                tasks
                    .map(|(i, item)| run.task::<_, _, false>(&mut batch, i, item, &f))
                    .collect()
            }
        })
    }));
    run.finish(outcome)
}

#[cfg(feature = "threads")]
pub use threads::{run_indexed, run_iter, run_unordered};

#[cfg(feature = "threads")]
mod threads {
    use std::collections::HashMap;
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::atomic::Ordering;
    use std::sync::{Mutex, OnceLock};

    use rayon::prelude::*;

    use super::{Backend, CountTask, Options, Run};

    std::thread_local! {
        /// Set on joblet's own worker threads: a `parallel!` run there is nested.
        static IN_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Whether this thread is one of joblet's workers, running a task.
    pub(super) fn in_worker() -> bool {
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
        let nested = in_worker();
        let workers = if nested {
            rayon::current_num_threads()
        } else {
            opts.workers()
        };
        let run = Run::new(opts, Some(total), workers, Backend::Threads, false);
        let (min, max) = opts.batch_bounds();
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
    pub fn run_unordered<I, F, R>(opts: &Options, tasks: I, f: F) -> super::Unordered<R>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> R + Sync + Send + 'static,
        R: Send + 'static,
    {
        if in_worker() {
            // Consumed inside a worker, background tasks on this pool could wait forever for
            // the worker that waits for them: run lazily, in place, instead.
            return super::run_lazy(opts, tasks.into_iter().collect::<Vec<_>>(), f);
        }
        let items: Vec<I::Item> = tasks.into_iter().collect();
        let total = items.len();
        let workers = opts.workers();
        let run = std::sync::Arc::new(Run::new(opts, Some(total), workers, Backend::Threads, true));
        let (sender, receiver) = std::sync::mpsc::channel();
        let background = run.clone();
        let (min, max) = opts.batch_bounds();
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
                        if run.cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(item)));
                        if outcome.is_err() {
                            run.cancel.store(true, Ordering::Relaxed);
                            run.trace.failed.fetch_add(1, Ordering::Relaxed);
                        } else {
                            run.progress.count_one_if_enabled();
                            batch.count();
                        }
                        if sender.send((i, outcome)).is_err() {
                            run.cancel.store(true, Ordering::Relaxed);
                        }
                    },
                );
            let _caller = run.enter_caller();
            run.trace.finish(run.trace.done.load(Ordering::Relaxed));
            // Only now: the consumer's `next` gives `None` once every sender is gone, so one
            // that drains the results has seen every event of the run by then.
            drop(sender);
        });
        super::Unordered {
            inner: super::UnorderedInner::Background { receiver, run },
            received: 0,
            total,
        }
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
}

/// Results in the order their tasks complete: what `parallel!(return_as = unordered; ...)`
/// returns. A panicking task re-raises as a [`TaskPanic`] from `next`; dropping the iterator
/// cancels the tasks that have not started.
pub struct Unordered<R> {
    inner: UnorderedInner<R>,
    received: usize,
    total: usize,
}

type Outcome<R> = (usize, std::thread::Result<R>);

enum UnorderedInner<R> {
    #[cfg(feature = "threads")]
    Background {
        receiver: std::sync::mpsc::Receiver<Outcome<R>>,
        run: std::sync::Arc<Run>,
    },
    /// Tasks run one by one as results are asked for.
    Lazy(Box<dyn Iterator<Item = Outcome<R>> + Send>),
}

impl<R> Iterator for Unordered<R> {
    type Item = R;

    fn next(&mut self) -> Option<R> {
        let (index, outcome) = match &mut self.inner {
            #[cfg(feature = "threads")]
            UnorderedInner::Background { receiver, .. } => receiver.recv().ok()?,
            UnorderedInner::Lazy(tasks) => tasks.next()?,
        };
        self.received += 1;
        #[cfg(feature = "threads")]
        if let (UnorderedInner::Background { run, .. }, true) =
            (&self.inner, self.received == self.total)
        {
            run.progress.finish(self.total);
        }
        match outcome {
            Ok(value) => Some(value),
            Err(payload) => {
                self.total = self.received;
                panic::resume_unwind(Box::new(TaskPanic { index, payload }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total.saturating_sub(self.received);
        (0, Some(left))
    }
}

impl<R> Drop for Unordered<R> {
    fn drop(&mut self) {
        #[cfg(feature = "threads")]
        if let UnorderedInner::Background { run, .. } = &self.inner {
            run.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs each task when its result is asked for, in input order: the unordered form of the
/// sequential backend, and of every backend without the `threads` feature.
pub fn run_lazy<I, F, R>(opts: &Options, tasks: I, f: F) -> Unordered<R>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    F: Fn(I::Item) -> R + Send + 'static,
    R: 'static,
{
    let iter = tasks.into_iter();
    let total = iter.size_hint().0;
    let lazy = Lazy {
        trace: Trace::start(opts.batch, exact_len(&iter), 1, Backend::Sequential, true),
        tasks: iter.enumerate(),
        f,
        batch_size: sequential_batch(opts),
        batch: None,
        finished: false,
    };
    Unordered {
        inner: UnorderedInner::Lazy(Box::new(lazy)),
        received: 0,
        total,
    }
}

/// The tasks of a lazy run, each run in the run's span as its result is asked for.
struct Lazy<I, F> {
    trace: Trace,
    tasks: std::iter::Enumerate<I>,
    f: F,
    batch_size: usize,
    /// The batch under way; it begins with its first task, so that its time leaves out what
    /// the consumer does before asking for more.
    batch: Option<BatchClock>,
    finished: bool,
}

impl<I, F> Lazy<I, F> {
    /// Reports the last batch and the end of the run, once: when the tasks run out, or when
    /// the consumer drops the iterator before.
    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if let Some(batch) = self.batch.take() {
            self.trace.end_batch(&batch);
        }
        self.trace.finish(self.trace.done.load(Ordering::Relaxed));
    }
}

impl<I, F, R> Iterator for Lazy<I, F>
where
    I: Iterator,
    F: Fn(I::Item) -> R,
{
    type Item = Outcome<R>;

    fn next(&mut self) -> Option<Outcome<R>> {
        let Some((i, item)) = self.tasks.next() else {
            self.finish();
            return None;
        };
        let batch = self.batch.get_or_insert_with(|| self.trace.begin_batch());
        let f = &self.f;
        let outcome = self
            .trace
            .span
            .in_scope(|| panic::catch_unwind(AssertUnwindSafe(|| f(item))));
        if outcome.is_ok() {
            if self.trace.count(batch, self.batch_size) {
                self.batch = None;
            }
        } else {
            self.trace.failed.fetch_add(1, Ordering::Relaxed);
        }
        Some((i, outcome))
    }
}

impl<I, F> Drop for Lazy<I, F> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Without the `threads` feature, the unordered form is the lazy one.
#[cfg(not(feature = "threads"))]
pub fn run_unordered<I, F, R>(opts: &Options, tasks: I, f: F) -> Unordered<R>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    F: Fn(I::Item) -> R + Send + 'static,
    R: 'static,
{
    run_lazy(opts, tasks, f)
}

/// Without the `threads` feature, every run is sequential.
#[cfg(not(feature = "threads"))]
pub fn run_iter<I, F, R>(opts: &Options, tasks: I, f: F) -> Vec<R>
where
    I: IntoIterator,
    F: Fn(I::Item) -> R,
{
    run_sequential(opts, tasks, f)
}

/// Progress output: joblib's `[Parallel(n_jobs=N)]: Done ...` lines on stderr, or a live bar.
pub(crate) struct Progress {
    verbose: u32,
    workers: usize,
    total: Option<usize>,
    batch: usize,
    start: Instant,
    done: AtomicUsize,
    printing: Mutex<()>,
    bar: Option<indicatif::ProgressBar>,
    /// Lines or a bar are shown: tasks are counted.
    pub(crate) enabled: bool,
}

impl Progress {
    pub(crate) fn start(
        opts: &Options,
        total: Option<usize>,
        workers: usize,
        backend: &str,
    ) -> Self {
        let bar = opts.progress.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                total.map(|t| t as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "[Parallel(n_jobs={prefix})] {bar:40} {pos}/{len} tasks | elapsed: {elapsed} | remaining: {eta}",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(workers.to_string());
            bar
        });
        let verbose = if bar.is_some() { 0 } else { opts.verbose };
        let batch = match opts.batch {
            Batch::Fixed(b) => b,
            // joblib reports per batch; with adaptive batches, report about 2 lines per worker
            // early on and fewer as the run goes (the verbosity filter thins them out).
            Batch::Auto => total.map_or(1, |t| (t / (workers * 8)).max(1)),
        };
        let progress = Progress {
            verbose,
            workers,
            total,
            batch,
            start: Instant::now(),
            done: AtomicUsize::new(0),
            printing: Mutex::new(()),
            enabled: verbose > 0 || bar.is_some(),
            bar,
        };
        if verbose > 0 {
            progress.print(&format!(
                "Using backend {backend} with {workers} concurrent workers."
            ));
        }
        progress
    }

    /// Counts a finished task when progress is shown.
    #[cfg_attr(not(feature = "threads"), allow(dead_code))]
    fn count_one_if_enabled(&self) {
        if self.enabled {
            self.count_one();
        }
    }

    /// Counts a finished task, and shows the progress.
    pub(crate) fn count_one(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done % self.batch == 0 && Some(done) != self.total {
            // Lines from several workers must not interleave.
            let _printing = self.printing.lock().unwrap_or_else(|e| e.into_inner());
            if !skip_line(done / self.batch - 1, self.verbose) {
                self.print(&format!(
                    "Done {done:>5} tasks      | elapsed: {}",
                    short_time(self.start.elapsed().as_secs_f64())
                ));
            }
        }
    }

    pub(crate) fn finish(&self, count: usize) {
        if let Some(bar) = &self.bar {
            bar.finish();
        } else if self.verbose > 0 {
            self.print(&format!(
                "Done {count:>5} out of {count:>5} | elapsed: {} finished",
                short_time(self.start.elapsed().as_secs_f64())
            ));
        }
    }

    pub(crate) fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    fn print(&self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[Parallel(n_jobs={})]: {line}", self.workers);
    }
}

/// joblib's `_verbosity_filter`: whether to skip the line of batch `index` at `verbose`.
/// Every batch is reported above 10; below, lines thin out as the square root of the count.
fn skip_line(index: usize, verbose: u32) -> bool {
    if verbose == 0 {
        return true;
    }
    if verbose > 10 || index == 0 {
        return false;
    }
    let scale = 0.5 * f64::from(11 - verbose).powi(2);
    let now = (index as f64 / scale).sqrt();
    let next = ((index + 1) as f64 / scale).sqrt();
    next.floor() == now.floor()
}

/// joblib's `short_format_time`.
fn short_time(secs: f64) -> String {
    if secs > 60.0 {
        format!("{:4.1}min", secs / 60.0)
    } else {
        format!("{secs:5.1}s")
    }
}

/// Picks how a `parallel!` input is run, by autoref specialization on its type: indexed
/// collections (ranges, vectors, slices, arrays) go to rayon as they are; anything else is
/// collected into a vector first.
///
/// ```
/// use joblet_runtime::__private::{Options, Batch, TaskKind, ViaCollect as _, ViaIndexed as _};
///
/// let opts = Options::new(2, Batch::Auto, 0, false);
/// let tasks = (0..10).filter(|x| x % 2 == 0);
/// let kind = (&&TaskKind::of(&tasks)).kind();
/// assert_eq!(kind.run(&opts, tasks, |x| x * 10), vec![0, 20, 40, 60, 80]);
/// ```
pub struct TaskKind<I>(std::marker::PhantomData<fn() -> I>);

impl<I> TaskKind<I> {
    /// The selector for the type of `tasks`.
    pub fn of(_tasks: &I) -> Self {
        TaskKind(std::marker::PhantomData)
    }
}

/// Types a task closure from its input: `Fn(I::Item) -> R`. Typed this way, the body can
/// settle the input's type (`0..n` with `n` untyped becomes `Range<u64>` when the body passes
/// the item to a function taking `u64`) before the input kind is picked.
pub fn task_fn<I, F, R>(_tasks: &I, f: F) -> F
where
    I: IntoIterator,
    F: Fn(I::Item) -> R,
{
    f
}

/// An indexed input.
pub struct Indexed;

/// Any other input: collected first.
pub struct Collected;

/// Selects [`Indexed`]; tried first.
pub trait ViaIndexed {
    /// The kind.
    fn kind(&self) -> Indexed;
}

/// Selects [`Collected`]; tried one dereference later.
pub trait ViaCollect {
    /// The kind.
    fn kind(&self) -> Collected;
}

#[cfg(feature = "threads")]
impl<I: IndexedTasks> ViaIndexed for &TaskKind<I> {
    fn kind(&self) -> Indexed {
        Indexed
    }
}

impl<I> ViaCollect for TaskKind<I> {
    fn kind(&self) -> Collected {
        Collected
    }
}

#[cfg(feature = "threads")]
impl Indexed {
    /// Runs the tasks.
    pub fn run<P, F, R>(self, opts: &Options, tasks: P, f: F) -> Vec<R>
    where
        P: IndexedTasks,
        F: Fn(P::Item) -> R + Sync + Send,
        R: Send,
    {
        tasks.run(opts, f)
    }
}

/// Inputs that run in place, without being collected: vectors, slices, arrays and ranges.
#[cfg(feature = "threads")]
pub trait IndexedTasks: Sized {
    /// What one task receives.
    type Item;
    /// Runs one task per item.
    fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
    where
        F: Fn(Self::Item) -> R + Sync + Send,
        R: Send;
}

#[cfg(feature = "threads")]
macro_rules! indexed_as_is {
    ($([$($gen:tt)*] $ty:ty => $item:ty),* $(,)?) => {$(
        impl<$($gen)*> IndexedTasks for $ty {
            type Item = $item;
            fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
            where
                F: Fn(Self::Item) -> R + Sync + Send,
                R: Send,
            {
                run_indexed(opts, self, f)
            }
        }
    )*};
}

#[cfg(feature = "threads")]
indexed_as_is!(
    [T: Send] Vec<T> => T,
    ['a, T: Sync] &'a [T] => &'a T,
    ['a, T: Sync] &'a Vec<T> => &'a T,
    [T: Send, const N: usize] [T; N] => T,
    ['a, T: Sync, const N: usize] &'a [T; N] => &'a T,
);

/// Ranges of any integer type, run as a `usize` index range mapped to the values (rayon
/// indexes only the ranges whose length always fits a `usize`).
#[cfg(feature = "threads")]
macro_rules! indexed_ranges {
    ($($t:ty),*) => {$(
        impl IndexedTasks for std::ops::Range<$t> {
            type Item = $t;
            fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
            where
                F: Fn($t) -> R + Sync + Send,
                R: Send,
            {
                let len = if self.end > self.start { self.end.abs_diff(self.start) } else { 0 };
                run_range(opts, self.start, len, f)
            }
        }

        impl IndexedTasks for std::ops::RangeInclusive<$t> {
            type Item = $t;
            fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
            where
                F: Fn($t) -> R + Sync + Send,
                R: Send,
            {
                let (start, end) = self.into_inner();
                if end < start {
                    return Vec::new();
                }
                // Widened first: `0..=255u8` has 256 values, more than a `u8` counts.
                let len = (end.abs_diff(start) as u128) + 1;
                run_range(opts, start, len, f)
            }
        }
    )*};
}

#[cfg(feature = "threads")]
indexed_ranges!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

/// Runs `len` tasks on `start`, `start + 1`, ... The offset is added with wrapping arithmetic
/// on the truncated index: the true value is always in the type's range, so the wrap is exact.
#[cfg(feature = "threads")]
fn run_range<T, L, F, R>(opts: &Options, start: T, len: L, f: F) -> Vec<R>
where
    T: WrappingFrom + Send + Sync + Copy,
    L: TryInto<usize>,
    F: Fn(T) -> R + Sync + Send,
    R: Send,
{
    let len: usize = len
        .try_into()
        .unwrap_or_else(|_| panic!("a range of more than usize::MAX tasks"));
    run_indexed(opts, 0..len, move |i| f(start.wrapping_offset(i)))
}

/// `start + i` for a range's element type.
#[cfg(feature = "threads")]
trait WrappingFrom {
    fn wrapping_offset(self, i: usize) -> Self;
}

#[cfg(feature = "threads")]
macro_rules! wrapping_from {
    ($($t:ty),*) => {$(
        impl WrappingFrom for $t {
            #[inline]
            fn wrapping_offset(self, i: usize) -> Self {
                self.wrapping_add(i as $t)
            }
        }
    )*};
}

#[cfg(feature = "threads")]
wrapping_from!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

#[cfg(feature = "threads")]
impl Collected {
    /// Runs the tasks.
    pub fn run<I, F, R>(self, opts: &Options, tasks: I, f: F) -> Vec<R>
    where
        I: IntoIterator,
        I::Item: Send,
        F: Fn(I::Item) -> R + Sync + Send,
        R: Send,
    {
        run_iter(opts, tasks, f)
    }
}

#[cfg(not(feature = "threads"))]
impl Collected {
    /// Runs the tasks, one after the other (this build has no `threads` feature).
    pub fn run<I, F, R>(self, opts: &Options, tasks: I, f: F) -> Vec<R>
    where
        I: IntoIterator,
        F: Fn(I::Item) -> R,
    {
        run_sequential(opts, tasks, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_jobs_follows_joblib() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let w = |n| Options::new(n, Batch::Auto, 0, false).workers();
        assert_eq!(w(3), 3);
        assert_eq!(w(-1), cores);
        assert_eq!(w(-2), (cores - 1).max(1));
        assert_eq!(w(-1000), 1);
        assert!(panic::catch_unwind(|| w(0)).is_err());
    }

    #[test]
    fn the_verbosity_filter_thins_lines_like_joblib() {
        let shown = |v| (0..100).filter(|&i| !skip_line(i, v)).count();
        assert_eq!(shown(0), 0);
        assert_eq!(shown(11), 100);
        assert!(shown(10) < 20 && shown(10) > 5, "{}", shown(10));
        assert!(shown(5) < shown(10));
        assert_eq!(short_time(0.123), "  0.1s");
        assert_eq!(short_time(125.0), " 2.1min");
    }
}
