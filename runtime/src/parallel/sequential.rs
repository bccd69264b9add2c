//! The sequential backend: tasks one after the other on the calling thread (`backend =
//! sequential`, and every run of a build without the `threads` feature), and the lazy form of
//! `return_as = unordered` and `generator`, whose tasks run as their results are asked for.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use super::failure::{Failure, Payload};
use super::options::{Backend, Options};
use super::results::{Ordered, Outcomes, Unordered};
use super::run::Run;
use super::stream::Outcome;
use super::trace::{BatchClock, Trace};

/// The exact number of tasks, when the iterator tells.
pub(crate) fn exact_len(iter: &impl Iterator) -> Option<usize> {
    match iter.size_hint() {
        (lo, Some(hi)) if lo == hi => Some(lo),
        _ => None,
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
    let run = Run::new(opts, exact_len(&iter), 1, Backend::Sequential, "list");
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        run.trace.span.in_scope(|| {
            let mut batch = run.trace.batch(opts.batch.sequential());
            let tasks = iter.enumerate();
            if run.progress.enabled {
                tasks
                    .map(|(i, item)| {
                        let value = run.task::<_, _, true>(i, item, &f);
                        batch.count();
                        value
                    })
                    .collect()
            } else {
                tasks
                    .map(|(i, item)| {
                        let value = run.task::<_, _, false>(i, item, &f);
                        batch.count();
                        value
                    })
                    .collect()
            }
        })
    }));
    run.finish(outcome)
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
    Unordered::new(Box::new(lazy(opts, tasks, f, "unordered")))
}

/// Runs each task when its result is asked for, in input order: `return_as = generator` on
/// the sequential backend, and on every backend without the `threads` feature.
pub fn run_lazy_ordered<I, F, R>(opts: &Options, tasks: I, f: F) -> Ordered<R>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    F: Fn(I::Item) -> R + Send + 'static,
    R: 'static,
{
    Ordered::new(Box::new(lazy(opts, tasks, f, "generator")))
}

fn lazy<I, F>(opts: &Options, tasks: I, f: F, return_as: &'static str) -> Lazy<I::IntoIter, F>
where
    I: IntoIterator,
{
    let iter = tasks.into_iter();
    let total = exact_len(&iter);
    Lazy {
        trace: Trace::start(opts.batch, total, 1, Backend::Sequential, return_as),
        tasks: iter.enumerate(),
        f,
        batch_size: opts.batch.sequential(),
        batch: None,
        finished: false,
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
        self.trace.finish(self.trace.done());
    }
}

impl<I, F, R> Outcomes<R> for Lazy<I, F>
where
    I: Iterator + Send,
    F: Fn(I::Item) -> R + Send,
{
    fn next_outcome(&mut self) -> Option<(usize, Outcome<R>)> {
        if self.finished {
            return None;
        }
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
        match outcome {
            Ok(value) => {
                if self.trace.count(batch, self.batch_size) {
                    self.batch = None;
                }
                Some((i, Ok(value)))
            }
            Err(payload) => {
                self.trace.failed.fetch_add(1, Ordering::Relaxed);
                let failure = Failure::Panicked(Payload::new(payload));
                self.trace.task_failed(i, &failure.describe(i));
                self.finish();
                Some((i, Err(failure)))
            }
        }
    }

    fn left(&self) -> Option<usize> {
        exact_len(&self.tasks)
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

/// Without the `threads` feature, the generator form is the lazy one.
#[cfg(not(feature = "threads"))]
pub fn run_ordered<I, F, R>(opts: &Options, tasks: I, f: F) -> Ordered<R>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    F: Fn(I::Item) -> R + Send + 'static,
    R: 'static,
{
    run_lazy_ordered(opts, tasks, f)
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
