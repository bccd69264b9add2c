//! Hits, counted in their entries: each entry's header holds how often it was loaded, and its
//! modification time says when it last was (see [`super::format`]). Writing a count marks
//! the entry's folder as changed, so that sums kept of it are read again (`super::sums`).
//!
//! Writing the count at every hit would cost a system call each, which a small hit cannot
//! afford (it takes a few microseconds). So an entry's count is written at most once a second
//! by each process: the hit that finds the last write older than that writes its own and those
//! counted in memory since, through the file it already has open. What is still in memory is
//! written when the process exits normally (on Unix), and before `Memory` lists a folder, so
//! that a report made by the process that hit is exact. A process that is killed (or, on
//! other systems, that exits) loses at most its last second of hits per entry. Two processes
//! writing one entry's count at the same moment can lose one's addition.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::xxh3::xxh3_64;

use super::format::{COUNTED_HEAD, HITS_AT, counts_hits};
use super::read::{Opened, open_file};
use super::sums::entry_changed;
use crate::error::ErrorKind;

/// How often at most a process writes one entry's count.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// Beyond this many entries remembered, all counts are written and the table starts afresh.
const REMEMBERED: usize = 1 << 16;

/// What this process knows of one entry's hits.
#[derive(Clone)]
struct Tally {
    path: PathBuf,
    /// Hits not yet written.
    unwritten: u32,
    /// When the last of them happened.
    last_hit: Instant,
    /// When this process last wrote the count.
    written: Option<Instant>,
}

/// Entries hit by this process, by the hash of their path.
static TABLE: Mutex<Option<HashMap<u64, Tally, BuildHasherDefault<Id>>>> = Mutex::new(None);

/// Hashes a table key, already a well-mixed hash, as itself.
#[derive(Default)]
struct Id(u64);

impl Hasher for Id {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; this is never called.
        self.0 = xxh3_64(bytes);
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

/// Opens the entry at `path` to load it as a cache hit, for writing too if `writable` holds,
/// so that the hit can be counted. A cache that refuses writes (another user's, a read-only
/// mount) clears `writable`, and is read without counting from then on.
pub(crate) fn open(path: &Path, writable: &AtomicBool) -> Result<Opened, ErrorKind> {
    if writable.load(Ordering::Relaxed) {
        match Opened::open(path, true) {
            Err(ErrorKind::Io(e)) => {
                // A cache that refuses writes for good; anything else (too many open
                // files, say) only costs this hit its count.
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                ) {
                    tracing::debug!(path = %path.display(), error = %e, "cache entries are read-only; hits are not counted");
                    writable.store(false, Ordering::Relaxed);
                }
            }
            opened => return opened,
        }
    }
    Opened::open(path, false)
}

/// Counts a hit of the entry at `path`, open as `file` (see [`open`]), which also marks it as
/// just used. `tally` names the entry in this process's table (see `Folder::tally`). Best
/// effort: a failure only leaves the count and the time as they were.
pub(crate) fn count(file: &Opened, tally: u64, path: &Path) {
    if !file.writable || !counts_hits(file.head()) {
        return;
    }
    hit(tally, &|| path.to_owned(), |hits, _| {
        if let Err(e) = add_hits(file.file(), hits).and_then(|()| entry_changed(path)) {
            tracing::debug!(error = %e, "cannot count a hit");
        }
        true
    });
}

/// Counts a hit of the entry at `path` (made only when needed), served from a copy in
/// memory: when its count is due, the file is opened to write it. Says `false` when it found
/// no file: gone, or not written yet (a store queued in this process); its hits are then kept
/// for the next write.
pub(crate) fn count_closed(tally: u64, path: &dyn Fn() -> PathBuf) -> bool {
    let mut gone = false;
    hit(tally, path, |hits, path| {
        let tally = Tally {
            path,
            unwritten: hits,
            last_hit: Instant::now(),
            written: None,
        };
        match write_to_path(&tally, SystemTime::now()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                gone = true;
                return false;
            }
            Err(e) => tracing::debug!(error = %e, "cannot count a hit"),
            Ok(()) => {}
        }
        true
    });
    !gone
}

/// Counts a hit of the entry `id`, at `path` (made the first time only). If its count is due
/// to be written, `write` is given the hits to add and the path, and writes them (which sets
/// the file's modification time); if it says it could not, they are kept, to be written at
/// the next hit.
fn hit(id: u64, path: &dyn Fn() -> PathBuf, write: impl FnOnce(u32, PathBuf) -> bool) {
    let mut full = None;
    let due = {
        let Ok(mut table) = TABLE.lock() else { return };
        let table = table.get_or_insert_with(|| {
            crate::at_exit::at_exit(|| write_all(false));
            HashMap::default()
        });
        if table.len() >= REMEMBERED && !table.contains_key(&id) {
            full = Some(std::mem::take(table));
        }
        // The time is read under the lock, so that it never goes backwards from one hit of
        // an entry to the next: two threads never both find its count due.
        let now = Instant::now();
        let tally = table.entry(id).or_insert_with(|| Tally {
            path: path(),
            unwritten: 0,
            last_hit: now,
            written: None,
        });
        tally.unwritten = tally.unwritten.saturating_add(1);
        tally.last_hit = now;
        let due = tally
            .written
            .is_none_or(|written| now.duration_since(written) >= WRITE_EVERY);
        due.then(|| {
            tally.written = Some(now);
            (std::mem::take(&mut tally.unwritten), tally.path.clone())
        })
    };
    if let Some((hits, path)) = due
        && !write(hits, path.clone())
        && let Ok(mut table) = TABLE.lock()
    {
        // Back into the table, which a listing may have taken meanwhile (its entry gone with
        // it): the hits must not go with it.
        let tally = table
            .get_or_insert_with(HashMap::default)
            .entry(id)
            .or_insert_with(|| Tally {
                path,
                unwritten: 0,
                last_hit: Instant::now(),
                written: None,
            });
        tally.unwritten = tally.unwritten.saturating_add(hits);
        tally.written = None;
    }
    if let Some(table) = full {
        write_table(table, true);
    }
}

