//! `Memory`: a handle on a cache folder as `#[cached]` writes it, to list what it holds and to
//! trim it (joblib's `Memory.clear` and `reduce_size`), and to cache closures in it.
//!
//! Listing reads the first bytes of each entry (its header), never the payload, and does not
//! verify checksums: a damaged entry is listed with what its header says, and is a miss when
//! loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::evict::{self, Limits, Reduced};
use super::site::Site;
use super::summary;
use super::wrapped::Cached;
use crate::error::Error;
use crate::store::{self, Detail, EntryInfo, Store, Summary, function_folder};

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

impl Memory {
    /// The cache folder at `root` (nothing is read until asked); with the `remote` feature,
    /// `root` may be an object store's URL, `s3://bucket/prefix`, whose entries it lists and
    /// removes, and whose local tier ([`LOCAL_TIER_ENV`](crate::LOCAL_TIER_ENV)) takes what
    /// it loads.
    ///
    /// ```
    /// let memory = joblet_runtime::Memory::new("target/doc-cache");
    /// assert_eq!(memory.root(), std::path::Path::new("target/doc-cache"));
    /// ```
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
            store::absolute(self.root.clone()),
            name.into(),
            String::new(),
        );
        site.set_max_size(self.max_size);
        Cached::new(site, f)
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
        self.listing(None)
    }

    /// The entries of one function, named by its folder (`my_crate.stats.mean`) or its path
    /// (`my_crate::stats::mean`), least recently used first. Only its folder is read.
    ///
    /// # Errors
    /// As [`Memory::entries`].
    pub fn entries_of(&self, function: &str) -> Result<Vec<EntryInfo>, Error> {
        self.listing(Some(function))
    }

    /// A line per function, largest first: its entries, bytes, what its outdated code versions
    /// take, compute time stored, hits and the time they saved, last use (what `joblet report`
    /// prints). Summed as the entries are read: it holds a line per function, not the entries,
    /// however many there are. A folder keeps what each of its shard folders came to in
    /// `.joblet-sums`, and the next summary reads again only the entries of shard folders
    /// changed since: by a store, a removal, or a hit (which marks its folder). Editing an
    /// entry file in place by hand does not mark its folder.
    ///
    /// ```
    /// let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-lines"));
    /// for line in memory.summary()? {
    ///     println!("{}: {} entries, {} bytes, {} hits", line.function, line.entries, line.bytes, line.hits);
    /// }
    /// # Ok::<(), joblet_runtime::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Memory::entries`].
    pub fn summary(&self) -> Result<Vec<Summary>, Error> {
        summary::summarize(&*self.store())
    }

    /// Removes every entry of every function, and abandoned temporary files. Only joblet's
    /// files are removed, then the folders they leave empty.
    ///
    /// # Errors
    /// When a folder cannot be read or a file cannot be removed.
    pub fn clear(&self) -> Result<Reduced, Error> {
        let store = self.store();
        evict::remove_all(&*store, &store.list(None, Detail::Sizes)?)
    }

    /// Removes every entry of one function, named as for [`Memory::entries_of`], for every
    /// version of its code.
    ///
    /// # Errors
    /// As [`Memory::clear`].
    pub fn clear_function(&self, function: &str) -> Result<Reduced, Error> {
        let store = self.store();
        let function = function_folder(function);
        evict::remove_all(&*store, &store.list(Some(&function), Detail::Sizes)?)
    }

    /// Removes the entries of every function's outdated code versions (see
    /// [`EntryInfo::outdated`]): the results of code that has changed since, which no call of
    /// the current code loads.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-old-versions"));
    /// let removed = memory.clear_old_versions()?;
    /// println!("{} entries of older code removed, {} bytes", removed.entries, removed.bytes);
    /// # Ok::<(), joblet_runtime::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Memory::clear`].
    pub fn clear_old_versions(&self) -> Result<Reduced, Error> {
        let store = self.store();
        let mut listing = store.list(None, Detail::LastUse)?;
        evict::mark_outdated(&mut listing.entries);
        listing.entries.retain(|e| e.outdated);
        listing.abandoned.clear();
        evict::remove_all(&*store, &listing)
    }

    /// Removes least recently used entries until the cache is within `limits`, and the
    /// temporary files of writers that crashed (those older than an hour).
    ///
    /// # Errors
    /// As [`Memory::clear`].
    pub fn reduce_size(&self, limits: &Limits) -> Result<Reduced, Error> {
        match evict::reduce(&*self.store(), limits)? {
            (_, _, Some(failure)) => Err(failure),
            (reduced, _, None) => Ok(reduced),
        }
    }

    /// The entries of every function, or of one (named by its folder or its path), with what
    /// their headers say, least recently used first.
    fn listing(&self, function: Option<&str>) -> Result<Vec<EntryInfo>, Error> {
        // Never `.` or `..`: always a folder inside the cache.
        let function = function.map(function_folder);
        let mut entries = self
            .store()
            .list(function.as_deref(), Detail::Headers)?
            .entries;
        evict::mark_outdated(&mut entries);
        evict::least_recent_first(&mut entries);
        Ok(entries)
    }

    /// The folder's store, once this process's queued stores are written: what `Memory`
    /// lists and removes includes them.
    fn store(&self) -> Arc<dyn Store> {
        super::writer::flush();
        store::open(&self.root, true)
    }
}
