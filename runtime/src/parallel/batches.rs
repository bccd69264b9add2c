//! An indexed input cut into batches: rayon's own splitting, with a batch's bookkeeping
//! around each piece that it no longer splits (a check for a failure before it starts, the
//! caller's subscriber and the run's span while it runs, its count when it ends). Nothing is
//! counted per task: a batch knows its length, so that a task costs what it costs by hand.

use std::panic::{self, AssertUnwindSafe};

use rayon::iter::plumbing::{
    Consumer, Folder, Producer, ProducerCallback, UnindexedConsumer, bridge,
};
use rayon::iter::{IndexedParallelIterator, ParallelIterator};

use super::run::{Cancelled, Run};

/// The items of `base` with their indices, in batches of `run` (see the module's docs), for a
/// consumer that takes every item (a collection): a batch that ends counts its whole length.
pub(crate) struct Batches<'r, I> {
    base: I,
    run: &'r Run,
}

impl<'r, I: IndexedParallelIterator> Batches<'r, I> {
    pub(crate) fn new(base: I, run: &'r Run) -> Self {
        Batches { base, run }
    }
}

impl<I: IndexedParallelIterator> ParallelIterator for Batches<'_, I> {
    type Item = (usize, I::Item);

    fn drive_unindexed<C: UnindexedConsumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }

    fn opt_len(&self) -> Option<usize> {
        Some(self.base.len())
    }
}

impl<I: IndexedParallelIterator> IndexedParallelIterator for Batches<'_, I> {
    fn len(&self) -> usize {
        self.base.len()
    }

    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge(self, consumer)
    }

    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output {
        let len = self.base.len();
        return self.base.with_producer(Callback {
            callback,
            run: self.run,
            len,
        });

        struct Callback<'r, CB> {
            callback: CB,
            run: &'r Run,
            len: usize,
        }

        impl<T, CB: ProducerCallback<(usize, T)>> ProducerCallback<T> for Callback<'_, CB> {
            type Output = CB::Output;
            fn callback<P: Producer<Item = T>>(self, base: P) -> CB::Output {
                self.callback.callback(BatchProducer {
                    base,
                    run: self.run,
                    first: 0,
                    len: self.len,
                })
            }
        }
    }
}

/// The tasks `first..first + len` of a run.
struct BatchProducer<'r, P> {
    base: P,
    run: &'r Run,
    first: usize,
    len: usize,
}

impl<P: Producer> Producer for BatchProducer<'_, P> {
    type Item = (usize, P::Item);
    type IntoIter = std::iter::Zip<std::ops::Range<usize>, P::IntoIter>;

    fn into_iter(self) -> Self::IntoIter {
        (self.first..self.first + self.len).zip(self.base.into_iter())
    }

    fn min_len(&self) -> usize {
        self.base.min_len()
    }

    fn max_len(&self) -> usize {
        self.base.max_len()
    }

    fn split_at(self, index: usize) -> (Self, Self) {
        let (left, right) = self.base.split_at(index);
        let at = |base, first, len| BatchProducer {
            base,
            run: self.run,
            first,
            len,
        };
        (
            at(left, self.first, index),
            at(right, self.first + index, self.len - index),
        )
    }

    /// Runs one batch. Its tasks are all consumed (the folders of a run's collection never
    /// stop early), so that a batch that ends counts its length; one that a failure cuts short
    /// counts the tasks before the failed one (the index [`Cancelled`] carries), and is not
    /// reported as done.
    fn fold_with<F: Folder<Self::Item>>(self, folder: F) -> F {
        let (run, first, len) = (self.run, self.first, self.len);
        run.batch_start();
        let batch = run.worker_batch();
        let folded =
            panic::catch_unwind(AssertUnwindSafe(|| folder.consume_iter(self.into_iter())));
        match folded {
            Ok(folder) => {
                // A consumer that stops early would have left tasks uncounted as done.
                debug_assert!(!folder.full(), "a batch's consumer takes every task");
                batch.ended(len);
                folder
            }
            Err(payload) => {
                let done =
                    Cancelled::at(&*payload).map_or(0, |at| at.saturating_sub(first).min(len));
                batch.cut_short(done);
                panic::resume_unwind(payload)
            }
        }
    }
}
