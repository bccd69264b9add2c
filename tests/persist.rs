//! `dump` and `load`: every shape of data through every compression, and each error with a
//! real damaged file.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use joblet::{Array, Compression, ErrorKind, dump, dump_with, load};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Experiment {
    name: String,
    seed: u64,
    weights: Vec<f64>,
    tags: BTreeMap<String, Vec<u32>>,
    parent: Option<Box<Experiment>>,
    kind: Kind,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Kind {
    Baseline,
    Tuned { rate: f32 },
}

fn experiment() -> Experiment {
    let child = Experiment {
        name: "child".into(),
        seed: 7,
        weights: vec![0.5; 10],
        tags: BTreeMap::new(),
        parent: None,
        kind: Kind::Baseline,
    };
    Experiment {
        name: "ünïcode run".into(),
        seed: u64::MAX,
        weights: (0..5000).map(|i| (i as f64).sin()).collect(),
        tags: [("a".to_string(), vec![1, 2, 3])].into(),
        parent: Some(Box::new(child)),
        kind: Kind::Tuned { rate: 0.25 },
    }
}

const ALL: [Compression; 4] = [
    Compression::None,
    Compression::Lz4,
    Compression::Zstd(1),
    Compression::Zstd(19),
];

fn file(name: &str) -> PathBuf {
    let dir = common::dir("persist");
    fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn every_shape_of_data_round_trips_through_every_compression() {
    for (i, c) in ALL.into_iter().enumerate() {
        let p = file(&format!("shapes-{i}.jbl"));
        dump_with(&42u8, &p, c).unwrap();
        assert_eq!(load::<u8>(&p).unwrap(), 42);
        dump_with(&-1.5e300f64, &p, c).unwrap();
        assert_eq!(load::<f64>(&p).unwrap(), -1.5e300);
        dump_with("a string", &p, c).unwrap();
        assert_eq!(load::<String>(&p).unwrap(), "a string");
        dump_with(&experiment(), &p, c).unwrap();
        assert_eq!(load::<Experiment>(&p).unwrap(), experiment());
        let map: HashMap<String, Vec<u64>> =
            (0..300).map(|i| (i.to_string(), vec![i; 3])).collect();
        dump_with(&map, &p, c).unwrap();
        assert_eq!(load::<HashMap<String, Vec<u64>>>(&p).unwrap(), map);
        let floats: Vec<f64> = (0..100_000).map(|i| f64::from(i) * 0.25).collect();
        dump_with(&floats, &p, c).unwrap();
        assert_eq!(load::<Vec<f64>>(&p).unwrap(), floats);
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        dump_with(&bytes[..], &p, c).unwrap(); // a slice reads back as a Vec
        assert_eq!(load::<Vec<u8>>(&p).unwrap(), bytes);
        dump_with(&Vec::<f32>::new(), &p, c).unwrap();
        assert!(load::<Vec<f32>>(&p).unwrap().is_empty());
    }
}

#[test]
fn compression_is_recorded_and_pays_off_on_compressible_data() {
    let smooth: Vec<f64> = (0..200_000).map(|i| f64::from(i / 100)).collect();
    let size = |c| {
        let p = file(&format!("size-{c:?}.jbl"));
        dump_with(&smooth, &p, c).unwrap();
        assert_eq!(load::<Vec<f64>>(&p).unwrap(), smooth);
        fs::metadata(&p).unwrap().len()
    };
    let plain = size(Compression::None);
    assert!(plain > 1_600_000);
    assert!(size(Compression::Lz4) < plain / 4);
    assert!(size(Compression::Zstd(3)) < plain / 20);
}

fn kind_of(err: &joblet::Error) -> &ErrorKind {
    err.kind()
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let p = file("never-written.jbl");
    let err = load::<u32>(&p).unwrap_err();
    assert!(matches!(kind_of(&err), ErrorKind::NotFound));
    assert!(err.to_string().contains("never-written.jbl"), "{err}");
    assert!(err.to_string().ends_with("no such file"), "{err}");
}

#[test]
fn a_truncated_file_is_an_error_for_every_compression() {
    for (i, c) in ALL.into_iter().enumerate() {
        let p = file(&format!("truncated-{i}.jbl"));
        dump_with(&experiment(), &p, c).unwrap();
        let bytes = fs::read(&p).unwrap();
        for len in [0, 10, 63, 64, bytes.len() / 2, bytes.len() - 1] {
            fs::write(&p, &bytes[..len]).unwrap();
            let err = load::<Experiment>(&p).unwrap_err();
            assert!(
                matches!(kind_of(&err), ErrorKind::Truncated),
                "{len}: {err}"
            );
        }
    }
}

#[test]
fn a_damaged_file_fails_its_checksum_for_every_compression() {
    for (i, c) in ALL.into_iter().enumerate() {
        let p = file(&format!("flipped-{i}.jbl"));
        dump_with(&experiment(), &p, c).unwrap();
        let bytes = fs::read(&p).unwrap();
        for at in [70, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x04;
            fs::write(&p, damaged).unwrap();
            let err = load::<Experiment>(&p).unwrap_err();
            assert!(
                err.to_string().contains("checksum mismatch"),
                "{c:?} at {at}: {err}"
            );
        }
    }
}

#[test]
fn loading_as_another_type_says_which_types() {
    let p = file("wrong-type.jbl");
    dump(&vec![1.0f64, 2.0], &p).unwrap();
    let err = load::<Vec<u32>>(&p).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected alloc::vec::Vec<u32>, file holds alloc::vec::Vec<f64>"),
        "{err}"
    );
    assert!(matches!(kind_of(&err), ErrorKind::WrongType { .. }));
}

