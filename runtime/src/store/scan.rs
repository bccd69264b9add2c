//! A folder's listing, shard by shard: each shard folder's entries are read (a stat, and a
//! header read for a report) on a few threads at once, since a listing is system calls that
//! the kernel serves in parallel, and handed over in turn on the caller's thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use super::layout::key_of_file;
use super::read::read_header;
use super::temp::TEMP_PREFIX;
use super::{Detail, EntryInfo, Found};
use crate::error::{Error, ErrorKind};

/// A temporary file older than this belongs to a writer that crashed: no live writer takes
/// this long between creating its file and renaming it.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// Fewer shards than this are read on the caller's thread: threads would cost more than they
/// save.
const SHARDS_FOR_THREADS: usize = 16;

/// Threads that read shards at most.
const MOST_THREADS: usize = 8;

/// A shard folder, and the function and code version whose entries it holds.
#[derive(Clone)]
pub(super) struct Shard {
    pub function: String,
    pub version: String,
    pub dir: PathBuf,
}

/// Hands `found` what the `shards` hold, read as far as `detail` says.
pub(super) fn scan(
    shards: &[Shard],
    detail: Detail,
    found: &mut dyn FnMut(Found),
) -> Result<(), Error> {
    scan_each(shards, detail, &mut |_, held| {
        held.into_iter().for_each(&mut *found)
    })
}

/// Hands `each` what each of the `shards` holds, read as far as `detail` says, with the
/// shard's index in `shards`, one shard at a time in no order.
pub(super) fn scan_each(
    shards: &[Shard],
    detail: Detail,
    each: &mut dyn FnMut(usize, Vec<Found>),
) -> Result<(), Error> {
    let now = SystemTime::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MOST_THREADS);
    if shards.len() < SHARDS_FOR_THREADS || threads == 1 {
        for (at, shard) in shards.iter().enumerate() {
            each(at, read_shard(shard, detail, now)?);
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(threads);
        for _ in 0..threads {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || {
                loop {
                    let at = next.fetch_add(1, Ordering::Relaxed);
                    let Some(shard) = shards.get(at) else { break };
                    // The caller stopped at an error: the rest is not wanted.
                    if tx.send((at, read_shard(shard, detail, now))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (at, held) in rx {
            each(at, held?);
        }
        Ok(())
    })
}

/// What the shard holds: its entries, and the files of writers that crashed.
fn read_shard(shard: &Shard, detail: Detail, now: SystemTime) -> Result<Vec<Found>, Error> {
    let mut out = Vec::new();
    for file in read_dir(&shard.dir)? {
        let Ok(file) = file else { continue };
        let name = file.file_name().to_string_lossy().into_owned();
        let Ok(meta) = file.metadata() else { continue };
        let key = match key_of_file(&name) {
            Some(key) if meta.is_file() => key,
            _ => continue,
        };
        let path = file.path();
        let modified = meta.modified().unwrap_or(now);
        if name.starts_with(TEMP_PREFIX) {
            let age = now.duration_since(modified).unwrap_or_default();
            if age > ABANDONED_AFTER {
                out.push(Found::Abandoned(path));
            }
            continue;
        }
        let header = (detail == Detail::Headers)
            .then(|| read_header(&path))
            .flatten();
        out.push(Found::Entry(EntryInfo {
            function: shard.function.clone(),
            code_version: shard.version.clone(),
            key: key.to_owned(),
            size: meta.len(),
            type_name: header
                .as_ref()
                .map_or_else(|| "?".to_owned(), |h| h.type_name.clone()),
            compute: header.as_ref().map_or(Duration::ZERO, |h| h.compute),
            created: header.as_ref().map_or(modified, |h| h.created),
            last_used: modified,
            hits: header.as_ref().map_or(0, |h| u64::from(h.hits)),
            args: header.map(|h| h.args).unwrap_or_default(),
            path,
            outdated: false,
        }));
    }
    Ok(out)
}

/// The entries of `dir`; none when it does not exist.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<std::io::Result<std::fs::DirEntry>>, Error> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::new(dir, ErrorKind::from_io(e))),
    }
}
