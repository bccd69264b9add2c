//! `Memory`: a handle on a cache folder as `#[cached]` writes it, to list what it holds and to
//! trim it (joblib's `Memory.clear` and `reduce_size`).
//!
//! A folder holds `<function>/<code version>/<shard>/<key>.jbl`. Listing reads the first bytes
//! of each entry (its header), never the payload, and does not verify checksums: a damaged
//! entry is listed with what its header says, and is a miss when loaded.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::site::{Begin, Mode, Site};
use crate::store::{self, TEMP_PREFIX, decoder_any};

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
    /// The most bytes stores through this handle let the folder hold.
    max_size: Option<u64>,
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
    /// When it was last stored or loaded from the cache: each hit marks its entry.
    pub last_used: SystemTime,
    /// How the call's arguments read: `Debug` where their types have it, else `<Type>`, `_`
    /// for an ignored one, each cut short. Empty for entries that store none.
    pub args: String,
    /// How many times the entry was loaded from the cache. Hits of concurrent processes can
    /// be missed, and a cache the loading process may not write counts none.
    pub hits: u64,
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
        Memory {
            root: root.into(),
            max_size: None,
        }
    }

    /// Limits the folder to `bytes`, enforced as functions wrapped by [`Memory::cache`] store
    /// their results: once the folder holds more, its least recently used entries are evicted
    /// down to 90 % of the limit. The folder's `joblet.toml` can set a limit as well
    /// ([`CONFIG_FILE`](crate::CONFIG_FILE)); the lower one holds.
    ///
    /// ```
    /// let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-limit"))
    ///     .max_size(100 << 20);
    /// let double = memory.cache("double", |x: u64| 2 * x);
    /// assert_eq!(double.call(21), 42);
    /// ```
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Wraps `f`, a closure or a function that cannot carry `#[cached]`, into a cached one
    /// stored in this folder under `name`. Its code cannot be fingerprinted, so its entries
    /// stay valid until the name changes, or the version set by [`Cached::version`] does.
    ///
    /// `f` takes one argument: several go as a tuple. The argument must implement
    /// `serde::Serialize` (it is the key) and `Debug` (it is shown in `joblet ls`).
    ///
    /// ```
    /// use joblet_runtime::Memory;
    ///
    /// let memory = Memory::new(std::env::temp_dir().join("joblet-doc-cache"));
    /// let norm = memory
    ///     .cache("norm", |(x, y): (f64, f64)| x.hypot(y))
    ///     .version("1");
    /// assert_eq!(norm.call((3.0, 4.0)), 5.0); // computed, or loaded from an earlier run
    /// assert_eq!(norm.call((3.0, 4.0)), 5.0); // loaded
    /// assert!(norm.is_cached(&(3.0, 4.0)));
    /// ```
    pub fn cache<F>(&self, name: impl Into<String>, f: F) -> Cached<F> {
        let mut site = Site::wrapped(
            std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone()),
            name.into(),
            String::new(),
        );
        site.set_max_size(self.max_size);
        Cached { site, f }
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
        Ok(self.scan(None, Need::Listing)?.entries)
    }

    /// The entries of one function, named by its folder (`my_crate.stats.mean`) or its path
    /// (`my_crate::stats::mean`), least recently used first. Only its folder is read.
    ///
    /// # Errors
    /// As [`Memory::entries`].
    pub fn entries_of(&self, function: &str) -> Result<Vec<EntryInfo>, Error> {
        Ok(self.scan(Some(function), Need::Listing)?.entries)
    }

    /// Removes every entry of every function, and abandoned temporary files. Only joblet's
    /// files are removed, then the folders they leave empty.
    ///
    /// # Errors
    /// When a folder cannot be read or a file cannot be removed.
    pub fn clear(&self) -> Result<Reduced, Error> {
        let scan = self.scan(None, Need::Files)?;
        self.remove(scan.entries.iter(), &scan.temps)
    }

    /// Removes every entry of one function, named as for [`Memory::entries_of`], for every
    /// version of its code.
    ///
    /// # Errors
    /// As [`Memory::clear`].
    pub fn clear_function(&self, function: &str) -> Result<Reduced, Error> {
        let scan = self.scan(Some(function), Need::Files)?;
        self.remove(scan.entries.iter(), &scan.temps)
    }

    /// Removes least recently used entries until the cache is within `limits`, and the
    /// temporary files of writers that crashed (those older than an hour).
    ///
    /// # Errors
    /// As [`Memory::clear`].
    pub fn reduce_size(&self, limits: &Limits) -> Result<Reduced, Error> {
        match self.reduce(limits)? {
            (_, _, Some(failure)) => Err(failure),
            (reduced, _, None) => Ok(reduced),
        }
    }

    /// The bytes of every entry in the folder.
    pub(crate) fn total_bytes(&self) -> Result<u64, Error> {
        Ok(self
            .scan(None, Need::Files)?
            .entries
            .iter()
            .map(|e| e.size)
            .sum())
    }

    /// [`Memory::reduce_size`], which also says how many bytes remain. An entry that cannot
    /// be removed stays, and the next is evicted in its place; the first such failure is
    /// returned beside what was done.
    pub(crate) fn reduce(&self, limits: &Limits) -> Result<(Reduced, u64, Option<Error>), Error> {
        let scan = self.scan(None, Need::Order)?;
        let now = SystemTime::now();
        let mut count = scan.entries.len();
        let mut bytes: u64 = scan.entries.iter().map(|e| e.size).sum();
        let mut removal = Removal::new(self);
        // Least recently used first: evict from the front while any limit is exceeded.
        for entry in &scan.entries {
            let too_old = limits.age.is_some_and(|age| {
                now.duration_since(entry.last_used)
                    .is_ok_and(|unused| unused > age)
            });
            let too_many = limits.items.is_some_and(|items| count > items);
            let too_big = limits.bytes.is_some_and(|limit| bytes > limit);
            if !(too_old || too_many || too_big) {
                break;
            }
            if removal.entry(entry) {
                count -= 1;
                bytes -= entry.size;
            }
        }
        removal.abandoned(&scan.temps);
        Ok((removal.reduced, bytes, removal.failure))
    }

    /// Removes `entries` and the abandoned ones among temporary files, then the folders
    /// they leave empty; fails with the first file that could not be removed, once every
    /// other is.
    fn remove<'a>(
        &self,
        entries: impl Iterator<Item = &'a EntryInfo>,
        temps: &[(PathBuf, Duration)],
    ) -> Result<Reduced, Error> {
        let mut removal = Removal::new(self);
        for entry in entries {
            removal.entry(entry);
        }
        removal.abandoned(temps);
        match removal.failure {
            Some(e) => Err(e),
            None => Ok(removal.reduced),
        }
    }

    /// The entries below the root (or one function's folder), and the temporary files with
    /// their ages; with what `need` asks for besides.
    fn scan(&self, function: Option<&str>, need: Need) -> Result<Scan, Error> {
        let headers = need == Need::Listing;
        let ordered = need != Need::Files;
        if ordered {
            // This process's own hits, so that the counts it lists and the times it orders by
            // are up to date.
            store::write_hits(true);
        }
        let now = SystemTime::now();
        let functions = match function.map(crate::site::folder_name) {
            // Never `.` or `..`: always a folder inside the cache.
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
                        let header = headers
                            .then(|| store::read_header(&path, meta.len()))
                            .flatten();
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
                            last_used: modified,
                            hits: header.as_ref().map_or(0, |h| u64::from(h.hits)),
                            args: header.map(|h| h.args).unwrap_or_default(),
                            path,
                        });
                    }
                }
            }
        }
        if ordered {
            // The path breaks ties, so the order is total and an unstable sort as good;
            // compared as bytes, not as path components, which took half a million-entry
            // report's time.
            scan.entries.sort_unstable_by(|a, b| {
                a.last_used
                    .cmp(&b.last_used)
                    .then_with(|| a.path.as_os_str().cmp(b.path.as_os_str()))
            });
        }
        Ok(scan)
    }
}

