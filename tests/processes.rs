//! `backend = processes`, with real workers: this test binary re-launched. Results, captures,
//! every kind of failure a task can have, `on_error`, the cache shared between workers, and
//! no worker left behind.
#![cfg(all(feature = "processes", target_os = "linux"))]

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use joblet::{Memory, TaskErrorKind, TaskPanic, cached, parallel};
use serde::{Deserialize, Serialize};

fn my_task(n: u64) -> u64 {
    let mut sum = 0;
    for m in 0..n {
        sum += black_box(m);
    }
    sum
}

/// The seed workload, a tenth as long (unoptimized, the whole of it takes 30 s here): 40
/// batches of `my_task`. `cargo run --release --example seed` runs it whole and checks it too.
#[test]
fn the_seed_workload_gives_the_results_of_threads() {
    let processes = parallel!(backend = processes, n_jobs = 4, batch_size = 100, verbose = 10;
        for i in 0..4000 => my_task(i));
    let threads = parallel!(backend = threads, n_jobs = 4, batch_size = 100, verbose = 10;
        for i in 0..4000 => my_task(i));
    assert_eq!(processes, threads);
    assert_eq!(processes, (0..4000).map(my_task).collect::<Vec<_>>());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Summary {
    label: String,
    values: Vec<u32>,
}

#[test]
fn captures_and_results_of_any_serializable_type() {
    let scale = 3u32;
    let prefix = String::from("item");
    let weights = vec![10u32, 20, 30];
    let out = parallel!(backend = processes, n_jobs = 2, batch_size = 2;
    for i in vec![0u32, 1, 2, 0, 1] => Summary {
        label: format!("{prefix}-{i}"),
        values: weights.iter().map(|w| w * scale + i).collect(),
    });
    let expected: Vec<Summary> = [0u32, 1, 2, 0, 1]
        .into_iter()
        .map(|i| Summary {
            label: format!("item-{i}"),
            values: weights.iter().map(|w| w * scale + i).collect(),
        })
        .collect();
    assert_eq!(out, expected);
    // Inputs of other shapes: a collected iterator, tuples, an empty input.
    let pairs = parallel!(backend = processes; for (a, b) in (0..5).map(|i| (i, i * 2)) => a + b);
    assert_eq!(pairs, [0, 3, 6, 9, 12]);
    let none: Vec<u8> = parallel!(backend = processes; for x in Vec::<u8>::new() => x);
    assert!(none.is_empty());
}

/// Writes into the first page of memory, which is never mapped, as a write through a null
/// pointer does (address 0 itself would trip Rust's debug null check, which aborts instead).
fn segfault() -> u64 {
    // SAFETY: none: the write faults on purpose, and the worker dies of SIGSEGV.
    unsafe { std::ptr::write_volatile(black_box(8usize) as *mut u64, 1) };
    0
}

fn failing_task(i: u64) -> u64 {
    match i {
        2 => panic!("task two gives up"),
        5 => std::process::abort(),
        8 => segfault(),
        13 => {
            // A program the task started ends with its worker (which never waits for it).
            #[allow(clippy::zombie_processes)]
            let sleeper = std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap();
            std::fs::write(sleeper_file(), sleeper.id().to_string()).unwrap();
            loop {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        19 => vec![1u8; 2 << 30].len() as u64,
        _ => i * i,
    }
}

const CHILD: &str = "JOBLET_TEST_PROCESSES_CHILD";

fn sleeper_file() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("processes-sleeper")
}

/// The processes whose parent is this one, zombies included.
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // `pid (name) state ppid ...`: the name may hold spaces, the rest follows `)`.
            let rest = &stat[stat.rfind(')').unwrap_or(0) + 1..];
            rest.split_whitespace().nth(1) == Some(me.as_str())
        })
        .collect()
}

