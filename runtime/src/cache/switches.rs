//! The environment's say over the cache: the folder of functions given no `dir`, and the
//! switches that turn caching off or make every call recompute, read once a run.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment variable that sets the cache folder of functions declared without `dir`.
///
/// ```
/// use std::process::Command;
///
/// // Run a program with its default cache folder moved to scratch space.
/// let mut cmd = Command::new("true");
/// cmd.env(joblet_runtime::CACHE_DIR_ENV, "/tmp/scratch-cache");
/// assert_eq!(joblet_runtime::CACHE_DIR_ENV, "JOBLET_CACHE_DIR");
/// ```
pub const CACHE_DIR_ENV: &str = "JOBLET_CACHE_DIR";

/// The cache folder of functions declared without `dir` when [`CACHE_DIR_ENV`] is not set,
/// relative to the current directory at the first call.
///
/// ```
/// let default = std::path::Path::new(joblet_runtime::DEFAULT_CACHE_DIR);
/// assert!(default.is_relative());
/// ```
pub const DEFAULT_CACHE_DIR: &str = ".joblet";

/// The cache folder of functions declared without `dir`: [`CACHE_DIR_ENV`] if set, else
/// [`DEFAULT_CACHE_DIR`] (relative to the current directory).
///
/// ```
/// let dir = joblet_runtime::default_cache_dir();
/// assert!(std::env::var_os("JOBLET_CACHE_DIR").is_some() || dir.ends_with(".joblet"));
/// ```
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os(CACHE_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR), PathBuf::from)
}

/// The environment variable that switches caching off for a run: when set (to anything but
/// empty or `0`), every cached call computes, and nothing is read from or written to a cache.
///
/// ```
/// use std::process::Command;
///
/// // Profile a program's real work without its cache, and without editing it.
/// let mut cmd = Command::new("true");
/// cmd.env(joblet_runtime::DISABLE_ENV, "1");
/// assert_eq!(joblet_runtime::DISABLE_ENV, "JOBLET_DISABLE");
/// ```
pub const DISABLE_ENV: &str = "JOBLET_DISABLE";

/// The environment variable that makes every cached call of a run recompute its result and
/// overwrite the stored one, when set (to anything but empty or `0`).
///
/// ```
/// assert_eq!(joblet_runtime::REFRESH_ENV, "JOBLET_REFRESH");
/// ```
pub const REFRESH_ENV: &str = "JOBLET_REFRESH";

/// What the environment says for this run: read once, at the first cached call.
#[derive(Clone, Copy)]
pub(crate) struct Switches {
    pub disabled: bool,
    pub refresh: bool,
}

pub(crate) fn switches() -> Switches {
    static SWITCHES: OnceLock<Switches> = OnceLock::new();
    *SWITCHES.get_or_init(|| {
        let on = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
        let switches = Switches {
            disabled: on(DISABLE_ENV),
            refresh: on(REFRESH_ENV),
        };
        if switches.disabled {
            tracing::info!("{DISABLE_ENV} is set: cached functions compute every call");
        } else if switches.refresh {
            tracing::info!("{REFRESH_ENV} is set: cached functions recompute and overwrite");
        }
        switches
    })
}
