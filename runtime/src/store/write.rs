//! Writing an entry: its body streamed out in chunks, hashed as it goes, its header last, into
//! a temporary file renamed over the entry's path once complete.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::xxh3::{Xxh3, xxh3_64};
use serde::Serialize;

use super::aside::{HASH_ASIDE_FROM, core_free, join, spawn_scoped};
use super::compress::{self, Compression};
use super::format::{
    Fields, HEADER_LEN, MAX_ARGS, ROW, SECTION_ALIGN, canonical_type_name, gap_for,
};
use super::nesting;
use super::temp::Temp;
use crate::array::{Section, Sink};
use crate::error::ErrorKind;

mod bulk;

/// The writer hands the file chunks of this size, hashing each while it is still in cache.
const CHUNK: usize = 256 * 1024;

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

/// Writes `value` as an entry file at `path`, atomically (see [`replace`]). Returns the
/// file's length.
pub(crate) fn write<T: ?Sized + Serialize>(
    path: &Path,
    value: &T,
    meta: &Meta,
    compression: Compression,
    create_dirs: bool,
) -> Result<u64, ErrorKind> {
    replace(path, create_dirs, |file| {
        entry(file, value, meta, compression)
    })
}

/// Makes the file at `path` with `write`, atomically: into a temporary file in the same
/// folder, renamed over `path` once complete, so that readers in any thread or process see the
/// old file or the new one, never a part of one. A file already at `path` keeps its
/// permissions: a file made private stays private. The folder is created if missing and
/// `create_dirs` is set. Returns what `write` does, the file's length.
pub(crate) fn replace(
    path: &Path,
    create_dirs: bool,
    write: impl FnOnce(&mut File) -> Result<u64, ErrorKind>,
) -> Result<u64, ErrorKind> {
    let mut temp = Temp::new(path, create_dirs).map_err(ErrorKind::from_io)?;
    if let Some(permissions) = permissions_of(path) {
        temp.file_mut()
            .set_permissions(permissions)
            .map_err(ErrorKind::from_io)?;
    }
    let len = write(temp.file_mut())?;
    temp.rename_over(path).map_err(ErrorKind::from_io)?;
    Ok(len)
}

/// The permissions of the regular file at `path`, if there is one, to give the file that
/// replaces it: the bits for its owner, group and others, never more.
fn permissions_of(path: &Path) -> Option<std::fs::Permissions> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::Permissions::from_mode(
            meta.permissions().mode() & 0o777,
        ))
    }
    #[cfg(not(unix))]
    Some(meta.permissions())
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
    entry(&mut out, value, &meta, compression)?;
    Ok(out.into_inner())
}

/// Serializes an entry into `out`, which must be empty; returns its length. A small entry is
/// assembled in memory and written with one call; a large one streams out in chunks, hashed
/// as they go, and its header is written last, over a placeholder, once the lengths are known.
pub(crate) fn entry<W: Out, T: ?Sized + Serialize>(
    out: W,
    value: &T,
    meta: &Meta,
    compression: Compression,
) -> Result<u64, ErrorKind> {
    let (type_name, name_len) = stored_type_name(meta.type_name)?;
    let args = truncate(meta.args, MAX_ARGS);
    if compression == Compression::None
        && let Some((count, bytes)) = bulk::numbers(value)
        && bytes.len() >= CHUNK
    {
        let fields = Fields {
            name_len,
            args_len: args.len() as u16,
            table_len: 0,
            payload_len: 0,
            raw_len: 0,
            compression: compression.id(),
            gap: 0,
            compute: meta.compute,
        };
        let head = [type_name.as_bytes(), args.as_bytes()];
        return numbers_entry(out, fields, head, count, bytes).map_err(ErrorKind::Io);
    }
    let keeps_sections = out.holds_sections();
    let mut body = Body::new(out);
    body.extend(type_name.as_bytes()).map_err(ErrorKind::Io)?;
    body.extend(args.as_bytes()).map_err(ErrorKind::Io)?;
    let start = body.len();
    let (raw_len, sections) = if compression == Compression::None {
        let sink = if keeps_sections {
            Sink::open()
        } else {
            Sink::refusing()
        };
        if let Err(e) = nesting::serialize(value, &mut body) {
            if sink.refused() {
                // Told as `out` tells bytes it has no room for.
                return Err(ErrorKind::Io(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    crate::array::REFUSED,
                )));
            }
            // A failed write is the cause, if there was one.
            return Err(body.error.take().map_or(e, ErrorKind::Io));
        }
        (body.len() - start, sink.finish())
    } else {
        (
            compress::serialize(value, compression, &mut body)?,
            Vec::new(),
        )
    };
    let fields = Fields {
        name_len,
        args_len: args.len() as u16,
        table_len: u32::try_from(sections.len() * ROW)
            .map_err(|_| ErrorKind::Encode("too many arrays".into()))?,
        payload_len: body.len() - start,
        raw_len,
        compression: compression.id(),
        gap: 0,
        compute: meta.compute,
    };
    body.finish(&fields, &sections).map_err(ErrorKind::Io)
}

