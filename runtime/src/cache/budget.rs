//! The automatic size limit of a cache folder, given by `#[cached(max_size = "...")]`, by
//! [`Memory::max_size`], or by a `joblet.toml` file in the folder.
//!
//! Each process keeps a running count of the bytes a limited folder holds: one scan of the
//! file sizes at its first store there, then the size of each entry it stores. When the count
//! passes the limit, the least recently used entries are evicted down to 90 % of it (the
//! margin spares a scan at every following store), and the count restarts from what that scan
//! found. Other processes' stores are seen at that next scan, so with several processes
//! writing, the folder can pass its limit by up to what they stored since.
//!
//! [`Memory::max_size`]: crate::Memory::max_size

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::evict::{self, Limits};
use crate::error::ErrorKind;
use crate::size::size_in_bytes;
use crate::store::{Detail, Store, read_small};

/// The settings file of a cache folder: `max_size = "10G"` sets its automatic size limit.
///
/// ```
/// let dir = std::env::temp_dir().join("joblet-doc-config");
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join(joblet_runtime::CONFIG_FILE), "max_size = \"10G\"\n")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub const CONFIG_FILE: &str = "joblet.toml";

/// What a cache folder holds, as far as this process knows.
struct Budget {
    /// The limit, the lowest of the settings file's and those of the functions that stored
    /// here, and the bytes in the folder (`None` until a store needs them).
    state: Mutex<(Option<u64>, Option<u64>)>,
}

/// Accounts for an entry of `bytes` just stored in `store` by a function with the limit
/// `limit`, if any, and evicts if the folder it bounds (the store's own, or an object store's
/// local tier) is now beyond its limit. Once a folder has a limit, every store into it counts,
/// whichever function made it.
pub(crate) fn stored(store: &dyn Store, bytes: u64, limit: Option<u64>) {
    let (root, store) = store.bounded();
    let budget = budget_of(root);
    let mut state = budget.state.lock().unwrap_or_else(|e| e.into_inner());
    let (lowest, used) = &mut *state;
    *lowest = [*lowest, limit].into_iter().flatten().min();
    let Some(limit) = *lowest else { return };
    let total = match *used {
        Some(used) => used + bytes,
        // The first store under a limit in this process: the scan finds this entry too.
        None => match store.list(None, Detail::Sizes) {
            Ok(listing) => listing.entries.iter().map(|e| e.size).sum(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot measure the cache folder; its size limit is not enforced");
                return;
            }
        },
    };
    *used = Some(total);
    if total <= limit {
        return;
    }
    let target = limit - limit / 10;
    match evict::reduce(store, &Limits::new().bytes(target)) {
        Ok((reduced, remaining, failure)) => {
            tracing::info!(
                folder = %root.display(),
                limit,
                evicted = reduced.entries,
                bytes = reduced.bytes,
                "cache folder over its size limit: evicted least recently used entries"
            );
            if let Some(e) = failure {
                tracing::warn!(error = %e, "some entries could not be evicted; others went in their place");
            }
            *used = Some(remaining);
        }
        Err(e) => {
            // The folder cannot be read: count on, rather than scan again at every store.
            tracing::warn!(error = %e, "cannot evict from the cache folder over its size limit");
        }
    }
}

/// The budget of the folder `root`, made at its first store in this process.
fn budget_of(root: &Path) -> Arc<Budget> {
    static BUDGETS: OnceLock<Mutex<HashMap<PathBuf, Arc<Budget>>>> = OnceLock::new();
    let mut budgets = BUDGETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let budget = budgets.entry(root.to_owned()).or_insert_with(|| {
        Arc::new(Budget {
            state: Mutex::new((configured_limit(root), None)),
        })
    });
    Arc::clone(budget)
}

/// A settings file larger than this is no settings file: it is not read.
const CONFIG_MAX: u64 = 64 << 10;

/// The `max_size` in `root`'s settings file, if it has one. What the file holds that cannot
/// be understood is reported, and left out; so is a file that cannot be a settings file (a
/// FIFO, a device, a large file), which is never read.
fn configured_limit(root: &Path) -> Option<u64> {
    let path = root.join(CONFIG_FILE);
    let unread = |why: &dyn std::fmt::Display| {
        tracing::warn!(file = %path.display(), "{why}; the folder has no size limit from it");
    };
    let text = match read_small(&path, CONFIG_MAX) {
        Ok(Some(bytes)) => String::from_utf8(bytes),
        Ok(None) => {
            unread(&format_args!(
                "larger than {CONFIG_MAX} bytes, not a settings file"
            ));
            return None;
        }
        Err(ErrorKind::NotFound) => return None,
        Err(e) => {
            unread(&e);
            return None;
        }
    };
    let Ok(text) = text else {
        unread(&"not UTF-8 text");
        return None;
    };
    let (limit, problems) = parse_config(&text);
    for problem in problems {
        tracing::warn!(file = %path.display(), "{problem}");
    }
    limit
}

/// Reads a settings file: `key = value` lines and `#` comments, in the TOML syntax. The one
/// key known, `max_size`, takes a size as a string (`"10G"`, `'10G'`) or an integer of bytes
/// (`10_000_000`). Returns it, and a line for each problem found.
fn parse_config(text: &str) -> (Option<u64>, Vec<String>) {
    let mut max_size = None;
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut problem =
            |message: String| problems.push(format!("line {}: {message}", number + 1));
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            problem("tables are not read: `max_size` goes at the top of the file".into());
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            problem("expected `key = value`, as in `max_size = \"10G\"`".into());
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "max_size" => {
                let quoted = ['"', '\'']
                    .into_iter()
                    .find_map(|q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)));
                let size = match quoted {
                    Some(text) => size_in_bytes(text),
                    None => size_in_bytes(&value.replace('_', "")),
                };
                match size {
                    Ok(size) => max_size = Some(size),
                    Err(e) => problem(format!(
                        "`max_size = {value}`: {e}; the folder has no size limit"
                    )),
                }
            }
            other => problem(format!(
                "unknown setting `{other}`; the one known is `max_size`"
            )),
        }
    }
    (max_size, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_files_set_the_limit_or_say_what_is_wrong() {
        let text = "# limits\nmax_size = \"10G\"  # the disk is small\n\n";
        assert_eq!(parse_config(text), (Some(10_000_000_000), vec![]));
        assert_eq!(parse_config("max_size = 4096").0, Some(4096));
        assert_eq!(parse_config("max_size = 5_000").0, Some(5000));
        assert_eq!(parse_config("max_size = '5k'").0, Some(5000));
        assert_eq!(parse_config(""), (None, vec![]));
        // An unknown key is reported, and the rest still read.
        let (limit, problems) = parse_config("max_sise = 1\nmax_size = \"1k\"");
        assert_eq!(limit, Some(1000));
        assert!(
            problems[0].contains("line 1") && problems[0].contains("max_sise"),
            "{problems:?}"
        );
        let (limit, problems) = parse_config("\nmax_size = \"lots\"");
        assert_eq!(limit, None);
        assert!(
            problems[0].contains("line 2") && problems[0].contains("lots"),
            "{problems:?}"
        );
        assert_eq!(parse_config("max_size").1.len(), 1);
        assert_eq!(parse_config("[joblet]\nmax_size = 1").0, None);
    }
}
