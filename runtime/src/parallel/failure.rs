//! How tasks fail, and what the caller sees of it: the panic raised in the caller (the task's
//! message as a `String`, or its own payload), [`TaskPanic`] to look the failure up from it,
//! [`TaskError`], each failed task's record, and `on_error`'s three ways to handle failures.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

/// A task that failed and stopped its run, as the caller can look it up from the panic it got.
///
/// A failed task reaches the caller as a panic. When the task panicked with a message (as
/// `panic!("...")` does), or crashed its worker process, the payload is a `String` that names the
/// task, `task 7 panicked: seven`, so that `#[should_panic(expected = "seven")]` and
/// `downcast_ref::<String>()` see it; on threads and the sequential loop, any other payload
/// passes through unchanged, as rayon does (from a worker process, it arrives as a `String`
/// saying it was not a string). [`TaskPanic::of`] finds the failure a payload was raised for:
/// which task, and how it failed.
///
/// ```
/// use joblet_runtime::TaskPanic;
/// use joblet_runtime::__private::{Batch, Options, run_sequential};
///
/// let caught = std::panic::catch_unwind(|| {
///     run_sequential(&Options::new(None, Batch::Auto, 0, false), 0..10, |i: i32| {
///         if i == 7 { panic!("seven") } else { i }
///     })
/// });
/// let payload = caught.unwrap_err();
/// assert_eq!(payload.downcast_ref::<String>().unwrap(), "task 7 panicked: seven");
/// let failure = TaskPanic::of(&*payload).unwrap();
/// assert_eq!((failure.index(), failure.message()), (7, Some("seven")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPanic {
    error: TaskError,
    /// Whether the task's payload was a string (or the task crashed): whether `message` is its.
    said: bool,
}

impl TaskPanic {
    /// The failure that `payload`, a panic caught from a `parallel!` call on this or another
    /// thread, was raised for; `None` for any other payload. The last 64 failures raised in the
    /// process are remembered.
    pub fn of(payload: &(dyn Any + Send)) -> Option<TaskPanic> {
        let at = address(payload);
        let raised = RAISED.lock().unwrap_or_else(|e| e.into_inner());
        raised
            .iter()
            .find(|r| r.at == at && r.type_id == Any::type_id(payload))
            .map(|r| r.panic.clone())
    }

    /// The position of the failed task in the input.
    pub fn index(&self) -> usize {
        self.error.index()
    }

    /// How it failed: a panic, or the crash of its worker process.
    pub fn kind(&self) -> TaskErrorKind {
        self.error.kind()
    }

    /// What the task said: its panic message, when it panicked with a string, or what its
    /// worker's crash was; `None` when its payload was something else.
    pub fn message(&self) -> Option<&str> {
        self.said.then(|| self.error.message())
    }

    /// The failure as the task's record, as `on_error = collect` gives it.
    pub fn error(&self) -> &TaskError {
        &self.error
    }
}

impl fmt::Display for TaskPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.said {
            true => self.error.fmt(f),
            false => write!(f, "task {} panicked", self.error.index),
        }
    }
}

impl std::error::Error for TaskPanic {}

/// A failure raised in a caller, found again by where its payload lives.
struct Raised {
    at: usize,
    type_id: TypeId,
    panic: TaskPanic,
}

/// The failures raised last, newest first: a payload's address identifies it while it lives.
static RAISED: Mutex<VecDeque<Raised>> = Mutex::new(VecDeque::new());

fn address(payload: &(dyn Any + Send)) -> usize {
    payload as *const (dyn Any + Send) as *const () as usize
}

/// How a task failed, as a run carries it to the caller: the task's panic payload, or the
/// record of a failure that is not one (a crash of a worker process, a result that could not
/// be sent).
pub(crate) enum Failure {
    Panicked(Payload),
    Failed(TaskError),
}

impl Failure {
    /// The failure as a task's record.
    pub(crate) fn into_error(self, index: usize) -> TaskError {
        match self {
            Failure::Panicked(payload) => TaskError::panicked(index, payload.get()),
            Failure::Failed(error) => error.at(index),
        }
    }

    /// What it says, as the record of task `index`.
    pub(crate) fn describe(&self, index: usize) -> TaskError {
        match self {
            Failure::Panicked(payload) => TaskError::panicked(index, payload.get()),
            Failure::Failed(error) => error.clone().at(index),
        }
    }
}

