//! The options of `backend = processes` alone: how tasks are confined (`timeout`,
//! `max_memory`), from which size `Array`s travel in shared memory (`max_nbytes`), and how long
//! workers wait for the next call (`idle_timeout`).

use std::time::Duration;

/// joblib's default `max_nbytes`: arrays of a megabyte and more are shared, not copied.
const MAX_NBYTES: u64 = 1 << 20;

/// loky's default: a worker left idle for five minutes ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The options of a `parallel!(backend = processes)` call that the other backends do not have.
#[derive(Debug, Clone, Copy)]
pub struct ProcessOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_memory: Option<u64>,
    pub(crate) max_nbytes: u64,
    pub(crate) idle_timeout: Duration,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            timeout: None,
            max_memory: None,
            max_nbytes: MAX_NBYTES,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

impl ProcessOptions {
    /// No limits; arrays from 1 MiB on shared; workers kept for 300 s after a call.
    pub fn new() -> Self {
        ProcessOptions::default()
    }

    /// A task running longer than `limit` is stopped: its worker is killed and replaced.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// A worker's address space is capped at `bytes` (`RLIMIT_AS`): a task that allocates
    /// past it fails, and its worker is replaced.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// The `Array`s of the captures, or of a batch's items, that hold `bytes` or more
    /// together go to the workers in shared memory, mapped there without a copy.
    pub fn max_nbytes(mut self, bytes: u64) -> Self {
        self.max_nbytes = bytes;
        self
    }

    /// After the call, its workers wait `idle` for the next call with the same settings, then
    /// end; `0` ends them with the call.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }
}

/// A `timeout` or `idle_timeout`: a [`Duration`], or seconds as a number.
pub trait Timeout {
    /// The duration.
    fn duration(self) -> Duration;
}

impl Timeout for Duration {
    fn duration(self) -> Duration {
        self
    }
}

impl Timeout for f64 {
    fn duration(self) -> Duration {
        Duration::try_from_secs_f64(self).unwrap_or_else(|_| {
            panic!("`{self}` is not a duration: give a positive number of seconds or a `Duration`")
        })
    }
}

macro_rules! timeout_in_seconds {
    ($($t:ty),*) => {$(
        impl Timeout for $t {
            fn duration(self) -> Duration {
                match u64::try_from(self) {
                    Ok(secs) => Duration::from_secs(secs),
                    Err(_) => panic!("`{self}` is not a duration: give a positive number of seconds or a `Duration`"),
                }
            }
        }
    )*};
}
timeout_in_seconds!(i32, i64, u32, u64, usize);

/// The value of `timeout` or `idle_timeout` as a [`Duration`].
pub fn timeout(limit: impl Timeout) -> Duration {
    limit.duration()
}
