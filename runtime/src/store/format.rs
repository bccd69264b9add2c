//! The entry file's format: one value in a checksummed container. Every offset, flag and
//! length rule is here; the writer, the reader and the parser name them.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"\x89JBL\r\n\x1a\n"
//!      8     8  checksum: xxh3-64 of the 16 bytes `xxh3-64(bytes 16..64) ++ xxh3-64(body)`,
//!               with the hit count (bytes 28..32) taken as zero
//!     16     2  format version (3; version 2, without arguments or hits, is read too)
//!     18     2  flags: bits 0-3 compression (0 = none, 1 = LZ4, 2 = zstd); bit 4 set when
//!               written on a big-endian machine; bits 8-13 the gap (0 to 63 bytes, see
//!               below); other bits zero
//!     20     2  length of the stored type's name
//!     22     2  length of the arguments' rendering
//!     24     4  length of the array section table (24 bytes a section)
//!     28     4  hit count: how often the entry was loaded as a cache hit
//!     32     8  payload length as stored
//!     40     8  payload length once decompressed
//!     48     8  compute duration, nanoseconds
//!     56     8  creation time, milliseconds since the Unix epoch
//!     64        body: type name (UTF-8), arguments' rendering (UTF-8), the gap (zeros),
//!               payload (postcard), array section table
//!               then each array section at a 64-byte aligned offset, up to the end of the file
//! ```
//!
//! Every integer is little-endian. A table row is a section's offset in the file, its length
//! and the xxh3-64 of its bytes. Array sections hold the elements of [`Array`]s raw, so that
//! they load as views into a memory map; the payload holds their indices in the table.
//!
//! The gap puts the numbers of a large vector (see `write/bulk.rs`) at the offset in the file
//! that they had in the writer's memory, modulo 64, so that the kernel copies them between
//! memory and the page cache one aligned cache line at a time, both ways (a vector read back
//! is allocated as the one written was). With the numbers 8 bytes off, an 80 MB `dump` took
//! 12.8 ms and its `load` 9.99 (`np.save` 11.6, `np.load` 13.1); aligned, 11.0 and 9.17
//! (`np.save` 11.4, `np.load` 13.0): `benches/reference/compare.py --rounds 7 --only
//! dump-80mb,load-80mb`, run before and after. A build that reads no gap reads no entry that
//! has one: its flags are unknown to it, so such an entry is a miss there, as any it cannot
//! read.
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
//! place (see [`super::hits`]), which also sets the file's modification time: that is how the
//! entry's last use is known (file access times are unreliable: `relatime` records a read at
//! most once a day, `noatime` never). No reader depends on the count, so an update lost
//! between processes costs hits in the tally, nothing else.
//!
//! [`Array`]: crate::Array

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::xxh3::xxh3_64;

pub(crate) const MAGIC: [u8; 8] = *b"\x89JBL\r\n\x1a\n";
pub(crate) const VERSION: u16 = 3;

/// The oldest format version this build reads: version 2 had zeros where version 3 has the
/// arguments' length and the hit count, so it reads as a version 3 entry without either.
/// Hits are never counted in a version 2 entry, whose checksum covers the count.
pub(crate) const OLDEST_READ: u16 = 2;
pub(crate) const HEADER_LEN: usize = 64;

/// Under a fuzzer every checksum passes, so that mutated inputs reach the decoders behind it:
/// they must hold against forged files, whose checksums are right.
pub(crate) const FUZZING: bool = cfg!(fuzzing);

/// Where the hit count is, in the header.
pub(crate) const HITS_AT: usize = 28;

/// The first bytes of a file that [`counts_hits`] reads.
pub(crate) const COUNTED_HEAD: usize = 18;

/// The longest rendering of a call's arguments kept, in bytes.
pub(crate) const MAX_ARGS: usize = 512;

/// Bytes a row of the array section table takes: offset, length, hash.
pub(crate) const ROW: usize = 24;

/// Array sections start at multiples of this, in the file and so in a map of it.
pub(crate) const SECTION_ALIGN: usize = 64;

