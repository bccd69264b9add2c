//! XXH3, the hash of keys and checksums, from twox-hash, which picks the widest vector
//! instructions the CPU has when the program runs (AVX2 on most x86-64 machines), where
//! xxhash-rust picks them when it is compiled (SSE2, unless built for a newer CPU). Measured
//! here: 2.5x faster on 200 B to 16 KiB, 1.4x on 8 MB, a nanosecond slower on 8 B. The values
//! are XXH3's, whichever implementation computes them: entries written by either read back.

use std::hash::Hasher as _;

use twox_hash::{XxHash3_64, XxHash3_128};

/// The 64-bit XXH3 of `bytes`.
#[inline]
pub(crate) fn xxh3_64(bytes: &[u8]) -> u64 {
    XxHash3_64::oneshot(bytes)
}

/// The 64-bit XXH3 of `bytes` with `seed`.
#[inline]
pub(crate) fn xxh3_64_with_seed(bytes: &[u8], seed: u64) -> u64 {
    XxHash3_64::oneshot_with_seed(seed, bytes)
}

/// The 128-bit XXH3 of `bytes`.
#[inline]
pub(crate) fn xxh3_128(bytes: &[u8]) -> u128 {
    XxHash3_128::oneshot(bytes)
}

/// The 64-bit XXH3 of bytes handed over in parts.
#[derive(Clone, Default)]
pub(crate) struct Xxh3(XxHash3_64);

impl Xxh3 {
    pub(crate) fn new() -> Self {
        Xxh3(XxHash3_64::new())
    }

    #[inline]
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// The hash of the parts so far.
    pub(crate) fn digest(&self) -> u64 {
        self.0.finish()
    }
}

/// The 128-bit XXH3 of bytes handed over in parts.
#[derive(Clone, Default)]
pub(crate) struct Xxh3Wide(XxHash3_128);

impl Xxh3Wide {
    pub(crate) fn new() -> Self {
        Xxh3Wide(XxHash3_128::new())
    }

    #[inline]
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// The hash of the parts so far.
    pub(crate) fn digest128(&self) -> u128 {
        self.0.finish_128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_are_xxhash_rusts_in_one_part_or_many() {
        let bytes: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for len in [
            0, 1, 3, 8, 16, 17, 128, 129, 240, 241, 1024, 4096, 100_000, 300_000,
        ] {
            let b = &bytes[..len];
            assert_eq!(xxh3_64(b), xxhash_rust::xxh3::xxh3_64(b), "{len} bytes");
            assert_eq!(xxh3_128(b), xxhash_rust::xxh3::xxh3_128(b), "{len} bytes");
            assert_eq!(
                xxh3_64_with_seed(b, 77),
                xxhash_rust::xxh3::xxh3_64_with_seed(b, 77),
                "{len} bytes"
            );
            let (mut narrow, mut wide) = (Xxh3::new(), Xxh3Wide::new());
            for part in b.chunks(1000) {
                narrow.update(part);
                wide.update(part);
            }
            assert_eq!(narrow.digest(), xxh3_64(b), "{len} bytes in parts");
            assert_eq!(wide.digest128(), xxh3_128(b), "{len} bytes in parts");
        }
    }
}
