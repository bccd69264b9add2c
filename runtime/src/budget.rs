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
    /// The limit in the folder's settings file, read once.
    configured: Option<u64>,
    /// Bytes in the folder: `None` until a store needs it.
    used: Mutex<Option<u64>>,
}

/// Accounts for an entry of `bytes` just stored in the cache folder `root`, under the limit
/// `limit` of its function, if any, and evicts if the folder is now beyond its limit.
pub(crate) fn stored(root: &Path, bytes: u64, limit: Option<u64>) {
    let budget = budget_of(root);
    let limit = match (limit, budget.configured) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => match a.or(b) {
            Some(limit) => limit,
            None => return,
        },
    };
    let mut used = budget.used.lock().unwrap_or_else(|e| e.into_inner());
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
        Ok((reduced, remaining)) => {
            tracing::info!(
                folder = %root.display(),
                limit,
                evicted = reduced.entries,
                bytes = reduced.bytes,
                "cache folder over its size limit: evicted least recently used entries"
            );
            *used = Some(remaining);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot evict from the cache folder over its size limit");
            *used = None;
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
            configured: configured_limit(root),
            used: Mutex::new(None),
        })
    });
    Arc::clone(budget)
}

/// The `max_size` in `root`'s settings file, if it has one. A file that cannot be understood
/// is reported, and sets no limit.
fn configured_limit(root: &Path) -> Option<u64> {
    let path = root.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    match parse_config(&text) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(file = %path.display(), "{e}; the folder has no size limit");
            None
        }
    }
}

/// Reads a settings file: `key = value` lines, `#` comments, in the TOML syntax (the one key
/// known, `max_size`, takes a string or an integer of bytes).
fn parse_config(text: &str) -> Result<Option<u64>, String> {
    let mut max_size = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |message: &str| format!("line {}: {message}", number + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(at("expected `key = value`"));
        };
        match key.trim() {
            "max_size" => {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                let size = size_in_bytes(value).map_err(|e| at(&format!("`{value}`: {e}")))?;
                max_size = Some(size);
            }
            other => {
                return Err(at(&format!(
                    "unknown setting `{other}`; expected `max_size`"
                )));
            }
        }
    }
    Ok(max_size)
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
            SizeError::TooLarge => "too large a size",
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
            SizeError::TooLarge => "`max_size` is larger than 2^64 bytes",
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
    let (mut mantissa, mut digits, mut decimals, mut dot) = (0u128, 0u32, 0u32, false);
    let mut i = start;
    while i < end {
        match b[i] {
            c @ b'0'..=b'9' => {
                if digits >= 30 {
                    return Err(TooLarge);
                }
                mantissa = mantissa * 10 + (c - b'0') as u128;
                digits += 1;
                if dot {
                    decimals += 1;
                }
            }
            b'.' if !dot => dot = true,
            _ => return Err(NotASize),
        }
        i += 1;
    }
    if digits == 0 {
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
        assert!(size_in_bytes("99999999999T").is_err());
        assert!(size_in_bytes("1000000000000000000000000000000").is_err());
    }

    #[test]
    fn settings_files_set_the_limit_or_say_what_is_wrong() {
        let text = "# limits\nmax_size = \"10G\"  # the disk is small\n\n";
        assert_eq!(parse_config(text), Ok(Some(10_000_000_000)));
        assert_eq!(parse_config("max_size = 4096"), Ok(Some(4096)));
        assert_eq!(parse_config(""), Ok(None));
        let unknown = parse_config("max_sise = 1").unwrap_err();
        assert!(
            unknown.contains("line 1") && unknown.contains("max_sise"),
            "{unknown}"
        );
        let bad = parse_config("\nmax_size = \"lots\"").unwrap_err();
        assert!(bad.contains("line 2") && bad.contains("`lots`"), "{bad}");
        assert!(parse_config("max_size").is_err());
    }
}
