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
        std::thread::sleep(Duration::from_millis(20));
        x * x * x
    }
    // Creation times are stored to the millisecond.
    let before = SystemTime::now() - Duration::from_millis(1);
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
    assert!(before <= c.created && c.created <= SystemTime::now());
    assert!(c.compute >= Duration::from_millis(20), "{:?}", c.compute);
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
    // Make the order of use known, and unlike the order of the paths (which break ties):
    // entry i, in reverse path order, was last used (6 - i) hours ago.
    let mut entries = memory.entries().unwrap();
    entries.sort_by(|a, b| b.path.cmp(&a.path));
    for (i, e) in entries.iter().enumerate() {
        used(&e.path, (6 - i as u64) * 3600);
    }
    // Least recently used first.
    let paths: Vec<PathBuf> = entries.iter().map(|e| e.path.clone()).collect();
    let sorted = |paths: &[PathBuf]| {
        let mut p = paths.to_vec();
        p.sort();
        p
    };
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
    assert_eq!(left(), sorted(&paths[1..]));
    // Age: nothing unused for more than 3.5 hours.
    memory
        .reduce_size(&Limits::new().age(Duration::from_secs(3 * 3600 + 1800)))
        .unwrap();
    assert_eq!(left(), sorted(&paths[3..]));
    // Bytes: room for two entries.
    let size = entries[0].size;
    let reduced = memory
        .reduce_size(&Limits::new().bytes(2 * size + 1))
        .unwrap();
    assert_eq!((reduced.entries, reduced.bytes), (1, size));
    assert_eq!(left(), sorted(&paths[4..]));
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
    // Wrapped functions named so get folders of their own, inside the cache.
    let theirs = function.join("theirs.txt");
    fs::write(&theirs, b"mine").unwrap();
    for name in ["", ".", ".."] {
        let odd = memory.cache(name, |x: u64| x + 1);
        assert_eq!(odd.call(1), 2);
        assert_eq!(memory.entries_of(name).unwrap().len(), 1, "{name:?}");
        odd.clear().unwrap();
        assert!(memory.entries_of(name).unwrap().is_empty(), "{name:?}");
    }
    assert!(entry.path.exists() && theirs.exists());
    assert!(memory.root().exists());
}

#[test]
fn entries_record_their_arguments_hits_and_last_use() {
    /// Serializable, but without `Debug`.
    #[derive(serde::Serialize)]
    struct Opaque;
    #[cached(dir = dir("meta"), ignore = [log])]
    fn describe(n: u64, label: &str, _opaque: &Opaque, data: Vec<f64>, log: bool) -> usize {
        let _ = log;
        n as usize + label.len() + data.len()
    }
    let data = vec![0.5; 100_000];
    assert_eq!(describe(3, "abc", &Opaque, data.clone(), true), 100_006);
    let memory = Memory::new(dir("meta"));
    let entry = memory.entries().unwrap().remove(0);
    assert!(
        entry
            .args
            .starts_with(r#"3, "abc", <&Opaque>, [0.5, 0.5, "#),
        "{}",
        entry.args
    );
    // A large argument is cut short; an ignored one is neither hashed nor shown.
    assert!(entry.args.ends_with("…, _"), "{}", entry.args);
    assert!(entry.args.len() < 200, "{}", entry.args);
    assert_eq!(entry.hits, 0);

    // Each hit counts, and marks the entry as just used.
    used(&entry.path, 3600);
    for _ in 0..3 {
        assert_eq!(describe(3, "abc", &Opaque, data.clone(), false), 100_006);
    }
    let hit = memory.entries().unwrap().remove(0);
    assert_eq!(hit.hits, 3);
    let since = SystemTime::now().duration_since(hit.last_used).unwrap();
    assert!(since < Duration::from_secs(60), "{since:?}");
    // The count is not part of the checksum: the entry still loads.
    assert!(describe::is_cached(3, "abc", &Opaque, data, true));
}

#[test]
fn a_wrapped_closure_is_cached_like_an_annotated_function() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let computed = AtomicUsize::new(0);
    let memory = Memory::new(dir("wrapped"));
    let area = |(w, h): (u32, u32)| {
        computed.fetch_add(1, SeqCst);
        u64::from(w) * u64::from(h)
    };
    let cached_area = memory.cache("geometry::area", area).version("1");
    assert_eq!(cached_area.call((3, 4)), 12);
    assert_eq!(cached_area.call((3, 4)), 12);
    assert_eq!(cached_area.call((5, 4)), 20);
    assert_eq!(computed.load(SeqCst), 2);
    assert!(cached_area.is_cached::<_, u64>(&(3, 4)));
    assert!(!cached_area.is_cached::<_, u64>(&(9, 9)));

    // Same folder layout and format as `#[cached]`, listed under the name given.
    let entries = memory.entries_of("geometry::area").unwrap();
    assert_eq!(entries.len(), 2);
    let mut args: Vec<&str> = entries.iter().map(|e| e.args.as_str()).collect();
    args.sort();
    assert_eq!(args, ["(3, 4)", "(5, 4)"]);
    assert_eq!(entries.iter().map(|e| e.hits).sum::<u64>(), 1);

    // Another version, or another name, is another function; also a version set on a
    // wrapper that was called before.
    let v2 = memory.cache("geometry::area", area).version("2");
    let called = memory.cache("geometry::area", area).version("1");
    assert_eq!(called.call((3, 4)), 12); // a hit, which resolves version 1's folder
    let now_v2 = called.version("2");
    assert!(!now_v2.is_cached::<_, u64>(&(3, 4)));
    assert_eq!(now_v2.call((3, 4)), 12);
    assert_eq!(v2.call((3, 4)), 12); // the same version: a hit
    assert_eq!(computed.load(SeqCst), 3);
    // In a folder of its own, as the version changes the folder (not only the key).
    let mut versions: Vec<String> = memory
        .entries_of("geometry::area")
        .unwrap()
        .into_iter()
        .filter(|e| e.args == "(3, 4)")
        .map(|e| e.code_version)
        .collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), 2, "{versions:?}");
    let renamed = memory.cache("geometry::surface", area).version("1");
    assert_eq!(renamed.call((3, 4)), 12);
    assert_eq!(computed.load(SeqCst), 4);

    // `refresh` recomputes; `try_call` stores only successes; `clear` removes every version.
    assert_eq!(cached_area.refresh((3, 4)), 12);
    assert_eq!(computed.load(SeqCst), 5);
    let parse = memory.cache("parse", |s: &str| s.parse::<u8>());
    assert!(parse.try_call("300").is_err());
    assert_eq!(parse.try_call("30"), Ok(30));
    assert_eq!(memory.entries_of("parse").unwrap().len(), 1);
    cached_area.clear().unwrap();
    assert!(memory.entries_of("geometry::area").unwrap().is_empty());
    assert_eq!(memory.entries_of("geometry::surface").unwrap().len(), 1);
}

