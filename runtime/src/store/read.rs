//! Reading an entry file: its first bytes, then the whole of it through a small buffer, a
//! heap buffer or a memory map, whichever its size and contents call for; or, for a large
//! vector of numbers, its payload straight into the value's memory.
//!
//! Whatever is at an entry's path is opened without blocking, and read only if it is a regular
//! file: a FIFO would block the reader, a device (`/dev/zero`) never ends. What is read is
//! bounded by the file's size, and the rest of the file by its header: a file that is not an
//! entry, or claims more than it holds, is refused after its first bytes.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::xxh3::Xxh3;

use super::direct::{init_from, read_hashing};
use super::format::{
    self, HEADER_LEN, Header, MAGIC, OLDEST_READ, UNCOMPRESSED, VERSION, canonical_type_name,
    checksum_holds, has_arrays, known_compression, payload_start,
};
use crate::error::ErrorKind;
use crate::huge_pages::try_vec_with_capacity;

/// Entries smaller than this are read with one `read` into a buffer on the stack.
const SMALL: usize = 4096;

/// Entries up to this size are read into memory; larger ones are mapped. Mapping costs two
/// system calls and page-table work that only pays off for large files.
const MAP_FROM: u64 = 1 << 20;

/// Files from this size on are read straight into the value when its type allows: the read
/// is then the one pass over the value's memory, the checksum verified beside it.
const DIRECT_FROM: u64 = 2 << 20;
// A file a direct read may have read from is always mapped afterwards, never read on from
// where the head ended (see `Opened::bytes`).
const _: () = assert!(DIRECT_FROM > MAP_FROM);

/// Opens the file at `path` for reading, and writing too if `write`, without waiting: opening
/// a FIFO for reading would wait for a writer. With `no_atime`, on Linux, without recording an
/// access, which would make every entry look just used to tools that go by access times.
pub(crate) fn open_file(path: &Path, write: bool, no_atime: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(write);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        #[cfg(target_os = "linux")]
        if no_atime {
            // Refused (EPERM) on files of another user: then opened as usual.
            let quiet = options
                .clone()
                .custom_flags(libc::O_NONBLOCK | libc::O_NOATIME)
                .open(path);
            if let Ok(file) = quiet {
                return Ok(file);
            }
        }
        options.custom_flags(libc::O_NONBLOCK);
    }
    let _ = no_atime;
    options.open(path)
}

/// What `fstat` says of an open file, if it is a regular one: anything else (a folder, a FIFO,
/// a socket, a device) is [`ErrorKind::NotAFile`], and is never read.
fn regular(file: &File) -> Result<Metadata, ErrorKind> {
    let meta = file.metadata().map_err(ErrorKind::from_io)?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(ErrorKind::NotAFile)
    }
}

/// The header of the entry file at `path`, for a report: one read of its first bytes, without
/// recording an access (see [`open_file`]).
pub(crate) fn read_header(path: &Path) -> Option<Header> {
    let mut file = open_file(path, false, true).ok()?;
    let size = regular(&file).ok()?.len();
    let mut head = [0u8; SMALL];
    let want = usize::try_from(size).map_or(SMALL, |size| size.min(SMALL));
    let len = read_full(&mut file, &mut head[..want]).ok()?;
    Header::read(&head[..len])
}

/// The whole of the small regular file at `path` (a settings file), read without blocking;
/// `None` when it holds more than `max` bytes.
pub(crate) fn read_small(path: &Path, max: u64) -> Result<Option<Vec<u8>>, ErrorKind> {
    let file = open_file(path, false, false).map_err(ErrorKind::from_io)?;
    if regular(&file)?.len() > max {
        return Ok(None);
    }
    let mut all = Vec::new();
    // Bounded again while reading: the file may grow meanwhile.
    let read = file.take(max + 1).read_to_end(&mut all);
    read.map_err(ErrorKind::from_io)?;
    Ok((all.len() as u64 <= max).then_some(all))
}

