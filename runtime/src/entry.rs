//! The entry file: one value in a checksummed container, written atomically, read back through
//! a small buffer or a memory map.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"\x89JBL\r\n\x1a\n"
//!      8     8  checksum: xxh3-64 of the 16 bytes `xxh3-64(bytes 16..64) ++ xxh3-64(bytes 64..)`
//!     16     2  format version (1)
//!     18     2  flags: bits 0-3 compression codec (0 = none); other bits zero
//!     20     2  length of the stored type's name
//!     22     2  reserved, zero
//!     24     4  length of the metadata section
//!     28     4  reserved, zero
//!     32     8  payload length as stored
//!     40     8  payload length once decompressed
//!     48     8  compute duration, nanoseconds
//!     56     8  creation time, milliseconds since the Unix epoch
//!     64        type name (UTF-8), metadata, payload (postcard)
//! ```
//!
//! Every integer is little-endian. Because the checksum covers the whole file, a torn write, a
//! truncation or a flipped bit is detected before anything is decoded, so writers need no
//! `fsync`: an entry lost in a crash is only a miss. It combines a hash of the header fields
//! with a hash of the body so that readers hash each in one pass over contiguous memory, and
//! writers can hash the body while they stream it out, before the header's lengths are known.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::codec::DecodeFn;
use crate::error::{Error, ErrorKind};

pub(crate) const MAGIC: [u8; 8] = *b"\x89JBL\r\n\x1a\n";
pub(crate) const VERSION: u16 = 1;
pub(crate) const HEADER_LEN: usize = 64;

/// Entries smaller than this are read with one `read` into a buffer on the stack.
const SMALL: usize = 4096;

/// Entries up to this size are read into memory; larger ones are mapped. Mapping costs two
/// system calls and page-table work that only pays off for large files.
const MAP_FROM: u64 = 1 << 20;

/// What the header of an entry says.
// Read back by tests today and by the cache report and `ls` later.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Compression codec of the payload (0 = none).
    pub codec: u8,
    /// `std::any::type_name` of the stored value.
    pub type_name: String,
    /// Length of the metadata section.
    pub meta_len: u32,
    /// Payload length as stored.
    pub payload_len: u64,
    /// Payload length once decompressed.
    pub raw_len: u64,
    /// How long the value took to compute.
    pub compute: Duration,
    /// When the entry was written.
    pub created: SystemTime,
}

/// Serializes `value` with its header into one buffer, ready to be written.
pub(crate) fn encode<T: ?Sized + Serialize>(
    value: &T,
    type_name: &str,
    compute: Duration,
    compression: Compression,
) -> Result<Vec<u8>, ErrorKind> {
    let (type_name, name_len) = stored_type_name(type_name)?;
    let name = type_name.as_bytes();
    let mut buf = Vec::with_capacity(HEADER_LEN + name.len() + 64);
    buf.extend_from_slice(&[0; HEADER_LEN]);
    buf.extend_from_slice(name);
    let body = buf.len();
    let encode_err = |e: postcard::Error| ErrorKind::Encode(e.to_string());
    let mut buf = match compression {
        // Uncompressed, the payload is serialized straight after the header: no copy.
        Compression::None => postcard::to_extend(value, buf).map_err(encode_err)?,
        Compression::Lz4 | Compression::Zstd(_) => {
            let raw = postcard::to_allocvec(value).map_err(encode_err)?;
            buf[40..48].copy_from_slice(&(raw.len() as u64).to_le_bytes());
            match compression {
                Compression::Zstd(level) => {
                    let packed = zstd::bulk::compress(&raw, level)
                        .map_err(|e| ErrorKind::Encode(format!("zstd: {e}")))?;
                    buf.extend_from_slice(&packed);
                }
                _ => buf.extend_from_slice(&lz4_flex::block::compress(&raw)),
            }
            buf
        }
    };
    let payload_len = (buf.len() - body) as u64;
    let raw_len = match compression {
        Compression::None => payload_len,
        _ => u64_at(&buf, 40),
    };
    let header = header(
        name_len,
        payload_len,
        raw_len,
        compression,
        compute,
        &buf[HEADER_LEN..],
    );
    buf[..HEADER_LEN].copy_from_slice(&header);
    Ok(buf)
}

