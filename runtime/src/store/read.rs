//! Reading an entry file: its first bytes, then the whole of it through a small buffer, a
//! heap buffer or a memory map, whichever its size and contents call for; or, for a large
//! vector of numbers, its payload straight into the value's memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use xxhash_rust::xxh3::Xxh3;

use super::aside::{HASH_ASIDE_FROM, join, spawn_scoped};
use super::format::{
    self, HEADER_LEN, Header, UNCOMPRESSED, canonical_type_name, checksum_holds, has_arrays,
    known_compression, payload_start,
};
use crate::error::ErrorKind;

/// Entries smaller than this are read with one `read` into a buffer on the stack.
const SMALL: usize = 4096;

/// Entries up to this size are read into memory; larger ones are mapped. Mapping costs two
/// system calls and page-table work that only pays off for large files.
const MAP_FROM: u64 = 1 << 20;

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
    /// The file's size: the head's length when it holds the whole file, else asked once.
    size: u64,
    /// Opened for writing too, to count hits.
    pub(crate) writable: bool,
}

impl Opened {
    pub(crate) fn open(path: &Path) -> Result<Self, ErrorKind> {
        Self::read_head(File::open(path).map_err(ErrorKind::from_io)?, false)
    }

    /// Reads the first bytes of `file`, opened for writing too if `writable`.
    pub(crate) fn read_head(mut file: File, writable: bool) -> Result<Self, ErrorKind> {
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
            .file
            .metadata()
            .and_then(|m| m.modified())
            .map_err(ErrorKind::from_io)?;
        Ok(Stored {
            header,
            size: self.size,
            last_used,
        })
    }

    fn has_arrays(&self) -> bool {
        has_arrays(self.head())
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

    /// For a large (see [`DIRECT_FROM`]), uncompressed entry of a `T` without arrays: `skip`
    /// reads the start of the payload (given with the payload's length) and makes the value,
    /// and the rest of the payload is read straight into the memory `fill` hands out,
    /// verifying the checksum on the way. This spares a map and a copy. `None` when the file
    /// is anything else or fails to verify; the general path then reports why.
    pub(crate) fn read_payload<T, R>(
        &mut self,
        skip: impl FnOnce(&[u8], u64) -> Option<(usize, R)>,
        fill: impl FnOnce(&mut R) -> &mut [u8],
    ) -> Option<R> {
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
        checksum_holds(head, digest).then_some(value)
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
