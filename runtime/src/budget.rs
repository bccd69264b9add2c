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

use crate::memory::{Limits, Memory};

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

/// Accounts for an entry of `bytes` just stored in the cache folder `root` by a function with
/// the limit `limit`, if any, and evicts if the folder is now beyond its limit. Once a folder
/// has a limit, every store into it counts, whichever function made it.
pub(crate) fn stored(root: &Path, bytes: u64, limit: Option<u64>) {
    let budget = budget_of(root);
    let mut state = budget.state.lock().unwrap_or_else(|e| e.into_inner());
    let (lowest, used) = &mut *state;
    *lowest = [*lowest, limit].into_iter().flatten().min();
    let Some(limit) = *lowest else { return };
    let memory = Memory::new(root);
    let total = match *used {
        Some(used) => used + bytes,
        // The first store under a limit in this process: the scan finds this entry too.
        None => match memory.total_bytes() {
            Ok(total) => total,
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
    match memory.reduce(&Limits::new().bytes(target)) {
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

/// The `max_size` in `root`'s settings file, if it has one. What the file holds that cannot
/// be understood is reported, and left out.
fn configured_limit(root: &Path) -> Option<u64> {
    let path = root.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
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

/// Why a size does not parse: see [`size_in_bytes`].
///
/// ```
/// let e = joblet_runtime::size_in_bytes("lots").unwrap_err();
/// assert!(e.to_string().starts_with("not a size"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number with an optional unit.
    NotASize,
    /// A unit other than those known.
    UnknownUnit,
    /// More bytes than a `u64` holds.
    TooLarge,
}

impl SizeError {
    /// What is wrong, and how to write it.
    pub const fn message(self) -> &'static str {
        match self {
            SizeError::NotASize => {
                "not a size: write a number of bytes, or one with a unit: 500M, 2G, 1GiB"
            }
            SizeError::UnknownUnit => {
                "unknown unit: use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024)"
            }
            SizeError::TooLarge => "too large a size: 2^64 bytes or more",
        }
    }

    /// The message of `#[cached(max_size = "...")]`, which the compiler shows at the literal.
    pub const fn in_attribute(self) -> &'static str {
        match self {
            SizeError::NotASize => {
                "`max_size` is not a size: write a number of bytes, or one with a unit, as in `max_size = \"10G\"`"
            }
            SizeError::UnknownUnit => {
                "unknown unit in `max_size`: use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024), as in `max_size = \"10G\"`"
            }
            SizeError::TooLarge => "`max_size` is too large: 2^64 bytes or more",
        }
    }
}

impl SizeError {
    /// The message of `parallel!(max_memory = "...")`, which the compiler shows at the literal.
    pub const fn in_max_memory(self) -> &'static str {
        match self {
            SizeError::NotASize => {
                "`max_memory` is not a size: write a number of bytes, or one with a unit, as in `max_memory = \"2 GiB\"`"
            }
            SizeError::UnknownUnit => {
                "unknown unit in `max_memory`: use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024), as in `max_memory = \"2 GiB\"`"
            }
            SizeError::TooLarge => "`max_memory` is too large: 2^64 bytes or more",
        }
    }
}

impl std::error::Error for SizeError {}

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// `500`, `500B`, `10k`, `1.5G`, `2GiB`, `2 GiB`: a number of bytes, with a unit of powers of
/// 1000 (`k`, `M`, `G`, `T`) or of 1024 (`Ki`, `Mi`, `Gi`, `Ti`). A `const fn`, so that
/// `#[cached(max_size = "...")]` is checked at compile time.
///
/// ```
/// use joblet_runtime::{SizeError, size_in_bytes};
///
/// assert_eq!(size_in_bytes("1.5G"), Ok(1_500_000_000));
/// assert_eq!(size_in_bytes("2 GiB"), Ok(2 << 30));
/// assert_eq!(size_in_bytes("3 parsecs"), Err(SizeError::UnknownUnit));
/// ```
///
/// # Errors
/// A [`SizeError`] saying what is wrong.
pub const fn size_in_bytes(text: &str) -> Result<u64, SizeError> {
    use SizeError::{NotASize, TooLarge, UnknownUnit};
    let b = text.as_bytes();
    let (mut start, mut end) = (0, b.len());
    while start < end && b[start] == b' ' {
        start += 1;
    }
    while end > start && b[end - 1] == b' ' {
        end -= 1;
    }
    if start == end || !(b[start].is_ascii_digit() || b[start] == b'.') {
        return Err(NotASize);
    }
    if end > start && (b[end - 1] == b'B' || b[end - 1] == b'b') {
        end -= 1;
    }
    let binary = end > start && (b[end - 1] == b'i' || b[end - 1] == b'I');
    if binary {
        end -= 1;
    }
    let power = if end > start {
        match b[end - 1] {
            b'k' | b'K' => 1,
            b'm' | b'M' => 2,
            b'g' | b'G' => 3,
            b't' | b'T' => 4,
            b'0'..=b'9' | b'.' | b' ' if !binary => 0,
            _ => return Err(UnknownUnit),
        }
    } else {
        0
    };
    if power > 0 {
        end -= 1;
    }
    while end > start && b[end - 1] == b' ' {
        end -= 1;
    }
    // At most 24 significant digits and 24 decimals: 10^24 times 2^40 fits in a u128.
    let (mut mantissa, mut digits, mut decimals, mut dot) = (0u128, 0u32, 0u32, false);
    let mut seen = 0;
    let mut i = start;
    while i < end {
        match b[i] {
            c @ b'0'..=b'9' => {
                // Leading zeros do not count towards the digits kept.
                if mantissa > 0 || c != b'0' {
                    digits += 1;
                }
                if dot {
                    decimals += 1;
                }
                if digits > 24 || decimals > 24 {
                    return Err(TooLarge);
                }
                mantissa = mantissa * 10 + (c - b'0') as u128;
                seen += 1;
            }
            b'.' if !dot => dot = true,
            _ => return Err(NotASize),
        }
        i += 1;
    }
    if seen == 0 {
        return Err(NotASize);
    }
    let unit: u128 = if binary {
        1 << (10 * power)
    } else {
        10u128.pow(3 * power)
    };
    let bytes = mantissa * unit / 10u128.pow(decimals);
    if bytes > u64::MAX as u128 {
        return Err(TooLarge);
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_their_units() {
        assert_eq!(size_in_bytes("500"), Ok(500));
        assert_eq!(size_in_bytes("500B"), Ok(500));
        assert_eq!(size_in_bytes("1.5G"), Ok(1_500_000_000));
        assert_eq!(size_in_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(size_in_bytes(" 2 gib "), Ok(2 << 30));
        assert_eq!(size_in_bytes("10kB"), Ok(10_000));
        assert_eq!(size_in_bytes("0.5k"), Ok(500));
        assert_eq!(size_in_bytes("ten"), Err(SizeError::NotASize));
        assert!(size_in_bytes("").is_err());
        assert!(size_in_bytes("G").is_err());
        assert!(size_in_bytes("1.2.3").is_err());
        assert!(size_in_bytes("5i").is_err());
        assert!(size_in_bytes("-5").is_err());
        assert_eq!(size_in_bytes("3X"), Err(SizeError::UnknownUnit));
        assert_eq!(size_in_bytes("99999999999T"), Err(SizeError::TooLarge));
        assert_eq!(
            size_in_bytes("1000000000000000000000000000000"),
            Err(SizeError::TooLarge)
        );
        let big = "999999999999999999999999Ti";
        assert_eq!(size_in_bytes(big), Err(SizeError::TooLarge));
        assert_eq!(
            size_in_bytes("309485009821345068724781056Ti"),
            Err(SizeError::TooLarge)
        );
        assert_eq!(size_in_bytes("0000000000000000000000000000001k"), Ok(1000));
        assert_eq!(size_in_bytes("16777215.999999Ti"), Ok(18446744073708452104));
        assert_eq!(size_in_bytes("16777216Ti"), Err(SizeError::TooLarge));
        assert_eq!(size_in_bytes(".5k"), Ok(500));
        assert_eq!(size_in_bytes("5."), Ok(5));
        assert_eq!(size_in_bytes("."), Err(SizeError::NotASize));
        assert!(size_in_bytes("1e3").is_err());
        assert!(size_in_bytes("1.5.5").is_err());
    }

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
