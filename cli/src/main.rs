//! `joblet`: what a cache folder written by `#[cached]` holds, and trimming it. Works on any
//! folder, whichever program wrote it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use joblet_runtime::{EntryInfo, Limits, Memory, Reduced};

#[derive(Parser)]
#[command(
    name = "joblet",
    version,
    about = "Report on, list, clear and prune a joblet cache folder"
)]
struct Cli {
    /// The cache folder [default: $JOBLET_CACHE_DIR, else .joblet]
    #[arg(long, short, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A line per function: entries, size, compute time stored, last use
    Report,
    /// The entries of one function, least recently used first
    Ls {
        /// The function, as its folder (`my_crate.stats.mean`) or path (`my_crate::stats::mean`)
        function: String,
    },
    /// Remove every entry, or those of one function
    Clear {
        /// Only this function's entries
        function: Option<String>,
    },
    /// Remove least recently used entries until the folder is within limits
    Prune(PruneArgs),
}

#[derive(Args)]
#[group(required = true, multiple = true)]
struct PruneArgs {
    /// At most this much, in bytes or with a unit: 500M, 2G, 1GiB
    #[arg(long, value_parser = parse_size)]
    max_size: Option<u64>,
    /// At most this many entries
    #[arg(long)]
    max_items: Option<usize>,
    /// Nothing unused for longer than this: 45s, 30min, 12h, 30d, 2w
    #[arg(long, value_parser = parse_age)]
    max_age: Option<Duration>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli.dir.unwrap_or_else(joblet_runtime::default_cache_dir);
    let memory = Memory::new(dir);
    match run(&memory, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("joblet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(memory: &Memory, command: Command) -> Result<ExitCode, joblet_runtime::Error> {
    let now = SystemTime::now();
    match command {
        Command::Report => {
            let entries = memory.entries()?;
            print!("{}", report(&entries, now));
        }
        Command::Ls { function } => {
            let entries = memory.entries_of(&function)?;
            if entries.is_empty() {
                eprintln!(
                    "joblet: no entries of `{function}` in {}; `joblet report` lists the functions there",
                    memory.root().display()
                );
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "{:<34} {:>10} {:>10} {:>12}  type",
                "key", "size", "compute", "last used"
            );
            for e in &entries {
                println!(
                    "{:<34} {:>10} {:>10} {:>12}  {}",
                    e.key,
                    bytes(e.size),
                    duration(e.compute),
                    ago(now, e.last_used),
                    e.type_name
                );
            }
        }
        Command::Clear { function } => {
            let removed = match &function {
                Some(f) => memory.clear_function(f)?,
                None => memory.clear()?,
            };
            print_removed(&removed);
        }
        Command::Prune(args) => {
            let mut limits = Limits::new();
            if let Some(size) = args.max_size {
                limits = limits.bytes(size);
            }
            if let Some(items) = args.max_items {
                limits = limits.items(items);
            }
            if let Some(age) = args.max_age {
                limits = limits.age(age);
            }
            print_removed(&memory.reduce_size(&limits)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_removed(removed: &Reduced) {
    println!(
        "removed {} entries ({}) and {} temporary files",
        removed.entries,
        bytes(removed.bytes),
        removed.temp_files
    );
}

/// A line per function, largest first, and a total.
fn report(entries: &[EntryInfo], now: SystemTime) -> String {
    struct Row {
        entries: usize,
        bytes: u64,
        compute: Duration,
        last_used: SystemTime,
    }
    let mut rows: std::collections::BTreeMap<&str, Row> = Default::default();
    for e in entries {
        let row = rows.entry(&e.function).or_insert(Row {
            entries: 0,
            bytes: 0,
            compute: Duration::ZERO,
            last_used: SystemTime::UNIX_EPOCH,
        });
        row.entries += 1;
        row.bytes += e.size;
        row.compute += e.compute;
        row.last_used = row.last_used.max(e.last_used);
    }
    let mut rows: Vec<(&str, Row)> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    let width = rows.iter().map(|(f, _)| f.len()).max().unwrap_or(0).max(8);
    let mut out = format!(
        "{:<width$} {:>8} {:>10} {:>12} {:>12}\n",
        "function", "entries", "size", "compute", "last used"
    );
    for (function, row) in &rows {
        out += &format!(
            "{:<width$} {:>8} {:>10} {:>12} {:>12}\n",
            function,
            row.entries,
            bytes(row.bytes),
            duration(row.compute),
            ago(now, row.last_used)
        );
    }
    let (count, size, compute) = rows.iter().fold((0, 0, Duration::ZERO), |t, (_, r)| {
        (t.0 + r.entries, t.1 + r.bytes, t.2 + r.compute)
    });
    out += &format!(
        "{:<width$} {:>8} {:>10} {:>12}\n",
        "total",
        count,
        bytes(size),
        duration(compute)
    );
    out
}

/// `1234567` as `1.2 MB` (powers of 1000).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration in the largest unit that keeps it at least 1: `850 ms`, `12.5 s`, `3.2 min`.
fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    match s {
        s if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{:.1} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// How long before `now` `then` was: `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`.
fn ago(now: SystemTime, then: SystemTime) -> String {
    let s = now.duration_since(then).unwrap_or_default().as_secs();
    match s {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// `500`, `500B`, `10k`, `1.5G`, `2GiB`: bytes, powers of 1000 or, with `i`, of 1024.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write bytes, or 500M, 2G, 1GiB"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        "ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown unit in `{text}`: use k, M, G, T or Ki, Mi, Gi, Ti"
            ));
        }
    };
    Ok((number * scale) as u64)
}

/// `45s`, `30min`, `12h`, `30d`, `2w`.
fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not an age: write 45s, 30min, 12h, 30d or 2w"))?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("unknown unit in `{text}`: use s, min, h, d or w")),
    };
    Ok(Duration::from_secs(number * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_parse_with_their_units() {
        assert_eq!(parse_size("500"), Ok(500));
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("3X").is_err());
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("15min"), Ok(Duration::from_secs(900)));
        assert!(parse_age("soon").is_err());
        assert!(parse_age("3y").is_err());
    }

    #[test]
    fn numbers_print_in_human_units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_secs(190)), "3.2 min");
        let now = SystemTime::now();
        assert_eq!(ago(now, now - Duration::from_secs(7300)), "2 h ago");
    }
}
