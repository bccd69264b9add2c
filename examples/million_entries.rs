//! Measures one function with a million small entries (issue #5): how fast they are stored,
//! whether its hits are slower than those of a function with ten, and what `joblet report`
//! (`Memory::entries`), `joblet prune --max-items` (`Memory::reduce_size`) and
//! `Memory::clear` cost at that size.
//!
//!     cargo build --release -p joblet-cli   # optional: `joblet report` is timed too
//!     cargo run --release --example million_entries -- 1000000 [--keep]
//!
//! The cache folder is made under the system's temporary folder and removed at the end. With
//! `--keep`, pruning and clearing are skipped and the full folder is left in place, for
//! `joblet report` or `joblet prune` by hand. Each entry takes a file system block (4 KiB on
//! most), so a million need about 4 GB: N is scaled down to what the disk holds, and the
//! program says so.
//!
//! The page cache is warm throughout (the entries were just written), as it is for a report
//! soon after the program that filled the cache. Removal speed is mostly the file system's:
//! on ext4 mounted with `discard`, unlinking a file whose block has reached the disk takes
//! about a millisecond, against tens of microseconds for one still in the page cache only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use joblet::{Limits, Memory, cached, parallel};

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Calls of `big` that computed rather than loaded: the fill must compute every one.
static COMPUTED: AtomicU64 = AtomicU64::new(0);

fn cache_dir() -> &'static Path {
    DIR.get()
        .expect("the folder is chosen before the first call")
}

/// The function holding N entries.
#[cached(dir = cache_dir())]
fn big(x: u64) -> u64 {
    COMPUTED.fetch_add(1, Ordering::Relaxed);
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Its neighbour in the same folder, holding ten.
#[cached(dir = cache_dir())]
fn small(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Bytes an entry takes on disk, for the space check: a block, whatever its few bytes.
const BLOCK: u64 = 4096;

/// Hits timed on each function, each on its own.
const HIT_REPS: usize = 20_000;

fn main() {
    let mut requested = 1_000_000u64;
    let mut keep = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--keep" => keep = true,
            n => {
                requested = match n.replace('_', "").parse() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        eprintln!("usage: million_entries [N > 0] [--keep]");
                        std::process::exit(2)
                    }
                }
            }
        }
    }
    // `JOBLET_MILLION_DIR` names the folder (`benches/reference/compare.py --report` keeps one).
    let dir = std::env::var_os("JOBLET_MILLION_DIR").map_or_else(
        || std::env::temp_dir().join(format!("joblet-million-{}", std::process::id())),
        PathBuf::from,
    );
    let n = fit_to_disk(requested, &std::env::temp_dir());
    DIR.set(dir.clone()).expect("set once");
    println!("cache folder {} ({n} entries)", dir.display());

    let mut table = Table::default();

    // 1. Fill, a tenth at a time: a rate that falls from one tenth to the next would mean a
    // store costs more as the folder grows.
    let fill = Instant::now();
    let step = n.div_ceil(10).max(1);
    let mut from = 0;
    while from < n {
        let to = (from + step).min(n);
        let start = Instant::now();
        let out: Vec<u64> = parallel!(n_jobs = 2; for i in from..to => big(i));
        assert_eq!(out.len() as u64, to - from);
        let took = start.elapsed();
        println!(
            "  stored {from:>8}..{to:<8} in {took:>9.3?}  {:>8.0} entries/s",
            (to - from) as f64 / took.as_secs_f64()
        );
        from = to;
    }
    let fill = fill.elapsed();
    assert_eq!(
        COMPUTED.load(Ordering::Relaxed),
        n,
        "every fill call computes"
    );
    table.row("fill big (n_jobs = 2)", n, fill);
    let small_start = Instant::now();
    for i in 0..10 {
        small(i);
    }
    table.row("fill small", 10, small_start.elapsed());

    // 2. Hits: the same key again and again, then ten keys as `small` has, then keys spread
    // over the whole function. Those are each a first hit in this process, which writes the
    // entry's hit count (see `runtime/src/store/hits.rs`): a cost of first hits, not of the
    // folder's size.
    let spread = (n / 10).max(1);
    let hits = [
        ("hit big, one key", time_hits(|_| big(n / 2))),
        ("hit big, 10 keys", time_hits(|r| big(r % 10 * spread))),
        ("hit big, all keys (first hits)", time_hits(|r| big(r % n))),
        ("hit small, one key", time_hits(|_| small(5))),
        ("hit small, 10 keys", time_hits(|r| small(r % 10))),
    ];
    assert_eq!(COMPUTED.load(Ordering::Relaxed), n, "every hit loads");

    // 3. What `joblet report` reads: every entry's header.
    let memory = Memory::new(&dir);
    let walk_start = Instant::now();
    let files = walk(&dir);
    table.row("walk: read_dir + stat only", files, walk_start.elapsed());
    let start = Instant::now();
    let entries = memory.entries().expect("the folder lists");
    let took = start.elapsed();
    table.row("Memory::entries (report)", entries.len() as u64, took);
    assert_eq!(entries.len() as u64, n + 10);
    drop(entries);
    if let Some(line) = cli_report(&dir, &mut table) {
        println!("  joblet report: {line}");
    }

    // 4. What `joblet prune --max-items` does, then `Memory::clear`.
    if keep {
        println!("kept {} (prune and clear skipped)", dir.display());
    } else {
        let start = Instant::now();
        let reduced = memory
            .reduce_size(&Limits::new().items((n / 2) as usize))
            .expect("the folder prunes");
        table.row(
            "Memory::reduce_size(items N/2)",
            reduced.entries as u64,
            start.elapsed(),
        );
        let start = Instant::now();
        let cleared = memory.clear().expect("the folder clears");
        table.row("Memory::clear", cleared.entries as u64, start.elapsed());
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("cannot remove {}: {e}", dir.display());
        }
    }

    println!();
    table.print();
    println!();
    println!(
        "{:<32} {:>10} {:>10} {:>10}",
        "hit (µs, warm page cache)", "min", "median", "p99"
    );
    for (label, [min, median, p99]) in hits {
        println!("{label:<32} {min:>10.2} {median:>10.2} {p99:>10.2}");
    }
    println!();
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS: unknown on this platform"),
    }
}

