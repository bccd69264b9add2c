//! The entry file: one value in a checksummed container, written atomically, read back through
//! a small buffer or a memory map.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"\x89JBL\r\n\x1a\n"
//!      8     8  checksum: xxh3-64 of the 16 bytes `xxh3-64(bytes 16..64) ++ xxh3-64(body)`,
//!               with the hit count (bytes 28..32) taken as zero
//!     16     2  format version (3; version 2, without arguments or hits, is read too)
//!     18     2  flags: bits 0-3 compression codec (0 = none); bit 4 set when written on a
//!               big-endian machine; other bits zero
//!     20     2  length of the stored type's name
//!     22     2  length of the arguments' rendering
//!     24     4  length of the array section table (24 bytes a section)
//!     28     4  hit count: how often the entry was loaded as a cache hit
//!     32     8  payload length as stored
//!     40     8  payload length once decompressed
//!     48     8  compute duration, nanoseconds
//!     56     8  creation time, milliseconds since the Unix epoch
//!     64        body: type name (UTF-8), arguments' rendering (UTF-8), payload (postcard),
//!               array section table
//!               then each array section at a 64-byte aligned offset, up to the end of the file
//! ```
//!
//! Every integer is little-endian. A table row is a section's offset in the file, its length
//! and the xxh3-64 of its bytes. Array sections hold the elements of [`Array`]s raw, so that
//! they load as views into a memory map; the payload holds their indices in the table.
//!
//! Because the checksum covers the body, and the body holds the hash of every section, a torn
//! write, a truncation or a flipped bit is detected before anything is decoded, so writers need
//! no `fsync`: an entry lost in a crash is only a miss. (Large array sections are the
//! exception: their hashes are checked on demand, see [`Array`].) The checksum combines a hash
//! of the header fields with a hash of the body so that readers hash each in one pass over
//! contiguous memory, and writers can hash the body while they stream it out, before the
//! header's lengths are known.
//!
//! The hit count is the one field written after the entry is complete: hits add to it in
//! place (a 4-byte write, made at most once a second per entry and process, see
//! [`crate::usage`]), which also sets the file's modification time: that is how the entry's
//! last use is known (file access times are unreliable: `relatime` records a read at most
//! once a day, `noatime` never). No reader depends on the count, so an update lost between
//! processes costs hits in the tally, nothing else.
//!
//! [`Array`]: crate::Array

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::array::{Section, SectionRef, Sink, Source, SourceGuard};
use crate::codec::Decoder;
use crate::error::{Error, ErrorKind};

pub(crate) const MAGIC: [u8; 8] = *b"\x89JBL\r\n\x1a\n";
pub(crate) const VERSION: u16 = 3;

/// The oldest format version this build reads: version 2 had zeros where version 3 has the
/// arguments' length and the hit count, so it reads as a version 3 entry without either.
/// Hits are never counted in a version 2 entry, whose checksum covers the count.
pub(crate) const OLDEST_READ: u16 = 2;
pub(crate) const HEADER_LEN: usize = 64;

/// Under a fuzzer every checksum passes, so that mutated inputs reach the decoders behind it:
/// they must hold against forged files, whose checksums are right.
const FUZZING: bool = cfg!(fuzzing);

/// Where the hit count is, in the header.
const HITS_AT: usize = crate::usage::HITS_AT as usize;

/// The longest rendering of a call's arguments kept, in bytes.
const MAX_ARGS: usize = 512;

/// Bytes a row of the array section table takes: offset, length, hash.
const ROW: usize = 24;

/// Array sections start at multiples of this, in the file and so in a map of it.
const SECTION_ALIGN: usize = 64;

/// Flag bit: the entry was written on a big-endian machine (its array sections are).
const BIG_ENDIAN: u16 = 1 << 4;
const NATIVE: u16 = if cfg!(target_endian = "big") {
    BIG_ENDIAN
} else {
    0
};

/// Entries smaller than this are read with one `read` into a buffer on the stack.
const SMALL: usize = 4096;

/// Entries up to this size are read into memory; larger ones are mapped. Mapping costs two
/// system calls and page-table work that only pays off for large files.
const MAP_FROM: u64 = 1 << 20;

/// The writer hands the file chunks of this size, hashing each while it is still in cache.
const CHUNK: usize = 256 * 1024;

/// Hashing this many bytes or more is done on a second thread beside the write or read it
/// checks, where a thread's start (some 20 µs) is small beside it.
const HASH_ASIDE_FROM: usize = 8 << 20;

/// Files from this size on are read straight into the value when its type allows. The new
/// memory comes fresh from the kernel, lazily zeroed: for smaller ones, which the allocator
/// recycles, mapping the file and copying out of it measured faster.
/// (Unit tests exercise the same code on smaller files.)
const DIRECT_FROM: u64 = if cfg!(test) { 2 << 20 } else { 32 << 20 };
// A file a direct read may have read from is always mapped afterwards, never read on from
// where the head ended (see `Opened::bytes`).
const _: () = assert!(DIRECT_FROM > MAP_FROM);

/// Direct reads go in steps of this size.
const READ_STEP: usize = 1 << 20;

/// The arrays of an entry are checked against their hashes on load when they take at most this
/// much in all; beyond, the load would cost as much as a copy.
const VERIFY_ARRAYS_UP_TO: usize = 1 << 20;

/// What the header of an entry says, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `std::any::type_name` of the stored value.
    pub type_name: String,
    /// How long the value took to compute.
    pub compute: Duration,
    /// When the entry was written.
    pub created: SystemTime,
    /// How the call's arguments read (`Debug`, truncated); empty for `dump`'s files.
    pub args: String,
    /// How many times the entry was loaded as a cache hit.
    pub hits: u32,
}

