//! Compressed payloads: `Compression`, the option `dump_with` takes, and the LZ4 and zstd
//! coders that write and read a payload through it.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use super::aside::{core_free, join, spawn_scoped};
use super::format::{LZ4, UNCOMPRESSED, ZSTD};
use super::nesting;
use crate::array::Sink;
use crate::error::ErrorKind;
use zstd::zstd_safe::DCtx;

use crate::huge_pages::{try_vec_with_capacity, try_zeroed_vec};

/// How a payload is compressed. Recorded in the file, so reading needs no option.
///
/// ```
/// use joblet_runtime::Compression;
///
/// let fast = Compression::Lz4;
/// let small = Compression::Zstd(9);
/// assert_ne!(fast, small);
/// assert_eq!(Compression::default(), Compression::None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Stored as is (the default): the fastest to write and read.
    #[default]
    None,
    /// LZ4 (lz4_flex): fast, modest compression.
    Lz4,
    /// Zstandard at a level from 1 (fast) to 22 (small); 3 is zstd's default. Another level
    /// is an error ([`ErrorKind::CompressionLevel`]).
    Zstd(i32),
}

impl Compression {
    /// The levels `Compression::Zstd` takes: zstd's own, from 1 (fast) to 22 (small). (zstd
    /// would take a level past 22 as 22 without a word.)
    ///
    /// ```
    /// use joblet_runtime::Compression;
    ///
    /// assert_eq!(Compression::ZSTD_LEVELS, 1..=22);
    /// let path = std::env::temp_dir().join("joblet-doc-level.jbl");
    /// let err = joblet_runtime::dump_with(&1u8, &path, Compression::Zstd(23)).unwrap_err();
    /// assert!(err.to_string().ends_with("zstd compression level 23 is out of range: levels go from 1 (fast) to 22 (small)"));
    /// ```
    pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;

    /// How the header's flags record it.
    pub(crate) fn id(self) -> u16 {
        match self {
            Compression::None => UNCOMPRESSED,
            Compression::Lz4 => LZ4,
            Compression::Zstd(_) => ZSTD,
        }
    }
}

/// Raw payload bytes handed to a compressor at a time.
const BLOCK: usize = 1 << 20;

/// LZ4 cannot expand data by more than this: a header claiming more is forged or damaged.
const LZ4_MAX_RATIO: u64 = 255;

/// Nor zstd by more than this: a block of at least 4 bytes (a header and one repeated byte)
/// holds at most [`ZSTD_BLOCK`] bytes.
const ZSTD_MAX_RATIO: u64 = ZSTD_BLOCK / 4;
const ZSTD_BLOCK: u64 = 128 << 10;

/// Serializes `value` compressed with `compression` (not [`Compression::None`]) into `out`;
/// returns the payload's length before compression. Arrays go inline (as bytes) into a
/// compressed payload: a compressed entry is never mapped.
pub(crate) fn serialize<T: ?Sized + Serialize>(
    value: &T,
    compression: Compression,
    mut out: impl Write,
) -> Result<u64, ErrorKind> {
    match compression {
        Compression::None => unreachable!("an uncompressed payload is serialized as it is"),
        Compression::Lz4 => {
            // LZ4 compresses the payload a block at a time, each stored after its compressed
            // length, so that no buffer the size of the value is ever needed.
            let mut packed = vec![0; lz4_flex::block::get_maximum_output_size(BLOCK)];
            let blocks = Blocks::new(|block: &[u8]| {
                let n =
                    lz4_flex::block::compress_into(block, &mut packed).map_err(io::Error::other)?;
                out.write_all(&(n as u32).to_le_bytes())?;
                out.write_all(&packed[..n])
            });
            blocks.serialize(value)
        }
        Compression::Zstd(level) => {
            if !Compression::ZSTD_LEVELS.contains(&level) {
                return Err(ErrorKind::CompressionLevel {
                    level,
                    valid: Compression::ZSTD_LEVELS,
                });
            }
            let zstd_err = |e: io::Error| ErrorKind::Encode(format!("zstd: {e}"));
            let mut encoder = zstd::stream::Encoder::new(&mut out, level).map_err(zstd_err)?;
            let raw_len = Blocks::new(|block: &[u8]| encoder.write_all(block)).serialize(value)?;
            encoder.finish().map_err(ErrorKind::Io)?;
            Ok(raw_len)
        }
    }
}

