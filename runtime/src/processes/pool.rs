//! The parent side of `backend = processes`: starts the workers of one run, feeds them batches,
//! watches each running task's time, and turns a worker's death into the failure of the task
//! it was running, while the other tasks of its batch go to a new worker.
//!
//! Each worker has a thread here that sends it a batch and waits for the reply, polling the
//! reply pipe and the worker's stderr together: stderr is passed on to this process's, and its
//! last lines kept, since they say why a worker died (`memory allocation of ... failed`, a
//! panic message under `panic = "abort"`). The pool lives for one run: every worker is ended
//! and reaped before the run returns, also when it unwinds.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Isolation;
use super::worker::{self, Counter, Hello, Routine};
use crate::parallel::{Backend, Batch, Options, Progress, TaskError, TaskErrorKind as Kind, Trace};

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
    let size = match opts.batch {
        Batch::Fixed(b) => b,
        // Small enough to spread the tasks and to lose little to a crash, large enough that
        // the ~20 µs a batch costs stays small beside the tasks.
        Batch::Auto => (total / (workers * 8)).clamp(1, 1024),
    };
    let hello = postcard::to_stdvec(&Hello {
        routine,
        captures: captures.to_vec(),
        max_memory: isolation.max_memory,
    })
    .expect("the first message always serializes");
    let run = Run {
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
        stopped: AtomicBool::new(false),
        broken: Mutex::new(None),
        progress: Progress::start(opts, Some(total), workers, Backend::Processes.joblib()),
        trace: Trace::start(opts.batch, Some(total), workers, Backend::Processes, false),
    };
    if total > 0 {
        let caller = tracing::dispatcher::get_default(Clone::clone);
        std::thread::scope(|s| {
            for i in 0..workers {
                let (run, caller) = (&run, caller.clone());
                std::thread::Builder::new()
                    .name(format!("joblet-driver-{i}"))
                    .spawn_scoped(s, move || {
                        tracing::dispatcher::with_default(&caller, || run.drive())
                    })
                    .expect("cannot start a thread to drive a worker process");
            }
        });
    }
    let Run {
        broken,
        progress,
        trace,
        ..
    } = run;
    let done = trace.done();
    trace.finish(done);
    if let Some(e) = broken.into_inner().unwrap_or_else(|e| e.into_inner()) {
        progress.abandon();
        return Err(e);
    }
    if done == total {
        progress.finish(total);
    } else {
        progress.abandon();
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

/// One run: its tasks, the batches still to run, and where results go.
struct Run<'a, R, D> {
    items: &'a Items,
    isolation: Isolation,
    stop: bool,
    hello: Vec<u8>,
    queue: Mutex<VecDeque<Range<usize>>>,
    deliver: D,
    results: std::marker::PhantomData<fn() -> R>,
    /// A task failed with `stop`, or a worker could not start: no batch starts any more.
    stopped: AtomicBool,
    broken: Mutex<Option<io::Error>>,
    progress: Progress,
    trace: Trace,
}

