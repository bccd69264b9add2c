//! `Frame`: keys from the Arrow buffers (each equality and inequality pinned), round trips of
//! the common dtypes through `dump`/`load` and `#[cached]`, mapped hits, damaged and forged
//! entries.

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use joblet::polars_arrow::array::PrimitiveArray;
use joblet::polars_arrow::bitmap::Bitmap;
use joblet::polars_core::prelude::*;
use joblet::{Compression, ErrorKind, Frame, SeriesValue, cached, dump, dump_with, load};

fn key(frame: &DataFrame) -> u128 {
    joblet::__private::key_of(&Frame::from(frame.clone()))
        .unwrap()
        .0
}

fn sample() -> DataFrame {
    df!(
        "id" => (0..1000i64).collect::<Vec<_>>(),
        "x" => (0..1000).map(|i| f64::from(i) * 0.5).collect::<Vec<_>>(),
        "name" => (0..1000).map(|i| format!("n{i}")).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn file(name: &str) -> PathBuf {
    let dir = common::dir("polars");
    fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn equal_frames_hash_equal() {
    assert_eq!(key(&sample()), key(&sample()));
}

#[test]
fn a_frame_shows_its_shape_and_schema() {
    let frame = Frame::from(df!("id" => [1i64, 2], "name" => ["a", "b"]).unwrap());
    assert_eq!(format!("{frame:?}"), "Frame(2 x 2: id i64, name str)");
}

#[test]
fn chunking_does_not_change_the_key() {
    let whole = sample();
    let halves = whole.slice(0, 500).vstack(&whole.slice(500, 500)).unwrap();
    assert!(halves.first_col_n_chunks() > 1);
    assert_eq!(key(&halves), key(&whole));
    let mut thirds = whole.slice(0, 333);
    thirds.vstack_mut(&whole.slice(333, 333)).unwrap();
    thirds.vstack_mut(&whole.slice(666, 334)).unwrap();
    assert_eq!(key(&thirds), key(&whole));
    // Inside other arguments too: a tuple, a vector, a map's values.
    let inside = |frame: &DataFrame| {
        let frame = Frame::from(frame.clone());
        let map = std::collections::HashMap::from([(1u8, frame.clone())]);
        joblet::__private::key_of(&((frame.clone(), 7u8), vec![frame], map)).unwrap()
    };
    assert_eq!(inside(&halves), inside(&whole));
}

#[test]
fn chunking_does_not_change_the_key_of_nulls_and_booleans() {
    let values: Vec<Option<i32>> = (0..300).map(|i| (i % 7 != 0).then_some(i)).collect();
    let flags: Vec<Option<bool>> = (0..300)
        .map(|i| (i % 5 != 0).then_some(i % 3 == 0))
        .collect();
    // Some strings longer than the hasher's blocks.
    let names: Vec<Option<String>> = (0..300)
        .map(|i| {
            (i % 4 != 0).then(|| {
                if i % 50 == 1 {
                    "x".repeat(5000 + i)
                } else {
                    i.to_string()
                }
            })
        })
        .collect();
    let whole = df!("v" => &values, "f" => &flags, "s" => &names).unwrap();
    // Cuts at bit offsets that are not multiples of 8 or 64.
    let mut cut = whole.slice(0, 13);
    cut.vstack_mut(&whole.slice(13, 100)).unwrap();
    cut.vstack_mut(&whole.slice(113, 187)).unwrap();
    assert_eq!(key(&cut), key(&whole));
}

#[test]
fn slack_in_the_buffers_does_not_change_the_key() {
    let big = sample();
    let sliced = big.slice(100, 50);
    let fresh = df!(
        "id" => (100..150i64).collect::<Vec<_>>(),
        "x" => (100..150).map(|i| f64::from(i) * 0.5).collect::<Vec<_>>(),
        "name" => (100..150).map(|i| format!("n{i}")).collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(key(&sliced), key(&fresh));
}

/// Values under null slots are not the frame's: two frames that differ only there are equal.
#[test]
fn bytes_under_nulls_do_not_change_the_key() {
    let column = |under_null: i64| {
        let validity = Bitmap::from([true, false, true]);
        let array = PrimitiveArray::new(
            ArrowDataType::Int64,
            vec![1, under_null, 3].into(),
            Some(validity),
        );
        let series = Series::from_arrow("a".into(), Box::new(array)).unwrap();
        DataFrame::new_infer_height(vec![series.into()]).unwrap()
    };
    assert_eq!(key(&column(0)), key(&column(-77)));
    let built = df!("a" => [Some(1i64), None, Some(3)]).unwrap();
    assert_eq!(key(&column(12345)), key(&built));
}

#[test]
fn a_different_dtype_name_order_null_or_value_changes_the_key() {
    let base = df!("a" => [1i64, 2, 3], "b" => ["x", "y", "z"]).unwrap();
    let k = key(&base);
    let others = [
        df!("a" => [1i32, 2, 3], "b" => ["x", "y", "z"]).unwrap(),
        df!("a" => [1.0f64, 2.0, 3.0], "b" => ["x", "y", "z"]).unwrap(),
        df!("A" => [1i64, 2, 3], "b" => ["x", "y", "z"]).unwrap(),
        df!("b" => ["x", "y", "z"], "a" => [1i64, 2, 3]).unwrap(),
        df!("a" => [Some(1i64), None, Some(3)], "b" => ["x", "y", "z"]).unwrap(),
        df!("a" => [Some(1i64), Some(0), Some(3)], "b" => ["x", "y", "z"]).unwrap(),
        df!("a" => [1i64, 2, 4], "b" => ["x", "y", "z"]).unwrap(),
        df!("a" => [1i64, 2, 3], "b" => ["x", "y", "zz"]).unwrap(),
        df!("a" => [1i64, 2, 3], "b" => [Some("x"), None, Some("z")]).unwrap(),
        df!("a" => [1i64, 2, 3], "b" => [Some("x"), Some(""), Some("z")]).unwrap(),
        df!("a" => [1i64, 2], "b" => ["x", "y"]).unwrap(),
        df!("a" => [1i64, 2, 3]).unwrap(),
    ];
    for (i, other) in others.iter().enumerate() {
        assert_ne!(key(other), k, "frame {i} hashes like the base frame");
    }
    // Strings are length-prefixed: moving a byte from one to the next is another frame.
    let ab = df!("s" => ["ab", "c"]).unwrap();
    let a_bc = df!("s" => ["a", "bc"]).unwrap();
    assert_ne!(key(&ab), key(&a_bc));
    let t = df!("f" => [true, false, true]).unwrap();
    let u = df!("f" => [true, true, true]).unwrap();
    assert_ne!(key(&t), key(&u));
}

#[test]
fn an_unhashable_dtype_is_a_clear_error() {
    let list = Series::new("l".into(), [Series::new("".into(), [1i32, 2])]);
    let frame = DataFrame::new_infer_height(vec![list.into()]).unwrap();
    let error = joblet::__private::key_of(&Frame::from(frame)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("column `l`"), "{message}");
}

/// Every common dtype, with nulls, several chunks, and a date and a datetime; the other
/// dtypes, one at a time, are `dtypes_beyond_every_dtype`.
fn every_dtype() -> DataFrame {
    let n = 257;
    let mut frame = df!(
        "i32" => (0..n).map(|i| (i % 9 != 0).then_some(i as i32)).collect::<Vec<_>>(),
        "i64" => (0..n).map(|i| i as i64 * 1_000_000_007).collect::<Vec<_>>(),
        "u32" => (0..n).map(|i| i as u32).collect::<Vec<_>>(),
        "u64" => (0..n).map(|i| u64::MAX - i as u64).collect::<Vec<_>>(),
        "f32" => (0..n).map(|i| (i % 5 != 0).then_some(i as f32 / 3.0)).collect::<Vec<_>>(),
        "f64" => (0..n).map(|i| (i as f64).sqrt()).collect::<Vec<_>>(),
        "bool" => (0..n).map(|i| (i % 4 != 0).then_some(i % 3 == 0)).collect::<Vec<_>>(),
        "str" => (0..n).map(|i| (i % 6 != 0).then(|| "ünï".repeat(i % 20))).collect::<Vec<_>>(),
        "nulls" => (0..n).map(|_| None::<i64>).collect::<Vec<_>>(),
    )
    .unwrap();
    let days = Series::new("date".into(), (0..n as i32).collect::<Vec<_>>())
        .cast(&DataType::Date)
        .unwrap();
    let stamps = Series::new(
        "time".into(),
        (0..n as i64).map(|i| i * 3_600_000).collect::<Vec<_>>(),
    )
    .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
    .unwrap();
    frame.with_column(days.into()).unwrap();
    frame.with_column(stamps.into()).unwrap();
    let mut chunked = frame.slice(0, 100);
    chunked.vstack_mut(&frame.slice(100, 157)).unwrap();
    chunked
}

/// The dtypes `every_dtype` leaves out.
fn dtypes_beyond_every_dtype() -> Vec<DataType> {
    vec![
        DataType::Int8,
        DataType::Int16,
        DataType::UInt8,
        DataType::UInt16,
        DataType::Int128,
        DataType::Decimal(10, 2),
        DataType::Decimal(38, 0),
        DataType::Time,
        DataType::Duration(TimeUnit::Milliseconds),
        DataType::Duration(TimeUnit::Nanoseconds),
        DataType::Datetime(TimeUnit::Microseconds, None),
    ]
}

/// A column of `dtype` (with nulls), cast from small integers; with `changed`, one of its
/// values is another.
fn of_dtype(dtype: &DataType, changed: bool) -> DataFrame {
    let mut values: Vec<Option<i64>> = (0..300)
        .map(|i| (i % 9 != 0).then_some((i * 7) % 100))
        .collect();
    if changed {
        values[150] = values[150].map(|v| v + 1);
    }
    let series = Series::new("v".into(), values).strict_cast(dtype).unwrap();
    assert_eq!(series.dtype(), dtype);
    DataFrame::new_infer_height(vec![series.into()]).unwrap()
}

#[test]
fn each_dtype_hashes_by_value_and_round_trips_mapped() {
    for dtype in dtypes_beyond_every_dtype() {
        let whole = of_dtype(&dtype, false);
        let mut cut = whole.slice(0, 13);
        cut.vstack_mut(&whole.slice(13, 150)).unwrap();
        cut.vstack_mut(&whole.slice(163, 137)).unwrap();
        assert_eq!(key(&cut), key(&whole), "{dtype:?}: chunks changed the key");
        let other = of_dtype(&dtype, true);
        assert_ne!(key(&other), key(&whole), "{dtype:?}: a value did not count");
        let path = file("dtype.jbl");
        dump(&Frame::from(cut), &path).unwrap();
        let back: Frame = load(&path).unwrap();
        assert!(back.is_mapped(), "{dtype:?} was not mapped");
        assert_eq!(back.schema(), whole.schema(), "{dtype:?}");
        assert!(back.equals_missing(&whole), "{dtype:?} changed");
        assert_eq!(key(&back), key(&whole), "{dtype:?}");
    }
    // The dtype's parameters count: the same numbers at another scale are other values.
    let cents = of_dtype(&DataType::Decimal(10, 2), false);
    let mills = of_dtype(&DataType::Decimal(10, 3), false);
    assert_ne!(key(&cents), key(&mills));
}

#[test]
fn every_common_dtype_round_trips_mapped() {
    let frame = every_dtype();
    let path = file("every_dtype.jbl");
    dump(&Frame::from(frame.clone()), &path).unwrap();
    let back: Frame = load(&path).unwrap();
    assert!(back.is_mapped());
    assert_eq!(back.schema(), frame.schema());
    assert!(back.equals_missing(&frame));
    assert_eq!(key(&back), key(&frame));
}

#[test]
fn compressed_frames_round_trip_as_owned() {
    let frame = every_dtype();
    for compression in [Compression::Lz4, Compression::Zstd(3)] {
        let path = file("compressed.jbl");
        dump_with(&Frame::from(frame.clone()), &path, compression).unwrap();
        let back: Frame = load(&path).unwrap();
        assert!(!back.is_mapped());
        assert!(back.equals_missing(&frame));
    }
}

#[test]
fn a_frame_inside_a_struct_round_trips() {
    let pair = (
        String::from("label"),
        Frame::from(sample()),
        vec![Frame::from(every_dtype())],
    );
    let path = file("nested.jbl");
    dump(&pair, &path).unwrap();
    let back: (String, Frame, Vec<Frame>) = load(&path).unwrap();
    assert_eq!(back.0, "label");
    assert!(back.1.equals_missing(&sample()));
    assert!(back.2[0].equals_missing(&every_dtype()));
}

#[test]
fn empty_frames_round_trip() {
    for frame in [DataFrame::empty(), sample().slice(0, 0)] {
        let path = file("empty.jbl");
        dump(&Frame::from(frame.clone()), &path).unwrap();
        let back: Frame = load(&path).unwrap();
        assert_eq!(back.shape(), frame.shape());
        assert_eq!(back.schema(), frame.schema());
    }
}

#[test]
fn an_unstorable_dtype_is_a_clear_error() {
    let list = Series::new("l".into(), [Series::new("".into(), [1i32, 2])]);
    let frame = DataFrame::new_infer_height(vec![list.into()]).unwrap();
    let error = dump(&Frame::from(frame), file("list.jbl")).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Encode(m) if m.contains("column `l`")),
        "{error}"
    );
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("features"))]
fn features(frame: Frame) -> Frame {
    CALLS.fetch_add(1, Ordering::SeqCst);
    let x = frame.column("x").unwrap().as_materialized_series();
    let doubled = (x * 2.0).with_name("x2".into());
    let mut out = frame.into_inner();
    out.with_column(doubled.into()).unwrap();
    Frame::from(out)
}

#[test]
fn a_cached_function_of_frames_computes_once_per_distinct_frame() {
    let first = features(Frame::from(sample()));
    let calls = CALLS.load(Ordering::SeqCst);
    let whole = sample();
    let rechunked = whole.slice(0, 400).vstack(&whole.slice(400, 600)).unwrap();
    let again = features(Frame::from(rechunked));
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        calls,
        "an equal frame recomputed"
    );
    assert!(again.equals_missing(&first));
    assert_eq!(again.column("x2").unwrap().f64().unwrap().get(3), Some(3.0));
    joblet::flush();
    let other = features(Frame::from(sample().slice(1, 10)));
    assert_eq!(CALLS.load(Ordering::SeqCst), calls + 1);
    assert_eq!(other.height(), 10);
}

