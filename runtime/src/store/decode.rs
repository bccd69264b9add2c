//! How a stored value is decoded: which decoder a type gets, and the steps from an opened
//! file to the value.
//!
//! The default goes through serde. Vectors of fixed-width numbers (`f64`, `f32`, `u8`, `i8`)
//! have a postcard encoding that is their length followed by their little-endian bytes, so
//! they are copied in bulk instead, about four times faster for large results. The file format
//! is the same either way.
//!
//! The runtime alone cannot tell a `Vec<f64>` from any other `T` without specialization, so the
//! choice is made where the concrete type is known, in the code `#[cached]` generates, by
//! autoref specialization:
//!
//! ```
//! use joblet_runtime::__private::{Codec, ViaBulk as _, ViaSerde as _};
//!
//! let bulk = (&&Codec::<Vec<f64>>::new()).decoder(); // the bulk copy
//! let serde = (&&Codec::<Vec<u64>>::new()).decoder(); // serde
//! # let _ = (bulk, serde);
//! ```

use std::marker::PhantomData;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::entry::{Entry, parse};
use super::read::Opened;
use crate::array::{Array, SourceGuard};
use crate::error::{Error, ErrorKind};
use crate::huge_pages::try_vec_with_capacity;

/// A value the store can hold: serializable, and deserializable without borrowing. Decoders
/// ask for it so that a result type that is not one fails the same bound as the macro's own
/// check, and the compiler reports it once, with the message below.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in the cache: it must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "this return type must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    note = "derive both with `#[derive(serde::Serialize, serde::Deserialize)]`; a borrowed result cannot be cached, return an owned value"
)]
pub trait CacheOutput: Serialize + DeserializeOwned {}
impl<T: Serialize + DeserializeOwned> CacheOutput for T {}

