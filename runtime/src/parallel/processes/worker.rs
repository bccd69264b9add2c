//! The worker side of `backend = processes`: how a re-launched executable becomes a worker
//! before its `main` runs, and the loop that runs batches of tasks for the parent.
//!
//! A worker must run the body of one `parallel!` call, a closure in the user's code whose types
//! only the call site knows. The call site turns the body into a function pointer (it captures
//! nothing: captured values travel as bytes) and instantiates [`run_batches`] for its types; the
//! parent sends both addresses as offsets from a function of this crate, and the worker, the
//! same executable, adds them to its own address of that function. No registry is needed, so
//! bodies inside generic functions work, and nothing runs in the worker but this loop: the
//! executable's constructors (`.init_array`) call [`enter`] before `main`, which never returns
//! in a worker.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::WORKER_ENV;
use crate::parallel::failure::describe_panic;

/// Record tags in a reply: the task's result follows, or the message of its failure.
pub(super) const DONE: u8 = 0;
pub(super) const PANICKED: u8 = 1;
pub(super) const UNSENDABLE: u8 = 2;

/// Whether this process is a worker.
static INSIDE: AtomicBool = AtomicBool::new(false);

/// Whether this process is a worker.
pub(super) fn inside() -> bool {
    INSIDE.load(Ordering::Relaxed)
}

before_main! {
    /// Runs [`enter`] before `main`. The parent refers to it when it starts a worker.
    pub(super) static ENTER = enter;
}

/// Becomes a worker when this process was started as one, and exits when the parent is done;
/// in any other process, returns at once.
extern "C" fn enter() {
    let Some(fds) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    INSIDE.store(true, Ordering::Relaxed);
    // SAFETY: this runs among the executable's constructors, before `main` and before this
    // program has started a thread, so nothing reads the environment at the same time. The
    // variable goes so that a program a task starts is not taken for a worker.
    unsafe { std::env::remove_var(WORKER_ENV) };
    let served = panic::catch_unwind(|| serve(&fds.to_string_lossy()));
    let code = match served {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("joblet worker: {e}");
            2
        }
        Err(_) => 101,
    };
    // Runs the exit handlers, which write what `#[cached]` hits counted.
    std::process::exit(code)
}

/// What the parent sends first: the routine, what the body captured and the worker's limits.
#[derive(Serialize, Deserialize)]
pub(super) struct Hello {
    pub(super) routine: Routine,
    pub(super) captures: Vec<u8>,
    pub(super) max_memory: Option<u64>,
}

/// The code a worker runs: [`run_batches`] for the call site's types, and the call site's body,
/// as offsets from [`anchor`]. `check` is the offset of [`serve`], for the worker to make sure it
/// is the parent's executable.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Routine {
    batches: isize,
    body: isize,
    check: isize,
}

/// What [`run_batches`] is, for every instantiation.
type Batches = fn(Conn, *const (), &[u8]) -> io::Result<()>;

impl Routine {
    /// The routine that runs `body` on deserialized items.
    pub(super) fn of<C, I, R>(body: fn(&C, I) -> R) -> Routine
    where
        C: DeserializeOwned,
        I: DeserializeOwned,
        R: Serialize,
    {
        let batches: Batches = run_batches::<C, I, R>;
        Routine {
            batches: offset(batches as *const ()),
            body: offset(body as *const ()),
            check: offset(serve as *const ()),
        }
    }
}

/// A function of this crate that every worker has at the parent's offset from the others.
#[inline(never)]
fn anchor() {}

fn offset(code: *const ()) -> isize {
    (code as usize).wrapping_sub(anchor as fn() as usize) as isize
}

fn address(offset: isize) -> *const () {
    (anchor as fn() as usize).wrapping_add_signed(offset) as *const ()
}

/// A worker's descriptors: batches come in, replies go out, and the counter says which task
/// runs.
pub(super) struct Conn {
    requests: File,
    replies: File,
    counter: Counter,
}

