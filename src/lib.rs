//! joblet: disk memoization for Rust, in the spirit of Python's joblib.
#![deny(missing_docs)]

pub use joblet_macros::cached;
pub use joblet_runtime::{Error, ErrorKind, CACHE_DIR_ENV, DEFAULT_CACHE_DIR};

#[doc(hidden)]
pub mod __private {
    pub use joblet_runtime::__private::*;
}