impl Header {
    /// The header at the start of `bytes`, read without verifying the checksum (a report over
    /// many entries reads no more than their first bytes). `None` for a file that is not an
    /// entry this build reads, or whose type name does not fit in `bytes`.
    pub(crate) fn read(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < HEADER_LEN || known_codec(bytes).is_none() {
            return None;
        }
        let name_end = HEADER_LEN + u16_at(bytes, 20) as usize;
        let type_name = std::str::from_utf8(bytes.get(HEADER_LEN..name_end)?).ok()?;
        let args = bytes
            .get(name_end..payload_start(bytes))
            .and_then(|args| std::str::from_utf8(args).ok());
        Some(Header {
            type_name: type_name.to_owned(),
            compute: Duration::from_nanos(u64_at(bytes, 48)),
            created: UNIX_EPOCH + Duration::from_millis(u64_at(bytes, 56)),
            // Arguments that do not fit in what was read are not worth a second read.
            args: args.unwrap_or("…").to_owned(),
            hits: u32_at(bytes, HITS_AT),
        })
    }
}

/// What an entry's header and body say about its value, besides the value itself.
#[derive(Clone, Copy, Default)]
pub(crate) struct Meta<'a> {
    /// `std::any::type_name` of the value.
    pub type_name: &'a str,
    /// How the call's arguments read; empty for `dump`.
    pub args: &'a str,
    /// How long the value took to compute.
    pub compute: Duration,
}

impl<'a> Meta<'a> {
    /// A value of `type_name` that is not a call's result.
    pub(crate) fn value(type_name: &'a str) -> Self {
        Meta {
            type_name,
            ..Meta::default()
        }
    }
}

/// The header of the entry file at `path`, whose size is `size`, for a report: one read of
/// its first bytes, on Linux without recording an access (which would make every entry look
/// just used to tools that go by access times).
pub(crate) fn read_header(path: &Path, size: u64) -> Option<Header> {
    #[cfg(target_os = "linux")]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        // Refused (EPERM) on files of another user: then read as usual.
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
            .or_else(|_| File::open(path))
    };
    #[cfg(not(target_os = "linux"))]
    let file = File::open(path);
    let mut head = [0u8; SMALL];
    let want = usize::try_from(size).map_or(SMALL, |size| size.min(SMALL));
    let len = read_full(&mut file.ok()?, &mut head[..want]).ok()?;
    Header::read(&head[..len])
}

/// Writes `value` as an entry file at `path`, atomically: into a temporary file in the same
/// folder, renamed over `path` once complete, so that readers in any thread or process see the
/// old entry or the new one, never a part of one. The folder is created if missing and
/// `create_dirs` is set. Returns the file's length.
pub(crate) fn write<T: ?Sized + Serialize>(
    path: &Path,
    value: &T,
    meta: &Meta,
    compression: Compression,
    create_dirs: bool,
) -> Result<u64, ErrorKind> {
    let mut tmp = temp_for(path, create_dirs).map_err(ErrorKind::from_io)?;
    let len = write_to(tmp.as_file_mut(), value, meta, compression)?;
    tmp.persist(path).map_err(|e| ErrorKind::from_io(e.error))?;
    Ok(len)
}

/// An entry in memory, for tests.
#[cfg(test)]
pub(crate) fn encode<T: ?Sized + Serialize>(
    value: &T,
    type_name: &str,
    compute: Duration,
    compression: Compression,
) -> Result<Vec<u8>, ErrorKind> {
    let mut out = io::Cursor::new(Vec::new());
    let meta = Meta {
        compute,
        ..Meta::value(type_name)
    };
    write_to(&mut out, value, &meta, compression)?;
    Ok(out.into_inner())
}

/// Serializes an entry into `out`, which must be empty. A small entry is assembled in memory
/// and written with one call; a large one streams out in chunks, hashed as they go, and its
/// header is written last, over a placeholder, once the lengths are known.
fn write_to<W: Write + Seek, T: ?Sized + Serialize>(
    out: W,
    value: &T,
    meta: &Meta,
    compression: Compression,
) -> Result<u64, ErrorKind> {
    let (type_name, name_len) = stored_type_name(meta.type_name)?;
    let args = crate::render::truncate(meta.args, MAX_ARGS);
    let mut body = Body::new(out);
    body.extend(type_name.as_bytes()).map_err(ErrorKind::Io)?;
    body.extend(args.as_bytes()).map_err(ErrorKind::Io)?;
    let start = body.len();
    let encode_err = |e: postcard::Error| ErrorKind::Encode(e.to_string());
    let (raw_len, sections) = match compression {
        Compression::None => {
            let sink = Sink::open();
            if let Err(e) = postcard::serialize_with_flavor(value, &mut body) {
                return Err(body
                    .error
                    .take()
                    .map_or_else(|| encode_err(e), ErrorKind::Io));
            }
            (body.len() - start, sink.finish())
        }
        Compression::Lz4 => {
            // Arrays go inline (as bytes) into a compressed payload: a compressed entry is
            // never mapped. LZ4 compresses the payload a block at a time, each stored after its
            // compressed length, so that no buffer the size of the value is ever needed.
            let mut packed = vec![0; lz4_flex::block::get_maximum_output_size(BLOCK)];
            let blocks = Blocks::new(|block: &[u8]| {
                let n =
                    lz4_flex::block::compress_into(block, &mut packed).map_err(io::Error::other)?;
                body.extend(&(n as u32).to_le_bytes())?;
                body.extend(&packed[..n])
            });
            let raw_len = blocks.serialize(value)?;
            (raw_len, Vec::new())
        }
        Compression::Zstd(level) => {
            let zstd_err = |e: io::Error| ErrorKind::Encode(format!("zstd: {e}"));
            let mut encoder = zstd::stream::Encoder::new(&mut body, level).map_err(zstd_err)?;
            let raw_len = Blocks::new(|block: &[u8]| encoder.write_all(block)).serialize(value)?;
            encoder.finish().map_err(ErrorKind::Io)?;
            (raw_len, Vec::new())
        }
    };
    let fields = Fields {
        name_len,
        args_len: args.len() as u16,
        table_len: u32::try_from(sections.len() * ROW)
            .map_err(|_| ErrorKind::Encode("too many arrays".into()))?,
        payload_len: body.len() - start,
        raw_len,
        compression,
        compute: meta.compute,
    };
    body.finish(&fields, &sections).map_err(ErrorKind::Io)
}

