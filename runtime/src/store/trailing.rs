//! A hash that trails a read: a thread kept for the whole process hashes a buffer's bytes
//! while another thread is still filling the rest of it, so that a read and its checksum take
//! the time of the read alone. Kept, not started per read: starting a thread costs more than
//! hashing a few MiB.

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
    /// The hashing thread, to wake.
    helper: Thread,
    /// Set while a fill uses the helper: one at a time; another waits for no one and hashes
    /// its own bytes.
    busy: AtomicBool,
    /// The fill handed over, taken by the helper.
    job: Mutex<Option<Job>>,
    /// How many bytes of the buffer are filled, for the helper to hash.
    filled: AtomicUsize,
    /// The fill stopped short (a failed read): the helper stops hashing.
    stop: AtomicBool,
    /// Whether the helper sleeps waiting for bytes, to be woken when more are filled.
    helper_sleeps: AtomicBool,
    /// The helper is done with the buffer: it reads none of it after this is set.
    done: AtomicBool,
    /// The digest, when `done` and the hash ran to the end.
    digest: AtomicU64,
    complete: AtomicBool,
}

/// A buffer to hash as it is filled.
struct Job {
    start: usize,
    len: usize,
    hasher: Xxh3,
    caller: Thread,
}

/// The helper, started on first use; `None` when the system cannot start a thread.
fn shared() -> Option<&'static Shared> {
    static SHARED: OnceLock<Option<&'static Shared>> = OnceLock::new();
    *SHARED.get_or_init(|| {
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
    })
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
        // A hash does not panic; were it to, the filler hashes its bytes itself.
        let digest = panic::catch_unwind(AssertUnwindSafe(|| hash_as_filled(shared, job)));
        if let Ok(Some(digest)) = digest {
            shared.digest.store(digest, Ordering::Relaxed);
            shared.complete.store(true, Ordering::Relaxed);
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
            // SAFETY: the filler published these bytes with the `Release` store of `filled`
            // after writing them, and neither writes nor frees them before `done` is set.
            let bytes = unsafe {
                std::slice::from_raw_parts((start + hashed) as *const u8, filled - hashed)
            };
            hasher.update(bytes);
            hashed = filled;
            waiting_since = None;
            continue;
        }
        if shared.stop.load(Ordering::Acquire) {
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
        shared.helper_sleeps.store(false, Ordering::SeqCst);
    }
    Some(hasher.digest())
}

/// Fills `dest` by calling `fill` on its steps in order, each given its offset in `dest`,
/// while the kept helper thread hashes what is filled into `hasher`; returns the digest of
/// all of it, or the first error of `fill` (the steps after it are not filled). `None`, with
/// nothing filled, when the helper is in use by another read or cannot be started: the caller
/// then reads and hashes on its own. `step` must not be zero.
pub(crate) fn fill_hashing(
    dest: &mut [MaybeUninit<u8>],
    step: usize,
    hasher: Xxh3,
    mut fill: impl FnMut(&mut [MaybeUninit<u8>], usize) -> std::io::Result<()>,
) -> Option<std::io::Result<u64>> {
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
        start: base as usize,
        len,
        hasher,
        caller: thread::current(),
    });
    shared.helper.unpark();
    // From here on the helper may read `dest`: whatever happens, wait until it is done.
    let finished = Finished(shared);
    let mut offset = 0;
    let mut failed = None;
    while offset < len {
        let end = len.min(offset + step);
        // SAFETY: `offset..end` lies inside `dest`, which this function borrows mutably, and
        // the helper reads none of it before `filled` says it is written.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.add(offset), end - offset) };
        if let Err(e) = fill(chunk, offset) {
            failed = Some(e);
            break;
        }
        offset = end;
        shared.filled.store(offset, Ordering::SeqCst);
        if shared.helper_sleeps.load(Ordering::SeqCst) {
            shared.helper.unpark();
        }
    }
    if failed.is_some() {
        shared.stop.store(true, Ordering::SeqCst);
        shared.helper.unpark();
    }
    drop(finished);
    let complete = shared.complete.load(Ordering::Relaxed);
    let digest = shared.digest.load(Ordering::Relaxed);
    shared.busy.store(false, Ordering::Release);
    Some(match failed {
        Some(e) => Err(e),
        None if complete => Ok(digest),
        None => Err(std::io::Error::other("the hashing thread failed")),
    })
}

/// Waits, when dropped (also by a panic in a fill), until the helper is done with the buffer,
/// telling it to stop if the fill ended early.
struct Finished(&'static Shared);

impl Drop for Finished {
    fn drop(&mut self) {
        let shared = self.0;
        if thread::panicking() {
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
        if thread::panicking() {
            shared.busy.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a fill of a copy of `src` gives, failing at `fail_at`; tried again while another
    /// test's read holds the helper.
    fn filled_from(src: &[u8], step: usize, fail_at: Option<usize>) -> std::io::Result<u64> {
        let mut dest = vec![MaybeUninit::<u8>::uninit(); src.len()];
        loop {
            let done = fill_hashing(&mut dest, step, Xxh3::new(), |chunk, at| {
                if fail_at == Some(at) {
                    return Err(std::io::Error::other("failed here"));
                }
                for (d, s) in chunk.iter_mut().zip(&src[at..]) {
                    d.write(*s);
                }
                Ok(())
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
            let digest = filled_from(&src, step, None);
            assert_eq!(
                digest.unwrap(),
                xxhash_rust::xxh3::xxh3_64(&src),
                "step {step}"
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
                let done = fill_hashing(&mut dest, 100, Xxh3::new(), |chunk, at| {
                    assert!(at < 500, "gives up");
                    chunk.fill(MaybeUninit::new(1));
                    Ok(())
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
        assert!(fill_hashing(&mut dest, 5, Xxh3::new(), |_, _| Ok(())).is_none());
        shared.busy.store(false, Ordering::Release);
    }
}
