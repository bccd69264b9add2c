//! `Memory`: a handle on a cache folder as `#[cached]` writes it, to list what it holds and to
//! trim it (joblib's `Memory.clear` and `reduce_size`).
//!
//! A folder holds `<function>/<code version>/<shard>/<key>.jbl`. Listing reads the first bytes
//! of each entry (its header), never the payload, and does not verify checksums: a damaged
//! entry is listed with what its header says, and is a miss when loaded.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::entry::{Opened, TEMP_PREFIX};
use crate::error::{Error, ErrorKind};

/// A temporary file older than this belongs to a writer that crashed: no live writer takes
/// this long between creating its file and renaming it.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// A cache folder: what it holds, and how to trim it.
///
/// ```
/// use joblet_runtime::{Limits, Memory};
///
/// let memory = Memory::new(std::env::temp_dir().join("joblet-doc-memory"));
/// for entry in memory.entries()? {
///     println!("{} {} bytes, took {:?}", entry.function, entry.size, entry.compute);
/// }
/// // Keep at most 100 MB and 10,000 entries, the most recently used.
/// memory.reduce_size(&Limits::new().bytes(100_000_000).items(10_000))?;
/// # Ok::<(), joblet_runtime::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Memory {
    root: PathBuf,
}

/// One stored result, as its file and header describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The function's folder: its identity with `::` written `.` (`my_crate.stats.mean`).
    pub function: String,
    /// The folder of the version of the function's code that stored it.
    pub code_version: String,
    /// The call's key, in hexadecimal.
    pub key: String,
    /// The entry file.
    pub path: PathBuf,
    /// Bytes on disk.
    pub size: u64,
    /// The type of the stored value (`?` when the header cannot be read).
    pub type_name: String,
    /// How long the value took to compute.
    pub compute: Duration,
    /// When it was stored.
    pub created: SystemTime,
    /// When it was last stored or read, as far as the file system records it: the later of
    /// the file's modification and access times. (Most Linux systems mount with `relatime`,
    /// which records a read at most once a day.)
    pub last_used: SystemTime,
}

/// Bounds for [`Memory::reduce_size`]; each is off unless set.
///
/// ```
/// use std::time::Duration;
/// let limits = joblet_runtime::Limits::new()
///     .bytes(1 << 30)
///     .items(50_000)
///     .age(Duration::from_secs(30 * 24 * 3600));
/// # let _ = limits;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Limits {
    bytes: Option<u64>,
    items: Option<usize>,
    age: Option<Duration>,
}

impl Limits {
    /// No bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most this many bytes of entries.
    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// At most this many entries.
    pub fn items(mut self, items: usize) -> Self {
        self.items = Some(items);
        self
    }

    /// No entry unused for longer than this.
    pub fn age(mut self, age: Duration) -> Self {
        self.age = Some(age);
        self
    }
}

/// What [`Memory::reduce_size`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reduced {
    /// Entries removed.
    pub entries: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Temporary files of crashed writers removed.
    pub temp_files: usize,
}

impl Memory {
    /// The cache folder at `root` (nothing is read until asked).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Memory { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every entry, least recently used first. A missing folder holds none.
    ///
    /// # Errors
    /// When a folder cannot be read.
    pub fn entries(&self) -> Result<Vec<EntryInfo>, Error> {
        Ok(self.scan(None)?.entries)
    }

    /// The entries of one function, named by its folder (`my_crate.stats.mean`) or its path
    /// (`my_crate::stats::mean`), least recently used first. Only its folder is read.
    ///
    /// # Errors
    /// As [`Memory::entries`].
    pub fn entries_of(&self, function: &str) -> Result<Vec<EntryInfo>, Error> {
        Ok(self.scan(Some(function))?.entries)
    }

    /// Removes every entry of every function, and abandoned temporary files. Only joblet's
    /// files are removed, then the folders they leave empty.
    ///
    /// # Errors
    /// When a folder cannot be read or a file cannot be removed.
    pub fn clear(&self) -> Result<Reduced, Error> {
        let scan = self.scan(None)?;
        self.remove(scan.entries.iter(), &scan.temps)
    }

    /// Removes every entry of one function, named as for [`Memory::entries_of`], for every
    /// version of its code.
    ///
    /// # Errors
    /// As [`Memory::clear`].
    pub fn clear_function(&self, function: &str) -> Result<Reduced, Error> {
        let scan = self.scan(Some(function))?;
        self.remove(scan.entries.iter(), &scan.temps)
    }