/// The N the disk holding `tmp` has room for, at most `requested`, keeping a tenth free.
fn fit_to_disk(requested: u64, tmp: &Path) -> u64 {
    let Some((bytes, inodes)) = free_space(tmp) else {
        println!("free space unknown: running with N = {requested} as asked");
        return requested;
    };
    // An inode an entry; the folders are a rounding error.
    let room = (bytes / 10 * 9 / BLOCK).min(inodes / 10 * 9);
    println!(
        "free: {:.1} GiB, {inodes} inodes: room for {room} entries",
        bytes as f64 / f64::from(1u32 << 30)
    );
    if room == 0 {
        eprintln!("no room for a single entry under {}", tmp.display());
        std::process::exit(1)
    } else if room < requested {
        println!("SCALED DOWN: N = {room} instead of {requested}, for lack of disk space");
        room
    } else {
        requested
    }
}

/// Free bytes and inodes for an unprivileged user on the file system holding `path`.
#[cfg(target_os = "linux")]
fn free_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain data, for which all zeroes is a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string and `stat` a valid place to write.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Some((
        stat.f_bavail as u64 * stat.f_frsize as u64,
        stat.f_favail as u64,
    ))
}

#[cfg(not(target_os = "linux"))]
fn free_space(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// Min, median and 99th percentile of `HIT_REPS` calls of `call`, in µs, each timed alone.
/// `call` gets a pseudo-random number, for the key.
fn time_hits(mut call: impl FnMut(u64) -> u64) -> [f64; 3] {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..100 {
        std::hint::black_box(call(next()));
    }
    let mut times: Vec<Duration> = (0..HIT_REPS)
        .map(|_| {
            let r = next();
            let start = Instant::now();
            std::hint::black_box(call(r));
            start.elapsed()
        })
        .collect();
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    [
        us(times[0]),
        us(times[times.len() / 2]),
        us(times[times.len() * 99 / 100]),
    ]
}

/// Files below `root` in the layout `<function>/<version>/<shard>/<file>`, with a `stat` of
/// each: the floor under any listing that reads sizes and times.
fn walk(root: &Path) -> u64 {
    fn children(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
        std::fs::read_dir(dir).into_iter().flatten().flatten()
    }
    let mut files = 0;
    for function in children(root) {
        for version in children(&function.path()) {
            for shard in children(&version.path()) {
                for file in children(&shard.path()) {
                    if file.metadata().is_ok_and(|m| m.is_file()) {
                        files += 1;
                    }
                }
            }
        }
    }
    files
}

/// Times `joblet report --dir <dir>` when the release binary sits beside this example's
/// folder (`<target>/release/joblet`), and returns its total line.
fn cli_report(dir: &Path, table: &mut Table) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("joblet");
    if !bin.is_file() {
        println!(
            "  ({} not found: `cargo build --release -p joblet-cli` to time it)",
            bin.display()
        );
        return None;
    }
    let start = Instant::now();
    let out = Command::new(&bin)
        .arg("report")
        .arg("--dir")
        .arg(dir)
        .output()
        .ok()?;
    let took = start.elapsed();
    if !out.status.success() {
        println!(
            "  joblet report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    table.row("`joblet report` (release binary)", 0, took);
    if let Some(kib) = children_peak_rss_kib() {
        println!("  joblet report peak RSS: {} MiB", kib / 1024);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().map(str::to_owned)
}

/// Peak resident set size of this process, KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size of the largest child process waited for, KiB.
#[cfg(target_os = "linux")]
fn children_peak_rss_kib() -> Option<u64> {
    // SAFETY: `rusage` is plain data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid place to write.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return None;
    }
    u64::try_from(usage.ru_maxrss).ok()
}

#[cfg(not(target_os = "linux"))]
fn children_peak_rss_kib() -> Option<u64> {
    None
}

/// Rows of (step, entries, time), each with the peak RSS once it is done.
#[derive(Default)]
struct Table {
    rows: Vec<(&'static str, u64, Duration, Option<u64>)>,
}

impl Table {
    fn row(&mut self, step: &'static str, entries: u64, took: Duration) {
        self.rows.push((step, entries, took, peak_rss_kib()));
    }

    fn print(&self) {
        println!(
            "{:<34} {:>9} {:>10} {:>12} {:>11}",
            "step", "entries", "time", "entries/s", "peak RSS"
        );
        for (step, entries, took, rss) in &self.rows {
            let secs = took.as_secs_f64();
            let (count, rate) = match entries {
                0 => ("-".to_owned(), "-".to_owned()),
                n => (n.to_string(), format!("{:.0}", *n as f64 / secs)),
            };
            let rss = rss.map_or("?".to_owned(), |k| format!("{} MiB", k / 1024));
            println!("{step:<34} {count:>9} {:>9.2}s {rate:>12} {rss:>11}", secs);
        }
    }
}
