//! A folder's sums, kept: what each shard folder's entries came to when it was last read, and
//! the stamp its folder had then, so that a summary (`joblet report`) reads a shard's entries
//! again only when the folder has changed since, not a million headers at every report.
//!
//! A shard folder's change and modification times move whenever an entry in it is stored,
//! replaced or removed (the rename or unlink changes the folder), and a hit, which writes its
//! count into the entry in place, marks the folder itself ([`entry_changed`]). A kept sum is
//! used only while its folder's stamp is the one it was read under; the stamp is taken before
//! the entries are read, and a sum is kept only if its folder last changed a second or more
//! before: a change made while it was read, within the same tick of the file system's clock,
//! would otherwise leave the stamp as it was. The change time cannot be set by anybody, so a
//! folder restored with old times does not pass for unchanged. The file is checksummed; a
//! damaged, foreign or unreadable one is no sums, and is written again.
//!
//! Elsewhere than on Unix, no folder is stamped: every summary reads every entry.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::xxh3::xxh3_64;
use serde::{Deserialize, Serialize};

use super::scan::{Shard, scan_each};
use super::write::replace;
use super::{Detail, Found, Summary};
use crate::error::{Error, ErrorKind};

/// The file, in the cache folder, beside the functions' folders.
const SUMS_FILE: &str = ".joblet-sums";

/// What the file starts with; the last digit is its format's version.
const MAGIC: &[u8; 8] = b"JBLSUMS1";

/// A larger file is not read: no cache has this many shards.
const MOST_BYTES: u64 = 256 << 20;

/// How long before a summary starts a shard folder must have last changed for its sum to be
/// kept: longer than any file system's clock takes to tick.
const SETTLED: Duration = Duration::from_secs(2);

/// A shard folder's change and modification times, in seconds and nanoseconds.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    changed: (i64, i64),
    modified: (i64, i64),
}

impl Stamp {
    /// The stamp of the folder `dir`; none where folders are not stamped.
    fn of(dir: &Path) -> Option<Stamp> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::symlink_metadata(dir).ok()?;
            Some(Stamp {
                changed: (meta.ctime(), meta.ctime_nsec()),
                modified: (meta.mtime(), meta.mtime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            None
        }
    }

    /// Whether the folder last changed long enough before `start` that any later change
    /// gives it another stamp.
    fn settled(&self, start: SystemTime) -> bool {
        let Some(limit) = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .and_then(|since| since.checked_sub(SETTLED))
        else {
            return false;
        };
        let limit = (
            i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
            i64::from(limit.subsec_nanos()),
        );
        self.changed <= limit && self.modified <= limit
    }
}

/// A shard folder's sum, and the stamp it was read under.
#[derive(Serialize, Deserialize)]
struct Kept {
    /// `<function>/<code version>/<shard>`.
    shard: String,
    stamp: Stamp,
    entries: u64,
    bytes: u64,
    compute: Duration,
    hits: u64,
    saved: Duration,
    last_used: Option<SystemTime>,
}

impl Kept {
    fn new(shard: String, stamp: Stamp, sum: &Summary) -> Kept {
        Kept {
            shard,
            stamp,
            entries: sum.entries,
            bytes: sum.bytes,
            compute: sum.compute,
            hits: sum.hits,
            saved: sum.saved,
            last_used: sum.last_used,
        }
    }

