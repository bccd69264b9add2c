//! A hash that trails a read: a thread kept for the whole process hashes a buffer's bytes
//! while another thread is still filling the rest of it, so that a read and its checksum take
//! the time of the read alone. Kept, not started per read: starting a thread costs more than
//! hashing a few MiB.

use std::io;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::xxh3::Xxh3;

/// How long a thread waiting for the other spins before it sleeps: about one step's read.
const SPIN: Duration = Duration::from_micros(100);

/// What the filling thread and the hashing thread share.
struct Shared {
    /// The process that started the helper: a child forked from it has no such thread.
    pid: u32,
    /// The hashing thread, to wake.
    helper: Thread,
    /// Set while a fill uses the helper: one at a time; another waits for no one and hashes
    /// its own bytes.
    busy: AtomicBool,
    /// The fill handed over, taken by the helper.
    job: Mutex<Option<Job>>,
    /// How many bytes of the buffer are filled, for the helper to hash.
    filled: AtomicUsize,
    /// The fill stopped short (a failed read, a panic): the helper stops hashing.
    stop: AtomicBool,
    /// Whether the helper sleeps waiting for bytes, to be woken when more are filled.
    helper_sleeps: AtomicBool,
    /// The helper is done with the buffer: it reads none of it after this is set.
    done: AtomicBool,
    /// The digest, when `done` and `complete`.
    digest: AtomicU64,
    /// Whether the helper hashed the whole buffer.
    complete: AtomicBool,
}

/// A buffer to hash as it is filled.
struct Job {
    start: *const u8,
    len: usize,
    hasher: Xxh3,
    caller: Thread,
}

// SAFETY: `start` points into a buffer that its filler keeps alive, and writes no byte of that
// the helper may read, until the helper says it is done (see `fill_hashing`).
unsafe impl Send for Job {}

/// The helper, started on first use; `None` when the system cannot start a thread, or in a
/// child process forked after it started.
fn shared() -> Option<&'static Shared> {
    static SHARED: OnceLock<Option<&'static Shared>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<&'static Shared>();
        let helper = thread::Builder::new()
            .name("joblet-hash".into())
            .spawn(move || {
                if let Ok(shared) = rx.recv() {
                    serve(shared);
                }
            })
            .ok()?;
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            pid: std::process::id(),
            helper: helper.thread().clone(),
            busy: AtomicBool::new(false),
            job: Mutex::new(None),
            filled: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            helper_sleeps: AtomicBool::new(false),
            done: AtomicBool::new(false),
            digest: AtomicU64::new(0),
            complete: AtomicBool::new(false),
        }));
        tx.send(shared).ok()?;
        Some(shared)
    });
    shared.filter(|shared| shared.pid == std::process::id())
}

/// The helper's life: take a job, hash it as it is filled, say it is done; sleep in between.
fn serve(shared: &'static Shared) {
    loop {
        let job = shared.job.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(job) = job else {
            thread::park();
            continue;
        };
        let caller = job.caller.clone();
        // A hash does not panic; were it to, the filler hashes the buffer itself.
        let digest = panic::catch_unwind(AssertUnwindSafe(|| hash_as_filled(shared, job)));
        if let Ok(Some(digest)) = digest {
            shared.digest.store(digest, Ordering::Relaxed);
            shared.complete.store(true, Ordering::Relaxed);
            #[cfg(test)]
            tests::HELPER_DIGESTS.fetch_add(1, Ordering::Relaxed);
        }
        shared.done.store(true, Ordering::Release);
        caller.unpark();
    }
}

/// Hashes `job`'s buffer as far as it is filled, waiting for more, to its end; `None` if the
/// fill stopped short.
fn hash_as_filled(shared: &Shared, job: Job) -> Option<u64> {
    let Job {
        start,
        len,
        mut hasher,
        ..
    } = job;
    let mut hashed = 0;
    let mut waiting_since = None;
    while hashed < len {
        let filled = shared.filled.load(Ordering::Acquire);
        if filled > hashed {
            // SAFETY: the filler wrote these bytes before it published `filled` (a `SeqCst`
            // store, which releases them), and neither writes nor frees them before `done`.
            let bytes = unsafe { std::slice::from_raw_parts(start.add(hashed), filled - hashed) };
            hasher.update(bytes);
            hashed = filled;
            waiting_since = None;
            continue;
        }
        // A stop after the last step (a fill that unwinds past a finished buffer) still leaves
        // every byte to hash: look at `filled` once more first.
        if shared.stop.load(Ordering::Acquire) && shared.filled.load(Ordering::Acquire) == hashed {
            return None;
        }
        let since = *waiting_since.get_or_insert_with(Instant::now);
        if since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        // Sleep, then look again: the filler wakes this thread after its next step, and the
        // timeout covers a wake that came between the look and the sleep.
        shared.helper_sleeps.store(true, Ordering::SeqCst);
        if shared.filled.load(Ordering::SeqCst) == hashed && !shared.stop.load(Ordering::SeqCst) {
            thread::park_timeout(Duration::from_millis(1));
        }
        shared.helper_sleeps.store(false, Ordering::Relaxed);
    }
    Some(hasher.digest())
}