/// Files being removed from a cache folder, with what was removed and the first failure.
struct Removal<'a> {
    memory: &'a Memory,
    reduced: Reduced,
    failure: Option<Error>,
}

impl<'a> Removal<'a> {
    fn new(memory: &'a Memory) -> Self {
        Removal {
            memory,
            reduced: Reduced::default(),
            failure: None,
        }
    }

    /// Removes an entry; says whether it is gone.
    fn entry(&mut self, entry: &EntryInfo) -> bool {
        let gone = self.file(&entry.path, Some(entry.size));
        if gone {
            self.reduced.entries += 1;
            self.reduced.bytes += entry.size;
        }
        gone
    }

    /// Removes the temporary files old enough to be a crashed writer's.
    fn abandoned(&mut self, temps: &[(PathBuf, Duration)]) {
        for (path, age) in temps {
            if *age > ABANDONED_AFTER && self.file(path, None) {
                self.reduced.temp_files += 1;
            }
        }
    }

    /// Removes a file, then the shard, version and function folders it leaves empty.
    fn file(&mut self, path: &Path, size: Option<u64>) -> bool {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::debug!(path = %path.display(), bytes = size, "evicted"),
            // Removed meanwhile by another process: as good.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a cache entry");
                self.failure
                    .get_or_insert_with(|| Error::new(path, ErrorKind::from_io(e)));
                return false;
            }
        }
        // `remove_dir` refuses a folder that is not empty, and another writer may just have
        // filled one again.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.memory.root) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        true
    }
}

/// What a scan is for, which decides what it does besides finding the files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Entries with what their headers say, least recently used first.
    Listing,
    /// Entries least recently used first, their sizes: eviction opens none.
    Order,
    /// The files alone, in no order: clearing and measuring.
    Files,
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

