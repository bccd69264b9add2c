//! Work to finish when the process exits normally (returns from `main` or calls `exit`): the
//! cache's stores in flight, then the hit counts still in memory.

use std::sync::Mutex;

static HANDLERS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Runs `f` when the process exits normally, on Unix; handlers registered first run first.
/// Elsewhere nothing runs.
pub(crate) fn at_exit(f: fn()) {
    #[cfg(unix)]
    {
        extern "C" fn run() {
            // Taken, so that a handler that exits again does not run the others twice; not
            // waited for, since the thread that called `exit` may hold the lock.
            let handlers = match HANDLERS.try_lock() {
                Ok(mut handlers) => std::mem::take(&mut *handlers),
                Err(_) => return,
            };
            for f in handlers {
                // Nothing may unwind out of an exit handler.
                let _ = std::panic::catch_unwind(f);
            }
        }
        static REGISTERED: std::sync::Once = std::sync::Once::new();
        let mut handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
        if !handlers.contains(&f) {
            handlers.push(f);
        }
        drop(handlers);
        // SAFETY: `run` is an `extern "C" fn()` that never unwinds; `atexit` only stores it.
        REGISTERED.call_once(|| unsafe {
            libc::atexit(run);
        });
    }
    #[cfg(not(unix))]
    let _ = f;
}
