//! A cached feature-engineering step on a Polars frame: the frame is the argument (its key
//! hashed from its Arrow buffers) and the result (stored as Arrow IPC in the entry, mapped on a
//! hit). Run as is, it computes once, hits, and prints what each took:
//!
//!     cargo run --release --features polars --example frames [-- ROWS]
//!
//! `benches/reference/frames.py` runs it beside joblib with pandas, through two modes:
//! `frames --prepare ROWS DIR` stores the result of ROWS rows in DIR; `frames --round ROWS DIR`,
//! a fresh process, prints the milliseconds of its first hit, the median of 5 warm hits and
//! the median of 5 hashings of the argument.

#[path = "measure/mod.rs"]
mod measure;

use std::path::PathBuf;
use std::time::Instant;

use joblet::polars_core::prelude::*;
use joblet::{Frame, cached};

/// Where the cache lives: the folder named on the command line, else a temporary one.
fn cache_dir() -> PathBuf {
    std::env::args()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("joblet-frames"))
}

/// The raw frame: an id, a measurement and a weight per row.
fn raw(rows: usize) -> DataFrame {
    let rows = rows as i64;
    df!(
        "id" => (0..rows).collect::<Vec<_>>(),
        "x" => (0..rows).map(|i| (i as f64 * 0.001).sin()).collect::<Vec<_>>(),
        "w" => (0..rows).map(|i| 1.0 + (i % 97) as f64 / 97.0).collect::<Vec<_>>(),
    )
    .expect("columns of one length")
}

/// The step worth caching: two derived columns, added to the frame.
#[cached(dir = cache_dir())]
fn features(raw: Frame) -> Frame {
    let x = raw.column("x").unwrap().as_materialized_series();
    let w = raw.column("w").unwrap().as_materialized_series();
    let weighted = (x * w).unwrap().with_name("x_weighted".into());
    let centered = (x - x.mean().unwrap_or(0.0)).with_name("x_centered".into());
    let mut out = raw.into_inner();
    out.with_column(weighted.into()).unwrap();
    out.with_column(centered.into()).unwrap();
    Frame::from(out)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn median_of_5(mut f: impl FnMut() -> f64) -> f64 {
    let mut times: Vec<f64> = (0..5).map(|_| f()).collect();
    times.sort_by(f64::total_cmp);
    times[2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows = |at: usize| args.get(at).map_or(1_000_000, |n| n.parse().expect("ROWS"));
    match args.get(1).map(String::as_str) {
        Some("--prepare") => {
            features(Frame::from(raw(rows(2))));
            joblet::flush();
        }
        Some("--round") => {
            let frame = Frame::from(raw(rows(2)));
            let t = Instant::now();
            let first = features(frame.clone());
            let first_ms = ms(t);
            assert!(first.is_mapped(), "the round's first call was not a hit");
            let warm = median_of_5(|| {
                let t = Instant::now();
                std::hint::black_box(features(frame.clone()));
                ms(t)
            });
            let hash = median_of_5(|| {
                let t = Instant::now();
                std::hint::black_box(joblet::__private::key_of(&frame).unwrap());
                ms(t)
            });
            println!("{hash:.4} {first_ms:.4} {warm:.4}");
        }
        _ => demo(rows(1)),
    }
}

fn demo(rows: usize) {
    let frame = Frame::from(raw(rows));
    let _ = std::fs::remove_dir_all(cache_dir());
    let t = Instant::now();
    let computed = features(frame.clone());
    println!("computed and stored: {:.1} ms", ms(t));
    joblet::flush();
    let t = Instant::now();
    let hit = features(frame.clone());
    println!(
        "hit: {:.2} ms, {} columns mapped from the entry: {}",
        ms(t),
        hit.width(),
        hit.is_mapped()
    );
    assert!(hit.equals(&computed));
    let hashes: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(joblet::__private::key_of(&frame).unwrap());
            ms(t)
        })
        .collect();
    let bytes = frame.estimated_size() as f64;
    measure::summary("hashing the argument, ms", hashes.clone());
    let mut sorted = hashes;
    sorted.sort_by(f64::total_cmp);
    println!("  {:.1} GB/s", bytes / sorted[2] / 1e6);
    println!("{:?}", hit.schema());
}