    fn summary(&self, function: &str) -> Summary {
        Summary {
            function: function.to_owned(),
            entries: self.entries,
            bytes: self.bytes,
            outdated_bytes: 0,
            compute: self.compute,
            hits: self.hits,
            saved: self.saved,
            last_used: self.last_used,
        }
    }
}

/// Hands `sum` what the entries of the `shards` of the folder `root` come to, by code version
/// (see `Store::sum`): the kept sum of each shard whose folder has not changed since, and the
/// sum of the entries of each other one, read now and kept for the next summary. `whole` says
/// that `shards` are all the folder's, so that sums of shards gone are dropped.
pub(super) fn sum(
    root: &Path,
    shards: &[Shard],
    whole: bool,
    sum: &mut dyn FnMut(&str, Summary),
) -> Result<(), Error> {
    let start = SystemTime::now();
    let file = root.join(SUMS_FILE);
    let mut before = read_kept(&file);
    let mut kept = Vec::with_capacity(shards.len());
    let mut unread = Vec::new();
    for shard in shards {
        let name = shard_name(shard);
        let stamp = Stamp::of(&shard.dir);
        match before.remove(&name) {
            Some(sums) if Some(sums.stamp) == stamp => {
                sum(&shard.version, sums.summary(&shard.function));
                kept.push(sums);
            }
            _ => unread.push((shard.clone(), name, stamp)),
        }
    }
    let to_read: Vec<Shard> = unread.iter().map(|(shard, ..)| shard.clone()).collect();
    let mut changed = false;
    scan_each(&to_read, Detail::Headers, &mut |at, found| {
        let (shard, name, stamp) = &unread[at];
        let mut total = Summary::default();
        for found in found {
            if let Found::Entry(entry) = found {
                total.add(&Summary::of(entry).1);
            }
        }
        if let Some(stamp) = stamp.filter(|s| s.settled(start)) {
            kept.push(Kept::new(name.clone(), stamp, &total));
            changed = true;
        }
        if total.entries > 0 {
            total.function.clone_from(&shard.function);
            sum(&shard.version, total);
        }
    })?;
    if whole {
        changed |= !before.is_empty();
    } else {
        // Other functions' sums, which this summary did not look at.
        kept.extend(before.into_values());
    }
    if changed {
        write_kept(&file, &kept);
    }
    Ok(())
}

/// Marks the shard folder of the entry at `path` as changed, after a hit wrote its count in
/// the entry: kept sums of that folder are not used again. A folder that cannot be marked
/// (another user's) leaves its sum's hits behind until the folder next changes.
///
/// # Errors
/// When the folder's times cannot be set.
pub(super) fn entry_changed(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
        // SAFETY: `dir` is a NUL-terminated string that outlives the call; null times mean
        // "now", for both.
        let done = unsafe { libc::utimensat(libc::AT_FDCWD, dir.as_ptr(), std::ptr::null(), 0) };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn shard_name(shard: &Shard) -> String {
    let dir = shard.dir.file_name().unwrap_or_default().to_string_lossy();
    format!("{}/{}/{dir}", shard.function, shard.version)
}

/// The sums kept in `file`, by shard; none if it is missing, too large, damaged or of
/// another format.
fn read_kept(file: &Path) -> HashMap<String, Kept> {
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(file).and_then(|f| f.take(MOST_BYTES + 1).read_to_end(&mut bytes));
    let body = match read {
        Ok(_) if bytes.len() as u64 <= MOST_BYTES && bytes.starts_with(MAGIC) => {
            &bytes[MAGIC.len()..]
        }
        _ => return HashMap::new(),
    };
    let Some((sum, body)) = body.split_first_chunk::<8>() else {
        return HashMap::new();
    };
    if u64::from_le_bytes(*sum) != xxh3_64(body) {
        return HashMap::new();
    }
    postcard::from_bytes::<Vec<Kept>>(body)
        .map(|kept| kept.into_iter().map(|k| (k.shard.clone(), k)).collect())
        .unwrap_or_default()
}

/// Writes `kept` to `file`, atomically. Best effort: a folder that cannot be written (a
/// read-only cache) is summed in full at every summary.
fn write_kept(file: &Path, kept: &[Kept]) {
    let written = postcard::to_allocvec(kept)
        .map_err(|e| ErrorKind::from_io(std::io::Error::other(e)))
        .and_then(|body| {
            replace(file, false, |out| {
                out.write_all(MAGIC)
                    .and_then(|()| out.write_all(&xxh3_64(&body).to_le_bytes()))
                    .and_then(|()| out.write_all(&body))
                    .map_err(ErrorKind::from_io)?;
                Ok((MAGIC.len() + 8 + body.len()) as u64)
            })
        });
    if let Err(e) = written {
        tracing::debug!(file = %file.display(), error = %Error::new(file, e), "cannot keep the folder's sums");
    }
}
