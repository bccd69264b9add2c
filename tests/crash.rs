//! Writers killed mid-write: a process storing large results (cached calls, and `dump`s over
//! the same few files) is killed with SIGKILL at random moments, again and again. Afterwards
//! every entry either loads the right value or is a miss that computes it; every dumped file
//! loads whole, as one of its versions.
//!
//! The test binary runs itself as the writer. CI kills it 12 times, or more until a kill has
//! left a temporary file and a dump is whole; a longer run:
//!
//!     JOBLET_CRASH_KILLS=500 cargo test --release --test crash -- --nocapture
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use joblet::{Array, Memory, cached};

const WRITER: &str = "JOBLET_CRASH_WRITER";

fn cache() -> PathBuf {
    std::env::var_os(WRITER).map_or_else(|| common::dir("crash"), PathBuf::from)
}

fn kills() -> u64 {
    std::env::var("JOBLET_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

/// Key `k`'s numbers: 2 to 6 MB, quick to make unoptimized.
fn numbers(k: u64) -> Vec<f64> {
    let len = ((256 + (k * 7919) % 512) << 10) as usize;
    let mut v = vec![k as f64; len];
    for (i, x) in v.iter_mut().enumerate().step_by(1024) {
        *x = (k * 1_000_003 + i as u64) as f64;
    }
    v
}

#[cached(dir = cache())]
fn vector(k: u64) -> Vec<f64> {
    numbers(k)
}

#[cached(dir = cache())]
fn array(k: u64) -> Array<f64> {
    numbers(k).into()
}

fn dumps(dir: &Path) -> Vec<PathBuf> {
    (0..3).map(|i| dir.join(format!("dump-{i}.jbl"))).collect()
}

/// The writer: stores new results and rewrites the dumps until it is killed.
#[test]
fn writer() {
    let Some(dir) = std::env::var_os(WRITER).map(PathBuf::from) else {
        return;
    };
    let start: u64 = std::process::id().into();
    for k in start.. {
        vector(k);
        array(k);
        for path in dumps(&dir) {
            joblet::dump(&(k, numbers(k)), path).unwrap();
        }
    }
}

#[test]
fn entries_of_killed_writers_load_whole_or_are_recomputed() {
    let dir = common::dir("crash");
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = u64::from(std::process::id());
    // At least `kills()` kills, and up to 200 more until what the test is about has happened:
    // a kill landed during a write (its temporary file is left), and a dump was complete
    // before one. How often a kill lands where depends on how fast the machine writes.
    let tested = |dir: &Path| {
        !common::temp_files(dir).is_empty()
            && dumps(dir)
                .iter()
                .any(|path| joblet::load::<(u64, Vec<f64>)>(path).is_ok())
    };
    let mut killed = 0;
    while killed < kills() || (!tested(&dir) && killed < kills() + 200) {
        killed += 1;
        let mut child = common::child("writer")
            .env(WRITER, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        state = xxhash_rust::xxh3::xxh3_64(&state.to_le_bytes());
        std::thread::sleep(Duration::from_millis(50 + state % 400));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "the writer ended by itself");
    }
    let memory = Memory::new(&dir);
    let entries = memory.entries().unwrap();
    assert!(!entries.is_empty(), "no writer stored anything");
    let (mut hits, mut misses) = (0, 0);
    for entry in &entries {
        let k: u64 = entry.args.parse().unwrap();
        let cached = if entry.function.ends_with(".vector") {
            let hit = vector::is_cached(k);
            assert_eq!(vector(k), numbers(k), "vector({k})");
            hit
        } else {
            let hit = array::is_cached(k);
            let a = array(k);
            assert!(a.verify());
            assert_eq!(a[..], numbers(k)[..], "array({k})");
            hit
        };
        if cached {
            hits += 1;
        } else {
            misses += 1;
        }
    }
    // A rename is atomic: a dump is one whole version or another, never a mix or a part.
    let mut dumped = 0;
    for path in dumps(&dir) {
        match joblet::load::<(u64, Vec<f64>)>(&path) {
            Ok((k, v)) => {
                assert!(v == numbers(k), "{} holds a damaged value", path.display());
                dumped += 1;
            }
            Err(e) => assert!(e.is_not_found(), "{}: {e}", path.display()),
        }
    }
    // The kills landed where they test something: some while a dump or an entry was being
    // written (its temporary file is left), and after some dumps were complete.
    let temps = common::temp_files(&dir).len();
    assert!(temps > 0, "no kill landed during a write");
    assert!(dumped > 0, "no dump was ever complete");
    println!(
        "{killed} kills: {} entries, {hits} whole, {misses} damaged and recomputed; {dumped} dumps whole; {temps} temporary files left",
        entries.len(),
    );
}
