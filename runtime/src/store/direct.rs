//! Reading a large payload straight into a value's memory, its checksum computed on the way:
//! one pass over the memory, no map and no copy. When a core is free, the kept hashing thread
//! hashes each step as soon as it is read (`trailing.rs`), and past [`SHARE_FROM`] two threads
//! share the reads while this one hashes the chunks in order.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use super::aside::{core_free, join, spawn_scoped};
use super::trailing::fill_hashing;
use crate::xxh3::Xxh3;

/// Reads on one thread go in steps of this size, each hashed while it is still in cache.
const STEP: usize = 1 << 20;

/// From this size on, a read is shared with a second thread when a core is free. The kernel's
/// copy into fresh memory, not the hash, bounds a large read, and two cores copy it faster
/// than one; below this size, starting the thread costs what sharing saves. Loads of a
/// `Vec<f64>`, alternating on this project's 2-core VM (300 rounds, medians): 8 MB 611 µs
/// shared against 445 µs on one thread, 16 MB 1.43 against 1.49 ms, 32 MB 2.97 against 3.58
/// ms; 80 MB 9.35 ms, against `np.load`'s 12.9 (README's performance table).
const SHARE_FROM: usize = 16 << 20;

/// Fills `dest` from `file`, from byte `at` on (the file must hold that many more), hashing
/// what is read into `hasher`; returns the digest. With a core free, a read from
/// [`SHARE_FROM`] on is shared between two threads (on Unix, which reads at an offset without
/// moving a shared cursor), and any other is hashed on the kept thread as it arrives.
pub(crate) fn read_hashing(
    file: &File,
    at: u64,
    dest: &mut [MaybeUninit<u8>],
    hasher: Xxh3,
) -> io::Result<u64> {
    if !core_free() {
        return read_hashing_here(file, at, dest, hasher);
    }
    if cfg!(unix) && dest.len() >= SHARE_FROM {
        return read_hashing_shared(file, at, dest, hasher);
    }
    read_hashing_trailing(file, at, dest, hasher)
}

/// [`read_hashing`] on this thread, the kept hashing thread hashing each step as soon as it
/// is read; on this thread alone when that thread is in use. Steps of a quarter MiB to one
/// MiB: the last step's hash is the wait at the end. Loads of 2 MiB to 16 MB alternating
/// with the hash on this thread (a scratch loop outside this repository, 15 rounds of 20,
/// medians): 2 MiB 207 against 226 µs, 4 MiB 390 against 457, 8 MB 741 against 887, 16 MB
/// 1.57 against 1.82 ms; a hit on a `Vec<f64>` of 1,000,000 in `benches/peers.rs`, 867
/// against 983 µs.
fn read_hashing_trailing(
    file: &File,
    at: u64,
    dest: &mut [MaybeUninit<u8>],
    hasher: Xxh3,
) -> io::Result<u64> {
    let step = (dest.len() / 8).clamp(STEP / 4, STEP);
    let trailed = fill_hashing(dest, step, &hasher, |chunk, offset| {
        read_exact_at(file, chunk, at + offset as u64)
    });
    match trailed {
        Some(done) => done,
        None => read_hashing_here(file, at, dest, hasher),
    }
}

/// [`read_hashing`] on this thread alone.
fn read_hashing_here(
    file: &File,
    at: u64,
    dest: &mut [MaybeUninit<u8>],
    mut hasher: Xxh3,
) -> io::Result<u64> {
    let mut offset = at;
    for chunk in dest.chunks_mut(STEP) {
        let len = chunk.len() as u64;
        hasher.update(read_exact_at(file, chunk, offset)?);
        offset += len;
    }
    Ok(hasher.digest())
}