/// The header fields other than the checksum.
struct Fields {
    name_len: u16,
    args_len: u16,
    table_len: u32,
    payload_len: u64,
    raw_len: u64,
    compression: Compression,
    compute: Duration,
}

impl Fields {
    /// The 64-byte header, checksum included, for a body that hashes to `body_hash`.
    fn header(&self, body_hash: u64) -> [u8; HEADER_LEN] {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let compute = self.compute.as_nanos().min(u128::from(u64::MAX)) as u64;
        let flags = u16::from(self.compression.codec()) | NATIVE;
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[16..18].copy_from_slice(&VERSION.to_le_bytes());
        h[18..20].copy_from_slice(&flags.to_le_bytes());
        h[20..22].copy_from_slice(&self.name_len.to_le_bytes());
        h[22..24].copy_from_slice(&self.args_len.to_le_bytes());
        h[24..28].copy_from_slice(&self.table_len.to_le_bytes());
        h[32..40].copy_from_slice(&self.payload_len.to_le_bytes());
        h[40..48].copy_from_slice(&self.raw_len.to_le_bytes());
        h[48..56].copy_from_slice(&compute.to_le_bytes());
        h[56..64].copy_from_slice(&created.to_le_bytes());
        let sum = checksum(&h[16..HEADER_LEN], body_hash);
        h[8..16].copy_from_slice(&sum.to_le_bytes());
        h
    }
}

/// The checksum of an entry, from its header fields (bytes 16..64) and the hash of its body.
/// The hit count, which hits rewrite, counts as zero: it is not even read, since another
/// process may be writing it into the map this reads from.
fn checksum(fields: &[u8], body_hash: u64) -> u64 {
    let mut fixed = [0u8; HEADER_LEN - 16];
    let (count, after) = (HITS_AT - 16, HITS_AT - 12);
    fixed[..count].copy_from_slice(&fields[..count]);
    fixed[after..].copy_from_slice(&fields[after..HEADER_LEN - 16]);
    let mut both = [0u8; 16];
    both[..8].copy_from_slice(&xxh3_64(&fixed).to_le_bytes());
    both[8..].copy_from_slice(&body_hash.to_le_bytes());
    xxh3_64(&both)
}

/// An entry being written: a buffer that starts with a placeholder for the header, spilled to
/// `out` a chunk at a time once it fills up. Also the postcard flavor the payload is
/// serialized through, so that a large payload never sits in memory whole.
struct Body<W> {
    out: W,
    buf: Vec<u8>,
    /// Bytes written to `out` so far, the placeholder header among them once any are.
    flushed: u64,
    /// Hash of the body bytes written so far.
    hasher: Xxh3,
    /// Why a write failed, for the postcard error that reports it.
    error: Option<io::Error>,
}

impl<W: Write + Seek> Body<W> {
    fn new(out: W) -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.resize(HEADER_LEN, 0);
        Body {
            out,
            buf,
            flushed: 0,
            hasher: Xxh3::new(),
            error: None,
        }
    }

    fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    // Inlined into postcard's per-number calls, where `data` has a constant length: the copy
    // becomes a move of a few bytes instead of a call to `memmove`.
    #[inline(always)]
    fn extend(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() <= CHUNK {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.spill(data)
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, data: &[u8]) -> io::Result<()> {
        self.flush()?;
        if data.len() < CHUNK {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        for chunk in data.chunks(CHUNK) {
            self.out.write_all(chunk)?;
            self.hasher.update(chunk);
        }
        self.flushed += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        let header = if self.flushed == 0 { HEADER_LEN } else { 0 };
        self.hasher.update(&self.buf[header..]);
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the section table and the sections after the payload, then the header.
    fn finish(mut self, fields: &Fields, sections: &[Box<dyn Section>]) -> io::Result<u64> {
        if sections.is_empty() && self.flushed == 0 {
            // Small: the whole entry is in the buffer; one write.
            let header = fields.header(xxh3_64(&self.buf[HEADER_LEN..]));
            self.buf[..HEADER_LEN].copy_from_slice(&header);
            self.out.write_all(&self.buf)?;
            return Ok(self.buf.len() as u64);
        }
        self.flush()?;
        let table_at = self.flushed;
        let mut end = table_at + (sections.len() * ROW) as u64;
        // Where each section went and its length: the table, once their hashes are known.
        let mut placed = Vec::with_capacity(sections.len());
        // Placeholder for the table, which holds the sections' hashes.
        self.out.write_all(&vec![0; sections.len() * ROW])?;
        let sections: Vec<&[u8]> = sections.iter().map(|s| s.bytes()).collect();
        let hash_all = || {
            sections
                .iter()
                .map(|bytes| xxh3_64(bytes))
                .collect::<Vec<_>>()
        };
        let large = sections.iter().map(|s| s.len()).sum::<usize>() >= HASH_ASIDE_FROM;
        let hashes = std::thread::scope(|scope| -> io::Result<Vec<u64>> {
            // Large arrays are hashed on a second thread while this one writes them: the write
            // is bound by the kernel's page cache, the hash by memory bandwidth.
            let aside = large.then(|| spawn_scoped(scope, hash_all)).flatten();
            for bytes in &sections {
                let at = end.next_multiple_of(SECTION_ALIGN as u64);
                self.out
                    .write_all(&[0; SECTION_ALIGN][..(at - end) as usize])?;
                self.out.write_all(bytes)?;
                end = at + bytes.len() as u64;
                placed.push((at, bytes.len() as u64));
            }
            Ok(aside.map_or_else(hash_all, join))
        })?;
        let table: Vec<u8> = placed
            .iter()
            .zip(hashes)
            .flat_map(|(&(at, len), hash)| [at, len, hash])
            .flat_map(u64::to_le_bytes)
            .collect();
        self.hasher.update(&table);
        if !table.is_empty() {
            self.out.seek(SeekFrom::Start(table_at))?;
            self.out.write_all(&table)?;
        }
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&fields.header(self.hasher.digest()))?;
        Ok(end)
    }
}

/// Where a compressor writes: the entry being written.
impl<W: Write + Seek> Write for Body<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.extend(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Raw payload bytes handed to a compressor at a time.
const BLOCK: usize = 1 << 20;

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

impl<W: Write + Seek> postcard::ser_flavors::Flavor for &mut Body<W> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.try_extend(&[byte])
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match self.extend(data) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.error = Some(e);
                Err(postcard::Error::SerializeBufferFull)
            }
        }
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The first bytes of a file that [`counts_hits`] reads.
pub(crate) const COUNTED_HEAD: usize = 18;