#[test]
fn every_failure_is_reported_and_no_worker_remains() {
    let child = common::child("failures_child")
        .env(CHILD, "1")
        // A backtrace after the "memory allocation failed" line must not hide it.
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    // A timeout that never fires would hang the run: give up on it after two minutes.
    let Ok(out) = receiver.recv_timeout(Duration::from_secs(120)) else {
        // SAFETY: a plain signal to the child this test started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        panic!("the run with a hanging task did not end");
    };
    let out = out.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn failures_child() {
    if std::env::var_os(CHILD).is_none() {
        return; // run by `every_failure_is_reported_and_no_worker_remains`, alone in a process
    }
    let results = parallel!(backend = processes, n_jobs = 2, batch_size = 4, on_error = collect,
        timeout = Duration::from_secs(1), max_memory = "1 GiB";
        for i in 0..24 => failing_task(i));
    assert_eq!(results.len(), 24);
    for (i, result) in results.iter().enumerate() {
        let i = i as u64;
        if ![2, 5, 8, 13, 19].contains(&i) {
            assert_eq!(result, &Ok(i * i), "task {i}");
        }
    }
    let error = |i: usize| results[i].as_ref().unwrap_err();
    assert_eq!(error(2).kind(), TaskErrorKind::Panicked);
    assert_eq!(error(2).message(), "task two gives up");
    assert_eq!(error(5).kind(), TaskErrorKind::Signal(libc::SIGABRT));
    assert!(error(5).message().contains("SIGABRT"), "{}", error(5));
    assert_eq!(error(8).kind(), TaskErrorKind::Signal(libc::SIGSEGV));
    assert!(
        error(8).to_string().starts_with(
            "task 8 crashed its worker process: its worker was killed by signal 11 (SIGSEGV"
        ),
        "{}",
        error(8)
    );
    assert_eq!(error(13).kind(), TaskErrorKind::TimedOut);
    assert!(
        error(13).message().contains("timeout = 1s"),
        "{}",
        error(13)
    );
    assert_eq!(error(19).kind(), TaskErrorKind::OutOfMemory);
    assert!(
        error(19)
            .message()
            .starts_with("memory allocation of 2147483648 bytes failed, over max_memory = 1 GiB"),
        "{}",
        error(19)
    );
    for i in [2, 5, 8, 13, 19] {
        assert_eq!(error(i).index(), i);
    }
    assert_eq!(children(), Vec::<String>::new(), "workers left behind");
    let sleeper = std::fs::read_to_string(sleeper_file()).unwrap();
    let gone = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat[stat.rfind(')').unwrap() + 1..]
                .trim_start()
                .starts_with('Z')
    };
    assert!(
        gone(&sleeper),
        "the program the timed-out task started still runs"
    );
}

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("processes-cache")
}

/// Returns the process that computed it.
#[cached(dir = cache_dir(), name = "computed_by")]
fn computed_by(key: u64) -> u32 {
    let _ = key;
    std::process::id()
}

#[cached(dir = cache_dir(), name = "counted")]
fn counted(i: u64) -> u64 {
    if i == 0 {
        panic!("the first task fails");
    }
    i
}

#[test]
fn workers_share_the_cache() {
    let memory = Memory::new(cache_dir());
    memory.clear_function("computed_by").unwrap();
    let me = std::process::id();
    let first = parallel!(backend = processes, n_jobs = 2, batch_size = 1;
        for key in 0..8u64 => (computed_by(key), std::process::id()));
    // Computed by the workers, each in its own process.
    assert!(
        first.iter().all(|&(by, worker)| by == worker && by != me),
        "{first:?}"
    );
    // A new run has new workers: each key computed by one worker is loaded by another.
    let second = parallel!(backend = processes, n_jobs = 2, batch_size = 1;
        for key in 0..8u64 => (computed_by(key), std::process::id()));
    for ((by_then, _), (by_now, worker)) in first.iter().zip(&second) {
        assert_eq!(by_now, by_then, "loaded, not computed again");
        assert_ne!(
            by_now, worker,
            "loaded by another worker than the one that computed it"
        );
    }
    assert_eq!(computed_by(3), first[3].0, "and by the caller");
    assert_eq!(memory.entries_of("computed_by").unwrap().len(), 8);
}

#[test]
fn on_error_stop_ends_the_run_and_continue_runs_every_task() {
    let memory = Memory::new(cache_dir());
    let run = |stop: bool| {
        memory.clear_function("counted").unwrap();
        let failed = std::panic::catch_unwind(|| {
            if stop {
                parallel!(backend = processes, n_jobs = 1, batch_size = 1, on_error = stop; for i in 0..20u64 => counted(i))
            } else {
                parallel!(backend = processes, n_jobs = 1, batch_size = 1; for i in 0..20u64 => counted(i))
            }
        })
        .unwrap_err()
        .downcast::<TaskPanic>()
        .unwrap();
        assert_eq!(failed.index(), 0);
        assert_eq!(failed.message(), Some("the first task fails"));
        memory.entries_of("counted").unwrap().len()
    };
    assert_eq!(run(true), 0, "no task after the failure ran");
    assert_eq!(run(false), 19, "every other task ran (the default)");
}

#[test]
fn a_crash_is_raised_as_a_task_panic_naming_the_task() {
    let failed = std::panic::catch_unwind(|| {
        parallel!(backend = processes, n_jobs = 2; for i in 0..6u64 => if i == 4 { std::process::abort() } else { i })
    })
    .unwrap_err()
    .downcast::<TaskPanic>()
    .unwrap();
    assert_eq!(failed.index(), 4);
    assert!(
        failed.to_string().starts_with(
            "task 4 crashed its worker process: its worker was killed by signal 6 (SIGABRT"
        ),
        "{failed}"
    );
}