/// Writes the entry of a value whose payload is `count` numbers, `bytes` (see
/// [`bulk::numbers`]), after the type name and arguments in `head`: the payload as postcard
/// would write it, its length then its bytes, but sent to the file in one call while a second
/// thread hashes them (when a core is free, see [`core_free`]), into a file whose blocks are
/// allocated first (on Linux, `fallocate`, as `np.save` does: writing 80 MB into blocks
/// already allocated measured a third faster). The gap before the payload puts the numbers at
/// their memory's offset modulo 64 (see [`format`](super::format)). `fields` gives all but the
/// payload's lengths and the gap.
fn numbers_entry<W: Out>(
    mut out: W,
    mut fields: Fields,
    head: [&[u8]; 2],
    count: usize,
    bytes: &[u8],
) -> io::Result<u64> {
    let mut varint = [0u8; 10];
    let length =
        postcard::to_slice(&count, &mut varint).map_err(|e| io::Error::other(e.to_string()))?;
    let args_end = HEADER_LEN + head[0].len() + head[1].len();
    fields.gap = gap_for(args_end + length.len(), bytes.as_ptr() as usize);
    let gap = usize::from(fields.gap);
    let mut start = Vec::with_capacity(args_end + gap + length.len());
    start.resize(HEADER_LEN, 0);
    head.iter().for_each(|part| start.extend_from_slice(part));
    start.resize(args_end + gap, 0);
    let payload_at = start.len();
    start.extend_from_slice(length);
    fields.payload_len = (start.len() - payload_at + bytes.len()) as u64;
    fields.raw_len = fields.payload_len;
    let len = (start.len() + bytes.len()) as u64;
    out.reserve(len);
    let mut hasher = Xxh3::new();
    hasher.update(&start[HEADER_LEN..]);
    let digest = std::thread::scope(|scope| -> io::Result<u64> {
        let mut here = hasher.clone();
        let aside = (bytes.len() >= HASH_ASIDE_FROM && core_free())
            .then(|| {
                spawn_scoped(scope, move || {
                    hasher.update(bytes);
                    hasher.digest()
                })
            })
            .flatten();
        out.write_all(&start)?;
        out.write_all(bytes)?;
        Ok(aside.map_or_else(
            || {
                here.update(bytes);
                here.digest()
            },
            join,
        ))
    })?;
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&fields.header(digest))?;
    Ok(len)
}

/// Where an entry is written: a file, or memory.
pub(crate) trait Out: Write + Seek {
    /// Told the entry's length, when it is known before it is written, to make room for it.
    /// Only a hint: a failure shows when the bytes are written.
    fn reserve(&mut self, len: u64) {
        let _ = len;
    }

    /// Whether the entry may have sections (arrays, frames); when not, a value that would be
    /// one fails the entry with [`io::ErrorKind::FileTooLarge`], as bytes past the end of an
    /// output that has no room for them would, and before it is encoded.
    fn holds_sections(&self) -> bool {
        true
    }
}

impl Out for &mut File {
    fn reserve(&mut self, len: u64) {
        #[cfg(target_os = "linux")]
        if let Ok(len) = libc::off_t::try_from(len) {
            use std::os::fd::AsRawFd;
            // Blocks only, not the size (`KEEP_SIZE`): the file is what is written, whatever
            // the hint said.
            // SAFETY: a system call on a descriptor `self` holds open; it changes the file's
            // allocation, never memory.
            let keep = libc::FALLOC_FL_KEEP_SIZE;
            unsafe { libc::fallocate(self.as_raw_fd(), keep, 0, len) };
        }
        #[cfg(not(target_os = "linux"))]
        let _ = len;
    }
}

impl Out for &mut io::Cursor<Vec<u8>> {}

/// The type name as stored, and its length as the header records it.
fn stored_type_name(type_name: &str) -> Result<(std::borrow::Cow<'_, str>, u16), ErrorKind> {
    let name = canonical_type_name(type_name);
    let len =
        u16::try_from(name.len()).map_err(|_| ErrorKind::Encode("type name too long".into()))?;
    Ok((name, len))
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
        let large =
            sections.iter().map(|s| s.len()).sum::<usize>() >= HASH_ASIDE_FROM && core_free();
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
