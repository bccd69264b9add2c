//! A run's options, as `parallel!` passes them: workers, batches, batches in flight, progress
//! output; what `batch_size = auto` means on each backend; the number of cores, and the
//! default `n_jobs`; and the names of the backends.

use std::time::Duration;

/// How many tasks go to a worker at once (`batch_size`). What `auto` means on each backend
/// is said in one place, the methods of `Batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Adapted to the run: rayon splits the work as workers run out of it.
    Auto,
    /// A fixed number of tasks per batch.
    Fixed(usize),
}

/// The environment variable that sets the `n_jobs` of every `parallel!` call that gives none,
/// as joblib's `parallel_config(n_jobs=...)` does: a number of workers, or `-1` for every core,
/// `-2` for all but one, ...
pub const N_JOBS_ENV: &str = "JOBLET_N_JOBS";

/// The options of one `parallel!` call.
#[derive(Debug, Clone)]
pub struct Options {
    n_jobs: i64,
    pub(crate) batch: Batch,
    /// joblib's `verbose`, 0 to 100.
    pub(crate) verbose: u32,
    /// A progress bar instead of lines.
    pub(crate) progress: bool,
    /// Batches dispatched ahead of the results taken, when an input is read lazily.
    pre_dispatch: Option<usize>,
}

impl Options {
    /// Options with joblib's meaning of `n_jobs` (`-1` all cores, `-2` all but one, ...);
    /// `None` when the call gives none: [`N_JOBS_ENV`] then, or every core.
    ///
    /// # Panics
    /// When `n_jobs` is `Some(0)`, which joblib rejects too.
    pub fn new(n_jobs: Option<i64>, batch: Batch, verbose: i64, progress: bool) -> Self {
        let n_jobs = match n_jobs {
            Some(0) => panic!("{}", ZeroJobs),
            Some(n) => n,
            None => default_n_jobs(),
        };
        Options {
            n_jobs,
            batch,
            verbose: verbose.clamp(0, 100) as u32,
            progress,
            pre_dispatch: None,
        }
    }

    /// At most `batches` batches dispatched ahead of the results taken (`pre_dispatch`).
    ///
    /// # Panics
    /// When `batches` is 0: nothing would ever run.
    pub fn pre_dispatch(mut self, batches: impl Integer) -> Self {
        let batches = batches.to_i64();
        if batches < 1 {
            panic!(
                "`pre_dispatch = {batches}` is not valid: give a positive number of batches, as in `pre_dispatch = 2 * n_jobs`"
            );
        }
        self.pre_dispatch = Some(usize::try_from(batches).unwrap_or(usize::MAX));
        self
    }

    /// How many batches a lazy run keeps dispatched ahead of the results taken on `workers`:
    /// `pre_dispatch`, or joblib's default, `2 * n_jobs`.
    pub(crate) fn window(&self, workers: usize) -> usize {
        self.pre_dispatch.unwrap_or(2 * workers).max(1)
    }

    /// The same options, with no progress output.
    #[cfg(feature = "mpi")]
    pub(crate) fn silent(&self) -> Self {
        Options {
            verbose: 0,
            progress: false,
            ..self.clone()
        }
    }

    /// The number of workers: `n_jobs` when positive, else counted back from the cores.
    pub fn workers(&self) -> usize {
        workers_for(self.n_jobs)
    }
}

/// `n_jobs = 0`, which means nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroJobs;

impl std::fmt::Display for ZeroJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("`n_jobs = 0` is not valid: give a number of workers, or -1 for all cores, -2 for all but one")
    }
}

impl std::error::Error for ZeroJobs {}

/// The number of workers `n_jobs` stands for, with joblib's meaning: `n_jobs` itself when
/// positive, every core for `-1`, all but one for `-2`, and so on, at least one.
fn workers_for(n_jobs: i64) -> usize {
    if n_jobs > 0 {
        usize::try_from(n_jobs).unwrap_or(usize::MAX)
    } else {
        (cpu_count() as i64 + 1 + n_jobs).max(1) as usize
    }
}

