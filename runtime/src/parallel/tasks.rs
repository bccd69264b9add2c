//! How a `parallel!` input is run, picked by its type: indexed collections (ranges, vectors,
//! slices, arrays) go to rayon where they are; anything else is read lazily, batch by batch.

use super::options::Options;
#[cfg(not(feature = "threads"))]
use super::sequential::run_sequential;
#[cfg(feature = "threads")]
use super::threads::{run_indexed, run_iter};

/// Picks how a `parallel!` input is run, by autoref specialization on its type: indexed
/// collections (ranges, vectors, slices, arrays) go to rayon as they are; anything else is
/// read as batches are dispatched.
///
/// ```
/// use joblet_runtime::__private::{Options, Batch, TaskKind, ViaIndexed as _, ViaLazy as _};
///
/// let opts = Options::new(Some(2), Batch::Auto, 0, false);
/// let tasks = (0..10).filter(|x| x % 2 == 0);
/// let kind = (&&TaskKind::of(&tasks)).kind();
/// assert_eq!(kind.run(&opts, tasks, |x| x * 10), vec![0, 20, 40, 60, 80]);
/// ```
pub struct TaskKind<I>(std::marker::PhantomData<fn() -> I>);

impl<I> TaskKind<I> {
    /// The selector for the type of `tasks`.
    pub fn of(_tasks: &I) -> Self {
        TaskKind(std::marker::PhantomData)
    }
}

/// Types a task closure from its input: `Fn(I::Item) -> R`. Typed this way, the body can
/// settle the input's type (`0..n` with `n` untyped becomes `Range<u64>` when the body passes
/// the item to a function taking `u64`) before the input kind is picked.
pub fn task_fn<I, F, R>(_tasks: &I, f: F) -> F
where
    I: IntoIterator,
    F: Fn(I::Item) -> R,
{
    f
}

/// An indexed input.
pub struct Indexed;

/// Any other input: read lazily.
pub struct Lazy;

/// Selects [`Indexed`]; tried first.
pub trait ViaIndexed {
    /// The kind.
    fn kind(&self) -> Indexed;
}

/// Selects [`Lazy`]; tried one dereference later.
pub trait ViaLazy {
    /// The kind.
    fn kind(&self) -> Lazy;
}

#[cfg(feature = "threads")]
impl<I: IndexedTasks> ViaIndexed for &TaskKind<I> {
    fn kind(&self) -> Indexed {
        Indexed
    }
}

impl<I> ViaLazy for TaskKind<I> {
    fn kind(&self) -> Lazy {
        Lazy
    }
}

#[cfg(feature = "threads")]
impl Indexed {
    /// Runs the tasks.
    pub fn run<P, F, R>(self, opts: &Options, tasks: P, f: F) -> Vec<R>
    where
        P: IndexedTasks,
        F: Fn(P::Item) -> R + Sync + Send,
        R: Send,
    {
        tasks.run(opts, f)
    }
}

/// Inputs that run in place, without being collected: vectors, slices, arrays and ranges.
#[cfg(feature = "threads")]
pub trait IndexedTasks: Sized {
    /// What one task receives.
    type Item;
    /// Runs one task per item.
    fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
    where
        F: Fn(Self::Item) -> R + Sync + Send,
        R: Send;
}

#[cfg(feature = "threads")]
macro_rules! indexed_as_is {
    ($([$($gen:tt)*] $ty:ty => $item:ty),* $(,)?) => {$(
        impl<$($gen)*> IndexedTasks for $ty {
            type Item = $item;
            fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
            where
                F: Fn(Self::Item) -> R + Sync + Send,
                R: Send,
            {
                run_indexed(opts, self, f)
            }
        }
    )*};
}

#[cfg(feature = "threads")]
indexed_as_is!(
    [T: Send] Vec<T> => T,
    ['a, T: Sync] &'a [T] => &'a T,
    ['a, T: Sync] &'a Vec<T> => &'a T,
    [T: Send, const N: usize] [T; N] => T,
    ['a, T: Sync, const N: usize] &'a [T; N] => &'a T,
);

/// Ranges of any integer type, run as a `usize` index range mapped to the values (rayon
/// indexes only the ranges whose length always fits a `usize`).
#[cfg(feature = "threads")]
macro_rules! indexed_ranges {
    ($($t:ty),*) => {$(
        impl IndexedTasks for std::ops::Range<$t> {
            type Item = $t;
            fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
            where
                F: Fn($t) -> R + Sync + Send,
                R: Send,
            {
                let len = if self.end > self.start { self.end.abs_diff(self.start) } else { 0 };
                run_range(opts, self.start, len, f)
            }
        }

        impl IndexedTasks for std::ops::RangeInclusive<$t> {
            type Item = $t;
            fn run<F, R>(self, opts: &Options, f: F) -> Vec<R>
            where
                F: Fn($t) -> R + Sync + Send,
                R: Send,
            {
                let (start, end) = self.into_inner();
                if end < start {
                    return Vec::new();
                }
                // Widened first: `0..=255u8` has 256 values, more than a `u8` counts.
                let len = (end.abs_diff(start) as u128) + 1;
                run_range(opts, start, len, f)
            }
        }
    )*};
}

#[cfg(feature = "threads")]
indexed_ranges!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

/// Runs `len` tasks on `start`, `start + 1`, ... The offset is added with wrapping arithmetic
/// on the truncated index: the true value is always in the type's range, so the wrap is exact.
#[cfg(feature = "threads")]
fn run_range<T, L, F, R>(opts: &Options, start: T, len: L, f: F) -> Vec<R>
where
    T: WrappingFrom + Send + Sync + Copy,
    L: TryInto<usize>,
    F: Fn(T) -> R + Sync + Send,
    R: Send,
{
    let len: usize = len
        .try_into()
        .unwrap_or_else(|_| panic!("a range of more than usize::MAX tasks"));
    // The offset is added by the input, not by the task: each batch then holds `start` by
    // value, where a task that reached it through its closure reloaded it at every task.
    use rayon::iter::{IntoParallelIterator, ParallelIterator};
    let values = (0..len)
        .into_par_iter()
        .map(move |i| start.wrapping_offset(i));
    run_indexed(opts, values, f)
}

/// `start + i` for a range's element type.
#[cfg(feature = "threads")]
trait WrappingFrom {
    fn wrapping_offset(self, i: usize) -> Self;
}

#[cfg(feature = "threads")]
macro_rules! wrapping_from {
    ($($t:ty),*) => {$(
        impl WrappingFrom for $t {
            #[inline]
            fn wrapping_offset(self, i: usize) -> Self {
                self.wrapping_add(i as $t)
            }
        }
    )*};
}

#[cfg(feature = "threads")]
wrapping_from!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

#[cfg(feature = "threads")]
impl Lazy {
    /// Runs the tasks.
    pub fn run<I, F, R>(self, opts: &Options, tasks: I, f: F) -> Vec<R>
    where
        I: IntoIterator,
        I::Item: Send,
        F: Fn(I::Item) -> R + Sync + Send,
        R: Send,
    {
        run_iter(opts, tasks, f)
    }
}

#[cfg(not(feature = "threads"))]
impl Lazy {
    /// Runs the tasks, one after the other (this build has no `threads` feature).
    pub fn run<I, F, R>(self, opts: &Options, tasks: I, f: F) -> Vec<R>
    where
        I: IntoIterator,
        F: Fn(I::Item) -> R,
    {
        run_sequential(opts, tasks, f)
    }
}
