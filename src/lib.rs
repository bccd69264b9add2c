#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

/// Caches a function's results on disk, keyed by its arguments and its code.
///
/// A call computes the result, stores it in a file under the cache folder, and returns it; a
/// later call with equal arguments, in this process or another, loads the stored result
/// instead. See the [crate documentation](crate) for what is stored and how.
///
/// ```
/// use joblet::cached;
///
/// #[cached(dir = "target/doc-cache")]
/// fn slow_square(x: u64) -> u64 {
///     std::thread::sleep(std::time::Duration::from_millis(50));
///     x * x
/// }
///
/// assert_eq!(slow_square(4), 16); // computes, or loads what an earlier run stored
/// assert_eq!(slow_square(4), 16); // loads
/// assert!(slow_square::is_cached(4));
/// ```
///
/// # Arguments
///
/// ## `dir`
///
/// The cache folder: a string literal or any expression implementing
/// `AsRef<std::path::Path>`, evaluated once, at the first call. A relative path is resolved
/// against the current directory at that moment. Without `dir`, the folder is the value of
/// the environment variable `JOBLET_CACHE_DIR` ([`CACHE_DIR_ENV`]) or, when it is not set,
/// `.joblet` ([`DEFAULT_CACHE_DIR`]).
///
/// ```
/// # use joblet::cached;
/// fn cache_root() -> std::path::PathBuf {
///     std::env::temp_dir().join("joblet-doc")
/// }
///
/// #[cached(dir = cache_root())]
/// fn double(x: i32) -> i32 {
///     2 * x
/// }
/// assert_eq!(double(21), 42);
/// ```
///
/// ## `ignore`
///
/// Parameters left out of the key: calls that differ only in them share one entry. `self`
/// may be listed, for a method whose result does not depend on its receiver.
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache", ignore = [verbose])]
/// fn total(values: &[f64], verbose: bool) -> f64 {
///     if verbose {
///         println!("summing {} values", values.len());
///     }
///     values.iter().sum()
/// }
/// assert_eq!(total(&[1.0, 2.0], true), 3.0);
/// assert!(total::is_cached(&[1.0, 2.0], false));
/// ```
///
/// ## `version`
///
/// A salt mixed into every key. The function's own code is fingerprinted, but not the code it
/// calls: when that changes, bump `version` to invalidate the stored results.
///
/// ```
/// # use joblet::cached;
/// fn helper(x: f64) -> f64 {
///     x.sqrt()
/// }
///
/// #[cached(dir = "target/doc-cache", version = "2")]
/// fn norm(v: Vec<f64>) -> f64 {
///     helper(v.iter().map(|x| x * x).sum())
/// }
/// assert_eq!(norm(vec![3.0, 4.0]), 5.0);
/// ```
///
/// ## `name`
///
/// The identity the entries are stored under, instead of the module path and function name,
/// so that moving the function to another module keeps its entries.
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache", name = "features")]
/// fn extract_features(text: &str) -> Vec<usize> {
///     text.split_whitespace().map(str::len).collect()
/// }
/// assert_eq!(extract_features("a bb ccc"), vec![1, 2, 3]);
/// ```
///
/// # Controls
///
/// A free function `f` gets a companion of the same name in the type namespace (where no
/// function lives, so the name is free) with `f::is_cached(args) -> bool` (computes nothing),
/// `f::refresh(args)` (computes and stores, bypassing the stored result) and `f::clear()`
/// (removes every stored result of `f`, for every version of its code).
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache")]
/// fn cube(x: u64) -> u64 {
///     x * x * x
/// }
///
/// cube::clear()?;
/// assert!(!cube::is_cached(3));
/// assert_eq!(cube(3), 27);
/// assert!(cube::is_cached(3));
/// assert_eq!(cube::refresh(3), 27);
/// # Ok::<(), joblet::Error>(())
/// ```
///
/// # Results, methods and async functions
///
/// A function returning `Result<T, E>` stores only `Ok` values; `E` need not be serializable.
/// Methods key on `self` (so `Self: Serialize`); `async fn` works with any executor.
///
/// ```
/// # use joblet::cached;
/// #[derive(serde::Serialize)]
/// struct Model {
///     weight: f64,
/// }
///
/// impl Model {
///     #[cached(dir = "target/doc-cache")]
///     fn predict(&self, x: f64) -> f64 {
///         self.weight * x
///     }
/// }
///
/// #[cached(dir = "target/doc-cache")]
/// fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// assert_eq!(Model { weight: 2.0 }.predict(3.0), 6.0);
/// assert_eq!(parse("12".into()), Ok(12));
/// assert!(parse("x".into()).is_err()); // not stored
/// ```
///
/// # When the cache fails
///
/// A damaged entry or a cache folder that cannot be used never fails the call: the value is
/// computed and returned, and a warning goes to `tracing`.
///
/// # Compile errors
///
/// `&mut` parameters, `&mut self`, a missing return value, an `impl Trait` result, `const fn`,
/// and argument or result types that are not serializable are refused, with an error at the
/// offending token that says how to fix it.
pub use joblet_macros::cached;

pub use joblet_runtime::{CACHE_DIR_ENV, DEFAULT_CACHE_DIR, Error, ErrorKind};

#[doc(hidden)]
pub mod __private {
    pub use joblet_runtime::__private::*;
}
