//! The parent's handle on one worker process: starting it, a call's beginning and end, a
//! batch's round trip, its task's deadline, and its death, explained by [`super::death`].
//!
//! A driver thread sends its worker a batch and waits for the reply, polling the reply pipe,
//! the worker's stderr and the call's stop pipe together: stderr is passed on to this
//! process's, and its telling lines kept, since they say why a worker died (`memory
//! allocation of ... failed`, a panic message under `panic = "abort"`); the stop pipe says
//! the call ended at a failure, and the worker's task is not waited for.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::channel::{pipe, read_frame, send_frame, set_length, shared_file, socket_pair};
use super::death::{Said, explain};
use super::worker::{self, Counter};
use crate::parallel::TaskErrorKind as Kind;

/// Variables that size the thread pools of native libraries (OpenMP, OpenBLAS, MKL) and of
/// rayon: a worker gets its share of the cores in each, unless the program set it, as loky
/// does, so that workers calling threaded libraries do not oversubscribe the machine.
pub(super) const THREAD_VARIABLES: [&str; 4] = [
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
];

/// What a worker is started with, and what a kept one must match to serve a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) max_memory: Option<u64>,
    /// The worker's share of the cores, for [`THREAD_VARIABLES`].
    pub(super) threads: usize,
}

/// A worker process, and the ends of its pipes.
pub(super) struct Worker {
    child: Child,
    requests: Option<File>,
    replies: File,
    stderr: Option<ChildStderr>,
    counter: Counter,
    /// What its stderr said that tells why it died.
    said: Said,
    killed: bool,
    pub(super) settings: Settings,
}

/// How a worker ended while running a batch: which of its tasks it was running, and why.
pub(super) struct Death {
    pub(super) task: usize,
    pub(super) kind: Kind,
    pub(super) message: String,
}

/// Why a batch got no reply: its worker died, or the call stopped and the worker was killed.
pub(super) enum Interrupt {
    Died(Death),
    Stopped,
}

/// How a read of a worker's stderr went.
enum Stderr {
    Read,
    Empty,
    Closed,
}

/// What a wait for a worker's reply saw.
enum Waited {
    Reply,
    Stop,
    Nothing,
}