#[test]
fn a_file_of_a_future_format_version_is_refused() {
    let p = file("future.jbl");
    dump(&1u32, &p).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    bytes[16] = 9;
    fs::write(&p, bytes).unwrap();
    let err = load::<u32>(&p).unwrap_err();
    assert!(
        matches!(kind_of(&err), ErrorKind::UnsupportedVersion(9)),
        "{err}"
    );
    assert!(
        err.to_string().contains("version 9 is not supported"),
        "{err}"
    );
}

#[test]
fn io_errors_are_reported_and_leave_no_partial_file() {
    // A folder of its own: other tests' temporary files come and go in the shared one.
    let dir = file("io-errors").join("a-directory.jbl");
    fs::create_dir_all(&dir).unwrap();
    let err = load::<u32>(&dir).unwrap_err();
    assert!(matches!(kind_of(&err), ErrorKind::NotAFile), "{err}");
    // Writing over a folder fails, and the temporary file is removed.
    let err = dump(&1u32, &dir).unwrap_err();
    assert!(matches!(kind_of(&err), ErrorKind::Io(_)), "{err}");
    assert!(common::temp_files(dir.parent().unwrap()).is_empty());
    // A missing folder is not created behind the user's back.
    let err = dump(&1u32, file("no-such-folder").join("x.jbl")).unwrap_err();
    assert!(matches!(kind_of(&err), ErrorKind::NotFound), "{err}");
}

#[test]
fn garbage_is_not_a_joblet_file() {
    let p = file("garbage.jbl");
    fs::write(&p, vec![0x5a; 500]).unwrap();
    let err = load::<u32>(&p).unwrap_err();
    assert!(matches!(kind_of(&err), ErrorKind::NotAnEntry), "{err}");
}

/// A result with arrays among other fields: the shape `Array` exists for.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Fit {
    name: String,
    coefficients: Array<f64>,
    labels: Array<u8>,
    residuals: Option<Array<f32>>,
    per_fold: Vec<Array<i64>>,
}

fn fit(n: usize) -> Fit {
    Fit {
        name: "ridge".into(),
        coefficients: (0..n).map(|i| (i as f64).sqrt()).collect(),
        // An odd number of bytes, so that the next section needs padding to stay aligned.
        labels: (0..n * 3 + 1).map(|i| (i % 251) as u8).collect(),
        residuals: Some((0..n).map(|i| i as f32 * -0.5).collect()),
        per_fold: vec![
            Array::new(),
            (0..7).collect(),
            Array::from(vec![i64::MIN; n]),
        ],
    }
}