/// A function wrapped by [`Memory::cache`]: calls load a stored result, or compute and store
/// it, as a `#[cached]` function's do, in the same format and folder layout.
pub struct Cached<F> {
    site: Site,
    f: F,
}

impl<F> Cached<F> {
    /// Names this version of the function's code: entries stored under another version are
    /// not loaded. Change it when the function's results change.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-version"));
    /// let area = memory.cache("area", |r: f64| std::f64::consts::PI * r * r).version("2");
    /// # assert!(area.call(1.0) > 3.0);
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.site.set_version(version.into());
        self
    }

    /// Prints joblib's `[Memory]` lines to stderr: from 1, for each computed call; from 5,
    /// for each loaded one too.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-verbose"));
    /// let square = memory.cache("square", |x: u64| x * x).verbose(1);
    /// # assert_eq!(square.call(3), 9);
    /// ```
    pub fn verbose(mut self, level: u8) -> Self {
        self.site.set_verbose(level);
        self
    }

    /// Calls the function through the cache: loads the result stored for an equal `arg`, or
    /// computes, stores and returns it. As with `#[cached]`, a cache that cannot be read or
    /// written only costs the computation, with a `tracing` warning.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-call"));
    /// let add = memory.cache("add", |(a, b): (i32, i32)| a + b);
    /// assert_eq!(add.call((2, 3)), 5);
    /// ```
    pub fn call<A, R>(&self, arg: A) -> R
    where
        F: Fn(A) -> R,
        A: Serialize + std::fmt::Debug,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.run(Mode::Call, arg)
    }

    /// Calls the function, storing only `Ok` results: an error is returned, never stored, and
    /// the next call computes again.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-try"));
    /// let parse = memory.cache("parse", |s: String| s.parse::<u32>());
    /// assert_eq!(parse.try_call("42".to_string()), Ok(42));
    /// assert!(parse.try_call("x".to_string()).is_err());
    /// ```
    pub fn try_call<A, T, E>(&self, arg: A) -> Result<T, E>
    where
        F: Fn(A) -> Result<T, E>,
        A: Serialize + std::fmt::Debug,
        T: Serialize + DeserializeOwned + 'static,
    {
        let mut key = self.site.key(None);
        key.arg(&arg);
        match self
            .site
            .begin_ok::<T, E>(Mode::Call, None, &mut key, decoder_any())
        {
            Begin::Hit(value) => value,
            Begin::Compute(mut pending) => {
                self.site.describe(&mut pending, |args| args.debug(&arg));
                self.site.finish_ok(pending, (self.f)(arg))
            }
        }
    }

    /// Computes, stores the result in place of any stored one, and returns it.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-refresh"));
    /// let now = memory.cache("now", |_: ()| std::time::SystemTime::now());
    /// let first = now.call(());
    /// assert!(now.refresh(()) >= first);
    /// ```
    pub fn refresh<A, R>(&self, arg: A) -> R
    where
        F: Fn(A) -> R,
        A: Serialize + std::fmt::Debug,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.run(Mode::Refresh, arg)
    }

    /// Whether a call with `arg` has a valid stored result of type `R`. Computes nothing.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-is-cached"));
    /// let cube = memory.cache("cube", |x: u64| x * x * x);
    /// cube.call(3);
    /// assert!(cube.is_cached::<_, u64>(&3));
    /// ```
    pub fn is_cached<A, R>(&self, arg: &A) -> bool
    where
        F: Fn(A) -> R,
        A: Serialize,
        R: Serialize + DeserializeOwned + 'static,
    {
        let mut key = self.site.key(None);
        key.arg(arg);
        self.site.contains::<R>(&mut key)
    }

    /// Removes every stored result of the function, for every version.
    ///
    /// # Errors
    /// When its folder exists but cannot be removed.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-clear"));
    /// let half = memory.cache("half", |x: u64| x / 2);
    /// half.call(8);
    /// half.clear()?;
    /// assert!(!half.is_cached::<_, u64>(&8));
    /// # Ok::<(), joblet_runtime::Error>(())
    /// ```
    pub fn clear(&self) -> Result<(), Error> {
        self.site.clear()
    }

    fn run<A, R>(&self, mode: Mode, arg: A) -> R
    where
        F: Fn(A) -> R,
        A: Serialize + std::fmt::Debug,
        R: Serialize + DeserializeOwned + 'static,
    {
        let mut key = self.site.key(None);
        key.arg(&arg);
        match self.site.begin::<R>(mode, None, &mut key, decoder_any()) {
            Begin::Hit(value) => value,
            Begin::Compute(mut pending) => {
                self.site.describe(&mut pending, |args| args.debug(&arg));
                self.site.finish(pending, (self.f)(arg))
            }
        }
    }
}

impl<F> std::fmt::Debug for Cached<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}
