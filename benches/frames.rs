//! `Frame`s of 1,000,000 rows: hashing one as an argument (numbers; numbers with nulls, cut
//! in two chunks; strings), and `dump`/`load` of one (a load maps it). The side-by-side with
//! joblib and pandas is `benches/reference/frames.py`.
//!
//!     cargo bench --features polars --bench frames

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use joblet::polars_core::prelude::*;
use joblet::{Frame, dump, load};

const ROWS: usize = 1_000_000;

fn numbers() -> DataFrame {
    df!(
        "id" => (0..ROWS as i64).collect::<Vec<_>>(),
        "x" => (0..ROWS).map(|i| (i as f64 * 0.001).sin()).collect::<Vec<_>>(),
        "w" => (0..ROWS).map(|i| 1.0 + (i % 97) as f64 / 97.0).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn with_nulls() -> DataFrame {
    let x: Vec<Option<f64>> = (0..ROWS)
        .map(|i| (i % 10 != 0).then_some(i as f64))
        .collect();
    let whole = df!("x" => x).unwrap();
    whole
        .slice(0, ROWS / 3)
        .vstack(&whole.slice((ROWS / 3) as i64, ROWS))
        .unwrap()
}

fn strings() -> DataFrame {
    df!("s" => (0..ROWS).map(|i| format!("customer-{i:08}")).collect::<Vec<_>>()).unwrap()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("frame of 1,000,000 rows");
    g.sample_size(20);
    for (name, frame) in [
        ("3 number columns", numbers()),
        ("a float column with nulls, 2 chunks", with_nulls()),
        ("a string column", strings()),
    ] {
        g.throughput(Throughput::Bytes(frame.estimated_size() as u64));
        let frame = Frame::from(frame);
        g.bench_function(format!("hash {name}"), |b| {
            b.iter(|| joblet::__private::key_of(black_box(&frame)).unwrap())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("frame of 1,000,000 rows x 3 number columns");
    g.sample_size(20);
    let dir = std::env::temp_dir().join(format!("joblet-frames-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frame.jbl");
    let frame = Frame::from(numbers());
    g.bench_function("dump", |b| {
        b.iter(|| dump(black_box(&frame), &path).unwrap())
    });
    dump(&frame, &path).unwrap();
    g.bench_function("load, mapped", |b| b.iter(|| load::<Frame>(&path).unwrap()));
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(dir);
}
