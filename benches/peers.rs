//! One round of one workload, for the side-by-side table of `benches/reference/compare.py`:
//! joblet, the `cached` crate's disk store, rayon by hand and a plain loop. Run by the script,
//! which alternates the contenders round by round, each round a fresh process:
//!
//!     python3 benches/reference/compare.py
//!
//! By hand: `cargo bench --bench peers -- <workload> <contender> [--cold]`; it prints one line
//! of JSON: the round's median, in seconds, of its repetitions, and their range.
//!
//! Workloads: `small-hit`, `small-store` (a miss and its store, as the caller sees it),
//! `small-store-sustained` (the same, with the background writes waited for), `vec-hit` (a hit returning a
//! `Vec<f64>` of 1,000,000), `dump-80mb` (also by `write`: the bytes alone, in one `write`),
//! `load-80mb` (into a `Vec<f64>`), `load-80mb-lz4`
//! (as an `Array<f64>`), `tasks` (100,000 trivial tasks on 2 threads). Before each timed dump
//! or load, 240 MB is touched and freed (untimed), unless `--cold`, as joblib's figures were
//! taken (`../shared/joblib-baseline/README.md`, "Fresh-memory first touch").

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use cached::ConcurrentCached;

use joblet::{Array, Compression, cached, dump, dump_with, load, parallel};

/// The folder every contender writes in: the same disk for all.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("PEERS_DIR")
            .map_or_else(|| std::env::temp_dir().join("joblet-peers"), PathBuf::from);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn joblet_dir() -> PathBuf {
    dir().join(format!("joblet-{}", std::process::id()))
}

#[cached(dir = joblet_dir())]
fn small(x: u64) -> u64 {
    black_box(x) + 1
}

const BIG: usize = 1_000_000;

#[cached(dir = joblet_dir())]
fn vec_of(seed: u64) -> Vec<f64> {
    (0..BIG).map(|i| (i as u64 ^ seed) as f64).collect()
}

const N80: usize = 10_000_000;

/// 80 MB of nearly incompressible numbers, as `benches/persist.rs` makes them.
fn data() -> Vec<f64> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..N80)
        .map(|_| (0..4).map(|_| uniform()).sum::<f64>() - 2.0)
        .collect()
}

/// Touches and frees 240 MB, on huge pages as numpy's `np.empty(...).fill(0)` in joblib's
/// `prewarm_memory` is: numpy advises from the first page boundary of its buffer on (`madvise`
/// refuses an address that is not on one, as `malloc`'s are not).
fn touch_and_free() {
    let mut v = Vec::<u8>::with_capacity(240 << 20);
    #[cfg(target_os = "linux")]
    {
        let start = v.as_mut_ptr() as usize;
        let skip = start.next_multiple_of(4096) - start;
        // SAFETY: advice on whole pages of memory this function owns; it changes how pages
        // are backed, not their contents.
        unsafe {
            let from = v.as_mut_ptr().add(skip);
            libc::madvise(from.cast(), v.capacity() - skip, libc::MADV_HUGEPAGE);
        }
    }
    v.resize(240 << 20, 1);
    black_box(&v);
}

/// Reads a file once, untimed, so that its pages are in the page cache (a warm load).
fn warm_file(path: &Path) {
    black_box(std::fs::read(path).unwrap());
}