/// Raises the failure of task `index` in the caller: a message as a `String` naming the task,
/// any other payload as it is, each findable with [`TaskPanic::of`].
pub(crate) fn raise(index: usize, failure: Failure) -> ! {
    let (panic, payload): (TaskPanic, Box<dyn Any + Send>) = match failure {
        Failure::Panicked(payload) => match panic_message(payload.get()) {
            Some(message) => {
                let error = TaskError::new(index, TaskErrorKind::Panicked, message);
                (said(error.clone()), Box::new(error.to_string()))
            }
            None => {
                let error = TaskError::panicked(index, payload.get());
                let panic = TaskPanic { error, said: false };
                (panic, payload.into_inner())
            }
        },
        Failure::Failed(error) => {
            let error = error.at(index);
            (said(error.clone()), Box::new(error.to_string()))
        }
    };
    let mut raised = RAISED.lock().unwrap_or_else(|e| e.into_inner());
    raised.push_front(Raised {
        at: address(&*payload),
        type_id: Any::type_id(&*payload),
        panic,
    });
    raised.truncate(64);
    drop(raised);
    panic::resume_unwind(payload)
}

fn said(error: TaskError) -> TaskPanic {
    TaskPanic { error, said: true }
}

/// A task's panic payload, owned by a run until it reaches the caller. Dropping it cannot
/// abort the process: a payload whose `Drop` panics is dropped under `catch_unwind`, also
/// while the thread unwinds, and what that panic leaves is leaked.
pub(crate) struct Payload(ManuallyDrop<Box<dyn Any + Send>>);

impl Payload {
    pub(crate) fn new(payload: Box<dyn Any + Send>) -> Self {
        Payload(ManuallyDrop::new(payload))
    }

    pub(crate) fn get(&self) -> &(dyn Any + Send) {
        &**self.0
    }

    pub(crate) fn into_inner(self) -> Box<dyn Any + Send> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again, and its `Drop` never runs.
        unsafe { ManuallyDrop::take(&mut this.0) }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        // SAFETY: taken once, here, as the payload goes.
        discard(unsafe { ManuallyDrop::take(&mut self.0) });
    }
}

/// Drops a panic payload, whose `Drop` may itself panic: caught, so that it never unwinds
/// into a frame that is unwinding already (which aborts), and what it panicked with is leaked
/// rather than dropped in turn.
pub(crate) fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// What a panic says: its message, or that it is not a string.
pub(crate) fn describe_panic(payload: &(dyn Any + Send)) -> String {
    panic_message(payload)
        .unwrap_or("a panic payload that is not a string")
        .to_owned()
}

/// The message of a panic payload that is a string, as `panic!("...")` makes.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

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
/// let opts = Options::new(None, Batch::Auto, 0, false);
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
    /// No batch starts after the first failure, and the caller panics with it (the default on
    /// every backend).
    Stop,
    /// Every task runs; then, if any failed, the caller panics with the first failure.
    Continue,
}

/// Runs a task body under `catch_unwind`: the form of `on_error = collect` and
/// `on_error = continue` on the threads and sequential backends.
#[inline(always)]
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, TaskError> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let payload = Payload::new(payload);
        TaskError::panicked(0, payload.get())
    })
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
        Some(first) => raise(first.index, Failure::Failed(first)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics when dropped.
    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("a payload that panics when dropped");
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_is_dropped_without_unwinding() {
        let hook = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        // Dropped while this frame unwinds, as a second task's payload is.
        let caught = panic::catch_unwind(|| {
            let _second = Payload::new(Box::new(Bomb));
            panic::resume_unwind(Box::new("the first"));
        });
        discard(Box::new(Bomb));
        panic::set_hook(hook);
        assert!(caught.is_err());
    }

    #[test]
    fn a_string_is_raised_and_any_other_payload_as_it_is() {
        let caught = panic::catch_unwind(|| {
            raise(
                777,
                Failure::Panicked(Payload::new(Box::new("boom at 777"))),
            )
        })
        .unwrap_err();
        assert_eq!(
            caught.downcast_ref::<String>().unwrap(),
            "task 777 panicked: boom at 777"
        );
        let found = TaskPanic::of(&*caught).unwrap();
        assert_eq!((found.index(), found.message()), (777, Some("boom at 777")));

        let caught =
            panic::catch_unwind(|| raise(3, Failure::Panicked(Payload::new(Box::new(42u32)))))
                .unwrap_err();
        assert_eq!(caught.downcast_ref::<u32>(), Some(&42));
        let found = TaskPanic::of(&*caught).unwrap();
        assert_eq!((found.index(), found.message()), (3, None));
        assert_eq!(found.to_string(), "task 3 panicked");
        // A payload raised elsewhere is no task's.
        assert_eq!(TaskPanic::of(&42u32), None);
    }
}