/// Serializes as a number, except 1, which aborts the process, and 3, which fails;
/// deserializes anything but 7.
#[derive(Debug, PartialEq)]
struct Fragile(u64);

impl Serialize for Fragile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            1 => std::process::abort(),
            3 => Err(serde::ser::Error::custom("three does not serialize")),
            n => s.serialize_u64(n),
        }
    }
}

impl<'de> Deserialize<'de> for Fragile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            7 => Err(serde::de::Error::custom("seven does not deserialize")),
            n => Ok(Fragile(n)),
        }
    }
}

#[test]
fn a_result_that_cannot_be_sent_fails_its_task_only() {
    let results = parallel!(backend = processes, n_jobs = 1, batch_size = 5, on_error = collect;
        for i in 0..5u64 => Fragile(i));
    assert_eq!(results[0], Ok(Fragile(0)));
    // Dead while sending its result: the task is still the one that ran.
    let aborted = results[1].as_ref().unwrap_err();
    assert_eq!(
        aborted.kind(),
        TaskErrorKind::Signal(libc::SIGABRT),
        "{aborted}"
    );
    assert_eq!(results[2], Ok(Fragile(2)), "the next task is not blamed");
    let unsent = results[3].as_ref().unwrap_err();
    assert_eq!(unsent.kind(), TaskErrorKind::Transfer);
    // (postcard keeps no custom message.)
    assert!(
        unsent
            .message()
            .starts_with("its result could not be sent: "),
        "{unsent}"
    );
    assert_eq!(results[4], Ok(Fragile(4)));
}

#[test]
fn a_crash_after_a_caught_panic_is_not_taken_for_it() {
    let results = parallel!(backend = processes, n_jobs = 1, batch_size = 2, on_error = collect;
    for i in 0..2u64 => {
        if i == 0 { panic!("task zero's own panic") }
        std::process::abort();
        #[allow(unreachable_code)]
        i
    });
    let kinds: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap_err().kind())
        .collect();
    assert_eq!(
        kinds,
        [
            TaskErrorKind::Panicked,
            TaskErrorKind::Signal(libc::SIGABRT)
        ]
    );
}

#[test]
fn a_worker_that_cannot_start_fails_the_run_and_says_why() {
    let unreadable = Fragile(7);
    let failed = std::panic::catch_unwind(
        || parallel!(backend = processes, n_jobs = 2; for i in 0..4u64 => i + unreadable.0),
    )
    .unwrap_err();
    let message = failed
        .downcast_ref::<String>()
        .expect("a panic with a message");
    assert!(
        message.starts_with("`parallel!(backend = processes)` cannot start a worker process: a worker ended before its first task: its worker exited with code 2"),
        "{message}"
    );
    assert!(
        message.contains("what the body captures could not be received"),
        "{message}"
    );
}

#[test]
fn unordered_results_come_as_their_tasks_complete() {
    let mut done: Vec<u64> =
        parallel!(backend = processes, n_jobs = 3, batch_size = 1, return_as = unordered;
        for n in [3u64, 1, 2] => {
            std::thread::sleep(Duration::from_millis(100 * n));
            n
        })
        .collect();
    assert_eq!(done, [1, 2, 3], "in the order they completed");
    done.clear();
    let failed = std::panic::catch_unwind(|| {
        parallel!(backend = processes, n_jobs = 2, return_as = unordered;
            for i in 0..4u64 => if i == 2 { panic!("two") } else { i })
        .collect::<Vec<_>>()
    })
    .unwrap_err()
    .downcast::<TaskPanic>()
    .unwrap();
    assert_eq!((failed.index(), failed.message()), (2, Some("two")));
}

#[test]
fn a_run_inside_a_worker_runs_in_place() {
    let out = parallel!(backend = processes, n_jobs = 2; for i in 0..3u64 => {
        let inner = parallel!(backend = processes, on_error = collect; for j in 0..4u64 => {
            if j == 3 { panic!("inner three") }
            (i * j, std::process::id())
        });
        let me = std::process::id();
        // In this worker, not in workers of its own; the failure caught at its index.
        assert!(inner[..3].iter().all(|r| r.as_ref().unwrap().1 == me));
        assert_eq!(inner[3].as_ref().unwrap_err().index(), 3);
        inner[..3].iter().map(|r| r.as_ref().unwrap().0).sum::<u64>()
    });
    assert_eq!(out, [0, 3, 6]);
}
