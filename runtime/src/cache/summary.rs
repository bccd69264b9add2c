//! What a cache holds, a line per function: entries, bytes, what its outdated code versions
//! take, compute time stored, hits and the compute time they saved. Added up from the sums the
//! store hands over by code version, so that a cache of a million entries is summed in the
//! memory of its functions, not of its entries.

use std::collections::HashMap;

use crate::error::Error;
use crate::store::{Store, Summary};

/// The summary of every function in `store`, largest first.
pub(crate) fn summarize(store: &dyn Store) -> Result<Vec<Summary>, Error> {
    // By function, then by code version: which version is current is known at the end.
    let mut versions: HashMap<String, HashMap<String, Summary>> = HashMap::new();
    store.sum(None, &mut |version, summary| {
        let function = match versions.get_mut(&summary.function) {
            Some(function) => function,
            None => versions.entry(summary.function.clone()).or_default(),
        };
        match function.get_mut(version) {
            Some(sum) => sum.add(&summary),
            None => {
                function.insert(version.to_owned(), summary);
            }
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