fn series_key(series: &Series) -> u128 {
    joblet::__private::key_of(&SeriesValue::from(series.clone()))
        .unwrap()
        .0
}

#[test]
fn a_series_hashes_by_value_and_round_trips_mapped() {
    for dtype in dtypes_beyond_every_dtype() {
        let whole = of_dtype(&dtype, false)["v"]
            .as_materialized_series()
            .clone();
        let mut cut = whole.slice(0, 100);
        cut.append(&whole.slice(100, 200)).unwrap();
        assert!(cut.n_chunks() > 1);
        assert_eq!(series_key(&cut), series_key(&whole), "{dtype:?}");
        let other = of_dtype(&dtype, true)["v"].as_materialized_series().clone();
        assert_ne!(series_key(&other), series_key(&whole), "{dtype:?}");
        let path = file("series.jbl");
        dump(&SeriesValue::from(cut), &path).unwrap();
        let back: SeriesValue = load(&path).unwrap();
        assert!(back.is_mapped() && back.verify(), "{dtype:?}");
        assert_eq!(back.dtype(), &dtype);
        assert_eq!(back.name(), "v");
        assert!(back.equals_missing(&whole), "{dtype:?} changed");
    }
    let x = Series::new("x".into(), [1i64, 2, 3]);
    assert_ne!(series_key(&x), series_key(&x.clone().with_name("y".into())));
    assert_ne!(
        series_key(&x),
        series_key(&x.cast(&DataType::Int32).unwrap())
    );
    assert_eq!(
        format!("{:?}", SeriesValue::from(x)),
        "SeriesValue(3: x i64)"
    );
}

