//! `Unordered`, the iterator `return_as = unordered` returns: results as their tasks
//! complete, from tasks in the background or run as results are asked for.

use std::panic;
#[cfg(feature = "threads")]
use std::sync::Arc;
#[cfg(feature = "threads")]
use std::sync::atomic::Ordering;
#[cfg(feature = "threads")]
use std::sync::mpsc::Receiver;

use super::failure::TaskPanic;
#[cfg(feature = "threads")]
use super::run::Run;

/// Results in the order their tasks complete: what `parallel!(return_as = unordered; ...)`
/// returns. A panicking task re-raises as a [`TaskPanic`] from `next`; dropping the iterator
/// cancels the tasks that have not started.
pub struct Unordered<R> {
    inner: UnorderedInner<R>,
    received: usize,
    total: usize,
}

/// A task's index and how it ended.
pub(crate) type Outcome<R> = (usize, std::thread::Result<R>);

enum UnorderedInner<R> {
    #[cfg(feature = "threads")]
    Background {
        receiver: Receiver<Outcome<R>>,
        run: Arc<Run>,
    },
    /// Tasks run one by one as results are asked for.
    Lazy(Box<dyn Iterator<Item = Outcome<R>> + Send>),
}

impl<R> Unordered<R> {
    /// The results of `total` tasks that run in the background, sent as they complete.
    #[cfg(feature = "threads")]
    pub(crate) fn background(total: usize, receiver: Receiver<Outcome<R>>, run: Arc<Run>) -> Self {
        Unordered {
            inner: UnorderedInner::Background { receiver, run },
            received: 0,
            total,
        }
    }

    /// The results of `total` tasks, each taken from `outcomes` as it is asked for: tasks run
    /// one by one then, or outcomes that arrive by other means (a processes run's channel).
    pub(crate) fn lazy(
        total: usize,
        outcomes: impl Iterator<Item = Outcome<R>> + Send + 'static,
    ) -> Self {
        Unordered {
            inner: UnorderedInner::Lazy(Box::new(outcomes)),
            received: 0,
            total,
        }
    }
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
                panic::resume_unwind(Box::new(TaskPanic::new(index, payload)))
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
            run.stopping.store(true, Ordering::Relaxed);
        }
    }
}
