//! `backend = processes`: every task runs in a worker process, a re-launch of the current
//! executable, so that a task that crashes, hangs or exhausts memory costs one worker and not
//! the caller's program, and the caller learns which task it was.
//!
//! The parts that need no operating system (the typing of captures and of the task body, the
//! options) are here for every build, so that `parallel!` expands alike everywhere; the pool,
//! the parent's handle on each worker and the workers' side are in `pool`, `handle` (with
//! `death`) and `worker`, on Unix with the `processes` feature. Without
//! them, [`enabled`] fails to compile at the `processes` token with a message naming the
//! feature.

#[cfg(all(feature = "processes", unix))]
mod death;
#[cfg(all(feature = "processes", unix))]
mod handle;
#[cfg(all(feature = "processes", unix))]
mod pool;
#[cfg(all(feature = "processes", unix))]
mod worker;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[cfg(all(feature = "processes", unix))]
use super::failure::payload;
use super::{OnError, Options, TaskError, Unordered};

/// Set in a worker's environment by its parent, to the numbers of its three descriptors and
/// the parent's process id. (Read before `main` by the MPI start too, which skips workers.)
#[cfg(any(all(feature = "processes", unix), feature = "mpi"))]
pub(crate) const WORKER_ENV: &str = "JOBLET_WORKER";

/// Whether this process is a worker of the processes backend (which the MPI start skips).
#[cfg(feature = "mpi")]
pub(crate) fn is_worker_process() -> bool {
    #[cfg(all(feature = "processes", unix))]
    return worker::inside();
    #[cfg(not(all(feature = "processes", unix)))]
    false
}

/// How tasks are confined: `timeout` and `max_memory`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Isolation {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_memory: Option<u64>,
}

impl Isolation {
    /// No limits.
    pub fn new() -> Self {
        Isolation::default()
    }

    /// A task running longer than `limit` is stopped: its worker is killed and replaced.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// A worker's address space is capped at `bytes` (`RLIMIT_AS`): a task that allocates
    /// past it fails, and its worker is replaced.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }
}

/// A `timeout`: a [`Duration`], or seconds as a number.
pub trait Timeout {
    /// The duration.
    fn duration(self) -> Duration;
}

impl Timeout for Duration {
    fn duration(self) -> Duration {
        self
    }
}

impl Timeout for f64 {
    fn duration(self) -> Duration {
        Duration::try_from_secs_f64(self).unwrap_or_else(|_| {
            panic!("`timeout = {self}` is not a duration: give a positive number of seconds or a `Duration`")
        })
    }
}

macro_rules! timeout_in_seconds {
    ($($t:ty),*) => {$(
        impl Timeout for $t {
            fn duration(self) -> Duration {
                match u64::try_from(self) {
                    Ok(secs) => Duration::from_secs(secs),
                    Err(_) => panic!("`timeout = {self}` is not a duration: give a positive number of seconds or a `Duration`"),
                }
            }
        }
    )*};
}
timeout_in_seconds!(i32, i64, u32, u64, usize);

/// The `timeout` option's value as a [`Duration`].
pub fn timeout(limit: impl Timeout) -> Duration {
    limit.duration()
}

/// What a `parallel!` body captures, as the macro passes it: `(&a, (&b, ()))`, a list of
/// references to the captured variables. `Owned` is the same list of values, which a worker
/// deserializes.
pub trait Capture {
    /// The captured values, owned.
    type Owned;
}

impl Capture for () {
    type Owned = ();
}

impl<A> Capture for &A {
    type Owned = A;
}

impl<H: Capture, T: Capture> Capture for (H, T) {
    type Owned = (H::Owned, T::Owned);
}

/// What a body captures, when it can travel to a worker: each variable was checked where the
/// body uses it, with a message naming it.
#[diagnostic::on_unimplemented(
    message = "`parallel!(backend = processes)` cannot send what its body captures to its workers",
    label = "a captured variable cannot be sent",
    note = "the errors at each captured variable say which, and why"
)]
pub trait Captures: Capture<Owned: DeserializeOwned> + Serialize {}

impl<K: Capture<Owned: DeserializeOwned> + Serialize> Captures for K {}

/// A captured value inside the body, as the body sees it: a copy when its type is `Copy`,
/// as in a closure, else a reference (a body on threads can only borrow it either way).
///
/// ```
/// use joblet_runtime::__private::{ByCopy as _, ByRef as _, Place};
///
/// let (n, name) = (3u64, String::from("x"));
/// let copied: u64 = (&&Place(&n)).get();
/// let borrowed: &String = (&&Place(&name)).get();
/// assert_eq!((copied, borrowed.as_str()), (3, "x"));
/// ```
pub struct Place<'a, T>(pub &'a T);

