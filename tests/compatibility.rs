//! A cache folder and `dump` files written by an earlier build, committed under
//! `tests/fixtures/`: this build must load every entry as a hit (nothing recomputes), every file
//! with its value, and list the folder as that build wrote it. They were written by main at
//! 9415619, before the runtime was reorganised into layers.
//!
//! The `#[cached]` functions below must keep their tokens, and reach nothing else of this
//! crate: an entry's folder and key depend on the function's fingerprint, a hash of its tokens
//! and of what it reaches. That a call loaded rather than computed shows in the listing: a
//! computed call would store an entry of its own. To write the fixture again, on purpose
//! (a new format version, say): `JOBLET_WRITE_FIXTURE=1 cargo test --features ndarray --test
//! compatibility`, and say why in the commit.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use joblet::{Array, Compression, Memory, cached, dump_with, load};

/// Set to write the fixture with this build instead of checking it.
const WRITE: &str = "JOBLET_WRITE_FIXTURE";

/// Calls of the function wrapped by `Memory::cache` that computed: none may, when the fixture
/// loads.
static COMPUTED: AtomicUsize = AtomicUsize::new(0);

/// The cache folder: a copy of the fixture, since hits count themselves in their entries.
static CACHE: OnceLock<PathBuf> = OnceLock::new();

fn cache_dir() -> PathBuf {
    CACHE.get().expect("set before the first call").clone()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Numbers enough that the entry (1.1 MB) is mapped when loaded, and decoded by bulk copy.
const RAMP: usize = 140_000;

#[cached(dir = cache_dir())]
fn tripled(n: u64) -> u64 {
    n * 3
}

#[cached(dir = cache_dir())]
fn greeting(name: String) -> String {
    format!("hello, {name}")
}

#[cached(dir = cache_dir())]
fn ramp(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.5).collect()
}

#[cached(dir = cache_dir())]
fn squares(n: usize) -> Array<f64> {
    (0..n).map(|i| (i * i) as f64).collect()
}

fn halve(x: u64) -> u64 {
    COMPUTED.fetch_add(1, SeqCst);
    x / 2
}

fn text() -> String {
    "to be or not to be, ".repeat(200)
}

#[cfg(feature = "ndarray")]
fn grid() -> joblet::NdArray<f32> {
    joblet::ndarray::Array2::from_shape_fn((30, 20), |(i, j)| (i * 100 + j) as f32).into()
}

/// Makes every entry and file, as the build that wrote the fixture did.
fn write(cache: &Path, dumps: &Path) {
    let _ = std::fs::remove_dir_all(cache);
    let _ = std::fs::remove_dir_all(dumps);
    std::fs::create_dir_all(dumps).unwrap();
    CACHE.set(cache.to_owned()).unwrap();
    tripled(14);
    greeting("ada".into());
    ramp(RAMP);
    squares(1000);
    Memory::new(cache)
        .cache("halve", halve)
        .version("1")
        .call(10);
    dump_with(&text(), dumps.join("lz4.jbl"), Compression::Lz4).unwrap();
    dump_with(&text(), dumps.join("zstd.jbl"), Compression::Zstd(3)).unwrap();
    #[cfg(feature = "ndarray")]
    joblet::dump(&grid(), dumps.join("ndarray.jbl")).unwrap();
}

/// Copies the folder `from` into `to`.
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_cache_folder_written_by_main_loads_hit_for_hit() {
    let (cache, dumps) = (fixtures().join("main-cache"), fixtures().join("main-dumps"));
    if std::env::var_os(WRITE).is_some() {
        write(&cache, &dumps);
        return;
    }
    let copied = common::dir("compatibility");
    copy(&cache, &copied);
    CACHE.set(copied.clone()).unwrap();

    assert!(tripled::is_cached(14));
    assert_eq!(tripled(14), 42);
    assert_eq!(greeting("ada".into()), "hello, ada");
    let ramp = ramp(RAMP);
    assert_eq!(ramp.len(), RAMP);
    assert!(ramp.iter().enumerate().all(|(i, &x)| x == i as f64 * 0.5));
    let squares = squares(1000);
    assert!(
        squares.is_mapped(),
        "an array loads as a view into the file"
    );
    assert!(squares.verify());
    assert_eq!(squares[999], 998_001.0);
    let halve = Memory::new(&copied).cache("halve", halve).version("1");
    assert!(halve.is_cached::<_, u64>(&10));
    assert_eq!(halve.call(10), 5);
    assert_eq!(
        COMPUTED.load(SeqCst),
        0,
        "an entry of main's was recomputed"
    );

    // Listed as main wrote them, with the hit each just had, and no entry more.
    let mut listed: Vec<(String, String, u64)> = Memory::new(&copied)
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.type_name, e.args, e.hits))
        .collect();
    listed.sort();
    let row = |t: &str, a: &str| (t.to_owned(), a.to_owned(), 1);
    assert_eq!(
        listed,
        [
            row("alloc::string::String", "\"ada\""),
            row("alloc::vec::Vec<f64>", "140000"),
            row("joblet::Array<f64>", "1000"),
            row("u64", "10"),
            row("u64", "14"),
        ]
    );

    assert_eq!(load::<String>(dumps.join("lz4.jbl")).unwrap(), text());
    assert_eq!(load::<String>(dumps.join("zstd.jbl")).unwrap(), text());
    #[cfg(feature = "ndarray")]
    {
        let grid_back = load::<joblet::NdArray<f32>>(dumps.join("ndarray.jbl")).unwrap();
        assert_eq!(grid_back, grid());
        assert!(grid_back.data().is_mapped());
    }
}