/// Where the body of an entry whose header is at the start of `head` ends, from the lengths
/// its header gives, checked against the size of its file: `size` bytes, of which `head` holds
/// the first (all of them, if fewer than a header). Reads the header alone, so that a file that
/// is no entry, or one that claims more than it holds, is refused before the rest is read.
pub(crate) fn body_end(head: &[u8], size: u64) -> Result<u64, ErrorKind> {
    if size == 0 {
        return Err(ErrorKind::Truncated);
    }
    if head.len() < HEADER_LEN {
        return Err(if MAGIC.starts_with(head) || head.starts_with(&MAGIC) {
            ErrorKind::Truncated
        } else {
            ErrorKind::NotAnEntry
        });
    }
    if head[0..8] != MAGIC {
        return Err(ErrorKind::NotAnEntry);
    }
    let version = format::version(head);
    if !(OLDEST_READ..=VERSION).contains(&version) {
        return Err(ErrorKind::UnsupportedVersion(version));
    }
    let body_end = (payload_start(head) as u64)
        .checked_add(format::payload_len(head))
        .and_then(|n| n.checked_add(u64::from(format::table_len(head))))
        .ok_or(ErrorKind::Corrupt("lengths in the header overflow"))?;
    if body_end > size {
        return Err(ErrorKind::Truncated);
    }
    Ok(body_end)
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

/// What a stored entry's header and file say.
pub(crate) struct Stored {
    pub header: Header,
    pub size: u64,
    pub last_used: SystemTime,
}

/// An entry file open, with its first bytes read.
pub(crate) struct Opened {
    file: File,
    head: [u8; SMALL],
    len: usize,
    /// The file's size, as `fstat` gave it when it was opened.
    size: u64,
    /// When it was last modified, as `fstat` gave it, where the system says.
    modified: Option<SystemTime>,
    /// Opened for writing too, to count hits.
    pub(crate) writable: bool,
}

impl Opened {
    /// Opens the entry file at `path`, for writing too if `writable`, and reads its first
    /// bytes. [`ErrorKind::NotAFile`] for anything but a regular file.
    pub(crate) fn open(path: &Path, writable: bool) -> Result<Self, ErrorKind> {
        let mut file = open_file(path, writable, false).map_err(ErrorKind::from_io)?;
        // The size first: the head is read in one call then, where a file smaller than it
        // would take a second call to find its end.
        let meta = regular(&file)?;
        let size = meta.len();
        let mut head = [0u8; SMALL];
        let want = usize::try_from(size).map_or(SMALL, |size| size.min(SMALL));
        let len = read_full(&mut file, &mut head[..want])?;
        Ok(Opened {
            file,
            head,
            len,
            size,
            modified: meta.modified().ok(),
            writable,
        })
    }

    /// The file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The first bytes of the file, all of it when it is small.
    pub(crate) fn head(&self) -> &[u8] {
        &self.head[..self.len]
    }

    /// Whether [`Opened::head`] holds the whole file.
    pub(crate) fn is_whole(&self) -> bool {
        self.len as u64 == self.size
    }

    /// What the header says, the file's size and its last use (a hit marks the file), for a
    /// check made before the value is decoded.
    pub(crate) fn stored(&self) -> Result<Stored, ErrorKind> {
        let header = Header::read(self.head()).ok_or(ErrorKind::NotAnEntry)?;
        let last_used = self
            .modified
            .ok_or_else(|| ErrorKind::Io(io::ErrorKind::Unsupported.into()))?;
        Ok(Stored {
            header,
            size: self.size,
            last_used,
        })
    }

    fn has_arrays(&self) -> bool {
        has_arrays(self.head())
    }

    /// The whole file, once its header says that it is an entry that fills it.
    pub(crate) fn bytes(&mut self) -> Result<Bytes<'_>, ErrorKind> {
        let has_arrays = self.has_arrays();
        if self.len < SMALL && !has_arrays {
            return Ok(Bytes::Small(&self.head[..self.len]));
        }
        // Nothing is mapped, populated or allocated for a file that its first bytes show to be
        // no entry, or an entry of another size: a large file would cost seconds to read.
        let body_end = body_end(self.head(), self.size)?;
        if !has_arrays && body_end != self.size {
            return Err(ErrorKind::Corrupt(
                "lengths in the header do not match the file",
            ));
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
            if map.len() as u64 != self.size {
                return Err(ErrorKind::Corrupt(
                    "the file changed size while it was read",
                ));
            }
            return Ok(Bytes::Mapped(Arc::new(map)));
        }
        // A direct read (`read_payload`) never gets this far: it takes only files that are
        // mapped above, so the file is still where the head ends. Read no more than the size
        // the header was checked against, even if the file has grown since.
        let size = self.size as usize;
        let mut all = Vec::new();
        all.try_reserve_exact(size)
            .map_err(|_| ErrorKind::Io(io::ErrorKind::OutOfMemory.into()))?;
        all.extend_from_slice(&self.head[..self.len]);
        let rest = (size - self.len) as u64;
        (&self.file)
            .take(rest)
            .read_to_end(&mut all)
            .map_err(ErrorKind::from_io)?;
        if all.len() != size {
            return Err(ErrorKind::Truncated);
        }
        Ok(Bytes::Heap(all))
    }

    /// For a large (see [`DIRECT_FROM`]), uncompressed entry of a `V` without arrays, that
    /// serializes as a length and the bytes of `N`s: `counted` reads the start of the payload
    /// (given with the payload's length) and says how many bytes the length takes and how many
    /// numbers follow. The numbers are read straight into a new vector, uninitialized until the
    /// read fills it, and the checksum verified on the way (see [`read_hashing`]): one pass
    /// over the value's memory, no map, no copy. `None` when the file is anything else or fails
    /// to verify; the general path then reports why.
    pub(crate) fn read_numbers<V, N: bytemuck::Pod>(
        &mut self,
        counted: impl FnOnce(&[u8], usize) -> Option<(usize, usize)>,
    ) -> Option<Result<Vec<N>, ErrorKind>> {
        let head = &self.head[..self.len];
        if self.len < SMALL || self.has_arrays() || known_compression(head) != Some(UNCOMPRESSED) {
            return None;
        }
        let name_end = HEADER_LEN + format::name_len(head) as usize;
        let payload_at = payload_start(head);
        let payload_len = format::payload_len(head);
        let end = (payload_at as u64).checked_add(payload_len);
        if self.size < DIRECT_FROM || payload_at >= self.len || end != Some(self.size) {
            return None;
        }
        let name = std::str::from_utf8(&head[HEADER_LEN..name_end]).ok()?;
        if name != canonical_type_name(std::any::type_name::<V>()) {
            return None;
        }
        let in_head = &head[payload_at..];
        // Checked before allocating: the header is not verified yet, but the file's size is
        // known to hold the payload it gives.
        let (skip, count) = counted(in_head, usize::try_from(payload_len).ok()?)?;
        if skip > in_head.len() {
            return None;
        }
        let Some(mut numbers) = try_vec_with_capacity::<N>(count) else {
            return Some(Err(ErrorKind::out_of_memory(count * size_of::<N>())));
        };
        let spare = numbers.spare_capacity_mut();
        let bytes = std::mem::size_of_val(spare);
        // SAFETY: the same memory, seen as bytes: `MaybeUninit<u8>` has no invalid values and
        // an alignment of 1, and `bytes` is the size of `spare`.
        let dest: &mut [MaybeUninit<u8>] =
            unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), bytes) };
        let dest = &mut dest[..count * size_of::<N>()];
        let mut hasher = Xxh3::new();
        hasher.update(&head[HEADER_LEN..payload_at + skip]);
        let from_head = (in_head.len() - skip).min(dest.len());
        let (first, rest) = dest.split_at_mut(from_head);
        let first = init_from(first, &in_head[skip..skip + from_head]);
        hasher.update(first);
        let digest = read_hashing(&self.file, self.len as u64, rest, hasher).ok()?;
        if !checksum_holds(head, digest) {
            return None;
        }
        // SAFETY: every byte of the first `count` numbers was written above, and any bytes
        // are a valid `N` (`Pod`).
        unsafe { numbers.set_len(count) };
        Some(Ok(numbers))
    }
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