/// The bytes below `dir`, in entry files.
fn total(dir: &Path) -> u64 {
    common::entries(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn a_size_limit_in_the_attribute_is_enforced_as_entries_are_stored() {
    #[cached(dir = dir("limit-attr"), max_size = "20k")]
    fn blob(i: u32) -> Vec<u8> {
        vec![i as u8; 4000]
    }
    let size = {
        blob(0);
        total(&dir("limit-attr"))
    };
    assert!((4000..4200).contains(&size), "{size}");
    for i in 1..12 {
        blob(i);
        assert!(total(&dir("limit-attr")) <= 20_000, "after {i}");
    }
    // The most recently stored stay; the least recently used went first.
    assert!(blob::is_cached(11) && blob::is_cached(10));
    assert!(!blob::is_cached(0) && !blob::is_cached(1));
}

#[test]
fn a_size_limit_on_memory_or_in_the_folders_settings_file_is_enforced() {
    // On the handle.
    let memory = Memory::new(dir("limit-memory")).max_size(12_000);
    let blob = memory.cache("blob", |i: u32| vec![i as u8; 4000]);
    for i in 0..8 {
        blob.call(i);
        assert!(total(memory.root()) <= 12_000, "after {i}");
    }
    assert!(blob.is_cached::<_, Vec<u8>>(&7));
    assert!(!blob.is_cached::<_, Vec<u8>>(&0));

    // In `joblet.toml`, for every function that stores in the folder.
    fs::create_dir_all(dir("limit-file")).unwrap();
    fs::write(
        dir("limit-file").join(joblet::CONFIG_FILE),
        "# this disk is small\nmax_size = \"10 kB\"\n",
    )
    .unwrap();
    #[cached(dir = dir("limit-file"))]
    fn limited(i: u32) -> Vec<u8> {
        vec![i as u8; 3000]
    }
    for i in 0..10 {
        limited(i);
        assert!(total(&dir("limit-file")) <= 10_000, "after {i}");
    }
    assert!(limited::is_cached(9));
    assert!(!limited::is_cached(0));
}

const EVENTS_CHILD: &str = "JOBLET_TEST_EVENTS_CHILD";

/// In a process of its own: tracing caches whether a callsite is wanted for the whole
/// process, and the other tests here reach the same callsites without a subscriber, which
/// left this one's events unseen in about 1 run in 10.
#[test]
fn every_cache_decision_is_a_tracing_event_with_its_function_and_key() {
    let out = common::child("events_child")
        .env(EVENTS_CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn events_child() {
    if std::env::var_os(EVENTS_CHILD).is_none() {
        return;
    }
    #[cached(dir = dir("events"), max_size = "6k")]
    fn traced(i: u32) -> Vec<u8> {
        vec![i as u8; 2500]
    }
    let ((), logged) = common::logs(tracing::Level::DEBUG, || {
        traced(1); // miss, store
        traced(1); // hit
        traced(2);
        traced(3); // past the limit: evicts
        // Small results are written, and evictions made, in the background.
        joblet::flush();
    });
    let lines: Vec<&str> = logged.lines().collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no `{message}` in {logged}"))
    };
    for message in ["cache miss; computing", "stored", "cache hit"] {
        let line = find(message);
        assert!(line.contains("function=traced"), "{line}");
        // The key's first 12 hex digits.
        let key = line.split("key=\"").nth(1).unwrap_or_default();
        let digits = key.split('"').next().unwrap_or_default();
        assert!(
            digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
    }
    assert!(find("stored").contains("bytes="));
    assert!(find("cache hit").contains("took="));
    // Each entry evicted, then the summary of the eviction.
    assert!(find(" evicted path=").contains("bytes="));
    assert!(find("over its size limit").contains("evicted=1"));
}

#[test]
fn hits_from_many_threads_are_all_counted() {
    #[cached(dir = dir("threads-hits"))]
    fn shared(x: u64) -> u64 {
        x + 1
    }
    shared(1);
    let threads = 8;
    let each = 2000;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    assert_eq!(shared(1), 2);
                }
            });
        }
    });
    let entry = Memory::new(dir("threads-hits"))
        .entries()
        .unwrap()
        .remove(0);
    assert_eq!(entry.hits, threads * each);
}

