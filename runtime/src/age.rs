//! Durations written for people: `45s`, `30min`, `12h`, `7d`, `2w`. The one parser of them,
//! for `#[cached(expires = "...")]` at compile time and for the `joblet` command's ages.

use std::time::Duration;

/// Why a duration does not parse: see [`duration_of`].
///
/// ```
/// let e = joblet_runtime::duration_of("soon").unwrap_err();
/// assert!(e.to_string().starts_with("not a duration"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not a whole number followed by a unit.
    NotADuration,
    /// A unit other than those known.
    UnknownUnit,
    /// More seconds than a `u64` holds.
    TooLarge,
}

impl DurationError {
    /// What is wrong, and how to write it.
    pub const fn message(self) -> &'static str {
        match self {
            DurationError::NotADuration => {
                "not a duration: write a whole number and a unit: 45s, 30min, 12h, 7d, 2w"
            }
            DurationError::UnknownUnit => "unknown unit: use s, min, h, d or w",
            DurationError::TooLarge => "too long a duration: 2^64 seconds or more",
        }
    }

    /// The message of `#[cached(expires = "...")]`, which the compiler shows at the literal.
    pub const fn in_attribute(self) -> &'static str {
        match self {
            DurationError::NotADuration => {
                "`expires` is not a duration: write a whole number and a unit, as in `expires = \"7d\"` (units s, min, h, d, w)"
            }
            DurationError::UnknownUnit => {
                "unknown unit in `expires`: use s, min, h, d or w, as in `expires = \"12h\"`"
            }
            DurationError::TooLarge => "`expires` is too long: 2^64 seconds or more",
        }
    }
}

impl std::error::Error for DurationError {}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// `45s`, `30min`, `12h`, `7d`, `2w` (also `30 min`): a whole number of seconds, minutes,
/// hours, days or weeks. A `const fn`, so that `#[cached(expires = "...")]` is checked at
/// compile time.
///
/// ```
/// use std::time::Duration;
/// use joblet_runtime::{DurationError, duration_of};
///
/// assert_eq!(duration_of("7d"), Ok(Duration::from_secs(7 * 86_400)));
/// assert_eq!(duration_of("15 min"), Ok(Duration::from_secs(900)));
/// assert_eq!(duration_of("3 fortnights"), Err(DurationError::UnknownUnit));
/// ```
///
/// # Errors
/// A [`DurationError`] saying what is wrong.
pub const fn duration_of(text: &str) -> Result<Duration, DurationError> {
    use DurationError::{NotADuration, TooLarge, UnknownUnit};
    let b = text.as_bytes();
    let (mut i, mut end) = (0, b.len());
    while i < end && b[i] == b' ' {
        i += 1;
    }
    while end > i && b[end - 1] == b' ' {
        end -= 1;
    }
    if i == end || !b[i].is_ascii_digit() {
        return Err(NotADuration);
    }
    let mut number: u64 = 0;
    while i < end && b[i].is_ascii_digit() {
        number = match number.checked_mul(10) {
            Some(n) => match n.checked_add((b[i] - b'0') as u64) {
                Some(n) => n,
                None => return Err(TooLarge),
            },
            None => return Err(TooLarge),
        };
        i += 1;
    }
    while i < end && b[i] == b' ' {
        i += 1;
    }
    let seconds_per = match unit(b, i, end) {
        Some(s) => s,
        None if i == end || b[i] == b'.' => return Err(NotADuration),
        None => return Err(UnknownUnit),
    };
    match number.checked_mul(seconds_per) {
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(TooLarge),
    }
}

/// The seconds in the unit written in `b[start..end]`.
const fn unit(b: &[u8], start: usize, end: usize) -> Option<u64> {
    const UNITS: [(&[u8], u64); 5] = [
        (b"s", 1),
        (b"min", 60),
        (b"h", 3600),
        (b"d", 86_400),
        (b"w", 7 * 86_400),
    ];
    let mut u = 0;
    while u < UNITS.len() {
        let (name, seconds) = UNITS[u];
        if end - start == name.len() {
            let mut k = 0;
            while k < name.len() && b[start + k] == name[k] {
                k += 1;
            }
            if k == name.len() {
                return Some(seconds);
            }
        }
        u += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_and_every_mistake() {
        let s = Duration::from_secs;
        assert_eq!(duration_of("45s"), Ok(s(45)));
        assert_eq!(duration_of(" 30min "), Ok(s(1800)));
        assert_eq!(duration_of("12 h"), Ok(s(43_200)));
        assert_eq!(duration_of("7d"), Ok(s(604_800)));
        assert_eq!(duration_of("2w"), Ok(s(1_209_600)));
        assert_eq!(duration_of("0s"), Ok(s(0)));
        assert_eq!(duration_of(""), Err(DurationError::NotADuration));
        assert_eq!(duration_of("d"), Err(DurationError::NotADuration));
        assert_eq!(duration_of("7"), Err(DurationError::NotADuration));
        assert_eq!(duration_of("1.5h"), Err(DurationError::NotADuration));
        assert_eq!(duration_of("7m"), Err(DurationError::UnknownUnit));
        assert_eq!(duration_of("7 days"), Err(DurationError::UnknownUnit));
        assert_eq!(
            duration_of("99999999999999999999s"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            duration_of("9999999999999999w"),
            Err(DurationError::TooLarge)
        );
    }
}
