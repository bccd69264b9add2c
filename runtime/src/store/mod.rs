//! The storage layer: entries (their format, compression, writing, reading, decoding), the
//! hits counted in them, and where they are in a store; nothing of call sites, macros or
//! `Memory`. Everything above reaches entries through [`Store`].

mod aside;
mod compress;
mod decode;
mod direct;
mod entry;
mod folder;
pub(crate) mod format;
mod hits;
mod image;
mod layout;
mod nesting;
mod read;
#[cfg(feature = "remote")]
mod remote;
mod scan;
mod summary;
mod sums;
mod temp;
mod trailing;
mod unreachable;
mod write;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use compress::Compression;
pub use decode::{CacheOutput, Codec, Decoder, ViaBulk, ViaSerde};
pub(crate) use decode::{decoder_any, load};
pub use entry::Entry;
pub(crate) use image::{Image, created, decode_image, image, image_holds, stored_image};
pub(crate) use layout::{function_folder, version_folder};
pub use nesting::MAX_NESTING;
pub use summary::Summary;
pub(crate) use write::{Meta, truncate, write};

use crate::error::{Error, ErrorKind};
use crate::key::Key;
use read::Opened;
pub(crate) use read::{Stored, read_small};

/// Where an entry is in a store: the folders of its function and of its code's version (as
/// [`function_folder`] and [`version_folder`] name them), and the call's key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryId<'a> {
    pub function: &'a str,
    pub version: &'a str,
    pub key: Key,
}

/// One stored result, as its file and header describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The function's folder: its identity with `::` written `.` (`my_crate.stats.mean`).
    pub function: String,
    /// The folder of the version of the function's code that stored it.
    pub code_version: String,
    /// The call's key, in hexadecimal.
    pub key: String,
    /// The entry file.
    pub path: PathBuf,
    /// Bytes on disk.
    pub size: u64,
    /// The type of the stored value (`?` when the header cannot be read).
    pub type_name: String,
    /// How long the value took to compute.
    pub compute: Duration,
    /// When it was stored.
    pub created: SystemTime,
    /// When it was last stored or loaded from the cache: each hit marks its entry.
    pub last_used: SystemTime,
    /// How the call's arguments read: `Debug` where their types have it, else `<Type>`, `_`
    /// for an ignored one, each cut short. Empty for entries that store none.
    pub args: String,
    /// How many times the entry was loaded from the cache. Hits of concurrent processes can
    /// be missed, and a cache the loading process may not write counts none.
    pub hits: u64,
    /// Stored by a version of the function's code other than its current one: the version
    /// whose entries were stored or used last, among those in the folder. Only a listing of
    /// the whole function (`Memory::entries`, `Memory::entries_of`) says; elsewhere `false`.
    pub outdated: bool,
}

impl EntryInfo {
    /// The information of the entry `id`, at `path`, from what its header and file say.
    pub(crate) fn of(id: &EntryId<'_>, path: PathBuf, stored: &Stored) -> EntryInfo {
        let header = &stored.header;
        EntryInfo {
            function: id.function.to_owned(),
            code_version: id.version.to_owned(),
            key: id.key.hex().as_str().to_owned(),
            path,
            size: stored.size,
            type_name: header.type_name.clone(),
            compute: header.compute,
            created: header.created,
            last_used: stored.last_used,
            args: header.args.clone(),
            hits: u64::from(header.hits),
            outdated: false,
        }
    }
}

/// What a listing reads of each entry besides its name, size and last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Nothing: for clearing and measuring.
    Sizes,
    /// The hits this process counted are written first, so that last uses are up to date.
    LastUse,
    /// As `LastUse`, and each entry's header: its type, arguments, times and hits.
    Headers,
}

/// What a store holds: its entries, in no order, and the files that writers that crashed left
/// behind, to be removed.
#[derive(Default)]
pub(crate) struct Listing {
    pub entries: Vec<EntryInfo>,
    pub abandoned: Vec<PathBuf>,
}

/// What a listing finds: an entry, or a file that a writer that crashed left behind.
pub(crate) enum Found {
    Entry(EntryInfo),
    Abandoned(PathBuf),
}

