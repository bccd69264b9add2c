//! The parent side of `backend = processes`: starts the workers of one run, feeds them batches,
//! watches each running task's time, and turns a worker's death into the failure of the task
//! it was running, while the other tasks of its batch go to a new worker.
//!
//! Each worker has a thread here that sends it a batch and waits for the reply (see
//! [`super::handle`]). The pool lives for one run: every worker is ended and reaped before the
//! run returns, also when it unwinds.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Isolation;
use super::handle::Worker;
use super::worker::{self, Hello, Routine};
use crate::parallel::options::{Backend, Options};
use crate::parallel::run::Run;
use crate::parallel::trace::BatchClock;
use crate::parallel::{TaskError, TaskErrorKind as Kind};

/// Runs `items` through `routine` on worker processes, handing each batch's outcomes to
/// `deliver` (the index of the first, then one per task) as they come; `deliver` says whether
/// more are wanted. With `stop`, no batch starts after a failure. An error when no worker
/// could start.
pub(super) fn run<R, D>(
    opts: &Options,
    isolation: Isolation,
    stop: bool,
    items: &Items,
    captures: &[u8],
    routine: Routine,
    deliver: D,
) -> io::Result<()>
where
    R: DeserializeOwned + Send,
    D: Fn(usize, Vec<Result<R, TaskError>>) -> bool + Sync,
{
    assert!(
        std::env::var_os(super::WORKER_ENV).is_none(),
        "a joblet worker reached `main`: the executable's constructors did not run"
    );
    let total = items.count();
    let workers = opts.workers().min(total).max(1);
    let size = opts.batch.processes(total, workers);
    let hello = postcard::to_stdvec(&Hello {
        routine,
        captures: captures.to_vec(),
        max_memory: isolation.max_memory,
    })
    .expect("the first message always serializes");
    let work = Work {
        run: Run::new(opts, Some(total), workers, Backend::Processes, false),
        items,
        isolation,
        stop,
        hello,
        queue: Mutex::new(
            (0..total)
                .step_by(size)
                .map(|start| start..(start + size).min(total))
                .collect(),
        ),
        deliver,
        results: std::marker::PhantomData,
        broken: Mutex::new(None),
    };
    if total > 0 {
        std::thread::scope(|s| {
            for i in 0..workers {
                let work = &work;
                std::thread::Builder::new()
                    .name(format!("joblet-driver-{i}"))
                    .spawn_scoped(s, move || {
                        let _caller = work.run.enter_caller();
                        work.drive();
                    })
                    .expect("cannot start a thread to drive a worker process");
            }
        });
    }
    let Work { run, broken, .. } = work;
    let done = run.trace.done();
    run.trace.finish(done);
    if let Some(e) = broken.into_inner().unwrap_or_else(|e| e.into_inner()) {
        run.progress.abandon();
        return Err(e);
    }
    if done == total {
        run.progress.finish(total);
    } else {
        run.progress.abandon();
    }
    Ok(())
}

/// The tasks' inputs, serialized one after the other.
pub(super) struct Items {
    bytes: Vec<u8>,
    /// Where each item starts in `bytes`, and where the last ends.
    bounds: Vec<usize>,
}

impl Items {
    /// Serializes the items: here, on the calling thread, so that they need not be `Sync`.
    pub(super) fn new<I: Serialize>(
        items: impl IntoIterator<Item = I>,
    ) -> Result<Items, (usize, postcard::Error)> {
        let mut all = Items {
            bytes: Vec::new(),
            bounds: vec![0],
        };
        for (i, item) in items.into_iter().enumerate() {
            postcard::to_io(&item, &mut all.bytes).map_err(|e| (i, e))?;
            all.bounds.push(all.bytes.len());
        }
        Ok(all)
    }

    pub(super) fn count(&self) -> usize {
        self.bounds.len() - 1
    }

    fn of(&self, batch: &Range<usize>) -> &[u8] {
        &self.bytes[self.bounds[batch.start]..self.bounds[batch.end]]
    }
}

/// One run's work: its tasks, the batches still to run, and where results go.
struct Work<'a, R, D> {
    /// What every backend's run keeps: progress, `tracing`, whether it is stopping (a task
    /// failed with `stop`, a worker could not start, or nobody wants more results).
    run: Run,
    items: &'a Items,
    isolation: Isolation,
    stop: bool,
    hello: Vec<u8>,
    queue: Mutex<VecDeque<Range<usize>>>,
    deliver: D,
    results: std::marker::PhantomData<fn() -> R>,
    /// Why a worker could not start.
    broken: Mutex<Option<io::Error>>,
}