/// The compression of the payload, in the flags' low bits.
pub(crate) const UNCOMPRESSED: u16 = 0;
pub(crate) const LZ4: u16 = 1;
pub(crate) const ZSTD: u16 = 2;
const COMPRESSION_BITS: u16 = 0xF;

/// Where the gap's length is in the flags, and its largest value.
const GAP_SHIFT: u16 = 8;
const MAX_GAP: u16 = 63;
const GAP_BITS: u16 = MAX_GAP << GAP_SHIFT;

/// Flag bit: the entry was written on a big-endian machine (its array sections are).
const BIG_ENDIAN: u16 = 1 << 4;
pub(crate) const NATIVE: u16 = if cfg!(target_endian = "big") {
    BIG_ENDIAN
} else {
    0
};

// The header's fields, read from its first bytes (at least `HEADER_LEN` of them).

pub(crate) fn stored_checksum(h: &[u8]) -> u64 {
    u64_at(h, 8)
}
pub(crate) fn version(h: &[u8]) -> u16 {
    u16_at(h, 16)
}
pub(crate) fn flags(h: &[u8]) -> u16 {
    u16_at(h, 18)
}
pub(crate) fn name_len(h: &[u8]) -> u16 {
    u16_at(h, 20)
}
pub(crate) fn args_len(h: &[u8]) -> u16 {
    u16_at(h, 22)
}
pub(crate) fn table_len(h: &[u8]) -> u32 {
    u32_at(h, 24)
}
pub(crate) fn hits(h: &[u8]) -> u32 {
    u32_at(h, HITS_AT)
}
pub(crate) fn payload_len(h: &[u8]) -> u64 {
    u64_at(h, 32)
}
pub(crate) fn raw_len(h: &[u8]) -> u64 {
    u64_at(h, 40)
}

/// The compression of a payload, from the header's flags.
pub(crate) fn compression(flags: u16) -> u16 {
    flags & COMPRESSION_BITS
}

/// How many bytes of gap there are before the payload, from the header's flags.
pub(crate) fn gap(flags: u16) -> u16 {
    (flags & GAP_BITS) >> GAP_SHIFT
}

/// The gap that puts bytes, which would be at offset `at` in the file without one, at the
/// offset of `address` modulo 64.
pub(crate) fn gap_for(at: usize, address: usize) -> u16 {
    (address.wrapping_sub(at) % (usize::from(MAX_GAP) + 1)) as u16
}

/// Where the payload starts in an entry whose header is at the start of `bytes`: after the
/// type name, the arguments and the gap.
pub(crate) fn payload_start(bytes: &[u8]) -> usize {
    args_end(bytes) + gap(flags(bytes)) as usize
}

/// Where the arguments end in an entry whose header is at the start of `bytes`.
fn args_end(bytes: &[u8]) -> usize {
    HEADER_LEN + name_len(bytes) as usize + args_len(bytes) as usize
}

/// How many bytes the header of the entry starting with `bytes` takes with its type name and
/// arguments; `None` when `bytes` do not start like an entry this build reads.
#[cfg(feature = "remote")]
pub(crate) fn header_len(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= HEADER_LEN && known_compression(bytes).is_some())
        .then(|| args_end(bytes) as u64)
}

/// Whether the entry whose header is at the start of `bytes` has array sections.
pub(crate) fn has_arrays(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[..8] == MAGIC && table_len(bytes) != 0
}

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
        if bytes.len() < HEADER_LEN || known_compression(bytes).is_none() {
            return None;
        }
        let name_end = HEADER_LEN + name_len(bytes) as usize;
        let type_name = std::str::from_utf8(bytes.get(HEADER_LEN..name_end)?).ok()?;
        let args = bytes
            .get(name_end..args_end(bytes))
            .and_then(|args| std::str::from_utf8(args).ok());
        Some(Header {
            type_name: type_name.to_owned(),
            compute: Duration::from_nanos(u64_at(bytes, 48)),
            created: UNIX_EPOCH + Duration::from_millis(u64_at(bytes, 56)),
            // Arguments that do not fit in what was read are not worth a second read.
            args: args.unwrap_or("…").to_owned(),
            hits: hits(bytes),
        })
    }
}

