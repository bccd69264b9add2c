//! `Frame`: a Polars `DataFrame` that hashes from its Arrow buffers and that the store places
//! raw, as an Arrow IPC file in a section of the entry, loaded as a view of the file's map.
//!
//! It talks to the entry writer and reader through the slots `Array`s use (see
//! [`crate::array`]): while an entry is written, a frame serializes as the index of a section
//! holding its IPC file; while one is decoded, it maps that section. Elsewhere (a compressed
//! payload, the processes backend's messages, any other serde format) it is the file's bytes.
//! Fed to the key hasher, it is a digest of its schema and values ([`digest`]).

mod check;
mod digest;
mod ipc;
mod series;

use std::fmt;
use std::sync::Arc;

use crate::xxh3::xxh3_64;
use polars_core::prelude::DataFrame;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Error as _, Serialize, Serializer};

use crate::array::{Section, SectionRef, Source};
use crate::error::ErrorKind;
use crate::key::KeyHasher;

pub use series::SeriesValue;

/// A Polars [`DataFrame`] as a cached argument or result, or a value for [`dump`]/[`load`].
///
/// As an argument, its key comes straight from its Arrow buffers: the column names, dtypes
/// and order, each column's null pattern and values, whatever the frame's chunks or the
/// bytes outside its slices and under its nulls; equal frames get equal keys, however built.
/// As a result, it is stored as an Arrow IPC file inside the entry, and a hit (or a [`load`])
/// gives back a frame whose buffers are views of the file's memory map: nothing is copied or
/// decoded, whatever its size. The map lives as long as any column of the frame does.
///
/// It derefs to the [`DataFrame`]; [`Frame::into_inner`] gives it back.
///
/// ```
/// use joblet_runtime::polars_core::prelude::*;
/// use joblet_runtime::{Frame, dump, load};
///
/// let df = df!("id" => [1i64, 2, 3], "score" => [0.5f64, 1.5, 2.5])?;
/// let path = std::env::temp_dir().join("joblet-doc-frame.jbl");
/// dump(&Frame::from(df.clone()), &path)?;
///
/// let back: Frame = load(&path)?; // columns mapped from the file
/// assert!(back.is_mapped());
/// assert_eq!(*back, df);
/// assert_eq!(back.column("score")?.f64()?.sum(), Some(4.5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Dtypes
/// Booleans, integers of 8 to 64 bits and `Int128`, floats, decimals, strings, binary,
/// dates, datetimes, durations, times and the null dtype hash and store. A frame with a
/// column of another dtype (lists, structs, categoricals and enums) is refused with an error
/// that names the column: when hashed as an argument, and when stored.
///
/// # Integrity
/// Before Polars' reader parses anything of the file, its skeleton (schema, the messages
/// that place every buffer and count every column's rows and nulls, footer) is checked
/// against a hash in the entry's checksummed payload; then its structure is: every buffer in
/// bounds and long enough for its rows, null counts that match the validity bitmaps, string
/// views in bounds and valid UTF-8. A damaged or forged file is a miss, or a [`load`] error.
/// The buffers' bytes themselves are checked against the section's hash when the entry's
/// sections come to at most 1 MiB, as [`Array`]s are; larger ones are not read at load (that
/// would cost what a copy does), and [`Frame::verify`] checks them on demand.
///
/// [`Array`]: crate::Array
///
/// [`dump`]: crate::dump
/// [`load`]: crate::load
#[derive(Clone, Default)]
pub struct Frame {
    frame: DataFrame,
    /// The section the columns are views of, for [`Frame::verify`].
    mapped: Option<Arc<MapSection>>,
}

impl Frame {
    /// The frame, as a Polars `DataFrame`.
    ///
    /// ```
    /// use joblet_runtime::polars_core::prelude::*;
    /// let df = df!("x" => [1u32, 2])?;
    /// assert_eq!(joblet_runtime::Frame::from(df.clone()).into_inner(), df);
    /// # Ok::<(), PolarsError>(())
    /// ```
    pub fn into_inner(self) -> DataFrame {
        self.frame
    }

    /// Whether the columns are views of a file's memory map (a cache hit or a [`load`] of an
    /// uncompressed file) rather than memory of their own.
    ///
    /// [`load`]: crate::load
    ///
    /// ```
    /// use joblet_runtime::polars_core::prelude::*;
    /// assert!(!joblet_runtime::Frame::from(df!("x" => [1i32])?).is_mapped());
    /// # Ok::<(), PolarsError>(())
    /// ```
    pub fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }

    /// Checks the file the columns were mapped from against the hash stored when it was
    /// written, reading every page; see "Integrity" above. A frame that was not mapped has
    /// nothing left to check and passes.
    ///
    /// ```
    /// use joblet_runtime::polars_core::prelude::*;
    /// let path = std::env::temp_dir().join("joblet-doc-frame-verify.jbl");
    /// joblet_runtime::dump(&joblet_runtime::Frame::from(df!("x" => [1.5f64; 1000])?), &path)?;
    /// let back: joblet_runtime::Frame = joblet_runtime::load(&path)?;
    /// assert!(back.verify());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self) -> bool {
        self.mapped.as_ref().is_none_or(|section| section.verify())
    }
}

