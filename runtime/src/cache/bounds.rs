//! What the code `#[cached]` generates checks at compile time, each with a message that says
//! what to change, and the helpers that give its arguments their types.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::store::CacheOutput;

/// The argument or result of a cached function must be serializable.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "this argument type does not implement `serde::Serialize`",
    note = "derive it with `#[derive(serde::Serialize)]`, or leave the argument out of the key with `#[cached(ignore = [name])]`"
)]
pub trait CacheArg: Serialize {}
impl<T: ?Sized + Serialize> CacheArg for T {}

/// Compile-time check, placed by the macro at the span of an argument's type.
pub const fn assert_arg<T: ?Sized + CacheArg>() {}

/// Compile-time check, placed by the macro at the span of the return type.
pub const fn assert_output<T: CacheOutput>() {}

/// Fails to compile, at the literal, where `dir = "s3://..."` is given to a build without the
/// `remote` feature.
pub const fn remote_enabled<B: RemoteStore>() {}

/// Implemented in builds with the `remote` feature.
#[diagnostic::on_unimplemented(
    message = "a cache in an object store (`dir = \"s3://...\"`) needs joblet's Cargo feature `remote`",
    label = "this build cannot reach object stores",
    note = "enable it with `joblet = {{ version = \"...\", features = [\"remote\"] }}`, or give a folder"
)]
pub trait RemoteStore {}

#[cfg(feature = "remote")]
impl RemoteStore for () {}

/// A cache folder given as `dir = ...`.
#[diagnostic::on_unimplemented(
    message = "`dir` must be a path, but `{Self}` does not implement `AsRef<Path>`",
    label = "expected a path, such as `\"cache\"`, a `String` or a `PathBuf`",
    note = "write `dir = \"cache\"`, or give an expression of a type implementing `AsRef<std::path::Path>`"
)]
pub trait CacheDir {
    /// The folder.
    fn into_dir(self) -> PathBuf;
}
impl<T: AsRef<Path>> CacheDir for T {
    fn into_dir(self) -> PathBuf {
        self.as_ref().to_path_buf()
    }
}

/// The folder named by a `dir = ...` argument.
pub fn dir_path<P: CacheDir>(dir: P) -> PathBuf {
    dir.into_dir()
}

/// Pins an async block's output type, so that `?` inside it infers its error type.
pub fn typed_future<T, F: std::future::Future<Output = T>>(future: F) -> F {
    future
}