/// Whether hits are counted in the entry whose first bytes are `head`: one of this format
/// version (an older one's checksum covers the count's bytes).
pub(crate) fn counts_hits(head: &[u8]) -> bool {
    head.len() >= COUNTED_HEAD && head[..8] == MAGIC && u16_at(head, 16) == VERSION
}

/// Where the payload starts in an entry whose header is at the start of `bytes`: after the
/// type name and the arguments.
fn payload_start(bytes: &[u8]) -> usize {
    HEADER_LEN + u16_at(bytes, 20) as usize + u16_at(bytes, 22) as usize
}

/// The type name as stored, and its length as the header records it.
fn stored_type_name(type_name: &str) -> Result<(std::borrow::Cow<'_, str>, u16), ErrorKind> {
    let name = canonical_type_name(type_name);
    let len =
        u16::try_from(name.len()).map_err(|_| ErrorKind::Encode("type name too long".into()))?;
    Ok((name, len))
}

/// The stored form of a type's name: a reference, a slice and a `str` are stored as what they
/// are read back as (the value, a `Vec`, a `String`), since serde encodes them alike; joblet's
/// own array types are stored under their public names, not the private modules that define
/// them, so that moving those does not orphan every stored file.
pub(crate) fn canonical_type_name(name: &str) -> std::borrow::Cow<'_, str> {
    let name = name.trim_start_matches("&mut ").trim_start_matches('&');
    let name: std::borrow::Cow<'_, str> = if name == "str" {
        "alloc::string::String".into()
    } else if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        if inner.contains(';') {
            name.into() // an array `[T; N]` is its own type
        } else {
            format!("alloc::vec::Vec<{inner}>").into()
        }
    } else {
        name.into()
    };
    if name.contains("joblet_runtime::") {
        name.replace("joblet_runtime::array::", "joblet::")
            .replace("joblet_runtime::ndim::", "joblet::")
            .into()
    } else {
        name
    }
}

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
    fn codec(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd(_) => 2,
        }
    }
}

/// LZ4 cannot expand data by more than this: a header claiming more is forged or damaged.
const LZ4_MAX_RATIO: u64 = 255;

/// Nor zstd by more than this: a block of at least 4 bytes (a header and one repeated byte)
/// holds at most [`ZSTD_BLOCK`] bytes.
const ZSTD_MAX_RATIO: u64 = ZSTD_BLOCK / 4;
const ZSTD_BLOCK: u64 = 128 << 10;

/// A temporary file in the folder of `path`, which is created if missing and `create_dirs` is
/// set. Dropped without being persisted, it is removed.
fn temp_for(path: &Path, create_dirs: bool) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match temp_in(dir) {
        Err(e) if create_dirs && e.kind() == io::ErrorKind::NotFound => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                // As the files: never writable by others, whatever the process umask allows.
                builder.mode(0o755);
            }
            builder.create(dir)?;
            temp_in(dir)
        }
        other => other,
    }
}

/// Prefix of temporary files, so that tools can recognise (and clean up) those of a crashed writer.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

fn temp_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(".jbl");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Readable like any file the program writes (the process umask still applies); never
        // executable, never writable by others.
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

/// An entry file's bytes: small files in a buffer on the stack, mid-sized ones on the heap,
/// large ones, and all that hold array sections, in a memory map.
pub(crate) enum Bytes<'a> {
    /// The head [`Opened`] read: small entries, the common case, need no other buffer.
    Small(&'a [u8]),
    Heap(Vec<u8>),
    Mapped(Arc<memmap2::Mmap>),
}

impl std::ops::Deref for Bytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Small(head) => head,
            Bytes::Heap(v) => v,
            Bytes::Mapped(map) => map,
        }
    }
}

/// An entry file open, with its first bytes read.
pub(crate) struct Opened {
    file: File,
    head: [u8; SMALL],
    len: usize,
    /// The file's size: the head's length when it holds the whole file, else asked once.
    size: u64,
    /// Opened for writing too, to count hits.
    writable: bool,
}

impl Opened {
    pub(crate) fn open(path: &Path) -> Result<Self, ErrorKind> {
        Self::read_head(File::open(path).map_err(ErrorKind::from_io)?, false)
    }

