//! The entry file: one value in a checksummed container, written atomically, read back through
//! a small buffer or a memory map.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"\x89JBL\r\n\x1a\n"
//!      8     8  checksum: xxh3-64 of every byte from offset 16 to the end of the file
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
//! `fsync`: an entry lost in a crash is only a miss.

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
) -> Result<Vec<u8>, ErrorKind> {
    let name = type_name.as_bytes();
    let name_len =
        u16::try_from(name.len()).map_err(|_| ErrorKind::Encode("type name too long".into()))?;
    let mut buf = Vec::with_capacity(HEADER_LEN + name.len() + 64);
    buf.extend_from_slice(&[0; HEADER_LEN]);
    buf.extend_from_slice(name);
    let body = buf.len();
    let mut buf = postcard::to_extend(value, buf).map_err(|e| ErrorKind::Encode(e.to_string()))?;
    let payload_len = (buf.len() - body) as u64;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);

    let h = &mut buf[..HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[16..18].copy_from_slice(&VERSION.to_le_bytes());
    h[18..20].copy_from_slice(&0u16.to_le_bytes());
    h[20..22].copy_from_slice(&name_len.to_le_bytes());
    h[24..28].copy_from_slice(&0u32.to_le_bytes());
    h[32..40].copy_from_slice(&payload_len.to_le_bytes());
    h[40..48].copy_from_slice(&payload_len.to_le_bytes());
    h[48..56].copy_from_slice(&(compute.as_nanos().min(u64::MAX as u128) as u64).to_le_bytes());
    h[56..64].copy_from_slice(&created.to_le_bytes());
    let sum = xxh3_64(&buf[16..]);
    buf[8..16].copy_from_slice(&sum.to_le_bytes());
    Ok(buf)
}

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder, then renamed
/// over `path`, so that readers in any thread or process see the old entry or the new one,
/// never a part of one. The folder is created if missing.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = match temp_in(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            temp_in(dir)?
        }
        other => other?,
    };
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
        return Err(if MAGIC.starts_with(bytes) {
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
    if type_name.is_err() || flags != 0 {
        // Say "checksum mismatch" when that is the cause: it is the likelier one.
        entry.verify()?;
        return Err(ErrorKind::Corrupt(if flags != 0 {
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
        if xxh3_64(&self.bytes[16..]) == self.stored_checksum() {
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
        if self.type_name == expected {
            Ok(())
        } else {
            Err(ErrorKind::WrongType {
                expected,
                found: self.type_name.to_owned(),
            })
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
        encode(v, std::any::type_name::<T>(), Duration::from_millis(3)).unwrap()
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
    fn garbage_and_future_versions_are_refused() {
        assert!(matches!(check(&[0u8; 100]), Err(ErrorKind::NotAnEntry)));
        let mut b = entry(&1u8);
        b[16] = 9;
        assert!(matches!(check(&b), Err(ErrorKind::UnsupportedVersion(9))));
    }
}