/// The postcard flavor of a compressed payload: the serialized bytes, gathered into blocks of
/// [`BLOCK`] bytes, each handed to `pack` when full.
struct Blocks<F> {
    buf: Vec<u8>,
    pack: F,
    raw_len: u64,
    /// Why `pack` failed, for the postcard error that reports it.
    error: Option<io::Error>,
}

impl<F: FnMut(&[u8]) -> io::Result<()>> Blocks<F> {
    fn new(pack: F) -> Self {
        Blocks {
            buf: Vec::with_capacity(BLOCK),
            pack,
            raw_len: 0,
            error: None,
        }
    }

    /// Serializes `value` through `pack`; returns the payload's length before compression.
    fn serialize<T: ?Sized + Serialize>(mut self, value: &T) -> Result<u64, ErrorKind> {
        // Arrays go inline: close the sink of any entry being written around this one.
        let _inline = Sink::suspend();
        if let Err(e) = nesting::serialize(value, &mut self) {
            // A failed write is the cause, if there was one.
            return Err(self.error.take().map_or(e, ErrorKind::Io));
        }
        self.pack_block().map_err(ErrorKind::Io)?;
        Ok(self.raw_len)
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let (now, later) = data.split_at(data.len().min(BLOCK - self.buf.len()));
            self.buf.extend_from_slice(now);
            data = later;
            if self.buf.len() == BLOCK {
                self.pack_block()?;
            }
        }
        Ok(())
    }

    fn pack_block(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            (self.pack)(&self.buf)?;
            self.raw_len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

impl<F: FnMut(&[u8]) -> io::Result<()>> postcard::ser_flavors::Flavor for &mut Blocks<F> {
    type Output = ();

    #[inline(always)]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.try_extend(&[byte])
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.buf.len() + data.len() <= BLOCK {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.spill(data).map_err(|e| {
            self.error = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The payload `stored`, compressed as `compression` says (a header's id), decompressed to
/// its recorded `raw_len`. Call it on a verified entry. The recorded size is believed only as
/// far as the stored bytes bear it out: memory is taken as the output grows, never for a size
/// the header merely claims, and a failure to get it is an error, not an abort.
pub(crate) fn decompress(
    compression: u16,
    stored: &[u8],
    raw_len: u64,
) -> Result<Cow<'_, [u8]>, ErrorKind> {
    if compression == UNCOMPRESSED {
        return Ok(Cow::Borrowed(stored));
    }
    let raw_len = checked_raw_len(compression, stored, raw_len)?;
    let likely = likely_room(stored, raw_len);
    let out = if compression == LZ4 {
        lz4_blocks(stored, raw_len, likely)?
    } else {
        zstd_frames(raw_len, likely, |context, room_for| {
            let mut out = room(room_for)?;
            Ok(context.decompress(&mut out, stored).map(|_| out))
        })?
    };
    if out.len() == raw_len {
        Ok(Cow::Owned(out))
    } else {
        Err(ErrorKind::Corrupt(
            "payload does not decompress to its recorded size",
        ))
    }
}

/// `raw_len` once checked to be no more than `stored` can decompress to with `compression`
/// (LZ4 or zstd): a header claiming more is forged or damaged.
fn checked_raw_len(compression: u16, stored: &[u8], raw_len: u64) -> Result<usize, ErrorKind> {
    let (max_ratio, slack) = if compression == LZ4 {
        (LZ4_MAX_RATIO, 16)
    } else {
        (ZSTD_MAX_RATIO, ZSTD_BLOCK)
    };
    let fits = raw_len <= (stored.len() as u64).saturating_mul(max_ratio) + slack;
    usize::try_from(raw_len)
        .ok()
        .filter(|_| fits)
        .ok_or(ErrorKind::Corrupt(
            "payload does not decompress to its recorded size",
        ))
}

/// Room for what is likely at first; more only as the payload proves it needs it.
fn likely_room(stored: &[u8], raw_len: usize) -> usize {
    raw_len.min(stored.len().saturating_mul(LIKELY_RATIO).max(FIRST_ROOM))
}

/// Room for at most this many times the stored bytes is made before they prove to need more.
const LIKELY_RATIO: usize = 8;

/// And for at least this much: zstd asks for more room only once it has filled all but a
/// block ([`ZSTD_BLOCK`]) of what it had, so that from this size on, doubling the room is
/// justified by output already produced.
const FIRST_ROOM: usize = 2 * ZSTD_BLOCK as usize;

fn room(bytes: usize) -> Result<Vec<u8>, ErrorKind> {
    try_vec_with_capacity(bytes).ok_or_else(|| ErrorKind::out_of_memory(bytes))
}

/// LZ4 blocks, each after its compressed length, decompressed into at most `raw_len` bytes;
/// the output grows a block at a time, from `likely`.
fn lz4_blocks(stored: &[u8], raw_len: usize, likely: usize) -> Result<Vec<u8>, ErrorKind> {
    let bad = || ErrorKind::Corrupt("payload does not decompress to its recorded size");
    let mut out = room(likely)?;
    let mut input = stored;
    while out.len() < raw_len {
        let (len, rest) = input.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(bad());
        }
        let (packed, rest) = rest.split_at(len);
        let start = out.len();
        let block = BLOCK.min(raw_len - start);
        out.try_reserve(block)
            .map_err(|_| ErrorKind::out_of_memory(start + block))?;
        out.resize(start + block, 0);
        match lz4_flex::block::decompress_into(packed, &mut out[start..]) {
            Ok(n) if n == block => input = rest,
            _ => return Err(bad()),
        }
    }
    if input.is_empty() {
        Ok(out)
    } else {
        Err(bad())
    }
}

/// LZ4 payloads of this size or more are decompressed on two threads (see [`lz4_numbers`]): a
/// block takes some 200 µs, a thread's start some 50.
const SHARE_FROM: usize = 4 << 20;

/// The numbers of an LZ4 payload that is postcard's encoding of bytes (that of an `Array` that
/// is the whole value: their length, then the bytes), decompressed straight into a vector of
/// `N`s: no buffer the payload's size, no copy out of it. Past a few megabytes, the blocks are
/// shared with a second thread. Call it on a verified entry. Memory is taken only for a size
/// the blocks bear out (as many as it takes [`BLOCK`]s, each able to hold its share), as in
/// [`decompress`].
pub(crate) fn lz4_numbers<N: bytemuck::Pod>(
    stored: &[u8],
    raw_len: u64,
) -> Result<Vec<N>, ErrorKind> {
    let bad = || ErrorKind::Corrupt("payload does not decompress to its recorded size");
    let mut blocks = Vec::new();
    let mut input = stored;
    while !input.is_empty() {
        let (len, rest) = input.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(bad());
        }
        let (packed, rest) = rest.split_at(len);
        blocks.push(packed);
        input = rest;
    }
    // LZ4 expands a block by at most `LZ4_MAX_RATIO`: a size the blocks cannot hold is forged.
    let can_hold: u64 = blocks
        .iter()
        .map(|packed| packed.len() as u64 * LZ4_MAX_RATIO + 16)
        .sum();
    let raw_len = usize::try_from(raw_len).map_err(|_| bad())?;
    if raw_len == 0 || raw_len.div_ceil(BLOCK) != blocks.len() || raw_len as u64 > can_hold {
        return Err(bad());
    }
    let mut first = vec![0; BLOCK.min(raw_len)];
    lz4_block(blocks[0], &mut first)?;
    let prefix = array_prefix::<N>(&first, raw_len)?;
    let (len, in_first) = (raw_len - prefix, &first[prefix..]);
    let mut numbers =
        try_zeroed_vec::<N>(len / size_of::<N>()).ok_or_else(|| ErrorKind::out_of_memory(len))?;
    let dest: &mut [u8] = bytemuck::cast_slice_mut(numbers.as_mut_slice());
    let (head, rest) = dest.split_at_mut(in_first.len());
    head.copy_from_slice(in_first);
    // Each later block fills the next `BLOCK` bytes of the payload, and the payload's first
    // block ends where `rest` starts.
    let mut pairs: Vec<(&[u8], &mut [u8])> = blocks[1..]
        .iter()
        .copied()
        .zip(rest.chunks_mut(BLOCK))
        .collect();
    let unpack = |pairs: &mut [(&[u8], &mut [u8])]| {
        pairs
            .iter_mut()
            .try_for_each(|(packed, out)| lz4_block(packed, out))
    };
    let theirs = std::sync::Mutex::new(Some(pairs.split_off(pairs.len() / 2)));
    // The second half goes to a helper, or to this thread if the helper has not started on it
    // by the time the first half is done (or could not be started).
    let take = || theirs.lock().map_or(None, |mut theirs| theirs.take());
    std::thread::scope(|scope| {
        let aside = (raw_len >= SHARE_FROM && core_free())
            .then(|| spawn_scoped(scope, || take().map_or(Ok(()), |mut t| unpack(&mut t))))
            .flatten();
        let here = unpack(&mut pairs);
        let left = take().map_or(Ok(()), |mut t| unpack(&mut t));
        let there = aside.map_or(Ok(()), join);
        here.and(left).and(there)
    })?;
    Ok(numbers)
}

/// Decompresses the LZ4 block `packed` into `out`, which it must fill exactly.
fn lz4_block(packed: &[u8], out: &mut [u8]) -> Result<(), ErrorKind> {
    match lz4_flex::block::decompress_into(packed, out) {
        Ok(n) if n == out.len() => Ok(()),
        _ => Err(ErrorKind::Corrupt(
            "payload does not decompress to its recorded size",
        )),
    }
}

/// zstd frames decompressed in one call, into at most `raw_len` bytes: `attempt` makes room
/// for the given number of bytes and decompresses into it, giving the output or zstd's error
/// code. In one call, not through a stream decoder: that one would allocate the window its
/// frame header asks for, up to 128 MB for a file of a hundred bytes (the fuzzer found this).
/// The room starts at `likely`, and doubles each time zstd runs out of it, which it does only
/// once it has produced all but a block of it: so a forged size costs what the frames really
/// hold, not what the header claims (a 64 KB file once asked for 2 GiB at once).
fn zstd_frames<T>(
    raw_len: usize,
    likely: usize,
    mut attempt: impl FnMut(&mut DCtx<'_>, usize) -> Result<Result<T, usize>, ErrorKind>,
) -> Result<T, ErrorKind> {
    use zstd::zstd_safe::zstd_sys;
    let bad = || ErrorKind::Corrupt("payload does not decompress to its recorded size");
    let mut context = DCtx::try_create().ok_or_else(|| ErrorKind::out_of_memory(0))?;
    let mut room_for = likely;
    loop {
        match attempt(&mut context, room_for)? {
            Ok(out) => return Ok(out),
            Err(code) if room_for < raw_len => {
                // SAFETY: reads the code zstd returned, a number; no memory is touched.
                let error = unsafe { zstd_sys::ZSTD_getErrorCode(code) };
                if error != zstd_sys::ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall {
                    return Err(bad());
                }
                room_for = room_for.saturating_mul(2).min(raw_len);
            }
            Err(_) => return Err(bad()),
        }
    }
}

/// The numbers of a zstd payload that is postcard's encoding of bytes (see [`lz4_numbers`]),
/// decompressed into the vector that holds them in the end: the length before them is moved
/// out of the way after, in place, rather than the numbers copied into a second vector. Memory
/// at its peak is then the array's, not twice it. Call it on a verified entry.
pub(crate) fn zstd_numbers<N: bytemuck::Pod>(
    stored: &[u8],
    raw_len: u64,
) -> Result<Vec<N>, ErrorKind> {
    let raw_len = checked_raw_len(ZSTD, stored, raw_len)?;
    let (mut numbers, written) =
        zstd_frames(raw_len, likely_room(stored, raw_len), |context, room| {
            let mut out = try_zeroed_vec::<N>(room.div_ceil(size_of::<N>()))
                .ok_or_else(|| ErrorKind::out_of_memory(room))?;
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(out.as_mut_slice());
            Ok(context
                .decompress(bytes, stored)
                .map(|written| (out, written)))
        })?;
    if written != raw_len {
        return Err(ErrorKind::Corrupt(
            "payload does not decompress to its recorded size",
        ));
    }
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(numbers.as_mut_slice());
    let prefix = array_prefix::<N>(&bytes[..raw_len], raw_len)?;
    bytes.copy_within(prefix..raw_len, 0);
    numbers.truncate((raw_len - prefix) / size_of::<N>());
    Ok(numbers)
}

/// How many bytes the length takes at the start of `start`, the first bytes of a payload of
/// `payload_len` bytes that is postcard's encoding of the bytes of an array of `N`s, once
/// checked to announce the rest of the payload exactly, a whole number of `N`s.
fn array_prefix<N>(start: &[u8], payload_len: usize) -> Result<usize, ErrorKind> {
    let (len, rest) = postcard::take_from_bytes::<usize>(start)
        .map_err(|e| ErrorKind::Decode(format!("the bytes of an array: {e}")))?;
    let prefix = start.len() - rest.len();
    if len != payload_len - prefix || !len.is_multiple_of(size_of::<N>()) {
        return Err(ErrorKind::Decode(format!(
            "{len} bytes of an array of {}-byte elements in a payload of {payload_len}",
            size_of::<N>()
        )));
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Array;

    /// The payload of `value` compressed with `compression`, and its length before.
    fn packed<T: Serialize>(value: &T, compression: Compression) -> (Vec<u8>, u64) {
        let mut stored = Vec::new();
        let raw_len = serialize(value, compression, &mut stored).unwrap();
        (stored, raw_len)
    }

    /// [`lz4_numbers`] or [`zstd_numbers`], as `compression` says.
    fn numbers_of<N: bytemuck::Pod>(
        compression: Compression,
        stored: &[u8],
        raw_len: u64,
    ) -> Result<Vec<N>, ErrorKind> {
        match compression {
            Compression::Lz4 => lz4_numbers(stored, raw_len),
            _ => zstd_numbers(stored, raw_len),
        }
    }

    #[test]
    fn arrays_decompress_into_their_memory_as_serde_would_decode_them() {
        for compression in [Compression::Lz4, Compression::Zstd(1)] {
            // Empty; one block; several; past the size from which LZ4 blocks are shared;
            // compressible enough that zstd's room doubles many times.
            let lengths = [0, 10, 300_000, 1_200_000];
            let arrays = lengths
                .map(|n| {
                    (0..n)
                        .map(|i| f64::from(i) * 0.5 - 7.0)
                        .collect::<Vec<f64>>()
                })
                .into_iter()
                .chain([vec![2.5; 1 << 20]]);
            for numbers in arrays {
                let (stored, raw_len) = packed(&Array::from(numbers.clone()), compression);
                let direct = numbers_of::<f64>(compression, &stored, raw_len).unwrap();
                assert_eq!(direct, numbers, "{compression:?}");
                let payload = decompress(compression.id(), &stored, raw_len).unwrap();
                let through_serde: Array<f64> = postcard::from_bytes(&payload).unwrap();
                assert_eq!(through_serde.as_slice(), numbers);
            }
        }
    }

    #[test]
    fn a_payload_that_does_not_fit_is_refused_without_a_panic() {
        for compression in [Compression::Lz4, Compression::Zstd(1)] {
            let array = Array::from(vec![1u8; (3 << 20) + 5]);
            let (stored, raw_len) = packed(&array, compression);
            assert!(numbers_of::<u8>(compression, &stored, raw_len).is_ok());
            // Not a whole number of elements.
            let err = numbers_of::<[u8; 3]>(compression, &stored, raw_len).unwrap_err();
            assert!(matches!(err, ErrorKind::Decode(_)), "{err}");
            // A recorded size the payload does not bear out, or that does not match the
            // length inside.
            for forged in [
                0,
                1,
                raw_len - 1,
                raw_len + 1,
                raw_len + BLOCK as u64,
                u64::MAX,
            ] {
                let refused = numbers_of::<u8>(compression, &stored, forged).is_err();
                assert!(refused, "{compression:?} {forged}");
            }
            // Cut short.
            for len in [0, 3, 4, 100, stored.len() / 2, stored.len() - 1] {
                let refused = numbers_of::<u8>(compression, &stored[..len], raw_len).is_err();
                assert!(refused, "{compression:?} {len}");
            }
            // A payload that is no array's bytes.
            let (stored, raw_len) = packed(&vec![(1u32, 2u32); 3], compression);
            assert!(numbers_of::<u8>(compression, &stored, raw_len).is_err());
        }
    }
}
