//! A parsed entry: its header's lengths checked against the file, its checksum verified before
//! anything decoded from it is handed out, and the places of its array sections.

use std::borrow::Cow;
use std::sync::Arc;

use crate::xxh3::xxh3_64;

use super::compress::{decompress, lz4_numbers, zstd_numbers};
use super::format::{
    self, HEADER_LEN, ROW, SECTION_ALIGN, canonical_type_name, checksum_holds, flags_known, u64_at,
};
use super::read::{Bytes, body_end};
use crate::array::{SectionRef, Source};
use crate::error::ErrorKind;

/// The arrays of an entry are checked against their hashes on load when they take at most this
/// much in all; beyond, the load would cost as much as a copy.
const VERIFY_ARRAYS_UP_TO: usize = 1 << 20;

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
    let file_len = bytes.len() as u64;
    let body_end = body_end(bytes, file_len)?;
    let name_len = u64::from(format::name_len(bytes));
    let table_len = u64::from(format::table_len(bytes));
    let payload_len = format::payload_len(bytes);
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
    let payload_at = format::payload_start(bytes);
    let payload_end = payload_at + payload_len as usize;
    let type_name = std::str::from_utf8(&bytes[HEADER_LEN..name_end]);
    let flags = format::flags(bytes);
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
    if !format::native(flags) {
        return Err(ErrorKind::Decode(
            "the file was written on a machine of the other byte order".into(),
        ));
    }
    Ok(entry)
}

/// Where the last array section ends, or the body if there are none, checking that sections
/// follow each other in order, aligned, after the table.
fn sections_end(bytes: &[u8], body_end: usize, table_len: u64) -> Result<u64, ErrorKind> {
    if !table_len.is_multiple_of(ROW as u64) {
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
    if checksum_holds(bytes, xxh3_64(&bytes[HEADER_LEN..body_end])) {
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
        // Most names are stored as `type_name` writes them: no need to make the canonical one.
        if self.type_name == std::any::type_name::<T>() {
            return Ok(());
        }
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

    /// For a compressed payload that holds bytes alone (a lone `Array`), those bytes as `N`s,
    /// decompressed into their vector without a second copy; `None` for an uncompressed one.
    /// Call it after [`Entry::verify`].
    pub(crate) fn packed_numbers<N: bytemuck::Pod>(&self) -> Option<Result<Vec<N>, ErrorKind>> {
        let raw_len = format::raw_len(self.bytes);
        match format::compression(format::flags(self.bytes)) {
            format::LZ4 => Some(lz4_numbers(self.payload, raw_len)),
            format::ZSTD => Some(zstd_numbers(self.payload, raw_len)),
            _ => None,
        }
    }

    /// The payload as serialized: the stored bytes, decompressed if they were compressed. Call
    /// it after [`Entry::verify`]; a forged size cannot make it allocate more than the
    /// compression could produce.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] when the payload does not decompress to its recorded size.
    pub fn raw_payload(&self) -> Result<Cow<'_, [u8]>, ErrorKind> {
        let compression = format::compression(format::flags(self.bytes));
        decompress(compression, self.payload, format::raw_len(self.bytes))
    }
}
