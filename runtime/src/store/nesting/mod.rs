//! The serde passes of a payload, with two things postcard has not: a limit on how deep a
//! value nests, and the message of a `Serialize` or `Deserialize` implementation that fails
//! (postcard's own errors drop it: "Serde Serialization Error").
//!
//! The limit is [`MAX_NESTING`], on both passes: a value too deep to be read back is refused
//! when it is written, so that nothing is stored that could not be loaded.
//!
//! Both passes go through wrappers around postcard's serializer and deserializer that count
//! levels on the way in and out, and turn a wrapped implementation's failure back into
//! postcard's error type where it must cross postcard, keeping the real one aside in the
//! [`Track`] of the pass.

mod de;
mod ser;

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ErrorKind;

/// The deepest a value that joblet stores may nest: `dump`, `load` and `#[cached]` refuse
/// anything deeper, with an error (a cache miss for `#[cached]`, and a result not stored).
///
/// Decoding recurses once a level, on the stack of whichever thread loads, so that a file of
/// a million levels would overflow any stack and abort the process. Each of these nests one
/// level: a struct, a tuple, a sequence (`Vec`, a slice), a map, an enum, an `Option`, a
/// newtype. In an unoptimized build a level takes about 1.5 KB of stack: 256 levels fit in
/// the 2 MiB stack of a thread that Rust or rayon starts with room to spare for the caller,
/// and are deeper than real data goes (`serde_json` stops at 128).
///
/// ```
/// use joblet_runtime::{MAX_NESTING, dump, load};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// enum List {
///     Nil,
///     Cons(u32, Box<List>),
/// }
///
/// // Each `Cons` nests a level, and the `Nil` at the end one more.
/// fn list(len: u32) -> List {
///     (0..len).fold(List::Nil, |tail, i| List::Cons(i, Box::new(tail)))
/// }
/// let path = std::env::temp_dir().join("joblet-doc-nesting.jbl");
/// dump(&list(MAX_NESTING as u32 - 1), &path)?;
/// assert!(load::<List>(&path).is_ok());
/// let err = dump(&list(MAX_NESTING as u32), &path).unwrap_err();
/// assert!(err.to_string().contains("nests deeper than 256 levels"));
/// # Ok::<(), joblet_runtime::Error>(())
/// ```
pub const MAX_NESTING: usize = 256;

/// What a wrapped pass refused, besides the wrapped serializer's own errors.
#[derive(Debug)]
enum Refusal {
    /// The value nests deeper than [`MAX_NESTING`].
    TooDeep,
    /// A `Serialize` or `Deserialize` implementation failed with this message.
    Custom(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooDeep => write!(
                f,
                "the value nests deeper than {MAX_NESTING} levels, the most joblet stores and reads back (structs, enums, options, sequences and maps each nest one level)"
            ),
            Refusal::Custom(message) => f.write_str(message),
        }
    }
}

/// The state of one pass: how deep it is, and what it refused, kept here while postcard
/// carries an error of its own type back to the top.
struct Track {
    depth: Cell<usize>,
    refused: RefCell<Option<Refusal>>,
}

impl Track {
    fn new() -> Self {
        Track {
            depth: Cell::new(0),
            refused: RefCell::new(None),
        }
    }

    /// Goes one level deeper, unless that passes the limit.
    fn enter<E>(&self) -> Result<(), Fail<E>> {
        let depth = self.depth.get() + 1;
        if depth > MAX_NESTING {
            return Err(Fail::Own(Refusal::TooDeep));
        }
        self.depth.set(depth);
        Ok(())
    }

    fn exit(&self) {
        self.depth.set(self.depth.get() - 1);
    }

    /// Runs `f` one level deeper.
    fn nested<T, E>(&self, f: impl FnOnce() -> Result<T, Fail<E>>) -> Result<T, Fail<E>> {
        self.enter()?;
        let out = f();
        self.exit();
        out
    }

    /// The wrapped error `E` that carries `fail` through the wrapped serializer: `fail`'s own,
    /// or a stand-in made with `make`, the refusal kept aside.
    fn back<E>(&self, fail: Fail<E>, make: impl FnOnce() -> E) -> E {
        match fail {
            Fail::Inner(e) => e,
            Fail::Own(refusal) => {
                // The first refusal is the cause; a later one only reports its unwinding.
                self.refused.borrow_mut().get_or_insert(refusal);
                make()
            }
        }
    }

    /// The message of the pass's failure: the refusal kept aside if there is one, else the
    /// wrapped serializer's own error.
    fn message<E: fmt::Display>(&self, fail: Fail<E>) -> String {
        match (self.refused.borrow_mut().take(), fail) {
            (Some(refusal), _) | (None, Fail::Own(refusal)) => refusal.to_string(),
            (None, Fail::Inner(e)) => e.to_string(),
        }
    }
}

/// An error of a wrapped pass: the wrapped serializer's, or a refusal of the wrapper's.
#[derive(Debug)]
enum Fail<E> {
    Inner(E),
    Own(Refusal),
}

impl<E: fmt::Display> fmt::Display for Fail<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Inner(e) => e.fmt(f),
            Fail::Own(refusal) => refusal.fmt(f),
        }
    }
}

impl<E: std::error::Error> std::error::Error for Fail<E> {}

impl<E: std::error::Error> serde::ser::Error for Fail<E> {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Fail::Own(Refusal::Custom(message.to_string()))
    }
}

impl<E: std::error::Error> serde::de::Error for Fail<E> {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Fail::Own(Refusal::Custom(message.to_string()))
    }
}

/// Serializes `value` into the postcard flavor `output`, at most [`MAX_NESTING`] levels deep.
/// A failure is [`ErrorKind::Encode`], with the implementation's own message where it gave
/// one (when `output` failed, its owner knows why better).
pub(crate) fn serialize<T, F>(value: &T, output: F) -> Result<(), ErrorKind>
where
    T: ?Sized + Serialize,
    F: postcard::ser_flavors::Flavor,
{
    let mut serializer = postcard::Serializer { output };
    let track = Track::new();
    value
        .serialize(ser::Ser::new(&mut serializer, &track))
        .map_err(|fail| ErrorKind::Encode(track.message(fail)))?;
    serializer
        .output
        .finalize()
        .map(drop)
        .map_err(|e| ErrorKind::Encode(e.to_string()))
}

/// Decodes the postcard `payload` as a `T`, which must take all of it, at most
/// [`MAX_NESTING`] levels deep. A failure is [`ErrorKind::Decode`], with the implementation's
/// own message where it gave one.
pub(crate) fn deserialize<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ErrorKind> {
    let mut deserializer = postcard::Deserializer::from_bytes(payload);
    let track = Track::new();
    let value = T::deserialize(de::De::new(&mut deserializer, &track))
        .map_err(|fail| ErrorKind::Decode(track.message(fail)))?;
    match deserializer.finalize() {
        Ok([]) => Ok(value),
        Ok(_) => Err(ErrorKind::Corrupt("payload has trailing bytes")),
        Err(e) => Err(ErrorKind::Decode(e.to_string())),
    }
}
