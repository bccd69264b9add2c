//! Helpers shared by the integration tests: a cache folder per test, captured warnings, and the
//! entry files of a folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A fresh folder for one test's cache, under cargo's temporary folder for integration tests.
/// The process id keeps runs apart; a new run never sees an old run's entries.
pub fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("joblet-{}", std::process::id()))
        .join(name)
}

/// This test binary, set to run only its test `test`, with its output shown: tests that need
/// a process of their own (environment, limits, crashes) run themselves as a child.
pub fn child(test: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd
}

/// Makes the checksum of the entry `bytes` hold, as a forger would: `xxh3` of the header's
/// fields (the hit count taken as zero) and of the body, which ends where the header's lengths
/// say (array sections are hashed in the body's table).
pub fn resign(bytes: &mut [u8]) {
    use xxhash_rust::xxh3::xxh3_64;
    let at = |i: usize, n: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[i..i + n]);
        u64::from_le_bytes(b)
    };
    let body_end = [at(20, 2), at(22, 2), at(32, 8), at(24, 4)]
        .into_iter()
        .fold(64u64, u64::saturating_add);
    let body_end = usize::try_from(body_end).map_or(bytes.len(), |end| end.min(bytes.len()));
    let mut fields = [0u8; 48];
    fields.copy_from_slice(&bytes[16..64]);
    fields[12..16].fill(0); // the hit count
    let mut both = [0u8; 16];
    both[..8].copy_from_slice(&xxh3_64(&fields).to_le_bytes());
    both[8..].copy_from_slice(&xxh3_64(&bytes[64..body_end]).to_le_bytes());
    let sum = xxh3_64(&both);
    bytes[8..16].copy_from_slice(&sum.to_le_bytes());
}

/// Where the payload of the entry `bytes` starts: after its header, type name, arguments and
/// gap (flags bits 8 to 13).
pub fn payload_start(bytes: &[u8]) -> usize {
    let name_len = usize::from(u16::from_le_bytes([bytes[20], bytes[21]]));
    let args_len = usize::from(u16::from_le_bytes([bytes[22], bytes[23]]));
    let gap = usize::from(bytes[19] & 0x3F);
    64 + name_len + args_len + gap
}

/// The peak of this process's virtual memory, in bytes: every allocation and every map
/// counts, the zstd library's (made in C) among them, whether or not its pages are touched.
#[cfg(target_os = "linux")]
pub fn peak_virtual_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Every entry file below `dir`, sorted, once this process's queued stores are written.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    joblet::flush();
    files(dir, |p| {
        p.extension().is_some_and(|x| x == "jbl") && !is_temp(p)
    })
}

/// Every temporary file a writer left below `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files(dir, is_temp)
}

fn is_temp(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
}

pub fn files(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
        let Ok(read) = std::fs::read_dir(dir) else {
            return;
        };
        for e in read.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, keep, out);
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &keep, &mut out);
    out.sort();
    out
}

/// Runs `f` with a tracing subscriber on this thread and returns its result and what was
/// logged at warn level or above.
pub fn warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    logs(tracing::Level::WARN, f)
}

/// Runs `f` with a tracing subscriber on this thread (a scoped one, not the global default)
/// and returns its result and what was logged at `level` or above.
pub fn logs<T>(level: tracing::Level, f: impl FnOnce() -> T) -> (T, String) {
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let buf = buf.clone();
        move || Capture(buf.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(writer)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    (out, text)
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