/// The 64-byte header of an entry, checksum included, for its body (type name, metadata,
/// payload).
fn header(
    name_len: u16,
    payload_len: u64,
    raw_len: u64,
    compression: Compression,
    compute: Duration,
    body: &[u8],
) -> [u8; HEADER_LEN] {
    header_with_hash(
        name_len,
        payload_len,
        raw_len,
        compression,
        compute,
        xxh3_64(body),
    )
}

/// As [`header`], from the hash of the body (a streaming writer has no body in memory).
fn header_with_hash(
    name_len: u16,
    payload_len: u64,
    raw_len: u64,
    compression: Compression,
    compute: Duration,
    body_hash: u64,
) -> [u8; HEADER_LEN] {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[16..18].copy_from_slice(&VERSION.to_le_bytes());
    h[18..20].copy_from_slice(&u16::from(compression.codec()).to_le_bytes());
    h[20..22].copy_from_slice(&name_len.to_le_bytes());
    h[32..40].copy_from_slice(&payload_len.to_le_bytes());
    h[40..48].copy_from_slice(&raw_len.to_le_bytes());
    h[48..56].copy_from_slice(&(compute.as_nanos().min(u64::MAX as u128) as u64).to_le_bytes());
    h[56..64].copy_from_slice(&created.to_le_bytes());
    let sum = checksum(&h[16..HEADER_LEN], body_hash);
    h[8..16].copy_from_slice(&sum.to_le_bytes());
    h
}

/// The checksum of an entry, from its header fields (bytes 16..64) and the hash of its body.
fn checksum(fields: &[u8], body_hash: u64) -> u64 {
    let mut both = [0u8; 16];
    both[..8].copy_from_slice(&xxh3_64(fields).to_le_bytes());
    both[8..].copy_from_slice(&body_hash.to_le_bytes());
    xxh3_64(&both)
}

/// Serializes `value` uncompressed straight into a new entry file at `path`, hashing the body
/// as it goes: no buffer the size of the value, and one pass over it. The header is written
/// last, over a placeholder, once the lengths are known; the file is renamed into place only
/// then, so readers never see it unfinished.
pub(crate) fn write_streaming<T: ?Sized + Serialize>(
    path: &Path,
    value: &T,
    type_name: &str,
    compute: Duration,
    create_dirs: bool,
) -> Result<u64, ErrorKind> {
    let (type_name, name_len) = stored_type_name(type_name)?;
    let name = type_name.as_bytes();
    let mut tmp = temp_for(path, create_dirs).map_err(ErrorKind::from_io)?;
    let io = |e: io::Error| ErrorKind::Io(e);
    tmp.write_all(&[0; HEADER_LEN]).map_err(io)?;
    let mut out = io::BufWriter::with_capacity(
        256 * 1024,
        HashingWriter {
            inner: tmp.as_file_mut(),
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            written: 0,
        },
    );
    out.write_all(name).map_err(io)?;
    postcard::to_io(value, &mut out).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => ErrorKind::Io(io::Error::other("write failed")),
        e => ErrorKind::Encode(e.to_string()),
    })?;
    let body = out
        .into_inner()
        .map_err(|e| ErrorKind::Io(e.into_error()))?;
    let payload_len = body.written - name.len() as u64;
    let body_hash = body.hasher.digest();

    let h = header_with_hash(
        name_len,
        payload_len,
        payload_len,
        Compression::None,
        compute,
        body_hash,
    );
    use std::io::{Seek, SeekFrom};
    let file = tmp.as_file_mut();
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&h).map_err(io)?;
    tmp.persist(path).map_err(|e| ErrorKind::Io(e.error))?;
    Ok(HEADER_LEN as u64 + name.len() as u64 + payload_len)
}