/// The header fields a writer knows once the body is written: all but the checksum.
pub(crate) struct Fields {
    pub name_len: u16,
    pub args_len: u16,
    pub table_len: u32,
    pub payload_len: u64,
    pub raw_len: u64,
    /// [`UNCOMPRESSED`], [`LZ4`] or [`ZSTD`].
    pub compression: u16,
    /// Bytes between the arguments and the payload, at most 63 (see [`gap_for`]).
    pub gap: u16,
    pub compute: Duration,
}

impl Fields {
    /// The 64-byte header, checksum included, for a body that hashes to `body_hash`.
    pub(crate) fn header(&self, body_hash: u64) -> [u8; HEADER_LEN] {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let compute = self.compute.as_nanos().min(u128::from(u64::MAX)) as u64;
        debug_assert!(self.gap <= MAX_GAP);
        let flags = self.compression | NATIVE | (self.gap & MAX_GAP) << GAP_SHIFT;
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
pub(crate) fn checksum(fields: &[u8], body_hash: u64) -> u64 {
    let mut fixed = [0u8; HEADER_LEN - 16];
    let (count, after) = (HITS_AT - 16, HITS_AT - 12);
    fixed[..count].copy_from_slice(&fields[..count]);
    fixed[after..].copy_from_slice(&fields[after..HEADER_LEN - 16]);
    let mut both = [0u8; 16];
    both[..8].copy_from_slice(&xxh3_64(&fixed).to_le_bytes());
    both[8..].copy_from_slice(&body_hash.to_le_bytes());
    xxh3_64(&both)
}

/// Whether the checksum of the entry at the start of `bytes` holds for a body that hashes to
/// `body_hash`.
pub(crate) fn checksum_holds(bytes: &[u8], body_hash: u64) -> bool {
    checksum(&bytes[16..HEADER_LEN], body_hash) == stored_checksum(bytes) || FUZZING
}

/// Whether hits are counted in the entry whose first bytes are `head`: one of this format
/// version (an older one's checksum covers the count's bytes).
pub(crate) fn counts_hits(head: &[u8]) -> bool {
    head.len() >= COUNTED_HEAD && head[..8] == MAGIC && version(head) == VERSION
}

/// The compression of an entry whose header is at the start of `bytes`, if its magic, version
/// and flags are ones this build reads.
pub(crate) fn known_compression(bytes: &[u8]) -> Option<u16> {
    let flags = flags(bytes);
    let known = bytes[0..8] == MAGIC
        && (OLDEST_READ..=VERSION).contains(&version(bytes))
        && flags_known(flags)
        && flags & BIG_ENDIAN == NATIVE;
    known.then_some(compression(flags))
}

/// Whether this build reads entries with these flags (from a machine of either byte order).
pub(crate) fn flags_known(flags: u16) -> bool {
    flags & !(BIG_ENDIAN | COMPRESSION_BITS | GAP_BITS) == 0 && compression(flags) <= ZSTD
}

/// Whether an entry with these flags was written on a machine of this one's byte order.
pub(crate) fn native(flags: u16) -> bool {
    flags & BIG_ENDIAN == NATIVE
}

/// The stored form of a type's name: a reference, a slice and a `str` are stored as what they
/// are read back as (the value, a `Vec`, a `String`), since serde encodes them alike; joblet's
/// own array types are stored under their public names, not the private modules that define
/// them, so that moving those does not orphan every stored file.
pub(crate) fn canonical_type_name(name: &str) -> Cow<'_, str> {
    let name = name.trim_start_matches("&mut ").trim_start_matches('&');
    let name: Cow<'_, str> = if name == "str" {
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
            .replace("joblet_runtime::frame::", "joblet::")
            .into()
    } else {
        name
    }
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        #[cfg(feature = "polars")]
        assert_eq!(name(std::any::type_name::<crate::Frame>()), "joblet::Frame");
        assert_eq!(name("&str"), "alloc::string::String");
        assert_eq!(name("[u8]"), "alloc::vec::Vec<u8>");
        assert_eq!(name("[u8; 4]"), "[u8; 4]");
    }
}