/// Verifies an entry's checksum and decodes its payload into a `T`.
pub type DecodeFn<T> = fn(&Entry<'_>) -> Result<T, ErrorKind>;

/// Reads a large entry file's payload straight into a new `T`, or says `None` to leave it to
/// the general path.
type ReadFn<T> = fn(&mut Opened) -> Option<Result<T, ErrorKind>>;

/// How a stored `T` is decoded: from an entry's bytes, and for some types, straight from a
/// large file into the value's own memory.
pub struct Decoder<T> {
    entry: DecodeFn<T>,
    file: Option<ReadFn<T>>,
}

impl<T> Clone for Decoder<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Decoder<T> {}

impl<T> Decoder<T> {
    /// Decodes an entry read into memory.
    pub(crate) fn entry(self, entry: &Entry<'_>) -> Result<T, ErrorKind> {
        (self.entry)(entry)
    }

    /// Reads the value straight from the file, when this type has a way to and the file suits.
    pub(crate) fn file(self, file: &mut Opened) -> Option<Result<T, ErrorKind>> {
        self.file.and_then(|read| read(file))
    }

    /// Decodes the entry open as `file`: straight from the file where this type can, else
    /// from the whole file parsed, with the arrays of its payload as views into its map.
    pub(crate) fn decode(self, file: &mut Opened) -> Result<T, ErrorKind> {
        if let Some(value) = self.file(file) {
            return value;
        }
        let bytes = file.bytes()?;
        let entry = parse(&bytes)?;
        let arrays = SourceGuard::enter(entry.source(&bytes));
        let decoded = self.decode_entry(&entry);
        match arrays.exit() {
            Some(problem) => Err(problem),
            None => decoded,
        }
    }

    /// Decodes `entry` as `T`, which must be the type it was written as. The decoder verifies
    /// the checksum.
    pub(crate) fn decode_entry(self, entry: &Entry<'_>) -> Result<T, ErrorKind> {
        if let Err(wrong) = entry.expect_type::<T>() {
            // A damaged type name is damage, not another type.
            entry.verify()?;
            return Err(wrong);
        }
        self.entry(entry)
    }
}

/// Reads, checks and decodes the entry at `path`.
pub(crate) fn load<T>(path: &Path, decode: Decoder<T>) -> Result<T, Error> {
    Opened::open(path, false)
        .and_then(|mut file| decode.decode(&mut file))
        .map_err(|kind| Error::new(path, kind))
}

/// Selects the decoder of `T` through method resolution on `&&Codec<T>`.
pub struct Codec<T>(PhantomData<fn() -> T>);

impl<T> Codec<T> {
    /// The selector for `T`.
    pub const fn new() -> Self {
        Codec(PhantomData)
    }
}

impl<T> Default for Codec<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Decoding through serde: what every type gets, one dereference below [`ViaBulk`].
pub trait ViaSerde<T> {
    /// The decoder.
    fn decoder(&self) -> Decoder<T>
    where
        T: CacheOutput;
}

// Implemented for every `T`, with the bound on the method: a result type that cannot be
// stored then fails the same obligation as the macro's own check, and rustc reports it once.
// The method takes `&self`, so on `Codec<T>` its receiver is `&Codec<T>`: reached from
// `&&Codec<T>` after one dereference, once `ViaBulk` (receiver `&&Codec<T>`) did not apply.
impl<T> ViaSerde<T> for Codec<T> {
    fn decoder(&self) -> Decoder<T>
    where
        T: CacheOutput,
    {
        Decoder {
            entry: serde_decode::<T>,
            file: None,
        }
    }
}

/// Decoding by bulk copy, for vectors of fixed-width numbers.
pub trait ViaBulk<T> {
    /// The decoder.
    fn decoder(&self) -> Decoder<T>;
}

/// The one list of types with a bulk decoder: it makes both the autoref impls that generated
/// code resolves to and the `TypeId` dispatch of `decoder_any`, so the two cannot drift apart.
macro_rules! bulk {
    ($($t:ty),*) => {
        $(bulk!(@impl $t);)*

        /// The bulk decoder of `T`, found by `TypeId`, for code that knows `T` only
        /// generically; `None` for types without one.
        fn bulk_by_type_id<T: 'static>() -> Option<Decoder<T>> {
            use std::any::{Any, TypeId};
            let id = TypeId::of::<T>();
            $(
                if id == TypeId::of::<Vec<$t>>() {
                    let decoder = (&&Codec::<Vec<$t>>::new()).decoder();
                    return (&decoder as &dyn Any).downcast_ref::<Decoder<T>>().copied();
                }
            )*
            None
        }
    };
    (@impl $t:ty) => {
        impl ViaBulk<Vec<$t>> for &Codec<Vec<$t>> {
            fn decoder(&self) -> Decoder<Vec<$t>> {
                Decoder {
                    entry: |entry| {
                        const N: usize = size_of::<$t>();
                        // Verified first, in one shot: xxh3 hashes a contiguous buffer about
                        // twice as fast as its streaming form would, interleaved with the copy.
                        entry.verify()?;
                        let payload = entry.raw_payload()?;
                        let (_, numbers) = numbers(&payload, N)?;
                        // Monomorphic, so that the conversion inlines into a vectorized copy.
                        // (A `memcpy` into the vector's spare capacity measured slower here.)
                        let count = numbers.len() / N;
                        let mut out = try_vec_with_capacity(count)
                            .ok_or_else(|| ErrorKind::out_of_memory(numbers.len()))?;
                        out.extend(numbers.chunks_exact(N).map(|c| {
                            <$t>::from_le_bytes(c.try_into().expect("chunks of N bytes"))
                        }));
                        Ok(out)
                    },
                    file: Some(|file| {
                        let numbers = file.read_numbers::<Vec<$t>, $t>(|head, payload_len| {
                            counted(head, size_of::<$t>(), payload_len).ok()
                        })?;
                        Some(numbers.map(|mut numbers| {
                            if cfg!(target_endian = "big") {
                                numbers.iter_mut().for_each(|x| *x = <$t>::from_le_bytes(x.to_ne_bytes()));
                            }
                            numbers
                        }))
                    }),
                }
            }
        }
    };
}