    /// Opens to load a cache hit, for writing too if `writable` holds, so that the hit can
    /// be counted. A cache that refuses writes (another user's, a read-only mount) clears
    /// `writable`, and is read without counting from then on.
    fn open_for_hit(path: &Path, writable: &AtomicBool) -> Result<Self, ErrorKind> {
        if writable.load(Ordering::Relaxed) {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                Ok(file) => return Self::read_head(file, true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ErrorKind::from_io(e));
                }
                Err(e) => {
                    // A cache that refuses writes for good; anything else (too many open
                    // files, say) only costs this hit its count.
                    if matches!(
                        e.kind(),
                        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                    ) {
                        tracing::debug!(path = %path.display(), error = %e, "cache entries are read-only; hits are not counted");
                        writable.store(false, Ordering::Relaxed);
                    }
                }
            }
        }
        Self::open(path)
    }

    /// Counts a hit of this entry, which also marks it as just used (see [`crate::usage`]).
    /// Best effort: a failure only leaves the count and the time as they were.
    fn count_hit(&self, path: &Path) {
        if !self.writable || !counts_hits(&self.head[..self.len]) {
            return;
        }
        crate::usage::hit(path, |hits| {
            if let Err(e) = crate::usage::add_hits(&self.file, hits) {
                tracing::debug!(error = %e, "cannot count a hit");
            }
        });
    }

    fn read_head(mut file: File, writable: bool) -> Result<Self, ErrorKind> {
        let mut head = [0u8; SMALL];
        let len = read_full(&mut file, &mut head)?;
        let size = if len < SMALL {
            len as u64
        } else {
            file.metadata().map_err(ErrorKind::from_io)?.len()
        };
        Ok(Opened {
            file,
            head,
            len,
            size,
            writable,
        })
    }

    fn has_arrays(&self) -> bool {
        self.len >= HEADER_LEN && self.head[..8] == MAGIC && u32_at(&self.head, 24) != 0
    }

    /// The whole file.
    pub(crate) fn bytes(&mut self) -> Result<Bytes<'_>, ErrorKind> {
        let has_arrays = self.has_arrays();
        if self.len < SMALL && !has_arrays {
            return Ok(Bytes::Small(&self.head[..self.len]));
        }
        if self.size > MAP_FROM || has_arrays {
            let mut options = memmap2::MmapOptions::new();
            if !has_arrays {
                // Everything will be read: fault it all in with one call. Arrays are views,
                // whose pages are read only if and when they are used.
                options.populate();
            }
            // SAFETY: entry files are never modified in place but for the 4-byte hit count,
            // which no decoder reads from the map (the checksum copies the header and zeroes
            // it): writers create a new file and rename it over the old path, so the inode
            // mapped here keeps its contents while the map lives. A process that writes into
            // cache files by hand breaks this, as it would for any mapped file.
            let map = unsafe { options.map(&self.file) }.map_err(ErrorKind::from_io)?;
            return Ok(Bytes::Mapped(Arc::new(map)));
        }
        // A direct read (`read_payload`) never gets this far: it takes only files that are
        // mapped above, so the file is still where the head ends.
        let mut all = Vec::with_capacity(self.size as usize + 1);
        all.extend_from_slice(&self.head[..self.len]);
        self.file
            .read_to_end(&mut all)
            .map_err(ErrorKind::from_io)?;
        Ok(Bytes::Heap(all))
    }

    /// For a large (see [`DIRECT_FROM`]), uncompressed entry of a `T` without arrays: `skip` reads the start of the
    /// payload (given with the payload's length) and makes the value, and the rest of the
    /// payload is read straight into the memory `fill` hands out, verifying the checksum on
    /// the way. This spares a map and a copy. `None` when the file is anything
    /// else or fails to verify; the general path then reports why.
    pub(crate) fn read_payload<T, R>(
        &mut self,
        skip: impl FnOnce(&[u8], u64) -> Option<(usize, R)>,
        fill: impl FnOnce(&mut R) -> &mut [u8],
    ) -> Option<R> {
        let head = &self.head[..self.len];
        if self.len < SMALL || self.has_arrays() || known_codec(head) != Some(0) {
            return None;
        }
        let name_end = HEADER_LEN + u16_at(head, 20) as usize;
        let payload_at = payload_start(head);
        let payload_len = u64_at(head, 32);
        let end = (payload_at as u64).checked_add(payload_len);
        if self.size < DIRECT_FROM || payload_at >= self.len || end != Some(self.size) {
            return None;
        }
        let name = std::str::from_utf8(&head[HEADER_LEN..name_end]).ok()?;
        if name != canonical_type_name(std::any::type_name::<T>()) {
            return None;
        }
        let in_head = &head[payload_at..];
        let (skip, mut value) = skip(in_head, payload_len)?;
        let dest = fill(&mut value);
        if (skip + dest.len()) as u64 != payload_len || skip > in_head.len() {
            return None;
        }
        let mut hasher = Xxh3::new();
        hasher.update(&head[HEADER_LEN..]);
        let from_head = in_head.len() - skip;
        dest[..from_head].copy_from_slice(&in_head[skip..]);
        let digest = read_hashing(&mut self.file, &mut dest[from_head..], hasher).ok()?;
        (checksum(&head[16..HEADER_LEN], digest) == u64_at(head, 8) || FUZZING).then_some(value)
    }
}

/// Fills `dest` from `file`, hashing what is read into `hasher`; returns the digest. A large
/// read is hashed on a second thread, a chunk behind the reads, so that it costs no time.
fn read_hashing(file: &mut File, dest: &mut [u8], hasher: Xxh3) -> io::Result<u64> {
    if dest.len() < HASH_ASIDE_FROM {
        return read_hashing_here(file, dest, hasher);
    }
    std::thread::scope(|scope| {
        let (send, chunks) = std::sync::mpsc::channel::<&[u8]>();
        let mut aside = hasher.clone();
        let Some(helper) = spawn_scoped(scope, move || {
            chunks.iter().for_each(|chunk| aside.update(chunk));
            aside.digest()
        }) else {
            return read_hashing_here(file, dest, hasher);
        };
        for chunk in dest.chunks_mut(READ_STEP) {
            file.read_exact(chunk)?;
            let done: &[u8] = chunk;
            // The helper only stops early by panicking, which `join` passes on.
            let _ = send.send(done);
        }
        drop(send);
        Ok(join(helper))
    })
}

/// [`read_hashing`] on this thread alone, each chunk hashed while it is still in cache.
fn read_hashing_here(file: &mut File, dest: &mut [u8], mut hasher: Xxh3) -> io::Result<u64> {
    for chunk in dest.chunks_mut(READ_STEP) {
        file.read_exact(chunk)?;
        hasher.update(chunk);
    }
    Ok(hasher.digest())
}