#[test]
fn a_compressed_series_round_trips_as_owned() {
    let x = Series::new("x".into(), [Some("a"), None, Some("ü")]);
    let path = file("compressed_series.jbl");
    dump_with(&SeriesValue::from(x.clone()), &path, Compression::Zstd(3)).unwrap();
    let back: SeriesValue = load(&path).unwrap();
    assert!(!back.is_mapped());
    assert!(back.equals_missing(&x));
    assert_eq!(back.into_inner().name(), "x");
}

#[test]
fn a_series_is_not_loaded_as_a_frame_nor_a_frame_as_a_series() {
    let path = file("series_or_frame.jbl");
    let x = Series::new("x".into(), [1i64, 2, 3]);
    dump(&SeriesValue::from(x.clone()), &path).unwrap();
    let error = load::<Frame>(&path).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::WrongType { .. }),
        "{error}"
    );
    dump(&Frame::from(x.into_frame()), &path).unwrap();
    let error = load::<SeriesValue>(&path).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::WrongType { .. }),
        "{error}"
    );
}

#[test]
fn a_damaged_series_is_an_error_not_a_panic() {
    let path = file("damaged_series.jbl");
    let x = Series::new("x".into(), (0..500).map(f64::from).collect::<Vec<_>>());
    dump(&SeriesValue::from(x), &path).unwrap();
    let good = fs::read(&path).unwrap();
    let (offset, len, _) = section(&good);
    for at in (offset..offset + len).step_by(61) {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        fs::write(&path, &bad).unwrap();
        assert!(
            load::<SeriesValue>(&path).is_err(),
            "a flip at {at} was not seen"
        );
    }
}

