//! Peak memory of a `parallel!` over 10,000,000 lines from an iterator without an index (the
//! lines of a large file, say), in one form: `list` (a `Vec` of results), `unordered` or
//! `generator`. The input is read as batches are dispatched, so only the results, and a few
//! batches of lines, are ever held. Run each form in a process of its own, since a peak is
//! the process's:
//!
//!     cargo run --release --example lazy_input -- list
//!     cargo run --release --example lazy_input -- generator

use joblet::parallel;

mod measure;
use measure::peak_mb;

const LINES: u64 = 10_000_000;

fn main() {
    let form = std::env::args().nth(1).unwrap_or_else(|| "list".into());
    // Lines of about 30 bytes, made as they are read, as a file's would be.
    let lines = (0..LINES).map(|i| format!("line {i:>12} of the input"));
    let start = std::time::Instant::now();
    let total: usize = match form.as_str() {
        "list" => parallel!(n_jobs = 2; for line in lines => line.len())
            .iter()
            .sum(),
        "unordered" => {
            parallel!(n_jobs = 2, return_as = unordered; for line in lines => line.len()).sum()
        }
        "generator" => {
            parallel!(n_jobs = 2, return_as = generator; for line in lines => line.len()).sum()
        }
        other => panic!("unknown form {other}: give list, unordered or generator"),
    };
    assert_eq!(total, LINES as usize * 30);
    println!(
        "{form}: {LINES} lines, peak memory {:.0} MB, {:.2} s",
        peak_mb(),
        start.elapsed().as_secs_f64()
    );
}
