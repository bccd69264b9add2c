//! A cache in a hostile environment: a file-size limit that stops writes part way (as a full
//! disk or a quota does), and a process umask that would let anyone write. Each case runs in a
//! child process (the test binary itself), since both limits are process-wide.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use joblet::cached;

const CHILD: &str = "JOBLET_TEST_ENVIRONMENT_CHILD";

fn child_dir() -> PathBuf {
    std::env::var_os(CHILD).map_or_else(|| common::dir("environment-unused"), PathBuf::from)
}

/// 4 MB: more than the child may write.
#[cached(dir = child_dir().join("cache"))]
fn large(seed: u8) -> Vec<u8> {
    vec![seed; 4 << 20]
}

#[cached(dir = child_dir().join("cache"))]
fn small(x: u32) -> u32 {
    x + 1
}

/// Runs `test` of this binary in a child, with `CHILD` set to `dir`.
fn run_child(test: &str, dir: &Path) -> String {
    let out = common::child(test).env(CHILD, dir).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed: {text}");
    text
}

#[test]
fn file_size_limit_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // SAFETY: plain libc calls on this process's own limits, before any file is written.
    unsafe {
        // Writing past the limit raises SIGXFSZ, which kills by default: as a full disk does,
        // it must fail the write instead.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let (value, logged) = common::warnings(|| large(7));
    assert_eq!(value, vec![7; 4 << 20], "the value is returned");
    assert!(logged.contains("cannot store"), "{logged}");
    assert!(!large::is_cached(7));
    // A small result still fits, and is stored.
    assert_eq!(small(1), 2);
    assert!(small::is_cached(1));
    // `dump` says why, and leaves nothing behind.
    let path = child_dir().join("dumped.jbl");
    let err = joblet::dump(&vec![1u8; 4 << 20], &path).unwrap_err();
    println!("dump error: {err}");
    assert!(!path.exists());
    println!("child done");
}

#[test]
fn a_write_cut_short_returns_the_value_and_leaves_no_partial_file() {
    let dir = common::dir("environment-fsize");
    let out = run_child("file_size_limit_child", &dir);
    assert!(out.contains("child done"), "{out}");
    // The file, and the system's reason: `File too large (os error 27)`.
    let line = out.lines().find(|l| l.contains("dump error:")).unwrap();
    assert!(line.contains("dumped.jbl: File too large"), "{line}");
    assert_eq!(common::temp_files(&dir), Vec::<PathBuf>::new());
    assert_eq!(
        common::entries(&dir.join("cache")).len(),
        1,
        "only `small`'s entry"
    );
}

#[test]
fn open_umask_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // SAFETY: sets this process's file-creation mask; no other thread creates files now.
    unsafe { libc::umask(0) };
    assert_eq!(small(41), 42);
    println!("child done");
}

#[test]
fn cache_folders_and_entries_are_never_writable_by_others() {
    let dir = common::dir("environment-umask");
    let out = run_child("open_umask_child", &dir);
    assert!(out.contains("child done"), "{out}");
    let entry = common::entries(&dir).pop().expect("an entry");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(
        mode(&entry) & 0o113,
        0,
        "{:o}: executable or world-writable",
        mode(&entry)
    );
    // Every folder joblet made, from the shard up to the cache folder itself.
    let folders: Vec<&Path> = entry
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with(&dir))
        .collect();
    assert_eq!(folders.len(), 5, "{folders:?}");
    for folder in folders {
        assert_eq!(
            mode(folder) & 0o002,
            0,
            "{} is world-writable",
            folder.display()
        );
    }
}
