//! Many processes on one cache: 4 processes of 4 threads call cached functions over a small
//! key space (equal keys collide all the time) and a large one, with results of random sizes
//! up to 3 MB, while one thread refreshes entries and another evicts. Every value returned is
//! checked against a recomputation.
//!
//! The test binary runs itself as the worker processes. CI runs a few seconds; a longer run:
//!
//!     JOBLET_STRESS_SECS=300 cargo test --release --test stress -- --nocapture
#![cfg(feature = "threads")]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use joblet::{Array, Limits, Memory, cached};

const WORKER: &str = "JOBLET_STRESS_WORKER";
const PROCESSES: usize = 4;
const THREADS: usize = 4;

fn cache() -> PathBuf {
    std::env::var_os(WORKER).map_or_else(|| common::dir("stress"), PathBuf::from)
}

fn seconds() -> u64 {
    std::env::var("JOBLET_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// A well-mixed number from `x`: sizes and contents that differ from key to key.
fn mix(x: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&x.to_le_bytes())
}

/// The bytes of key `k`: up to 3 MB, most much smaller. Quick to make, even unoptimized: a
/// pattern of the key's hash, marked with the key every 4 KiB.
fn bytes_of(k: u64) -> Vec<u8> {
    let h = mix(k);
    let len = match h % 8 {
        0 => (h >> 8) as usize % (3 << 20),
        1..=3 => (h >> 8) as usize % (64 << 10),
        _ => (h >> 8) as usize % 512,
    };
    let mut bytes = h.to_le_bytes().repeat(len / 8 + 1);
    bytes.truncate(len);
    for page in bytes.chunks_mut(4096) {
        page[0] = k as u8;
    }
    bytes
}

/// The numbers of key `k`, as a zero-copy array: up to 1 MB.
fn numbers_of(k: u64) -> Vec<f64> {
    let len = mix(k) as usize % (128 << 10);
    let mut numbers = vec![k as f64; len];
    for (i, x) in numbers.iter_mut().enumerate().step_by(512) {
        *x += i as f64;
    }
    numbers
}

#[cached(dir = cache())]
fn few(k: u64) -> Vec<u8> {
    bytes_of(k)
}

#[cached(dir = cache())]
fn many(k: u64) -> (u64, Vec<u8>) {
    (k, bytes_of(k))
}

#[cached(dir = cache())]
fn mapped(k: u64) -> Array<f64> {
    numbers_of(k).into()
}

/// One worker process: its threads call, check, refresh and evict until time is up, then it
/// prints its counts.
#[test]
fn worker() {
    if std::env::var_os(WORKER).is_none() {
        return;
    }
    // Warnings to stderr, for the parent: an entry that reads as damaged would only be
    // recomputed, so a right value alone does not show that every store was whole.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .init();
    let calls = AtomicU64::new(0);
    let wrong = AtomicU64::new(0);
    let until = Instant::now() + Duration::from_secs(seconds());
    let memory = Memory::new(cache());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (calls, wrong, memory) = (&calls, &wrong, &memory);
            s.spawn(move || {
                let mut state = mix(std::process::id() as u64 * 31 + t as u64);
                let mut next = || {
                    state = mix(state);
                    state
                };
                while Instant::now() < until {
                    let r = next();
                    let ok = match r % 16 {
                        0..=5 => {
                            let k = r % 8;
                            few(k) == bytes_of(k)
                        }
                        6..=9 => {
                            let k = r % 100_000;
                            many(k) == (k, bytes_of(k))
                        }
                        10..=12 => {
                            let k = r % 8;
                            mapped(k)[..] == numbers_of(k)[..]
                        }
                        // Replacing entries others are loading, or have mapped.
                        13 => {
                            let k = r % 8;
                            few::refresh(k) == bytes_of(k)
                                && mapped::refresh(k)[..] == numbers_of(k)[..]
                        }
                        // Evicting under everyone's feet.
                        14 if t == 0 => memory.reduce_size(&Limits::new().bytes(8 << 20)).is_ok(),
                        _ => {
                            let k = r % 8;
                            memory.entries_of("stress::few").is_ok() && few(k) == bytes_of(k)
                        }
                    };
                    calls.fetch_add(1, Relaxed);
                    if !ok {
                        wrong.fetch_add(1, Relaxed);
                    }
                }
            });
        }
    });
    println!(
        "worker {}: {} calls, {} wrong",
        std::process::id(),
        calls.load(Relaxed),
        wrong.load(Relaxed)
    );
}

#[test]
fn processes_and_threads_sharing_a_cache_never_see_a_wrong_value() {
    let dir = common::dir("stress");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            common::child("worker")
                .env(WORKER, &dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a worker failed: {stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("unreadable cache entry"), "{stderr}");
        let line = stdout
            .lines()
            .find_map(|l| l.rfind("worker ").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("no counts: {stdout}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[4], "0", "wrong values: {line}");
        total += words[2].parse::<u64>().unwrap();
    }
    assert!(total > 0);
    println!("{total} calls, none wrong");
    // Every writer has exited: once trimmed, no temporary file is left behind.
    let memory = Memory::new(&dir);
    memory.reduce_size(&Limits::new().items(1_000_000)).unwrap();
    assert_eq!(common::temp_files(&dir), Vec::<PathBuf>::new());
    for entry in memory.entries().unwrap() {
        assert_ne!(entry.type_name, "?", "{}", entry.path.display());
    }
    memory.clear().unwrap();
    assert!(common::entries(&dir).is_empty());
    assert!(common::temp_files(&dir).is_empty());
}
