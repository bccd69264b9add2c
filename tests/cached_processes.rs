//! A result stored by one process is loaded by another. The test binary runs itself as the
//! child process: the `child` test does its work only when the parent sets `CHILD_DIR`.

mod common;

use std::process::Command;

use joblet::cached;

const CHILD_DIR: &str = "JOBLET_TEST_CHILD_DIR";

fn child_dir() -> std::path::PathBuf {
    std::env::var_os(CHILD_DIR).map_or_else(|| common::dir("processes-unused"), Into::into)
}

#[cached(dir = child_dir())]
fn expensive(n: u64) -> Vec<f64> {
    println!("child computed expensive({n})");
    (0..n).map(|i| (i as f64).sqrt()).collect()
}

#[test]
fn child() {
    if std::env::var_os(CHILD_DIR).is_none() {
        return;
    }
    let v = expensive(100_000);
    assert_eq!(v.len(), 100_000);
    assert_eq!(v[99_999], (99_999f64).sqrt());
    println!("child got {} values", v.len());
}

fn run_child(dir: &std::path::Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_second_process_loads_what_the_first_computed() {
    let dir = common::dir("processes");
    let first = run_child(&dir);
    assert!(
        first.contains("child computed expensive(100000)"),
        "{first}"
    );
    assert!(first.contains("child got 100000 values"), "{first}");
    let second = run_child(&dir);
    assert!(
        !second.contains("child computed"),
        "second process computed: {second}"
    );
    assert!(second.contains("child got 100000 values"), "{second}");
    assert_eq!(common::entries(&dir).len(), 1);
}
