//! Values whose payload is a length and the little-endian bytes of fixed-width numbers:
//! vectors and slices of `f64`, `f32`, `u8` and `i8`, found by type, so that a writer sends
//! their memory to the file in one call instead of serializing them number by number. The
//! bytes are postcard's encoding exactly, so readers cannot tell (`decode` reads them back in
//! bulk the same way).

/// How many numbers `value` holds and their bytes, if it is a vector or slice of one of the
/// types above and this machine is little-endian (postcard writes numbers little-endian);
/// `None` for any other value.
///
/// `T` need not be `'static` (a `dump` takes any value): its type is compared through `typeid`,
/// which ignores lifetimes, and none of the types matched has any.
pub(crate) fn numbers<T: ?Sized>(value: &T) -> Option<(usize, &[u8])> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let id = typeid::of::<T>();
    macro_rules! matches {
        ($($t:ty),*) => {$(
            if id == typeid::of::<Vec<$t>>() {
                // SAFETY: `T` is `Vec<$t>`, a type without lifetimes, so the equal ids mean
                // the same type; a pointer to a sized `T` is thin.
                let numbers = unsafe { &*(value as *const T).cast::<Vec<$t>>() };
                return Some((numbers.len(), bytemuck::cast_slice(numbers.as_slice())));
            }
            if id == typeid::of::<[$t]>() {
                let len = size_of_val(value) / size_of::<$t>();
                // SAFETY: `T` is `[$t]`, as above: `value` points at `len` of them.
                let numbers =
                    unsafe { std::slice::from_raw_parts((value as *const T).cast::<$t>(), len) };
                return Some((len, bytemuck::cast_slice(numbers)));
            }
        )*};
    }
    matches!(f64, f32, u8, i8);
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::{Serialize, Serializer};

    use super::super::{Meta, encode, write};
    use super::*;
    use crate::store::compress::Compression;
    use crate::store::decoder_any;
    use crate::store::entry::check;
    use crate::store::format::{self, HITS_AT};

    /// Serializes as the slice it holds, but is no type that [`numbers`] knows: its entry is
    /// written number by number, through serde.
    struct ThroughSerde<'a, N>(&'a [N]);

    impl<N: Serialize> Serialize for ThroughSerde<'_, N> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0)
        }
    }

    /// The entry of `value`, written as a `type_name` (so that both ways write the same name),
    /// as [`comparable`].
    fn entry_of<T: ?Sized + Serialize>(value: &T, type_name: &str) -> Vec<u8> {
        let compute = Duration::from_nanos(1234);
        let bytes = encode(value, type_name, compute, Compression::None).unwrap();
        assert!(check(&bytes).is_ok());
        comparable(bytes)
    }

    /// An entry without what tells two writes of a value apart: the checksum and creation time
    /// zeroed, the gap (which the bulk path leaves, serde's does not) taken out of the body and
    /// the flags.
    fn comparable(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[8..16].fill(0);
        bytes[56..64].fill(0);
        let gap = usize::from(format::gap(format::flags(&bytes)));
        let payload_at = format::payload_start(&bytes);
        bytes.drain(payload_at - gap..payload_at);
        bytes[19] &= !0x3F; // the flags' bits 8 to 13
        bytes
    }

    /// Where the numbers of the bulk entry `bytes`, `count` of them, start in it.
    fn numbers_at(bytes: &[u8], count: usize) -> usize {
        let mut varint = [0u8; 10];
        format::payload_start(bytes) + postcard::to_slice(&count, &mut varint).unwrap().len()
    }

    fn same_entry<N: Serialize + bytemuck::Pod>(numbers: Vec<N>) {
        let name = std::any::type_name::<Vec<N>>();
        let through_serde = entry_of(&ThroughSerde(&numbers), name);
        let bulk = encode(&numbers, name, Duration::ZERO, Compression::None).unwrap();
        let in_memory = numbers.as_ptr() as usize % 64;
        assert_eq!(numbers_at(&bulk, numbers.len()) % 64, in_memory, "{name}");
        assert_eq!(entry_of(&numbers, name), through_serde, "{name}");
        assert_eq!(entry_of(numbers.as_slice(), name), through_serde, "{name}");
    }

    #[test]
    fn bulk_entries_are_byte_for_byte_those_serde_writes() {
        // Each past the size from which the bulk path is taken; the last past the one from
        // which it hashes on a second thread; lengths whose varints take 3 and 4 bytes.
        same_entry(
            (0..40_000)
                .map(|i| f64::from(i) * -1.25)
                .collect::<Vec<f64>>(),
        );
        same_entry((0..70_000).map(|i| i as f32 / 3.0).collect::<Vec<f32>>());
        same_entry((0..300_000).map(|i| i as u8).collect::<Vec<u8>>());
        same_entry((0..300_000).map(|i| i as i8).collect::<Vec<i8>>());
        same_entry(
            (0..4_300_000)
                .map(|i| f64::from(i).sqrt())
                .collect::<Vec<f64>>(),
        );
    }

    #[test]
    fn a_bulk_file_reads_back_and_is_the_file_serde_writes() {
        let dir = std::env::temp_dir().join(format!("joblet-bulk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let all: Vec<f64> = (0..700_001).map(|i| f64::from(i) / 7.0).collect();
        let name = std::any::type_name::<Vec<f64>>();
        let (bulk, serde) = (dir.join("bulk.jbl"), dir.join("serde.jbl"));
        let meta = Meta::value(name);
        // Of two slices a number apart, one needs a gap: the read skips it.
        let (numbers, len) = [&all[1..], &all[..700_000]]
            .into_iter()
            .map(|numbers| {
                let len = write(&bulk, numbers, &meta, Compression::None, false).unwrap();
                (numbers, len)
            })
            .find(|_| format::gap(format::flags(&std::fs::read(&bulk).unwrap())) != 0)
            .unwrap();
        write(
            &serde,
            &ThroughSerde(numbers),
            &meta,
            Compression::None,
            false,
        )
        .unwrap();
        let masked = |path: &std::path::Path| comparable(std::fs::read(path).unwrap());
        assert_eq!(std::fs::read(&bulk).unwrap().len() as u64, len);
        assert_eq!(masked(&bulk), masked(&serde));
        let back = crate::store::load(&bulk, decoder_any::<Vec<f64>>()).unwrap();
        assert_eq!(back, numbers);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_truncation_and_bit_flip_of_a_bulk_entry_is_detected() {
        let numbers: Vec<u8> = (0..(256 << 10) + 3).map(|i| (i * 7) as u8).collect();
        // Of two slices a byte apart, one needs a gap: its bits and bytes are checked too.
        let bytes = (0..2)
            .map(|skip| encode(&numbers[skip..], "v", Duration::ZERO, Compression::None))
            .map(Result::unwrap)
            .find(|bytes| format::gap(format::flags(bytes)) != 0)
            .unwrap();
        let payload_at = format::payload_start(&bytes);
        // Every bit of the header, the name, the gap and the length; bits spread over the
        // numbers.
        let bits = (0..(payload_at + 4) * 8).chain((payload_at * 8..bytes.len() * 8).step_by(4099));
        for bit in bits.chain([bytes.len() * 8 - 1]) {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            // The hit count is rewritten by every process that loads the entry: not checked.
            let in_count = (HITS_AT..HITS_AT + 4).contains(&(bit / 8));
            assert_eq!(check(&b).is_ok(), in_count, "flipped bit {bit}");
        }
        let cuts = (0..payload_at + 8).chain((payload_at..bytes.len()).step_by(9973));
        for len in cuts.chain([bytes.len() - 1]) {
            assert!(check(&bytes[..len]).is_err(), "truncated to {len} accepted");
        }
    }

    #[test]
    fn vectors_and_slices_of_numbers_are_found_and_nothing_else() {
        let floats = vec![1.5f64, -2.0];
        let (count, bytes) = numbers(&floats).unwrap();
        assert_eq!((count, bytes.len()), (2, 16));
        assert_eq!(bytes[..8], 1.5f64.to_le_bytes());
        assert_eq!(numbers(&floats[1..]).unwrap().0, 1);
        assert_eq!(numbers(&vec![1u8, 2, 3]).unwrap().1, [1, 2, 3]);
        assert_eq!(numbers(&[-1i8][..]).unwrap().1, [0xff]);
        assert_eq!(numbers(&vec![0f32; 5]).unwrap().1.len(), 20);
        assert!(numbers(&Vec::<f64>::new()).is_some_and(|(n, b)| n == 0 && b.is_empty()));
        assert!(numbers(&vec![1u64]).is_none());
        assert!(
            numbers(&[1.0f64, 2.0]).is_none(),
            "an array is a tuple to serde"
        );
        assert!(numbers(&vec![vec![1.0f64]]).is_none());
        assert!(numbers(&1.0f64).is_none());
        assert!(numbers("text").is_none());
    }
}
