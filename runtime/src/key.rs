//! Cache keys: values fed through serde straight into xxh3-128, with no allocation beyond the
//! hasher's own fixed buffer.
//!
//! The byte stream is an unambiguous encoding of the value for a given type: strings, byte
//! strings and sequences carry their length, enums their variant index, options a tag. Maps and
//! hash sets are hashed entry by entry and combined with a commutative sum, so equal maps hash
//! equal whatever their iteration order.

mod serialize;

use std::fmt;
use std::mem::MaybeUninit;

use crate::xxh3::{Xxh3Wide, xxh3_128};
use serde::ser::{self, Serialize};

/// The 128-bit key of one cached call.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub u128);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:032x})", self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Key {
    /// The key in hexadecimal, as its `Display` writes it, without allocating: entry files are
    /// named by it at every call.
    pub(crate) fn hex(self) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0.to_be_bytes()) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xF)];
        }
        Hex(out)
    }
}

/// A key in hexadecimal: 32 lower-case digits.
pub(crate) struct Hex([u8; 32]);

impl Hex {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hexadecimal digits")
    }

    /// The first digits, which name an entry in `tracing` events and `joblet ls`.
    pub(crate) fn short(&self) -> &str {
        &self.as_str()[..12]
    }
}

/// Bytes gathered before they are handed to xxh3. Small keys never leave this buffer and are
/// hashed in one shot; large ones stream through it in chunks big enough for xxh3's fast path
/// (4 KiB parts stream at about 44 GB/s here, 512 B ones at 23).
const BUF: usize = 4096;

/// Streams values into an xxh3-128 hash. Implements [`serde::Serializer`] through `&mut`.
pub struct KeyHasher {
    /// Left uninitialized: zeroing it would cost more than hashing a small key. The first
    /// `len` bytes are always initialized.
    buf: [MaybeUninit<u8>; BUF],
    len: usize,
    /// Started on the first flush: most keys fit in `buf` and skip the streaming state.
    state: Option<Xxh3Wide>,
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyHasher {
    /// An empty hasher.
    #[inline(always)]
    pub fn new() -> Self {
        KeyHasher {
            // SAFETY: an array of `MaybeUninit` needs no initialization. (Written as a repeat
            // expression, `[MaybeUninit::uninit(); BUF]`, it compiled to a 4 KiB `memset` at
            // every call.)
            buf: unsafe { MaybeUninit::<[MaybeUninit<u8>; BUF]>::uninit().assume_init() },
            len: 0,
            state: None,
        }
    }

    /// Feeds one value.
    ///
    /// # Errors
    /// Fails only when the value's own `Serialize` implementation reports an error.
    #[inline]
    pub fn value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), HashError> {
        let _entry_writer = crate::array::Sink::suspend();
        value.serialize(self)
    }

    /// Feeds a string as a length-prefixed field.
    #[inline]
    pub fn str(&mut self, s: &str) {
        self.put(&(s.len() as u64).to_le_bytes());
        self.put(s.as_bytes());
    }

    /// Feeds a 128-bit number.
    #[inline]
    pub fn u128(&mut self, v: u128) {
        self.put(&v.to_le_bytes());
    }

    /// The key of everything fed so far. Takes `&mut self` rather than `self`: moving the
    /// hasher would copy its whole buffer.
    #[inline]
    pub fn finish(&mut self) -> Key {
        let tail = filled(&self.buf, self.len);
        match &mut self.state {
            None => Key(xxh3_128(tail)),
            Some(state) => {
                state.update(tail);
                Key(state.digest128())
            }
        }
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let len = self.len;
        if bytes.len() <= BUF - len {
            // SAFETY: `len <= BUF` always holds and `bytes.len() <= BUF - len` was just checked,
            // so the destination range lies inside `buf`; `MaybeUninit<u8>` has the layout of
            // `u8`, and `bytes` cannot overlap `buf`, which `self` borrows mutably.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.buf.as_mut_ptr().add(len).cast::<u8>(),
                    bytes.len(),
                );
            }
            self.len = len + bytes.len();
        } else {
            // `len` goes by value: were `self` passed, its address would escape and the hot
            // path above would keep `len` in memory instead of a register.
            self.len = flush_and_put(&mut self.buf, &mut self.state, len, bytes);
        }
    }

    #[inline]
    fn len_prefix(&mut self, len: usize) {
        self.put(&(len as u64).to_le_bytes());
    }
}

/// Hashes the buffered bytes, then buffers `bytes` (or hashes them too, when large). Returns
/// the new buffer length.
#[cold]
#[inline(never)]
fn flush_and_put(
    buf: &mut [MaybeUninit<u8>; BUF],
    state: &mut Option<Xxh3Wide>,
    len: usize,
    bytes: &[u8],
) -> usize {
    let state = state.get_or_insert_with(Xxh3Wide::new);
    state.update(filled(buf, len));
    if bytes.len() >= BUF {
        state.update(bytes);
        0
    } else {
        write(&mut buf[..bytes.len()], bytes);
        bytes.len()
    }
}

/// Copies `src` into `dst`, which has the same length.
#[inline(always)]
fn write(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: both slices are valid for `src.len()` bytes (checked above), `MaybeUninit<u8>`
    // has the layout of `u8`, and a `&mut` and a `&` slice cannot overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len());
    }
}

/// The initialized prefix of the buffer.
#[inline(always)]
fn filled(buf: &[MaybeUninit<u8>; BUF], len: usize) -> &[u8] {
    let prefix = &buf[..len];
    // SAFETY: every byte below `len` was written by `write` before `len` grew past it, and
    // `MaybeUninit<u8>` has the layout of `u8`.
    unsafe { std::slice::from_raw_parts(prefix.as_ptr().cast::<u8>(), prefix.len()) }
}

