//! Eviction: removing entries least recently used first until a store is within limits, for
//! `Memory::reduce_size` and the size limit, and removing listed files with what that freed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::store::{Detail, EntryInfo, Listing, Store};

/// Bounds for [`Memory::reduce_size`](crate::Memory::reduce_size); each is off unless set.
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

/// What [`Memory::reduce_size`](crate::Memory::reduce_size) removed.
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

/// Orders `entries` least recently used first. The path breaks ties, so the order is total
/// and an unstable sort as good; compared as bytes, not as path components, which took half a
/// million-entry report's time.
pub(crate) fn least_recent_first(entries: &mut [EntryInfo]) {
    entries.sort_unstable_by(|a, b| {
        a.last_used
            .cmp(&b.last_used)
            .then_with(|| a.path.as_os_str().cmp(b.path.as_os_str()))
    });
}

/// Marks the entries stored by a function's outdated code versions: every version but its
/// current one, the version whose entries were stored or used last. (A program run with an
/// older version of the code makes that version current again, and its entries stay.)
pub(crate) fn mark_outdated(entries: &mut [EntryInfo]) {
    let mut current: HashMap<&str, (SystemTime, &str)> = HashMap::new();
    for e in entries.iter() {
        let newest = current
            .entry(&e.function)
            .or_insert((e.last_used, &e.code_version));
        if (e.last_used, e.code_version.as_str()) > *newest {
            *newest = (e.last_used, &e.code_version);
        }
    }
    let current: HashMap<String, String> = current
        .into_iter()
        .map(|(f, (_, v))| (f.to_owned(), v.to_owned()))
        .collect();
    for e in entries.iter_mut() {
        e.outdated = current.get(&e.function) != Some(&e.code_version);
    }
}

/// Removes least recently used entries of `store` until it is within `limits`, and the files
/// of writers that crashed; says what was removed and how many bytes remain. An entry that
/// cannot be removed stays, and the next is evicted in its place; the first such failure is
/// returned beside what was done.
pub(crate) fn reduce(
    store: &dyn Store,
    limits: &Limits,
) -> Result<(Reduced, u64, Option<Error>), Error> {
    let mut listing = store.list(None, Detail::LastUse)?;
    least_recent_first(&mut listing.entries);
    let now = SystemTime::now();
    let mut count = listing.entries.len();
    let mut bytes: u64 = listing.entries.iter().map(|e| e.size).sum();
    let mut removal = Removal::new(store);
    // Least recently used first: evict from the front while any limit is exceeded.
    for entry in &listing.entries {
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
    removal.abandoned(&listing.abandoned);
    Ok((removal.reduced, bytes, removal.failure))
}

/// Removes every entry of `listing` and its abandoned files; fails with the first file that
/// could not be removed, once every other is.
pub(crate) fn remove_all(store: &dyn Store, listing: &Listing) -> Result<Reduced, Error> {
    let mut removal = Removal::new(store);
    for entry in &listing.entries {
        removal.entry(entry);
    }
    removal.abandoned(&listing.abandoned);
    match removal.failure {
        Some(e) => Err(e),
        None => Ok(removal.reduced),
    }
}

/// Files being removed from a store, with what was removed and the first failure.
struct Removal<'a> {
    store: &'a dyn Store,
    reduced: Reduced,
    failure: Option<Error>,
}

impl<'a> Removal<'a> {
    fn new(store: &'a dyn Store) -> Self {
        Removal {
            store,
            reduced: Reduced::default(),
            failure: None,
        }
    }

    /// Removes an entry; says whether it is gone.
    fn entry(&mut self, entry: &EntryInfo) -> bool {
        let gone = self.file(&entry.path, Some(entry.size));
        if gone {
            // Copies in memory are not served once any entry is removed.
            super::recent::forget_all();
            self.reduced.entries += 1;
            self.reduced.bytes += entry.size;
        }
        gone
    }

    /// Removes the files that writers that crashed left.
    fn abandoned(&mut self, files: &[PathBuf]) {
        for path in files {
            if self.file(path, None) {
                self.reduced.temp_files += 1;
            }
        }
    }

    /// Removes a file; says whether it is gone.
    fn file(&mut self, path: &std::path::Path, size: Option<u64>) -> bool {
        match self.store.remove(path) {
            Ok(removed) => {
                if removed {
                    tracing::debug!(path = %path.display(), bytes = size, "evicted");
                }
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e.kind(), "cannot remove a cache entry");
                self.failure.get_or_insert(e);
                false
            }
        }
    }
}
