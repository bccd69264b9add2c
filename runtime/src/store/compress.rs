//! Compressed payloads: `Compression`, the option `dump_with` takes, and the LZ4 and zstd
//! coders that write and read a payload through it.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use super::format::{LZ4, UNCOMPRESSED, ZSTD};
use crate::array::Sink;
use crate::error::ErrorKind;
use crate::huge_pages::vec_with_capacity;

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
    /// Zstandard at a level from 1 (fast) to 22 (small); 3 is zstd's default.
    Zstd(i32),
}

impl Compression {
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
        if let Err(e) = postcard::serialize_with_flavor(value, &mut self) {
            return Err(self
                .error
                .take()
                .map_or_else(|| ErrorKind::Encode(e.to_string()), ErrorKind::Io));
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
/// its recorded `raw_len`. Call it on a verified entry; a forged size cannot make it allocate
/// more than the compression could produce.
pub(crate) fn decompress(
    compression: u16,
    stored: &[u8],
    raw_len: u64,
) -> Result<Cow<'_, [u8]>, ErrorKind> {
    let bad = || ErrorKind::Corrupt("payload does not decompress to its recorded size");
    match compression {
        UNCOMPRESSED => Ok(Cow::Borrowed(stored)),
        LZ4 => {
            if raw_len > (stored.len() as u64).saturating_mul(LZ4_MAX_RATIO) + 16 {
                return Err(bad());
            }
            let raw_len = usize::try_from(raw_len).map_err(|_| bad())?;
            // The recorded size is believed only as far as the blocks bear it out: the
            // output grows a block at a time, from room for what is likely.
            let likely = raw_len.min(stored.len().saturating_mul(4));
            let mut out = vec_with_capacity::<u8>(likely);
            let mut input = stored;
            while out.len() < raw_len {
                let (len, rest) = input.split_first_chunk::<4>().ok_or_else(bad)?;
                let len = u32::from_le_bytes(*len) as usize;
                if len > rest.len() {
                    return Err(bad());
                }
                let (packed, rest) = rest.split_at(len);
                let start = out.len();
                out.resize(start + BLOCK.min(raw_len - start), 0);
                match lz4_flex::block::decompress_into(packed, &mut out[start..]) {
                    Ok(n) if n == out.len() - start => input = rest,
                    _ => return Err(bad()),
                }
            }
            if input.is_empty() {
                Ok(Cow::Owned(out))
            } else {
                Err(bad())
            }
        }
        _ => {
            // In one call, into a buffer of the recorded size: a stream decoder would
            // allocate the window its frame header asks for, up to 128 MB for a file of a
            // hundred bytes (the fuzzer found this). The recorded size is believed as far
            // as zstd's format allows.
            if raw_len > (stored.len() as u64).saturating_mul(ZSTD_MAX_RATIO) + ZSTD_BLOCK {
                return Err(bad());
            }
            let raw_len = usize::try_from(raw_len).map_err(|_| bad())?;
            match zstd::bulk::decompress(stored, raw_len) {
                Ok(out) if out.len() == raw_len => Ok(Cow::Owned(out)),
                _ => Err(bad()),
            }
        }
    }
}