fn serve(setting: &str) -> io::Result<()> {
    let numbers: Vec<RawFd> = setting.split(',').filter_map(|n| n.parse().ok()).collect();
    let [requests, replies, counter, parent] = numbers[..] else {
        return Err(io::Error::other(format!(
            "{WORKER_ENV} must name three descriptors and a process, not {setting:?}"
        )));
    };
    for fd in [requests, replies, counter] {
        // Not for the programs a task starts: they would hold the pipes open.
        // SAFETY: `fcntl` on a number; a wrong one fails with EBADF.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: the parent left these three descriptors open for this process, and nothing
    // else in it knows them: no code of the program has run yet.
    let (mut requests, replies, counter) = unsafe {
        (
            File::from_raw_fd(requests),
            File::from_raw_fd(replies),
            File::from_raw_fd(counter),
        )
    };
    // As Rust's `main` does: writing to a closed pipe is an error, not a fatal signal.
    // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut frame = Vec::new();
    if !read_frame(&mut requests, &mut frame)? {
        return Ok(());
    }
    let hello: Hello = postcard::from_bytes(&frame).map_err(io::Error::other)?;
    if address(hello.routine.check) != serve as *const () {
        return Err(io::Error::other(
            "this executable is not the parent's: was it rebuilt while the program ran?",
        ));
    }
    if let Some(bytes) = hello.max_memory {
        limit_memory(bytes)?;
    }
    leave_with_parent(parent);
    let conn = Conn {
        requests,
        replies,
        counter: Counter::map(&counter)?,
    };
    // SAFETY: the parent took this address from a `Batches` (`Routine::of`) in the same
    // executable, which `check` confirmed.
    let batches =
        unsafe { std::mem::transmute::<*const (), Batches>(address(hello.routine.batches)) };
    // As a number: a pointer is not `Send`, and this one points at code, not data.
    let body = address(hello.routine.body) as usize;
    // The tasks run on a thread of their own, started like any Rust thread (named, with its
    // stack guard), since this one has not been through Rust's start-up.
    std::thread::Builder::new()
        .name("joblet-worker".into())
        .spawn(move || batches(conn, body as *const (), &hello.captures))?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the worker's thread panicked")))
}

/// Caps the address space, so that an allocation past `bytes` fails.
fn limit_memory(bytes: u64) -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` to fill in, then to pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_AS, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        limit.rlim_cur = (bytes as libc::rlim_t).min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Ends this worker if its parent, `parent`, dies while a task runs (between tasks, the closed
/// pipe ends it).
fn leave_with_parent(parent: libc::pid_t) {
    let _ = std::thread::Builder::new()
        .name("joblet-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(200));
                // SAFETY: as above; `_exit` ends the process without running anything.
                if unsafe { libc::getppid() } != parent {
                    unsafe { libc::_exit(3) };
                }
            }
        });
}

/// Runs batches until the parent closes the pipe. Each batch is `[count: u32][item]...`; its
/// reply holds one record per task, in order.
fn run_batches<C, I, R>(mut conn: Conn, body: *const (), captures: &[u8]) -> io::Result<()>
where
    C: DeserializeOwned,
    I: DeserializeOwned,
    R: Serialize,
{
    // SAFETY: `body` is the address of the call site's `fn(&C, I) -> R`, the function pointer
    // this `run_batches::<C, I, R>` was instantiated with in `Routine::of`.
    let body = unsafe { std::mem::transmute::<*const (), fn(&C, I) -> R>(body) };
    let captures: C = postcard::from_bytes(captures).map_err(|e| {
        io::Error::other(format!(
            "what the body captures could not be received: {e} (does its `Deserialize` read what its `Serialize` writes?)"
        ))
    })?;
    // Ready: an empty frame. A worker that dies before it is no task's fault.
    write_frame(&mut conn.replies, &mut [0; 4])?;
    let (mut batch, mut reply) = (Vec::new(), Vec::new());
    while read_frame(&mut conn.requests, &mut batch)? {
        reply.clear();
        reply.extend_from_slice(&[0; 4]);
        let count = batch
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
        let mut items = batch.get(4..).unwrap_or_default();
        for _ in 0..count {
            match postcard::take_from_bytes::<I>(items) {
                Ok((item, rest)) => {
                    items = rest;
                    conn.counter.begin();
                    let outcome = panic::catch_unwind(AssertUnwindSafe(|| body(&captures, item)));
                    // Still the task's: its result's serialization may fail or run out of memory.
                    record(&mut reply, outcome);
                    conn.counter.end();
                }
                Err(e) => {
                    // The items after it cannot be found either.
                    items = &[];
                    failure(
                        &mut reply,
                        UNSENDABLE,
                        &format!("its input could not be received: {e}"),
                    );
                }
            }
        }
        write_frame(&mut conn.replies, &mut reply)?;
    }
    Ok(())
}

/// Appends a task's record to a reply.
fn record<R: Serialize>(reply: &mut Vec<u8>, outcome: std::thread::Result<R>) {
    match outcome {
        Ok(value) => {
            let start = reply.len();
            reply.push(DONE);
            let sent = panic::catch_unwind(AssertUnwindSafe(|| {
                postcard::to_io(&value, &mut *reply).map(drop)
            }));
            let why = match sent {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(payload) => describe_panic(&*payload),
            };
            reply.truncate(start);
            failure(
                reply,
                UNSENDABLE,
                &format!("its result could not be sent: {why}"),
            );
        }
        Err(payload) => failure(reply, PANICKED, &describe_panic(&*payload)),
    }
}

fn failure(reply: &mut Vec<u8>, tag: u8, message: &str) {
    reply.push(tag);
    postcard::to_io(message, &mut *reply).expect("a string always serializes");
}

/// A word shared by a worker and its parent: twice the number of tasks the worker has started,
/// plus one while a task runs. The parent reads it to time a task, and to learn which task a
/// worker was running when it died.
pub(super) struct Counter {
    map: memmap2::MmapMut,
    tasks: u64,
}

impl Counter {
    pub(super) fn map(file: &File) -> io::Result<Counter> {
        // SAFETY: the file is the parent's unnamed temporary file, shared with no one else;
        // both processes access it only through the atomic below.
        let map = unsafe { memmap2::MmapOptions::new().len(8).map_mut(file)? };
        Ok(Counter { map, tasks: 0 })
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the map is 8 bytes long and page-aligned, lives as long as `self`, and is
        // only ever accessed atomically, here and in the other process.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr() as *mut u64) }
    }

    fn begin(&mut self) {
        self.word().store(self.tasks * 2 + 1, Ordering::Release);
    }

    fn end(&mut self) {
        self.tasks += 1;
        self.word().store(self.tasks * 2, Ordering::Release);
    }

    /// Tasks started so far, and whether one is running.
    pub(super) fn read(&self) -> (u64, bool) {
        let word = self.word().load(Ordering::Acquire);
        (word.div_ceil(2), word & 1 == 1)
    }
}

/// Reads a `[len: u32][bytes]` frame into `buf`; `false` at the end of the stream.
pub(super) fn read_frame(from: &mut File, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0; 4];
    loop {
        match from.read(&mut len[..1]) {
            Ok(0) => return Ok(false),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    from.read_exact(&mut len[1..])?;
    let len = u32::from_le_bytes(len) as usize;
    buf.clear();
    buf.resize(len, 0);
    from.read_exact(buf)?;
    Ok(true)
}

/// Writes `frame`, whose first four bytes are reserved for its length, in one call.
pub(super) fn write_frame(to: &mut File, frame: &mut [u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len() - 4)
        .map_err(|_| io::Error::other("a batch or a reply of 4 GiB or more"))?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    to.write_all(frame)
}
