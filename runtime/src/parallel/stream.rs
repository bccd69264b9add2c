//! A lazy run, on any backend: its input read and cut into batches only as they are needed, at
//! most `pre_dispatch` batches ahead of the results taken, and its results taken in input
//! order (the list form, `return_as = generator`) or as they complete (`unordered`). A backend
//! only runs the batches it is given and hands back what they did.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::failure::Failure;
use super::options::{Options, Sizer};
use super::run::Run;

/// How a task ended: its result, or how it failed.
pub(crate) type Outcome<R> = Result<R, Failure>;

/// A batch that a backend ran: the index of its first task, and the outcomes of its tasks in
/// order, fewer than it had when the run stopped during it.
pub(crate) struct Done<R> {
    pub(crate) first: usize,
    pub(crate) outcomes: Vec<Outcome<R>>,
    /// How long it took, for `batch_size = auto`.
    pub(crate) elapsed: Duration,
}

/// What a lazy run needs of its backend.
pub(crate) trait Backend<T, R> {
    /// The run's progress, `tracing` side and stop flag.
    fn run(&self) -> &Run;
    /// Starts a batch: `items`, the first of which is task `first`.
    fn dispatch(&mut self, first: usize, items: Vec<T>);
    /// Waits for a batch to be done; `None` when none ever will be (a backend that broke).
    fn receive(&mut self) -> Option<Done<R>>;
    /// Stops the run: no task starts after this, and what runs is given up where it can be.
    fn stop(&mut self);
    /// The run is over: every batch is done, or it was stopped. A backend that reports a
    /// failure logs it as it happens, before this.
    fn finish(&mut self) {}
}

/// In which order a run's results are taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// In input order, each as soon as it and all before it are done. With `Hold`, a batch
    /// counts as in flight until its results are taken (a generator keeps no more than
    /// `pre_dispatch` batches of results); else until it is done (a list keeps them all anyway).
    Input { hold: bool },
    /// As batches complete.
    Completion,
}

/// A lazy run: the input, the batches in flight, and the results not yet taken.
pub(crate) struct Stream<I: Iterator, R, B: Backend<I::Item, R>> {
    tasks: I,
    /// The index of the next item to read.
    read: usize,
    exhausted: bool,
    sizer: Sizer,
    pub(crate) backend: B,
    window: usize,
    order: Order,
    /// Whether the first failure ends the run (`on_error = stop`): it is handed out as soon as
    /// it arrives, before results that are done and not yet taken, and nothing is dispatched
    /// after it.
    stop_at_failure: bool,
    /// Batches dispatched and not yet done.
    outstanding: usize,
    /// Batches dispatched and not handed out, by first index, with their length (input order).
    lengths: BTreeMap<usize, usize>,
    /// Batches done and not handed out, by first index (input order).
    pending: BTreeMap<usize, Done<R>>,
    /// The index of the next result to hand out (input order).
    next: usize,
    /// Outcomes to hand out, a batch at a time: the index of the next, and those left.
    ready: VecDeque<(usize, std::vec::IntoIter<Outcome<R>>)>,
    /// Tasks whose results were handed out.
    taken: usize,
    /// No batch is dispatched any more: the run failed, or was stopped.
    stopped: bool,
    finished: bool,
}