bulk!(f64, f32, u8, i8);

/// Verifies the checksum, then decodes through serde; the payload must be consumed exactly.
/// Verification comes first: a `Deserialize` implementation is user code, and it sees only
/// bytes that this crate wrote.
pub(crate) fn serde_decode<T: DeserializeOwned>(entry: &Entry<'_>) -> Result<T, ErrorKind> {
    entry.verify()?;
    decode_payload(&entry.raw_payload()?)
}

pub(crate) fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ErrorKind> {
    super::nesting::deserialize(payload)
}

/// The decoder of `T` for code that only knows `T` generically (`load`): the bulk copy for the
/// vectors that have one, serde otherwise.
pub(crate) fn decoder_any<T: DeserializeOwned + 'static>() -> Decoder<T> {
    bulk_by_type_id()
        .or_else(array_by_type_id)
        .unwrap_or(Decoder {
            entry: serde_decode::<T>,
            file: None,
        })
}

/// The decoder of `T` if it is an `Array` of numbers: a compressed entry of one (as
/// `dump_with` writes) is decompressed into the array's memory without a second copy; an
/// uncompressed one goes through serde (its array is a view into the file).
fn array_by_type_id<T: 'static>() -> Option<Decoder<T>> {
    use std::any::{Any, TypeId};
    macro_rules! arrays {
        ($($t:ty),*) => {$(
            if TypeId::of::<T>() == TypeId::of::<Array<$t>>() {
                let decoder = Decoder::<Array<$t>> {
                    entry: array_decode::<$t>,
                    file: None,
                };
                return (&decoder as &dyn Any).downcast_ref::<Decoder<T>>().copied();
            }
        )*};
    }
    arrays!(f64, f32, u64, i64, u32, i32, u16, i16, u8, i8);
    None
}

/// Decodes an `Array` of `N`s: a compressed entry straight into its memory, any other through
/// serde.
fn array_decode<N: bytemuck::Pod>(entry: &Entry<'_>) -> Result<Array<N>, ErrorKind> {
    entry.verify()?;
    match entry.packed_numbers::<N>() {
        Some(numbers) => numbers.map(Array::from),
        None => serde_decode(entry),
    }
}

/// Splits postcard's encoding of a `Vec` of `n`-byte numbers into its varint length and the
/// numbers' little-endian bytes, checking that the length matches exactly.
fn numbers(payload: &[u8], n: usize) -> Result<(&[u8], &[u8]), ErrorKind> {
    let (prefix, _) = counted(payload, n, payload.len())?;
    Ok(payload.split_at(prefix))
}

/// Reads the varint length at the start of `start`, the first bytes of a payload of
/// `payload_len` bytes encoding a `Vec` of `n`-byte numbers; returns the varint's length and
/// the count, once checked to fill the payload exactly.
fn counted(start: &[u8], n: usize, payload_len: usize) -> Result<(usize, usize), ErrorKind> {
    let (count, rest) =
        postcard::take_from_bytes::<usize>(start).map_err(|e| ErrorKind::Decode(e.to_string()))?;
    let prefix = start.len() - rest.len();
    let numbers = payload_len.saturating_sub(prefix);
    if count.checked_mul(n) != Some(numbers) || prefix > payload_len {
        return Err(ErrorKind::Decode(format!(
            "a sequence of {count} {n}-byte numbers in {numbers} bytes"
        )));
    }
    Ok((prefix, count))
}

