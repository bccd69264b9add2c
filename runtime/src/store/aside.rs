//! Work on a second thread beside a large write: the write is bound by the kernel's page
//! cache, the hash by memory bandwidth. (Decompression shares its blocks with a second thread,
//! and a large direct read its reads (`direct.rs`), through the same helpers.)

/// Hashing this many bytes or more is done on a second thread beside the write it checks.
/// XXH3 hashes about 55 GB/s with AVX2 (18 µs a MiB), and a helper thread, started and ended,
/// costs 150 to 400 µs on this project's 2-core VM: an 80 MB dump took 14 to 16 ms on one
/// thread and 10 to 12.5 with a helper (`benches/peers.rs`, alternating).
pub(crate) const HASH_ASIDE_FROM: usize = 32 << 20;

/// Whether a second core is likely free now, so that a helper thread would start at once: on
/// Linux, when no more threads are runnable than there are cores (the fourth field of
/// `/proc/loadavg` counts them, this one among them); elsewhere, when there are two cores or
/// more. On a machine whose cores are all busy, a helper waits milliseconds for one, and the
/// work costs less done here (a read and its hash on one core measured 0.39 ms for 8 MB, on
/// two with a third thread busy 0.45 to 1.4 ms).
pub(crate) fn core_free() -> bool {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if cores < 2 {
        return false;
    }
    #[cfg(target_os = "linux")]
    if let Some(running) = runnable() {
        return running <= cores;
    }
    true
}

/// How many threads are runnable now, system-wide, from `/proc/loadavg` (`0.50 0.40 0.30 3/250
/// 12345`: 3 of them).
#[cfg(target_os = "linux")]
fn runnable() -> Option<usize> {
    use std::io::Read;
    let mut text = [0u8; 128];
    let mut file = std::fs::File::open("/proc/loadavg").ok()?;
    let len = file.read(&mut text).ok()?;
    let text = std::str::from_utf8(&text[..len]).ok()?;
    text.split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// A helper thread in `scope`, or `None` when the system cannot start one (the caller then
/// does the work itself).
pub(crate) fn spawn_scoped<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    work: impl FnOnce() -> T + Send + 'scope,
) -> Option<std::thread::ScopedJoinHandle<'scope, T>> {
    std::thread::Builder::new()
        .name("joblet-hash".into())
        .spawn_scoped(scope, work)
        .ok()
}

/// The helper's result; its panic, if it panicked, becomes this thread's.
pub(crate) fn join<T>(helper: std::thread::ScopedJoinHandle<'_, T>) -> T {
    helper
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn runnable_threads_are_counted_this_one_among_them() {
        assert!(super::runnable().is_some_and(|n| n >= 1));
    }
}
