//! `backend = mpi`, run for real: this test binary launched with `mpiexec -n 2` and `-n 3`
//! (MPICH from Debian in CI), each rank running one test of its own. Results equal the
//! sequential loop's, a panic on one rank ends the job, and a cached function computes each
//! key once across the ranks, and nothing when the job runs again.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use joblet::{cached, parallel};
use serde::{Deserialize, Serialize};

const CHILD: &str = "JOBLET_TEST_MPI_CHILD";

fn my_task(n: u64) -> u64 {
    let mut sum = 0;
    for m in 0..n {
        sum += std::hint::black_box(m);
    }
    sum
}

/// Runs the test `test` of this binary on `ranks` ranks, with `CHILD` set to `value`; gives
/// up (killing the job) after a minute.
fn mpiexec(ranks: usize, test: &str, value: &str) -> Output {
    mpiexec_with(ranks, test, value, &[])
}

fn mpiexec_with(ranks: usize, test: &str, value: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new("mpiexec")
        .args(["-n", &ranks.to_string()])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, value)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpiexec runs (MPICH: apt install mpich)");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    let Ok(out) = receiver.recv_timeout(Duration::from_secs(60)) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the MPI job did not end within a minute");
    };
    out.unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Stats {
    n: u64,
    sum: u64,
    label: String,
}

#[test]
fn results_equal_the_sequential_loop_on_2_and_3_ranks() {
    for ranks in [2, 3] {
        let out = mpiexec(ranks, "results_child", &ranks.to_string());
        let text = text(&out);
        assert!(out.status.success(), "{ranks} ranks: {text}");
        assert_eq!(text.matches("1 passed").count(), ranks, "{text}");
    }
    // Results exchanged 61 bytes a round, as gigabytes of them go 2 GiB a round.
    let out = mpiexec_with(3, "results_child", "3", &[("JOBLET_MPI_CHUNK_BYTES", "61")]);
    let text = text(&out);
    assert!(out.status.success(), "in rounds: {text}");
    assert_eq!(text.matches("1 passed").count(), 3, "{text}");
}

