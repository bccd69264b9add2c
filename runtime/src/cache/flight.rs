//! Single flight: concurrent misses of one call in this process compute it once, the others
//! wait for its result (joblib computes each).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use crate::key::Key;
use crate::store::EntryId;

/// A call as its entry names it, in any store: the folder of its function's code version in
/// the store's, and its key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct CallId {
    version: PathBuf,
    key: Key,
}

impl CallId {
    pub(crate) fn new(root: &Path, id: &EntryId<'_>) -> Self {
        CallId {
            version: root.join(id.function).join(id.version),
            key: id.key,
        }
    }
}

/// Whether this thread may block to wait for another computing the same call: not a rayon
/// worker, whose blocking could deadlock work-stealing (a worker waiting inside a stolen task
/// can hold, lower in its stack, the very work the computing thread waits for).
pub(crate) fn may_wait() -> bool {
    #[cfg(feature = "threads")]
    return rayon::current_thread_index().is_none();
    #[cfg(not(feature = "threads"))]
    return true;
}

/// The calls being computed in this process.
static FLIGHTS: Mutex<Option<HashMap<CallId, Arc<Flight>>>> = Mutex::new(None);

/// One call being computed; other threads wait for it to land.
pub(crate) struct Flight {
    /// `None` while computing; then whether the result was stored.
    landed: Mutex<Option<bool>>,
    signal: Condvar,
}

/// Owned by the thread that computes: dropping it (after the store, or on a panic) lets the
/// waiting threads go.
pub(crate) struct FlightGuard {
    call: CallId,
    flight: Arc<Flight>,
    stored: bool,
}

impl Flight {
    /// Makes this thread the one that computes `call`, or gives the flight of the thread that
    /// already does.
    pub(crate) fn claim(call: CallId) -> Result<FlightGuard, Arc<Flight>> {
        let mut flights = FLIGHTS.lock().unwrap_or_else(|e| e.into_inner());
        let flights = flights.get_or_insert_with(Default::default);
        if let Some(other) = flights.get(&call) {
            return Err(Arc::clone(other));
        }
        let flight = Arc::new(Flight {
            landed: Mutex::new(None),
            signal: Condvar::new(),
        });
        flights.insert(call.clone(), Arc::clone(&flight));
        Ok(FlightGuard {
            call,
            flight,
            stored: false,
        })
    }

    /// Waits until the computing thread is done; says whether it stored its result.
    pub(crate) fn wait(&self) -> bool {
        let landed = self.landed.lock().unwrap_or_else(|e| e.into_inner());
        let landed = self
            .signal
            .wait_while(landed, |landed| landed.is_none())
            .unwrap_or_else(|e| e.into_inner());
        *landed == Some(true)
    }
}

impl FlightGuard {
    /// The result is stored: the waiting threads may load it.
    pub(crate) fn stored(&mut self) {
        self.stored = true;
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut flights = FLIGHTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flights) = flights.as_mut() {
            flights.remove(&self.call);
        }
        *self.flight.landed.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.stored);
        self.flight.signal.notify_all();
    }
}

#[cfg(test)]
mod tests {
    /// `parallel!` tasks run on rayon's workers; blocking one to wait could deadlock.
    #[cfg(feature = "threads")]
    #[test]
    fn rayon_workers_never_wait_for_another_thread_computing_a_call() {
        assert!(super::may_wait());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert!(!pool.install(super::may_wait));
        assert!(!rayon::join(super::may_wait, || ()).0);
    }
}