/// Selects a copy of a `Copy` capture; tried first.
pub trait ByCopy<T> {
    /// The value.
    fn get(&self) -> T;
}

/// Selects a reference to any other capture.
pub trait ByRef<'a, T> {
    /// The value.
    fn get(&self) -> &'a T;
}

impl<T: Copy> ByCopy<T> for &Place<'_, T> {
    fn get(&self) -> T {
        *self.0
    }
}

impl<'a, T> ByRef<'a, T> for Place<'a, T> {
    fn get(&self) -> &'a T {
        self.0
    }
}

/// Types a task body as a function of the captured values and one item, so that the closure
/// the macro writes (which captures nothing: it rebinds every captured name from its first
/// argument) becomes a function pointer, an address a worker can call.
pub fn body_fn<T, K, R>(
    _tasks: &T,
    _captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> fn(&K::Owned, T::Item) -> R
where
    T: IntoIterator,
    K: Capture,
{
    body
}

/// Fails to compile, at the `processes` token, in a build without the backend.
pub fn enabled<B: ProcessesBackend>() {}

/// Implemented in builds with the processes backend.
#[diagnostic::on_unimplemented(
    message = "`backend = processes` needs joblet's Cargo feature `processes`, on Unix",
    label = "this backend is not in this build",
    note = "enable it with `joblet = {{ version = \"...\", features = [\"processes\"] }}`, or use `backend = threads`"
)]
pub trait ProcessesBackend {}

#[cfg(all(feature = "processes", unix))]
impl ProcessesBackend for () {}