/// A helper thread in `scope`, or `None` when the system cannot start one (the caller then
/// does the work itself).
fn spawn_scoped<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    work: impl FnOnce() -> T + Send + 'scope,
) -> Option<std::thread::ScopedJoinHandle<'scope, T>> {
    std::thread::Builder::new()
        .name("joblet-hash".into())
        .spawn_scoped(scope, work)
        .ok()
}

/// The helper's result; its panic, if it panicked, becomes this thread's.
fn join<T>(helper: std::thread::ScopedJoinHandle<'_, T>) -> T {
    helper
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Reads until `buf` is full or the file ends; returns how many bytes were read.
fn read_full(file: &mut File, buf: &mut [u8]) -> Result<usize, ErrorKind> {
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ErrorKind::from_io(e)),
        }
    }
    Ok(len)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A parsed entry: header fields read and lengths consistent with the file. Decoders verify
/// its checksum with [`Entry::verify`] before they hand out anything decoded from it.
pub struct Entry<'a> {
    /// `std::any::type_name` of the stored value, as written.
    pub type_name: &'a str,
    /// The payload (postcard bytes, compressed if the header says so).
    pub payload: &'a [u8],
    /// The array section table.
    table: &'a [u8],
    /// Where the body (type name, payload, table) ends.
    body_end: usize,
    bytes: &'a [u8],
}

/// Parses and verifies an entry: magic, version, lengths and checksum. Never panics.
pub(crate) fn check(bytes: &[u8]) -> Result<Entry<'_>, ErrorKind> {
    let entry = parse(bytes)?;
    entry.verify()?;
    Ok(entry)
}

/// Parses an entry without verifying its checksum. Every length and offset is checked against
/// the file, so any input, damaged or forged, gives an error or a view inside `bytes`, never a
/// panic.
pub(crate) fn parse(bytes: &[u8]) -> Result<Entry<'_>, ErrorKind> {
    if bytes.is_empty() {
        return Err(ErrorKind::Truncated);
    }
    if bytes.len() < HEADER_LEN {
        return Err(if MAGIC.starts_with(bytes) || bytes.starts_with(&MAGIC) {
            ErrorKind::Truncated
        } else {
            ErrorKind::NotAnEntry
        });
    }
    if bytes[0..8] != MAGIC {
        return Err(ErrorKind::NotAnEntry);
    }
    let version = u16_at(bytes, 16);
    if !(OLDEST_READ..=VERSION).contains(&version) {
        return Err(ErrorKind::UnsupportedVersion(version));
    }
    let name_len = u16_at(bytes, 20) as u64;
    let args_len = u16_at(bytes, 22) as u64;
    let table_len = u32_at(bytes, 24) as u64;
    let payload_len = u64_at(bytes, 32);
    let body_end = (HEADER_LEN as u64)
        .checked_add(name_len + args_len)
        .and_then(|n| n.checked_add(payload_len))
        .and_then(|n| n.checked_add(table_len))
        .ok_or(ErrorKind::Corrupt("lengths in the header overflow"))?;
    let file_len = bytes.len() as u64;
    if body_end > file_len {
        return Err(ErrorKind::Truncated);
    }
    let body_end = body_end as usize;
    let layout =
        sections_end(bytes, body_end, table_len).and_then(|end| match end.cmp(&file_len) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(ErrorKind::Truncated),
            std::cmp::Ordering::Less => Err(ErrorKind::Corrupt(
                "lengths in the header do not match the file",
            )),
        });
    if let Err(e) = layout {
        // The table is covered by the checksum: say "checksum mismatch" when that is the
        // cause (a flipped bit in a row), "truncated" when the table is intact but the file
        // ends before its sections do.
        verify_body(bytes, body_end)?;
        return Err(e);
    }
    let name_end = HEADER_LEN + name_len as usize;
    let payload_at = name_end + args_len as usize;
    let payload_end = payload_at + payload_len as usize;
    let type_name = std::str::from_utf8(&bytes[HEADER_LEN..name_end]);
    let flags = u16_at(bytes, 18);
    let entry = Entry {
        type_name: type_name.unwrap_or(""),
        payload: &bytes[payload_at..payload_end],
        table: &bytes[payload_end..body_end],
        body_end,
        bytes,
    };
    let problem = if type_name.is_err() {
        Some("type name is not UTF-8")
    } else if !flags_known(flags) {
        Some("unknown flags or compression codec")
    } else {
        None
    };
    if let Some(problem) = problem {
        // Say "checksum mismatch" when that is the cause: it is the likelier one.
        entry.verify()?;
        return Err(ErrorKind::Corrupt(problem));
    }
    if flags & BIG_ENDIAN != NATIVE {
        return Err(ErrorKind::Decode(
            "the file was written on a machine of the other byte order".into(),
        ));
    }
    Ok(entry)
}

/// The codec of an entry whose header is at the start of `bytes`, if its magic, version and
/// flags are ones this build reads.
fn known_codec(bytes: &[u8]) -> Option<u16> {
    let flags = u16_at(bytes, 18);
    let known = bytes[0..8] == MAGIC
        && (OLDEST_READ..=VERSION).contains(&u16_at(bytes, 16))
        && flags_known(flags)
        && flags & BIG_ENDIAN == NATIVE;
    known.then_some(flags & 0xF)
}

/// Whether this build reads entries with these flags (from a machine of either byte order).
fn flags_known(flags: u16) -> bool {
    flags & !(BIG_ENDIAN | 0xF) == 0 && flags & 0xF <= 2
}

