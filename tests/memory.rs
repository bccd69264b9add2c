//! `Memory`: listing a cache folder written by `#[cached]`, clearing it, and trimming it to
//! limits, least recently used first.

mod common;

use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use joblet::{Limits, Memory, cached};

fn dir(name: &str) -> PathBuf {
    common::dir(&format!("memory-{name}"))
}

/// Sets the entry's last use to `seconds_ago`.
fn used(path: &Path, seconds_ago: u64) {
    let when = SystemTime::now() - Duration::from_secs(seconds_ago);
    let file = File::options().write(true).open(path).unwrap();
    file.set_times(FileTimes::new().set_accessed(when).set_modified(when))
        .unwrap();
}

#[test]
fn entries_lists_every_stored_call_with_its_metadata() {
    #[cached(dir = dir("list"))]
    fn square(x: u64) -> Vec<u64> {
        vec![x * x; 100]
    }
    #[cached(dir = dir("list"))]
    fn cube(x: u64) -> u64 {
        x * x * x
    }
    for x in 0..3 {
        square(x);
    }
    cube(2);
    let entries = Memory::new(dir("list")).entries().unwrap();
    assert_eq!(entries.len(), 4);
    let squares: Vec<_> = entries
        .iter()
        .filter(|e| e.function.ends_with(".square"))
        .collect();
    assert_eq!(squares.len(), 3);
    assert!(
        squares
            .iter()
            .all(|e| e.type_name == "alloc::vec::Vec<u64>" && e.size > 100)
    );
    let c = entries
        .iter()
        .find(|e| e.function.ends_with(".cube"))
        .unwrap();
    assert_eq!(c.type_name, "u64");
    assert_eq!(c.key.len(), 32);
    assert!(c.path.ends_with(format!("{}/{}.jbl", &c.key[..2], c.key)));
    assert!(c.created <= SystemTime::now());
    assert!(Memory::new(dir("never-made")).entries().unwrap().is_empty());
}

#[test]
fn reduce_size_evicts_least_recently_used_first_under_each_limit() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    static COMPUTED: AtomicUsize = AtomicUsize::new(0);
    #[cached(dir = dir("lru"))]
    fn square(x: u64) -> Vec<u64> {
        COMPUTED.fetch_add(1, SeqCst);
        vec![x * x; 100]
    }
    for x in 0..6 {
        square(x);
    }
    let memory = Memory::new(dir("lru"));
    // Make the order of use known: entry i was last used (6 - i) hours ago.
    let mut entries = memory.entries().unwrap();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for (i, e) in entries.iter().enumerate() {
        used(&e.path, (6 - i as u64) * 3600);
    }
    let paths: Vec<PathBuf> = entries.iter().map(|e| e.path.clone()).collect();
    let left = || {
        let mut p: Vec<PathBuf> = memory
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        p.sort();
        p
    };
    // Items: keep the 5 most recently used.
    let reduced = memory.reduce_size(&Limits::new().items(5)).unwrap();
    assert_eq!(reduced.entries, 1);
    assert_eq!(left(), paths[1..]);
    // Age: nothing unused for more than 3.5 hours.
    memory
        .reduce_size(&Limits::new().age(Duration::from_secs(3 * 3600 + 1800)))
        .unwrap();
    assert_eq!(left(), paths[3..]);
    // Bytes: room for two entries.
    let size = entries[0].size;
    let reduced = memory
        .reduce_size(&Limits::new().bytes(2 * size + 1))
        .unwrap();
    assert_eq!((reduced.entries, reduced.bytes), (1, size));
    assert_eq!(left(), paths[4..]);
    // Evicted calls compute again; the two left load.
    let before = COMPUTED.load(SeqCst);
    for x in 0..6 {
        square(x);
    }
    assert_eq!(COMPUTED.load(SeqCst) - before, 4);
    assert_eq!(memory.entries().unwrap().len(), 6);
}

#[test]
fn clear_removes_entries_and_abandoned_temporary_files_only() {
    #[cached(dir = dir("clear"))]
    fn square(x: u64) -> Vec<u64> {
        vec![x * x; 100]
    }
    #[cached(dir = dir("clear"))]
    fn cube(x: u64) -> u64 {
        x * x * x
    }
    square(1);
    cube(1);
    cube(2);
    let memory = Memory::new(dir("clear"));
    let cube_entry = memory
        .entries()
        .unwrap()
        .into_iter()
        .find(|e| e.function.ends_with(".cube"))
        .unwrap();
    let shard = cube_entry.path.parent().unwrap();
    // A crashed writer's file, two hours old, and a live writer's, just made.
    let (old, fresh) = (shard.join(".tmp-crashed.jbl"), shard.join(".tmp-live.jbl"));
    fs::write(&old, b"partial").unwrap();
    used(&old, 7200);
    fs::write(&fresh, b"partial").unwrap();
    // Not joblet's: left alone.
    let theirs = dir("clear").join("notes.txt");
    fs::write(&theirs, b"mine").unwrap();

    let function = cube_entry.function.replace('.', "::");
    let reduced = memory.clear_function(&function).unwrap();
    assert_eq!((reduced.entries, reduced.temp_files), (2, 1));
    assert!(!old.exists() && fresh.exists());
    assert_eq!(memory.entries().unwrap().len(), 1);

    let reduced = memory.clear().unwrap();
    assert_eq!(reduced.entries, 1);
    assert!(memory.entries().unwrap().is_empty());
    assert!(theirs.exists() && fresh.exists());
}

#[test]
fn a_function_name_never_reaches_outside_the_folder() {
    #[cached(dir = dir("outside"))]
    fn kept(x: u64) -> u64 {
        x
    }
    kept(1);
    let entry = Memory::new(dir("outside")).entries().unwrap().remove(0);
    // A handle rooted beside the entry's code-version folder: `..` from there would be the
    // entry's function folder, laid out as a function's.
    let function = dir("outside").join(&entry.function);
    fs::create_dir_all(function.join("elsewhere")).unwrap();
    let memory = Memory::new(function.join("elsewhere"));
    for name in ["..", "."] {
        assert!(memory.entries_of(name).unwrap().is_empty(), "{name}");
        assert_eq!(memory.clear_function(name).unwrap().entries, 0, "{name}");
    }
    assert!(entry.path.exists());
}
