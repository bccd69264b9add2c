//! How tasks fail, and what the caller sees of it: `TaskPanic`, raised in the caller;
//! `TaskError`, each failed task's record; and `on_error`'s three ways to handle them.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

/// A task panicked. The payload is what the task panicked with.
///
/// ```
/// let caught = std::panic::catch_unwind(|| {
///     joblet_runtime::__private::run_sequential(
///         &joblet_runtime::__private::Options::new(1, joblet_runtime::__private::Batch::Auto, 0, false),
///         0..10,
///         |i: i32| if i == 7 { panic!("seven") } else { i },
///     )
/// });
/// let failure = caught.unwrap_err().downcast::<joblet_runtime::TaskPanic>().unwrap();
/// assert_eq!(failure.index(), 7);
/// assert_eq!(failure.message(), Some("seven"));
/// ```
pub struct TaskPanic {
    index: usize,
    payload: Box<dyn Any + Send>,
}

impl TaskPanic {
    pub(crate) fn new(index: usize, payload: Box<dyn Any + Send>) -> Self {
        TaskPanic { index, payload }
    }

    /// The position of the failed task in the input.
    pub fn index(&self) -> usize {
        self.index
    }

    /// What the task panicked with.
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }

    /// What the task panicked with, to re-raise with `std::panic::resume_unwind`.
    pub fn into_payload(self) -> Box<dyn Any + Send> {
        self.payload
    }

    /// The panic message, when the payload is a string (as with `panic!("...")`), or the
    /// message of the inner task when this task failed in a nested `parallel!`.
    pub fn message(&self) -> Option<&str> {
        panic_message(&*self.payload)
            .or_else(|| self.payload.downcast_ref::<TaskPanic>()?.message())
            .or_else(|| Some(self.payload.downcast_ref::<TaskError>()?.message()))
    }
}

/// What a panic says: its message, that of the task that failed in a nested `parallel!`, or
/// that it is not a string.
pub(crate) fn describe_panic(payload: &(dyn Any + Send)) -> String {
    match (panic_message(payload), payload.downcast_ref::<TaskPanic>()) {
        (Some(message), _) => message.to_owned(),
        (None, Some(inner)) => inner.to_string(),
        (None, None) => "a panic payload that is not a string".to_owned(),
    }
}

/// The message of a panic payload that is a string, as `panic!("...")` makes.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Debug for TaskPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskPanic")
            .field("index", &self.index)
            .field("message", &self.message())
            .finish()
    }
}

impl fmt::Display for TaskPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A task that crashed its worker process, ran out of time or memory: it says so itself.
        if let Some(error) = self.payload.downcast_ref::<TaskError>() {
            return error.fmt(f);
        }
        match self.message() {
            Some(m) => write!(f, "task {} panicked: {m}", self.index),
            None => write!(f, "task {} panicked", self.index),
        }
    }
}

impl std::error::Error for TaskPanic {}

/// A task that failed: what `parallel!(on_error = collect; ...)` returns in place of its result,
/// and what `backend = processes` reports of a task that crashed its worker, ran over its
/// `timeout` or past its `max_memory`.
///
/// `parallel!(on_error = collect; for i in 0..4 => ...)` expands to about this:
///
/// ```
/// use joblet_runtime::TaskErrorKind;
/// use joblet_runtime::__private::{Batch, Options, catch, collected, run_sequential};
///
/// let opts = Options::new(1, Batch::Auto, 0, false);
/// let results = collected(run_sequential(&opts, 0..4, |i| catch(|| {
///     if i == 2 { panic!("two") }
///     i * 10
/// })));
/// assert_eq!(results[1], Ok(10));
/// let failed = results[2].as_ref().unwrap_err();
/// assert_eq!((failed.index(), failed.kind(), failed.message()), (2, TaskErrorKind::Panicked, "two"));
/// assert_eq!(failed.to_string(), "task 2 panicked: two");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    index: usize,
    kind: TaskErrorKind,
    message: String,
}