#[test]
fn arrays_inside_structs_round_trip_through_every_compression() {
    for (i, c) in ALL.into_iter().enumerate() {
        // The last holds more than 1 MiB of arrays: not checked on load.
        for n in [0, 5, 50_000] {
            let p = file(&format!("arrays-{i}-{n}.jbl"));
            dump_with(&fit(n), &p, c).unwrap();
            let back = load::<Fit>(&p).unwrap();
            assert_eq!(back, fit(n), "{c:?}, {n}");
            // Uncompressed arrays are views into the file; compressed ones were decompressed.
            assert_eq!(back.coefficients.is_mapped(), c == Compression::None);
            assert!(back.per_fold.iter().all(Array::verify));
        }
    }
    let p = file("array-alone.jbl");
    let alone: Array<u16> = (0..1000).collect();
    dump(&alone, &p).unwrap();
    assert_eq!(load::<Array<u16>>(&p).unwrap(), alone);
}

#[test]
fn mapped_arrays_are_aligned_and_outlive_their_file() {
    let p = file("aligned.jbl");
    dump(&fit(1000), &p).unwrap();
    let back = load::<Fit>(&p).unwrap();
    for addr in [
        back.coefficients.as_ptr() as usize,
        back.labels.as_ptr() as usize,
        back.per_fold[2].as_ptr() as usize,
    ] {
        assert_eq!(addr % 64, 0);
    }
    // The view keeps the mapping: removing or replacing the file does not change it.
    fs::remove_file(&p).unwrap();
    dump(&fit(3), &p).unwrap();
    assert_eq!(back, fit(1000));
    let shared = back.coefficients.clone();
    drop(back);
    assert_eq!(shared[999], 999f64.sqrt());
    assert_eq!(std::thread::spawn(move || shared[4]).join().unwrap(), 2.0);
}