/// Fills `dest` by calling `fill` on its steps in order, each given its offset in `dest` and
/// returning it written, while the kept helper thread hashes what is filled, continuing
/// `hasher`;
/// returns the digest of all of it, or the first error of `fill` (the steps after it are not
/// filled). `None`, with nothing filled, when the helper is in use by another read or cannot
/// be started: the caller then reads and hashes on its own.
///
/// # Panics
/// If `step` is zero, or `fill` returns other memory than the step it was given.
pub(crate) fn fill_hashing<F>(
    dest: &mut [MaybeUninit<u8>],
    step: usize,
    hasher: &Xxh3,
    mut fill: F,
) -> Option<io::Result<u64>>
where
    F: for<'a> FnMut(&'a mut [MaybeUninit<u8>], usize) -> io::Result<&'a mut [u8]>,
{
    assert!(step > 0, "steps of no bytes");
    let shared = shared()?;
    if shared.busy.swap(true, Ordering::Acquire) {
        return None;
    }
    shared.filled.store(0, Ordering::Relaxed);
    shared.stop.store(false, Ordering::Relaxed);
    shared.done.store(false, Ordering::Relaxed);
    shared.complete.store(false, Ordering::Relaxed);
    // Both threads reach the buffer through this pointer alone from here on: this one writes
    // each step, the helper reads the steps written, never the same bytes at once.
    let (base, len) = (dest.as_mut_ptr(), dest.len());
    *shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(Job {
        start: base.cast_const().cast(),
        len,
        hasher: hasher.clone(),
        caller: thread::current(),
    });
    shared.helper.unpark();
    // From here on the helper may read `dest`: whatever happens, wait until it is done.
    let mut handed = Handed {
        shared,
        finished: false,
    };
    let mut offset = 0;
    let mut failed = None;
    while offset < len {
        let end = len.min(offset + step);
        // SAFETY: `offset..end` lies inside `dest`, which this function borrows mutably, and
        // the helper reads none of it before `filled` says it is written.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.add(offset), end - offset) };
        let (at, size) = (chunk.as_ptr().cast::<u8>(), chunk.len());
        match fill(chunk, offset) {
            Ok(written) => assert!(
                written.as_ptr() == at && written.len() == size,
                "a fill must return the step it was given, written"
            ),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
        offset = end;
        shared.filled.store(offset, Ordering::SeqCst);
        if shared.helper_sleeps.load(Ordering::SeqCst) {
            shared.helper.unpark();
        }
    }
    let digest = handed.finish(failed.is_some());
    Some(match (failed, digest) {
        (Some(e), _) => Err(e),
        (None, Some(digest)) => Ok(digest),
        (None, None) => {
            // The helper failed; every byte is written, so hash them here.
            let mut here = hasher.clone();
            // SAFETY: every step was filled (the loop ran to the end without an error).
            here.update(unsafe { std::slice::from_raw_parts(base.cast_const().cast(), len) });
            Ok(here.digest())
        }
    })
}

/// A buffer handed to the helper: [`finish`](Handed::finish) waits until the helper is done
/// with it, also when dropped unfinished (a fill that panicked).
struct Handed {
    shared: &'static Shared,
    finished: bool,
}

impl Handed {
    /// Tells the helper to stop if the fill ended early, waits until it is done with the
    /// buffer, frees it for the next fill, and returns the digest if it hashed everything.
    fn finish(&mut self, early: bool) -> Option<u64> {
        let shared = self.shared;
        self.finished = true;
        if early {
            shared.stop.store(true, Ordering::SeqCst);
            shared.helper.unpark();
        }
        let since = Instant::now();
        while !shared.done.load(Ordering::Acquire) {
            if since.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                thread::park_timeout(Duration::from_millis(1));
            }
        }
        let digest = shared
            .complete
            .load(Ordering::Relaxed)
            .then(|| shared.digest.load(Ordering::Relaxed));
        shared.busy.store(false, Ordering::Release);
        digest
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::direct::init_from;
    use super::*;

    /// How many buffers the helper hashed to their end: a digest the caller computed in its
    /// place, after a helper failed, would be right too.
    pub(super) static HELPER_DIGESTS: AtomicUsize = AtomicUsize::new(0);

    /// What a fill of a copy of `src` gives, failing at `fail_at`; tried again while another
    /// test's read holds the helper.
    fn filled_from(src: &[u8], step: usize, fail_at: Option<usize>) -> io::Result<u64> {
        let mut dest = vec![MaybeUninit::<u8>::uninit(); src.len()];
        loop {
            let done = fill_hashing(&mut dest, step, &Xxh3::new(), |chunk, at| {
                if fail_at == Some(at) {
                    return Err(io::Error::other("failed here"));
                }
                let len = chunk.len();
                Ok(init_from(chunk, &src[at..at + len]))
            });
            match done {
                Some(done) => return done,
                None => thread::yield_now(),
            }
        }
    }

    #[test]
    fn the_trailing_hash_is_the_hash_of_what_was_filled() {
        let src: Vec<u8> = (0..(3 << 20) + 5)
            .map(|i| (i * 7 + i / 999) as u8)
            .collect();
        for step in [1 << 10, 64 << 10, 1 << 20, 4 << 20] {
            let hashed = HELPER_DIGESTS.load(Ordering::Relaxed);
            let digest = filled_from(&src, step, None);
            assert_eq!(
                digest.unwrap(),
                xxhash_rust::xxh3::xxh3_64(&src),
                "step {step}"
            );
            assert!(
                HELPER_DIGESTS.load(Ordering::Relaxed) > hashed,
                "hashed by the helper"
            );
        }
        // A fill that fails stops the helper, gives the fill's error, and leaves it free.
        let failed = filled_from(&src, 1 << 20, Some(2 << 20));
        assert_eq!(failed.unwrap_err().to_string(), "failed here");
        let digest = filled_from(&src[..100], 64, None);
        assert_eq!(digest.unwrap(), xxhash_rust::xxh3::xxh3_64(&src[..100]));
    }

    #[test]
    fn a_fill_that_panics_frees_the_helper() {
        let panicked = panic::catch_unwind(|| {
            let mut dest = vec![MaybeUninit::<u8>::uninit(); 1000];
            loop {
                let done = fill_hashing(&mut dest, 100, &Xxh3::new(), |chunk, at| {
                    assert!(at < 500, "gives up");
                    Ok(init_from(chunk, &[1; 100]))
                });
                if done.is_some() {
                    break;
                }
                thread::yield_now();
            }
        });
        assert!(panicked.is_err());
        let src = [3u8; 5000];
        let digest = filled_from(&src, 1000, None);
        assert_eq!(digest.unwrap(), xxhash_rust::xxh3::xxh3_64(&src));
    }

    #[test]
    fn a_second_fill_at_once_is_left_to_its_caller() {
        let shared = shared().unwrap();
        // Taken as another read would hold it, and given back as it would.
        while shared.busy.swap(true, Ordering::Acquire) {
            thread::yield_now();
        }
        let mut dest = vec![MaybeUninit::<u8>::uninit(); 10];
        let left = fill_hashing(&mut dest, 5, &Xxh3::new(), |_, _| {
            unreachable!("not filled")
        });
        assert!(left.is_none());
        shared.busy.store(false, Ordering::Release);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_forked_child_hashes_on_its_own_thread() {
        filled_from(&[5; 100], 10, None).unwrap(); // the helper runs in this process
        let mut dest = vec![MaybeUninit::<u8>::uninit(); 100];
        // SAFETY: the child calls nothing that allocates or takes a lock before `_exit`: the
        // helper is already started, so `fill_hashing` only compares process ids.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let left = fill_hashing(&mut dest, 10, &Xxh3::new(), |_, _| unreachable!());
            // SAFETY: ends the child at once, as a forked child of a threaded process must.
            unsafe { libc::_exit(if left.is_none() { 0 } else { 1 }) };
        }
        assert!(child > 0, "fork failed");
        let until = Instant::now() + Duration::from_secs(20);
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is written by the call.
        while unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) } == 0 {
            if Instant::now() > until {
                // SAFETY: the child is ours and still running.
                unsafe { libc::kill(child, libc::SIGKILL) };
                panic!("the child hung waiting for a helper it does not have");
            }
            thread::sleep(Duration::from_millis(5));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