impl<I, R, B> Stream<I, R, B>
where
    I: Iterator,
    B: Backend<I::Item, R>,
{
    pub(crate) fn new(
        opts: &Options,
        workers: usize,
        tasks: I,
        backend: B,
        order: Order,
        stop_at_failure: bool,
    ) -> Self {
        Stream {
            tasks,
            read: 0,
            exhausted: false,
            sizer: opts.batch.lazy(),
            backend,
            window: opts.window(workers),
            order,
            stop_at_failure,
            outstanding: 0,
            lengths: BTreeMap::new(),
            pending: BTreeMap::new(),
            next: 0,
            ready: VecDeque::new(),
            taken: 0,
            stopped: false,
            finished: false,
        }
    }

    /// The next result taken, with its task's index; `None` once every task's is. In
    /// `stop_at_failure` runs, a failure is the last.
    pub(crate) fn next_outcome(&mut self) -> Option<(usize, Outcome<R>)> {
        loop {
            if let Some((index, outcomes)) = self.ready.front_mut() {
                let Some(outcome) = outcomes.next() else {
                    self.ready.pop_front();
                    continue;
                };
                let index = std::mem::replace(index, *index + 1);
                self.taken += 1;
                if outcome.is_err() && self.stop_at_failure {
                    self.stopped = true;
                    self.end();
                }
                return Some((index, outcome));
            }
            if self.finished {
                return None;
            }
            self.advance();
        }
    }

    /// Moves the run on until outcomes are ready or it ends: dispatches what the window
    /// allows, then takes the next batch in order, or waits for one to be done.
    fn advance(&mut self) {
        self.fill();
        if let Some(mut done) = self.pending.remove(&self.next) {
            let length = self.lengths.remove(&self.next).unwrap_or(0);
            self.next += length;
            done.outcomes.truncate(length);
            self.ready
                .push_back((done.first, done.outcomes.into_iter()));
            return;
        }
        // Nothing can come: the input is done, or the run stopped short of `next`.
        if self.outstanding == 0 {
            return self.end();
        }
        match self.backend.receive() {
            Some(done) => self.accept(done),
            None => self.end(),
        }
    }

    /// Batches that count against `pre_dispatch`.
    fn in_flight(&self) -> usize {
        match self.order {
            Order::Input { hold: true } => self.outstanding + self.pending.len(),
            _ => self.outstanding,
        }
    }

    /// Takes in a batch that is done.
    fn accept(&mut self, done: Done<R>) {
        self.outstanding -= 1;
        let length = self.lengths.get(&done.first).copied().unwrap_or(0);
        self.sizer.observe(done.outcomes.len(), done.elapsed);
        if done.outcomes.len() < length {
            // Cut short: a failure stopped the run, or the run was stopped.
            self.stopped = true;
        }
        let failed = done.outcomes.iter().position(Result::is_err);
        match (failed, self.order) {
            // The run ends with this failure: handed out first, before all that waits.
            (Some(at), _) if self.stop_at_failure => {
                let index = done.first + at;
                let failure = done.outcomes.into_iter().nth(at).expect("found above");
                self.ready.clear();
                self.pending.clear();
                self.ready.push_back((index, vec![failure].into_iter()));
            }
            (_, Order::Input { .. }) => {
                self.pending.insert(done.first, done);
            }
            (_, Order::Completion) => {
                self.lengths.remove(&done.first);
                self.ready
                    .push_back((done.first, done.outcomes.into_iter()));
            }
        }
    }

    /// Dispatches batches until `pre_dispatch` are in flight or the input runs out.
    fn fill(&mut self) {
        while !self.exhausted && !self.stopped && self.in_flight() < self.window {
            if self
                .backend
                .run()
                .stopping
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                self.stopped = true;
                break;
            }
            let size = self.sizer.next();
            let items: Vec<I::Item> = self.tasks.by_ref().take(size).collect();
            if items.len() < size {
                self.exhausted = true;
            }
            if items.is_empty() {
                break;
            }
            let first = self.read;
            self.read += items.len();
            self.lengths.insert(first, items.len());
            self.outstanding += 1;
            self.backend.dispatch(first, items);
        }
    }

    /// Ends the run: stops what still runs, and reports the end.
    fn end(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let complete = !self.stopped && self.exhausted && self.outstanding == 0;
        if self.outstanding > 0 {
            self.backend.stop();
        }
        self.backend.finish();
        let run = self.backend.run();
        if complete {
            let left: usize = self.ready.iter().map(|(_, outcomes)| outcomes.len()).sum();
            run.progress.finish(self.taken + left);
        } else {
            run.progress.abandon();
        }
        run.trace.finish(run.trace.done());
    }

    /// Every result in input order, or the failure that stopped the run (the list form).
    pub(crate) fn collect_all(mut self) -> Result<Vec<R>, (usize, Failure)> {
        let mut results = Vec::with_capacity(self.tasks.size_hint().0);
        loop {
            // A batch at a time: a task's result costs a move, not a trip through the queue.
            if let Some((first, outcomes)) = self.ready.pop_front() {
                let before = results.len();
                for (index, outcome) in (first..).zip(outcomes) {
                    match outcome {
                        Ok(value) => results.push(value),
                        Err(failure) => {
                            self.taken += results.len() - before + 1;
                            self.stopped = true;
                            self.end();
                            return Err((index, failure));
                        }
                    }
                }
                self.taken += results.len() - before;
                continue;
            }
            if self.finished {
                return Ok(results);
            }
            self.advance();
        }
    }

    /// Tasks not yet handed out, when the input tells how many it holds.
    pub(crate) fn left(&self) -> Option<usize> {
        let (low, high) = self.tasks.size_hint();
        let unread = (Some(low) == high).then_some(low)?;
        Some(unread + self.read - self.taken.min(self.read))
    }
}

/// A stream dropped before its end, by a consumer that went away or by a panic, stops its run.
impl<I, R, B> Drop for Stream<I, R, B>
where
    I: Iterator,
    B: Backend<I::Item, R>,
{
    fn drop(&mut self) {
        self.stopped = true;
        self.end();
    }
}
