//! The worker side of `backend = processes`: how a re-launched executable becomes a worker
//! before its `main` runs, and the loop that serves its parent's calls, one after the other,
//! each a series of batches of one `parallel!` body.
//!
//! A worker must run the body of a `parallel!` call, a closure in the user's code whose types
//! only the call site knows. The call site turns the body into a function pointer (it captures
//! nothing: captured values travel as bytes) and instantiates [`run_batches`] for its types; the
//! parent sends both addresses as offsets from a function of this crate, and the worker, the
//! same executable, adds them to its own address of that function. No registry is needed, so
//! bodies inside generic functions work, and nothing runs in the worker but this loop: the
//! executable's constructors (`.init_array`) call [`enter`] before `main`, which never returns
//! in a worker.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::WORKER_ENV;
use super::arrays::{Mapped, Table, take};
use super::channel::{receive_frame, write_frame};
use crate::parallel::failure::{Payload, describe_panic};

/// Record tags in a reply: the task's result follows, or the message of its failure.
pub(super) const DONE: u8 = 0;
pub(super) const PANICKED: u8 = 1;
pub(super) const UNSENDABLE: u8 = 2;

/// Request tags: a call begins (its routine and captures follow), a batch of its tasks, the
/// call ends.
pub(super) const CALL: u8 = 1;
pub(super) const BATCH: u8 = 2;
pub(super) const END: u8 = 3;

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
    let Some(setting) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    INSIDE.store(true, Ordering::Relaxed);
    // SAFETY: this runs among the executable's constructors, before `main` and before this
    // program has started a thread, so nothing reads the environment at the same time. The
    // variable goes so that a program a task starts is not taken for a worker.
    unsafe { std::env::remove_var(WORKER_ENV) };
    let served = panic::catch_unwind(|| serve(&setting.to_string_lossy()));
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

/// What the parent sends as a call begins: the routine, and the table of the arrays of what
/// the body captured that came in shared memory. The captures' bytes follow it in the frame.
#[derive(Serialize, Deserialize)]
pub(super) struct CallHead {
    pub(super) routine: Routine,
    pub(super) arrays: Option<Table>,
}

/// What precedes a batch's items: how many there are, and the table of their arrays that
/// came in shared memory.
#[derive(Serialize, Deserialize)]
pub(super) struct BatchHead {
    pub(super) count: u32,
    pub(super) arrays: Option<Table>,
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
type Batches = fn(&mut Conn, *const (), &Call<'_>, Option<OwnedFd>) -> io::Result<bool>;

/// A call as a worker receives it: its head, and its captures' bytes.
struct Call<'a> {
    head: CallHead,
    captures: &'a [u8],
}

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

/// A worker's descriptors: requests come in (a socket, which may carry a shared file),
/// replies go out, and the counter says which task runs.
pub(super) struct Conn {
    requests: File,
    replies: File,
    counter: Counter,
}

fn serve(setting: &str) -> io::Result<()> {
    let fields: Vec<&str> = setting.split(',').collect();
    let [requests, replies, counter, parent, max_memory] = fields[..] else {
        return Err(bad_setting(setting));
    };
    let number = |field: &str| field.parse::<RawFd>().map_err(|_| bad_setting(setting));
    let (requests, replies) = (number(requests)?, number(replies)?);
    let (counter, parent) = (number(counter)?, number(parent)?);
    for fd in [requests, replies, counter] {
        // Not for the programs a task starts: they would hold the pipes open.
        // SAFETY: `fcntl` on a number; a wrong one fails with EBADF.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: the parent left these three descriptors open for this process, and nothing
    // else in it knows them: no code of the program has run yet.
    let (requests, replies, counter) = unsafe {
        (
            File::from_raw_fd(requests),
            File::from_raw_fd(replies),
            File::from_raw_fd(counter),
        )
    };
    // As Rust's `main` does: writing to a closed pipe is an error, not a fatal signal.
    // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if let Ok(bytes) = max_memory.parse::<u64>() {
        limit_memory(bytes)?;
    }
    leave_with_parent(parent);
    let mut conn = Conn {
        requests,
        replies,
        counter: Counter::map(&counter)?,
    };
    // The calls run on a thread of their own, started like any Rust thread (named, with its
    // stack guard), since this one has not been through Rust's start-up.
    std::thread::Builder::new()
        .name("joblet-worker".into())
        .spawn(move || serve_calls(&mut conn))?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the worker's thread panicked")))
}

fn bad_setting(setting: &str) -> io::Error {
    io::Error::other(format!(
        "{WORKER_ENV} must name three descriptors, a process and a memory limit, not {setting:?}"
    ))
}

/// Serves calls until the parent closes the socket: ready first, then each call's batches.
fn serve_calls(conn: &mut Conn) -> io::Result<()> {
    write_frame(&mut conn.replies, &mut [0; 4])?;
    let mut frame = Vec::new();
    while let Some(fd) = receive_frame(&mut conn.requests, &mut frame)? {
        let (head, captures) = match frame.split_first() {
            Some((&CALL, rest)) => {
                postcard::take_from_bytes::<CallHead>(rest).map_err(io::Error::other)?
            }
            _ => return Err(io::Error::other("a request out of order: expected a call")),
        };
        if address(head.routine.check) != serve as *const () {
            return Err(io::Error::other(
                "this executable is not the parent's: was it rebuilt while the program ran?",
            ));
        }
        // SAFETY: the parent took this address from a `Batches` (`Routine::of`) in the same
        // executable, which `check` confirmed.
        let batches =
            unsafe { std::mem::transmute::<*const (), Batches>(address(head.routine.batches)) };
        let body = address(head.routine.body);
        if !batches(conn, body, &Call { head, captures }, fd)? {
            break;
        }
    }
    Ok(())
}

/// Runs one call's batches, until it ends (`true`) or the parent closes the socket (`false`).
/// Each batch is a [`BatchHead`] and its items; its reply holds one record per task, in order.
fn run_batches<C, I, R>(
    conn: &mut Conn,
    body: *const (),
    call: &Call<'_>,
    fd: Option<OwnedFd>,
) -> io::Result<bool>
where
    C: DeserializeOwned,
    I: DeserializeOwned,
    R: Serialize,
{
    // SAFETY: `body` is the address of the call site's `fn(&C, I) -> R`, the function pointer
    // this `run_batches::<C, I, R>` was instantiated with in `Routine::of`.
    let body = unsafe { std::mem::transmute::<*const (), fn(&C, I) -> R>(body) };
    let arrays = mapped(fd, call.head.arrays.as_ref())?;
    let captures: C = take(call.captures, arrays.as_ref())
        .map(|(captures, _)| captures)
        .map_err(|e| {
            io::Error::other(format!(
                "what the body captures could not be received: {e} (does its `Deserialize` read what its `Serialize` writes?)"
            ))
        })?;
    // Ready: an empty frame. A worker that dies before it is no task's fault.
    write_frame(&mut conn.replies, &mut [0; 4])?;
    let (mut batch, mut reply) = (Vec::new(), Vec::new());
    loop {
        let Some(fd) = receive_frame(&mut conn.requests, &mut batch)? else {
            return Ok(false);
        };
        let (head, mut items) = match batch.split_first() {
            Some((&BATCH, rest)) => postcard::take_from_bytes::<BatchHead>(rest)
                .map_err(|e| io::Error::other(format!("a batch could not be read: {e}")))?,
            Some((&END, _)) => return Ok(true),
            _ => return Err(io::Error::other("a request out of order: expected a batch")),
        };
        let arrays = mapped(fd, head.arrays.as_ref())?;
        reply.clear();
        reply.extend_from_slice(&[0; 4]);
        for _ in 0..head.count {
            match take::<I>(items, arrays.as_ref()) {
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
                    let why = format!("its input could not be received: {e}");
                    failure(&mut reply, UNSENDABLE, &why);
                }
            }
        }
        // Results its tasks stored in the cache are in their files before the caller hears of
        // them: a worker lives on between calls, and its background writer with it.
        crate::cache::flush();
        write_frame(&mut conn.replies, &mut reply)?;
    }
}

