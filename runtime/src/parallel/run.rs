//! A run's state, whatever its backend: what every backend's run keeps, and how a task that
//! panics on threads or on the calling thread stops the run.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::failure::{Failure, Payload, raise};
use super::options::{Backend, Options};
use super::progress::Progress;
use super::trace::Trace;

/// Unwinds the tasks that were running or queued when a task failed: from the failed task,
/// with its index, and from each batch that would have started after it.
pub(crate) struct Cancelled {
    // Read by the threads backend's batches only.
    #[cfg_attr(not(feature = "threads"), allow(dead_code))]
    failed: Option<usize>,
}

impl Cancelled {
    /// Unwinds a batch that has not started.
    #[cfg(feature = "threads")]
    pub(crate) fn before_start() -> Self {
        Cancelled { failed: None }
    }

    /// The index of the failed task that `payload` unwinds from, if it is one.
    #[cfg(feature = "threads")]
    pub(crate) fn at(payload: &(dyn Any + Send)) -> Option<usize> {
        payload.downcast_ref::<Cancelled>()?.failed
    }
}

/// The state of one run, on any backend: its progress output and its `tracing` side, whether
/// it is stopping, its first failure, and the caller's subscriber for the threads that run
/// its tasks.
pub(crate) struct Run {
    pub(crate) progress: Progress,
    /// Set once no batch may start: a task failed (and the run stops at a failure), or the
    /// consumer of an unordered run went away.
    pub(crate) stopping: AtomicBool,
    /// The first task that failed, and its payload.
    failure: Mutex<Option<(usize, Payload)>>,
    /// The `tracing` subscriber active where `parallel!` was called (also a scoped one), for
    /// the workers to log to; `None` when there is none to pass on. (A build with neither
    /// threads nor processes runs every task on the calling thread.)
    #[cfg(any(feature = "threads", all(feature = "processes", unix)))]
    caller: Option<tracing::Dispatch>,
    pub(crate) trace: Trace,
}

impl Run {
    pub(crate) fn new(
        opts: &Options,
        total: Option<usize>,
        workers: usize,
        backend: Backend,
        return_as: &'static str,
    ) -> Self {
        Run {
            progress: Progress::start(opts, total, workers, backend),
            stopping: AtomicBool::new(false),
            failure: Mutex::new(None),
            #[cfg(any(feature = "threads", all(feature = "processes", unix)))]
            caller: {
                let caller = tracing::dispatcher::get_default(Clone::clone);
                (!caller.is::<tracing::subscriber::NoSubscriber>()).then_some(caller)
            },
            trace: Trace::start(opts.batch, total, workers, backend, return_as),
        }
    }

    /// Makes the caller's subscriber this thread's default until the guard drops.
    #[cfg(any(feature = "threads", all(feature = "processes", unix)))]
    pub(crate) fn enter_caller(&self) -> Option<tracing::dispatcher::DefaultGuard> {
        self.caller.as_ref().map(tracing::dispatcher::set_default)
    }

    /// Runs task `index`; `COUNT` says whether progress output counts it (a constant, so that
    /// a silent run pays nothing). A panic is recorded, cancels the batches not started, and
    /// unwinds the task's batch with [`Cancelled`].
    #[inline(always)]
    pub(crate) fn task<T, R, const COUNT: bool>(
        &self,
        index: usize,
        item: T,
        f: impl FnOnce(T) -> R,
    ) -> R {
        match panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
            Ok(value) => {
                if COUNT {
                    self.progress.count_one();
                }
                value
            }
            Err(payload) => self.fail(index, payload),
        }
    }

    #[cold]
    fn fail(&self, index: usize, payload: Box<dyn Any + Send>) -> ! {
        self.stopping.store(true, Ordering::Relaxed);
        self.trace.failed.fetch_add(1, Ordering::Relaxed);
        let payload = Payload::new(payload);
        let mut first = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some((index, payload));
        } else {
            drop(first);
            // A later failure's payload, dropped before unwinding (and safely: see `Payload`).
            drop(payload);
        }
        panic::resume_unwind(Box::new(Cancelled {
            failed: Some(index),
        }));
    }

    /// Hands back the results, or re-raises the first failure in the caller.
    pub(crate) fn finish<R>(self, outcome: std::thread::Result<Vec<R>>) -> Vec<R> {
        match outcome {
            Ok(results) => {
                self.progress.finish(results.len());
                self.trace.finish(results.len());
                results
            }
            Err(other) => {
                let failure = self
                    .failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match failure {
                    Some((index, payload)) => {
                        drop(other);
                        self.failed(index, Failure::Panicked(payload))
                    }
                    None => {
                        self.progress.abandon();
                        self.trace.finish(self.trace.done());
                        panic::resume_unwind(other)
                    }
                }
            }
        }
    }

    /// Ends a run that failed at task `index`: reports it, and raises it in the caller.
    #[cold]
    pub(crate) fn failed(&self, index: usize, failure: Failure) -> ! {
        self.progress.abandon();
        self.trace.task_failed(index, &failure.describe(index));
        self.trace.finish(self.trace.done());
        raise(index, failure)
    }
}
