//! What a function's entries come to, summed: the line of `joblet report` that a store hands
//! over by code version (see [`super::Store::sum`]), and that the cache layer adds up.

use std::time::{Duration, SystemTime};

use super::EntryInfo;

/// One function's entries, summed: a line of `joblet report`, from [`Memory::summary`].
///
/// [`Memory::summary`]: crate::Memory::summary
///
/// ```
/// let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-summary"));
/// let double = memory.cache("doc.double", |x: u64| 2 * x);
/// assert_eq!(double.call(21), 42);
/// let lines = memory.summary()?;
/// let line = lines.iter().find(|s| s.function == "doc.double").unwrap();
/// assert!(line.entries >= 1 && line.bytes > 0);
/// # Ok::<(), joblet_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// The function's folder (`my_crate.stats.mean`).
    pub function: String,
    /// Its entries, of every version of its code.
    pub entries: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// The bytes of the entries of its outdated code versions (see [`EntryInfo::outdated`]).
    pub outdated_bytes: u64,
    /// The time its stored results took to compute.
    pub compute: Duration,
    /// How many times its entries were loaded.
    pub hits: u64,
    /// The compute time those loads spared: each entry's compute time times its hits.
    pub saved: Duration,
    /// The last store or load of any of its entries.
    pub last_used: Option<SystemTime>,
}

impl Summary {
    /// Adds `other`'s entries to these. Saturating: times and counts come from headers, which
    /// a damaged file can make as large as they go.
    pub fn add(&mut self, other: &Summary) {
        self.entries = self.entries.saturating_add(other.entries);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.outdated_bytes = self.outdated_bytes.saturating_add(other.outdated_bytes);
        self.compute = self.compute.saturating_add(other.compute);
        self.hits = self.hits.saturating_add(other.hits);
        self.saved = self.saved.saturating_add(other.saved);
        self.last_used = self.last_used.max(other.last_used);
    }

    /// The summary of one entry, and the code version that stored it.
    pub(crate) fn of(entry: EntryInfo) -> (String, Summary) {
        let hits = u32::try_from(entry.hits).unwrap_or(u32::MAX);
        let summary = Summary {
            entries: 1,
            bytes: entry.size,
            outdated_bytes: 0,
            compute: entry.compute,
            hits: entry.hits,
            saved: entry.compute.saturating_mul(hits),
            last_used: Some(entry.last_used),
            function: entry.function,
        };
        (entry.code_version, summary)
    }
}
