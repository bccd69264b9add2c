//! The parent's handle on one worker process: starting it, a batch's round trip through its
//! pipes, its task's deadline, and its death, explained by [`super::death`].
//!
//! A run's driver thread sends its worker a batch and waits for the reply, polling the reply
//! pipe and the worker's stderr together: stderr is passed on to this process's, and its
//! telling lines kept, since they say why a worker died (`memory allocation of ... failed`,
//! a panic message under `panic = "abort"`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Isolation;
use super::death::{Said, explain};
use super::worker::{self, Counter};
use crate::parallel::TaskErrorKind as Kind;

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
}

/// How a worker ended while running a batch: which of its tasks it was running, and why.
pub(super) struct Death {
    pub(super) task: usize,
    pub(super) kind: Kind,
    pub(super) message: String,
}

/// How a read of a worker's stderr went.
enum Stderr {
    Read,
    Empty,
    Closed,
}

impl Worker {
    /// Starts a worker and waits until it is ready to run tasks.
    pub(super) fn start(hello: &[u8]) -> io::Result<Worker> {
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
    pub(super) fn run(
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
