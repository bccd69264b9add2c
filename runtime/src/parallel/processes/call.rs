//! One `parallel!(backend = processes)` call, as the parent runs it: the batches its
//! [`Stream`](crate::parallel::stream::Stream) dispatches wait in a queue, driver threads (one
//! a worker, started as batches come) take them to workers kept from earlier calls or started
//! anew, and send each batch's reply back to be decoded where the results are taken.
//!
//! A worker's death fails the task it was running; the other tasks of its batch run on its
//! replacement, so each batch still comes back whole, in order. When the call stops (its first
//! failure with `on_error = stop`, or a consumer that went away), a byte on the call's stop
//! pipe wakes every driver, whose worker is killed at once rather than waited for.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::arrays::{Shared, encode};
use super::channel::{pipe, set_length};
use super::handle::{Interrupt, Settings, Worker};
use super::kept;
use super::worker::{self, BatchHead, CallHead, Routine};
use crate::parallel::failure::Failure;
use crate::parallel::run::Run;
use crate::parallel::stream::{Backend, Done};
use crate::parallel::{TaskError, TaskErrorKind as Kind};

/// What a call's drivers share.
pub(super) struct Call {
    pub(super) run: Run,
    /// The frame that begins the call in a worker: its routine and captures.
    head: Vec<u8>,
    head_arrays: Option<Arc<Shared>>,
    settings: Settings,
    timeout: Option<Duration>,
    idle_timeout: Duration,
    workers: usize,
    stop_at_failure: bool,
    queue: Mutex<Queue>,
    queued: Condvar,
    /// Readable once the call stops: every driver polls it with its worker's pipes.
    stop_read: OwnedFd,
    stop_write: OwnedFd,
    stopped: AtomicBool,
}

/// Batches waiting for a driver.
#[derive(Default)]
struct Queue {
    batches: VecDeque<Batch>,
    /// No batch will come.
    closed: bool,
    /// Drivers waiting for a batch.
    idle: usize,
}

/// A batch's items, serialized one after the other, and their arrays in shared memory.
struct Batch {
    first: usize,
    bytes: Vec<u8>,
    /// Where each item ends in `bytes`.
    ends: Vec<usize>,
    arrays: Option<Arc<Shared>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The request for items `range` of the batch.
    fn frame(&self, range: &Range<usize>) -> Vec<u8> {
        let start = match range.start {
            0 => 0,
            i => self.ends[i - 1],
        };
        let items = &self.bytes[start..self.ends[range.end - 1]];
        let head = BatchHead {
            count: range.len() as u32,
            arrays: self.arrays.as_ref().map(|a| a.table.clone()),
        };
        let mut frame = vec![0, 0, 0, 0, worker::BATCH];
        postcard::to_io(&head, &mut frame).expect("a batch head always serializes");
        frame.extend_from_slice(items);
        frame
    }

    fn fd(&self) -> Option<RawFd> {
        self.arrays.as_ref().map(|a| a.file.as_raw_fd())
    }
}

/// What a driver sends back: a batch's reply, or why no worker could be had.
enum Delivery {
    Done(Reply),
    Broken(io::Error),
}

/// A batch's reply: the workers' records, one per task in order, each a result's bytes in
/// `bytes` or a failure.
struct Reply {
    first: usize,
    bytes: Vec<u8>,
    records: Vec<Result<Range<usize>, TaskError>>,
    elapsed: Duration,
}

