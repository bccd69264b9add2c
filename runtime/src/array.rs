//! `Array<T>`: a flat array of plain-old-data numbers that entry files store raw, aligned, after
//! the serde payload, and that loads as a view into the file's memory map.
//!
//! Serde has no notion of "this value goes elsewhere", so the array talks to the entry writer
//! and reader through two thread-local slots. While an entry's payload is serialized, the
//! writer opens a [`Sink`]: each array serializes as the index of a section and leaves a clone
//! of itself (a reference count) for the writer to copy to the file afterwards. While a payload
//! is decoded, the reader opens a [`Source`] holding the map and the section table: each array
//! deserializes its index and becomes a view. Outside those slots (hashing a call's arguments,
//! a compressed payload, any other serde format) an array is a byte string.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use bytemuck::Pod;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Error as _, Serialize, Serializer};

use crate::error::ErrorKind;
use crate::xxh3::xxh3_64;

/// A flat array of numbers (or any [`Pod`] type) that loads without copying.
///
/// Built from a `Vec<T>` on the compute side, it derefs to `&[T]`. Written by [`dump`] or
/// stored by `#[cached]`, its elements go to the file raw and aligned; [`load`] or a cache hit
/// gives back an `Array` that is a view into the file's memory map, whatever its size: only the
/// pages you read are read from disk (joblib's `mmap_mode='r'`). The view keeps the mapping
/// alive for as long as it, or any clone of it, lives. It can sit inside a struct with other
/// fields.
///
/// ```
/// use joblet_runtime::{Array, dump, load};
///
/// let path = std::env::temp_dir().join("joblet-doc-array.jbl");
/// let squares: Array<f64> = (0..1_000_000).map(|i| f64::from(i).powi(2)).collect();
/// dump(&squares, &path)?;
///
/// let back: Array<f64> = load(&path)?; // a view into the file: nothing is copied
/// assert!(back.is_mapped());
/// assert_eq!(back[1000], 1e6);
/// assert_eq!(back.iter().take(3).sum::<f64>(), 5.0);
/// # Ok::<(), joblet_runtime::Error>(())
/// ```
///
/// # Integrity
/// Each array's contents are hashed when written. Arrays of an entry that holds at most 1 MiB
/// of them are checked against that hash when loaded; larger ones are not, since that would
/// read every page and make a load cost as much as a copy. Their lengths and places in the
/// file are always checked, so a truncated file is always refused, and
/// [`Array::verify`] checks the contents on demand.
///
/// A file written with compression ([`dump_with`]) holds its arrays inside the compressed
/// payload: they load as owned arrays, decompressed, never as views.
///
/// # Byte order
/// Elements are stored in the machine's byte order, which the file records; a file written on
/// a machine of the other byte order is refused. To other serde formats (JSON, bincode), an
/// `Array` is a byte string in the machine's byte order too.
///
/// # Serializers inside `Serialize`
/// While joblet writes an entry, an `Array` serialized on that thread by any serializer other
/// than joblet's own (a `Serialize` impl that runs `serde_json` on a field, say) is written as
/// the index of a section of the entry, not as its bytes. Such an impl should serialize
/// arrays only through the serializer it is given.
///
/// [`dump`]: crate::dump
/// [`dump_with`]: crate::dump_with
/// [`load`]: crate::load
pub struct Array<T> {
    data: Data<T>,
}

enum Data<T> {
    Owned(Arc<Vec<T>>),
    Mapped {
        map: Arc<memmap2::Mmap>,
        offset: usize,
        len: usize,
        hash: u64,
    },
}

