//! What the measuring examples share: a process's peak memory, and a summary of timings
//! (median and range), as the project reports figures.

/// This process's peak resident memory, in MB (Linux; NaN elsewhere).
#[allow(dead_code)]
pub fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}

/// Prints `label: median M (range A-B, N values)`.
#[allow(dead_code)]
pub fn summary(label: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{label}: median {:.2} (range {:.2}-{:.2}, {} values)",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
        values.len()
    );
}

/// This example run again as a process of its own with `arg`, a contender: the numbers it
/// printed. Peaks are a process's, and contenders that share a process may share workers.
#[allow(dead_code)]
pub fn contender(arg: &str) -> Vec<f64> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(arg)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect()
}
