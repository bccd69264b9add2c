//! Sizes written for people: `500M`, `2 GiB`, `1.5G`. The one parser of them, for
//! `#[cached(max_size = "...")]` and `parallel!(max_memory = "...", max_nbytes = "...")` at
//! compile time, for a cache folder's settings file and for the `joblet` command.

/// Why a size does not parse: see [`size_in_bytes`].
///
/// ```
/// let e = joblet_runtime::size_in_bytes("lots").unwrap_err();
/// assert!(e.to_string().starts_with("not a size"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number with an optional unit.
    NotASize,
    /// A unit other than those known.
    UnknownUnit,
    /// More bytes than a `u64` holds.
    TooLarge,
}

impl SizeError {
    /// What is wrong, and how to write it.
    pub const fn message(self) -> &'static str {
        match self {
            SizeError::NotASize => {
                "not a size: write a number of bytes, or one with a unit: 500M, 2G, 1GiB"
            }
            SizeError::UnknownUnit => {
                "unknown unit: use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024)"
            }
            SizeError::TooLarge => "too large a size: 2^64 bytes or more",
        }
    }

    /// The message of `#[cached(max_size = "...")]`, which the compiler shows at the literal.
    pub const fn in_attribute(self) -> &'static str {
        match self {
            SizeError::NotASize => {
                "`max_size` is not a size: write a number of bytes, or one with a unit, as in `max_size = \"10G\"`"
            }
            SizeError::UnknownUnit => {
                "unknown unit in `max_size`: use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024), as in `max_size = \"10G\"`"
            }
            SizeError::TooLarge => "`max_size` is too large: 2^64 bytes or more",
        }
    }

    /// The message of `parallel!(max_memory = "...")`, which the compiler shows at the literal.
    pub const fn in_max_memory(self) -> &'static str {
        match self {
            SizeError::NotASize => {
                "`max_memory` is not a size: write a number of bytes, or one with a unit, as in `max_memory = \"2 GiB\"`"
            }
            SizeError::UnknownUnit => {
                "unknown unit in `max_memory`: use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024), as in `max_memory = \"2 GiB\"`"
            }
            SizeError::TooLarge => "`max_memory` is too large: 2^64 bytes or more",
        }
    }

    /// The message of `parallel!(max_nbytes = "...")`, which the compiler shows at the literal.
    pub const fn in_max_nbytes(self) -> &'static str {
        match self {
            SizeError::NotASize => {
                "`max_nbytes` is not a size: write a number of bytes, or one with a unit, as in `max_nbytes = \"1M\"`"
            }
            SizeError::UnknownUnit => {
                "unknown unit in `max_nbytes`: use k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (of 1024), as in `max_nbytes = \"1M\"`"
            }
            SizeError::TooLarge => "`max_nbytes` is too large: 2^64 bytes or more",
        }
    }
}

