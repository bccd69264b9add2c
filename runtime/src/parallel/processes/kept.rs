//! Workers kept between calls, as loky keeps its executor: a call's workers wait, idle, for
//! the next call with the same settings, which starts without starting processes. A worker
//! idle for longer than its call's `idle_timeout` is ended by a janitor thread, and every
//! idle worker when the program exits; one whose parent dies ends itself (see `worker.rs`).

use std::sync::{Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use super::handle::{Settings, Worker};

/// An idle worker, and until when it waits.
struct Idle {
    worker: Worker,
    until: Instant,
}

/// The idle workers, oldest first.
static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());
/// Wakes the janitor when a worker is kept.
static KEPT: Condvar = Condvar::new();

/// An idle worker started with `settings`, if one is alive.
pub(super) fn take(settings: Settings) -> Option<Worker> {
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    let mut dead = Vec::new();
    let found = loop {
        // The one kept last: its pages are the warmest.
        let Some(at) = idle.iter().rposition(|w| w.worker.settings == settings) else {
            break None;
        };
        let mut candidate = idle.remove(at).worker;
        if candidate.alive() {
            break Some(candidate);
        }
        dead.push(candidate);
    };
    drop(idle);
    // Reaped outside the lock.
    drop(dead);
    found
}

/// Keeps a worker that finished a call, for `idle` (ends it at once for zero), and for no
/// more than `most` idle workers with its settings.
pub(super) fn keep(worker: Worker, idle: Duration, most: usize) {
    if idle.is_zero() {
        return;
    }
    static JANITOR: Once = Once::new();
    JANITOR.call_once(|| {
        let started = std::thread::Builder::new()
            .name("joblet-janitor".into())
            .spawn(janitor);
        if started.is_ok() {
            at_exit();
        }
    });
    let mut kept = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    let settings = worker.settings;
    if kept
        .iter()
        .filter(|w| w.worker.settings == settings)
        .count()
        >= most
    {
        // Ended outside the lock.
        drop(kept);
        drop(worker);
        return;
    }
    kept.push(Idle {
        worker,
        until: Instant::now() + idle,
    });
    KEPT.notify_one();
}

/// Ends the workers whose wait is over, sleeping until the next one's is.
fn janitor() {
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        let (over, waiting): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut *idle)
            .into_iter()
            .partition(|w| w.until <= now);
        *idle = waiting;
        if !over.is_empty() {
            drop(idle);
            // Each closes its socket and is reaped, outside the lock.
            drop(over);
            idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let next = idle.iter().map(|w| w.until).min();
        idle = match next {
            Some(until) => {
                let wait = until.saturating_duration_since(now) + Duration::from_millis(1);
                KEPT.wait_timeout(idle, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => KEPT.wait(idle).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Ends every idle worker as the program exits: each closes its socket, exits as a program
/// does (writing what its `#[cached]` hits counted) and is reaped.
fn at_exit() {
    extern "C" fn end_idle_workers() {
        // A thread may hold the lock as the program exits: its workers end with their parent.
        let Ok(mut idle) = IDLE.try_lock() else {
            return;
        };
        let all = std::mem::take(&mut *idle);
        drop(idle);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            end_all(all.into_iter().map(|w| w.worker).collect())
        }));
    }
    // SAFETY: registers a handler that takes no arguments and does not unwind.
    unsafe { libc::atexit(end_idle_workers) };
}

/// Ends workers together: their sockets close first, so that they exit at once, then each is
/// reaped.
fn end_all(mut workers: Vec<Worker>) {
    for worker in &mut workers {
        worker.close();
    }
    drop(workers);
}
