//! The iterators that `return_as` gives: [`Ordered`] (`generator`), results in input order,
//! and [`Unordered`], results as their tasks complete. Both take them from a lazy run, on any
//! backend, and raise a task's failure in the consumer.

use super::failure::raise;
use super::stream::{Backend, Outcome, Stream};

/// A source of a run's outcomes, whatever its backend: a [`Stream`](super::stream::Stream), or
/// tasks run one by one as their results are asked for.
pub(crate) trait Outcomes<R>: Send {
    /// The next outcome, with its task's index; a failure is the last.
    fn next_outcome(&mut self) -> Option<(usize, Outcome<R>)>;
    /// Tasks whose outcomes are still to come, when the input tells.
    fn left(&self) -> Option<usize>;
}

/// What both iterators hold: the outcomes, and whether a failure ended them.
struct Results<R> {
    outcomes: Box<dyn Outcomes<R>>,
    failed: bool,
}

impl<R> Results<R> {
    fn next(&mut self) -> Option<R> {
        if self.failed {
            return None;
        }
        match self.outcomes.next_outcome()? {
            (_, Ok(value)) => Some(value),
            (index, Err(failure)) => {
                self.failed = true;
                raise(index, failure)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.failed {
            true => (0, Some(0)),
            false => (0, self.outcomes.left()),
        }
    }
}

/// Results in input order, each as soon as it and every one before it are done: what
/// `parallel!(return_as = generator; ...)` returns, joblib's `return_as="generator"`.
///
/// The input is read as results are taken: at most `pre_dispatch` batches are dispatched
/// ahead of the result taken last, so an endless iterator, or the lines of a file larger
/// than memory, can be the input. A task's failure is raised by `next` (as a panic naming the
/// task, see [`TaskPanic`](crate::TaskPanic)) as soon as it arrives; dropping the iterator
/// stops the run: no batch starts after it.
///
/// ```
/// use joblet_runtime::__private::{Batch, Options, run_lazy_ordered};
///
/// let opts = Options::new(Some(1), Batch::Auto, 0, false);
/// let mut squares = run_lazy_ordered(&opts, 0u64.., |i| i * i);
/// assert_eq!(squares.next(), Some(0));
/// assert_eq!(squares.nth(9), Some(100));
/// ```
pub struct Ordered<R> {
    results: Results<R>,
}

impl<R> Ordered<R> {
    pub(crate) fn new(outcomes: Box<dyn Outcomes<R>>) -> Self {
        Ordered {
            results: Results {
                outcomes,
                failed: false,
            },
        }
    }
}

impl<R> Iterator for Ordered<R> {
    type Item = R;

    fn next(&mut self) -> Option<R> {
        self.results.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.results.size_hint()
    }
}

/// Results in the order their tasks complete: what `parallel!(return_as = unordered; ...)`
/// returns. The input is read as results are taken, as for [`Ordered`]; a task's failure is
/// raised by `next`; dropping the iterator stops the run.
///
/// ```
/// use joblet_runtime::__private::{Batch, Options, run_lazy};
///
/// let opts = Options::new(Some(1), Batch::Auto, 0, false);
/// let mut sum: u64 = run_lazy(&opts, 1..=4u64, |i| i * 10).sum();
/// assert_eq!(sum, 100);
/// ```
pub struct Unordered<R> {
    results: Results<R>,
}

impl<R> Unordered<R> {
    pub(crate) fn new(outcomes: Box<dyn Outcomes<R>>) -> Self {
        Unordered {
            results: Results {
                outcomes,
                failed: false,
            },
        }
    }
}

impl<R> Iterator for Unordered<R> {
    type Item = R;

    fn next(&mut self) -> Option<R> {
        self.results.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.results.size_hint()
    }
}

/// Outcomes computed already (a run in place, inside a worker), handed out in their order.
pub(crate) struct Computed<R>(std::vec::IntoIter<(usize, Outcome<R>)>);

impl<R> Computed<R> {
    pub(crate) fn new(outcomes: Vec<(usize, Outcome<R>)>) -> Self {
        Computed(outcomes.into_iter())
    }
}

impl<R: Send> Outcomes<R> for Computed<R> {
    fn next_outcome(&mut self) -> Option<(usize, Outcome<R>)> {
        self.0.next()
    }

    fn left(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// A lazy run, on threads or processes.
impl<I, R, B> Outcomes<R> for Stream<I, R, B>
where
    I: Iterator + Send,
    R: Send,
    B: Backend<I::Item, R> + Send,
{
    fn next_outcome(&mut self) -> Option<(usize, Outcome<R>)> {
        Stream::next_outcome(self)
    }

    fn left(&self) -> Option<usize> {
        Stream::left(self)
    }
}