#[test]
fn once_a_folder_has_a_limit_every_store_in_it_counts() {
    #[cached(dir = dir("limit-shared"), max_size = "12k")]
    fn limited(i: u32) -> Vec<u8> {
        vec![i as u8; 1000]
    }
    limited(0);
    // Stores without a limit of their own, in the same folder and process.
    let unlimited =
        Memory::new(dir("limit-shared")).cache("unlimited", |i: u32| vec![i as u8; 3000]);
    for i in 0..10 {
        unlimited.call(i);
        assert!(total(&dir("limit-shared")) <= 12_000, "after {i}");
    }
}

/// A function's folder that is a link to a folder elsewhere is not the cache's: clearing the
/// function removes the link at most, never the entry-shaped files it points to (as `clear`
/// and pruning, which skip such links, already did).
#[cfg(unix)]
#[test]
fn clearing_a_function_never_follows_a_link() {
    #[cached(dir = dir("linked"))]
    fn linked(x: u64) -> u64 {
        x
    }
    // Someone's files, laid out as a function's folder.
    linked(1);
    let entry = Memory::new(dir("linked")).entries().unwrap().remove(0);
    let elsewhere = dir("linked-elsewhere");
    let version = entry.path.parent().unwrap().parent().unwrap();
    let copy = elsewhere
        .join(version.file_name().unwrap())
        .join(&entry.key[..2]);
    fs::create_dir_all(&copy).unwrap();
    let theirs = copy.join(entry.path.file_name().unwrap());
    fs::copy(&entry.path, &theirs).unwrap();
    // The function's folder replaced by a link to them.
    let function = dir("linked").join(&entry.function);
    fs::remove_dir_all(&function).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &function).unwrap();

    let memory = Memory::new(dir("linked"));
    assert!(memory.entries_of(&entry.function).unwrap().is_empty());
    assert_eq!(memory.clear_function(&entry.function).unwrap().entries, 0);
    assert_eq!(memory.clear().unwrap().entries, 0);
    assert!(theirs.exists());
    linked::clear().unwrap();
    assert!(theirs.exists());
    assert!(fs::symlink_metadata(&function).is_err(), "the link is left");
}

#[test]
fn the_summary_sums_each_function_as_its_entries_say() {
    let memory = Memory::new(dir("summary"));
    let old = memory
        .cache("stats::mean", |n: u64| vec![n; 100])
        .version("1");
    let new = memory
        .cache("stats::mean", |n: u64| vec![n; 100])
        .version("2");
    let other = memory.cache("stats::max", |n: u64| n);
    for n in 0..3 {
        let _: Vec<u64> = old.call(n);
    }
    let _: Vec<u64> = new.call(7);
    let _: Vec<u64> = new.call(7); // a hit
    let _: u64 = other.call(1);
    joblet::flush();
    // The version used last is current: version 1's entries are outdated.
    for entry in memory.entries_of("stats::mean").unwrap() {
        if entry.outdated {
            used(&entry.path, 60);
        }
    }

    let entries = memory.entries().unwrap();
    let lines = memory.summary().unwrap();
    assert_eq!(
        lines
            .iter()
            .map(|l| l.function.as_str())
            .collect::<Vec<_>>(),
        ["stats.mean", "stats.max"],
        "largest first"
    );
    for line in &lines {
        let of: Vec<_> = entries
            .iter()
            .filter(|e| e.function == line.function)
            .collect();
        assert_eq!(line.entries, of.len() as u64);
        assert_eq!(line.bytes, of.iter().map(|e| e.size).sum::<u64>());
        assert_eq!(line.hits, of.iter().map(|e| e.hits).sum::<u64>());
        let outdated: u64 = of.iter().filter(|e| e.outdated).map(|e| e.size).sum();
        assert_eq!(line.outdated_bytes, outdated);
        assert_eq!(line.last_used, of.iter().map(|e| e.last_used).max());
    }
    let mean = &lines[0];
    assert_eq!((mean.entries, mean.hits), (4, 1));
    assert!(mean.outdated_bytes > 0 && mean.outdated_bytes < mean.bytes);
}