/// Passes writes through, hashing and counting them.
struct HashingWriter<W> {
    inner: W,
    hasher: xxhash_rust::xxh3::Xxh3,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The type name as stored, and its length as the header records it.
fn stored_type_name(type_name: &str) -> Result<(std::borrow::Cow<'_, str>, u16), ErrorKind> {
    let name = canonical_type_name(type_name);
    let len =
        u16::try_from(name.len()).map_err(|_| ErrorKind::Encode("type name too long".into()))?;
    Ok((name, len))
}

/// The stored form of a type's name: a reference, a slice and a `str` are stored as what they
/// are read back as (the value, a `Vec`, a `String`), since serde encodes them alike.
pub(crate) fn canonical_type_name(name: &str) -> std::borrow::Cow<'_, str> {
    let name = name.trim_start_matches("&mut ").trim_start_matches('&');
    if name == "str" {
        "alloc::string::String".into()
    } else if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        if inner.contains(';') {
            name.into() // an array `[T; N]` is its own type
        } else {
            format!("alloc::vec::Vec<{inner}>").into()
        }
    } else {
        name.into()
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

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder, then renamed
/// over `path`, so that readers in any thread or process see the old entry or the new one,
/// never a part of one. The folder is created if missing and `create_dirs` is set.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], create_dirs: bool) -> io::Result<()> {
    let mut tmp = temp_for(path, create_dirs)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary file in the folder of `path`, which is created if missing and `create_dirs` is
/// set. Dropped without being persisted, it is removed.
fn temp_for(path: &Path, create_dirs: bool) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match temp_in(dir) {
        Err(e) if create_dirs && e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
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

/// Reads the whole entry file at `path` and hands its bytes to `f`: small files from a stack
/// buffer, mid-sized ones from one heap buffer, large ones from a memory map.
pub(crate) fn with_bytes<R>(
    path: &Path,
    f: impl FnOnce(&[u8]) -> Result<R, ErrorKind>,
) -> Result<R, ErrorKind> {
    let mut file = File::open(path).map_err(ErrorKind::from_io)?;
    let mut small = [0u8; SMALL];
    let len = read_full(&mut file, &mut small)?;
    if len < SMALL {
        return f(&small[..len]);
    }
    let size = file.metadata().map_err(ErrorKind::from_io)?.len();
    if size > MAP_FROM {
        // SAFETY: entry files are never modified in place: writers create a new file and
        // rename it over the old path, so the inode mapped here keeps its contents while the
        // map lives. A process that writes into cache files by hand breaks this, as it would
        // for any mapped file.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
            .map_err(ErrorKind::from_io)?;
        return f(&map);
    }
    let mut all = Vec::with_capacity(size as usize + 1);
    all.extend_from_slice(&small);
    file.read_to_end(&mut all).map_err(ErrorKind::from_io)?;
    f(&all)
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
    /// The payload (postcard bytes).
    pub payload: &'a [u8],
    bytes: &'a [u8],
}

/// Parses and verifies an entry: magic, version, lengths and checksum. Never panics.
pub(crate) fn check(bytes: &[u8]) -> Result<Entry<'_>, ErrorKind> {
    let entry = parse(bytes)?;
    entry.verify()?;
    Ok(entry)
}

/// Parses an entry without verifying its checksum. Every length is checked against the file,
/// so any input, damaged or forged, gives an error or a view inside `bytes`, never a panic.
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
    if version != VERSION {
        return Err(ErrorKind::UnsupportedVersion(version));
    }
    let name_len = u16_at(bytes, 20) as u64;
    let meta_len = u32_at(bytes, 24) as u64;
    let payload_len = u64_at(bytes, 32);
    let expected = (HEADER_LEN as u64)
        .checked_add(name_len)
        .and_then(|n| n.checked_add(meta_len))
        .and_then(|n| n.checked_add(payload_len));
    match expected {
        Some(n) if n == bytes.len() as u64 => {}
        Some(n) if n > bytes.len() as u64 => return Err(ErrorKind::Truncated),
        _ => {
            return Err(ErrorKind::Corrupt(
                "lengths in the header do not match the file",
            ));
        }
    }
    let name_end = HEADER_LEN + name_len as usize;
    let type_name = std::str::from_utf8(&bytes[HEADER_LEN..name_end]);
    let flags = u16_at(bytes, 18);
    let entry = Entry {
        type_name: type_name.unwrap_or(""),
        payload: &bytes[name_end + meta_len as usize..],
        bytes,
    };
    if type_name.is_err() || flags > 2 {
        // Say "checksum mismatch" when that is the cause: it is the likelier one.
        entry.verify()?;
        return Err(ErrorKind::Corrupt(if flags > 2 {
            "unknown flags or compression codec"
        } else {
            "type name is not UTF-8"
        }));
    }
    Ok(entry)
}

