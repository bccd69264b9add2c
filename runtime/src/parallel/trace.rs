//! The `tracing` side of a run, whatever its backend: its span, and its events as it starts,
//! as each batch completes and as it finishes.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::options::{Backend, Batch};

/// The target of a run's span and events: the module path `parallel!`'s documentation gives
/// for them, whichever file emits them.
const TARGET: &str = "joblet_runtime::parallel";

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
        return_as: &'static str,
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
            target: TARGET,
            "parallel",
            backend = backend.name(),
            n_jobs = workers,
            tasks = total,
            batch_size,
            return_as,
        );
        span.in_scope(|| tracing::debug!(target: TARGET, "run started"));
        Trace {
            span,
            start: Instant::now(),
            batch_events: tracing::event_enabled!(target: TARGET, tracing::Level::DEBUG),
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
    pub(crate) fn batch(&self, size: usize) -> BatchScope<'_> {
        BatchScope {
            clock: self.begin_batch(),
            trace: self,
            size,
        }
    }

    /// Counts a completed task of `batch`; once that makes `size`, reports the batch and says
    /// so.
    #[inline(always)]
    pub(crate) fn count(&self, batch: &mut BatchClock, size: usize) -> bool {
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
                    target: TARGET,
                    batch = index,
                    tasks = batch.tasks,
                    elapsed = ?began.elapsed(),
                    "batch done"
                );
            });
        }
    }

    /// Counts the tasks a failure cut a batch short after; the batch is not reported.
    #[cfg(feature = "threads")]
    pub(crate) fn cut_short(&self, tasks: usize) {
        self.done.fetch_add(tasks, Ordering::Relaxed);
    }

    #[cold]
    pub(crate) fn task_failed(&self, index: usize, failure: &dyn fmt::Display) {
        self.span
            .in_scope(|| tracing::error!(target: TARGET, task = index, "{failure}"));
    }

    /// Tasks completed so far, as batches reported them.
    pub(crate) fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Reports the end of the run: `tasks` completed, and how many failed if any did.
    pub(crate) fn finish(&self, tasks: usize) {
        let failed = self.failed.load(Ordering::Relaxed);
        self.span.in_scope(|| {
            tracing::debug!(
                target: TARGET,
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
pub(crate) struct BatchScope<'a> {
    trace: &'a Trace,
    pub(crate) clock: BatchClock,
    /// Tasks a batch takes before the next begins.
    size: usize,
}

impl BatchScope<'_> {
    /// Counts a completed task; a new batch begins once this one is full.
    #[inline(always)]
    pub(crate) fn count(&mut self) {
        if self.trace.count(&mut self.clock, self.size) {
            self.clock = self.trace.begin_batch();
        }
    }
}

impl Drop for BatchScope<'_> {
    fn drop(&mut self) {
        self.trace.end_batch(&self.clock);
    }
}
