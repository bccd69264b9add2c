#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

/// Caches a function's results on disk, keyed by its arguments and its code.
///
/// A call computes the result, stores it in a file under the cache folder, and returns it; a
/// later call with equal arguments, in this process or another, loads the stored result
/// instead. See the [crate documentation](crate) for what is stored and how.
///
/// ```
/// use joblet::cached;
///
/// #[cached(dir = "target/doc-cache")]
/// fn slow_square(x: u64) -> u64 {
///     std::thread::sleep(std::time::Duration::from_millis(50));
///     x * x
/// }
///
/// assert_eq!(slow_square(4), 16); // computes, or loads what an earlier run stored
/// assert_eq!(slow_square(4), 16); // loads
/// assert!(slow_square::is_cached(4));
/// ```
///
/// # Arguments
///
/// ## `dir`
///
/// The cache folder: a string literal or any expression implementing
/// `AsRef<std::path::Path>`, evaluated once, at the first call. A relative path is resolved
/// against the current directory at that moment. Without `dir`, the folder is the value of
/// the environment variable `JOBLET_CACHE_DIR` ([`CACHE_DIR_ENV`]) or, when it is not set,
/// `.joblet` ([`DEFAULT_CACHE_DIR`]). With the `remote` feature, either may be an object
/// store's URL, `s3://bucket/prefix`: see "Sharing a cache between machines" in the
/// [crate documentation](crate).
///
/// ```
/// # use joblet::cached;
/// fn cache_root() -> std::path::PathBuf {
///     std::env::temp_dir().join("joblet-doc")
/// }
///
/// #[cached(dir = cache_root())]
/// fn double(x: i32) -> i32 {
///     2 * x
/// }
/// assert_eq!(double(21), 42);
/// ```
///
/// ## `ignore`
///
/// Parameters left out of the key: calls that differ only in them share one entry. `self`
/// may be listed, for a method whose result does not depend on its receiver.
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache", ignore = [verbose])]
/// fn total(values: &[f64], verbose: bool) -> f64 {
///     if verbose {
///         println!("summing {} values", values.len());
///     }
///     values.iter().sum()
/// }
/// assert_eq!(total(&[1.0, 2.0], true), 3.0);
/// assert!(total::is_cached(&[1.0, 2.0], false));
/// ```
///
/// ## `version`
///
/// A salt mixed into every key. The function's code and the code it reaches in its crate are
/// fingerprinted (see the README's "Code versions"); what the fingerprint cannot see, such as
/// a new version of a dependency or a data file the function reads, needs a new `version` to
/// invalidate the stored results.
///
/// ```
/// # use joblet::cached;
/// /// A helper of the same crate: editing it invalidates `norm`'s results by itself.
/// fn helper(x: f64) -> f64 {
///     x.sqrt()
/// }
///
/// // Version 2 of the weights file.
/// #[cached(dir = "target/doc-cache", version = "2")]
/// fn norm(v: Vec<f64>) -> f64 {
///     helper(v.iter().map(|x| x * x).sum())
/// }
/// assert_eq!(norm(vec![3.0, 4.0]), 5.0);
/// ```
///
/// ## `name`
///
/// The identity the entries are stored under, instead of the module path and function name,
/// so that moving the function to another module keeps its entries.
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache", name = "features")]
/// fn extract_features(text: &str) -> Vec<usize> {
///     text.split_whitespace().map(str::len).collect()
/// }
/// assert_eq!(extract_features("a bb ccc"), vec![1, 2, 3]);
/// ```
///
/// ## `controls`
///
/// `controls = false` leaves out the companion described below. An associated function that
/// never names `Self` needs it: nothing can be added beside a function in an `impl` block, and
/// without `self` or `Self` it cannot be told apart from a free function.
///
/// ```
/// # use joblet::cached;
/// struct Units;
///
/// impl Units {
///     #[cached(dir = "target/doc-cache", controls = false)]
///     fn to_meters(feet: f64) -> f64 {
///         feet * 0.3048
///     }
/// }
/// assert_eq!(Units::to_meters(10.0), 3.048);
/// ```
///
/// ## `verbose`
///
/// `verbose = N` prints joblib's `[Memory]` lines to stderr: from 1, when a call computes
/// (`[Memory] Calling square...`, the call as `square(3)`, then `square - 0.5s, 0.0min`); from
/// 5, when it loads too. Every decision also goes to `tracing` at debug level, whatever
/// `verbose` says.
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache", verbose = 1)]
/// fn slow_square(x: u64) -> u64 {
///     x * x
/// }
/// assert_eq!(slow_square(3), 9);
/// ```
///
/// ## `max_size`
///
/// `max_size = "10G"` bounds the whole cache folder: when a store takes it past the limit, the
/// least recently used entries (of every function in the folder) are evicted down to 90 % of
/// it. Units are `k`, `M`, `G`, `T` (powers of 1000) and `Ki`, `Mi`, `Gi`, `Ti` (of 1024); a
/// size that does not parse is a compile error. A `joblet.toml` file in the folder can set a
/// limit too ([`CONFIG_FILE`]); the lower one holds.
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache-limited", max_size = "500M")]
/// fn render(frame: u32) -> Vec<u8> {
///     vec![0; 1000 + frame as usize]
/// }
/// assert_eq!(render(3).len(), 1003);
/// ```
///
/// ## `expires`
///
/// `expires = "7d"`: an entry stored longer ago than this is not served; the call computes
/// and stores the result again. Units are `s`, `min`, `h`, `d` and `w`; a duration that does
/// not parse is a compile error. The age is the entry's creation time, written in its header,
/// against this machine's clock. (`Memory::cache(..).expires(duration)` is the same.)
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache", expires = "12h")]
/// fn exchange_rate(currency: String) -> f64 {
///     if currency == "EUR" { 1.08 } else { 1.0 }
/// }
/// assert_eq!(exchange_rate("EUR".into()), 1.08);
/// ```
///
/// ## `validate`
///
/// `validate = check`, where `check` is a `fn(&EntryInfo) -> bool`: asked before each hit
/// with what the entry says of itself ([`EntryInfo`]: creation time, compute time, hits,
/// arguments, size); `false` makes the call a miss, computed and stored again. This is joblib's
/// `cache_validation_callback`. (`Memory::cache(..).validate(check)` is the same.)
///
/// ```
/// # use joblet::{cached, EntryInfo};
/// /// Results that took under a second are recomputed once a day; longer ones are kept.
/// fn worth_keeping(entry: &EntryInfo) -> bool {
///     let age = entry.created.elapsed().unwrap_or_default();
///     entry.compute.as_secs() >= 1 || age.as_secs() < 86_400
/// }
///
/// #[cached(dir = "target/doc-cache", validate = worth_keeping)]
/// fn tokens(text: String) -> usize {
///     text.split_whitespace().count()
/// }
/// assert_eq!(tokens("a b c".into()), 3);
/// ```
///
/// # Controls
///
/// A free function `f` gets a companion of the same name in the type namespace (where no
/// function lives, so the name is free) with `f::is_cached(args) -> bool` (computes nothing),
/// `f::refresh(args)` (computes and stores, bypassing the stored result) and `f::clear()`
/// (removes every stored result of `f`, for every version of its code).
///
/// ```
/// # use joblet::cached;
/// #[cached(dir = "target/doc-cache")]
/// fn cube(x: u64) -> u64 {
///     x * x * x
/// }
///
/// cube::clear()?;
/// assert!(!cube::is_cached(3));
/// assert_eq!(cube(3), 27);
/// assert!(cube::is_cached(3));
/// assert_eq!(cube::refresh(3), 27);
/// # Ok::<(), joblet::Error>(())
/// ```
///
/// # Results, methods and async functions
///
/// A function returning `Result<T, E>` stores only `Ok` values; `E` need not be serializable.
/// Methods key on `self` (so `Self: Serialize`); `async fn` works with any executor.
///
/// ```
/// # use joblet::cached;
/// #[derive(serde::Serialize)]
/// struct Model {
///     weight: f64,
/// }
///
/// impl Model {
///     #[cached(dir = "target/doc-cache")]
///     fn predict(&self, x: f64) -> f64 {
///         self.weight * x
///     }
/// }
///
/// #[cached(dir = "target/doc-cache")]
/// fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// assert_eq!(Model { weight: 2.0 }.predict(3.0), 6.0);
/// assert_eq!(parse("12".into()), Ok(12));
/// assert!(parse("x".into()).is_err()); // not stored
/// ```
///
/// # When the cache fails
///
/// A damaged entry or a cache folder that cannot be used never fails the call: the value is
/// computed and returned, and a warning goes to `tracing`.
///
/// # Compile errors
///
/// `&mut` parameters, `&mut self`, a missing return value, an `impl Trait` result, `const fn`,
/// and argument or result types that are not serializable are refused, with an error at the
/// offending token that says how to fix it.
pub use joblet_macros::cached;

