//! `backend = processes`, with real workers: this test binary re-launched. Results, captures,
//! every kind of failure a task can have, `on_error`, the cache shared between workers, and
//! no worker left behind.
#![cfg(all(feature = "processes", target_os = "linux"))]

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use joblet::{Memory, TaskErrorKind, TaskPanic, cached, parallel};

/// The failure a caught panic of `parallel!` was raised for.
fn failure_of(payload: Box<dyn std::any::Any + Send>) -> TaskPanic {
    TaskPanic::of(&*payload).expect("the panic of a task")
}
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
    // A backtrace after the "memory allocation failed" line must not hide it. (A timeout
    // that never fires would hang the run: `run_child` gives up on it.)
    let text = run_child("failures_child", CHILD, &[("RUST_BACKTRACE", "1")]);
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn failures_child() {
    if std::env::var_os(CHILD).is_none() {
        return; // run by `every_failure_is_reported_and_no_worker_remains`, alone in a process
    }
    // `idle_timeout = 0`: the workers end with the call, as the check below wants.
    let results = parallel!(backend = processes, n_jobs = 2, batch_size = 4, on_error = collect,
        timeout = Duration::from_secs(1), max_memory = "1 GiB", idle_timeout = 0;
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
    // Workers that end with the call: the next call has new ones.
    let first = parallel!(backend = processes, n_jobs = 2, batch_size = 1, idle_timeout = 0;
        for key in 0..8u64 => (computed_by(key), std::process::id()));
    // Computed by the workers, each in its own process.
    assert!(
        first.iter().all(|&(by, worker)| by == worker && by != me),
        "{first:?}"
    );
    // Each key computed by one worker is loaded by another.
    let second = parallel!(backend = processes, n_jobs = 2, batch_size = 1, idle_timeout = 0;
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
fn a_failure_stops_the_run_by_default_and_continue_runs_every_task() {
    let memory = Memory::new(cache_dir());
    let run = |stop: bool| {
        memory.clear_function("counted").unwrap();
        let failed = std::panic::catch_unwind(|| {
            if stop {
                parallel!(backend = processes, n_jobs = 1, batch_size = 1; for i in 0..20u64 => counted(i))
            } else {
                parallel!(backend = processes, n_jobs = 1, batch_size = 1, on_error = continue; for i in 0..20u64 => counted(i))
            }
        })
        .unwrap_err();
        let failed = failure_of(failed);
        assert_eq!(failed.index(), 0);
        assert_eq!(failed.message(), Some("the first task fails"));
        memory.entries_of("counted").unwrap().len()
    };
    assert_eq!(run(true), 0, "no task after the failure ran (the default)");
    assert_eq!(run(false), 19, "every other task ran");
}

#[test]
fn a_crash_is_raised_as_a_task_panic_naming_the_task() {
    let failed = std::panic::catch_unwind(|| {
        parallel!(backend = processes, n_jobs = 2; for i in 0..6u64 => if i == 4 { std::process::abort() } else { i })
    })
    .unwrap_err();
    let failed = failure_of(failed);
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
            // Steps of 300 ms: wider than the spread of three fresh workers' start times on a
            // busy machine, which would otherwise decide the order.
            std::thread::sleep(Duration::from_millis(300 * n));
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
    .unwrap_err();
    let failed = failure_of(failed);
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

#[test]
#[should_panic(expected = "task 777 panicked: boom at 777")]
fn a_task_panic_is_what_should_panic_expects() {
    parallel!(backend = processes, n_jobs = 2; for i in 0..1000u32 => {
        if i == 777 { panic!("boom at {i}") }
        i
    });
}

/// An endless input, counting the items read.
static READ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn endless() -> impl Iterator<Item = u64> + Send + 'static {
    (0u64..).inspect(|_| {
        READ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
}

#[test]
fn a_generator_over_an_endless_iterator_stops_when_dropped_after_1000_results() {
    let results = parallel!(backend = processes, n_jobs = 2, batch_size = 10, pre_dispatch = 4,
        return_as = generator; for i in endless() => (i * 3, std::process::id()));
    let first: Vec<(u64, u32)> = results.take(1000).collect();
    assert_eq!(
        first.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..1000).map(|i| i * 3).collect::<Vec<_>>()
    );
    assert!(first.iter().all(|r| r.1 != std::process::id()));
    let read = READ.load(std::sync::atomic::Ordering::SeqCst);
    assert!(read <= 1000 + 4 * 10, "{read} items read");
    // In completion order, and lazily too.
    let unordered: Vec<u64> = parallel!(backend = processes, n_jobs = 2, return_as = unordered;
        for i in (0u64..).map(|i| i * 2) => i + 1)
    .take(100)
    .collect();
    assert_eq!(unordered.len(), 100);
    assert!(unordered.iter().all(|i| i % 2 == 1));
}

const ABORT_CHILD: &str = "JOBLET_TEST_ABORT_CHILD";

#[test]
fn abort_child() {
    if std::env::var_os(ABORT_CHILD).is_none() {
        return;
    }
    // joblib's `test_abort_backend`: the first task fails, the others would run for an hour.
    let failed = std::panic::catch_unwind(|| {
        parallel!(backend = processes, n_jobs = 2, batch_size = 1; for i in 0..101u64 => {
            if i == 0 {
                panic!("not a number");
            }
            std::thread::sleep(Duration::from_secs(3600));
            i
        })
    })
    .unwrap_err();
    assert_eq!(failure_of(failed).index(), 0);
    // The same on a generator.
    let failed = std::panic::catch_unwind(|| {
        parallel!(backend = processes, n_jobs = 2, batch_size = 1, return_as = generator;
        for i in 0..101u64 => {
            if i == 3 {
                panic!("three");
            }
            if i > 3 {
                std::thread::sleep(Duration::from_secs(3600));
            }
            i
        })
        .collect::<Vec<_>>()
    })
    .unwrap_err();
    assert_eq!(failure_of(failed).index(), 3);
    println!("stopped");
}

#[test]
fn the_first_failure_kills_the_tasks_that_still_run() {
    let out = run_child("abort_child", ABORT_CHILD, &[]);
    assert!(out.contains("stopped"), "{out}");
}

/// Runs the test `test` of this binary alone in a child process with `var` set, giving up on
/// it after two minutes; its output.
fn run_child(test: &str, var: &str, env: &[(&str, &str)]) -> String {
    let child = common::child(test)
        .env(var, "1")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    let Ok(out) = receiver.recv_timeout(Duration::from_secs(120)) else {
        // SAFETY: a plain signal to the child this test started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        panic!("{test} did not end");
    };
    let out = out.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{test} failed ({:?}): {text}",
        out.status
    );
    text
}

/// The process ids of this process's children (zombies included).
fn child_ids() -> Vec<u32> {
    let mut ids: Vec<u32> = children()
        .iter()
        .map(|stat| stat.split(' ').next().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn worker_ids(of: &[u32]) -> Vec<u32> {
    let mut ids = of.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

const KEPT_CHILD: &str = "JOBLET_TEST_KEPT_CHILD";

#[test]
fn kept_child() {
    if std::env::var_os(KEPT_CHILD).is_none() {
        return;
    }
    let pids = |n: u32| {
        let ids = parallel!(backend = processes, n_jobs = 2, batch_size = 1, idle_timeout = 2;
        for _ in 0..n => {
            std::thread::sleep(Duration::from_millis(20));
            std::process::id()
        });
        worker_ids(&ids)
    };
    let first = pids(8);
    assert_eq!(first.len(), 2, "{first:?}");
    // Kept, idle, between calls; the next call with the same settings takes them.
    assert_eq!(child_ids(), first);
    assert_eq!(pids(8), first);
    // Other settings: other workers, and the first ones still wait.
    let capped = parallel!(backend = processes, n_jobs = 2, max_memory = "4 GiB", idle_timeout = 2;
        for _ in 0..4 => std::process::id());
    let capped = worker_ids(&capped);
    assert!(
        capped.iter().all(|p| !first.contains(p)),
        "{capped:?} {first:?}"
    );
    assert_eq!(child_ids().len(), first.len() + capped.len());
    // Ended once idle for `idle_timeout`, and reaped.
    let waited = std::time::Instant::now();
    while !child_ids().is_empty() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "{:?}",
            child_ids()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("kept and ended");
}

#[test]
fn workers_are_kept_between_calls_and_end_when_idle() {
    let out = run_child("kept_child", KEPT_CHILD, &[]);
    assert!(out.contains("kept and ended"), "{out}");
}

const EXIT_CHILD: &str = "JOBLET_TEST_EXIT_CHILD";

#[test]
fn exit_child() {
    if std::env::var_os(EXIT_CHILD).is_none() {
        return;
    }
    // Kept for five minutes, the default: the program's exit must end them.
    let ids = parallel!(backend = processes, n_jobs = 2, batch_size = 1; for _ in 0..6 => {
        std::thread::sleep(Duration::from_millis(20));
        std::process::id()
    });
    let ids = worker_ids(&ids);
    assert_eq!(child_ids(), ids);
    println!("workers {ids:?}");
    if std::env::var_os("JOBLET_TEST_EXIT_KILLED").is_some() {
        // Killed, with no exit handler: the workers notice their parent is gone.
        // SAFETY: a signal to this process itself.
        unsafe { libc::kill(std::process::id() as libc::pid_t, libc::SIGKILL) };
    }
}

/// The process ids that `exit_child` printed.
fn said_workers(out: &str) -> Vec<u32> {
    let at = out.find("workers [").expect("the workers' ids") + "workers [".len();
    let list = &out[at..at + out[at..].find(']').unwrap()];
    list.split(", ").map(|p| p.parse().unwrap()).collect()
}

/// Whether process `pid` is gone (or a zombie about to be).
fn gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty()
        || stat[stat.rfind(')').unwrap() + 1..]
            .trim_start()
            .starts_with('Z')
}

#[test]
fn no_worker_is_left_after_the_program_exits() {
    let out = run_child("exit_child", EXIT_CHILD, &[]);
    let ids = said_workers(&out);
    assert_eq!(ids.len(), 2, "{out}");
    // Ended and reaped before the program's exit was over.
    for pid in &ids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} left"
        );
    }
    // A program killed outright: its workers end themselves soon after.
    let child = common::child("exit_child")
        .env(EXIT_CHILD, "1")
        .env("JOBLET_TEST_EXIT_KILLED", "1")
        .output()
        .unwrap();
    let ids = said_workers(&String::from_utf8_lossy(&child.stdout));
    let waited = std::time::Instant::now();
    while !ids.iter().all(|&pid| gone(pid)) {
        assert!(waited.elapsed() < Duration::from_secs(30), "{ids:?} left");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const THREADS_CHILD: &str = "JOBLET_TEST_THREADS_CHILD";
const THREAD_VARIABLES: [&str; 4] = [
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
];

#[test]
fn threads_child() {
    if std::env::var_os(THREADS_CHILD).is_none() {
        return;
    }
    let seen = |n_jobs: i64| {
        parallel!(backend = processes, n_jobs = n_jobs, idle_timeout = 0; for _ in 0..2 => {
            THREAD_VARIABLES.map(|v| std::env::var(v).ok())
        })
    };
    // Each worker's share of the cores, unless the program set it itself.
    let cores = joblet::cpu_count();
    for n_jobs in [1, 2] {
        let share = (cores / n_jobs).max(1).to_string();
        for seen in seen(n_jobs as i64) {
            assert_eq!(seen[0].as_deref(), Some("7"), "set by the program");
            for value in &seen[1..] {
                assert_eq!(value.as_deref(), Some(share.as_str()), "n_jobs = {n_jobs}");
            }
        }
    }
    println!("thread variables set");
}

#[test]
fn workers_get_their_share_of_the_cores_in_thread_variables() {
    let mut env: Vec<(&str, &str)> = vec![("OMP_NUM_THREADS", "7")];
    // The others unset, as in a fresh shell.
    let out = {
        let mut cmd = common::child("threads_child");
        cmd.env(THREADS_CHILD, "1").envs(env.drain(..));
        for v in &THREAD_VARIABLES[1..] {
            cmd.env_remove(v);
        }
        cmd.output().unwrap()
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("thread variables set"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Serialize, Deserialize)]
struct Sample {
    name: String,
    values: joblet::Array<f64>,
}

#[test]
fn arrays_from_max_nbytes_on_travel_in_shared_memory_and_smaller_ones_through_the_pipe() {
    // 8 MB: past the default `max_nbytes`, 1 MiB.
    let big = joblet::Array::from((0..1_000_000).map(f64::from).collect::<Vec<_>>());
    let small = joblet::Array::from(vec![1.5f64; 100]);
    // The arrays of the captures hold more than `max_nbytes` together: all are mapped.
    let seen = parallel!(backend = processes, n_jobs = 2; for i in 0..4usize => {
        let at = i * 1000;
        (big.is_mapped(), big.verify(), big[at], small.is_mapped(), small[0])
    });
    for (i, seen) in seen.iter().enumerate() {
        assert_eq!(*seen, (true, true, (i * 1000) as f64, true, 1.5));
    }
    // Less: copied, as any value.
    let seen = parallel!(backend = processes, n_jobs = 2; for i in 0..2usize => (small.is_mapped(), small[i]));
    assert_eq!(seen, [(false, 1.5), (false, 1.5)]);
    // Past a `max_nbytes` of its own, through the pipe.
    let seen = parallel!(backend = processes, n_jobs = 2, max_nbytes = "16M";
        for i in 0..2usize => (big.is_mapped(), big[i]));
    assert_eq!(seen, [(false, 0.0), (false, 1.0)]);
    // Items too: each batch's arrays, in a file of their own.
    let items = (0..3).map(|i| Sample {
        name: format!("sample {i}"),
        values: joblet::Array::from(vec![f64::from(i); 200_000]),
    });
    let seen = parallel!(backend = processes, n_jobs = 2, batch_size = 2;
        for s in items => (s.name, s.values.is_mapped(), s.values.iter().sum::<f64>()));
    assert_eq!(
        seen,
        [
            ("sample 0".to_owned(), true, 0.0),
            ("sample 1".to_owned(), true, 200_000.0),
            ("sample 2".to_owned(), true, 400_000.0)
        ]
    );
}

const TMPDIR_CHILD: &str = "JOBLET_TEST_TMPDIR_CHILD";

#[test]
fn tmpdir_child() {
    if std::env::var_os(TMPDIR_CHILD).is_none() {
        return;
    }
    let big = joblet::Array::from(vec![2.0f64; 1 << 20]);
    let out = parallel!(backend = processes, n_jobs = 2; for i in 0..4u64 => i + big[0] as u64);
    assert_eq!(out, [2, 3, 4, 5]);
    println!("ran with TMPDIR {:?}", std::env::var("TMPDIR"));
}

/// Mounts a tmpfs of 1 MiB at `dir` and fills it, as issue 16 did; an error, with the reason,
/// where this test cannot mount.
fn full_tmpfs(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // SAFETY: `geteuid` reads this process's user.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir)
        .status()
        .map_err(|e| e.to_string())?;
    if !mounted.success() {
        return Err(format!("mount failed: {mounted}"));
    }
    // Full: a write of 2 MiB stops at the size.
    let _ = std::fs::write(dir.join("x"), vec![0u8; 2 << 20]);
    Ok(())
}

#[test]
fn a_full_or_missing_tmpdir_does_not_take_the_caller_down() {
    let full =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("full-{}", std::process::id()));
    /// Unmounts the tmpfs when the test ends, also when it fails.
    struct Mounted<'a>(&'a std::path::Path);
    impl Drop for Mounted<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    match full_tmpfs(&full) {
        Ok(()) => {
            let _mounted = Mounted(&full);
            let out = run_child(
                "tmpdir_child",
                TMPDIR_CHILD,
                &[("TMPDIR", full.to_str().unwrap())],
            );
            assert!(out.contains("ran with TMPDIR"), "{out}");
        }
        Err(why) => println!("skipped the full tmpfs: {why}"),
    }
    // A TMPDIR that does not exist.
    let out = run_child(
        "tmpdir_child",
        TMPDIR_CHILD,
        &[("TMPDIR", "/nonexistent/joblet")],
    );
    assert!(out.contains("ran with TMPDIR"), "{out}");
}

#[test]
fn an_input_is_read_a_few_batches_ahead_of_the_results_taken() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    // Tasks are done in the workers: here, a batch is done when its results come back.
    static READ: AtomicUsize = AtomicUsize::new(0);
    static AHEAD: AtomicUsize = AtomicUsize::new(0);
    static BACK: AtomicUsize = AtomicUsize::new(0);
    let input = (0..5000u64).filter(|_| {
        let read = READ.fetch_add(1, SeqCst) + 1;
        AHEAD.fetch_max(read - BACK.load(SeqCst), SeqCst);
        true
    });
    let out: Vec<u64> =
        parallel!(backend = processes, n_jobs = 2, batch_size = 50, pre_dispatch = 3,
        return_as = generator; for i in input => i + 1)
        .inspect(|_| {
            BACK.fetch_add(1, SeqCst);
        })
        .collect();
    assert_eq!(out, (1..=5000).collect::<Vec<_>>());
    let ahead = AHEAD.load(SeqCst);
    assert!(
        ahead <= 3 * 50,
        "{ahead} items read ahead of the results taken"
    );
}

/// A panic payload whose `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("a payload that panics when dropped");
    }
}

#[test]
fn a_payload_whose_drop_panics_fails_its_task_only() {
    let results = parallel!(backend = processes, n_jobs = 2, batch_size = 2, on_error = collect;
        for i in 0..6u32 => if i == 1 || i == 4 { std::panic::panic_any(Bomb) } else { i });
    for i in [1, 4] {
        let failed = results[i].as_ref().unwrap_err();
        assert_eq!(failed.kind(), TaskErrorKind::Panicked, "{failed}");
        assert_eq!(failed.message(), "a panic payload that is not a string");
    }
    assert_eq!(results[5], Ok(5));
}
