//! `#[cached]` costs: hit and miss+store for a small and a large result, what metadata adds to
//! a small hit, key hashing throughput, and the first hit in a fresh process.
//!
//!     cargo bench --bench cached
//!
//! The fresh-process case runs this binary again as a child (`JOBLET_BENCH_CHILD` set), which
//! times its own first call from `main` and reports it; process start-up itself is not counted,
//! as it is the same with or without a cache.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use joblet::{Array, cached};

const CHILD: &str = "JOBLET_BENCH_CHILD";
const BIG: usize = 1_000_000;

fn bench_dir() -> PathBuf {
    std::env::var_os(CHILD).map_or_else(
        || std::env::temp_dir().join(format!("joblet-bench-{}", std::process::id())),
        PathBuf::from,
    )
}

#[cached(dir = bench_dir())]
fn small(x: u64) -> u64 {
    black_box(x) + 1
}

#[cached(dir = bench_dir())]
fn big(seed: u64) -> Vec<f64> {
    (0..BIG).map(|i| (i as u64 ^ seed) as f64).collect()
}

/// `n` numbers as a zero-copy `Array`: a hit maps the file and reads none of them.
#[cached(dir = bench_dir())]
fn array(n: usize) -> Array<f64> {
    (0..n).map(|i| i as f64).collect()
}

fn hits(c: &mut Criterion) {
    let mut g = c.benchmark_group("cached hit");
    small(1);
    g.bench_function("fn(u64) -> u64", |b| b.iter(|| small(black_box(1))));
    big(1);
    g.throughput(Throughput::Bytes((BIG * 8) as u64));
    g.bench_function("fn(u64) -> Vec<f64> (1M)", |b| b.iter(|| big(black_box(1))));
    // The same for 4 MB and 400 MB: a hit on an `Array` does not grow with its size.
    for (label, n) in [("4 MB", 500_000), ("8 MB", BIG), ("400 MB", 50_000_000)] {
        array(n);
        g.throughput(Throughput::Bytes((n * 8) as u64));
        g.bench_with_input(
            BenchmarkId::new("fn(usize) -> Array<f64>", label),
            &n,
            |b, &n| b.iter(|| array(black_box(n))),
        );
    }
    g.finish();
}

/// What keeping metadata costs a small hit: the steps `#[cached]` generates for a hit of
/// `fn(u64) -> u64`, through two sites alike but for one thing: the first counts its hits (the
/// one piece of metadata a hit writes; arguments are rendered only when computing), the other
/// does not. Criterion times each; then alternating batches of both, on a noisy machine the
/// fairer comparison, give the fastest batch of each.
fn metadata(c: &mut Criterion) {
    use joblet::__private::{Begin, Codec, Mode, Site};
    // Only one of the two is used, whichever method resolution picks.
    #[allow(unused_imports)]
    use joblet::__private::{ViaBulk as _, ViaSerde as _};
    fn dir() -> PathBuf {
        bench_dir()
    }
    static COUNTED: Site = Site::new(module_path!(), "counted", None, 0, "", Some(dir));
    static NOT_COUNTED: Site =
        Site::new(module_path!(), "not_counted", None, 0, "", Some(dir)).count_hits(false);
    fn hit(site: &'static Site, x: u64) -> u64 {
        let mut key = site.key(None);
        key.arg(&x);
        // As the macro writes it: the borrows are how the decoder is picked.
        #[allow(clippy::needless_borrow)]
        let decoder = (&&Codec::<u64>::new()).decoder();
        match site.begin(Mode::Call, None, &mut key, decoder) {
            Begin::Hit(v) => v,
            Begin::Compute(mut pending) => {
                site.describe(&mut pending, |args| args.debug(&x));
                site.finish(pending, black_box(x) + 1)
            }
        }
    }
    hit(&COUNTED, 1);
    hit(&NOT_COUNTED, 1);
    let mut g = c.benchmark_group("small hit metadata");
    g.bench_function("hits counted", |b| b.iter(|| hit(&COUNTED, black_box(1))));
    g.bench_function("hits not counted", |b| {
        b.iter(|| hit(&NOT_COUNTED, black_box(1)))
    });
    g.finish();
    let batch = |site: &'static Site| {
        let start = Instant::now();
        for _ in 0..500 {
            black_box(hit(site, black_box(1)));
        }
        start.elapsed().as_secs_f64() / 500.0 * 1e6
    };
    let (mut counted, mut not_counted) = (f64::MAX, f64::MAX);
    for _ in 0..400 {
        counted = counted.min(batch(&COUNTED));
        not_counted = not_counted.min(batch(&NOT_COUNTED));
    }
    println!(
        "small hit metadata, fastest of 400 alternating batches of 500: hits counted {counted:.3} µs, not counted {not_counted:.3} µs: {:+.1} %",
        (counted / not_counted - 1.0) * 100.0
    );
}

fn misses(c: &mut Criterion) {
    let mut g = c.benchmark_group("cached miss+store");
    // A fresh argument each time, so every call computes and writes a new entry.
    static NEXT: AtomicU64 = AtomicU64::new(1_000_000);
    g.bench_function("fn(u64) -> u64", |b| {
        b.iter(|| small(NEXT.fetch_add(1, Relaxed)))
    });
    g.sample_size(20);
    g.throughput(Throughput::Bytes((BIG * 8) as u64));
    g.bench_function("fn(u64) -> Vec<f64> (1M)", |b| {
        b.iter(|| big(NEXT.fetch_add(1, Relaxed)))
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("key hashing");
    let data: Vec<f64> = (0..BIG).map(|i| i as f64 * 0.5).collect();
    g.throughput(Throughput::Bytes((BIG * 8) as u64));
    g.bench_with_input(BenchmarkId::new("Vec<f64>", "8 MB"), &data, |b, data| {
        b.iter(|| joblet::__private::key_of(black_box(data)).unwrap())
    });
    g.finish();
}

/// In a child process: the first call of the process, timed from `main`.
fn child() {
    let start = Instant::now();
    let v = small(black_box(7));
    let first_small = start.elapsed();
    let start = Instant::now();
    let v2 = big(black_box(7));
    let first_big = start.elapsed();
    assert_eq!(v, 8);
    assert_eq!(v2.len(), BIG);
    println!("{} {}", first_small.as_nanos(), first_big.as_nanos());
}

fn fresh_process(c: &mut Criterion) {
    let dir = bench_dir().join("fresh");
    let exe = std::env::current_exe().unwrap();
    let run = || {
        let out = Command::new(&exe).env(CHILD, &dir).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut parts = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        (
            Duration::from_nanos(parts.next().unwrap()),
            Duration::from_nanos(parts.next().unwrap()),
        )
    };
    run(); // the first child computes and stores; every later one hits
    let mut g = c.benchmark_group("first hit in a fresh process");
    g.sample_size(20);
    g.bench_function("fn(u64) -> u64", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run().0).sum())
    });
    g.bench_function("fn(u64) -> Vec<f64> (1M)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run().1).sum())
    });
    g.finish();
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    hits(&mut c);
    metadata(&mut c);
    misses(&mut c);
    hashing(&mut c);
    fresh_process(&mut c);
    c.final_summary();
    let _ = std::fs::remove_dir_all(bench_dir());
}
