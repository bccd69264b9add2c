//! `backend = processes`: every task runs in a worker process, a re-launch of the current
//! executable, so that a task that crashes, hangs or exhausts memory costs one worker and not
//! the caller's program, and the caller learns which task it was.
//!
//! The parts that need no operating system (the typing of captures and of the task body, the
//! options) are in `typing` and `settings`, for every build, so that `parallel!` expands alike
//! everywhere. On Unix with the `processes` feature: `call` runs one call (its queue of
//! batches, a driver thread a worker) as a lazy run's backend; `handle` (with `death`) is the
//! parent's handle on a worker; `kept` keeps workers between calls; `channel` and `arrays`
//! are what travels; `worker` is the workers' side. Without them, [`enabled`] fails to compile
//! at the `processes` token with a message naming the feature.

#[cfg(all(feature = "processes", unix))]
mod arrays;
#[cfg(all(feature = "processes", unix))]
mod call;
#[cfg(all(feature = "processes", unix))]
mod channel;
#[cfg(all(feature = "processes", unix))]
mod death;
#[cfg(all(feature = "processes", unix))]
mod handle;
#[cfg(all(feature = "processes", unix))]
mod kept;
mod settings;
mod typing;
#[cfg(all(feature = "processes", unix))]
mod worker;

pub use settings::{ProcessOptions, Timeout, timeout};
pub use typing::{
    ByCopy, ByRef, Capture, Captures, Place, ProcessesBackend, SendableItem, SendableResult,
    body_fn, enabled, items_sendable, result_sendable,
};

use super::results::{Ordered, Unordered};
use super::{OnError, Options, TaskError};

/// Set in a worker's environment by its parent, to the numbers of its three descriptors, the
/// parent's process id and the worker's memory limit. (Read before `main` by the MPI start
/// too, which skips workers.)
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

/// Runs the tasks in worker processes; results come back in input order. A failure is raised
/// in the caller as a panic naming the task (see [`TaskPanic`](super::TaskPanic)): at once
/// with [`OnError::Stop`], after every other task has run with [`OnError::Continue`].
pub fn run_processes<T, K, R>(
    opts: &Options,
    options: ProcessOptions,
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
    #[cfg(not(all(feature = "processes", unix)))]
    {
        let _ = (opts, options, on_error, tasks, captures, body);
        unreachable!("`enabled` keeps `backend = processes` from compiling in this build")
    }
    #[cfg(all(feature = "processes", unix))]
    {
        if worker::inside() {
            return super::unwrap_all(in_place(opts, captures, tasks, body));
        }
        let stop = on_error == OnError::Stop;
        let stream = start(opts, options, stop, tasks, captures, body, INPUT, "list");
        match on_error {
            OnError::Stop => stream
                .collect_all()
                .unwrap_or_else(|(index, failure)| super::failure::raise(index, failure)),
            OnError::Continue => super::unwrap_all(every_outcome(stream)),
        }
    }
}

