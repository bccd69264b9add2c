//! `dump`/`load` of an 80 MB `f64` array (10,000,000 values, nearly incompressible): as a
//! `Vec<f64>` with each compression, and as a zero-copy `Array<f64>`, measured as joblib's figures were: before each timed run, 240 MB is touched
//! and freed (untimed), so that first-touch page faults of this VM do not land at random in
//! the timings.
//!
//!     cargo bench --bench persist

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BatchSize, Criterion};
use joblet::{Array, Compression, dump, dump_with, load};

const N: usize = 10_000_000;

/// Pseudo-random normal-ish floats (a sum of uniforms), cheap to make and incompressible.
fn data() -> Vec<f64> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..N)
        .map(|_| (0..4).map(|_| uniform()).sum::<f64>() - 2.0)
        .collect()
}

/// Before a timed dump: the file removed, as joblib's figures were taken (renaming over an
/// existing file makes ext4 start writing the new one back at once), and memory warmed.
fn remove_and_warm(path: &Path) {
    let _ = std::fs::remove_file(path);
    touch_and_free();
}

/// Touches and frees 240 MB, on huge pages as numpy's `np.empty(...).fill(0)` in joblib's
/// `prewarm_memory` is (numpy asks for them for every large array).
fn touch_and_free() {
    let mut v = Vec::<u8>::with_capacity(240 << 20);
    #[cfg(target_os = "linux")]
    // SAFETY: advice on memory this function owns; it changes how pages are backed, not their
    // contents.
    unsafe {
        libc::madvise(v.as_mut_ptr().cast(), v.capacity(), libc::MADV_HUGEPAGE);
    }
    v.resize(240 << 20, 1);
    black_box(&v);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let dir = std::env::temp_dir().join(format!("joblet-persist-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vec = data();
    let array = Array::from(vec.clone());
    let mut g = c.benchmark_group("80 MB f64 array");
    g.sample_size(10);
    for (name, compression) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd 3", Compression::Zstd(3)),
    ] {
        let path: PathBuf = dir.join(format!("{name}.jbl"));
        g.bench_function(format!("dump Vec<f64>, {name}"), |b| {
            b.iter_batched(
                || remove_and_warm(&path),
                |()| dump_with(&vec, &path, compression).unwrap(),
                BatchSize::PerIteration,
            )
        });
        // Written and read once untimed (a filter may have skipped the dump above): the file is
        // in the page cache ("warm"), as in joblib's figures.
        dump_with(&vec, &path, compression).unwrap();
        assert_eq!(load::<Vec<f64>>(&path).unwrap().len(), N);
        g.bench_function(format!("load into Vec<f64>, {name}"), |b| {
            b.iter_batched(
                touch_and_free,
                |()| load::<Vec<f64>>(&path).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    let path = dir.join("array.jbl");
    g.bench_function("dump Array<f64>", |b| {
        b.iter_batched(
            || remove_and_warm(&path),
            |()| dump(&array, &path).unwrap(),
            BatchSize::PerIteration,
        )
    });
    dump(&array, &path).unwrap();
    assert_eq!(load::<Array<f64>>(&path).unwrap().to_vec(), vec);
    g.bench_function("load Array<f64>, zero-copy", |b| {
        b.iter_batched(
            touch_and_free,
            |()| load::<Array<f64>>(&path).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("load Array<f64> into Vec<f64>", |b| {
        b.iter_batched(
            touch_and_free,
            |()| load::<Array<f64>>(&path).unwrap().into_vec(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(dir);
}
