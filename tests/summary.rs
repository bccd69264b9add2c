//! `Memory::summary` (`joblet report`) on a folder whose sums are kept: what it says is what
//! reading every entry says, after stores, hits, removals, and a kept file that is stale,
//! damaged or foreign.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use joblet::Memory;

/// Longer than a shard folder must have been left alone for its sum to be kept.
const SETTLE: Duration = Duration::from_millis(2200);

/// Per function: entries, bytes, hits, outdated bytes.
type Lines = Vec<(String, u64, u64, u64, u64)>;

/// What reading every entry says.
fn read_every_entry(memory: &Memory) -> Lines {
    let entries = memory.entries().unwrap();
    let mut functions: Vec<String> = entries.iter().map(|e| e.function.clone()).collect();
    functions.sort();
    functions.dedup();
    let mut lines: Lines = functions
        .into_iter()
        .map(|f| {
            let of: Vec<_> = entries.iter().filter(|e| e.function == f).collect();
            let outdated = of.iter().filter(|e| e.outdated).map(|e| e.size).sum();
            let bytes = of.iter().map(|e| e.size).sum();
            let hits = of.iter().map(|e| e.hits).sum();
            (f, of.len() as u64, bytes, hits, outdated)
        })
        .collect();
    lines.sort();
    lines
}

/// What the summary says.
fn summed(memory: &Memory) -> Lines {
    let mut lines: Lines = memory
        .summary()
        .unwrap()
        .into_iter()
        .map(|l| (l.function, l.entries, l.bytes, l.hits, l.outdated_bytes))
        .collect();
    lines.sort();
    lines
}

fn assert_summary_true(memory: &Memory, after: &str) {
    let summed = summed(memory);
    assert_eq!(summed, read_every_entry(memory), "after {after}");
    assert!(!summed.is_empty());
}

fn sums_file(root: &Path) -> PathBuf {
    root.join(".joblet-sums")
}

#[test]
fn kept_sums_follow_stores_hits_removals_and_damage() {
    let root = common::dir("summary-kept");
    let memory = Memory::new(&root);
    let square = memory.cache("stats::square", |x: u64| vec![x * x; 10]);
    let half = memory.cache("stats::half", |x: u64| x / 2);
    let old = memory.cache("stats::half", |x: u64| x / 2).version("old");
    for x in 0..300 {
        let _: Vec<u64> = square.call(x);
        let _: u64 = half.call(x);
    }
    let _: u64 = old.call(1);
    let _: Vec<u64> = square.call(7); // a hit
    joblet::flush();
    std::thread::sleep(SETTLE);

    assert_summary_true(&memory, "the first summary");
    let kept = fs::metadata(sums_file(&root)).expect("the sums are kept");
    assert_summary_true(&memory, "a summary from kept sums");
    let again = fs::metadata(sums_file(&root)).unwrap();
    assert_eq!(
        (kept.ino(), kept.mtime_nsec()),
        (again.ino(), again.mtime_nsec()),
        "nothing changed: the kept sums are not written again"
    );
    let settled = fs::read(sums_file(&root)).unwrap();

    let _: Vec<u64> = square.call(7);
    let _: u64 = half.call(3);
    assert_summary_true(&memory, "hits");
    let _: u64 = half.call(1000);
    assert_summary_true(&memory, "a store");
    let gone = &memory.entries_of("stats::square").unwrap()[0];
    fs::remove_file(&gone.path).unwrap();
    assert_summary_true(&memory, "a removal by hand");
    memory.clear_old_versions().unwrap();
    assert_summary_true(&memory, "clearing the old version");

    // Sums kept before all that, and the changes settled since: none of them is used.
    std::thread::sleep(SETTLE);
    fs::write(sums_file(&root), &settled).unwrap();
    assert_summary_true(&memory, "a stale sums file");
    assert_ne!(
        fs::read(sums_file(&root)).unwrap(),
        settled,
        "written again"
    );

    let mut damaged = fs::read(sums_file(&root)).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    fs::write(sums_file(&root), &damaged).unwrap();
    assert_summary_true(&memory, "a damaged sums file");
    fs::write(sums_file(&root), b"not joblet's").unwrap();
    assert_summary_true(&memory, "a foreign sums file");

    memory.clear().unwrap();
    assert!(memory.summary().unwrap().is_empty(), "cleared");
}

#[test]
fn a_summary_of_a_cache_that_cannot_be_written_is_still_true() {
    let root = common::dir("summary-read-only");
    let memory = Memory::new(&root);
    let double = memory.cache("double", |x: u64| 2 * x);
    for x in 0..50 {
        let _: u64 = double.call(x);
    }
    joblet::flush();
    std::thread::sleep(SETTLE);
    // A folder where the sums file cannot be made: a folder is in its place.
    fs::create_dir_all(sums_file(&root)).unwrap();
    assert_summary_true(&memory, "a sums file that cannot be written");
    assert_summary_true(&memory, "again");
}
