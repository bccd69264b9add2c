//! What a cache in an object store costs, beside a folder's: for a small value (`u64`) and for
//! 8 MB (`Vec<f64>` of 1,000,000), the time of a store (a miss: computed, written to the local
//! tier and uploaded), of a remote hit (downloaded into the local tier, then loaded), of a
//! local-tier hit, and of a hit in a plain local folder. Each hit is its entry's first load in
//! the process (later hits of a small value are served from a copy in memory). Rounds
//! alternate the four; medians and ranges.
//!
//!     JOBLET_LOCAL_TIER=/tmp/joblet-tier cargo run --release --features remote \
//!         --example remote_timings -- s3://joblet/timings
//!
//! with the `AWS_*` variables of the store set (README.md, "Sharing a cache between machines").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use joblet::Memory;

const ROUNDS: u64 = 15;

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "s3://joblet/timings".into());
    let Some(tier) = std::env::var_os("JOBLET_LOCAL_TIER").map(PathBuf::from) else {
        eprintln!("set JOBLET_LOCAL_TIER: this program empties the tier's copies it made");
        std::process::exit(2);
    };
    let local_dir = std::env::temp_dir().join(format!("joblet-timings-{}", std::process::id()));
    let remote = Memory::new(url.as_str());
    let local = Memory::new(&local_dir);

    let series: Vec<f64> = (0..1_000_000).map(|i| f64::from(i) * 0.5).collect();
    let small = |n: u64| n.wrapping_mul(0x9e37_79b9);
    let large = |n: u64| {
        let mut v = series.clone();
        v[0] = n as f64;
        v
    };
    let run = std::process::id();
    let remote_small = remote.cache(format!("timings.small{run}"), small);
    let remote_large = remote.cache(format!("timings.large{run}"), large);
    let local_small = local.cache("timings.small", small);
    let local_large = local.cache("timings.large", large);
    // Stored beforehand, a key a round, for the local folder's hits: each is its first load
    // from its file, as the remote and local-tier hits are.
    for round in 1..=ROUNDS {
        local_small.call::<u64, u64>(round);
        local_large.call::<u64, Vec<f64>>(round);
    }
    joblet::flush();

    let mut times: [[Vec<Duration>; 4]; 2] = Default::default();
    for round in 1..=ROUNDS {
        for (size, times) in times.iter_mut().enumerate() {
            let function = format!("timings.{}{run}", ["small", "large"][size]);
            let call = |n: u64| match size {
                0 => {
                    let _: u64 = remote_small.call(n);
                }
                _ => {
                    let _: Vec<f64> = remote_large.call(n);
                }
            };
            // Each round its own keys. A store: computed, written, uploaded (a small one by
            // the background writer, waited for here).
            let start = Instant::now();
            call(round);
            joblet::flush();
            times[0].push(start.elapsed());
            // A second key, stored the same way: in the local tier, not in memory.
            call(round + 1000);
            joblet::flush();
            // A remote hit: the first key's copy removed from the local tier first.
            let entries = remote.entries_of(&function).unwrap();
            let entry = entries
                .iter()
                .find(|e| e.args == round.to_string())
                .unwrap();
            let in_bucket = entry.path.to_str().unwrap().split_once("://").unwrap().1;
            std::fs::remove_file(tier.join(in_bucket)).unwrap();
            let start = Instant::now();
            call(round);
            times[1].push(start.elapsed());
            // A local-tier hit: the second key, loaded from its file as a local one is.
            let start = Instant::now();
            call(round + 1000);
            times[2].push(start.elapsed());
            let start = Instant::now();
            match size {
                0 => {
                    let _: u64 = local_small.call(round);
                }
                _ => {
                    let _: Vec<f64> = local_large.call(round);
                }
            }
            times[3].push(start.elapsed());
        }
    }
    println!("{ROUNDS} rounds, medians (min-max)");
    println!(
        "{:<10} {:>24} {:>24} {:>24} {:>24}",
        "value", "store", "remote hit", "local-tier hit", "local folder hit"
    );
    for (size, times) in times.iter_mut().enumerate() {
        let cells: Vec<String> = times.iter_mut().map(|t| summary(t)).collect();
        let name = ["u64", "8 MB"][size];
        println!(
            "{name:<10} {:>24} {:>24} {:>24} {:>24}",
            cells[0], cells[1], cells[2], cells[3]
        );
    }
    let _ = remote_small_clear(&remote, run);
    let _ = std::fs::remove_dir_all(local_dir);
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let median = times[times.len() / 2];
    format!(
        "{median:.2?} ({:.2?}-{:.2?})",
        times[0],
        times[times.len() - 1]
    )
}

/// Removes what the run stored in the bucket.
fn remote_small_clear(remote: &Memory, run: u32) -> Result<(), joblet::Error> {
    remote.clear_function(&format!("timings.small{run}"))?;
    remote.clear_function(&format!("timings.large{run}"))?;
    Ok(())
}
