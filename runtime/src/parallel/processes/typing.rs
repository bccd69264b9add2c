//! The typing of a `backend = processes` call, which needs no operating system: what its body
//! captures, the body as a function pointer, and the checks that items, captures and results
//! can travel between processes, each failing to compile with a message at the offending
//! token. Here for every build, so that `parallel!` expands alike everywhere.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a `parallel!` body captures, as the macro passes it: `(&a, (&b, ()))`, a list of
/// references to the captured variables. `Owned` is the same list of values, which a worker
/// deserializes.
pub trait Capture {
    /// The captured values, owned.
    type Owned;
}

impl Capture for () {
    type Owned = ();
}

impl<A> Capture for &A {
    type Owned = A;
}

impl<H: Capture, T: Capture> Capture for (H, T) {
    type Owned = (H::Owned, T::Owned);
}

/// What a body captures, when it can travel to a worker: each variable was checked where the
/// body uses it, with a message naming it.
#[diagnostic::on_unimplemented(
    message = "`parallel!(backend = processes)` cannot send what its body captures to its workers",
    label = "a captured variable cannot be sent",
    note = "the errors at each captured variable say which, and why"
)]
pub trait Captures: Capture<Owned: DeserializeOwned> + Serialize {}

impl<K: Capture<Owned: DeserializeOwned> + Serialize> Captures for K {}

/// A captured value inside the body, as the body sees it: a copy when its type is `Copy`,
/// as in a closure, else a reference (a body on threads can only borrow it either way).
///
/// ```
/// use joblet_runtime::__private::{ByCopy as _, ByRef as _, Place};
///
/// let (n, name) = (3u64, String::from("x"));
/// let copied: u64 = (&&Place(&n)).get();
/// let borrowed: &String = (&&Place(&name)).get();
/// assert_eq!((copied, borrowed.as_str()), (3, "x"));
/// ```
pub struct Place<'a, T>(pub &'a T);

/// Selects a copy of a `Copy` capture; tried first.
pub trait ByCopy<T> {
    /// The value.
    fn get(&self) -> T;
}

/// Selects a reference to any other capture.
pub trait ByRef<'a, T> {
    /// The value.
    fn get(&self) -> &'a T;
}

impl<T: Copy> ByCopy<T> for &Place<'_, T> {
    fn get(&self) -> T {
        *self.0
    }
}

impl<'a, T> ByRef<'a, T> for Place<'a, T> {
    fn get(&self) -> &'a T {
        self.0
    }
}

/// Types a task body as a function of the captured values and one item, so that the closure
/// the macro writes (which captures nothing: it rebinds every captured name from its first
/// argument) becomes a function pointer, an address a worker can call.
pub fn body_fn<T, K, R>(
    _tasks: &T,
    _captures: &K,
    body: fn(&K::Owned, T::Item) -> R,
) -> fn(&K::Owned, T::Item) -> R
where
    T: IntoIterator,
    K: Capture,
{
    body
}

/// Fails to compile, at the `processes` token, in a build without the backend.
pub fn enabled<B: ProcessesBackend>() {}

/// Implemented in builds with the processes backend.
#[diagnostic::on_unimplemented(
    message = "`backend = processes` needs joblet's Cargo feature `processes`, on Unix",
    label = "this backend is not in this build",
    note = "enable it with `joblet = {{ version = \"...\", features = [\"processes\"] }}`, or use `backend = threads`"
)]
pub trait ProcessesBackend {}

#[cfg(all(feature = "processes", unix))]
impl ProcessesBackend for () {}

/// Checks, at the tasks, that their items can travel to a worker.
pub fn items_sendable<T>(_tasks: &T)
where
    T: IntoIterator,
    T::Item: SendableItem,
{
}

/// Checks, at the body, that its result can travel back from a worker.
pub fn result_sendable<C, I, R: SendableResult>(_body: &fn(&C, I) -> R) {}

/// An item that can be sent to a worker: `Serialize + DeserializeOwned`.
#[diagnostic::on_unimplemented(
    message = "`parallel!(backend = processes)` sends each item to a worker process, but `{Self}` cannot be sent: it must implement `Serialize` and `DeserializeOwned`",
    label = "the items of these tasks cannot be sent",
    note = "iterate over owned values that implement both (a reference such as `&T` cannot be deserialized in a worker: iterate over `xs.iter().cloned()`, or over indices)"
)]
pub trait SendableItem: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> SendableItem for T {}

/// A result that can be sent back from a worker: `Serialize + DeserializeOwned + Send`.
#[diagnostic::on_unimplemented(
    message = "`parallel!(backend = processes)` sends each result back from a worker process, but `{Self}` cannot be sent: it must implement `Serialize`, `DeserializeOwned` and `Send`",
    label = "this body's result cannot be sent",
    note = "return an owned value whose type implements them, or derive `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait SendableResult: Serialize + DeserializeOwned + Send {}

impl<T: Serialize + DeserializeOwned + Send> SendableResult for T {}