impl<R, D> Run<'_, R, D>
where
    R: DeserializeOwned + Send,
    D: Fn(usize, Vec<Result<R, TaskError>>) -> bool + Sync,
{
    /// Keeps one worker busy until the batches run out, replacing it when it dies.
    fn drive(&self) {
        ignore_sigpipe();
        let _in_span = self.trace.span.enter();
        let mut worker: Option<Worker> = None;
        let mut frame = Vec::new();
        while let Some(batch) = self.next_batch() {
            let w = match &mut worker {
                Some(w) => w,
                None => match Worker::start(&self.hello) {
                    Ok(w) => worker.insert(w),
                    Err(e) => {
                        self.stopped.store(true, Ordering::Relaxed);
                        self.broken.lock().unwrap().get_or_insert(e);
                        return;
                    }
                },
            };
            self.encode(&batch, &mut frame);
            let clock = self.trace.begin_batch();
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
        if let (Some(w), true) = (&mut worker, self.stopped.load(Ordering::Relaxed)) {
            w.kill();
        }
    }

    fn next_batch(&self) -> Option<Range<usize>> {
        if self.stopped.load(Ordering::Relaxed) {
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
    fn accept(&self, batch: &Range<usize>, reply: &[u8], mut clock: crate::parallel::BatchClock) {
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
        if self.progress.enabled {
            for _ in 0..clock.tasks {
                self.progress.count_one();
            }
        }
        self.trace.end_batch(&clock);
        self.hand_over(batch.start, outcomes);
    }

    /// Records a task's failure, and hands it over.
    fn fail(&self, error: TaskError) {
        self.failed(&error);
        self.hand_over(error.index(), vec![Err(error)]);
    }

    fn failed(&self, error: &TaskError) {
        self.trace.failed.fetch_add(1, Ordering::Relaxed);
        self.trace.task_failed(error.index(), error);
        if self.stop {
            self.stopped.store(true, Ordering::Relaxed);
        }
    }

    fn hand_over(&self, first: usize, outcomes: Vec<Result<R, TaskError>>) {
        if !(self.deliver)(first, outcomes) {
            // Nobody wants more: the consumer of an unordered run went away.
            self.stopped.store(true, Ordering::Relaxed);
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

/// A worker process, and the ends of its pipes.
struct Worker {
    child: Child,
    requests: Option<File>,
    replies: File,
    stderr: Option<ChildStderr>,
    counter: Counter,
    /// What its stderr said that tells why it died.
    said: Said,
    killed: bool,
}

/// Lines of a worker's stderr that explain its death, picked out as they pass: a fixed tail
/// would lose them behind a backtrace. A worker dies at most once, so none is stale.
#[derive(Default)]
struct Said {
    /// The line being read.
    line: Vec<u8>,
    /// The last line that was not blank.
    last: String,
    /// `memory allocation of N bytes failed`, written just before the abort.
    out_of_memory: Option<String>,
    /// The message of the last panic (the line after `panicked at`).
    panic: Option<String>,
    after_panic: bool,
}

impl Said {
    fn read(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() < 4096 {
                    self.line.push(b);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).trim().to_owned();
            self.line.clear();
            if self.after_panic {
                self.after_panic = false;
                self.panic = Some(line.clone());
            }
            if line.starts_with("memory allocation of") && line.ends_with("failed") {
                self.out_of_memory = Some(line.clone());
            }
            if line.starts_with("thread '") && line.contains("panicked at") {
                self.after_panic = true;
            }
            if !line.is_empty() {
                self.last = line;
            }
        }
    }
}

/// How a worker ended while running a batch: which of its tasks it was running, and why.
struct Death {
    task: usize,
    kind: Kind,
    message: String,
}

/// How a read of a worker's stderr went.
enum Stderr {
    Read,
    Empty,
    Closed,
}

impl Worker {
    /// Starts a worker and waits until it is ready to run tasks.
    fn start(hello: &[u8]) -> io::Result<Worker> {
        // Keeps the constructor that makes a re-launched executable a worker in the link.
        std::hint::black_box(&worker::ENTER);
        let (requests_in, requests) = pipe()?;
        let (replies, replies_out) = pipe()?;
        let counter_file = tempfile::tempfile()?;
        counter_file.set_len(8)?;
        let counter = Counter::map(&counter_file)?;
        let fds = [
            requests_in.as_raw_fd(),
            replies_out.as_raw_fd(),
            counter_file.as_raw_fd(),
        ];
        let mut command = Command::new(executable()?);
        command
            .env(
                super::WORKER_ENV,
                format!("{},{},{},{}", fds[0], fds[1], fds[2], std::process::id()),
            )
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec, the closure only calls `setpgid` and `fcntl`, which
        // are async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // A group of its own, so that the programs its tasks start end with it.
                if libc::setpgid(0, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // Open across `exec` in the worker only: other programs this process starts
                // meanwhile must not get them.
                for fd in fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            })
        };
        let mut child = command.spawn()?;
        drop((requests_in, replies_out, counter_file));
        let stderr = child.stderr.take();
        // Owned from here: dropped on any error below, it is reaped.
        let mut worker = Worker {
            child,
            requests: Some(File::from(requests)),
            replies: File::from(replies),
            stderr,
            counter,
            said: Said::default(),
            killed: false,
        };
        if let Some(stderr) = &worker.stderr {
            set_nonblocking(stderr.as_raw_fd())?;
        }
        let mut first = Vec::with_capacity(hello.len() + 4);
        first.extend_from_slice(&[0; 4]);
        first.extend_from_slice(hello);
        let sent = worker.send(&mut first);
        let mut ready = Vec::new();
        while sent.is_ok() && worker.child.try_wait()?.is_none() {
            if worker.wait(500) {
                if let Ok(true) = worker::read_frame(&mut worker.replies, &mut ready) {
                    return Ok(worker);
                }
                break;
            }
        }
        let status = worker.reap(Duration::from_secs(2));
        worker.drain(Duration::from_millis(500));
        let (_, why) = explain(status, &worker.said, None);
        Err(io::Error::other(format!(
            "a worker ended before its first task: {why}"
        )))
    }

    fn send(&mut self, frame: &mut [u8]) -> io::Result<()> {
        match &mut self.requests {
            Some(requests) => worker::write_frame(requests, frame),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Sends a batch of `count` tasks and waits for its reply, or for the worker's death.
    fn run(
        &mut self,
        frame: &mut [u8],
        count: usize,
        isolation: Isolation,
    ) -> Result<Vec<u8>, Death> {
        let (before, _) = self.counter.read();
        if self.send(frame).is_err() {
            return Err(self.death(before, count, isolation));
        }
        // The task is timed from when this thread first sees it running: at most one tick
        // later than it started. Without a timeout, a tick still checks that the worker lives.
        let tick = isolation
            .timeout
            .map_or(500, |t| (t.as_millis() / 10).clamp(1, 100) as libc::c_int);
        let mut seen = (before, Instant::now());
        loop {
            if self.wait(tick) {
                let mut reply = Vec::new();
                return match worker::read_frame(&mut self.replies, &mut reply) {
                    Ok(true) => Ok(reply),
                    Ok(false) | Err(_) => Err(self.death(before, count, isolation)),
                };
            }
            if !matches!(self.child.try_wait(), Ok(None)) {
                return Err(self.death(before, count, isolation));
            }
            let Some(limit) = isolation.timeout else {
                continue;
            };
            let (started, running) = self.counter.read();
            if started != seen.0 {
                seen = (started, Instant::now());
            } else if running && seen.1.elapsed() > limit {
                self.kill();
                self.drain(Duration::from_millis(200));
                return Err(Death {
                    task: (started - before - 1) as usize,
                    kind: Kind::TimedOut,
                    message: format!(
                        "it ran longer than timeout = {limit:?}; its worker was killed and replaced"
                    ),
                });
            }
        }
    }

    /// Waits up to `tick` ms for a reply, passing on the worker's stderr meanwhile; says
    /// whether a reply (or the end of the pipe) is there.
    fn wait(&mut self, tick: libc::c_int) -> bool {
        let end = Instant::now() + Duration::from_millis(tick as u64);
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.replies.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stderr.as_ref().map_or(-1, |e| e.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let left = end.saturating_duration_since(Instant::now()).as_millis() as libc::c_int;
            // SAFETY: `fds` is an array of two valid `pollfd`s; a negative descriptor is
            // skipped.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, left) };
            if ready <= 0 {
                return false;
            }
            if fds[0].revents != 0 {
                return true;
            }
            // One read a time round: a worker that writes without end must not keep this
            // thread from its reply, its clock or its deadline.
            self.pass_on_stderr();
            if Instant::now() >= end {
                return false;
            }
        }
    }

    /// Copies one read of what the worker wrote to stderr to this process's stderr, picking
    /// out what explains a death.
    fn pass_on_stderr(&mut self) -> Stderr {
        let Some(stderr) = &mut self.stderr else {
            return Stderr::Closed;
        };
        let mut buf = [0; 8192];
        match stderr.read(&mut buf) {
            Ok(0) => {
                self.stderr = None;
                Stderr::Closed
            }
            Ok(n) => {
                let _ = io::stderr().write_all(&buf[..n]);
                self.said.read(&buf[..n]);
                Stderr::Read
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Stderr::Read,
            Err(_) => Stderr::Empty,
        }
    }

    /// Passes on the rest of the worker's stderr, for up to `limit`: a program the task
    /// started may hold the pipe open after the worker's death.
    fn drain(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            match self.pass_on_stderr() {
                Stderr::Closed => return,
                Stderr::Read => {}
                Stderr::Empty => {
                    let Some(stderr) = &self.stderr else { return };
                    let left = end.saturating_duration_since(Instant::now());
                    let mut fd = libc::pollfd {
                        fd: stderr.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid `pollfd`.
                    unsafe { libc::poll(&mut fd, 1, left.as_millis() as libc::c_int) };
                }
            }
            if Instant::now() >= end {
                return;
            }
        }
    }

    /// The worker died during a batch: reaps it, and says which task was running and why.
    fn death(&mut self, before: u64, count: usize, isolation: Isolation) -> Death {
        let status = self.reap(Duration::from_secs(2));
        self.end_group();
        self.drain(Duration::from_millis(500));
        let (started, running) = self.counter.read();
        let started = (started - before) as usize;
        // The task that was running; else the next one, as when the batch could not be read.
        let task = if running { started - 1 } else { started }.min(count - 1);
        let (kind, message) = explain(status, &self.said, isolation.max_memory);
        Death {
            task,
            kind,
            message,
        }
    }

    /// Waits for the worker to end, up to `grace`, then kills it.
    fn reap(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.requests = None;
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.kill();
        self.child.wait()
    }

    /// Kills the worker and the programs its tasks started.
    fn kill(&mut self) {
        self.requests = None;
        self.killed = true;
        self.end_group();
        let _ = self.child.kill();
    }

    /// Kills what is left of the worker's process group: programs its tasks started.
    fn end_group(&self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: a signal to the group this worker leads; none is left once it is gone.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

impl Drop for Worker {
    /// Closes the worker's input, so that it exits as a program does (writing what its
    /// `#[cached]` hits counted), and reaps it; kills it if it does not end soon.
    fn drop(&mut self) {
        let grace = if self.killed {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        };
        let _ = self.reap(grace);
        self.drain(Duration::from_millis(100));
    }
}

/// Why a worker ended, from its exit status and what its stderr said.
fn explain(status: io::Result<ExitStatus>, said: &Said, max_memory: Option<u64>) -> (Kind, String) {
    let last = &said.last;
    let with_last = |what: String| {
        if last.is_empty() {
            what
        } else {
            format!("{what}; its last output: {last:?}")
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => return (Kind::Signal(0), format!("its worker was lost: {e}")),
    };
    if let Some(signal) = status.signal() {
        if let (libc::SIGABRT, Some(line)) = (signal, &said.out_of_memory) {
            let cap = match max_memory {
                Some(bytes) => format!("over max_memory = {}", human(bytes)),
                None => "over the memory the system allows".to_owned(),
            };
            return (
                Kind::OutOfMemory,
                format!("{line}, {cap}; its worker was replaced"),
            );
        }
        // Built with `panic = "abort"`, a panic ends the worker, and the message it printed
        // is the task's. (Unwinding, a panic never does.)
        if let (true, libc::SIGABRT, Some(message)) = (cfg!(panic = "abort"), signal, &said.panic) {
            return (Kind::Panicked, message.clone());
        }
        return (
            Kind::Signal(signal),
            with_last(format!(
                "its worker was killed by signal {signal} ({})",
                signal_name(signal)
            )),
        );
    }
    let code = status.code().unwrap_or(-1);
    (
        Kind::Exited(code),
        with_last(format!("its worker exited with code {code}")),
    )
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => {
            "SIGSEGV, segmentation fault: an invalid memory access, or a stack overflow"
        }
        libc::SIGABRT => "SIGABRT, aborted",
        libc::SIGBUS => "SIGBUS, bus error",
        libc::SIGILL => "SIGILL, illegal instruction",
        libc::SIGFPE => "SIGFPE, arithmetic error",
        libc::SIGKILL => "SIGKILL, killed from outside, often by the system when memory runs out",
        libc::SIGTERM => "SIGTERM, terminated",
        libc::SIGINT => "SIGINT, interrupted",
        libc::SIGPIPE => "SIGPIPE, broken pipe",
        libc::SIGXCPU => "SIGXCPU, over its CPU time limit",
        libc::SIGXFSZ => "SIGXFSZ, over its file size limit",
        _ => "a signal",
    }
}

/// Bytes in binary units, as `max_memory` is usually written.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The executable to re-launch: on Linux the running file itself, even if it was replaced
/// on disk since.
fn executable() -> io::Result<std::path::PathBuf> {
    if cfg!(target_os = "linux") {
        Ok("/proc/self/exe".into())
    } else {
        std::env::current_exe()
    }
}

/// A pipe whose ends close on `exec`: `(read, write)`. Made so in one call where the system
/// has one, so that a program another thread starts meanwhile gets neither end.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors written.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    // SAFETY: as above.
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let made = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if made != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are open, and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        // SAFETY: an open descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((read, write))
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

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: an open descriptor; the flags read are written back with one more.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