/// A `Serialize` implementation refused to serialize a value while its key was computed.
#[derive(Debug)]
pub struct HashError(Box<str>);

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot hash argument: {}", self.0)
    }
}

impl std::error::Error for HashError {}

impl ser::Error for HashError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        HashError(msg.to_string().into_boxed_str())
    }
}

/// The digest of one value on its own.
#[inline]
fn digest<T: ?Sized + Serialize>(value: &T) -> Result<u128, HashError> {
    let mut h = KeyHasher::new();
    value.serialize(&mut h)?;
    Ok(h.finish().0)
}

/// The key of one value on its own, for tests and tools.
///
/// # Errors
/// Fails only when the value's own `Serialize` implementation reports an error.
pub fn key_of<T: ?Sized + Serialize>(value: &T) -> Result<Key, HashError> {
    let _entry_writer = crate::array::Sink::suspend();
    digest(value).map(Key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::{Array, Sink};
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    fn k<T: ?Sized + Serialize>(v: &T) -> Key {
        key_of(v).unwrap()
    }

    #[test]
    fn equal_values_equal_keys_and_different_values_differ() {
        assert_eq!(k(&42u64), k(&42u64));
        assert_ne!(k(&42u64), k(&43u64));
        assert_ne!(k("ab"), k("ba"));
        assert_ne!(k(&vec![1u8, 2]), k(&vec![2u8, 1]));
    }

    #[test]
    fn hex_is_what_display_writes() {
        for key in [
            Key(0),
            Key(u128::MAX),
            Key(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        ] {
            assert_eq!(key.hex().as_str(), key.to_string());
        }
        assert_eq!(Key(0xabc << 116).hex().short(), "abc000000000");
    }

    #[test]
    fn references_hash_as_their_value() {
        let v = vec![1.5f64, 2.5];
        assert_eq!(k(&v), k(&v[..]));
        assert_eq!(k(&&&v), k(&v));
        assert_eq!(k(&String::from("x")), k("x"));
    }

    #[test]
    fn lengths_keep_adjacent_fields_apart() {
        assert_ne!(k(&("ab", "c")), k(&("a", "bc")));
        assert_ne!(k(&(vec![1u8], vec![2u8, 3])), k(&(vec![1u8, 2], vec![3u8])));
        assert_ne!(k(&Some(0u8)), k(&None::<u8>));
    }

    #[test]
    fn maps_and_sets_ignore_iteration_order() {
        let a: HashMap<String, u32> = (0..200).map(|i| (i.to_string(), i)).collect();
        let mut b: HashMap<String, u32> = HashMap::with_capacity(1000);
        for i in (0..200).rev() {
            b.insert(i.to_string(), i);
        }
        assert!(a.keys().ne(b.keys()), "the test needs two iteration orders");
        assert_eq!(k(&a), k(&b));
        let sorted: BTreeMap<_, _> = a.clone().into_iter().collect();
        assert_eq!(k(&a), k(&sorted));

        let s1: HashSet<u64> = (0..500).collect();
        let s2: HashSet<u64> = (0..500).rev().collect();
        assert_eq!(k(&s1), k(&s2));
        assert_ne!(k(&s1), k(&(0..499).collect::<HashSet<u64>>()));

        let mut b2 = b.clone();
        b2.insert("0".into(), 7);
        assert_ne!(k(&a), k(&b2));
    }

    #[test]
    fn only_the_outer_set_is_unordered() {
        let inner: HashSet<u8> = [1, 2].into();
        assert_ne!(k(&vec![1u8, 2]), k(&vec![2u8, 1]));
        assert_eq!(k(&vec![inner.clone()]), k(&vec![inner]));
        // An ordered set keeps its (deterministic) order.
        let bs: BTreeSet<u8> = [3, 1, 2].into();
        assert_eq!(k(&bs), k(&vec![1u8, 2, 3]));
    }

    #[test]
    fn large_values_stream_through_the_buffer() {
        // Past the buffer either way; fewer under Miri, which interprets every byte hashed.
        let n = if cfg!(miri) { 20_000 } else { 100_000 };
        let big: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut other = big.clone();
        other[n - 1] = -1.0;
        assert_eq!(k(&big), k(&big.clone()));
        assert_ne!(k(&big), k(&other));
        // Streaming and one-shot hashing agree: the key depends on the bytes, not the chunking.
        let mut h = KeyHasher::new();
        for _ in 0..100 {
            h.str("0123456789");
        }
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend_from_slice(&10u64.to_le_bytes());
            bytes.extend_from_slice(b"0123456789");
        }
        assert_eq!(h.finish(), Key(xxh3_128(&bytes)));
    }

    /// An array's key is its bytes, also while an entry that holds arrays is being written
    /// (a `Serialize` impl may hash its fields).
    #[test]
    fn hashing_arguments_inside_an_entry_write_sees_the_bytes() {
        let (a, b) = (Array::from(vec![1u8, 2]), Array::from(vec![3u8, 4]));
        let key = |x: &Array<u8>| key_of(x).unwrap().to_string();
        let outside = (key(&a), key(&b));
        let sink = Sink::open();
        // Were the sink open to the hasher, both would hash as an index, alike.
        assert_eq!(key(&a), outside.0);
        assert_eq!(key(&b), outside.1);
        assert_ne!(outside.0, outside.1);
        assert_eq!(postcard::to_allocvec(&a).unwrap(), [0, 2, b'u', b'8']);
        assert_eq!(sink.finish().len(), 1);
    }

    #[test]
    #[inline]
    fn serialize_errors_surface() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no"))
            }
        }
        assert!(key_of(&Refuses).is_err());
    }
}