impl Entry<'_> {
    fn stored_checksum(&self) -> u64 {
        u64_at(self.bytes, 8)
    }

    /// Verifies the checksum over the whole entry.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] when it does not match.
    pub fn verify(&self) -> Result<(), ErrorKind> {
        let body_hash = xxh3_64(&self.bytes[HEADER_LEN..]);
        if checksum(&self.bytes[16..HEADER_LEN], body_hash) == self.stored_checksum() {
            Ok(())
        } else {
            Err(ErrorKind::Corrupt("checksum mismatch"))
        }
    }

    /// The header, for reports.
    #[allow(dead_code)]
    pub(crate) fn header(&self) -> Header {
        let b = self.bytes;
        Header {
            codec: (u16_at(b, 18) & 0xF) as u8,
            type_name: self.type_name.to_owned(),
            meta_len: u32_at(b, 24),
            payload_len: u64_at(b, 32),
            raw_len: u64_at(b, 40),
            compute: Duration::from_nanos(u64_at(b, 48)),
            created: UNIX_EPOCH + Duration::from_millis(u64_at(b, 56)),
        }
    }

    /// Fails unless the entry was written as a `T`.
    pub(crate) fn expect_type<T: ?Sized>(&self) -> Result<(), ErrorKind> {
        let expected = std::any::type_name::<T>();
        if self.type_name == canonical_type_name(expected) {
            Ok(())
        } else {
            Err(ErrorKind::WrongType {
                expected,
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
        match u16_at(self.bytes, 18) {
            0 => Ok(std::borrow::Cow::Borrowed(self.payload)),
            1 => {
                let stored = self.payload.len() as u64;
                if raw_len > stored.saturating_mul(LZ4_MAX_RATIO) + 16 {
                    return Err(bad());
                }
                let mut out = vec![0; usize::try_from(raw_len).map_err(|_| bad())?];
                match lz4_flex::block::decompress_into(self.payload, &mut out) {
                    Ok(n) if n == out.len() => Ok(std::borrow::Cow::Owned(out)),
                    _ => Err(bad()),
                }
            }
            _ => {
                // Streamed into a buffer that grows with what the data really holds, stopping
                // one byte past the recorded size.
                let hint = raw_len.min(self.payload.len() as u64 * 8) as usize;
                let mut out = Vec::with_capacity(hint);
                let decoder =
                    zstd::stream::read::Decoder::with_buffer(self.payload).map_err(|_| bad())?;
                decoder
                    .take(raw_len.saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|_| bad())?;
                if out.len() as u64 == raw_len {
                    Ok(std::borrow::Cow::Owned(out))
                } else {
                    Err(bad())
                }
            }
        }
    }

    /// Decodes the entry as `T`, which must be the type it was written as. The decoder
    /// verifies the checksum.
    pub(crate) fn decode_with<T>(&self, decode: DecodeFn<T>) -> Result<T, ErrorKind> {
        if let Err(wrong) = self.expect_type::<T>() {
            // A damaged type name is damage, not another type.
            self.verify()?;
            return Err(wrong);
        }
        decode(self)
    }
}

/// Reads, checks and decodes the entry at `path`.
pub(crate) fn load<T>(path: &Path, decode: DecodeFn<T>) -> Result<T, Error> {
    with_bytes(path, |bytes| parse(bytes)?.decode_with(decode))
        .map_err(|kind| Error::new(path, kind))
}

/// Whether `path` holds a valid entry of type `T`, without decoding it.
pub(crate) fn probe<T>(path: &Path) -> Result<(), Error> {
    with_bytes(path, |bytes| check(bytes)?.expect_type::<T>())
        .map_err(|kind| Error::new(path, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::serde_decode;

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
        assert_eq!(c.decode_with(serde_decode::<Vec<f64>>).unwrap(), v);
        let h = c.header();
        assert_eq!(h.type_name, "alloc::vec::Vec<f64>");
        assert_eq!(h.compute, Duration::from_millis(3));
        assert_eq!(h.payload_len as usize, c.payload.len());
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
            assert!(check(&b).is_err(), "flipped bit {bit} accepted");
        }
    }

    #[test]
    fn wrong_type_is_named() {
        let bytes = entry(&vec![1.0f64]);
        let err = check(&bytes)
            .unwrap()
            .decode_with(serde_decode::<Vec<u32>>)
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

    #[test]
    fn garbage_and_future_versions_are_refused() {
        assert!(matches!(check(&[0u8; 100]), Err(ErrorKind::NotAnEntry)));
        let mut b = entry(&1u8);
        b[16] = 9;
        assert!(matches!(check(&b), Err(ErrorKind::UnsupportedVersion(9))));
    }
}