impl std::error::Error for SizeError {}

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// `500`, `500B`, `10k`, `1.5G`, `2GiB`, `2 GiB`: a number of bytes, with a unit of powers of
/// 1000 (`k`, `M`, `G`, `T`) or of 1024 (`Ki`, `Mi`, `Gi`, `Ti`). A `const fn`, so that
/// `#[cached(max_size = "...")]` is checked at compile time.
///
/// ```
/// use joblet_runtime::{SizeError, size_in_bytes};
///
/// assert_eq!(size_in_bytes("1.5G"), Ok(1_500_000_000));
/// assert_eq!(size_in_bytes("2 GiB"), Ok(2 << 30));
/// assert_eq!(size_in_bytes("3 parsecs"), Err(SizeError::UnknownUnit));
/// ```
///
/// # Errors
/// A [`SizeError`] saying what is wrong.
pub const fn size_in_bytes(text: &str) -> Result<u64, SizeError> {
    use SizeError::{NotASize, TooLarge, UnknownUnit};
    let b = text.as_bytes();
    let (mut start, mut end) = (0, b.len());
    while start < end && b[start] == b' ' {
        start += 1;
    }
    while end > start && b[end - 1] == b' ' {
        end -= 1;
    }
    if start == end || !(b[start].is_ascii_digit() || b[start] == b'.') {
        return Err(NotASize);
    }
    if end > start && (b[end - 1] == b'B' || b[end - 1] == b'b') {
        end -= 1;
    }
    let binary = end > start && (b[end - 1] == b'i' || b[end - 1] == b'I');
    if binary {
        end -= 1;
    }
    let power = if end > start {
        match b[end - 1] {
            b'k' | b'K' => 1,
            b'm' | b'M' => 2,
            b'g' | b'G' => 3,
            b't' | b'T' => 4,
            b'0'..=b'9' | b'.' | b' ' if !binary => 0,
            _ => return Err(UnknownUnit),
        }
    } else {
        0
    };
    if power > 0 {
        end -= 1;
    }
    while end > start && b[end - 1] == b' ' {
        end -= 1;
    }
    // At most 24 significant digits and 24 decimals: 10^24 times 2^40 fits in a u128.
    let (mut mantissa, mut digits, mut decimals, mut dot) = (0u128, 0u32, 0u32, false);
    let mut seen = 0;
    let mut i = start;
    while i < end {
        match b[i] {
            c @ b'0'..=b'9' => {
                // Leading zeros do not count towards the digits kept.
                if mantissa > 0 || c != b'0' {
                    digits += 1;
                }
                if dot {
                    decimals += 1;
                }
                if digits > 24 || decimals > 24 {
                    return Err(TooLarge);
                }
                mantissa = mantissa * 10 + (c - b'0') as u128;
                seen += 1;
            }
            b'.' if !dot => dot = true,
            _ => return Err(NotASize),
        }
        i += 1;
    }
    if seen == 0 {
        return Err(NotASize);
    }
    let unit: u128 = if binary {
        1 << (10 * power)
    } else {
        10u128.pow(3 * power)
    };
    let bytes = mantissa * unit / 10u128.pow(decimals);
    if bytes > u64::MAX as u128 {
        return Err(TooLarge);
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_their_units() {
        assert_eq!(size_in_bytes("500"), Ok(500));
        assert_eq!(size_in_bytes("500B"), Ok(500));
        assert_eq!(size_in_bytes("1.5G"), Ok(1_500_000_000));
        assert_eq!(size_in_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(size_in_bytes(" 2 gib "), Ok(2 << 30));
        assert_eq!(size_in_bytes("10kB"), Ok(10_000));
        assert_eq!(size_in_bytes("0.5k"), Ok(500));
        assert_eq!(size_in_bytes("ten"), Err(SizeError::NotASize));
        assert!(size_in_bytes("").is_err());
        assert!(size_in_bytes("G").is_err());
        assert!(size_in_bytes("1.2.3").is_err());
        assert!(size_in_bytes("5i").is_err());
        assert!(size_in_bytes("-5").is_err());
        assert_eq!(size_in_bytes("3X"), Err(SizeError::UnknownUnit));
        assert_eq!(size_in_bytes("99999999999T"), Err(SizeError::TooLarge));
        assert_eq!(
            size_in_bytes("1000000000000000000000000000000"),
            Err(SizeError::TooLarge)
        );
        let big = "999999999999999999999999Ti";
        assert_eq!(size_in_bytes(big), Err(SizeError::TooLarge));
        assert_eq!(
            size_in_bytes("309485009821345068724781056Ti"),
            Err(SizeError::TooLarge)
        );
        assert_eq!(size_in_bytes("0000000000000000000000000000001k"), Ok(1000));
        assert_eq!(size_in_bytes("16777215.999999Ti"), Ok(18446744073708452104));
        assert_eq!(size_in_bytes("16777216Ti"), Err(SizeError::TooLarge));
        assert_eq!(size_in_bytes(".5k"), Ok(500));
        assert_eq!(size_in_bytes("5."), Ok(5));
        assert_eq!(size_in_bytes("."), Err(SizeError::NotASize));
        assert!(size_in_bytes("1e3").is_err());
        assert!(size_in_bytes("1.5.5").is_err());
    }
}
