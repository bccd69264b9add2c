//! How a stored result is decoded from its payload.
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

use serde::de::DeserializeOwned;

use crate::entry::Entry;
use crate::error::ErrorKind;
use crate::site::CacheOutput;

/// Verifies an entry's checksum and decodes its payload into a `T`.
pub type DecodeFn<T> = fn(&Entry<'_>) -> Result<T, ErrorKind>;

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
    fn decoder(&self) -> DecodeFn<T>
    where
        T: CacheOutput;
}

// Implemented for every `T`, with the bound on the method: a result type that cannot be
// stored then fails the same obligation as the macro's own check, and rustc reports it once.
// The method takes `&self`, so on `Codec<T>` its receiver is `&Codec<T>`: reached from
// `&&Codec<T>` after one dereference, once `ViaBulk` (receiver `&&Codec<T>`) did not apply.
impl<T> ViaSerde<T> for Codec<T> {
    fn decoder(&self) -> DecodeFn<T>
    where
        T: CacheOutput,
    {
        serde_decode::<T>
    }
}

/// Decoding by bulk copy, for vectors of fixed-width numbers.
pub trait ViaBulk<T> {
    /// The decoder.
    fn decoder(&self) -> DecodeFn<T>;
}

/// The one list of types with a bulk decoder: it makes both the autoref impls that generated
/// code resolves to and the `TypeId` dispatch of `decode_any`, so the two cannot drift apart.
macro_rules! bulk {
    ($($t:ty),*) => {
        $(bulk!(@impl $t);)*

        /// The bulk decoder of `T`, found by `TypeId`, for code that knows `T` only
        /// generically; `None` for types without one.
        fn bulk_by_type_id<T: 'static>(entry: &Entry<'_>) -> Option<Result<T, ErrorKind>> {
            use std::any::{Any, TypeId};
            let id = TypeId::of::<T>();
            $(
                if id == TypeId::of::<Vec<$t>>() {
                    let decoded = (&&Codec::<Vec<$t>>::new()).decoder()(entry);
                    return Some(decoded.map(|v| {
                        let boxed: Box<dyn Any> = Box::new(v);
                        *boxed.downcast::<T>().expect("the TypeId matched")
                    }));
                }
            )*
            None
        }
    };
    (@impl $t:ty) => {
        impl ViaBulk<Vec<$t>> for &Codec<Vec<$t>> {
            fn decoder(&self) -> DecodeFn<Vec<$t>> {
                |entry| {
                    const N: usize = std::mem::size_of::<$t>();
                    // Verified first, in one shot: xxh3 hashes a contiguous buffer about twice
                    // as fast as its streaming form would, interleaved with the copy.
                    entry.verify()?;
                    let payload = entry.raw_payload()?;
                    let (_, numbers) = numbers(&payload, N)?;
                    // Monomorphic, so that the conversion inlines into a vectorized copy.
                    // (A `memcpy` into the vector's spare capacity measured slower here.)
                    let mut out = vec_with_capacity(numbers.len() / N);
                    out.extend(
                        numbers
                            .chunks_exact(N)
                            .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunks of N bytes"))),
                    );
                    Ok(out)
                }
            }
        }
    };
}

bulk!(f64, f32, u8, i8);

/// An empty vector with room for `n` elements. On Linux, a large one asks for transparent huge
/// pages, as numpy does for its arrays: filling 80 MB of fresh memory then takes 40 page faults
/// instead of 20,000, which on a virtual machine is most of the cost of a load.
pub(crate) fn vec_with_capacity<T>(n: usize) -> Vec<T> {
    let v = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_ptr() as usize + v.capacity() * size_of::<T>()) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside the vector's allocation, which this function owns;
            // the advice changes how its pages are backed, never their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    v
}

/// Verifies the checksum, then decodes through serde; the payload must be consumed exactly.
/// Verification comes first: a `Deserialize` implementation is user code, and it sees only
/// bytes that this crate wrote.
pub(crate) fn serde_decode<T: DeserializeOwned>(entry: &Entry<'_>) -> Result<T, ErrorKind> {
    entry.verify()?;
    decode_payload(&entry.raw_payload()?)
}

pub(crate) fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ErrorKind> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(ErrorKind::Corrupt("payload has trailing bytes")),
        Err(e) => Err(ErrorKind::Decode(e.to_string())),
    }
}

/// The decoder of `T` for code that only knows `T` generically (`load`): the bulk copy for the
/// vectors that have one, serde otherwise.
pub(crate) fn decode_any<T: DeserializeOwned + 'static>(entry: &Entry<'_>) -> Result<T, ErrorKind> {
    bulk_by_type_id(entry).unwrap_or_else(|| serde_decode(entry))
}

/// Splits postcard's encoding of a `Vec` of `n`-byte numbers into its varint length and the
/// numbers' little-endian bytes, checking that the length matches exactly.
fn numbers(payload: &[u8], n: usize) -> Result<(&[u8], &[u8]), ErrorKind> {
    let (len, bytes) = postcard::take_from_bytes::<usize>(payload)
        .map_err(|e| ErrorKind::Decode(e.to_string()))?;
    if len.checked_mul(n) != Some(bytes.len()) {
        return Err(ErrorKind::Decode(format!(
            "a sequence of {len} {n}-byte numbers in {} bytes",
            bytes.len()
        )));
    }
    Ok(payload.split_at(payload.len() - bytes.len()))
}

#[cfg(test)]
// The borrows in `(&&Codec::<T>::new()).decoder()` are the selection mechanism, not noise.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;
    use crate::entry::{encode, parse};
    use serde::Serialize;

    fn entry_bytes<T: Serialize>(value: &T) -> Vec<u8> {
        encode(
            value,
            std::any::type_name::<T>(),
            std::time::Duration::ZERO,
            crate::entry::Compression::None,
        )
        .unwrap()
    }

    fn both<T: CacheOutput + PartialEq + std::fmt::Debug>(value: &T, bulk: DecodeFn<T>) {
        let bytes = entry_bytes(value);
        let entry = parse(&bytes).unwrap();
        assert_eq!(&bulk(&entry).unwrap(), value);
        assert_eq!(&serde_decode::<T>(&entry).unwrap(), value);
        // A flipped bit anywhere is caught before anything is returned.
        for at in [16, bytes.len() - entry.payload.len(), bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            if let Ok(entry) = parse(&damaged) {
                assert!(bulk(&entry).is_err(), "flip at {at} accepted");
            }
        }
    }

    #[test]
    fn bulk_decoding_agrees_with_serde() {
        let floats: Vec<f64> = (0..100_000).map(|i| f64::from(i) * -0.37).collect();
        both(&floats, (&&Codec::<Vec<f64>>::new()).decoder());
        let odd = vec![f64::from_bits(0x7ff8_dead_beef_0001), -0.0, f64::INFINITY];
        let decoded = (&&Codec::<Vec<f64>>::new()).decoder()(&parse(&entry_bytes(&odd)).unwrap());
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
    fn picks_bulk<T>(decode: DecodeFn<T>) -> bool {
        let bytes = entry_bytes(&(3u8, 0u8, 0u8));
        match decode(&parse(&bytes).unwrap()) {
            Err(ErrorKind::Decode(m)) => m.contains("-byte numbers"),
            _ => false,
        }
    }

    #[test]
    fn decode_any_picks_bulk_for_number_vectors_only() {
        assert!(picks_bulk(decode_any::<Vec<f64>>));
        assert!(picks_bulk(decode_any::<Vec<i8>>));
        assert!(!picks_bulk(decode_any::<Vec<u64>>));
        assert!(!picks_bulk(decode_any::<String>));
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
}