/// Writes every count still in memory: before a listing, and at exit, where `wait` is false
/// (another thread may hold the lock forever then).
pub(crate) fn write_all(wait: bool) {
    // One writer of the whole table at a time, so that a listing never reads an entry whose
    // count another thread's listing has taken from the table but not yet written.
    static WRITING_ALL: Mutex<()> = Mutex::new(());
    let _writing = if wait {
        WRITING_ALL.lock().unwrap_or_else(|e| e.into_inner())
    } else {
        match WRITING_ALL.try_lock() {
            Ok(guard) => guard,
            Err(_) => return,
        }
    };
    let table = if wait {
        TABLE.lock().ok()
    } else {
        TABLE.try_lock().ok()
    };
    let taken = table.and_then(|mut table| table.as_mut().map(std::mem::take));
    if let Some(table) = taken {
        // At exit, `tracing` may no longer be usable: the thread's locals are gone.
        write_table(table, wait);
    }
}

/// Writes the counts of `table`, reporting failures through `tracing` if `report` holds.
/// Outside exit, the counts of entries with no file yet (queued for the background writer) are
/// kept for a later write.
fn write_table(table: HashMap<u64, Tally, BuildHasherDefault<Id>>, report: bool) {
    let (now, instant) = (SystemTime::now(), Instant::now());
    let mut unwritten = Vec::new();
    for (id, tally) in table.into_iter().filter(|(_, u)| u.unwritten > 0) {
        let last_hit = now - instant.duration_since(tally.last_hit);
        match write_to_path(&tally, last_hit) {
            Err(e) if report && e.kind() == io::ErrorKind::NotFound => unwritten.push((id, tally)),
            Err(e) if report => {
                tracing::debug!(path = %tally.path.display(), error = %e, "cannot count hits");
            }
            _ => {}
        }
    }
    if unwritten.is_empty() {
        return;
    }
    if let Ok(mut table) = TABLE.lock() {
        let table = table.get_or_insert_with(HashMap::default);
        for (id, mut tally) in unwritten {
            tally.written = None;
            let kept = table.entry(id).or_insert_with(|| Tally {
                unwritten: 0,
                ..tally.clone()
            });
            kept.unwritten = kept.unwritten.saturating_add(tally.unwritten);
            kept.written = None;
        }
    }
}

/// Adds `tally`'s hits to the count in its file, and sets the file's time to its last hit,
/// unless another process has marked a later use already.
fn write_to_path(tally: &Tally, last_hit: SystemTime) -> io::Result<()> {
    // Whatever is at the path now: opened without waiting, and left alone unless it is an
    // entry of this format (a regular file, with its magic).
    let file = open_file(&tally.path, true, false)?;
    if !file.metadata()?.is_file() {
        return Ok(());
    }
    let mut head = [0u8; COUNTED_HEAD];
    read_at(&file, &mut head, 0)?;
    if !counts_hits(&head) {
        return Ok(());
    }
    let marked = file.metadata()?.modified()?;
    add_hits(&file, tally.unwritten)?;
    file.set_modified(marked.max(last_hit))?;
    // The count is written: an entry removed since must not have it kept for a later write.
    match entry_changed(&tally.path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        marked => marked,
    }
}

/// Adds `hits` to the count of the entry open as `file`, read just before: another process
/// may have added to it since this one opened the file.
fn add_hits(file: &File, hits: u32) -> io::Result<()> {
    // One read-and-write at a time in this process, so that a listing's writes and a hit's
    // never both add to the same count. (Held for two system calls, once a second an entry.)
    static WRITING: Mutex<()> = Mutex::new(());
    let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let mut count = [0u8; 4];
    read_at(file, &mut count, HITS_AT as u64)?;
    let count = u32::from_le_bytes(count).saturating_add(hits);
    write_at(file, &count.to_le_bytes(), HITS_AT as u64)
}

/// Reads `buf` from `offset` in `file`.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_exact_at(file, buf, offset);
    // Elsewhere through the cursor, which nothing else uses once the file is read.
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek};
        let mut file = file;
        file.seek(io::SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

/// Writes `data` at `offset` in `file`.
fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::write_all_at(file, data, offset);
    #[cfg(not(unix))]
    {
        use std::io::{Seek, Write};
        let mut file = file;
        file.seek(io::SeekFrom::Start(offset))?;
        file.write_all(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_whose_write_fails_stay_counted_when_a_listing_took_the_table() {
        let id = 0x005e_ed0f_1157;
        let path = || PathBuf::from("/nonexistent/joblet-hits-test.jbl");
        hit(id, &path, |hits, _| {
            assert_eq!(hits, 1);
            // A listing takes the whole table while this hit's count is being written.
            let mut table = TABLE.lock().unwrap();
            table.as_mut().unwrap().remove(&id);
            false
        });
        // Another test's listing may hold the table a moment (it puts back the hits of files
        // that do not exist, as this one's).
        let kept = (0..100).find_map(|_| {
            let table = TABLE.lock().unwrap();
            let kept = table.as_ref().and_then(|t| t.get(&id)).map(|t| t.unwritten);
            drop(table);
            kept.or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            })
        });
        assert_eq!(kept, Some(1), "the hit was lost");
    }
}