impl<T: Pod> Array<T> {
    /// An empty array.
    ///
    /// ```
    /// assert!(joblet_runtime::Array::<f32>::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::from(Vec::new())
    }

    /// The elements, as a slice; what `Deref` gives.
    ///
    /// ```
    /// let a = joblet_runtime::Array::from(vec![1u32, 2, 3]);
    /// assert_eq!(a.as_slice(), &[1, 2, 3]);
    /// ```
    pub fn as_slice(&self) -> &[T] {
        match &self.data {
            Data::Owned(v) => v,
            // Alignment and length were checked when the view was made.
            Data::Mapped {
                map, offset, len, ..
            } => bytemuck::cast_slice(&map[*offset..*offset + len * size_of::<T>()]),
        }
    }

    /// Whether the elements are read from a memory-mapped file rather than owned in memory.
    ///
    /// ```
    /// let a = joblet_runtime::Array::from(vec![1.0f64]);
    /// assert!(!a.is_mapped());
    /// ```
    pub fn is_mapped(&self) -> bool {
        matches!(self.data, Data::Mapped { .. })
    }

    /// The elements as a mutable slice, copied out of the file first if the array is a view,
    /// or out of shared memory if a clone shares them (copy on write, like numpy's
    /// `mmap_mode='c'`).
    ///
    /// ```
    /// let mut a = joblet_runtime::Array::from(vec![1, 2, 3]);
    /// let b = a.clone();
    /// a.make_mut()[0] = 10;
    /// assert_eq!((a[0], b[0]), (10, 1));
    /// ```
    pub fn make_mut(&mut self) -> &mut [T] {
        if let Data::Mapped { .. } = self.data {
            self.data = Data::Owned(Arc::new(self.as_slice().to_vec()));
        }
        match &mut self.data {
            Data::Owned(v) => Arc::<Vec<T>>::make_mut(v),
            Data::Mapped { .. } => unreachable!("replaced just above"),
        }
    }

    /// The elements as a `Vec`, without a copy when this array owns them alone.
    ///
    /// ```
    /// let a = joblet_runtime::Array::from(vec![1u8, 2]);
    /// assert_eq!(a.into_vec(), vec![1, 2]);
    /// ```
    pub fn into_vec(self) -> Vec<T> {
        match self.data {
            Data::Owned(v) => Arc::try_unwrap(v).unwrap_or_else(|shared| shared.to_vec()),
            Data::Mapped { .. } => {
                let mut v = crate::huge_pages::vec_with_capacity(self.len());
                v.extend_from_slice(self.as_slice());
                v
            }
        }
    }

    /// Checks the elements of a loaded array against the hash stored when it was written,
    /// reading every page. An array that owns its elements (built in memory, copied out by
    /// [`Array::make_mut`], or loaded from a compressed file, whose own checksum covered it)
    /// has nothing left to check and passes.
    ///
    /// ```
    /// let path = std::env::temp_dir().join("joblet-doc-verify.jbl");
    /// joblet_runtime::dump(&joblet_runtime::Array::from(vec![0.5f32; 1 << 20]), &path)?;
    /// let a: joblet_runtime::Array<f32> = joblet_runtime::load(&path)?;
    /// assert!(a.verify());
    /// # Ok::<(), joblet_runtime::Error>(())
    /// ```
    pub fn verify(&self) -> bool {
        match &self.data {
            Data::Owned(_) => true,
            Data::Mapped { hash, .. } => xxh3_64(self.bytes()) == *hash,
        }
    }

    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_slice())
    }

    fn owned(v: Vec<T>) -> Self {
        const { assert!(size_of::<T>() > 0, "Array elements must not be zero-sized") };
        Array {
            data: Data::Owned(Arc::new(v)),
        }
    }
}

impl<T: Pod> Default for Array<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Pod> From<Vec<T>> for Array<T> {
    fn from(v: Vec<T>) -> Self {
        Self::owned(v)
    }
}

impl<T: Pod> From<&[T]> for Array<T> {
    fn from(v: &[T]) -> Self {
        Self::owned(v.to_vec())
    }
}

impl<T: Pod> FromIterator<T> for Array<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::owned(iter.into_iter().collect())
    }
}

impl<T: Pod> std::ops::Deref for Array<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> AsRef<[T]> for Array<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