/// The number of cores this process may run on, as joblib's `cpu_count()`: the machine's,
/// less what its CPU affinity and its cgroup's quota leave out. Read once.
///
/// ```
/// assert!(joblet_runtime::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    // On Linux, `available_parallelism` reads cgroup files at every call.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The number of workers a `parallel!` call with this `n_jobs` runs on, as joblib's
/// `effective_n_jobs`: `n_jobs` when positive, [`cpu_count`] for `-1`, one less for `-2`, and
/// so on, at least one.
///
/// ```
/// use joblet_runtime::{cpu_count, effective_n_jobs};
///
/// assert_eq!(effective_n_jobs(3), Ok(3));
/// assert_eq!(effective_n_jobs(-1), Ok(cpu_count()));
/// assert_eq!(effective_n_jobs(-1000), Ok(1));
/// assert!(effective_n_jobs(0).is_err());
/// ```
///
/// # Errors
/// [`ZeroJobs`] for `n_jobs = 0`, which means nothing.
pub fn effective_n_jobs(n_jobs: i64) -> Result<usize, ZeroJobs> {
    match n_jobs {
        0 => Err(ZeroJobs),
        n => Ok(workers_for(n)),
    }
}

/// The `n_jobs` of a call that gives none: [`N_JOBS_ENV`] when it holds a valid value, else
/// `-1`, every core. A value that is not one is said once, as a warning, and left out.
fn default_n_jobs() -> i64 {
    let Some(value) = std::env::var_os(N_JOBS_ENV) else {
        return -1;
    };
    match value.to_str().and_then(|v| v.trim().parse::<i64>().ok()) {
        Some(n) if n != 0 => n,
        _ => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "{N_JOBS_ENV}={value:?} is not a number of workers (a positive number, or -1 for all cores, -2 for all but one): parallel! calls use every core"
                )
            });
            -1
        }
    }
}

/// What `batch_size` means on each backend, `auto` above all: every answer is here.
impl Batch {
    /// On threads, the bounds given to rayon's splitting of an indexed input: with `N`, it
    /// halves the input while the halves hold `N` tasks or more, so that each rayon job takes
    /// `N` to `2N - 1` (8 tasks in batches of 2 are 4 jobs of 2; 7 are jobs of 3, 2 and 2);
    /// with `auto`, any number, as rayon splits the work when workers run out of it.
    #[cfg(feature = "threads")]
    pub(crate) fn rayon_bounds(self) -> (usize, usize) {
        match self {
            Batch::Fixed(b) => (b, b),
            Batch::Auto => (1, usize::MAX),
        }
    }

    /// On one thread (`sequential`, and every backend's lazy form): with `auto`, the whole
    /// run is one batch, since in order, on one thread, splitting changes nothing.
    pub(crate) fn sequential(self) -> usize {
        match self {
            Batch::Fixed(b) => b,
            Batch::Auto => usize::MAX,
        }
    }

    /// For an input read as it is needed (any input on processes, an iterator without an index
    /// on threads, every `generator` and `unordered` run): the batches' sizes, which with
    /// `auto` start at one task and adapt to how long batches take, as joblib's do.
    pub(crate) fn lazy(self) -> Sizer {
        Sizer {
            batch: self,
            size: match self {
                Batch::Fixed(b) => b,
                Batch::Auto => 1,
            },
        }
    }

    /// Over the `ranks` of an MPI job, for `total` tasks: with `auto`, enough batches that
    /// every rank gets several, spread over the whole range.
    #[cfg(feature = "mpi")]
    pub(crate) fn mpi(self, total: usize, ranks: usize) -> usize {
        match self {
            Batch::Fixed(b) => b,
            Batch::Auto => (total / (ranks * 16)).max(1),
        }
    }

    /// How many completed tasks a progress line reports: joblib reports per batch; with
    /// `auto`, about 2 lines per worker early on and fewer as the run goes (the verbosity
    /// filter thins them out).
    pub(crate) fn report_every(self, total: Option<usize>, workers: usize) -> usize {
        match self {
            Batch::Fixed(b) => b,
            Batch::Auto => total.map_or(1, |t| (t / (workers * 8)).max(1)),
        }
    }
}

/// The size of a lazy run's next batch. With `auto`, a batch that took less than `FAST` is
/// followed by one larger in proportion (2 to 64 times), up to `MOST` tasks, and one that
/// took more than `SLOW` by
/// one half as large: long enough that what a batch costs (~1 µs on threads, ~4 µs on
/// processes, and a wake-up of the workers, tens of µs on a busy machine) is lost in it,
/// short enough to keep every worker busy. Batches grow only while they take under 2 ms, so a
/// batch of `MOST` is one of tasks of a few nanoseconds: a crash on processes costs little
/// time to run it again, and `pre_dispatch` of them hold little memory.
pub(crate) struct Sizer {
    batch: Batch,
    size: usize,
}