impl Call {
    pub(super) fn new(
        run: Run,
        routine: Routine,
        captures: (Vec<u8>, Option<Arc<Shared>>),
        settings: Settings,
        options: &super::ProcessOptions,
        workers: usize,
        stop_at_failure: bool,
    ) -> io::Result<Call> {
        let (captures, head_arrays) = captures;
        let head = CallHead {
            routine,
            arrays: head_arrays.as_ref().map(|a| a.table.clone()),
        };
        let mut frame = vec![0, 0, 0, 0, worker::CALL];
        postcard::to_io(&head, &mut frame).expect("a call head always serializes");
        frame.extend_from_slice(&captures);
        drop(captures);
        set_length(&mut frame)?;
        let (stop_read, stop_write) = pipe()?;
        Ok(Call {
            run,
            head: frame,
            head_arrays,
            settings,
            timeout: options.timeout,
            idle_timeout: options.idle_timeout,
            workers,
            stop_at_failure,
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            stop_read,
            stop_write,
            stopped: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch, once one is queued; `None` when the call is over or stopped.
    fn next_batch(&self) -> Option<Batch> {
        let mut queue = self.lock();
        loop {
            if self.run.stopping.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(batch) = queue.batches.pop_front() {
                return Some(batch);
            }
            if queue.closed {
                return None;
            }
            queue.idle += 1;
            queue = self.queued.wait(queue).unwrap_or_else(|e| e.into_inner());
            queue.idle -= 1;
        }
    }

    /// Stops the call: no batch starts, and every worker running one is killed.
    fn stop(&self) {
        self.run.stopping.store(true, Ordering::Relaxed);
        if !self.stopped.swap(true, Ordering::Relaxed) {
            // SAFETY: one byte from a live buffer, to the pipe this call owns.
            unsafe { libc::write(self.stop_write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        }
        self.queued.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.queued.notify_all();
    }

    /// Keeps one worker busy with the call's batches until they run out.
    fn drive(&self, deliveries: &Sender<Delivery>) {
        ignore_sigpipe();
        let _caller = self.run.enter_caller();
        let _in_span = self.run.trace.span.enter();
        let mut worker: Option<Worker> = None;
        while let Some(batch) = self.next_batch() {
            let (began, mut clock) = (Instant::now(), self.run.trace.begin_batch());
            let mut reply = Reply {
                first: batch.first,
                bytes: Vec::new(),
                records: Vec::with_capacity(batch.len()),
                elapsed: Duration::ZERO,
            };
            if let Err(e) = self.run_range(&mut worker, &batch, 0..batch.len(), &mut reply) {
                if !self.run.stopping.load(Ordering::Relaxed) {
                    self.stop();
                    let _ = deliveries.send(Delivery::Broken(e));
                }
                break;
            }
            reply.elapsed = began.elapsed();
            clock.tasks = reply.records.iter().filter(|r| r.is_ok()).count();
            if self.run.progress.enabled {
                (0..clock.tasks).for_each(|_| self.run.progress.count_one());
            }
            self.run.trace.end_batch(&clock);
            if deliveries.send(Delivery::Done(reply)).is_err() {
                self.stop();
            }
        }
        // A worker still here finished its batch (a killed or dead one is gone): kept for
        // the next call, also when this one stopped.
        if let Some(mut worker) = worker
            && worker.end().is_ok()
        {
            kept::keep(worker, self.idle_timeout, self.workers);
        }
    }

    /// Runs items `range` of `batch`, appending their records to `reply`. A worker's death
    /// fails the task it ran; those before it, whose results died with it, and those after
    /// it run on a new worker. An error when no worker could be had.
    fn run_range(
        &self,
        slot: &mut Option<Worker>,
        batch: &Batch,
        range: Range<usize>,
        reply: &mut Reply,
    ) -> io::Result<()> {
        if range.is_empty() || self.run.stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        let worker = self.worker(slot)?;
        let mut frame = batch.frame(&range);
        let stop = self.stop_read.as_raw_fd();
        match worker.run(&mut frame, batch.fd(), range.len(), self.timeout, stop) {
            Ok(bytes) => self.accept(batch.first + range.start, range.len(), bytes, reply),
            Err(Interrupt::Stopped) => *slot = None,
            Err(Interrupt::Died(death)) => {
                *slot = None;
                let failed = range.start + death.task;
                self.run_range(slot, batch, range.start..failed, reply)?;
                if reply.records.len() < failed {
                    return Ok(());
                }
                let error = TaskError::new(batch.first + failed, death.kind, death.message);
                self.failed(&error);
                reply.records.push(Err(error));
                self.run_range(slot, batch, failed + 1..range.end, reply)?;
            }
        }
        Ok(())
    }

    /// The driver's worker, begun on this call: kept from an earlier call, or started.
    fn worker<'a>(&self, slot: &'a mut Option<Worker>) -> io::Result<&'a mut Worker> {
        if let Some(worker) = slot {
            return Ok(worker);
        }
        let (fd, stop) = (
            self.head_arrays.as_ref().map(|a| a.file.as_raw_fd()),
            self.stop_read.as_raw_fd(),
        );
        // A kept worker that cannot begin the call is dropped, and the next tried.
        while let Some(mut kept) = kept::take(self.settings) {
            if kept.begin(&self.head, fd, stop).is_ok() {
                return Ok(slot.insert(kept));
            }
        }
        let mut worker = Worker::start(self.settings)?;
        worker.begin(&self.head, fd, stop)?;
        Ok(slot.insert(worker))
    }

    /// Reads the records of a worker's reply to `count` tasks, the first of which is `first`.
    fn accept(&self, first: usize, count: usize, bytes: Vec<u8>, reply: &mut Reply) {
        let offset = reply.bytes.len();
        let mut at = 0;
        for index in first..first + count {
            let record = bytes.get(at..at + 5).map(|head| {
                let len = u32::from_le_bytes(head[1..].try_into().expect("4 bytes")) as usize;
                (head[0], at + 5..at + 5 + len)
            });
            let outcome = match record {
                Some((tag, body)) if body.end <= bytes.len() => {
                    at = body.end;
                    let text = || String::from_utf8_lossy(&bytes[body.clone()]).into_owned();
                    match tag {
                        worker::DONE => Ok(offset + body.start..offset + body.end),
                        worker::PANICKED => Err(TaskError::new(index, Kind::Panicked, text())),
                        _ => Err(TaskError::new(index, Kind::Transfer, text())),
                    }
                }
                _ => {
                    at = bytes.len();
                    let why = "its result could not be received: the worker's reply was cut short";
                    Err(TaskError::new(index, Kind::Transfer, why))
                }
            };
            if let Err(error) = &outcome {
                self.failed(error);
            }
            reply.records.push(outcome);
        }
        reply.bytes.extend_from_slice(&bytes);
    }

    /// Records a task's failure, which stops the call with `on_error = stop`.
    fn failed(&self, error: &TaskError) {
        self.run.trace.failed.fetch_add(1, Ordering::Relaxed);
        self.run.trace.task_failed(error.index(), error);
        if self.stop_at_failure {
            self.stop();
        }
    }
}

/// A call as a lazy run's backend: batches are serialized where they are dispatched (the
/// items need not be `Send`), and results decoded where they are taken.
pub(super) struct Processes<R> {
    call: Arc<Call>,
    max_nbytes: u64,
    sender: Sender<Delivery>,
    receiver: Receiver<Delivery>,
    drivers: Vec<JoinHandle<()>>,
    results: std::marker::PhantomData<fn() -> R>,
}

impl<R> Processes<R> {
    pub(super) fn new(call: Call, max_nbytes: u64) -> Self {
        let (sender, receiver) = channel();
        Processes {
            call: Arc::new(call),
            max_nbytes,
            sender,
            receiver,
            drivers: Vec::new(),
            results: std::marker::PhantomData,
        }
    }

    /// Starts a driver when every one started is busy, up to one a worker.
    fn drive_more(&mut self) {
        if self.drivers.len() >= self.call.workers || self.call.lock().idle > 0 {
            return;
        }
        let (call, sender) = (self.call.clone(), self.sender.clone());
        let driver = std::thread::Builder::new()
            .name(format!("joblet-driver-{}", self.drivers.len()))
            .spawn(move || call.drive(&sender))
            .expect("cannot start a thread to drive a worker process");
        self.drivers.push(driver);
    }
}

impl<T: Serialize, R: DeserializeOwned> Backend<T, R> for Processes<R> {
    fn run(&self) -> &Run {
        &self.call.run
    }

    fn dispatch(&mut self, first: usize, items: Vec<T>) {
        let (mut bytes, mut ends) = (Vec::new(), Vec::with_capacity(items.len()));
        let arrays =
            encode(&items, self.max_nbytes, &mut bytes, &mut ends).unwrap_or_else(|(i, e)| {
                panic!(
                    "`parallel!(backend = processes)` cannot serialize the input of task {}: {e}",
                    first + i
                )
            });
        drop(items);
        let batch = Batch {
            first,
            bytes,
            ends,
            arrays,
        };
        self.call.lock().batches.push_back(batch);
        self.call.queued.notify_one();
        self.drive_more();
    }

    fn receive(&mut self) -> Option<Done<R>> {
        let reply = match self.receiver.recv().ok()? {
            Delivery::Done(reply) => reply,
            Delivery::Broken(e) => {
                panic!("`parallel!(backend = processes)` cannot start a worker process: {e}")
            }
        };
        let outcomes = (reply.first..)
            .zip(reply.records)
            .map(|(index, record)| {
                let bytes = record.map_err(Failure::Failed)?;
                postcard::from_bytes(&reply.bytes[bytes]).map_err(|e| {
                    let why = format!("its result could not be received: {e}");
                    let error = TaskError::new(index, Kind::Transfer, why);
                    self.call.failed(&error);
                    Failure::Failed(error)
                })
            })
            .collect();
        Some(Done {
            first: reply.first,
            outcomes,
            elapsed: reply.elapsed,
        })
    }

    fn stop(&mut self) {
        self.call.stop();
    }

    /// Waits for the drivers, which keep their workers for the next call before they end.
    fn finish(&mut self) {
        self.call.close();
        for driver in self.drivers.drain(..) {
            let _ = driver.join();
        }
    }
}

/// Keeps writes to a dead worker's socket from killing this process, when the program has
/// restored SIGPIPE's default (Rust's start-up ignores it): blocked on this thread, the signal
/// stays pending and the write fails with `EPIPE` instead. The thread is one of a call's
/// drivers, which end with the call, and a pending signal with them.
fn ignore_sigpipe() {
    // SAFETY: `set` is initialized by `sigemptyset` before use; the mask is this thread's.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
