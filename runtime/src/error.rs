//! The error type of every fallible joblet operation: which file, and what went wrong.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// An error from reading, writing or managing a joblet file, with the file it concerns.
///
/// ```
/// let err = joblet_runtime::Error::from(std::io::Error::other("disk on fire"));
/// assert!(matches!(err.kind(), joblet_runtime::ErrorKind::Io(_)));
/// assert_eq!(err.to_string(), "disk on fire");
/// ```
#[derive(Debug)]
pub struct Error {
    path: Option<PathBuf>,
    kind: ErrorKind,
}

/// What went wrong.
///
/// ```
/// use joblet_runtime::{Error, ErrorKind};
///
/// fn describe(e: &Error) -> &'static str {
///     match e.kind() {
///         ErrorKind::NotFound => "nothing stored yet",
///         ErrorKind::Truncated | ErrorKind::Corrupt(_) => "damaged, will be recomputed",
///         _ => "other",
///     }
/// }
/// let missing = Error::from(std::io::Error::from(std::io::ErrorKind::NotFound));
/// assert_eq!(describe(&missing), "nothing stored yet");
/// assert!(missing.is_not_found());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// The file ends before its header says it should.
    Truncated,
    /// The file does not start like a joblet file.
    NotAnEntry,
    /// What is at the path is not a regular file (a folder, a FIFO, a socket or a device):
    /// nothing is read from it.
    NotAFile,
    /// The file is damaged: its checksum or its header does not hold.
    Corrupt(&'static str),
    /// The file holds a value of another type than the one asked for.
    WrongType {
        /// The type asked for.
        expected: String,
        /// The type the file holds.
        found: String,
    },
    /// The file was written by a format version this build does not read.
    UnsupportedVersion(u16),
    /// The payload passed its checksum but does not decode as the expected type (the type's
    /// definition changed since the file was written).
    Decode(String),
    /// The value could not be serialized: the serializer's message.
    Encode(String),
    /// A compression level outside those the codec takes.
    CompressionLevel {
        /// The level asked for.
        level: i32,
        /// The levels the codec takes.
        valid: std::ops::RangeInclusive<i32>,
    },
    /// An I/O error other than a missing file.
    Io(io::Error),
    /// The entry is whole, but no longer served: older than the function's `expires`, or
    /// refused by its `validate` check.
    Stale,
}

impl Error {
    pub(crate) fn new(path: &Path, kind: ErrorKind) -> Self {
        Error {
            path: Some(path.to_owned()),
            kind,
        }
    }

    /// Whether the entry is whole but no longer served ([`ErrorKind::Stale`]).
    pub(crate) fn is_stale(&self) -> bool {
        matches!(self.kind, ErrorKind::Stale)
    }

    /// The file the error concerns, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether the error only says that the file does not exist (a plain cache miss).
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, ErrorKind::NotFound)
    }
}

impl ErrorKind {
    /// The memory for a value of `bytes`, as a file describes it, cannot be had.
    pub(crate) fn out_of_memory(bytes: usize) -> Self {
        let message = format!("cannot allocate the {bytes} bytes the file calls for");
        ErrorKind::Io(io::Error::new(io::ErrorKind::OutOfMemory, message))
    }

    pub(crate) fn from_io(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io(e)
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error {
            path: None,
            kind: ErrorKind::from_io(e),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotFound => f.write_str("no such file"),
            ErrorKind::Truncated => f.write_str("file is truncated"),
            ErrorKind::NotAnEntry => f.write_str("not a joblet file"),
            ErrorKind::NotAFile => {
                f.write_str("not a regular file (a folder, FIFO, socket or device); not read")
            }
            ErrorKind::Corrupt(what) => write!(f, "file is corrupt: {what}"),
            ErrorKind::WrongType { expected, found } => {
                write!(f, "expected {expected}, file holds {found}")
            }
            ErrorKind::UnsupportedVersion(v) => write!(
                f,
                "file format version {v} is not supported by this build (it reads versions {} to {})",
                crate::store::format::OLDEST_READ,
                crate::store::format::VERSION
            ),
            ErrorKind::Decode(e) => write!(f, "payload does not decode: {e}"),
            ErrorKind::Encode(e) => write!(f, "value does not serialize: {e}"),
            ErrorKind::CompressionLevel { level, valid } => write!(
                f,
                "zstd compression level {level} is out of range: levels go from {} (fast) to {} (small)",
                valid.start(),
                valid.end()
            ),
            ErrorKind::Io(e) => e.fmt(f),
            ErrorKind::Stale => f.write_str("entry expired, or refused by its `validate` check"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.kind),
            None => self.kind.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
