//! Bad input at run time: damaged entry files and cache folders that cannot be used. Each is a
//! miss: the value is computed and returned, a warning is logged, and the entry is rewritten
//! where possible. Nothing panics and no wrong value comes back.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use joblet::cached;

static SERIES: AtomicUsize = AtomicUsize::new(0);

/// The tests below share `series`, its counter and its folder: they take turns.
static SERIES_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    SERIES_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cached(dir = common::dir("damaged"))]
fn series(n: u64) -> Vec<u64> {
    SERIES.fetch_add(1, SeqCst);
    (0..n).map(|i| i * i).collect()
}

#[cached(dir = common::dir("other_type"))]
fn series_as_text(n: u64) -> String {
    format!("{n}")
}

fn expected(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * i).collect()
}

/// Stores `series(n)` and returns the path of its entry.
fn stored(n: u64) -> PathBuf {
    let before = common::entries(&common::dir("damaged"));
    assert_eq!(series(n), expected(n));
    let after = common::entries(&common::dir("damaged"));
    let new: Vec<_> = after.into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1);
    new.into_iter().next().unwrap()
}

/// Damages an entry, then checks that the next call recomputes, warns, returns the right
/// value and rewrites the entry, so that the call after is a hit again.
fn recovers_from(n: u64, damage: impl FnOnce(&Path), warning: &str) {
    let _turn = turn();
    let path = stored(n);
    damage(&path);
    let computed = SERIES.load(SeqCst);
    let (value, logged) = common::warnings(|| series(n));
    assert_eq!(value, expected(n));
    assert_eq!(
        SERIES.load(SeqCst),
        computed + 1,
        "the damaged entry was not recomputed"
    );
    assert!(
        logged.contains("WARN"),
        "no warning for {warning}: {logged:?}"
    );
    assert!(
        logged.contains(warning),
        "expected {warning:?} in {logged:?}"
    );
    assert_eq!(series(n), expected(n));
    assert_eq!(
        SERIES.load(SeqCst),
        computed + 1,
        "the entry was not rewritten"
    );
}

#[test]
fn a_truncated_entry_is_a_miss() {
    recovers_from(
        1000,
        |p| {
            let len = fs::metadata(p).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        },
        "truncated",
    );
}

#[test]
fn a_zero_length_entry_is_a_miss() {
    recovers_from(1001, |p| fs::write(p, b"").unwrap(), "truncated");
}

#[test]
fn a_garbage_entry_is_a_miss() {
    recovers_from(
        1002,
        |p| {
            let len = fs::metadata(p).unwrap().len() as usize;
            let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            fs::write(p, garbage).unwrap();
        },
        "not a joblet file",
    );
}

#[test]
fn a_bit_flipped_entry_is_a_miss() {
    for (n, at) in [(1003, 0.5), (1004, 0.99), (1005, 0.2)] {
        recovers_from(
            n,
            |p| {
                let mut bytes = fs::read(p).unwrap();
                let i = (bytes.len() as f64 * at) as usize;
                bytes[i] ^= 0x10;
                fs::write(p, bytes).unwrap();
            },
            "checksum mismatch",
        );
    }
}

#[test]
fn an_entry_of_another_return_type_is_a_miss() {
    recovers_from(
        1006,
        |p| {
            series_as_text(5);
            let text_entry = common::entries(&common::dir("other_type")).pop().unwrap();
            fs::copy(text_entry, p).unwrap();
        },
        "file holds alloc::string::String",
    );
}

#[test]
fn an_unreadable_entry_is_a_miss_and_the_value_is_still_returned() {
    // A folder where the entry file should be: it can be neither read nor replaced.
    let _turn = turn();
    let path = stored(1007);
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let computed = SERIES.load(SeqCst);
    let (value, logged) = common::warnings(|| {
        let value = series(1007);
        // The write, and its failure, happen in the background.
        joblet::flush();
        value
    });
    assert_eq!(value, expected(1007));
    assert_eq!(SERIES.load(SeqCst), computed + 1);
    assert!(logged.contains("unreadable cache entry"), "{logged}");
    assert!(logged.contains("cannot store"), "{logged}");
}

static UNWRITABLE: AtomicUsize = AtomicUsize::new(0);

/// A cache folder below a regular file can never be created (even by root).
fn blocked_dir() -> PathBuf {
    let file = common::dir("blocked");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, b"a file, not a folder").unwrap();
    file.join("cache")
}

#[cached(dir = blocked_dir())]
fn uncacheable(x: u32) -> u32 {
    UNWRITABLE.fetch_add(1, SeqCst);
    x * 3
}

#[test]
fn a_cache_folder_that_cannot_be_created_degrades_to_computing() {
    // Small results are written in the background: the warning comes from there, through
    // the caller's subscriber, once the write fails; then the call computes again.
    let (values, logged) = common::warnings(|| {
        let first = uncacheable(2);
        joblet::flush();
        (first, uncacheable(2))
    });
    assert_eq!(values, (6, 6));
    assert_eq!(UNWRITABLE.load(SeqCst), 2);
    assert!(
        logged.contains("cannot store result in the cache"),
        "{logged}"
    );
    joblet::flush();
    assert!(!uncacheable::is_cached(2));
    // Clearing a folder that cannot exist is an error that names it, not a panic.
    let err = uncacheable::clear().unwrap_err();
    assert!(err.to_string().contains("blocked"), "{err}");
}