static SERIES_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("series"))]
fn doubled(series: SeriesValue) -> SeriesValue {
    SERIES_CALLS.fetch_add(1, Ordering::SeqCst);
    let out = (&*series * 2.0).with_name("doubled".into());
    SeriesValue::from(out)
}

#[test]
fn a_cached_function_of_series_computes_once_per_distinct_series() {
    let x = Series::new("x".into(), (0..1000).map(f64::from).collect::<Vec<_>>());
    let first = doubled(SeriesValue::from(x.clone()));
    let calls = SERIES_CALLS.load(Ordering::SeqCst);
    let mut halves = x.slice(0, 300);
    halves.append(&x.slice(300, 700)).unwrap();
    joblet::flush();
    let again = doubled(SeriesValue::from(halves));
    assert_eq!(SERIES_CALLS.load(Ordering::SeqCst), calls, "recomputed");
    assert!(again.is_mapped());
    assert_eq!(*again, *first);
    assert_eq!(again.f64().unwrap().get(3), Some(6.0));
}

/// The entry `path` with its first array section (the frame's IPC file) located.
fn section(bytes: &[u8]) -> (usize, usize, usize) {
    let u = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(b) as usize
    };
    let table = common::payload_start(bytes) + u(32, 8);
    (u(table, 8), u(table + 8, 8), table)
}