#[test]
fn damaged_arrays_are_refused_or_caught_by_verify() {
    // Small arrays are checked when loaded.
    let p = file("damaged-small-array.jbl");
    dump(&fit(100), &p).unwrap();
    let bytes = fs::read(&p).unwrap();
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x10;
    fs::write(&p, damaged).unwrap();
    let err = load::<Fit>(&p).unwrap_err();
    assert!(matches!(kind_of(&err), ErrorKind::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("array section checksum"), "{err}");
    // A cut anywhere in the arrays is a truncation.
    for len in [bytes.len() - 1, bytes.len() - 900, bytes.len() / 2] {
        fs::write(&p, &bytes[..len]).unwrap();
        let err = load::<Fit>(&p).unwrap_err();
        assert!(
            matches!(kind_of(&err), ErrorKind::Truncated),
            "{len}: {err}"
        );
    }
    // Bytes after the last array are damage too.
    let mut longer = bytes.clone();
    longer.push(0);
    fs::write(&p, longer).unwrap();
    assert!(matches!(
        kind_of(&load::<Fit>(&p).unwrap_err()),
        ErrorKind::Corrupt(_)
    ));

    // Large arrays load as views without being read; `verify` reads and checks them.
    let p = file("damaged-large-array.jbl");
    let large = Array::from(vec![1.0f64; 1 << 18]);
    dump(&large, &p).unwrap();
    let mut damaged = fs::read(&p).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x10;
    fs::write(&p, damaged).unwrap();
    let back = load::<Array<f64>>(&p).unwrap();
    assert!(!back.verify());
    assert_ne!(back, large);
}

#[cfg(feature = "ndarray")]
mod ndarray_feature {
    use super::*;
    use joblet::NdArray;
    use joblet::ndarray::{Array2, Array3, Ix2, Ix3, ShapeBuilder};

    #[test]
    fn nd_arrays_round_trip_through_every_compression_and_load_as_views() {
        let grid = Array2::from_shape_fn((300, 70), |(i, j)| i as f64 - j as f64 / 7.0);
        let cube = Array3::from_shape_fn((4, 5, 6), |(i, j, k)| (i * 100 + j * 10 + k) as u16);
        // Column-major, and transposed: stored in row-major order all the same.
        let fortran = Array2::from_shape_fn((3, 4).f(), |(i, j)| (i * 4 + j) as i32);
        let transposed = grid.t().to_owned();
        let empty = Array2::<f32>::zeros((0, 5));
        for (i, c) in ALL.into_iter().enumerate() {
            let p = file(&format!("nd-{i}.jbl"));
            dump_with(&NdArray::from(grid.clone()), &p, c).unwrap();
            let back = load::<NdArray<f64>>(&p).unwrap();
            assert_eq!(back.data().is_mapped(), c == Compression::None);
            assert_eq!(back.view().into_dimensionality::<Ix2>().unwrap(), grid);

            dump_with(
                &(NdArray::from(cube.clone()), NdArray::from(empty.clone())),
                &p,
                c,
            )
            .unwrap();
            let (c3, e) = load::<(NdArray<u16>, NdArray<f32>)>(&p).unwrap();
            assert_eq!(c3.view().into_dimensionality::<Ix3>().unwrap(), cube);
            assert_eq!(e.shape(), &[0, 5]);

            for odd in [&fortran, &fortran.t().to_owned()] {
                dump_with(&NdArray::from(odd.clone()), &p, c).unwrap();
                let back = load::<NdArray<i32>>(&p).unwrap().into_owned();
                assert_eq!(back.into_dimensionality::<Ix2>().unwrap(), odd);
            }
            dump_with(&NdArray::from(transposed.clone()), &p, c).unwrap();
            assert_eq!(
                load::<NdArray<f64>>(&p).unwrap().into_owned(),
                transposed.clone().into_dyn()
            );

            // `ndarray` arrays themselves, by ndarray's serde support.
            dump_with(&grid, &p, c).unwrap();
            assert_eq!(load::<Array2<f64>>(&p).unwrap(), grid);
        }
    }

    static GRIDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[joblet::cached(dir = common::dir("grid"))]
    fn grid(n: usize) -> NdArray<f64> {
        GRIDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Array2::from_shape_fn((n, n), |(i, j)| (i * j) as f64).into()
    }

    #[test]
    fn a_cached_nd_array_hits_as_a_view() {
        let computed = grid(200);
        let hit = grid(200);
        assert_eq!(GRIDS.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(hit.data().is_mapped());
        assert_eq!(hit, computed);
        assert_eq!(hit.view()[[199, 199]], 199.0 * 199.0);
    }
}

/// A value whose `Deserialize` loads another file: a load nested in a load.
#[derive(Debug, PartialEq)]
struct Pointer(Array<f64>);

impl Serialize for Pointer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The inner file is written, compressed, while the outer entry's writer is open.
        dump_with(&self.0, file("nested-inner.jbl"), Compression::Zstd(1))
            .map_err(serde::ser::Error::custom)?;
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d)?;
        load(file("nested-inner.jbl"))
            .map(Pointer)
            .map_err(serde::de::Error::custom)
    }
}

#[test]
fn dumps_and_loads_nested_in_others_keep_their_arrays_apart() {
    let p = file("nested-outer.jbl");
    let outer = (
        Array::from(vec![9.0f64; 4]),
        Pointer(Array::from(vec![1.0, 2.0, 3.0])),
    );
    dump(&outer, &p).unwrap();
    let back = load::<(Array<f64>, Pointer)>(&p).unwrap();
    assert_eq!(back, outer);
    assert!(back.0.is_mapped() && !back.1.0.is_mapped());
}

#[test]
fn type_names_of_arrays_are_their_public_names() {
    let p = file("array-name.jbl");
    dump(&Array::from(vec![1.0f64]), &p).unwrap();
    let err = load::<Vec<f64>>(&p).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected alloc::vec::Vec<f64>, file holds joblet::Array<f64>"),
        "{err}"
    );
}