impl From<DataFrame> for Frame {
    fn from(frame: DataFrame) -> Self {
        Frame {
            frame,
            mapped: None,
        }
    }
}

impl From<Frame> for DataFrame {
    fn from(frame: Frame) -> Self {
        frame.frame
    }
}

impl std::ops::Deref for Frame {
    type Target = DataFrame;
    fn deref(&self) -> &DataFrame {
        &self.frame
    }
}

impl std::ops::DerefMut for Frame {
    /// A column changed through this gets memory of its own (Polars copies on write).
    fn deref_mut(&mut self) -> &mut DataFrame {
        &mut self.frame
    }
}

/// Frames are equal when their `DataFrame`s are, mapped or not.
impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.frame == other.frame
    }
}

impl AsRef<DataFrame> for Frame {
    fn as_ref(&self) -> &DataFrame {
        &self.frame
    }
}

/// The shape and the columns' names and dtypes, not the values: what a cached call's
/// arguments show in `joblet report` (Polars without its `fmt` feature prints no values
/// either).
impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Frame({} x {}: ",
            self.frame.height(),
            self.frame.width()
        )?;
        for (i, column) in self.frame.columns().iter().enumerate() {
            let comma = if i == 0 { "" } else { ", " };
            write!(f, "{comma}{} {}", column.name(), column.dtype())?;
        }
        f.write_str(")")
    }
}

/// The type a frame's section index is written with, as an array's is with its element type.
const SECTION_KIND: &str = "arrow-ipc";

/// A frame's IPC file, for the entry writer to copy after the payload.
struct IpcSection(Vec<u8>);

impl Section for IpcSection {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Whether `S` is the key hasher: serde gives a `Serialize` impl no other way to tell, and a
/// frame's key is a digest of its buffers rather than any serializer's stream of them.
fn is_key_hasher<S>() -> bool {
    std::any::type_name::<S>() == std::any::type_name::<&mut KeyHasher>()
}

impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if is_key_hasher::<S>() {
            let digest = digest::digest(&self.frame).map_err(S::Error::custom)?;
            return serializer.serialize_u128(digest);
        }
        // Before the encoding, the frame's largest cost: a miss tries its entry in memory
        // first, which holds no sections, then writes it streamed, encoding it once.
        if crate::array::refuses_sections() {
            return Err(S::Error::custom(crate::array::REFUSED));
        }
        let (file, skeleton) = ipc::encode(&self.frame).map_err(S::Error::custom)?;
        let mut file = Some(file);
        let index =
            crate::array::add_section(|| Box::new(IpcSection(file.take().expect("taken once"))));
        match (index, file) {
            (Some(index), _) => (index, SECTION_KIND, skeleton).serialize(serializer),
            (None, Some(file)) => serializer.serialize_bytes(&file),
            (None, None) => unreachable!("the file is taken only by a sink"),
        }
    }
}

impl<'de> Deserialize<'de> for Frame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if crate::array::source_open() {
            let (index, kind, skeleton) =
                <(u64, String, ipc::Skeleton)>::deserialize(deserializer)?;
            return crate::array::with_source(|source| mapped(source, index, &kind, &skeleton))
                .map_err(de::Error::custom);
        }
        deserializer.deserialize_bytes(FileVisitor)
    }
}

/// The frame in section `index` of the entry being decoded, its columns views of the map.
fn mapped(
    source: &Source,
    index: u64,
    kind: &str,
    skeleton: &ipc::Skeleton,
) -> Result<Frame, ErrorKind> {
    if kind != SECTION_KIND {
        return Err(ErrorKind::Decode(format!(
            "a section of {kind} was stored where a frame is read"
        )));
    }
    let section = usize::try_from(index)
        .ok()
        .and_then(|i| source.sections.get(i))
        .ok_or(ErrorKind::Corrupt("frame section index out of range"))?;
    let view = Arc::new(MapSection {
        map: Arc::clone(&source.map),
        section: *section,
    });
    // The whole section when the entry's sections are small, as arrays are checked; always
    // its skeleton, before the reader parses any of it.
    if source.verify && !view.verify() {
        return Err(ErrorKind::Corrupt("frame section checksum mismatch"));
    }
    let frame = ipc::decode(Arc::clone(&view), Some(skeleton)).map_err(ErrorKind::Corrupt)?;
    Ok(Frame {
        frame,
        mapped: Some(view),
    })
}

/// One section of an entry's map, which the columns of a mapped frame keep alive.
struct MapSection {
    map: Arc<memmap2::Mmap>,
    section: SectionRef,
}

impl MapSection {
    fn verify(&self) -> bool {
        xxh3_64(self.as_ref()) == self.section.hash
    }
}

impl AsRef<[u8]> for MapSection {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.section.offset..self.section.offset + self.section.len]
    }
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = Frame;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Arrow IPC file of a frame")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Frame, E> {
        ipc::decode(Arc::new(ipc::Aligned::copy(v)), None)
            .map(Frame::from)
            .map_err(E::custom)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Frame, A::Error> {
        // Self-describing formats (JSON) may hand bytes back as a sequence of numbers.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        self.visit_bytes(&bytes)
    }
}