impl<R, D> Work<'_, R, D>
where
    R: DeserializeOwned + Send,
    D: Fn(usize, Vec<Result<R, TaskError>>) -> bool + Sync,
{
    /// Keeps one worker busy until the batches run out, replacing it when it dies.
    fn drive(&self) {
        ignore_sigpipe();
        let _in_span = self.run.trace.span.enter();
        let mut worker: Option<Worker> = None;
        let mut frame = Vec::new();
        while let Some(batch) = self.next_batch() {
            let w = match &mut worker {
                Some(w) => w,
                None => match Worker::start(&self.hello) {
                    Ok(w) => worker.insert(w),
                    Err(e) => {
                        self.run.stopping.store(true, Ordering::Relaxed);
                        self.broken.lock().unwrap().get_or_insert(e);
                        return;
                    }
                },
            };
            self.encode(&batch, &mut frame);
            let clock = self.run.trace.begin_batch();
            match w.run(&mut frame, batch.len(), self.isolation) {
                Ok(reply) => self.accept(&batch, &reply, clock),
                Err(death) => {
                    worker = None;
                    let failed = batch.start + death.task;
                    // The others of the batch run again on a new worker: a reply comes whole
                    // or not at all, so the results of those before it are lost too.
                    let mut queue = self.queue.lock().unwrap();
                    if failed + 1 < batch.end {
                        queue.push_front(failed + 1..batch.end);
                    }
                    if batch.start < failed {
                        queue.push_front(batch.start..failed);
                    }
                    drop(queue);
                    self.fail(TaskError::new(failed, death.kind, death.message));
                }
            }
        }
        if let (Some(w), true) = (&mut worker, self.run.stopping.load(Ordering::Relaxed)) {
            w.kill();
        }
    }

    fn next_batch(&self) -> Option<Range<usize>> {
        if self.run.stopping.load(Ordering::Relaxed) {
            return None;
        }
        self.queue.lock().unwrap().pop_front()
    }

    /// `[len][count][items]`, the length written when sent.
    fn encode(&self, batch: &Range<usize>, frame: &mut Vec<u8>) {
        frame.clear();
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&(batch.len() as u32).to_le_bytes());
        frame.extend_from_slice(self.items.of(batch));
    }

    /// Stores a batch's results.
    fn accept(&self, batch: &Range<usize>, reply: &[u8], mut clock: BatchClock) {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut rest = reply;
        for i in batch.clone() {
            let outcome = match decode::<R>(&mut rest) {
                Ok(outcome) => outcome.map_err(|(kind, message)| TaskError::new(i, kind, message)),
                Err(e) => Err(TaskError::new(
                    i,
                    Kind::Transfer,
                    format!("its result could not be received: {e}"),
                )),
            };
            outcomes.push(outcome);
        }
        clock.tasks = outcomes.iter().filter(|o| o.is_ok()).count();
        for e in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            self.failed(e);
        }
        if self.run.progress.enabled {
            for _ in 0..clock.tasks {
                self.run.progress.count_one();
            }
        }
        self.run.trace.end_batch(&clock);
        self.hand_over(batch.start, outcomes);
    }

    /// Records a task's failure, and hands it over.
    fn fail(&self, error: TaskError) {
        self.failed(&error);
        self.hand_over(error.index(), vec![Err(error)]);
    }

    fn failed(&self, error: &TaskError) {
        self.run.trace.failed.fetch_add(1, Ordering::Relaxed);
        self.run.trace.task_failed(error.index(), error);
        if self.stop {
            self.run.stopping.store(true, Ordering::Relaxed);
        }
    }

    fn hand_over(&self, first: usize, outcomes: Vec<Result<R, TaskError>>) {
        if !(self.deliver)(first, outcomes) {
            // Nobody wants more: the consumer of an unordered run went away.
            self.run.stopping.store(true, Ordering::Relaxed);
        }
    }
}

/// Reads one task's record off the front of a reply.
fn decode<R: DeserializeOwned>(rest: &mut &[u8]) -> postcard::Result<Result<R, (Kind, String)>> {
    let (&tag, body) = rest
        .split_first()
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    let (outcome, left) = match tag {
        worker::DONE => {
            let (value, left) = postcard::take_from_bytes::<R>(body)?;
            (Ok(value), left)
        }
        worker::PANICKED | worker::UNSENDABLE => {
            let (message, left) = postcard::take_from_bytes::<String>(body)?;
            let kind = if tag == worker::PANICKED {
                Kind::Panicked
            } else {
                Kind::Transfer
            };
            (Err((kind, message)), left)
        }
        _ => return Err(postcard::Error::DeserializeBadEnum),
    };
    *rest = left;
    Ok(outcome)
}

/// Keeps writes to a dead worker's pipe from killing this process, when the program has
/// restored SIGPIPE's default (Rust's start-up ignores it): blocked on this thread, the signal
/// stays pending and the write fails with `EPIPE` instead. The thread is one of a run's
/// drivers, which end with the run, and a pending signal with them.
fn ignore_sigpipe() {
    // SAFETY: `set` is initialized by `sigemptyset` before use; the mask is this thread's.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