/// Runs the tasks in worker processes; results come back in input order. A failure is raised
/// in the caller as a [`TaskPanic`](super::TaskPanic) naming the task: at once with
/// [`OnError::Stop`], after every other task has run with [`OnError::Continue`].
pub fn run_processes<T, K, R>(
    opts: &Options,
    isolation: Isolation,
    on_error: OnError,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> Vec<R>
where
    T: IntoIterator<Item: SendableItem>,
    K: Captures,
    R: SendableResult,
{
    let stop = on_error == OnError::Stop;
    // `None`: a task that a failure kept from running.
    let outcomes = run(opts, isolation, stop, tasks, captures, body);
    super::unwrap_all(outcomes.into_iter().flatten())
}

/// Runs every task in worker processes and returns each one's result or failure, in input
/// order (`on_error = collect`).
pub fn run_processes_collect<T, K, R>(
    opts: &Options,
    isolation: Isolation,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> Vec<Result<R, TaskError>>
where
    T: IntoIterator<Item: SendableItem>,
    K: Captures,
    R: SendableResult,
{
    run(opts, isolation, false, tasks, captures, body)
        .into_iter()
        .map(|outcome| outcome.expect("every task runs when none stops the run"))
        .collect()
}

fn run<T, K, R>(
    opts: &Options,
    isolation: Isolation,
    stop: bool,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> Vec<Option<Result<R, TaskError>>>
where
    T: IntoIterator<Item: SendableItem>,
    K: Captures,
    R: SendableResult,
{
    #[cfg(not(all(feature = "processes", unix)))]
    {
        let _ = (opts, isolation, stop, tasks, captures, body);
        unreachable!("`enabled` keeps `backend = processes` from compiling in this build")
    }
    #[cfg(all(feature = "processes", unix))]
    {
        let captures = serialize_captures(captures);
        if worker::inside() {
            return in_place(opts, &captures, tasks, body)
                .into_iter()
                .map(Some)
                .collect();
        }
        let items = serialize_items(tasks);
        let results = std::sync::Mutex::new((0..items.count()).map(|_| None).collect::<Vec<_>>());
        let deliver = |first: usize, outcomes: Vec<Result<R, TaskError>>| {
            let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
            for (slot, outcome) in results[first..].iter_mut().zip(outcomes) {
                *slot = Some(outcome);
            }
            true
        };
        let routine = worker::Routine::of(body);
        if let Err(e) = pool::run(opts, isolation, stop, &items, &captures, routine, deliver) {
            panic!("`parallel!(backend = processes)` cannot start a worker process: {e}");
        }
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the tasks here, one after the other, each under `catch_unwind`: a
/// `parallel!(backend = processes)` inside a worker's task, as joblib's nested runs do (one
/// level of processes, without workers starting workers).
#[cfg(all(feature = "processes", unix))]
fn in_place<T, C, R>(
    opts: &Options,
    captures: &[u8],
    tasks: T,
    body: fn(&C, T::Item) -> R,
) -> Vec<Result<R, TaskError>>
where
    T: IntoIterator,
    C: DeserializeOwned,
{
    let captures: C = postcard::from_bytes(captures).unwrap_or_else(|e| {
        panic!("`parallel!(backend = processes)` cannot deserialize what its body captures: {e}")
    });
    let run = super::run_sequential(opts, tasks, |item| super::catch(|| body(&captures, item)));
    super::collected(run)
}

#[cfg(all(feature = "processes", unix))]
fn serialize_captures<K: Captures>(captures: &K) -> Vec<u8> {
    postcard::to_stdvec(captures).unwrap_or_else(|e| {
        panic!("`parallel!(backend = processes)` cannot serialize what its body captures: {e}")
    })
}

#[cfg(all(feature = "processes", unix))]
fn serialize_items<I: Serialize>(tasks: impl IntoIterator<Item = I>) -> pool::Items {
    pool::Items::new(tasks).unwrap_or_else(|(i, e)| {
        panic!("`parallel!(backend = processes)` cannot serialize the input of task {i}: {e}")
    })
}

/// Starts the tasks in worker processes in the background and returns their results as they
/// complete (`return_as = unordered`). A failure is raised by the iterator's `next` as it is
/// reached; dropping the iterator stops the run.
pub fn run_processes_unordered<T, K, R>(
    opts: &Options,
    isolation: Isolation,
    on_error: OnError,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> Unordered<R>
where
    T: IntoIterator<Item: SendableItem>,
    K: Captures,
    K::Owned: 'static,
    R: SendableResult + 'static,
{
    #[cfg(not(all(feature = "processes", unix)))]
    {
        let _ = (opts, isolation, on_error, tasks, captures, body);
        unreachable!("`enabled` keeps `backend = processes` from compiling in this build")
    }
    #[cfg(all(feature = "processes", unix))]
    {
        let captures = serialize_captures(captures);
        if worker::inside() {
            let outcomes = in_place(opts, &captures, tasks, body);
            let total = outcomes.len();
            let outcomes: Vec<_> = outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| (i, outcome.map_err(payload)))
                .collect();
            return Unordered::lazy(total, outcomes.into_iter());
        }
        let items = serialize_items(tasks);
        let total = items.count();
        let (sender, receiver) = std::sync::mpsc::channel();
        let (opts, routine) = (opts.clone(), worker::Routine::of(body));
        let caller = tracing::dispatcher::get_default(Clone::clone);
        let background = move || {
            let deliver = |first: usize, outcomes: Vec<Result<R, TaskError>>| {
                outcomes.into_iter().enumerate().all(|(i, outcome)| {
                    let outcome = outcome.map_err(payload);
                    sender.send(Ok((first + i, outcome))).is_ok()
                })
            };
            let stop = on_error == OnError::Stop;
            if let Err(e) = pool::run(&opts, isolation, stop, &items, &captures, routine, deliver) {
                let _ = sender.send(Err(format!(
                    "`parallel!(backend = processes)` cannot start a worker process: {e}"
                )));
            }
        };
        std::thread::Builder::new()
            .name("joblet-unordered".into())
            .spawn(move || tracing::dispatcher::with_default(&caller, background))
            .expect("cannot start the thread of an unordered run");
        let outcomes = receiver.into_iter().map(|message| match message {
            Ok(outcome) => outcome,
            Err(broken) => panic!("{broken}"),
        });
        Unordered::lazy(total, outcomes)
    }
}

/// Checks, at the tasks, that their items can travel to a worker.
pub fn items_sendable<T>(_tasks: &T)
where
    T: IntoIterator,
    T::Item: SendableItem,
{
}

/// Checks, at the body, that its result can travel back from a worker.
pub fn result_sendable<C, I, R: SendableResult>(_body: &fn(&C, I) -> R) {}

/// An item that can be sent to a worker: `Serialize + DeserializeOwned`.
#[diagnostic::on_unimplemented(
    message = "`parallel!(backend = processes)` sends each item to a worker process, but `{Self}` cannot be sent: it must implement `Serialize` and `DeserializeOwned`",
    label = "the items of these tasks cannot be sent",
    note = "iterate over owned values that implement both (a reference such as `&T` cannot be deserialized in a worker: iterate over `xs.iter().cloned()`, or over indices)"
)]
pub trait SendableItem: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> SendableItem for T {}

/// A result that can be sent back from a worker: `Serialize + DeserializeOwned + Send`.
#[diagnostic::on_unimplemented(
    message = "`parallel!(backend = processes)` sends each result back from a worker process, but `{Self}` cannot be sent: it must implement `Serialize`, `DeserializeOwned` and `Send`",
    label = "this body's result cannot be sent",
    note = "return an owned value whose type implements them, or derive `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait SendableResult: Serialize + DeserializeOwned + Send {}

impl<T: Serialize + DeserializeOwned + Send> SendableResult for T {}