#[test]
fn results_child() {
    let Some(ranks) = std::env::var_os(CHILD) else {
        return; // run by `results_equal_the_sequential_loop_on_2_and_3_ranks`, under mpiexec
    };
    let ranks: usize = ranks.to_str().unwrap().parse().unwrap();
    assert_eq!(joblet::mpi::size(), ranks);
    assert!(joblet::mpi::rank() < ranks);
    // The seed workload, a tenth as long (unoptimized): 40 batches of 100, dealt in turn.
    let (seed, logged) = common::logs(
        tracing::Level::DEBUG,
        || parallel!(backend = mpi, n_jobs = 2, batch_size = 100; for i in 0..4000 => my_task(i)),
    );
    assert_eq!(seed, (0..4000).map(my_task).collect::<Vec<_>>());
    // Exchanged in one round, or, with a small round size, in many.
    let rounds: u64 = logged
        .lines()
        .find_map(|l| {
            l.split("rounds=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("the exchange is logged: {logged}"));
    let small_rounds = std::env::var_os("JOBLET_MPI_CHUNK_BYTES").is_some();
    assert_eq!(rounds > 1, small_rounds, "{rounds} rounds");
    // A body returning a struct, with a borrowed capture, and 10 tasks over 3 ranks.
    let label = String::from("n");
    let stats = parallel!(backend = mpi; for n in 0..10u64 => Stats { n, sum: my_task(n), label: label.clone() });
    let expected: Vec<Stats> = (0..10)
        .map(|n| Stats {
            n,
            sum: my_task(n),
            label: "n".into(),
        })
        .collect();
    assert_eq!(stats, expected);
    // Fewer tasks than ranks, and none.
    assert_eq!(parallel!(backend = mpi; for i in 0..1u8 => i), [0]);
    assert!(parallel!(backend = mpi; for i in 0..0u8 => i).is_empty());
    assert_eq!(
        joblet::mpi::on_root(|| "root").is_some(),
        joblet::mpi::rank() == 0
    );
    // A panic the program catches, inside a task, does not end the job.
    let inner = parallel!(backend = mpi; for _ in 0..4 => {
        parallel!(n_jobs = 2, on_error = collect; for j in 0..3 => if j == 1 { panic!("caught") } else { j })
            .len()
    });
    assert_eq!(inner, [3, 3, 3, 3]);
    // A processes worker is no rank of its own: it sees one.
    #[cfg(feature = "processes")]
    let sizes = parallel!(backend = processes, n_jobs = 2; for _ in 0..2 => joblet::mpi::size());
    #[cfg(feature = "processes")]
    assert_eq!(sizes, [1, 1]);
}

#[test]
fn without_a_launcher_a_program_is_one_rank() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    assert_eq!((joblet::mpi::rank(), joblet::mpi::size()), (0, 1));
    assert_eq!(joblet::mpi::on_root(|| 7), Some(7));
    let out = parallel!(backend = mpi, n_jobs = 2; for i in 0..100 => my_task(i));
    assert_eq!(out, (0..100).map(my_task).collect::<Vec<_>>());
}

/// Each way a rank can fail, the job's exit code, and what the job must then say (`exit(3)`
/// says nothing: MPICH's own line about the abort may be lost as the job ends).
const FAILURES: &[(&str, i32, &str)] = &[
    (
        "task",
        101,
        "task 1 panicked: rank one gives up; ending the job",
    ),
    ("main", 101, "rank one gives up"),
    ("before", 101, "rank one gives up"),
    ("exit", 3, ""),
    ("uneven", 101, "every rank must build the same tasks"),
];

#[test]
fn a_failing_rank_ends_the_job() {
    for &(mode, code, said) in FAILURES {
        let started = std::time::Instant::now();
        let out = mpiexec(2, "panic_child", mode);
        let text = text(&out);
        assert_eq!(out.status.code(), Some(code), "{mode}: {text}");
        assert!(text.contains(said), "{mode}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mode}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn panic_child() {
    let Some(mode) = std::env::var_os(CHILD) else {
        return; // run by `a_failing_rank_ends_the_job`, under mpiexec
    };
    // Before any call to joblet: MPI started before `main` all the same.
    if mode == "before" && std::env::var("PMI_RANK").as_deref() == Ok("1") {
        panic!("rank one gives up");
    }
    let rank = joblet::mpi::rank();
    if mode == "main" && rank == 1 {
        panic!("rank one gives up");
    }
    if mode == "uneven" {
        parallel!(backend = mpi; for i in 0..(10 + rank) => i);
    }
    // Rank 0 waits in the exchange for a rank that will never come: the job must end anyway.
    parallel!(backend = mpi, batch_size = 1; for i in 0..4u64 => {
        if i == 1 && mode == "task" {
            panic!("rank one gives up");
        }
        i
    });
    if mode == "exit" && rank == 1 {
        std::process::exit(3);
    }
    parallel!(backend = mpi; for i in 0..4u64 => i);
}

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mpi-cache")
}

fn marks() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mpi-computed")
}

/// Leaves a file for each computation, named after the key and the rank.
#[cached(dir = cache_dir())]
fn squared(x: u64) -> u64 {
    let mark = marks().join(format!("{x}-rank{}", joblet::mpi::rank()));
    std::fs::write(mark, b"").unwrap();
    x * x
}

fn computed(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_cached_function_computes_each_key_once_across_ranks() {
    let _ = std::fs::remove_dir_all(cache_dir());
    let _ = std::fs::remove_dir_all(marks());
    std::fs::create_dir_all(marks()).unwrap();
    let out = mpiexec(2, "cached_child", "1");
    assert!(out.status.success(), "{}", text(&out));
    let first = computed(&marks());
    assert_eq!(first.len(), 12, "each key once: {first:?}");
    let keys: std::collections::HashSet<_> = first
        .iter()
        .map(|m| m.split('-').next().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 12, "{first:?}");
    assert!(
        first.iter().any(|m| m.ends_with("rank0")) && first.iter().any(|m| m.ends_with("rank1")),
        "{first:?}"
    );
    // Run again: everything loads.
    let out = mpiexec(2, "cached_child", "1");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(computed(&marks()), first, "the second job computed nothing");
}

#[test]
fn cached_child() {
    if std::env::var_os(CHILD).is_none() {
        return; // run by `a_cached_function_computes_each_key_once_across_ranks`
    }
    let out = parallel!(backend = mpi, batch_size = 2; for x in 0..12u64 => squared(x));
    assert_eq!(out, (0..12).map(|x| x * x).collect::<Vec<_>>());
}