#[test]
fn a_damaged_frame_is_an_error_not_a_panic() {
    let path = file("damaged.jbl");
    dump(&Frame::from(every_dtype()), &path).unwrap();
    let good = fs::read(&path).unwrap();
    let (offset, len, _) = section(&good);
    for at in (offset..offset + len).step_by(97) {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        fs::write(&path, &bad).unwrap();
        assert!(load::<Frame>(&path).is_err(), "a flip at {at} was not seen");
    }
    for cut in [offset + len / 2, offset + 3, good.len() - 1] {
        fs::write(&path, &good[..cut]).unwrap();
        assert!(load::<Frame>(&path).is_err(), "a cut at {cut} was not seen");
    }
}

/// Past 1 MiB of sections, a hit checks the file's skeleton (schema, buffer places, footer)
/// but not the buffers' bytes, which `verify` reads on demand.
#[test]
fn a_large_frame_is_checked_by_its_skeleton_and_verified_on_demand() {
    let rows = 200_000;
    let frame = df!("x" => (0..rows).map(f64::from).collect::<Vec<_>>()).unwrap();
    let path = file("large.jbl");
    dump(&Frame::from(frame.clone()), &path).unwrap();
    let good = fs::read(&path).unwrap();
    let back: Frame = load(&path).unwrap();
    assert!(back.is_mapped() && back.verify());
    assert!(back.equals(&frame));
    drop(back);
    let (offset, len, _) = section(&good);
    for at in [offset + 20, offset + len - 20] {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        fs::write(&path, &bad).unwrap();
        assert!(
            load::<Frame>(&path).is_err(),
            "a flip at {at} of the skeleton was not seen"
        );
    }
    let mut bad = good.clone();
    bad[offset + len / 2] ^= 0x04;
    fs::write(&path, &bad).unwrap();
    let damaged: Frame = load(&path).unwrap();
    assert!(!damaged.verify());
}

