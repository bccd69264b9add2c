//! The `joblet` binary against a cache folder written by `#[cached]` functions of this test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use joblet::cached;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("joblet-cli-{}", std::process::id()))
        .join(name)
}

fn joblet(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_joblet"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[cached(dir = dir("cache"))]
fn squares(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * i).collect()
}

#[cached(dir = dir("cache"))]
fn label(x: u32) -> String {
    format!("label {x}")
}

#[test]
fn report_ls_prune_and_clear_work_on_a_cache_made_by_another_program() {
    let cache = dir("cache");
    for n in [10, 1000, 100_000] {
        squares(n);
    }
    // Two hits, each sparing what the call took to compute.
    squares(10);
    squares(10);
    label(1);
    // A process writes the hits of its last second when it exits, or when it lists a folder
    // itself: here, before the command reads them.
    joblet::Memory::new(&cache).entries().unwrap();
    let squares_fn = format!("{}::squares", module_path!());

    let report = stdout(&joblet(&["report"], &cache));
    let lines: Vec<&str> = report.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "function", "entries", "size", "outdated", "compute", "hits", "saved", "last", "used"
        ],
        "{report}"
    );
    // The largest function first, then the total.
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    // Sizes and times are a number and a unit: the hits are the ninth word. Nothing is
    // outdated: every entry is of the current code.
    assert_eq!(
        (row[0], row[1], row[4], row[8]),
        ("cli.squares", "3", "0", "2"),
        "{report}"
    );
    assert!(lines[1].contains("kB"), "{report}");
    assert!(
        lines[2].starts_with("cli.label ") && lines[2].contains(" 1 "),
        "{report}"
    );
    assert!(
        lines[3].starts_with("total ") && lines[3].contains(" 4 "),
        "{report}"
    );

    let ls = stdout(&joblet(&["ls", &squares_fn], &cache));
    assert_eq!(ls.lines().count(), 4, "{ls}");
    // Each entry with its hits and its arguments.
    let mut calls: Vec<(&str, &str)> = ls
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[5], *cells.last().unwrap())
        })
        .collect();
    calls.sort();
    assert_eq!(calls, [("0", "1000"), ("0", "100000"), ("2", "10")], "{ls}");
    let missing = joblet(&["ls", "no::such::function"], &cache);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no entries of `no::such::function`")
    );

    let pruned = stdout(&joblet(&["prune", "--max-items", "2"], &cache));
    assert!(pruned.starts_with("removed 2 entries"), "{pruned}");
    let cleared = stdout(&joblet(&["clear", &squares_fn], &cache));
    assert!(cleared.starts_with("removed "), "{cleared}");
    let report = stdout(&joblet(&["report"], &cache));
    assert!(!report.contains("cli.squares"), "{report}");
    assert!(stdout(&joblet(&["clear"], &cache)).starts_with("removed "));
    assert_eq!(stdout(&joblet(&["report"], &cache)).lines().count(), 2);
}

#[test]
fn report_shows_and_prune_removes_outdated_code_versions() {
    let cache = dir("versions");
    let memory = joblet::Memory::new(&cache);
    // Version 1 of a function's code stores two results, then version 2 one: version 1's are
    // outdated.
    let old = memory.cache("scale", |x: u64| vec![x; 1000]).version("1");
    old.call(1);
    old.call(2);
    memory
        .cache("scale", |x: u64| vec![x * 2; 1000])
        .version("2")
        .call(1);
    let outdated: Vec<bool> = memory
        .entries()
        .unwrap()
        .iter()
        .map(|e| e.outdated)
        .collect();
    assert_eq!(outdated, [true, true, false]);

    let report = stdout(&joblet(&["report"], &cache));
    let row: Vec<&str> = report.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((row[0], row[1], row[5]), ("scale", "3", "kB"), "{report}");
    let (size, old_size): (f64, f64) = (row[2].parse().unwrap(), row[4].parse().unwrap());
    assert!(old_size > 0.6 * size && old_size < 0.7 * size, "{report}");

    let pruned = stdout(&joblet(&["prune", "--old-versions"], &cache));
    assert!(
        pruned.starts_with("removed 2 entries of outdated code versions"),
        "{pruned}"
    );
    let left = memory.entries().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        memory
            .cache("scale", |x: u64| vec![x * 2; 1000])
            .version("2")
            .call(1),
        vec![2; 1000]
    );
    // Running the old code again makes its version the current one.
    old.call(3);
    let outdated: Vec<bool> = memory
        .entries()
        .unwrap()
        .iter()
        .map(|e| e.outdated)
        .collect();
    assert_eq!(outdated, [true, false]);
}

#[test]
fn a_folder_that_is_not_there_is_an_error_naming_it() {
    let missing = dir("no-such-folder");
    for command in [
        &["report"][..],
        &["ls", "f"],
        &["clear"],
        &["prune", "--max-items", "1"],
    ] {
        let out = joblet(command, &missing);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(
            message.contains("no-such-folder") && message.contains("no such folder"),
            "{message}"
        );
    }
    let file = dir("a-file");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"").unwrap();
    let out = joblet(&["report"], &file);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
}