impl Sizer {
    const FAST: Duration = Duration::from_millis(2);
    const SLOW: Duration = Duration::from_millis(50);
    const MOST: usize = 1 << 16;

    /// The size of the next batch.
    pub(crate) fn next(&self) -> usize {
        self.size
    }

    /// Learns that a batch of `tasks` tasks took `elapsed`.
    pub(crate) fn observe(&mut self, tasks: usize, elapsed: Duration) {
        if self.batch != Batch::Auto || tasks < self.size {
            return;
        }
        if elapsed < Self::FAST {
            // As joblib: in proportion to how much faster than `FAST` it was, here at most 64
            // times larger a step, so that a few steps reach a batch of trivial tasks.
            let factor = Self::FAST.as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
            let grown = (self.size as f64 * factor.clamp(2.0, 64.0)) as usize;
            self.size = grown.min(Self::MOST);
        } else if elapsed > Self::SLOW {
            self.size = (self.size / 2).max(1);
        }
    }
}

/// An integer of any type, as the `i64` that `n_jobs`, `batch_size` and `verbose` take: the
/// options are any integer expression, whatever its type.
pub trait Integer {
    /// The value as `i64`, saturated.
    fn to_i64(self) -> i64;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            fn to_i64(self) -> i64 {
                i64::try_from(self).unwrap_or(if self > 0 as $t { i64::MAX } else { i64::MIN })
            }
        }
    )*};
}
integer!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize
);

/// Any integer as an `i64`, saturated.
pub fn integer(n: impl Integer) -> i64 {
    n.to_i64()
}

/// Converts an integer of any type to a batch size.
pub fn batch_size(n: impl Integer) -> Batch {
    match n.to_i64() {
        n if n > 0 => Batch::Fixed(usize::try_from(n).unwrap_or(usize::MAX)),
        n => panic!("`batch_size = {n}` is not valid: give a positive number of tasks, or `auto`"),
    }
}

/// Where a run's tasks run.
#[derive(Clone, Copy)]
pub(crate) enum Backend {
    #[cfg(feature = "threads")]
    Threads,
    #[cfg(all(feature = "processes", unix))]
    Processes,
    Sequential,
}

impl Backend {
    /// The name `parallel!` takes, and `tracing` records.
    pub(crate) fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "threads")]
            Backend::Threads => "threads",
            #[cfg(all(feature = "processes", unix))]
            Backend::Processes => "processes",
            Backend::Sequential => "sequential",
        }
    }

    /// joblib's name, for its progress lines.
    pub(crate) fn joblib(self) -> &'static str {
        match self {
            #[cfg(feature = "threads")]
            Backend::Threads => "ThreadingBackend",
            #[cfg(all(feature = "processes", unix))]
            Backend::Processes => "ProcessesBackend",
            Backend::Sequential => "SequentialBackend",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_jobs_follows_joblib() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let w = |n| Options::new(Some(n), Batch::Auto, 0, false).workers();
        assert_eq!(w(3), 3);
        assert_eq!(w(-1), cores);
        assert_eq!(w(-2), (cores - 1).max(1));
        assert_eq!(w(-1000), 1);
        assert!(std::panic::catch_unwind(|| w(0)).is_err());
        assert_eq!(effective_n_jobs(-2), Ok((cores - 1).max(1)));
    }

    #[test]
    fn auto_batches_grow_while_fast_and_shrink_when_slow() {
        let mut sizer = Batch::Auto.lazy();
        assert_eq!(sizer.next(), 1);
        for _ in 0..20 {
            sizer.observe(sizer.next(), Duration::from_micros(10));
        }
        assert_eq!(sizer.next(), Sizer::MOST);
        // A batch cut short by a failure says nothing of the size.
        sizer.observe(3, Duration::from_secs(1));
        assert_eq!(sizer.next(), Sizer::MOST);
        sizer.observe(Sizer::MOST, Duration::from_secs(1));
        assert_eq!(sizer.next(), Sizer::MOST / 2);
        let mut fixed = Batch::Fixed(7).lazy();
        fixed.observe(7, Duration::ZERO);
        assert_eq!(fixed.next(), 7);
    }
}