/// Why a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// The task panicked; the message is the panic's.
    Panicked,
    /// Its worker process was killed by this signal: a segmentation fault (11), an `abort()`
    /// (6), ... The message names it, with the worker's last line of output.
    Signal(i32),
    /// Its worker process exited with this code (the task called `std::process::exit`).
    Exited(i32),
    /// The task ran longer than `timeout`: its worker was killed and replaced.
    TimedOut,
    /// The task tried to allocate past `max_memory`: its worker was ended and replaced.
    OutOfMemory,
    /// Its input or its result could not be sent between processes (a `Serialize` or
    /// `Deserialize` implementation failed).
    Transfer,
}

impl TaskError {
    pub(crate) fn new(index: usize, kind: TaskErrorKind, message: impl Into<String>) -> Self {
        TaskError {
            index,
            kind,
            message: message.into(),
        }
    }

    /// A task that panicked with `payload`.
    pub(crate) fn panicked(index: usize, payload: &(dyn Any + Send)) -> Self {
        TaskError::new(index, TaskErrorKind::Panicked, describe_panic(payload))
    }

    /// The position of the failed task in the input.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Why it failed.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// What happened: the panic message, or a description of the crash.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same failure, at position `index` of the input.
    pub(crate) fn at(mut self, index: usize) -> Self {
        self.index = index;
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (index, message) = (self.index, &self.message);
        match self.kind {
            TaskErrorKind::Panicked => write!(f, "task {index} panicked: {message}"),
            TaskErrorKind::Signal(_) | TaskErrorKind::Exited(_) => {
                write!(f, "task {index} crashed its worker process: {message}")
            }
            TaskErrorKind::TimedOut => write!(f, "task {index} timed out: {message}"),
            TaskErrorKind::OutOfMemory => write!(f, "task {index} ran out of memory: {message}"),
            TaskErrorKind::Transfer => write!(f, "task {index} could not be sent: {message}"),
        }
    }
}

impl std::error::Error for TaskError {}

/// What a run does when a task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// No batch starts after the first failure, and the caller panics with a [`TaskPanic`].
    Stop,
    /// Every task runs; then, if any failed, the caller panics with the first failure.
    Continue,
}

/// Runs a task body under `catch_unwind`: the form of `on_error = collect` and
/// `on_error = continue` on the threads and sequential backends.
#[inline(always)]
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, TaskError> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| TaskError::panicked(0, &*payload))
}

/// The results of caught tasks, each failure at its position in the input.
pub fn collected<R>(results: Vec<Result<R, TaskError>>) -> Vec<Result<R, TaskError>> {
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| e.at(i)))
        .collect()
}

/// The results of tasks that have all run (or been left out by a failure): their values, or
/// a panic with the failure of the first in input order (`on_error = continue`). Each failure
/// already holds its task's index (see [`collected`]).
pub fn unwrap_all<R>(results: impl IntoIterator<Item = Result<R, TaskError>>) -> Vec<R> {
    let mut failure: Option<TaskError> = None;
    let values: Vec<R> = results
        .into_iter()
        .filter_map(|r| match r {
            Ok(value) => Some(value),
            Err(e) => {
                if failure.as_ref().is_none_or(|first| e.index < first.index) {
                    failure = Some(e);
                }
                None
            }
        })
        .collect();
    match failure {
        None => values,
        Some(first) => raise(first),
    }
}

/// Panics with a task's failure, as a [`TaskPanic`] whose message is the task's own: a panic
/// keeps its message, a crash carries the [`TaskError`] that describes it.
pub(crate) fn raise(failure: TaskError) -> ! {
    let index = failure.index;
    panic::resume_unwind(Box::new(TaskPanic::new(index, payload(failure))))
}

/// What a [`TaskPanic`] holds for a failure.
pub(crate) fn payload(failure: TaskError) -> Box<dyn Any + Send> {
    match failure.kind {
        TaskErrorKind::Panicked => Box::new(failure.message),
        _ => Box::new(failure),
    }
}
