//! The storage layer: entry files (their format, compression, writing, reading, decoding),
//! the hits counted in them, and nothing of call sites, macros or `Memory`.

mod aside;
mod compress;
mod decode;
mod entry;
pub(crate) mod format;
mod hits;
mod read;
mod write;

use std::path::Path;
use std::sync::atomic::AtomicBool;

pub use compress::Compression;
pub use decode::{CacheOutput, Codec, Decoder, ViaBulk, ViaSerde};
pub(crate) use decode::{decoder_any, load};
pub use entry::Entry;
pub(crate) use entry::probe;
pub(crate) use hits::write_all as write_hits;
pub(crate) use read::read_header;
pub(crate) use write::{Meta, TEMP_PREFIX, truncate, write};

use crate::error::Error;

/// Loads a cache hit, as [`load`] does, and counts it in the entry: see [`hits::open`].
pub(crate) fn load_hit<T>(
    path: &Path,
    decode: Decoder<T>,
    writable: &AtomicBool,
) -> Result<T, Error> {
    hits::open(path, writable)
        .and_then(|mut file| {
            let value = decode.decode(&mut file)?;
            hits::count(&file, path);
            Ok(value)
        })
        .map_err(|kind| Error::new(path, kind))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, SystemTime};

    use serde::Serialize;
    use xxhash_rust::xxh3::xxh3_64;

    use super::*;
    use crate::Array;
    use crate::error::ErrorKind;
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
        let path = dir.path().join("v2.jbl");
        std::fs::write(&path, &v2).unwrap();
        let writable = AtomicBool::new(true);
        for _ in 0..3 {
            let hit = load_hit(&path, decoder_any::<Vec<f64>>(), &writable);
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