#[test]
fn forged_lengths_in_large_files_are_errors_not_panics() {
    let p = file("forged-large.jbl");
    dump(&vec![0.5f64; 300_000], &p).unwrap();
    let bytes = fs::read(&p).unwrap();
    for (at, value) in [
        (32, u64::MAX),
        (32, 1 << 40),
        (40, u64::MAX),
        (24, u64::from(u32::MAX)),
    ] {
        let mut forged = bytes.clone();
        forged[at..at + 8].copy_from_slice(&value.to_le_bytes());
        fs::write(&p, forged).unwrap();
        assert!(load::<Vec<f64>>(&p).is_err(), "{at}: {value}");
    }
    // A flipped bit in an array's row of the section table is damage, not a truncation.
    let p = file("flipped-row.jbl");
    dump(&Array::from(vec![1u8; 5000]), &p).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    let field = |at: usize, n: usize| {
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(v) as usize
    };
    let row = 64 + field(20, 2) + field(32, 8);
    bytes[row + 8 + 3] ^= 0x10; // the length, far beyond the file
    fs::write(&p, bytes).unwrap();
    let err = load::<Array<u8>>(&p).unwrap_err();
    assert!(err.to_string().ends_with("checksum mismatch"), "{err}");
}

/// From joblib's suite (`test_numpy_pickle.py::test_compress_level_error`): a level zstd does
/// not have is an error that names the levels it has, and nothing is written.
#[test]
fn a_zstd_level_out_of_range_is_an_error_that_names_the_range() {
    // A folder of its own: other tests' temporary files come and go in the shared one.
    let dir = common::dir("persist-levels");
    fs::create_dir_all(&dir).unwrap();
    for level in [23, 1000, 0, -1, i32::MIN] {
        let p = dir.join(format!("level-{level}.jbl"));
        let err = dump_with(&vec![1u8; 1000], &p, Compression::Zstd(level)).unwrap_err();
        assert!(
            matches!(kind_of(&err), ErrorKind::CompressionLevel { level: l, .. } if *l == level),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with(&format!("zstd compression level {level} is out of range: levels go from 1 (fast) to 22 (small)")),
            "{err}"
        );
        assert!(!p.exists());
    }
    assert!(common::temp_files(&dir).is_empty());
    for level in Compression::ZSTD_LEVELS {
        let p = file("level-ok.jbl");
        dump_with(&vec![level; 100], &p, Compression::Zstd(level)).unwrap();
        assert_eq!(load::<Vec<i32>>(&p).unwrap(), vec![level; 100]);
    }
}

/// A value whose `Serialize` fails, as a poisoned lock's does.
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("the lock is poisoned"))
    }
}

/// A number that must be even, checked as it is read.
#[derive(Serialize, Debug)]
struct Even(u32);

impl<'de> Deserialize<'de> for Even {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n % 2 == 0 {
            Ok(Even(n))
        } else {
            Err(serde::de::Error::custom(format!("{n} is odd")))
        }
    }
}

/// As joblib's `test_store_backends.py::test_warning_on_pickling_error` (the cache's warning
/// is `tests/cached_faults.rs`): a value that does not serialize is reported with its
/// serializer's own message; so is one that does not deserialize.
#[test]
fn serializers_own_messages_are_kept() {
    for compression in ALL {
        let p = file("refuses.jbl");
        let err = dump_with(&(1u8, vec![Refuses]), &p, compression).unwrap_err();
        assert!(matches!(kind_of(&err), ErrorKind::Encode(_)), "{err}");
        assert!(
            err.to_string()
                .ends_with("value does not serialize: the lock is poisoned"),
            "{compression:?}: {err}"
        );
        let p = file("odd.jbl");
        dump_with(&vec![Even(2), Even(3)], &p, compression).unwrap();
        let err = load::<Vec<Even>>(&p).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("payload does not decode: 3 is odd"),
            "{compression:?}: {err}"
        );
    }
}