/// Where the last array section ends, or the body if there are none, checking that sections
/// follow each other in order, aligned, after the table.
fn sections_end(bytes: &[u8], body_end: usize, table_len: u64) -> Result<u64, ErrorKind> {
    if table_len % ROW as u64 != 0 {
        return Err(ErrorKind::Corrupt("array section table has a partial row"));
    }
    let table = &bytes[body_end - table_len as usize..body_end];
    let mut end = body_end as u64;
    for row in table.chunks_exact(ROW) {
        let (at, len) = (u64_at(row, 0), u64_at(row, 8));
        if at < end || at % SECTION_ALIGN as u64 != 0 || at - end >= SECTION_ALIGN as u64 {
            return Err(ErrorKind::Corrupt("array sections are out of place"));
        }
        end = at
            .checked_add(len)
            .ok_or(ErrorKind::Corrupt("array section length overflows"))?;
    }
    Ok(end)
}

/// Verifies the checksum of the header and the body ending at `body_end`.
fn verify_body(bytes: &[u8], body_end: usize) -> Result<(), ErrorKind> {
    let body_hash = xxh3_64(&bytes[HEADER_LEN..body_end]);
    if checksum(&bytes[16..HEADER_LEN], body_hash) == u64_at(bytes, 8) || FUZZING {
        Ok(())
    } else {
        Err(ErrorKind::Corrupt("checksum mismatch"))
    }
}

impl Entry<'_> {
    /// Verifies the checksum of the header and body, which covers everything but the contents
    /// of array sections (their hashes are in the body).
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] when it does not match.
    pub fn verify(&self) -> Result<(), ErrorKind> {
        verify_body(self.bytes, self.body_end)
    }

    /// The array sections, from the table (checked by [`parse`]).
    pub(crate) fn sections(&self) -> impl Iterator<Item = SectionRef> + '_ {
        self.table.chunks_exact(ROW).map(|row| SectionRef {
            offset: u64_at(row, 0) as usize,
            len: u64_at(row, 8) as usize,
            hash: u64_at(row, 16),
        })
    }

    /// What array views decoded from this entry read from: the map holding it, which must be
    /// `bytes`. `None` when the entry has no array sections.
    pub(crate) fn source(&self, bytes: &Bytes) -> Option<Source> {
        let Bytes::Mapped(map) = bytes else {
            return None;
        };
        if self.table.is_empty() {
            return None;
        }
        let sections: Vec<SectionRef> = self.sections().collect();
        let total: usize = sections.iter().map(|s| s.len).sum();
        Some(Source {
            map: Arc::clone(map),
            sections,
            verify: total <= VERIFY_ARRAYS_UP_TO,
        })
    }

    /// Fails unless the entry was written as a `T`.
    pub(crate) fn expect_type<T: ?Sized>(&self) -> Result<(), ErrorKind> {
        let expected = canonical_type_name(std::any::type_name::<T>());
        if self.type_name == expected {
            Ok(())
        } else {
            Err(ErrorKind::WrongType {
                expected: expected.into_owned(),
                found: self.type_name.to_owned(),
            })
        }
    }

    /// The payload as serialized: the stored bytes, decompressed if they were compressed. Call
    /// it after [`Entry::verify`]; a forged size cannot make it allocate more than the codec
    /// could produce.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] when the payload does not decompress to its recorded size.
    pub fn raw_payload(&self) -> Result<std::borrow::Cow<'_, [u8]>, ErrorKind> {
        let raw_len = u64_at(self.bytes, 40);
        let bad = || ErrorKind::Corrupt("payload does not decompress to its recorded size");
        match u16_at(self.bytes, 18) & 0xF {
            0 => Ok(std::borrow::Cow::Borrowed(self.payload)),
            1 => {
                let stored = self.payload.len() as u64;
                if raw_len > stored.saturating_mul(LZ4_MAX_RATIO) + 16 {
                    return Err(bad());
                }
                let raw_len = usize::try_from(raw_len).map_err(|_| bad())?;
                // The recorded size is believed only as far as the blocks bear it out: the
                // output grows a block at a time, from room for what is likely.
                let likely = raw_len.min(self.payload.len().saturating_mul(4));
                let mut out = crate::codec::vec_with_capacity::<u8>(likely);
                let mut input = self.payload;
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
                    Ok(std::borrow::Cow::Owned(out))
                } else {
                    Err(bad())
                }
            }
            _ => {
                // In one call, into a buffer of the recorded size: a stream decoder would
                // allocate the window its frame header asks for, up to 128 MB for a file of a
                // hundred bytes (the fuzzer found this). The recorded size is believed as far
                // as zstd's format allows.
                let stored = self.payload.len() as u64;
                if raw_len > stored.saturating_mul(ZSTD_MAX_RATIO) + ZSTD_BLOCK {
                    return Err(bad());
                }
                let raw_len = usize::try_from(raw_len).map_err(|_| bad())?;
                match zstd::bulk::decompress(self.payload, raw_len) {
                    Ok(out) if out.len() == raw_len => Ok(std::borrow::Cow::Owned(out)),
                    _ => Err(bad()),
                }
            }
        }
    }

    /// Decodes the entry as `T`, which must be the type it was written as. The decoder
    /// verifies the checksum.
    pub(crate) fn decode_with<T>(&self, decode: Decoder<T>) -> Result<T, ErrorKind> {
        if let Err(wrong) = self.expect_type::<T>() {
            // A damaged type name is damage, not another type.
            self.verify()?;
            return Err(wrong);
        }
        decode.entry(self)
    }
}

/// Reads, checks and decodes the entry at `path`.
pub(crate) fn load<T>(path: &Path, decode: Decoder<T>) -> Result<T, Error> {
    Opened::open(path)
        .and_then(|mut file| file.decode(decode))
        .map_err(|kind| Error::new(path, kind))
}

/// Loads a cache hit, as [`load`] does, and counts it in the entry: see [`Opened::open_for_hit`].
pub(crate) fn load_hit<T>(
    path: &Path,
    decode: Decoder<T>,
    writable: &AtomicBool,
) -> Result<T, Error> {
    Opened::open_for_hit(path, writable)
        .and_then(|mut file| {
            let value = file.decode(decode)?;
            file.count_hit(path);
            Ok(value)
        })
        .map_err(|kind| Error::new(path, kind))
}

