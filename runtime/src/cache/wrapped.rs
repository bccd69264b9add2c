//! `Memory::cache`: a closure, or a function that cannot carry `#[cached]`, cached in a
//! folder as `#[cached]` functions are, in the same format and layout.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::render::Args;
use super::site::{Mode, OkOnly, Site, Stores, Whole};
use crate::error::Error;
use crate::store::{EntryInfo, decoder_any};

/// A function wrapped by [`Memory::cache`](crate::Memory::cache): calls load a stored result,
/// or compute and store it, as a `#[cached]` function's do, in the same format and layout.
pub struct Cached<F> {
    site: Site,
    f: F,
}

impl<F> Cached<F> {
    pub(super) fn new(site: Site, f: F) -> Self {
        Cached { site, f }
    }

    /// Names this version of the function's code: entries stored under another version are
    /// not loaded. Change it when the function's results change.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-version"));
    /// let area = memory.cache("area", |r: f64| std::f64::consts::PI * r * r).version("2");
    /// # assert!(area.call(1.0) > 3.0);
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.site.set_version(version.into());
        self
    }

    /// Computes again, on their next call, the results stored longer ago than `age`, as
    /// `#[cached(expires = "...")]` does.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-expires"));
    /// let rate = memory.cache("rate", |day: u32| f64::from(day) * 1.5).expires(Duration::from_secs(3600));
    /// # assert_eq!(rate.call(2), 3.0);
    /// ```
    pub fn expires(mut self, age: Duration) -> Self {
        self.site.set_expires(age);
        self
    }

    /// Asks `check` before each hit, with what the stored entry says of itself: `false` makes
    /// the call a miss, computed and stored again, as `#[cached(validate = ...)]` does
    /// (joblib's `cache_validation_callback`).
    ///
    /// ```
    /// use joblet_runtime::EntryInfo;
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-validate"));
    /// /// Results that took under a second to compute are not worth keeping for long.
    /// fn worth_keeping(entry: &EntryInfo) -> bool {
    ///     entry.compute.as_secs() >= 1 || entry.hits < 100
    /// }
    /// let cube = memory.cache("cube", |x: u64| x * x * x).validate(worth_keeping);
    /// # assert_eq!(cube.call(2), 8);
    /// ```
    pub fn validate(mut self, check: fn(&EntryInfo) -> bool) -> Self {
        self.site.set_validate(check);
        self
    }

    /// Prints joblib's `[Memory]` lines to stderr: from 1, for each computed call; from 5,
    /// for each loaded one too.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-verbose"));
    /// let square = memory.cache("square", |x: u64| x * x).verbose(1);
    /// # assert_eq!(square.call(3), 9);
    /// ```
    pub fn verbose(mut self, level: u8) -> Self {
        self.site.set_verbose(level);
        self
    }

    /// Calls the function through the cache: loads the result stored for an equal `arg`, or
    /// computes, stores and returns it. As with `#[cached]`, a cache that cannot be read or
    /// written only costs the computation, with a `tracing` warning.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-call"));
    /// let add = memory.cache("add", |(a, b): (i32, i32)| a + b);
    /// assert_eq!(add.call((2, 3)), 5);
    /// ```
    pub fn call<A, R>(&self, arg: A) -> R
    where
        F: Fn(A) -> R,
        A: Serialize + std::fmt::Debug,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.run::<_, _, Whole>(Mode::Call, arg)
    }

    /// Calls the function, storing only `Ok` results: an error is returned, never stored, and
    /// the next call computes again.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-try"));
    /// let parse = memory.cache("parse", |s: String| s.parse::<u32>());
    /// assert_eq!(parse.try_call("42".to_string()), Ok(42));
    /// assert!(parse.try_call("x".to_string()).is_err());
    /// ```
    pub fn try_call<A, T, E>(&self, arg: A) -> Result<T, E>
    where
        F: Fn(A) -> Result<T, E>,
        A: Serialize + std::fmt::Debug,
        T: Serialize + DeserializeOwned + 'static,
    {
        self.run::<_, _, OkOnly>(Mode::Call, arg)
    }

    /// Computes, stores the result in place of any stored one, and returns it.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-refresh"));
    /// let now = memory.cache("now", |_: ()| std::time::SystemTime::now());
    /// let first = now.call(());
    /// assert!(now.refresh(()) >= first);
    /// ```
    pub fn refresh<A, R>(&self, arg: A) -> R
    where
        F: Fn(A) -> R,
        A: Serialize + std::fmt::Debug,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.run::<_, _, Whole>(Mode::Refresh, arg)
    }

    /// Whether a call with `arg` has a valid stored result of type `R`. Computes nothing.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-is-cached"));
    /// let cube = memory.cache("cube", |x: u64| x * x * x);
    /// cube.call(3);
    /// assert!(cube.is_cached::<_, u64>(&3));
    /// ```
    pub fn is_cached<A, R>(&self, arg: &A) -> bool
    where
        F: Fn(A) -> R,
        A: Serialize,
        R: Serialize + DeserializeOwned + 'static,
    {
        let mut key = self.site.key(None);
        key.arg(arg);
        self.site.contains::<R>(&mut key)
    }

    /// Removes every stored result of the function, for every version.
    ///
    /// # Errors
    /// When its folder exists but cannot be removed.
    ///
    /// ```
    /// # let memory = joblet_runtime::Memory::new(std::env::temp_dir().join("joblet-doc-clear"));
    /// let half = memory.cache("half", |x: u64| x / 2);
    /// half.call(8);
    /// half.clear()?;
    /// assert!(!half.is_cached::<_, u64>(&8));
    /// # Ok::<(), joblet_runtime::Error>(())
    /// ```
    pub fn clear(&self) -> Result<(), Error> {
        self.site.clear()
    }

    /// A call, as `#[cached]` makes one: see [`Site::call`].
    fn run<A, R, S>(&self, mode: Mode, arg: A) -> R
    where
        F: Fn(A) -> R,
        A: Serialize + std::fmt::Debug,
        S: Stores<R, Stored: Serialize + DeserializeOwned + 'static>,
    {
        let mut key = self.site.key(None);
        key.arg(&arg);
        let render = |arg: &A, args: &mut Args| args.debug(arg);
        self.site
            .call::<A, R, S>(mode, &mut key, decoder_any(), arg, render, &self.f)
    }
}

impl<F> std::fmt::Debug for Cached<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}