/// A forger rewrites the section's hash and the entry's checksum: the IPC reader then sees
/// the bytes, and must refuse or read them, never panic or read out of bounds.
#[test]
fn a_forged_frame_is_an_error_not_a_panic() {
    use xxhash_rust::xxh3::xxh3_64;
    let path = file("forged.jbl");
    let small = every_dtype().slice(0, 40);
    dump(&Frame::from(small), &path).unwrap();
    let good = fs::read(&path).unwrap();
    let (offset, len, table) = section(&good);
    let mut refused = 0;
    for at in offset..offset + len {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            let hash = xxh3_64(&bad[offset..offset + len]);
            bad[table + 16..table + 24].copy_from_slice(&hash.to_le_bytes());
            common::resign(&mut bad);
            fs::write(&path, &bad).unwrap();
            if let Ok(frame) = load::<Frame>(&path) {
                // Whatever was read must be usable.
                let _ = format!("{frame:?}");
                let _ = joblet::__private::key_of(&frame);
            } else {
                refused += 1;
            }
        }
    }
    assert!(refused > 0);
}

/// Frames as captures and results of worker processes: a large one travels in shared memory
/// and is mapped there, as an `Array` is.
#[cfg(all(feature = "processes", target_os = "linux"))]
#[test]
fn frames_travel_to_and_from_worker_processes() {
    use joblet::parallel;
    // 1.6 MB: past the default `max_nbytes`, 1 MiB.
    let big = Frame::from(df!("x" => (0..200_000).map(f64::from).collect::<Vec<_>>()).unwrap());
    let small = Frame::from(df!("s" => ["a", "b"]).unwrap());
    let seen = parallel!(backend = processes, n_jobs = 2; for i in 0..4usize => {
        let x = big.column("x").unwrap().f64().unwrap().get(i * 1000);
        (big.is_mapped(), x, small.height())
    });
    for (i, seen) in seen.iter().enumerate() {
        assert_eq!(*seen, (true, Some((i * 1000) as f64), 2));
    }
    let frames = parallel!(backend = processes, n_jobs = 2;
        for i in 0..3i64 => Frame::from(df!("i" => [i, i * 10]).unwrap()));
    for (i, frame) in (0..3i64).zip(&frames) {
        assert!(frame.equals(&df!("i" => [i, i * 10]).unwrap()));
    }
}
