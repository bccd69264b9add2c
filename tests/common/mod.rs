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

/// Every entry file below `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
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

fn files(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
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
