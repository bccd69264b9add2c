//! A run's options, as `parallel!` passes them: workers, batches, progress output; what
//! `batch_size = auto` means on each backend; and the names of the backends.

/// How many tasks go to a worker at once (`batch_size`). What `auto` means on each backend
/// is said in one place, the methods of `Batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Adapted to the run: rayon splits the work as workers run out of it.
    Auto,
    /// A fixed number of tasks per batch.
    Fixed(usize),
}

/// The options of one `parallel!` call.
#[derive(Debug, Clone)]
pub struct Options {
    n_jobs: i64,
    pub(crate) batch: Batch,
    /// joblib's `verbose`, 0 to 50.
    pub(crate) verbose: u32,
    /// A progress bar instead of lines.
    pub(crate) progress: bool,
}

impl Options {
    /// Options with joblib's meaning of `n_jobs` (`-1` all cores, `-2` all but one, ...).
    pub fn new(n_jobs: i64, batch: Batch, verbose: i64, progress: bool) -> Self {
        Options {
            n_jobs,
            batch,
            verbose: verbose.clamp(0, 50) as u32,
            progress,
        }
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
    ///
    /// # Panics
    /// When `n_jobs` is 0, which joblib rejects too.
    pub fn workers(&self) -> usize {
        match self.n_jobs {
            0 => panic!("`n_jobs = 0` is not valid: give a number of workers, or -1 for all cores"),
            n if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            n => (cores() as i64 + 1 + n).max(1) as usize,
        }
    }
}

/// What `batch_size` means on each backend, `auto` above all: every answer is here.
impl Batch {
    /// On threads, the least and most tasks a rayon job takes: with `auto`, any number, as
    /// rayon splits the work when workers run out of it.
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

    /// Over worker processes, for `total` tasks on `workers`: with `auto`, small enough to
    /// spread the tasks and to lose little to a crash, large enough that the ~20 µs a batch
    /// costs stays small beside the tasks.
    #[cfg(all(feature = "processes", unix))]
    pub(crate) fn processes(self, total: usize, workers: usize) -> usize {
        match self {
            Batch::Fixed(b) => b,
            Batch::Auto => (total / (workers * 8)).clamp(1, 1024),
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

/// The number of cores, read once: on Linux, `available_parallelism` reads cgroup files at
/// every call.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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
        let w = |n| Options::new(n, Batch::Auto, 0, false).workers();
        assert_eq!(w(3), 3);
        assert_eq!(w(-1), cores);
        assert_eq!(w(-2), (cores - 1).max(1));
        assert_eq!(w(-1000), 1);
        assert!(std::panic::catch_unwind(|| w(0)).is_err());
    }
}