/// A clone shares the elements (a reference count), whether owned or mapped.
impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            data: match &self.data {
                Data::Owned(v) => Data::Owned(Arc::clone(v)),
                Data::Mapped {
                    map,
                    offset,
                    len,
                    hash,
                } => Data::Mapped {
                    map: Arc::clone(map),
                    offset: *offset,
                    len: *len,
                    hash: *hash,
                },
            },
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl<T: Pod + PartialEq> PartialEq for Array<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Pod + PartialEq> PartialEq<[T]> for Array<T> {
    fn eq(&self, other: &[T]) -> bool {
        self.as_slice() == other
    }
}

impl<T: Pod + PartialEq> PartialEq<Vec<T>> for Array<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// The bytes of an array that an entry writer copies to the file after the payload.
pub(crate) trait Section {
    fn bytes(&self) -> &[u8];
}

impl<T: Pod> Section for Array<T> {
    fn bytes(&self) -> &[u8] {
        Array::bytes(self)
    }
}

/// What the entry being written on this thread does with the values the store places raw.
enum Sections {
    /// Writes them after the payload, in the order of their indices.
    Kept(Vec<Box<dyn Section>>),
    /// Has no room for them (an entry made in memory, see `store::image`): the first one
    /// fails the serialization before it is encoded; `offered` says one did.
    Refused { offered: bool },
}

thread_local! {
    static SINK: RefCell<Option<Sections>> = const { RefCell::new(None) };
    static SOURCE: RefCell<Option<Source>> = const { RefCell::new(None) };
}

/// Collects the arrays of a payload while it is serialized on this thread.
pub(crate) struct Sink {
    outer: Option<Sections>,
}

impl Sink {
    pub(crate) fn open() -> Self {
        Sink {
            outer: SINK.replace(Some(Sections::Kept(Vec::new()))),
        }
    }

    /// Opens a sink that takes no sections: a value that would be one fails the
    /// serialization instead, before it spends anything on encoding itself, and
    /// [`Sink::refused`] then says so.
    pub(crate) fn refusing() -> Self {
        Sink {
            outer: SINK.replace(Some(Sections::Refused { offered: false })),
        }
    }

    /// Closes any open sink until the result is dropped: for serializers other than the
    /// entry writer's that may run while it serializes (hashing a cached call's arguments
    /// inside a `Serialize` impl), so that their arrays stay byte strings.
    pub(crate) fn suspend() -> Self {
        Sink { outer: SINK.take() }
    }

    /// Whether a value was refused a section since [`Sink::refusing`].
    pub(crate) fn refused(&self) -> bool {
        SINK.with_borrow(|sink| matches!(sink, Some(Sections::Refused { offered: true })))
    }

    /// The arrays serialized since `open`, in the order of their indices.
    pub(crate) fn finish(self) -> Vec<Box<dyn Section>> {
        match SINK.take() {
            Some(Sections::Kept(sections)) => sections,
            _ => Vec::new(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Restores the sink of an enclosing write (a `Serialize` impl that dumps a file).
        SINK.set(self.outer.take());
    }
}

/// The serializer's message when a sink refuses a section.
pub(crate) const REFUSED: &str = "a section in an entry made in memory";

/// Whether the sink open on this thread refuses sections; if it does, it records that one
/// was offered. A value the store places raw asks this before it encodes itself.
pub(crate) fn refuses_sections() -> bool {
    SINK.with_borrow_mut(|sink| match sink {
        Some(Sections::Refused { offered }) => {
            *offered = true;
            true
        }
        _ => false,
    })
}

/// Where one array section lies in an entry file, from the entry's section table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SectionRef {
    pub offset: usize,
    pub len: usize,
    pub hash: u64,
}

/// The map and section table of the entry being decoded on this thread.
pub(crate) struct Source {
    pub map: Arc<memmap2::Mmap>,
    pub sections: Vec<SectionRef>,
    /// Whether to check each array against its hash as it is decoded.
    pub verify: bool,
}

thread_local! {
    /// Why an array could not be decoded: serde's error type would keep only that it failed.
    static PROBLEM: std::cell::Cell<Option<ErrorKind>> = const { std::cell::Cell::new(None) };
}

/// Keeps a [`Source`] open on this thread while a payload is decoded.
pub(crate) struct SourceGuard {
    outer: Option<Source>,
}

impl SourceGuard {
    /// Opens `source` for the payload about to be decoded on this thread, or, with `None`,
    /// closes any source open around it (a load nested in another's `Deserialize` must not
    /// read the outer file's sections).
    pub(crate) fn enter(source: Option<Source>) -> SourceGuard {
        PROBLEM.set(None);
        SourceGuard {
            outer: SOURCE.replace(source),
        }
    }