/// Reads an entry, open: decodes it, or checks it.
pub(crate) type Reader<'a> = &'a mut dyn FnMut(&mut Opened) -> Result<(), ErrorKind>;

/// Writes an entry into the empty file it is given; returns its length.
pub(crate) type Writer<'a> = &'a mut dyn FnMut(&mut File) -> Result<u64, ErrorKind>;

/// Says whether a stored entry may still be served, from what its header and file say.
pub(crate) type Serve<'a> = &'a dyn Fn(&Stored) -> bool;

fn served(file: &Opened, serve: Option<Serve<'_>>) -> Result<(), ErrorKind> {
    match serve {
        Some(serve) if !serve(&file.stored()?) => Err(ErrorKind::Stale),
        _ => Ok(()),
    }
}

/// Where entries are kept: the one way the cache, `Memory`, the size limit and the `joblet`
/// command reach them. [`open`] gives the store of a cache folder; the typed steps on top
/// (load a hit, check, save) are on `dyn Store`, so that an implementation has only these to
/// provide, whatever the value's type.
pub(crate) trait Store: Send + Sync {
    /// Reads the entry `id` with `read`, as a cache hit: one that the store counts, where it
    /// counts hits, once `read` succeeds.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is no such entry (a plain miss); what `read` says.
    fn get(&self, id: &EntryId<'_>, read: Reader<'_>) -> Result<(), Error>;

    /// Reads the entry `id` with `read`, without counting a hit.
    ///
    /// # Errors
    /// As [`Store::get`].
    fn peek(&self, id: &EntryId<'_>, read: Reader<'_>) -> Result<(), Error>;

    /// Stores the entry that `write` writes at `id`, in place of any there, atomically:
    /// readers see the old entry or the new one, never a part. Returns its length.
    ///
    /// # Errors
    /// When it cannot be written; nothing is left of it then.
    fn put(&self, id: &EntryId<'_>, write: Writer<'_>) -> Result<u64, Error>;

    /// Removes every entry of the function whose folder is `function`, for every version.
    ///
    /// # Errors
    /// When they exist but cannot be removed.
    fn remove_function(&self, function: &str) -> Result<(), Error>;

    /// Hands `found` each entry of every function, or of the one whose folder is `function`,
    /// read as far as `detail` says, and each file a writer that crashed left behind, in no
    /// order, one at a time: a summary of a million entries holds none of them.
    ///
    /// # Errors
    /// When a folder cannot be read.
    fn visit(
        &self,
        function: Option<&str>,
        detail: Detail,
        found: &mut dyn FnMut(Found),
    ) -> Result<(), Error>;

    /// The entries of every function, or of the one whose folder is `function`, read as far
    /// as `detail` says, and the files that writers that crashed left behind.
    ///
    /// # Errors
    /// As [`Store::visit`].
    fn list(&self, function: Option<&str>, detail: Detail) -> Result<Listing, Error> {
        let mut listing = Listing::default();
        self.visit(function, detail, &mut |found| match found {
            Found::Entry(entry) => listing.entries.push(entry),
            Found::Abandoned(path) => listing.abandoned.push(path),
        })?;
        Ok(listing)
    }

    /// Hands `sum` what the entries of every function, or of the one whose folder is
    /// `function`, come to, by code version: each call a version and a [`Summary`] of some of
    /// its entries (its `function` set), a version's entries over one call or several. What
    /// [`Store::visit`] would hand over with [`Detail::Headers`], added up; a store that keeps
    /// sums may hand them over instead of reading every entry again.
    ///
    /// # Errors
    /// As [`Store::visit`].
    fn sum(&self, function: Option<&str>, sum: &mut dyn FnMut(&str, Summary)) -> Result<(), Error> {
        self.visit(function, Detail::Headers, &mut |found| {
            if let Found::Entry(entry) = found {
                let (version, summary) = Summary::of(entry);
                sum(&version, summary);
            }
        })
    }

