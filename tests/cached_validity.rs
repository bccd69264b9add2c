//! Entries that expire or fail a check are misses: `#[cached(expires = "...")]`,
//! `#[cached(validate = ...)]` and their `Memory::cache` forms.
//!
//! Entries are aged by rewriting their files' creation time; a process keeps copies of the
//! small entries it loaded, which such a rewrite does not reach, so those tests run in a child
//! process with the copies off (`JOBLET_IN_MEMORY=0`). Copies age with the clock, as one test
//! shows on its own.

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use joblet::{EntryInfo, Memory, cached};

/// Moves the creation time written in the header of every entry under `dir` back by `age`,
/// as if the entries had been stored that long ago, and signs them again.
fn age_entries(dir: &Path, age: Duration) {
    let entries = common::entries(dir);
    assert!(!entries.is_empty());
    for path in entries {
        let mut bytes = std::fs::read(&path).unwrap();
        let created = u64::from_le_bytes(bytes[56..64].try_into().unwrap());
        let moved = created - u64::try_from(age.as_millis()).unwrap();
        bytes[56..64].copy_from_slice(&moved.to_le_bytes());
        common::resign(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
    }
}

/// Runs `test` of this binary in a child process with no copies of entries in memory, unless
/// this is that child; says whether it was the child, which then runs the test's body.
fn in_child_without_copies(test: &str) -> bool {
    if std::env::var_os(joblet::IN_MEMORY_ENV).is_some() {
        return true;
    }
    let out = common::child(test)
        .env(joblet::IN_MEMORY_ENV, "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

static DAILY: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("expires"), expires = "1d")]
fn daily(x: u64) -> u64 {
    DAILY.fetch_add(1, SeqCst);
    x + 1
}

#[test]
fn an_entry_older_than_expires_is_computed_and_stored_again() {
    if !in_child_without_copies("an_entry_older_than_expires_is_computed_and_stored_again") {
        return;
    }
    let dir = common::dir("expires");
    assert_eq!(daily(1), 2);
    assert_eq!(daily(1), 2);
    assert_eq!(DAILY.load(SeqCst), 1, "a fresh entry is a hit");

    age_entries(&dir, Duration::from_secs(23 * 3600));
    assert_eq!(daily(1), 2);
    assert_eq!(DAILY.load(SeqCst), 1, "23 hours old: still served");
    assert!(daily::is_cached(1));

    age_entries(&dir, Duration::from_secs(2 * 3600));
    assert!(!daily::is_cached(1), "25 hours old is not served");
    assert_eq!(daily(1), 2);
    assert_eq!(DAILY.load(SeqCst), 2, "an expired entry is a miss");

    // Stored again, with a new creation time: served again.
    assert_eq!(common::entries(&dir).len(), 1);
    let entry = &Memory::new(&dir).entries().unwrap()[0];
    let age = SystemTime::now().duration_since(entry.created).unwrap();
    assert!(age < Duration::from_secs(60), "{age:?}");
    assert_eq!(daily(1), 2);
    assert_eq!(DAILY.load(SeqCst), 2);
}

static VALID: AtomicBool = AtomicBool::new(true);
static CHECKED: Mutex<Vec<EntryInfo>> = Mutex::new(Vec::new());
static CHECKED_CALLS: AtomicUsize = AtomicUsize::new(0);

fn still_valid(entry: &EntryInfo) -> bool {
    CHECKED.lock().unwrap().push(entry.clone());
    VALID.load(SeqCst)
}

#[cached(dir = common::dir("validate"), validate = still_valid)]
fn checked(name: String) -> usize {
    CHECKED_CALLS.fetch_add(1, SeqCst);
    name.len()
}

#[test]
fn validate_is_asked_before_each_hit_and_false_makes_a_miss() {
    let _ = CHECKED.lock().unwrap().drain(..);
    assert_eq!(checked("ada".into()), 3);
    assert!(
        CHECKED.lock().unwrap().is_empty(),
        "a miss has nothing to check"
    );
    // Written to its file, whose path the check sees.
    joblet::flush();

    assert_eq!(checked("ada".into()), 3);
    assert_eq!(CHECKED_CALLS.load(SeqCst), 1, "validate said true: a hit");
    {
        let seen = CHECKED.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let entry = &seen[0];
        assert!(
            entry.function.ends_with("cached_validity.checked"),
            "{entry:?}"
        );
        assert_eq!(entry.args, "\"ada\"");
        assert_eq!(entry.type_name, "usize");
        assert_eq!(entry.hits, 0, "the hit being checked is not counted yet");
        assert!(entry.path.is_file());
        assert!(entry.created <= SystemTime::now() && entry.created > UNIX_EPOCH);
    }

    VALID.store(false, SeqCst);
    assert!(!checked::is_cached("ada".into()));
    assert_eq!(checked("ada".into()), 3);
    assert_eq!(CHECKED_CALLS.load(SeqCst), 2, "validate said false: a miss");
    let refused_hits = Memory::new(common::dir("validate")).entries().unwrap()[0].hits;
    assert_eq!(refused_hits, 0, "a refused entry's hit is not counted");

    VALID.store(true, SeqCst);
    assert!(checked::is_cached("ada".into()));
    assert_eq!(checked("ada".into()), 3);
    assert_eq!(
        CHECKED_CALLS.load(SeqCst),
        2,
        "the entry stored again is served"
    );
}

fn few_hits(entry: &EntryInfo) -> bool {
    entry.hits < 2
}

#[test]
fn memory_cache_expires_and_validates_too() {
    if !in_child_without_copies("memory_cache_expires_and_validates_too") {
        return;
    }
    let dir = common::dir("memory-validity");
    let calls = AtomicUsize::new(0);
    let memory = Memory::new(&dir);
    let cube = memory
        .cache("cube", |x: u64| {
            calls.fetch_add(1, SeqCst);
            x * x * x
        })
        .expires(Duration::from_secs(3600))
        .validate(few_hits);
    assert_eq!(cube.call(2), 8);
    // Hits of an entry still queued for the writer are not counted: let it be written.
    joblet::flush();
    assert_eq!(cube.call(2), 8); // hit 1
    assert_eq!(cube.call(2), 8); // hit 2
    assert_eq!(calls.load(SeqCst), 1);
    // Hits are written to the entry at most once a second, or when the folder is listed.
    memory.entries().unwrap();
    assert_eq!(cube.call(2), 8);
    assert_eq!(calls.load(SeqCst), 2, "two hits: refused by validate");

    assert_eq!(cube.call(2), 8);
    assert_eq!(calls.load(SeqCst), 2);
    age_entries(&dir, Duration::from_secs(2 * 3600));
    assert!(!cube.is_cached::<_, u64>(&2));
    assert_eq!(cube.call(2), 8);
    assert_eq!(calls.load(SeqCst), 3, "older than an hour: a miss");
}

static SECONDLY: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("expires-in-memory"), expires = "1s")]
fn secondly(x: u64) -> u64 {
    SECONDLY.fetch_add(1, SeqCst);
    x * 2
}

#[test]
fn a_copy_in_memory_expires_with_the_clock() {
    assert_eq!(secondly(4), 8);
    joblet::flush();
    // Loaded from its file, and kept in memory: then served from there.
    assert_eq!(secondly(4), 8);
    assert_eq!(secondly(4), 8);
    assert_eq!(SECONDLY.load(SeqCst), 1);
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!secondly::is_cached(4));
    assert_eq!(secondly(4), 8);
    assert_eq!(SECONDLY.load(SeqCst), 2, "older than a second: a miss");
}