impl Worker {
    /// Starts a worker and waits until it is ready for a call.
    pub(super) fn start(settings: Settings) -> io::Result<Worker> {
        // Keeps the constructor that makes a re-launched executable a worker in the link.
        std::hint::black_box(&worker::ENTER);
        let (requests_in, requests) = socket_pair()?;
        let (replies, replies_out) = pipe()?;
        let counter_file = shared_file("a worker's task counter", |f| f.write_all(&[0; 8]))?;
        let counter = Counter::map(&counter_file)?;
        let fds = [
            requests_in.as_raw_fd(),
            replies_out.as_raw_fd(),
            counter_file.as_raw_fd(),
        ];
        let max_memory = settings
            .max_memory
            .map_or("-".to_owned(), |m| m.to_string());
        let [requests_fd, replies_fd, counter_fd] = fds;
        let parent = std::process::id();
        let mut command = Command::new(executable()?);
        command
            .env(
                super::WORKER_ENV,
                format!("{requests_fd},{replies_fd},{counter_fd},{parent},{max_memory}"),
            )
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        for variable in THREAD_VARIABLES {
            if std::env::var_os(variable).is_none() {
                command.env(variable, settings.threads.to_string());
            }
        }
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
            settings,
        };
        if let Some(stderr) = &worker.stderr {
            set_nonblocking(stderr.as_raw_fd())?;
        }
        worker.ready(None)?;
        Ok(worker)
    }

    /// Begins a call: sends its head (with the shared file of its arrays) and waits until the
    /// worker has read it. An error when the worker died meanwhile (what the body captures did
    /// not deserialize, say), or when the call stopped.
    pub(super) fn begin(&mut self, head: &[u8], fd: Option<RawFd>, stop: RawFd) -> io::Result<()> {
        match self.send(head, fd) {
            Ok(()) => self.ready(Some(stop)),
            Err(_) => self.ready(None),
        }
    }

    /// Ends a call: the worker waits for the next.
    pub(super) fn end(&mut self) -> io::Result<()> {
        self.send(&[1, 0, 0, 0, worker::END], None)
    }

    /// Waits for the empty frame a worker sends when it is ready, or says why it never came.
    fn ready(&mut self, stop: Option<RawFd>) -> io::Result<()> {
        let mut ready = Vec::new();
        while self.child.try_wait()?.is_none() {
            match self.wait(500, stop) {
                Waited::Reply => {
                    if let Ok(true) = read_frame(&mut self.replies, &mut ready) {
                        return Ok(());
                    }
                    break;
                }
                Waited::Stop => {
                    self.kill();
                    return Err(io::Error::other("the call stopped"));
                }
                Waited::Nothing => {}
            }
        }
        let status = self.reap(Duration::from_secs(2));
        self.drain(Duration::from_millis(500));
        let (_, why) = explain(status, &self.said, None);
        Err(io::Error::other(format!(
            "a worker ended before its first task: {why}"
        )))
    }

    /// Whether the worker still runs, and nothing waits unread on its pipe: a kept worker
    /// that something killed meanwhile is not given a call.
    pub(super) fn alive(&mut self) -> bool {
        let mut fd = libc::pollfd {
            fd: self.replies.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid `pollfd`.
        let ready = unsafe { libc::poll(&mut fd, 1, 0) };
        ready == 0 && matches!(self.child.try_wait(), Ok(None))
    }

    /// Closes the worker's socket: it exits once its call is done.
    pub(super) fn close(&mut self) {
        self.requests = None;
    }

    fn send(&mut self, frame: &[u8], fd: Option<RawFd>) -> io::Result<()> {
        match &mut self.requests {
            Some(requests) => send_frame(requests, frame, fd),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Sends a batch of `count` tasks and waits for its reply, for the worker's death, or for
    /// the call to stop.
    pub(super) fn run(
        &mut self,
        frame: &mut [u8],
        fd: Option<RawFd>,
        count: usize,
        timeout: Option<Duration>,
        stop: RawFd,
    ) -> Result<Vec<u8>, Interrupt> {
        let (before, _) = self.counter.read();
        if set_length(frame)
            .and_then(|()| self.send(frame, fd))
            .is_err()
        {
            return Err(Interrupt::Died(self.death(before, count)));
        }
        // The task is timed from when this thread first sees it running: at most one tick
        // later than it started. Without a timeout, a tick still checks that the worker lives.
        let tick = timeout.map_or(500, |t| (t.as_millis() / 10).clamp(1, 100) as libc::c_int);
        let mut seen = (before, Instant::now());
        loop {
            match self.wait(tick, Some(stop)) {
                Waited::Reply => {
                    let mut reply = Vec::new();
                    return match read_frame(&mut self.replies, &mut reply) {
                        Ok(true) => Ok(reply),
                        Ok(false) | Err(_) => Err(Interrupt::Died(self.death(before, count))),
                    };
                }
                Waited::Stop => {
                    self.kill();
                    return Err(Interrupt::Stopped);
                }
                Waited::Nothing => {}
            }
            if !matches!(self.child.try_wait(), Ok(None)) {
                return Err(Interrupt::Died(self.death(before, count)));
            }
            let Some(limit) = timeout else {
                continue;
            };
            let (started, running) = self.counter.read();
            if started != seen.0 {
                seen = (started, Instant::now());
            } else if running && seen.1.elapsed() > limit {
                self.kill();
                self.drain(Duration::from_millis(200));
                return Err(Interrupt::Died(Death {
                    task: (started - before - 1) as usize,
                    kind: Kind::TimedOut,
                    message: format!(
                        "it ran longer than timeout = {limit:?}; its worker was killed and replaced"
                    ),
                }));
            }
        }
    }

    /// Waits up to `tick` ms for a reply (or the end of the pipe), or for `stop`, passing on
    /// the worker's stderr meanwhile.
    fn wait(&mut self, tick: libc::c_int, stop: Option<RawFd>) -> Waited {
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
                libc::pollfd {
                    fd: stop.unwrap_or(-1),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let left = end.saturating_duration_since(Instant::now()).as_millis() as libc::c_int;
            // SAFETY: `fds` is an array of three valid `pollfd`s; a negative descriptor is
            // skipped.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 3, left) };
            if ready <= 0 {
                return Waited::Nothing;
            }
            if fds[0].revents != 0 {
                return Waited::Reply;
            }
            if fds[2].revents != 0 {
                return Waited::Stop;
            }
            // One read a time round: a worker that writes without end must not keep this
            // thread from its reply, its clock or its deadline.
            self.pass_on_stderr();
            if Instant::now() >= end {
                return Waited::Nothing;
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
    fn death(&mut self, before: u64, count: usize) -> Death {
        let status = self.reap(Duration::from_secs(2));
        self.end_group();
        self.drain(Duration::from_millis(500));
        let (started, running) = self.counter.read();
        let started = (started - before) as usize;
        // The task that was running; else the next one, as when the batch could not be read.
        let task = if running { started - 1 } else { started }.min(count - 1);
        let (kind, message) = explain(status, &self.said, self.settings.max_memory);
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
    pub(super) fn kill(&mut self) {
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

/// The executable to re-launch: on Linux the running file itself, even if it was replaced
/// on disk since.
fn executable() -> io::Result<std::path::PathBuf> {
    if cfg!(target_os = "linux") {
        Ok("/proc/self/exe".into())
    } else {
        std::env::current_exe()
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