    /// Counts a hit of the entry `id` served from a copy in memory, as [`Store::get`] counts
    /// one, at most once a second an entry; says `false` when the store found the entry gone
    /// (removed by another process), so that the copy is dropped too.
    fn count_hit(&self, id: &EntryId<'_>) -> bool;

    /// Where the entry `id` is, for people: its file, for a folder.
    fn path_of(&self, id: &EntryId<'_>) -> PathBuf;

    /// Removes a listed entry or abandoned file; says whether this call removed it (it may
    /// have gone already).
    ///
    /// # Errors
    /// When it exists but cannot be removed.
    fn remove(&self, path: &Path) -> Result<bool, Error>;

    /// Says that the next [`Store::put`] of `id` is to replace what is there (a refresh),
    /// where the store would otherwise keep the first entry stored under a key.
    fn replacing(&self, id: &EntryId<'_>) {
        let _ = id;
    }

    /// The folder on this machine that a size limit bounds, and its store: a folder's own,
    /// an object store's local tier.
    fn bounded(&self) -> (&Path, &dyn Store);
}

/// The environment variable that sets the folder of the local tiers of caches in object
/// stores (the `remote` feature): each store's tier is `<folder>/<bucket>/<prefix>`. When it is
/// not set: `$XDG_CACHE_HOME/joblet`, else `~/.cache/joblet`.
///
/// ```
/// use std::process::Command;
///
/// // A machine whose scratch disk is faster than its home folder.
/// let mut cmd = Command::new("true");
/// cmd.env(joblet_runtime::LOCAL_TIER_ENV, "/scratch/joblet");
/// assert_eq!(joblet_runtime::LOCAL_TIER_ENV, "JOBLET_LOCAL_TIER");
/// ```
pub const LOCAL_TIER_ENV: &str = "JOBLET_LOCAL_TIER";

/// The environment variable that sets how long a request to an object store (the `remote`
/// feature) may wait for a connection or for the next bytes of an answer before the store is
/// taken as down: `10s`, `1min`. Default 5 seconds; at least 1.
///
/// ```
/// assert_eq!(joblet_runtime::REMOTE_TIMEOUT_ENV, "JOBLET_REMOTE_TIMEOUT");
/// ```
pub const REMOTE_TIMEOUT_ENV: &str = "JOBLET_REMOTE_TIMEOUT";

/// Whether the cache location `root` is an object store's URL (`s3://bucket/prefix`) rather
/// than a folder: it starts with a scheme and `://`.
///
/// ```
/// use std::path::Path;
/// assert!(joblet_runtime::is_url(Path::new("s3://bucket/cache")));
/// assert!(!joblet_runtime::is_url(Path::new("/tmp/cache")));
/// assert!(!joblet_runtime::is_url(Path::new("runs/s3://x")));
/// ```
pub fn is_url(root: &Path) -> bool {
    let Some(text) = root.to_str() else {
        return false;
    };
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The cache location `root` made absolute, so that it stays where it pointed whatever the
/// current directory becomes; an object store's URL as it is.
pub(crate) fn absolute(root: PathBuf) -> PathBuf {
    if is_url(&root) {
        return root;
    }
    std::path::absolute(&root).unwrap_or(root)
}

/// The store of the cache location `root`: a folder on this machine, or an object store
/// behind a local tier when `root` is a URL ([`is_url`]). `count_hits` says whether hits
/// count themselves in their entries. A URL that this build cannot reach (no `remote`
/// feature, a scheme it does not know, settings that do not hold) gives a store that holds
/// nothing, after one warning: every call computes.
pub(crate) fn open(root: &Path, count_hits: bool) -> Arc<dyn Store> {
    if !is_url(root) {
        return Arc::new(folder::Folder::new(root, count_hits));
    }
    #[cfg(feature = "remote")]
    match remote::open(root, count_hits) {
        Ok(store) => store,
        Err(why) => unreachable::Unreachable::open(root, &why),
    }
    #[cfg(not(feature = "remote"))]
    unreachable::Unreachable::open(
        root,
        "this build has no `remote` feature: enable it (`features = [\"remote\"]` on the joblet dependency; `cargo install joblet-cli --features remote` for the command)",
    )
}

impl dyn Store + '_ {
    /// Loads the entry `id`, as a hit (see [`Store::get`]), and also its bytes when they are
    /// at most `keep` long and hold no arrays: a small result's copy for memory. With
    /// `serve`, only an entry it accepts: another is [`ErrorKind::Stale`], neither decoded nor
    /// counted.
    pub(crate) fn load_hit_keeping<T>(
        &self,
        id: &EntryId<'_>,
        decode: Decoder<T>,
        serve: Option<Serve<'_>>,
        keep: usize,
    ) -> Result<(T, Option<Image>), Error> {
        let mut value = None;
        let mut kept = None;
        self.get(id, &mut |file| {
            served(file, serve)?;
            let head = file.head();
            if file.is_whole() && head.len() <= keep && !format::has_arrays(head) {
                kept = Some(Image::from(head));
            }
            value = Some(decode.decode(file)?);
            Ok(())
        })?;
        Ok((value.expect("read when `get` succeeds"), kept))
    }

    /// Stores the entry `image` at `id` (see [`Store::put`]); returns its length.
    pub(crate) fn put_image(&self, id: &EntryId<'_>, image: &[u8]) -> Result<u64, Error> {
        self.put(id, &mut |file| {
            std::io::Write::write_all(file, image).map_err(ErrorKind::from_io)?;
            Ok(image.len() as u64)
        })
    }

    /// Whether the entry `id` holds a valid value of type `T` that `serve` accepts, without
    /// decoding it.
    pub(crate) fn contains<T>(&self, id: &EntryId<'_>, serve: Option<Serve<'_>>) -> bool {
        self.peek(id, &mut |file| {
            served(file, serve)?;
            entry::check(&file.bytes()?)?.expect_type::<T>()
        })
        .is_ok()
    }

    /// Stores `value` at `id`, uncompressed; returns the entry's length.
    pub(crate) fn save<T: ?Sized + Serialize>(
        &self,
        id: &EntryId<'_>,
        value: &T,
        meta: &Meta,
    ) -> Result<u64, Error> {
        self.put(id, &mut |file| {
            write::entry(file, value, meta, Compression::None)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::xxh3::xxh3_64;
    use serde::Serialize;

    use super::*;
    use crate::Array;
    use entry::check;
    use format::{HEADER_LEN, HITS_AT, Header, checksum, u16_at};
    use write::encode;

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
        assert_eq!(decoder_any::<Vec<f64>>().decode_entry(&c).unwrap(), v);
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
        let read = decoder_any::<Vec<f64>>().decode_entry(&check(&v2).unwrap());
        assert_eq!(read.unwrap(), vec![1.5, 2.5]);
        assert_eq!(Header::read(&v2).unwrap().hits, 0);

        let dir = tempfile::tempdir().unwrap();
        let key = Key(0x0123 << 112);
        let id = EntryId {
            function: "f",
            version: "v",
            key,
        };
        let path = layout::entry_path(dir.path(), &id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &v2).unwrap();
        let store = open(dir.path(), true);
        for _ in 0..3 {
            let hit = store
                .load_hit_keeping(&id, decoder_any::<Vec<f64>>(), None, 0)
                .map(|(v, _)| v);
            assert_eq!(hit.unwrap(), vec![1.5, 2.5]);
        }
        hits::write_all(true);
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
        let err = decoder_any::<Vec<u32>>()
            .decode_entry(&check(&bytes).unwrap())
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

    #[test]
    fn an_array_read_as_another_element_type_is_refused() {
        // Stored under the name of what is read, as when a field's type changed since.
        let path = std::env::temp_dir().join(format!("joblet-elem-{}.jbl", std::process::id()));
        let written = Array::from(vec![1.0f64, 2.0]);
        let name = std::any::type_name::<Array<f32>>();
        let none = Compression::None;
        write(&path, &written, &Meta::value(name), none, false).unwrap();
        let err = load(&path, decoder_any::<Array<f32>>()).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Decode(m) if m.contains("an array of f64 was stored where an array of f32 is read")),
            "{err}"
        );
        assert_eq!(
            load(&path, decoder_any::<Array<f64>>())
                .err()
                .map(|e| e.to_string()),
            {
                let found = format::canonical_type_name(name).into_owned();
                Some(format!(
                    "{}: expected joblet::Array<f64>, file holds {found}",
                    path.display()
                ))
            }
        );
        let _ = std::fs::remove_file(path);
    }
}
