//! `dump` and `load`: any serde value, in the checksummed container that cache entries use,
//! written atomically, optionally compressed.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::store::{self, Compression};

/// Writes `value` to `path`, uncompressed: the fastest to write and to read back.
///
/// The file is written to a temporary file beside `path` and renamed over it, so a reader sees
/// the old file or the new one, never a part of one, and a failed write leaves no partial file.
///
/// ```
/// let path = std::env::temp_dir().join("joblet-doc-dump.jbl");
/// let data: Vec<f64> = (0..1000).map(f64::from).collect();
/// joblet_runtime::dump(&data, &path)?;
/// let back: Vec<f64> = joblet_runtime::load(&path)?;
/// assert_eq!(back, data);
/// # Ok::<(), joblet_runtime::Error>(())
/// ```
///
/// # Errors
/// When the value does not serialize, or the file cannot be written (a missing folder is not
/// created).
pub fn dump<T: Serialize + ?Sized>(value: &T, path: impl AsRef<Path>) -> Result<(), Error> {
    dump_with(value, path, Compression::None)
}

/// Writes `value` to `path` with `compression`, which is recorded in the file: [`load`] needs
/// no option.
///
/// ```
/// use joblet_runtime::Compression;
///
/// let path = std::env::temp_dir().join("joblet-doc-dump-zstd.jbl");
/// let text = "to be or not to be ".repeat(1000);
/// joblet_runtime::dump_with(&text, &path, Compression::Zstd(3))?;
/// assert!(std::fs::metadata(&path)?.len() < 1000);
/// assert_eq!(joblet_runtime::load::<String>(&path)?, text);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`dump`].
pub fn dump_with<T: Serialize + ?Sized>(
    value: &T,
    path: impl AsRef<Path>,
    compression: Compression,
) -> Result<(), Error> {
    let path = path.as_ref();
    let type_name = std::any::type_name::<T>();
    store::write(
        path,
        value,
        &store::Meta::value(type_name),
        compression,
        false,
    )
    .map(drop)
    .map_err(|kind| Error::new(path, kind))
}

/// Reads a value written by [`dump`] or [`dump_with`], as the type it was written as.
///
/// ```
/// let path = std::env::temp_dir().join("joblet-doc-load.jbl");
/// joblet_runtime::dump(&vec![1.5f64, 2.5], &path)?;
/// let err = joblet_runtime::load::<Vec<u32>>(&path).unwrap_err();
/// assert!(err.to_string().ends_with("expected alloc::vec::Vec<u32>, file holds alloc::vec::Vec<f64>"));
/// # Ok::<(), joblet_runtime::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind`](crate::ErrorKind) says what went wrong: the file is missing, truncated, damaged (its checksum
/// fails), holds another type, was written by an unsupported format version, or cannot be
/// read.
pub fn load<T: DeserializeOwned + 'static>(path: impl AsRef<Path>) -> Result<T, Error> {
    let path = path.as_ref();
    store::load(path, store::decoder_any::<T>())
}