#[cfg(test)]
// The borrows in `(&&Codec::<T>::new()).decoder()` are the selection mechanism, not noise.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;
    use crate::store::compress::Compression;
    use crate::store::write::{Meta, encode, write};

    fn entry_bytes<T: Serialize>(value: &T) -> Vec<u8> {
        encode(
            value,
            std::any::type_name::<T>(),
            std::time::Duration::ZERO,
            Compression::None,
        )
        .unwrap()
    }

    fn both<T: CacheOutput + PartialEq + std::fmt::Debug>(value: &T, bulk: Decoder<T>) {
        let bytes = entry_bytes(value);
        let entry = parse(&bytes).unwrap();
        assert_eq!(&bulk.entry(&entry).unwrap(), value);
        assert_eq!(&serde_decode::<T>(&entry).unwrap(), value);
        // A flipped bit anywhere is caught before anything is returned.
        for at in [16, bytes.len() - entry.payload.len(), bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            if let Ok(entry) = parse(&damaged) {
                assert!(bulk.entry(&entry).is_err(), "flip at {at} accepted");
            }
        }
    }

    #[test]
    fn bulk_decoding_agrees_with_serde() {
        // Fewer under Miri, which interprets every byte of the hashing.
        let n = if cfg!(miri) { 1000 } else { 100_000 };
        let floats: Vec<f64> = (0..n).map(|i| f64::from(i) * -0.37).collect();
        both(&floats, (&&Codec::<Vec<f64>>::new()).decoder());
        let odd = vec![f64::from_bits(0x7ff8_dead_beef_0001), -0.0, f64::INFINITY];
        let decoded = (&&Codec::<Vec<f64>>::new())
            .decoder()
            .entry(&parse(&entry_bytes(&odd)).unwrap());
        let bits: Vec<u64> = decoded.unwrap().iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, odd.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        let singles: Vec<f32> = (0..300).map(|i| i as f32 / 7.0).collect();
        both(&singles, (&&Codec::<Vec<f32>>::new()).decoder());
        both(
            &(0..=255u8).collect::<Vec<u8>>(),
            (&&Codec::<Vec<u8>>::new()).decoder(),
        );
        both(&vec![-128i8, 0, 127], (&&Codec::<Vec<i8>>::new()).decoder());
        both(&Vec::<f64>::new(), (&&Codec::<Vec<f64>>::new()).decoder());
    }

    #[test]
    fn lengths_must_match_exactly() {
        assert!(numbers(&[2, 1, 2, 3, 4, 5, 6, 7, 8], 4).is_ok());
        assert!(numbers(&[2, 1, 2, 3, 4, 5, 6, 7], 4).is_err());
        assert!(numbers(&[2, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4).is_err());
        assert!(
            numbers(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                8
            )
            .is_err()
        );
        assert!(numbers(&[], 8).is_err());
    }

    /// Which decoder was picked, told apart by how each reports a payload of three bytes
    /// announcing three numbers.
    fn picks_bulk<T>(decode: Decoder<T>) -> bool {
        let bytes = entry_bytes(&(3u8, 0u8, 0u8));
        match decode.entry(&parse(&bytes).unwrap()) {
            Err(ErrorKind::Decode(m)) => m.contains("-byte numbers"),
            _ => false,
        }
    }

    #[test]
    fn decoder_any_picks_bulk_for_number_vectors_only() {
        assert!(picks_bulk(decoder_any::<Vec<f64>>()));
        assert!(picks_bulk(decoder_any::<Vec<i8>>()));
        assert!(!picks_bulk(decoder_any::<Vec<u64>>()));
        assert!(!picks_bulk(decoder_any::<String>()));
    }

    #[test]
    fn method_resolution_picks_bulk_for_number_vectors_only() {
        assert!(picks_bulk((&&Codec::<Vec<f64>>::new()).decoder()));
        assert!(picks_bulk((&&Codec::<Vec<f32>>::new()).decoder()));
        assert!(picks_bulk((&&Codec::<Vec<i8>>::new()).decoder()));
        assert!(!picks_bulk((&&Codec::<Vec<u64>>::new()).decoder()));
        assert!(!picks_bulk((&&Codec::<Vec<Vec<f64>>>::new()).decoder()));
        assert!(!picks_bulk((&&Codec::<String>::new()).decoder()));
    }

    /// Writes `value` as an entry file and opens it.
    fn opened<T: Serialize>(name: &str, value: &T) -> (std::path::PathBuf, Opened) {
        opened_as(name, value, std::any::type_name::<T>())
    }

    /// Writes `value` as an entry file that says it holds a `type_name`, and opens it.
    fn opened_as<T: Serialize>(
        name: &str,
        value: &T,
        type_name: &str,
    ) -> (std::path::PathBuf, Opened) {
        let dir = std::env::temp_dir().join(format!("joblet-decode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let kind = Compression::None;
        write(&path, value, &Meta::value(type_name), kind, false).unwrap();
        let file = Opened::open(&path, false).unwrap();
        (path, file)
    }

    #[test]
    fn large_number_vectors_are_read_straight_from_the_file() {
        let f64s = |file: &mut Opened| (&&Codec::<Vec<f64>>::new()).decoder().file(file);
        // The file at `path` with `patch` applied, opened.
        let patched = |path: &std::path::Path, patch: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = std::fs::read(path).unwrap();
            patch(&mut bytes);
            std::fs::write(path, &bytes).unwrap();
            Opened::open(path, false).unwrap()
        };
        let floats: Vec<f64> = (0..300_000).map(|i| f64::from(i) / 3.0).collect();
        let (path, mut file) = opened("direct.jbl", &floats);
        assert_eq!(f64s(&mut file).unwrap().ok().as_ref(), Some(&floats));
        // Not for another type, nor for a damaged file: the general path says why.
        let mut file = Opened::open(&path, false).unwrap();
        assert!(
            (&&Codec::<Vec<f32>>::new())
                .decoder()
                .file(&mut file)
                .is_none()
        );
        let at = floats.len() * 8 - 5000;
        assert!(f64s(&mut patched(&path, &|b| b[at] ^= 1)).is_none());
        let err = load(&path, decoder_any::<Vec<f64>>()).unwrap_err();
        assert!(err.to_string().ends_with("checksum mismatch"), "{err}");
        // Large enough to be hashed on a second thread when a core is free (32 MiB): a flip
        // in its first chunk, in its last, or in the part read with the head, is caught too.
        let many: Vec<f64> = (0..4_500_000).map(|i| f64::from(i) * 0.7).collect();
        for at in [100, 4096 + 10, (1 << 20) + 3, many.len() * 8 - 1] {
            let (path, mut file) = opened("direct-aside.jbl", &many);
            assert_eq!(f64s(&mut file).unwrap().ok().as_ref(), Some(&many));
            assert!(f64s(&mut patched(&path, &|b| b[at] ^= 0x10)).is_none());
            assert!(load(&path, decoder_any::<Vec<f64>>()).is_err());
        }
        // A file cut short after it was opened: the read stops, nothing is returned.
        let (path, mut file) = opened("direct-cut.jbl", &many);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 8)
            .unwrap();
        assert!(f64s(&mut file).is_none());
        // A forged payload length (the header is not verified yet) is no panic.
        let (path, _) = opened("forged-len.jbl", &floats);
        let forge = |b: &mut Vec<u8>| b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(f64s(&mut patched(&path, &forge)).is_none());
        // A length prefix that does not match the payload is refused before allocating.
        let forged = (usize::MAX / 8, vec![0u8; 2 << 20]);
        let (_, mut file) = opened_as("forged.jbl", &forged, "alloc::vec::Vec<f64>");
        assert!(f64s(&mut file).is_none());
        // Small files and other types take the general path.
        let (_, mut file) = opened("small.jbl", &vec![1.0f64; 100]);
        assert!(f64s(&mut file).is_none());
        let (_, mut file) = opened("u64.jbl", &vec![1u64; 300_000]);
        assert!(
            (&&Codec::<Vec<u64>>::new())
                .decoder()
                .file(&mut file)
                .is_none()
        );
    }
}
