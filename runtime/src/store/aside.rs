//! Hashing on a second thread beside a large write or read: the write is bound by the
//! kernel's page cache, the read by the disk, the hash by memory bandwidth. (Decompression
//! shares its blocks with a second thread through the same helpers.)

/// Hashing this many bytes or more is done on a second thread beside the write or read it
/// checks. Starting the thread costs some 50 µs, and a read goes at about 20 µs a MiB beside
/// the hash's 27: the overlap pays from about 2.5 MiB on, when the second core is free.
pub(crate) const HASH_ASIDE_FROM: usize = 4 << 20;

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