/// `dump` over a file keeps its permissions, as `np.save` and `joblib.dump` do (they write
/// into it): a file its owner made private stays private.
#[cfg(unix)]
#[test]
fn dump_over_a_file_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    for (i, kept) in [0o600, 0o640, 0o444, 0o755].into_iter().enumerate() {
        for compression in [Compression::None, Compression::Zstd(3)] {
            let p = file(&format!("private-{i}.jbl"));
            fs::write(&p, b"secret").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(kept)).unwrap();
            dump_with(&vec![1.5f64; 100], &p, compression).unwrap();
            assert_eq!(mode(&p), kept, "{compression:?}");
            assert_eq!(load::<Vec<f64>>(&p).unwrap(), vec![1.5; 100]);
            fs::remove_file(&p).unwrap();
        }
    }
    // A new file is readable by all, as any file the program writes (the umask permitting).
    let p = file("fresh.jbl");
    dump(&1u8, &p).unwrap();
    assert_eq!(mode(&p) & !0o022, 0o644);
}

#[cfg(unix)]
const STALLED: &str = "JOBLET_STALLED_DUMP";

/// A value that writes its first megabyte, says so, and never finishes.
#[cfg(unix)]
struct Stalls;

#[cfg(unix)]
impl Serialize for Stalls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = s.serialize_tuple(2)?;
        tuple.serialize_element(&vec![7u8; 1 << 20])?;
        println!("stalled");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

/// The writer that the test below kills in the middle of a `dump` to the path it is given.
#[cfg(unix)]
#[test]
fn stalled_dump_child() {
    if let Some(path) = std::env::var_os(STALLED) {
        let _ = dump(&Stalls, PathBuf::from(path));
    }
}

/// A process in the middle of a `dump` to `path`, once its temporary file holds a megabyte.
#[cfg(unix)]
fn stalled_dump(path: &std::path::Path) -> std::process::Child {
    use std::io::BufRead;
    let mut child = common::child("stalled_dump_child")
        .env(STALLED, path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("stalled") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "the writer ended");
    }
    child
}

/// Dumps killed in the middle of writing leave their temporary files: the next `dump` to the
/// same path removes them, and leaves those of live writers alone.
#[cfg(unix)]
#[test]
fn killed_dumps_leave_nothing_once_the_path_is_dumped_again() {
    let dir = common::dir("persist-killed");
    fs::create_dir_all(&dir).unwrap();
    let p = dir.join("weights.jbl");
    let kill = |mut child: std::process::Child| {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    };
    // One writer killed.
    kill(stalled_dump(&p));
    assert_eq!(common::temp_files(&dir).len(), 1);
    dump(&1u32, &p).unwrap();
    assert_eq!(common::temp_files(&dir), Vec::<PathBuf>::new());
    assert_eq!(load::<u32>(&p).unwrap(), 1);
    // Two at once.
    let (a, b) = (stalled_dump(&p), stalled_dump(&p));
    kill(a);
    kill(b);
    assert_eq!(common::temp_files(&dir).len(), 2);
    dump(&2u32, &p).unwrap();
    assert_eq!(common::temp_files(&dir), Vec::<PathBuf>::new());
    // A live one's is left alone, while it lives.
    let live = stalled_dump(&p);
    let its = common::temp_files(&dir);
    assert_eq!(its.len(), 1);
    dump(&3u32, &p).unwrap();
    assert_eq!(common::temp_files(&dir), its);
    assert_eq!(load::<u32>(&p).unwrap(), 3);
    kill(live);
    dump(&4u32, &p).unwrap();
    assert_eq!(common::temp_files(&dir), Vec::<PathBuf>::new());
    // Another path's are not this path's to remove.
    let other = dir.join("other.jbl");
    kill(stalled_dump(&other));
    dump(&5u32, &p).unwrap();
    assert_eq!(common::temp_files(&dir).len(), 1);
    dump(&6u32, &other).unwrap();
    assert_eq!(common::temp_files(&dir), Vec::<PathBuf>::new());
}
