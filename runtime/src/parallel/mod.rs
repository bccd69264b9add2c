//! The runtime of `parallel!`: what every backend shares (options and what `batch_size =
//! auto` means, failures, progress output, `tracing`, a run's state, the lazy run and the
//! iterators `return_as` gives), and one file or folder per backend: threads, sequential,
//! processes, mpi.
//!
//! A backend runs a call's tasks and hands back their results; the shared files say how a
//! run is reported and how it fails, so that every backend reports and fails alike.

// Shared by the backends; a build with neither `threads` nor `processes` runs every loop
// sequentially and leaves parts of them unused.
#[cfg(feature = "threads")]
mod batches;
#[cfg_attr(not(any(feature = "threads", feature = "processes")), allow(dead_code))]
mod failure;
pub(crate) mod mpi;
#[cfg_attr(not(any(feature = "threads", feature = "processes")), allow(dead_code))]
mod options;
pub(crate) mod processes;
mod progress;
#[cfg_attr(not(any(feature = "threads", feature = "processes")), allow(dead_code))]
mod results;
mod run;
mod sequential;
#[cfg_attr(not(any(feature = "threads", feature = "processes")), allow(dead_code))]
mod stream;
mod tasks;
#[cfg(feature = "threads")]
mod threads;
mod trace;

pub use failure::{OnError, TaskError, TaskErrorKind, TaskPanic, catch, collected, unwrap_all};
pub use options::{
    Batch, Integer, N_JOBS_ENV, Options, ZeroJobs, batch_size, cpu_count, effective_n_jobs, integer,
};
pub use results::{Ordered, Unordered};
#[cfg(not(feature = "threads"))]
pub use sequential::{run_iter, run_ordered, run_unordered};
pub use sequential::{run_lazy, run_lazy_ordered, run_sequential};
#[cfg(feature = "threads")]
pub use tasks::IndexedTasks;
pub use tasks::{Indexed, Lazy, TaskKind, ViaIndexed, ViaLazy, task_fn};
#[cfg(feature = "threads")]
pub use threads::{run_iter, run_ordered, run_unordered};