impl Opened {
    fn decode<T>(&mut self, decode: Decoder<T>) -> Result<T, ErrorKind> {
        if let Some(value) = decode.file(self) {
            return Ok(value);
        }
        let bytes = self.bytes()?;
        let entry = parse(&bytes)?;
        let arrays = SourceGuard::enter(entry.source(&bytes));
        let decoded = entry.decode_with(decode);
        match arrays.exit() {
            Some(problem) => Err(problem),
            None => decoded,
        }
    }
}

/// Whether `path` holds a valid entry of type `T`, without decoding it.
pub(crate) fn probe<T>(path: &Path) -> Result<(), Error> {
    Opened::open(path)
        .and_then(|mut file| check(&file.bytes()?)?.expect_type::<T>())
        .map_err(|kind| Error::new(path, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decoder_any;

    fn entry<T: Serialize>(v: &T) -> Vec<u8> {
        encode(
            v,
            std::any::type_name::<T>(),
            Duration::from_millis(3),
            Compression::None,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_header() {
        let v = vec![1.0f64, 2.0, 3.0];
        let bytes = entry(&v);
        let c = check(&bytes).unwrap();
        assert_eq!(c.decode_with(decoder_any::<Vec<f64>>()).unwrap(), v);
        let h = Header::read(&bytes).unwrap();
        assert_eq!(h.type_name, "alloc::vec::Vec<f64>");
        assert_eq!(h.compute, Duration::from_millis(3));
        assert!(h.created <= SystemTime::now());
        assert_eq!(c.payload.len(), 25); // a length byte and 3 numbers
        // The type name must fit in what is read; a damaged magic is no header.
        assert_eq!(Header::read(&bytes[..70]), None);
        let mut damaged = bytes.clone();
        damaged[0] ^= 1;
        assert_eq!(Header::read(&damaged), None);
    }

    #[test]
    fn version_2_entries_are_read_and_never_counted_in() {
        let mut v2 = entry(&vec![1.5f64, 2.5]);
        assert_eq!(u16_at(&v2, 22), 0, "no arguments");
        v2[16..18].copy_from_slice(&2u16.to_le_bytes());
        let sum = checksum(&v2[16..HEADER_LEN], xxh3_64(&v2[HEADER_LEN..]));
        v2[8..16].copy_from_slice(&sum.to_le_bytes());
        let read = check(&v2).unwrap().decode_with(decoder_any::<Vec<f64>>());
        assert_eq!(read.unwrap(), vec![1.5, 2.5]);
        assert_eq!(Header::read(&v2).unwrap().hits, 0);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.jbl");
        std::fs::write(&path, &v2).unwrap();
        let writable = AtomicBool::new(true);
        for _ in 0..3 {
            let hit = load_hit(&path, decoder_any::<Vec<f64>>(), &writable);
            assert_eq!(hit.unwrap(), vec![1.5, 2.5]);
        }
        crate::usage::write_all(true);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            v2,
            "an older build's file was changed"
        );
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_detected() {
        let bytes = entry(&("hello".to_string(), 42u32, vec![7u8; 40]));
        for len in 0..bytes.len() {
            assert!(check(&bytes[..len]).is_err(), "truncated to {len} accepted");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            // The hit count is rewritten by every process that loads the entry: not checked.
            let in_count = (HITS_AT..HITS_AT + 4).contains(&(bit / 8));
            assert_eq!(check(&b).is_ok(), in_count, "flipped bit {bit}");
        }
    }

    #[test]
    fn wrong_type_is_named() {
        let bytes = entry(&vec![1.0f64]);
        let err = check(&bytes)
            .unwrap()
            .decode_with(decoder_any::<Vec<u32>>())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected alloc::vec::Vec<u32>, file holds alloc::vec::Vec<f64>"
        );
    }

    #[test]
    fn a_forged_decompressed_size_allocates_nothing_unjustified() {
        for compression in [Compression::Lz4, Compression::Zstd(3)] {
            let mut bytes = encode(
                &vec![7u8; 4096],
                "alloc::vec::Vec<u8>",
                Duration::ZERO,
                compression,
            )
            .unwrap();
            // Claim a terabyte, and re-sign the file so that the checksum holds.
            bytes[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
            let sum = checksum(&bytes[16..HEADER_LEN], xxh3_64(&bytes[HEADER_LEN..]));
            bytes[8..16].copy_from_slice(&sum.to_le_bytes());
            let entry = check(&bytes).unwrap();
            assert!(
                matches!(entry.raw_payload(), Err(ErrorKind::Corrupt(_))),
                "{compression:?}"
            );
        }
    }

    /// Entries record these names: were they to follow the modules that define the types,
    /// moving a module would make every stored array another type.
    #[test]
    fn arrays_are_stored_under_their_public_names() {
        let name = |n: &str| canonical_type_name(n).into_owned();
        let array = std::any::type_name::<crate::Array<f64>>();
        assert_eq!(name(array), "joblet::Array<f64>");
        let nested = std::any::type_name::<(Vec<crate::Array<u8>>, &crate::Array<i32>)>();
        assert_eq!(
            name(nested),
            "(alloc::vec::Vec<joblet::Array<u8>>, &joblet::Array<i32>)"
        );
        assert_eq!(name(&format!("&{array}")), "joblet::Array<f64>");
        #[cfg(feature = "ndarray")]
        assert_eq!(
            name(std::any::type_name::<crate::NdArray<f32>>()),
            "joblet::NdArray<f32>"
        );
    }

    #[test]
    fn garbage_and_future_versions_are_refused() {
        assert!(matches!(check(&[0u8; 100]), Err(ErrorKind::NotAnEntry)));
        let mut b = entry(&1u8);
        b[16] = 9;
        assert!(matches!(check(&b), Err(ErrorKind::UnsupportedVersion(9))));
    }
}