/// [`read_hashing`] with a second thread: both take the next chunk not yet taken and read it;
/// this thread also hashes the chunks in order, each as soon as it is read (its own while
/// still in cache). Every chunk taken is read or given an error, so that the wait for one
/// always ends; a helper that cannot start leaves every chunk to this thread.
fn read_hashing_shared(
    file: &File,
    at: u64,
    dest: &mut [MaybeUninit<u8>],
    mut hasher: Xxh3,
) -> io::Result<u64> {
    let step = (dest.len() / 16).clamp(STEP, 4 * STEP);
    let chunks: Vec<Mutex<Option<&mut [MaybeUninit<u8>]>>> =
        dest.chunks_mut(step).map(|c| Mutex::new(Some(c))).collect();
    let read: Vec<OnceLock<io::Result<&[u8]>>> = chunks.iter().map(|_| OnceLock::new()).collect();
    // The lowest chunk whose read failed. A chunk after it is not read, and is given an error
    // of its own; a chunk before it is still read, so that the first error in order, the one
    // returned, is always a real one.
    let (next, failed) = (AtomicUsize::new(0), AtomicUsize::new(usize::MAX));
    // Takes the next chunk and reads it; `false` once none is left.
    let take = || {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = chunks.get(i) else {
            return false;
        };
        let chunk = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let chunk = chunk.expect("each chunk is taken once");
        let done = if i > failed.load(Ordering::Relaxed) {
            Err(io::Error::other("not read: an earlier chunk's read failed"))
        } else {
            let done = read_exact_at(file, chunk, at + (i * step) as u64).map(|c| &*c);
            if done.is_err() {
                failed.fetch_min(i, Ordering::Relaxed);
            }
            done
        };
        let _ = read[i].set(done);
        true
    };
    let hashed = std::thread::scope(|scope| {
        let mut helper = spawn_scoped(scope, || while take() {});
        let (mut hashed, mut more) = (0, true);
        while hashed < read.len() {
            if more {
                more = take();
            }
            while let Some(Ok(chunk)) = read.get(hashed).and_then(OnceLock::get) {
                hasher.update(chunk);
                hashed += 1;
            }
            match read.get(hashed).map(OnceLock::get) {
                Some(Some(Err(_))) => break,
                Some(None) if !more => {
                    // The helper is reading that chunk. Had it stopped without reading it,
                    // it panicked: `join` passes that on.
                    match helper.take_if(|h| h.is_finished()) {
                        Some(stopped) => join(stopped),
                        None if helper.is_none() => break,
                        None => std::thread::yield_now(),
                    }
                }
                _ => {}
            }
        }
        hashed
    });
    match read.into_iter().nth(hashed).map(OnceLock::into_inner) {
        None => Ok(hasher.digest()),
        Some(Some(Err(e))) => Err(e),
        Some(_) => Err(io::Error::other("a chunk of the read was never read")),
    }
}

/// Fills `dest` from `file` at byte `at`, where the file must hold as many bytes, and returns
/// it initialized. The memory is not zeroed first: a read into a large new vector is then its
/// only pass.
fn read_exact_at<'a>(
    file: &File,
    dest: &'a mut [MaybeUninit<u8>],
    at: u64,
) -> io::Result<&'a mut [u8]> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut done = 0;
        while done < dest.len() {
            let left = &mut dest[done..];
            let offset = libc::off_t::try_from(at + done as u64)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: `pread` writes at most `left.len()` bytes into memory borrowed mutably
            // here; what it has written is never read before it says so.
            let n = unsafe {
                libc::pread(
                    file.as_raw_fd(),
                    left.as_mut_ptr().cast(),
                    left.len(),
                    offset,
                )
            };
            match n {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n if n > 0 => done += n as usize,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek};
        dest.fill(MaybeUninit::new(0));
        let mut file = file;
        file.seek(io::SeekFrom::Start(at))?;
        // SAFETY: just zeroed.
        file.read_exact(unsafe { assume_init(dest) })?;
    }
    // SAFETY: every byte was written by the reads above.
    Ok(unsafe { assume_init(dest) })
}

/// Copies `src` into `dest`, of the same length, and returns it initialized.
pub(crate) fn init_from<'a>(dest: &'a mut [MaybeUninit<u8>], src: &[u8]) -> &'a mut [u8] {
    assert_eq!(dest.len(), src.len());
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout; the lengths are equal.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dest.as_mut_ptr().cast(), src.len());
        assume_init(dest)
    }
}

/// `dest`, every byte of which has been written.
///
/// # Safety
/// Every byte of `dest` must be initialized.
unsafe fn assume_init(dest: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: the caller vouches that the bytes are initialized; the layouts are the same.
    unsafe { &mut *(dest as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn a_read_hashes_the_same_here_trailed_or_shared_and_a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let bytes: Vec<u8> = (0..(STEP * 5 + 17)).map(|i| (i * 31) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let at = 5;
        let expected = xxhash_rust::xxh3::xxh3_64(&bytes[at..]);
        type Read = fn(&File, u64, &mut [MaybeUninit<u8>], Xxh3) -> io::Result<u64>;
        for read in [
            read_hashing_here as Read,
            read_hashing_trailing,
            read_hashing_shared,
        ] {
            let file = File::open(&path).unwrap();
            let mut dest = vec![MaybeUninit::uninit(); bytes.len() - at];
            let digest = read(&file, at as u64, &mut dest, Xxh3::new());
            assert_eq!(digest.unwrap(), expected);
            // SAFETY: the read filled `dest`.
            assert_eq!(unsafe { assume_init(&mut dest) }, &bytes[at..]);
            let mut longer = vec![MaybeUninit::uninit(); bytes.len() - at + 1];
            let short = read(&file, at as u64, &mut longer, Xxh3::new());
            assert_eq!(short.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        }
    }
}