    /// Closes the source; says why an array failed to decode, if one did.
    pub(crate) fn exit(self) -> Option<ErrorKind> {
        PROBLEM.take()
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        SOURCE.set(self.outer.take());
    }
}

/// Hands `section` to the sink open on this thread, if one keeps sections, and gives its
/// index; `None` (and `section` never built) when no entry is being written. For arrays and
/// for the other values that the store places raw (`Frame`s), after
/// [`refuses_sections`].
pub(crate) fn add_section(section: impl FnOnce() -> Box<dyn Section>) -> Option<u64> {
    SINK.with_borrow_mut(|sink| match sink {
        Some(Sections::Kept(sections)) => {
            sections.push(section());
            Some(sections.len() as u64 - 1)
        }
        _ => None,
    })
}

/// Whether a payload is being decoded on this thread with its sections open: then a value
/// that the store placed raw was written as a section index.
#[cfg(feature = "polars")]
pub(crate) fn source_open() -> bool {
    SOURCE.with_borrow(Option::is_some)
}

/// Runs `f` with the source open on this thread; a problem it reports is kept for
/// [`SourceGuard::exit`], as an array's is, and given back as serde's message.
#[cfg(feature = "polars")]
pub(crate) fn with_source<R>(f: impl FnOnce(&Source) -> Result<R, ErrorKind>) -> Result<R, String> {
    SOURCE
        .with_borrow(|source| match source {
            Some(source) => f(source),
            None => Err(ErrorKind::Corrupt("a section index outside an entry")),
        })
        .map_err(|problem| {
            let message = problem.to_string();
            PROBLEM.set(Some(problem));
            message
        })
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if refuses_sections() {
            return Err(S::Error::custom(REFUSED));
        }
        match add_section(|| Box::new(self.clone())) {
            // With the element type, which the stored type's name does not show when the
            // array is a field: a field changed from `Array<f64>` to `Array<f32>` is refused
            // rather than reinterpreted.
            Some(index) => (index, std::any::type_name::<T>()).serialize(serializer),
            None => serializer.serialize_bytes(self.bytes()),
        }
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A payload decoded with a source open was written with a sink open: the array is a
        // section index. (Entries are written with a sink unless compressed, and the reader
        // opens a source exactly for uncompressed entries.)
        if SOURCE.with_borrow(Option::is_some) {
            let (index, element) = <(u64, String)>::deserialize(deserializer)?;
            return SOURCE
                .with_borrow(|source| {
                    view(source.as_ref().expect("checked above"), index, &element)
                })
                .map_err(|problem| {
                    let error = de::Error::custom(&problem);
                    PROBLEM.set(Some(problem));
                    error
                });
        }
        deserializer.deserialize_bytes(BytesVisitor(std::marker::PhantomData))
    }
}

