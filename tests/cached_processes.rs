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
    // A hit in quick succession: its count is written when the process exits.
    assert_eq!(expensive(100_000), v);
    assert_eq!(v.len(), 100_000);
    assert_eq!(v[99_999], (99_999f64).sqrt());
    println!("child got {} values", v.len());
}

fn run_child(dir: &std::path::Path) -> String {
    let mut cmd = common::child("child");
    cmd.env(CHILD_DIR, dir);
    output_of(cmd)
}

fn output_of(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
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
    // Every hit was counted in the entry, those still in memory at exit included: one in the
    // first process, two in the second.
    let entry = joblet::Memory::new(&dir).entries().unwrap().remove(0);
    assert_eq!(entry.hits, 3);
    assert_eq!(entry.args, "100000");
}

const DEFAULT_CHILD: &str = "JOBLET_TEST_DEFAULT_CHILD";

/// No `dir`: the folder is `$JOBLET_CACHE_DIR`, else `.joblet` in the current directory.
#[cached]
fn defaulted(x: u32) -> u32 {
    println!("child computed defaulted({x})");
    x + 1
}

#[test]
fn default_child() {
    if std::env::var_os(DEFAULT_CHILD).is_some() {
        assert_eq!(defaulted(41), 42);
    }
}

fn run_default_child(cwd: &std::path::Path, cache_dir: Option<&std::path::Path>) -> String {
    std::fs::create_dir_all(cwd).unwrap();
    let mut cmd = common::child("default_child");
    cmd.env(DEFAULT_CHILD, "1")
        .env_remove(joblet::CACHE_DIR_ENV)
        .current_dir(cwd);
    if let Some(dir) = cache_dir {
        cmd.env(joblet::CACHE_DIR_ENV, dir);
    }
    output_of(cmd)
}

#[test]
fn without_dir_the_cache_is_dot_joblet_in_the_current_directory() {
    let cwd = common::dir("default-cwd");
    let first = run_default_child(&cwd, None);
    assert!(first.contains("child computed defaulted(41)"), "{first}");
    assert_eq!(
        common::entries(&cwd.join(joblet::DEFAULT_CACHE_DIR)).len(),
        1
    );
    let second = run_default_child(&cwd, None);
    assert!(!second.contains("child computed"), "{second}");
}

#[test]
fn the_environment_variable_overrides_the_default_folder() {
    let cwd = common::dir("env-cwd");
    let cache = common::dir("env-cache");
    let out = run_default_child(&cwd, Some(&cache));
    assert!(out.contains("child computed defaulted(41)"), "{out}");
    assert_eq!(common::entries(&cache).len(), 1);
    assert!(!cwd.join(joblet::DEFAULT_CACHE_DIR).exists());
}

const CHDIR_CHILD: &str = "JOBLET_TEST_CHDIR_CHILD";

#[cached(dir = "relative-cache")]
fn relative(x: u32) -> u32 {
    x * 2
}

#[test]
fn chdir_child() {
    let Some(elsewhere) = std::env::var_os(CHDIR_CHILD) else {
        return;
    };
    assert_eq!(relative(3), 6);
    assert!(relative::is_cached(3));
    // The folder was resolved at the first call: changing directory does not move it.
    std::env::set_current_dir(elsewhere).unwrap();
    assert!(relative::is_cached(3));
    relative::clear().unwrap();
    assert!(!relative::is_cached(3));
    println!("chdir child ok");
}

#[test]
fn a_relative_dir_stays_where_it_was_resolved() {
    let cwd = common::dir("chdir-cwd");
    let elsewhere = common::dir("chdir-elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut cmd = common::child("chdir_child");
    cmd.env(CHDIR_CHILD, &elsewhere).current_dir(&cwd);
    let out = output_of(cmd);
    assert!(out.contains("chdir child ok"), "{out}");
    assert!(common::entries(&cwd.join("relative-cache")).is_empty());
    assert!(!elsewhere.join("relative-cache").exists());
}

/// Runs the child with `var` set to `value`.
fn run_child_with(dir: &std::path::Path, var: &str, value: &str) -> String {
    let mut cmd = common::child("child");
    cmd.env(CHILD_DIR, dir).env(var, value);
    output_of(cmd)
}

#[test]
fn switched_off_by_the_environment_every_call_computes_and_nothing_is_stored() {
    let dir = common::dir("processes-disabled");
    for _ in 0..2 {
        let out = run_child_with(&dir, joblet::DISABLE_ENV, "1");
        assert!(out.contains("child computed expensive(100000)"), "{out}");
    }
    assert!(common::entries(&dir).is_empty());
    // Set to `0`, it is off.
    assert!(run_child_with(&dir, joblet::DISABLE_ENV, "0").contains("child computed"));
    assert_eq!(common::entries(&dir).len(), 1);
}

#[test]
fn the_environment_can_make_every_call_recompute_and_overwrite() {
    let dir = common::dir("processes-refresh");
    assert!(run_child(&dir).contains("child computed"));
    let entry = common::entries(&dir).remove(0);
    let written = std::fs::metadata(&entry).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(run_child_with(&dir, joblet::REFRESH_ENV, "yes").contains("child computed"));
    assert!(std::fs::metadata(&entry).unwrap().modified().unwrap() > written);
    assert!(!run_child(&dir).contains("child computed"));
}

const VERBOSE_CHILD: &str = "JOBLET_TEST_VERBOSE_CHILD";

#[cached(dir = child_dir(), verbose = 5)]
fn talkative(x: u32) -> u32 {
    x * 2
}

#[test]
fn verbose_child() {
    if std::env::var_os(VERBOSE_CHILD).is_some() {
        assert_eq!(talkative(21), 42); // computed
        assert_eq!(talkative(21), 42); // loaded
    }
}

#[test]
fn verbose_prints_joblibs_memory_lines_to_stderr() {
    let mut cmd = common::child("verbose_child");
    cmd.env(CHILD_DIR, common::dir("processes-verbose"))
        .env(VERBOSE_CHILD, "1");
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let calling = lines
        .iter()
        .position(|l| *l == "[Memory] Calling talkative...");
    let calling = calling.unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(lines[calling - 1], "_".repeat(80));
    // The call, as joblib prints it: `square(2)`.
    assert_eq!(lines[calling + 1], "talkative(21)");
    let done = lines[calling + 2];
    assert_eq!(done.len(), 80, "{done}");
    assert!(done.ends_with("_talkative - 0.0s, 0.0min"), "{done}");
    let loading = lines[calling + 3];
    assert!(
        loading.starts_with("[Memory]") && loading.ends_with(": Loading talkative"),
        "{loading}"
    );
}

const EXIT_CHILD: &str = "JOBLET_TEST_EXIT_CHILD";

#[cached(dir = child_dir())]
fn hit_twice(x: u32) -> u32 {
    x + 1
}

#[test]
fn exit_child() {
    if std::env::var_os(EXIT_CHILD).is_none() {
        return;
    }
    // A subscriber that logs everything: at exit, its thread-locals are gone.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .init();
    hit_twice(1);
    hit_twice(1); // the first hit: its count is written now
    hit_twice(1); // the second: its count waits for the exit
    // Gone before the exit, so that writing the count there fails.
    for entry in common::entries(&child_dir()) {
        std::fs::remove_file(entry).unwrap();
    }
    println!("exit child done");
}

#[test]
fn hits_left_to_write_at_exit_never_fail_the_exit() {
    let dir = common::dir("processes-exit");
    let mut cmd = common::child("exit_child");
    cmd.env(CHILD_DIR, &dir).env(EXIT_CHILD, "1");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("exit child done"));
}