/// Runs a loop's tasks in parallel, joblib's `Parallel(n_jobs, batch_size, verbose)` as a
/// compile-time construct over rayon. Results come back in input order.
///
/// ```
/// use joblet::parallel;
///
/// fn my_task(n: u64) -> u64 {
///     (0..n).sum()
/// }
///
/// let out: Vec<u64> = parallel!(n_jobs = 2, batch_size = 100; for i in 0..1000 => my_task(i));
/// assert_eq!(out, (0..1000).map(my_task).collect::<Vec<_>>());
/// ```
///
/// The form is `parallel!(OPTIONS; for PATTERN in TASKS => BODY)`. `TASKS` is anything
/// `IntoIterator`: ranges, vectors, slices and arrays are run where they are; any other
/// iterator is read as batches are dispatched, at most `pre_dispatch` batches ahead of the
/// tasks done, never whole (the lines of a file larger than memory can be the input). `BODY`
/// is an expression or a block, and may borrow local variables. Each task runs the body as a
/// closure: `return` and `?` end the task (its result is what they give), not the enclosing
/// function.
///
/// # Options
///
/// All optional, in any order, each at most once:
///
/// | option | meaning |
/// | --- | --- |
/// | `n_jobs = N` | workers: `N > 0` exactly, `-1` every core, `-2` all but one, ...; without it, the value of `JOBLET_N_JOBS` ([`N_JOBS_ENV`]), else `-1`; `0` is refused on every backend |
/// | `backend = threads` | rayon worker threads (the default); `processes` runs each task in a worker process (see [below](#backend--processes)); `mpi` spreads the tasks over the ranks of an MPI job (see [below](#backend--mpi)); `sequential` runs a plain loop |
/// | `batch_size = N` | tasks handed to a worker at once; `auto` (the default) lets rayon split an indexed input as workers run out of work, and sizes the batches of any other input from how long they take, starting at one task |
/// | `pre_dispatch = N` | batches dispatched ahead of the results taken, for an input read as the run goes (joblib's `pre_dispatch`); default `2 * n_jobs` |
/// | `verbose = V` | joblib's progress lines, on stderr below 50 and on stdout from 50; above 10, one per batch |
/// | `progress = true` | a live progress bar on stderr instead of lines |
/// | `return_as = generator` | an iterator ([`Ordered`]) yielding results in input order, each as soon as it and those before it are done; `unordered` ([`Unordered`]) yields them as they complete; `list` (the default) a `Vec` in input order |
/// | `on_error = stop` | what a failed task does, the same on every backend: `stop` (the default) ends the run at the first failure, `continue` runs every other task first, `collect` returns a `Vec<Result<R, TaskError>>` (see [Panics](#panics)) |
/// | `timeout = T` | processes only: a task running longer than `T` (a `Duration`, or seconds) fails, and its worker is killed and replaced |
/// | `max_memory = "2 GiB"` | processes only: each worker's address space is capped (`RLIMIT_AS`); a task that allocates past it fails, and its worker is replaced |
/// | `max_nbytes = "1M"` | processes only: the [`Array`]s of the captures, or of a batch's items, that hold this much or more together travel in shared memory, mapped by the workers without a copy (joblib's `max_nbytes`; default 1 MiB) |
/// | `idle_timeout = T` | processes only: how long the workers wait for the next call with the same settings once a call is done (default 300 s, as loky's); `0` ends them with the call |
///
/// The `generator` and `unordered` forms run in the background while you consume them, so
/// their body is a `move` closure, and what it uses, the input included, must be owned
/// (`'static`) and `Send`; their input is read as results are taken, at most `pre_dispatch`
/// batches ahead, so it may be endless. A failure is raised by `next`; dropping the iterator
/// stops the run: no batch starts after it.
///
/// ```
/// # use joblet::parallel;
/// // The first squares of an endless input, in input order.
/// let squares: Vec<u64> = parallel!(n_jobs = 2, return_as = generator; for i in 0u64.. => i * i)
///     .take(5)
///     .collect();
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
/// ```
///
/// ```
/// # use joblet::parallel;
/// let sizes = vec![3usize, 1, 2];
/// let mut done: Vec<usize> = parallel!(n_jobs = 3, return_as = unordered;
///     for n in sizes => {
///         std::thread::sleep(std::time::Duration::from_millis(10 * n as u64));
///         n
///     })
/// .collect();
/// done.sort();
/// assert_eq!(done, vec![1, 2, 3]);
/// ```
///
/// ```
/// # use joblet::parallel;
/// let words = vec!["a", "bb", "ccc"];
/// let lengths = parallel!(backend = sequential, verbose = 0; for w in &words => w.len());
/// assert_eq!(lengths, vec![1, 2, 3]);
/// ```
///
/// # Tracing
///
/// Each run is a `tracing` span named `parallel` (INFO; fields `backend`, `n_jobs`, `tasks`,
/// `batch_size`, `return_as`), the parent of your tasks' events, on worker threads too. At
/// DEBUG it logs `run started`, one `batch done` per batch (`batch`, `tasks`, `elapsed`) and
/// `run finished` (`tasks`, `failed`, `elapsed`): enable them with a filter such as
/// `joblet_runtime::parallel=debug`.
///
/// # `backend = processes`
///
/// Each task runs in a worker process, as joblib's default backend (loky) does: a task that
/// segfaults in native code, aborts, exhausts memory or never ends costs its worker, which is
/// replaced, and the caller learns which task it was. Workers are re-launches of the program
/// itself, kept between calls as loky's are: a call takes the workers of the call before with
/// the same settings, which wait `idle_timeout` (300 s) for it and end at the program's exit;
/// they need no code in `main`, also under `cargo test`. Each gets its share of the cores in
/// `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `MKL_NUM_THREADS` and `RAYON_NUM_THREADS`, unless
/// the program set them. Items, results and the variables the body uses from around it travel
/// as bytes (postcard), so they must implement `Serialize` and `Deserialize`: a variable that
/// does not is a compile error naming it. [`Array`]s of a megabyte and more (`max_nbytes`)
/// travel in shared memory instead, and are views into it in the workers.
/// Inside the body, a captured `Copy` value is a copy, and any other a reference to the value
/// the worker received. `#[cached]` functions called in the body share their cache folder with
/// the caller and every worker. The backend is on Unix, with the `processes` feature (on by
/// default).
///
/// ```
/// use joblet::{parallel, TaskErrorKind};
/// use std::time::Duration;
///
/// let limit = 100u64;
/// let results = parallel!(backend = processes, n_jobs = 2, on_error = collect,
///     timeout = Duration::from_secs(2), max_memory = "1 GiB";
///     for n in [10u64, 1000, 20] => if n > limit { panic!("{n} is too large") } else { n * n });
/// assert_eq!(results[0], Ok(100));
/// assert_eq!(results[1].as_ref().unwrap_err().kind(), TaskErrorKind::Panicked);
/// assert_eq!(results[2], Ok(400));
/// ```
///
/// Choose it over `threads` for tasks that may crash, hang or run out of memory (native
/// libraries, untrusted inputs, long unattended runs), or that must not share a process (a
/// library that is not thread-safe). Stay on `threads` for everything else: a task costs no
/// copy of its input there, may borrow anything, and a batch costs a few microseconds less.
/// A `parallel!(backend = processes)` inside a worker's task runs its tasks in that worker,
/// one after the other.
///
/// # `backend = mpi`
///
/// With the feature `mpi`, in a program started by `mpiexec -n N`, `mpirun` or `srun`: every
/// rank runs the whole program and builds the same tasks; batches of tasks are dealt to the
/// ranks in turn, each rank runs its share on `n_jobs` threads, and every rank gets every
/// result, in input order (results must be `Serialize` and `Deserialize`). A task that panics
/// ends the whole job. Started without a launcher, the program is one rank and starts no MPI.
/// `joblet::mpi::on_root` runs code on rank 0 alone. See the README's section
/// "`backend = mpi`: several machines" for clusters and SLURM.
///
/// # Panics
///
/// A task that fails stops the run, on every backend: tasks not yet started are not started
/// (on processes, those running are killed), and the caller panics. A task that panicked with
/// a message, or crashed its worker process, reaches it as a `String` naming the task, `task
/// 42 panicked: bad input 42`, as `#[should_panic(expected = "bad input")]` and
/// `downcast_ref::<String>()` read it; on threads and the sequential loop, any other payload
/// passes through unchanged (from a worker process it arrives as a `String` saying it was not
/// a string).
/// [`TaskPanic::of`] finds, from the payload, which task failed and how. The worker threads
/// stay usable. A panic payload whose own `Drop` panics never aborts the process.
/// `n_jobs = 0`, `batch_size = 0` and `pre_dispatch = 0` are refused at compile time when
/// written as literals, and panic when computed.
///
/// With `on_error = continue` every other task runs first; with `on_error = collect` nothing
/// is raised: each task's result comes back as a `Result`, a failure as a [`TaskError`] that
/// says which task failed and how (a panic and its message, the signal that killed its worker
/// process, its timeout, its memory cap).
///
/// ```
/// # use joblet::{parallel, TaskPanic};
/// let caught = std::panic::catch_unwind(|| {
///     parallel!(n_jobs = 2; for i in 0..100 => if i == 42 { panic!("bad input {i}") } else { i })
/// });
/// let payload = caught.unwrap_err();
/// assert_eq!(payload.downcast_ref::<String>().unwrap(), "task 42 panicked: bad input 42");
/// let failure = TaskPanic::of(&*payload).unwrap();
/// assert_eq!(failure.index(), 42);
/// assert_eq!(failure.message(), Some("bad input 42"));
/// ```
///
/// ```should_panic
/// # use joblet::parallel;
/// // What a test of a `parallel!` can expect.
/// parallel!(n_jobs = 2; for i in 0..100 => if i == 42 { panic!("bad input {i}") } else { i });
/// ```
///
/// # Workers
///
/// [`cpu_count`] and [`effective_n_jobs`] say, as joblib's do, how many cores this process may
/// use and how many workers an `n_jobs` stands for.
///
/// # Features
///
/// The Cargo feature `threads` (on by default) brings rayon. Without it, every `parallel!`
/// compiles to the sequential loop, with the same results. The feature `processes` (on by
/// default) brings the processes backend, and `mpi` (off by default: it builds against the
/// system's MPI library) the MPI backend; without them, `backend = processes` and
/// `backend = mpi` are compile errors that say so.
pub use joblet_macros::parallel;

pub use joblet_runtime::{
    Array, CACHE_DIR_ENV, CONFIG_FILE, Cached, Compression, DEFAULT_CACHE_DIR, DISABLE_ENV,
    EntryInfo, Error, ErrorKind, IN_MEMORY_ENV, LOCAL_TIER_ENV, Limits, MAX_NESTING, Memory,
    N_JOBS_ENV, Ordered, Pod, REFRESH_ENV, REMOTE_TIMEOUT_ENV, Reduced, Summary, TaskError,
    TaskErrorKind, TaskPanic, Unordered, ZeroJobs, cpu_count, default_cache_dir, dump, dump_with,
    effective_n_jobs, flush, load,
};

#[cfg(feature = "polars")]
pub use joblet_runtime::{Frame, SeriesValue, polars_arrow, polars_core};
#[cfg(feature = "ndarray")]
pub use joblet_runtime::{NdArray, ndarray};

#[cfg(feature = "mpi")]
pub use joblet_runtime::mpi;

#[doc(hidden)]
pub mod __private {
    pub use joblet_runtime::__private::*;
}