/// The times of `reps` runs of `run`, each after `setup` (untimed).
fn times(reps: usize, mut setup: impl FnMut(), mut run: impl FnMut()) -> Vec<f64> {
    (0..reps)
        .map(|_| {
            setup();
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect()
}

/// Per-call times of `blocks` blocks of `calls` calls each.
fn per_call(blocks: usize, calls: u64, mut call: impl FnMut(u64)) -> Vec<f64> {
    let mut next = 0;
    times(
        blocks,
        || {},
        || {
            for _ in 0..calls {
                call(next);
                next += 1;
            }
        },
    )
    .into_iter()
    .map(|t| t / calls as f64)
    .collect()
}

fn small_hit(contender: &str) -> Vec<f64> {
    match contender {
        "joblet" => {
            small(1);
            per_call(7, 100_000, |_| {
                black_box(small(black_box(1)));
            })
        }
        "cached" => {
            let cache = redb(true);
            cache.cache_set(1, 2).unwrap();
            per_call(7, 100_000, |_| {
                black_box(cache.cache_get(black_box(&1)).unwrap());
            })
        }
        _ => unknown(contender),
    }
}

/// Misses and their stores, in bursts of 500 new keys (a miss at every call), timed as the
/// caller sees them: joblet's writes go on in the background, and each burst's are flushed
/// before the next, untimed. With `sustained`, bursts of 2000 whose flush is timed too: what a
/// caller storing without pause gets, bound by the disk.
fn small_store(contender: &str, sustained: bool) -> Vec<f64> {
    let calls = if sustained { 2000 } else { 500 };
    let mut next = u64::from(std::process::id()) << 32;
    match contender {
        "joblet" => {
            let mut store = || {
                for _ in 0..calls {
                    black_box(small(black_box(next)));
                    next += 1;
                }
                if sustained {
                    joblet::flush();
                }
            };
            times(7, joblet::flush, &mut store)
                .into_iter()
                .map(|t| t / calls as f64)
                .collect()
        }
        "cached" => {
            let cache = redb(false);
            times(
                7,
                || {},
                || {
                    for _ in 0..calls {
                        if cache.cache_get(&next).unwrap().is_none() {
                            cache.cache_set(next, black_box(next) + 1).unwrap();
                        }
                        next += 1;
                    }
                },
            )
            .into_iter()
            .map(|t| t / calls as f64)
            .collect()
        }
        _ => unknown(contender),
    }
}

/// The `cached` crate's disk store (redb), in the same folder; `durable = false` commits
/// without an fsync per write, as joblet writes without one.
fn redb(durable: bool) -> cached::RedbCache<u64, u64> {
    cached::RedbCache::builder(format!("peers-{}-{durable}", std::process::id()))
        .disk_dir(dir())
        .durable(durable)
        .build()
        .unwrap()
}

fn vec_hit(contender: &str) -> Vec<f64> {
    if contender != "joblet" {
        unknown(contender);
    }
    vec_of(1);
    times(15, || {}, || drop(black_box(vec_of(black_box(1)))))
}

fn persist(workload: &str, contender: &str, cold: bool) -> Vec<f64> {
    // `write`: the dump's floor, the vector's bytes sent in one `write` to a new file whose
    // blocks are allocated first (as `np.save` does), with no header, checksum, temporary file
    // or rename.
    if !(contender == "joblet" || contender == "write" && workload == "dump-80mb") {
        unknown(contender);
    }
    let prepare = || {
        if !cold {
            touch_and_free();
        }
    };
    let path = dir().join(format!("peers-{}.jbl", std::process::id()));
    let vec = data();
    let t = match workload {
        "dump-80mb" if contender == "write" => times(
            7,
            || {
                let _ = std::fs::remove_file(&path);
                prepare();
            },
            || {
                let bytes: &[u8] = bytemuck::cast_slice(&vec);
                let mut file = std::fs::File::create(&path).unwrap();
                #[cfg(target_os = "linux")]
                // SAFETY: a system call on a descriptor `file` holds open; it changes the
                // file's allocation, never memory.
                unsafe {
                    use std::os::fd::AsRawFd;
                    libc::fallocate(file.as_raw_fd(), 0, 0, bytes.len() as libc::off_t);
                }
                std::io::Write::write_all(&mut file, bytes).unwrap();
            },
        ),
        "dump-80mb" => times(
            7,
            || {
                let _ = std::fs::remove_file(&path);
                prepare();
            },
            || dump(&vec, &path).unwrap(),
        ),
        "load-80mb" => {
            dump(&vec, &path).unwrap();
            times(
                7,
                || {
                    warm_file(&path);
                    prepare();
                },
                || drop(black_box(load::<Vec<f64>>(&path).unwrap())),
            )
        }
        "load-80mb-lz4" => {
            dump_with(&Array::from(vec.clone()), &path, Compression::Lz4).unwrap();
            times(
                7,
                || {
                    warm_file(&path);
                    prepare();
                },
                || drop(black_box(load::<Array<f64>>(&path).unwrap())),
            )
        }
        _ => unreachable!(),
    };
    let _ = std::fs::remove_file(&path);
    t
}

fn tasks(contender: &str) -> Vec<f64> {
    const N: u64 = 100_000;
    match contender {
        "joblet" => times(
            21,
            || {},
            || {
                let out = parallel!(n_jobs = 2; for i in 0..N => black_box(i));
                black_box(out);
            },
        ),
        "rayon" => {
            use rayon::prelude::*;
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            times(
                21,
                || {},
                || {
                    let out: Vec<u64> =
                        pool.install(|| (0..N).into_par_iter().map(black_box).collect());
                    black_box(out);
                },
            )
        }
        "loop" => times(
            21,
            || {},
            || {
                let out: Vec<u64> = (0..N).map(black_box).collect();
                black_box(out);
            },
        ),
        _ => unknown(contender),
    }
}

fn unknown(contender: &str) -> ! {
    eprintln!("peers: no contender `{contender}` for this workload");
    std::process::exit(2)
}

fn main() {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let cold = args.iter().any(|a| a == "--cold");
    let words: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let [workload, contender] = words[..] else {
        eprintln!("usage: peers <workload> <contender> [--cold] (see benches/peers.rs)");
        std::process::exit(2);
    };
    let mut t = match workload {
        "small-hit" => small_hit(contender),
        "small-store" => small_store(contender, false),
        "small-store-sustained" => small_store(contender, true),
        "vec-hit" => vec_hit(contender),
        "dump-80mb" | "load-80mb" | "load-80mb-lz4" => persist(workload, contender, cold),
        "tasks" => tasks(contender),
        _ => {
            eprintln!("peers: unknown workload `{workload}`");
            std::process::exit(2);
        }
    };
    let _ = std::fs::remove_dir_all(joblet_dir());
    t.sort_by(f64::total_cmp);
    println!(
        "{{\"workload\": \"{workload}\", \"contender\": \"{contender}\", \"median\": {}, \"min\": {}, \"max\": {}}}",
        t[t.len() / 2],
        t[0],
        t[t.len() - 1]
    );
}