    /// Removes least recently used entries until the cache is within `limits`, and the
    /// temporary files of writers that crashed (those older than an hour).
    ///
    /// # Errors
    /// As [`Memory::clear`].
    pub fn reduce_size(&self, limits: &Limits) -> Result<Reduced, Error> {
        let scan = self.scan(None)?;
        let now = SystemTime::now();
        let mut count = scan.entries.len();
        let mut bytes: u64 = scan.entries.iter().map(|e| e.size).sum();
        // Least recently used first: evict from the front while any limit is exceeded.
        let evicted = scan.entries.iter().take_while(|entry| {
            let too_old = limits.age.is_some_and(|age| {
                now.duration_since(entry.last_used)
                    .is_ok_and(|unused| unused > age)
            });
            let too_many = limits.items.is_some_and(|items| count > items);
            let too_big = limits.bytes.is_some_and(|limit| bytes > limit);
            let evict = too_old || too_many || too_big;
            if evict {
                count -= 1;
                bytes -= entry.size;
            }
            evict
        });
        self.remove(evicted, &scan.temps)
    }

    /// Removes `entries` and the abandoned ones among temporary files, then the folders
    /// they leave empty.
    fn remove<'a>(
        &self,
        entries: impl Iterator<Item = &'a EntryInfo>,
        temps: &[(PathBuf, Duration)],
    ) -> Result<Reduced, Error> {
        let mut reduced = Reduced::default();
        let abandoned = temps.iter().filter(|(_, age)| *age > ABANDONED_AFTER);
        for (path, entry_size) in entries
            .map(|e| (&e.path, Some(e.size)))
            .chain(abandoned.map(|(path, _)| (path, None)))
        {
            match std::fs::remove_file(path) {
                Ok(()) => tracing::debug!(path = %path.display(), "evicted"),
                // Removed meanwhile by another process: as good.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::new(path, ErrorKind::from_io(e))),
            }
            match entry_size {
                Some(size) => {
                    reduced.entries += 1;
                    reduced.bytes += size;
                }
                None => reduced.temp_files += 1,
            }
            // The shard, version and function folders, once empty (`remove_dir` refuses
            // otherwise, and another writer may just have filled one again).
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != self.root) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(reduced)
    }

    /// The entries below the root (or one function's folder), least recently used first, and
    /// the temporary files with their ages.
    fn scan(&self, function: Option<&str>) -> Result<Scan, Error> {
        let now = SystemTime::now();
        let functions = match function.map(crate::site::folder_name) {
            // `..` would name a folder outside the cache: no function is called that.
            Some(f) if f == "." || f == ".." => Vec::new(),
            Some(f) => vec![self.root.join(f)],
            None => subfolders(&self.root)?,
        };
        let mut scan = Scan::default();
        for function in functions {
            for version in subfolders(&function)? {
                for shard in subfolders(&version)? {
                    for file in read_dir(&shard)? {
                        let Ok(file) = file else { continue };
                        let name = file.file_name().to_string_lossy().into_owned();
                        let Ok(meta) = file.metadata() else { continue };
                        if !meta.is_file() || !name.ends_with(".jbl") {
                            continue;
                        }
                        let path = file.path();
                        let modified = meta.modified().unwrap_or(now);
                        if name.starts_with(TEMP_PREFIX) {
                            let age = now.duration_since(modified).unwrap_or_default();
                            scan.temps.push((path, age));
                            continue;
                        }
                        let header = Opened::open_unseen(&path).ok().and_then(|f| f.header());
                        let accessed = meta.accessed().unwrap_or(modified);
                        scan.entries.push(EntryInfo {
                            function: last_name(&function),
                            code_version: last_name(&version),
                            key: name.trim_end_matches(".jbl").to_owned(),
                            size: meta.len(),
                            type_name: header
                                .as_ref()
                                .map_or_else(|| "?".to_owned(), |h| h.type_name.clone()),
                            compute: header.as_ref().map_or(Duration::ZERO, |h| h.compute),
                            created: header.as_ref().map_or(modified, |h| h.created),
                            last_used: modified.max(accessed),
                            path,
                        });
                    }
                }
            }
        }
        scan.entries
            .sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.path.cmp(&b.path)));
        Ok(scan)
    }
}

#[derive(Default)]
struct Scan {
    entries: Vec<EntryInfo>,
    temps: Vec<(PathBuf, Duration)>,
}

fn last_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The entries of `dir`; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<std::io::Result<std::fs::DirEntry>>, Error> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::new(dir, ErrorKind::from_io(e))),
    }
}

/// The subfolders of `dir`, sorted; none when it does not exist.
fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut dirs: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}