/// Runs every task in worker processes and returns each one's result or failure, in input
/// order (`on_error = collect`).
pub fn run_processes_collect<T, K, R>(
    opts: &Options,
    options: ProcessOptions,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> Vec<Result<R, TaskError>>
where
    T: IntoIterator<Item: SendableItem>,
    K: Captures,
    R: SendableResult,
{
    #[cfg(not(all(feature = "processes", unix)))]
    {
        let _ = (opts, options, tasks, captures, body);
        unreachable!("`enabled` keeps `backend = processes` from compiling in this build")
    }
    #[cfg(all(feature = "processes", unix))]
    {
        if worker::inside() {
            return in_place(opts, captures, tasks, body);
        }
        every_outcome(start(
            opts, options, false, tasks, captures, body, INPUT, "list",
        ))
    }
}

/// Runs the tasks in worker processes in the background and returns their results as they
/// complete (`return_as = unordered`). The input is read as results are taken; a failure is
/// raised by the iterator's `next`; dropping the iterator stops the run.
pub fn run_processes_unordered<T, K, R>(
    opts: &Options,
    options: ProcessOptions,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> Unordered<R>
where
    T: IntoIterator<Item: SendableItem, IntoIter: Send + 'static>,
    K: Captures,
    R: SendableResult + 'static,
{
    let order = super::stream::Order::Completion;
    Unordered::new(background(
        opts,
        options,
        tasks,
        captures,
        body,
        order,
        "unordered",
    ))
}

/// Runs the tasks in worker processes in the background and returns their results in input
/// order, each as soon as it and those before it are done (`return_as = generator`).
pub fn run_processes_ordered<T, K, R>(
    opts: &Options,
    options: ProcessOptions,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> Ordered<R>
where
    T: IntoIterator<Item: SendableItem, IntoIter: Send + 'static>,
    K: Captures,
    R: SendableResult + 'static,
{
    let order = super::stream::Order::Input { hold: true };
    Ordered::new(background(
        opts,
        options,
        tasks,
        captures,
        body,
        order,
        "generator",
    ))
}

/// The outcomes of a run in the background, taken in `order`; inside a worker, of tasks run
/// there, in place.
fn background<T, K, R>(
    opts: &Options,
    options: ProcessOptions,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
    order: super::stream::Order,
    return_as: &'static str,
) -> Box<dyn super::results::Outcomes<R>>
where
    T: IntoIterator<Item: SendableItem, IntoIter: Send + 'static>,
    K: Captures,
    R: SendableResult + 'static,
{
    #[cfg(not(all(feature = "processes", unix)))]
    {
        let _ = (opts, options, tasks, captures, body, order, return_as);
        unreachable!("`enabled` keeps `backend = processes` from compiling in this build")
    }
    #[cfg(all(feature = "processes", unix))]
    {
        if worker::inside() {
            return Box::new(computed(in_place(opts, captures, tasks, body)));
        }
        let stream = start(opts, options, true, tasks, captures, body, order, return_as);
        Box::new(stream)
    }
}

/// The list form's order: results kept in input order, a batch out of the window once done.
#[cfg(all(feature = "processes", unix))]
const INPUT: super::stream::Order = super::stream::Order::Input { hold: false };

/// A call's lazy run: its captures serialized (their large arrays shared), its workers'
/// settings, and its input, read as the run goes.
#[cfg(all(feature = "processes", unix))]
#[allow(clippy::too_many_arguments)]
fn start<T, K, R>(
    opts: &Options,
    options: ProcessOptions,
    stop: bool,
    tasks: T,
    captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
    order: super::stream::Order,
    return_as: &'static str,
) -> super::stream::Stream<T::IntoIter, R, call::Processes<R>>
where
    T: IntoIterator<Item: SendableItem>,
    K: Captures,
    R: SendableResult,
{
    assert!(
        std::env::var_os(WORKER_ENV).is_none(),
        "a joblet worker reached `main`: the executable's constructors did not run"
    );
    let iter = tasks.into_iter();
    let workers = opts.workers();
    let (mut bytes, mut ends) = (Vec::new(), Vec::new());
    let shared = arrays::encode(
        std::slice::from_ref(captures),
        options.max_nbytes,
        &mut bytes,
        &mut ends,
    )
    .unwrap_or_else(|(_, e)| {
        panic!("`parallel!(backend = processes)` cannot serialize what its body captures: {e}")
    });
    let total = super::sequential::exact_len(&iter);
    let run = super::run::Run::new(
        opts,
        total,
        workers,
        super::options::Backend::Processes,
        return_as,
    );
    let settings = handle::Settings {
        max_memory: options.max_memory,
        threads: (super::cpu_count() / workers).max(1),
    };
    let routine = worker::Routine::of(body);
    let call = call::Call::new(
        run,
        routine,
        (bytes, shared),
        settings,
        &options,
        workers,
        stop,
    )
    .unwrap_or_else(|e| {
        panic!("`parallel!(backend = processes)` cannot start a worker process: {e}")
    });
    let backend = call::Processes::new(call, options.max_nbytes);
    super::stream::Stream::new(opts, workers, iter, backend, order, stop)
}

/// Every outcome of a run that does not stop at a failure, each failure as its task's record.
#[cfg(all(feature = "processes", unix))]
fn every_outcome<I, R, B>(mut stream: super::stream::Stream<I, R, B>) -> Vec<Result<R, TaskError>>
where
    I: Iterator,
    B: super::stream::Backend<I::Item, R>,
{
    let mut outcomes = Vec::new();
    while let Some((index, outcome)) = stream.next_outcome() {
        outcomes.push(outcome.map_err(|failure| failure.into_error(index)));
    }
    outcomes
}

/// Runs the tasks here, one after the other, each under `catch_unwind`: a
/// `parallel!(backend = processes)` inside a worker's task, as joblib's nested runs do (one
/// level of processes, without workers starting workers).
#[cfg(all(feature = "processes", unix))]
fn in_place<T, K, R>(
    opts: &Options,
    captures: &K,
    tasks: T,
    body: fn(&K::Owned, T::Item) -> R,
) -> Vec<Result<R, TaskError>>
where
    T: IntoIterator,
    K: Captures,
{
    // Owned copies, as a worker would receive them.
    let captures: K::Owned = postcard::to_stdvec(captures)
        .and_then(|bytes| postcard::from_bytes(&bytes))
        .unwrap_or_else(|e| {
            panic!("`parallel!(backend = processes)` cannot copy what its body captures: {e}")
        });
    let run = super::run_sequential(opts, tasks, |item| super::catch(|| body(&captures, item)));
    super::collected(run)
}

/// The outcomes of tasks run in place, as an unordered or ordered run hands them out.
#[cfg(all(feature = "processes", unix))]
fn computed<R: Send>(outcomes: Vec<Result<R, TaskError>>) -> super::results::Computed<R> {
    let outcomes = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| (i, outcome.map_err(super::failure::Failure::Failed)));
    super::results::Computed::new(outcomes.collect())
}