static READONLY: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("unwritable"))]
fn in_unwritable(x: u32) -> u32 {
    READONLY.fetch_add(1, SeqCst);
    x + 10
}

#[test]
fn a_cache_folder_that_cannot_be_written_degrades_to_computing() {
    // Make every shard folder of the function unusable by putting files in their place.
    let root = common::dir("unwritable");
    assert_eq!(in_unwritable(0), 10);
    let version_dir = common::entries(&root)[0]
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    fs::remove_dir_all(&version_dir).unwrap();
    fs::write(&version_dir, b"in the way").unwrap();
    let (values, logged) = common::warnings(|| {
        let first = in_unwritable(1);
        joblet::flush();
        (first, in_unwritable(1))
    });
    assert_eq!(values, (11, 11));
    assert_eq!(READONLY.load(SeqCst), 3);
    assert!(
        logged.contains("cannot store result in the cache"),
        "{logged}"
    );
}

static WIDE: AtomicUsize = AtomicUsize::new(0);

/// 1.6 MB: large enough to be read through a memory map.
#[cached(dir = common::dir("mapped"))]
fn wide(seed: u64) -> Vec<f64> {
    WIDE.fetch_add(1, SeqCst);
    (0..200_000).map(|i| (i ^ seed) as f64).collect()
}

#[test]
fn damaged_large_entries_read_through_a_map_are_misses_too() {
    for (seed, damage) in [(1u64, "flip"), (2, "truncate")] {
        let before = common::entries(&common::dir("mapped"));
        assert_eq!(wide(seed).len(), 200_000);
        let path = common::entries(&common::dir("mapped"))
            .into_iter()
            .find(|p| !before.contains(p))
            .unwrap();
        assert!(fs::metadata(&path).unwrap().len() > 1 << 20);
        let mut bytes = fs::read(&path).unwrap();
        match damage {
            "flip" => {
                let i = bytes.len() - 12_345;
                bytes[i] ^= 1;
            }
            _ => bytes.truncate(bytes.len() - 4096),
        }
        fs::write(&path, bytes).unwrap();
        let computed = WIDE.load(SeqCst);
        let (value, logged) = common::warnings(|| wide(seed));
        assert_eq!(
            value,
            (0..200_000).map(|i| (i ^ seed) as f64).collect::<Vec<_>>()
        );
        assert_eq!(WIDE.load(SeqCst), computed + 1, "{damage}: not recomputed");
        assert!(logged.contains("WARN"), "{damage}: {logged}");
        assert!(wide::is_cached(seed), "{damage}: not rewritten");
    }
}

#[cached(dir = common::dir("bulk"))]
fn floats(n: u32) -> Vec<f64> {
    (0..n).map(f64::from).collect()
}

/// The code `#[cached]` generates decodes a `Vec<f64>` with the bulk copy, not serde: both
/// read a valid entry alike, so this tells them apart by a length prefix that promises more
/// numbers than the payload holds, in an entry re-signed so that its checksum holds.
#[test]
fn a_cached_number_vector_is_decoded_in_bulk() {
    assert_eq!(floats(100).len(), 100);
    let path = common::entries(&common::dir("bulk")).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let name_len = u16::from_le_bytes([bytes[20], bytes[21]]) as usize;
    let args_len = u16::from_le_bytes([bytes[22], bytes[23]]) as usize;
    assert_eq!(
        &bytes[64 + name_len..][..args_len],
        b"100",
        "the rendered argument"
    );
    let payload = 64 + name_len + args_len;
    assert_eq!(bytes[payload], 100, "the varint length of 100 floats");
    bytes[payload] = 101;
    common::resign(&mut bytes);
    fs::write(&path, bytes).unwrap();
    let (value, logged) = common::warnings(|| floats(100));
    assert_eq!(value.len(), 100);
    assert!(
        logged.contains("a sequence of 101 8-byte numbers in 800 bytes"),
        "{logged}"
    );
}

/// A result whose `Serialize` fails, as a poisoned lock's does.
#[derive(serde::Deserialize, Debug, PartialEq)]
struct NotStorable(u32);

impl serde::Serialize for NotStorable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "not storable: the lock is poisoned",
        ))
    }
}

static UNSTORABLE: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("unstorable"))]
fn unstorable(x: u32) -> NotStorable {
    UNSTORABLE.fetch_add(1, SeqCst);
    NotStorable(x)
}

/// joblib's `test_store_backends.py::test_warning_on_pickling_error`: the warning for a result
/// that cannot be stored carries the serializer's message.
#[test]
fn a_result_that_does_not_serialize_is_returned_with_the_serializers_message() {
    let (value, logged) = common::warnings(|| unstorable(3));
    assert_eq!(value, NotStorable(3));
    assert!(
        logged.contains("cannot store result in the cache"),
        "{logged}"
    );
    assert!(
        logged.contains("value does not serialize: not storable: the lock is poisoned"),
        "{logged}"
    );
    assert!(!unstorable::is_cached(3));
    assert_eq!(unstorable(3), NotStorable(3));
    assert_eq!(UNSTORABLE.load(SeqCst), 2);
    assert!(common::temp_files(&common::dir("unstorable")).is_empty());
}