/// The array stored in section `index` of the entry being decoded, whose elements were written
/// as `element`s.
fn view<T: Pod>(source: &Source, index: u64, element: &str) -> Result<Array<T>, ErrorKind> {
    let corrupt = ErrorKind::Corrupt;
    if element != std::any::type_name::<T>() {
        return Err(ErrorKind::Decode(format!(
            "an array of {element} was stored where an array of {} is read",
            std::any::type_name::<T>()
        )));
    }
    let section = usize::try_from(index)
        .ok()
        .and_then(|i| source.sections.get(i))
        .ok_or(corrupt("array section index out of range"))?;
    let bytes = &source.map[section.offset..section.offset + section.len];
    let checked = |bytes: &[u8]| {
        if xxh3_64(bytes) == section.hash {
            Ok(())
        } else {
            Err(corrupt("array section checksum mismatch"))
        }
    };
    if source.verify {
        checked(bytes)?;
    }
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(elements) => Ok(Array {
            data: Data::Mapped {
                map: Arc::clone(&source.map),
                offset: section.offset,
                len: elements.len(),
                hash: section.hash,
            },
        }),
        // Sections are 64-byte aligned in the file and the map is page aligned, so only a type
        // aligned to more than that lands here. It is copied, so checked: the copy reads every
        // byte anyway, and an owned array has no hash left to `verify` against.
        Err(bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned) => {
            checked(bytes)?;
            Ok(Array::owned(bytemuck::pod_collect_to_vec(bytes)))
        }
        // A length that is not a whole number of elements is damage.
        Err(_) => Err(corrupt("array section is not a whole number of elements")),
    }
}

struct BytesVisitor<T>(std::marker::PhantomData<T>);

impl<T: Pod> BytesVisitor<T> {
    fn array<E: de::Error>(bytes: &[u8]) -> Result<Array<T>, E> {
        if !bytes.len().is_multiple_of(size_of::<T>()) {
            return Err(E::invalid_length(
                bytes.len(),
                &"a whole number of elements",
            ));
        }
        Ok(Array::owned(bytemuck::pod_collect_to_vec(bytes)))
    }
}

impl<'de, T: Pod> Visitor<'de> for BytesVisitor<T> {
    type Value = Array<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the bytes of an array")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Self::array(v)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Self-describing formats (JSON) may hand bytes back as a sequence of numbers.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Self::array(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_an_entry_an_array_is_its_bytes() {
        let a = Array::from(vec![1.5f64, -2.0]);
        let bytes = postcard::to_allocvec(&a).unwrap();
        let mut expected = vec![16u8];
        expected.extend_from_slice(bytemuck::cast_slice(&[1.5f64, -2.0]));
        assert_eq!(bytes, expected);
        let back: Array<f64> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, a);
        assert!(postcard::from_bytes::<Array<f64>>(&[3, 0, 0, 0]).is_err());
    }

    /// What an array serializes as while a sink is open: its section index and element type.
    fn index(i: u8, element: &str) -> Vec<u8> {
        let mut v = vec![i, element.len() as u8];
        v.extend_from_slice(element.as_bytes());
        v
    }

    #[test]
    fn a_sink_collects_arrays_and_restores_the_outer_one() {
        let a = Array::from(vec![7u16; 3]);
        let outer = Sink::open();
        let both = [index(0, "u16"), index(1, "u16")].concat();
        assert_eq!(postcard::to_allocvec(&(&a, &a)).unwrap(), both);
        {
            let inner = Sink::open();
            assert_eq!(postcard::to_allocvec(&a).unwrap(), index(0, "u16"));
            assert_eq!(inner.finish().len(), 1);
        }
        assert_eq!(postcard::to_allocvec(&a).unwrap(), index(2, "u16"));
        let sections = outer.finish();
        assert_eq!(sections.len(), 3);
        assert_eq!(sections[2].bytes(), bytemuck::cast_slice::<u16, u8>(&a));
        assert_eq!(postcard::to_allocvec(&a).unwrap()[0], 6);
    }

    #[test]
    fn clones_share_and_make_mut_copies() {
        let mut a: Array<i32> = (0..4).collect();
        let b = a.clone();
        a.make_mut()[3] = -1;
        assert_eq!(a, vec![0, 1, 2, -1]);
        assert_eq!(b, vec![0, 1, 2, 3]);
        assert_eq!(b.into_vec(), vec![0, 1, 2, 3]);
    }
}
