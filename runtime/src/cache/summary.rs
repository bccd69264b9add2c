//! What a cache holds, a line per function: entries, bytes, what its outdated code versions
//! take, compute time stored, hits and the compute time they saved. Summed as the store hands
//! over its entries one at a time, so that a cache of a million entries is summed in the memory
//! of its functions, not of its entries.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::store::{Detail, EntryInfo, Found, Store};

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

    fn of(entry: &EntryInfo) -> Summary {
        let hits = u32::try_from(entry.hits).unwrap_or(u32::MAX);
        Summary {
            function: String::new(),
            entries: 1,
            bytes: entry.size,
            outdated_bytes: 0,
            compute: entry.compute,
            hits: entry.hits,
            saved: entry.compute.saturating_mul(hits),
            last_used: Some(entry.last_used),
        }
    }
}

/// The summary of every function in `store`, largest first.
pub(crate) fn summarize(store: &dyn Store) -> Result<Vec<Summary>, Error> {
    // By function, then by code version: which version is current is known at the end.
    let mut versions: HashMap<String, HashMap<String, Summary>> = HashMap::new();
    store.visit(None, Detail::Headers, &mut |found| {
        if let Found::Entry(entry) = found {
            let summary = Summary::of(&entry);
            let EntryInfo {
                function,
                code_version,
                ..
            } = entry;
            versions
                .entry(function)
                .or_default()
                .entry(code_version)
                .or_default()
                .add(&summary);
        }
    })?;
    let mut lines: Vec<Summary> = versions
        .into_iter()
        .map(|(function, versions)| {
            // The current version is the one stored or used last, as `EntryInfo::outdated`
            // says.
            let current = versions
                .iter()
                .max_by_key(|(version, s)| (s.last_used, version.as_str()))
                .map(|(version, _)| version.clone());
            let mut line = Summary {
                function,
                ..Summary::default()
            };
            for (version, summary) in &versions {
                line.add(summary);
                if Some(version) != current.as_ref() {
                    line.outdated_bytes = line.outdated_bytes.saturating_add(summary.bytes);
                }
            }
            line
        })
        .collect();
    lines.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.function.cmp(&b.function)));
    Ok(lines)
}
