//! The runtime of `parallel!`: what every backend shares (options and what `batch_size =
//! auto` means, failures, progress output, `tracing`, a run's state, the unordered iterator),
//! and one file or folder per backend: threads, sequential, processes, mpi.
//!
//! A backend runs a call's tasks and hands back their results; the shared files say how a
//! run is reported and how it fails, so that every backend reports and fails alike.

mod failure;
pub(crate) mod mpi;
mod options;
pub(crate) mod processes;
mod progress;
mod run;
mod sequential;
mod tasks;
#[cfg(feature = "threads")]
mod threads;
mod trace;
mod unordered;

pub use failure::{OnError, TaskError, TaskErrorKind, TaskPanic, catch, collected, unwrap_all};
pub use options::{Batch, Integer, Options, batch_size, integer};
#[cfg(not(feature = "threads"))]
pub use sequential::{run_iter, run_unordered};
pub use sequential::{run_lazy, run_sequential};
#[cfg(feature = "threads")]
pub use tasks::IndexedTasks;
pub use tasks::{Collected, Indexed, TaskKind, ViaCollect, ViaIndexed, task_fn};
#[cfg(feature = "threads")]
pub use threads::{run_iter, run_unordered};
pub use unordered::Unordered;