/// The map of the shared file a request came with, when its table says it holds arrays.
fn mapped(fd: Option<OwnedFd>, table: Option<&Table>) -> io::Result<Option<Mapped>> {
    match (fd, table) {
        (Some(fd), Some(table)) => Mapped::new(fd, table).map(Some),
        (None, Some(_)) => Err(io::Error::other("shared arrays came without their file")),
        (_, None) => Ok(None),
    }
}

/// Appends a task's record to a reply: `[tag][len: u32][bytes]`.
fn record<R: Serialize>(reply: &mut Vec<u8>, outcome: std::thread::Result<R>) {
    match outcome {
        Ok(value) => {
            let start = reply.len();
            reply.push(DONE);
            reply.extend_from_slice(&[0; 4]);
            let sent = panic::catch_unwind(AssertUnwindSafe(|| {
                postcard::to_io(&value, &mut *reply).map(drop)
            }));
            let why = match sent {
                Ok(Ok(())) => {
                    let len = (reply.len() - start - 5) as u32;
                    reply[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(payload) => describe_panic(Payload::new(payload).get()),
            };
            reply.truncate(start);
            let why = format!("its result could not be sent: {why}");
            failure(reply, UNSENDABLE, &why);
        }
        Err(payload) => {
            let payload = Payload::new(payload);
            failure(reply, PANICKED, &describe_panic(payload.get()))
        }
    }
}

fn failure(reply: &mut Vec<u8>, tag: u8, message: &str) {
    reply.push(tag);
    reply.extend_from_slice(&(message.len() as u32).to_le_bytes());
    reply.extend_from_slice(message.as_bytes());
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
/// socket ends it).
fn leave_with_parent(parent: libc::pid_t) {
    let _ = std::thread::Builder::new()
        .name("joblet-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(200));
                // SAFETY: `getppid` reads this process's parent; `_exit` ends the process
                // without running anything.
                if unsafe { libc::getppid() } != parent {
                    unsafe { libc::_exit(3) };
                }
            }
        });
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
        // SAFETY: the file is the parent's shared memory of 8 written bytes, shared with no
        // one else; both processes access it only through the atomic below.
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
