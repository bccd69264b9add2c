//! `joblet`: what a cache folder written by `#[cached]` holds, and trimming it. Works on any
//! folder, whichever program wrote it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use joblet_runtime::{Limits, Memory, Reduced, Summary};

#[derive(Parser)]
#[command(
    name = "joblet",
    version,
    about = "Report on, list, clear and prune a joblet cache folder"
)]
struct Cli {
    /// The cache folder, or an object store's URL (`s3://bucket/prefix`, with the `remote`
    /// feature) [default: $JOBLET_CACHE_DIR, else .joblet]
    #[arg(long, short, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A line per function: entries, size, what its outdated code versions take, compute
    /// time stored, hits, time saved, last use
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
    /// No entry of a function's outdated code versions (stored by code that has changed
    /// since; `report` shows what they take)
    #[arg(long)]
    old_versions: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli.dir.unwrap_or_else(joblet_runtime::default_cache_dir);
    // A folder that is not there is a mistake (a typo, the wrong current folder), not an empty
    // cache: said as `ls` says it, with the usage error's code.
    if !joblet_runtime::is_url(&dir) && !dir.is_dir() {
        let why = if dir.exists() {
            "not a folder"
        } else {
            "no such folder"
        };
        eprintln!("joblet: {}: {why}", dir.display());
        return ExitCode::from(2);
    }
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
            print!("{}", report(&memory.summary()?, now));
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
                "{:<12} {:>10} {:>10} {:>6} {:>12}  arguments",
                "key", "size", "compute", "hits", "last used"
            );
            for e in &entries {
                println!(
                    "{:<12} {:>10} {:>10} {:>6} {:>12}  {}",
                    e.key.chars().take(12).collect::<String>(),
                    bytes(e.size),
                    duration(e.compute),
                    e.hits,
                    ago(now, e.last_used),
                    printable(&e.args)
                );
            }
        }
        Command::Clear { function } => {
            let removed = match &function {
                Some(f) => memory.clear_function(f)?,
                None => memory.clear()?,
            };
            print_removed("", &removed);
        }
        Command::Prune(args) => {
            if args.old_versions {
                print_removed("of outdated code versions ", &memory.clear_old_versions()?);
                if args.max_size.is_none() && args.max_items.is_none() && args.max_age.is_none() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
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
            print_removed("", &memory.reduce_size(&limits)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a removal did; `which` says which entries, before "entries".
fn print_removed(which: &str, removed: &Reduced) {
    println!(
        "removed {} entries {which}({}) and {} temporary files",
        removed.entries,
        bytes(removed.bytes),
        removed.temp_files
    );
}

/// A line per function, largest first, and a total: what the entries took to compute, how
/// often they were loaded instead, and the compute time those loads saved.
fn report(lines: &[Summary], now: SystemTime) -> String {
    let mut total = Summary::default();
    lines.iter().for_each(|line| total.add(line));
    let width = lines
        .iter()
        .map(|l| l.function.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let line = |function: &str, row: &Summary| {
        format!(
            "{function:<width$} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>12}\n",
            row.entries,
            bytes(row.bytes),
            bytes(row.outdated_bytes),
            duration(row.compute),
            row.hits,
            duration(row.saved),
            row.last_used.map_or_else(String::new, |t| ago(now, t)),
        )
    };
    let mut out = format!(
        "{:<width$} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>12}\n",
        "function", "entries", "size", "outdated", "compute", "hits", "saved", "last used"
    );
    for row in lines {
        out += &line(&row.function, row);
    }
    out += &line("total", &total);
    out
}

/// `text` with its control characters escaped, so that what a file says cannot drive the
/// terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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
    joblet_runtime::size_in_bytes(text).map_err(|e| format!("`{text}`: {e}"))
}

/// `45s`, `30min`, `12h`, `30d`, `2w`: the runtime's `duration_of`.
fn parse_age(text: &str) -> Result<Duration, String> {
    joblet_runtime::duration_of(text).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_parse_with_their_units() {
        // Sizes are the runtime's `size_in_bytes`, tested there: here, the message names the
        // text it refuses.
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert!(parse_size("3X").is_err_and(|e| e.starts_with("`3X`: unknown unit")));
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
        assert_eq!(printable("a\u{1b}[2Jé"), "a\\u{1b}[2Jé");
    }
}