#[test]
fn mistakes_get_clear_messages() {
    let cache = dir("mistakes");
    let no_limit = joblet(&["prune"], &cache);
    assert_eq!(no_limit.status.code(), Some(2));
    let message = String::from_utf8_lossy(&no_limit.stderr);
    assert!(message.contains("--max-size"), "{message}");
    let bad_size = joblet(&["prune", "--max-size", "lots"], &cache);
    assert_eq!(bad_size.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_size.stderr).contains("`lots`: not a size"));
    // An empty folder reports nothing, without failing (a missing one is an error, above).
    std::fs::create_dir_all(&cache).unwrap();
    assert!(stdout(&joblet(&["report"], &cache)).contains("total"));
}

#[test]
fn without_dir_the_folder_is_the_one_cached_functions_default_to() {
    #[cached(dir = dir("from-env"))]
    fn answer() -> u32 {
        42
    }
    answer();
    // The entry is written in the background: wait for it before another process looks.
    joblet::flush();
    let out = Command::new(env!("CARGO_BIN_EXE_joblet"))
        .arg("report")
        .env(joblet::CACHE_DIR_ENV, dir("from-env"))
        .output()
        .unwrap();
    assert!(stdout(&out).contains("cli.answer "));
}

#[cached(dir = dir("forged"))]
fn forged(x: u32) -> u32 {
    x
}

/// Listing reads headers without verifying them: what a damaged or forged file says must not
/// break the command.
#[test]
fn forged_headers_and_odd_file_names_do_not_break_report_or_ls() {
    let cache = dir("forged");
    forged(1);
    forged(2);
    let entries = joblet::Memory::new(&cache).entries().unwrap();
    for entry in &entries {
        let mut bytes = std::fs::read(&entry.path).unwrap();
        bytes[28..32].copy_from_slice(&u32::MAX.to_le_bytes()); // hits
        bytes[48..56].copy_from_slice(&u64::MAX.to_le_bytes()); // compute time
        // The arguments' rendering, `1` or `2`, becomes a terminal escape.
        let args = 64 + usize::from(u16::from_le_bytes([bytes[20], bytes[21]]));
        bytes[args] = 0x1b;
        std::fs::write(&entry.path, bytes).unwrap();
    }
    // A file of no joblet's making, with a name that is not a key, beside the entries.
    let shard = entries[0].path.parent().unwrap();
    std::fs::write(shard.join("abcdefghijké.jbl"), b"\x1b[2J").unwrap();

    let report = stdout(&joblet(&["report"], &cache));
    assert!(report.contains("cli.forged"), "{report}");
    let ls = stdout(&joblet(
        &["ls", &format!("{}::forged", module_path!())],
        &cache,
    ));
    assert!(ls.contains("abcdefghijké"), "{ls}");
    assert!(!ls.contains('\x1b') && ls.contains("\\u{1b}"), "{ls}");
}

#[cached(dir = dir("saved"))]
fn slow(x: u32) -> u32 {
    std::thread::sleep(std::time::Duration::from_millis(40));
    x
}

#[test]
fn report_shows_the_compute_time_that_hits_saved() {
    slow(1);
    slow(1);
    slow(1);
    joblet::Memory::new(dir("saved")).entries().unwrap(); // writes the hits it counted
    let report = stdout(&joblet(&["report"], &dir("saved")));
    let row: Vec<&str> = report.lines().nth(1).unwrap().split_whitespace().collect();
    // function, entries, size (2 words), outdated (2), compute (2), hits, saved (2), last used.
    let ms = |at: usize| -> u64 {
        assert_eq!(row[at + 1], "ms", "{report}");
        row[at].parse().unwrap()
    };
    let (compute, hits, saved) = (ms(6), row[8], ms(9));
    assert!((40..1000).contains(&compute), "{report}");
    assert_eq!(hits, "2", "{report}");
    assert!(saved.abs_diff(2 * compute) <= 1, "{report}");
}

#[cached(dir = dir("prune"))]
fn aged(x: u32) -> String {
    format!("entry {x}")
}

/// The arguments of `aged`'s entries still in the folder, sorted.
fn aged_left(cache: &Path) -> Vec<String> {
    let mut left: Vec<String> = joblet::Memory::new(cache)
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.args)
        .collect();
    left.sort();
    left
}

#[test]
fn prune_evicts_the_least_recently_used_by_age_and_by_size() {
    let cache = dir("prune");
    for x in 1..=3 {
        aged(x);
    }
    // Entry x was last used x hours ago.
    let entries = joblet::Memory::new(&cache).entries().unwrap();
    for e in &entries {
        let hours: u64 = e.args.parse().unwrap();
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600);
        let file = std::fs::File::options().write(true).open(&e.path).unwrap();
        file.set_modified(when).unwrap();
    }
    stdout(&joblet(&["prune", "--max-age", "150min"], &cache));
    assert_eq!(aged_left(&cache), ["1", "2"]);
    let one = entries[0].size;
    stdout(&joblet(
        &["prune", "--max-size", &(one + 1).to_string()],
        &cache,
    ));
    assert_eq!(aged_left(&cache), ["1"]);
}
