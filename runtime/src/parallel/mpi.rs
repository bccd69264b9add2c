//! `backend = mpi`: a `parallel!` spread over the ranks of an MPI job, on the MPI library the
//! cluster already runs (MPICH, Open MPI), through rsmpi.
//!
//! Every rank runs the whole program, so every rank builds the same tasks and the same body:
//! nothing but results crosses the network. Batches of tasks are dealt to the ranks in turn
//! (batch `b` to rank `b % size`: costs that grow with the index are spread), each rank runs
//! its share on `n_jobs` threads, and the results, as postcard bytes, are gathered by every
//! rank, which puts them back in input order. A program started without a launcher is one
//! rank and starts no MPI at all.

#[cfg(feature = "mpi")]
pub use job::{barrier, is_root, on_root, rank, run_mpi, size};

#[cfg(not(feature = "mpi"))]
use crate::parallel::Options;

/// Fails to compile, at the `mpi` token, in a build without the backend.
pub fn mpi_enabled<B: MpiBackend>() {}

/// Implemented in builds with the MPI backend.
#[diagnostic::on_unimplemented(
    message = "`backend = mpi` needs joblet's Cargo feature `mpi` (and an MPI library: MPICH or Open MPI, with libclang to build the bindings)",
    label = "this backend is not in this build",
    note = "enable it with `joblet = {{ version = \"...\", features = [\"mpi\"] }}`, or use `backend = threads`"
)]
pub trait MpiBackend {}

#[cfg(feature = "mpi")]
impl MpiBackend for () {}

/// Checks, at the body, that its result can travel between ranks.
pub fn results_travel<T, F, R>(_tasks: &T, _body: &F)
where
    T: IntoIterator,
    F: Fn(T::Item) -> R,
    R: super::processes::SendableResult,
{
}

/// Without the backend, fails to compile where `mpi_enabled` does.
#[cfg(not(feature = "mpi"))]
pub fn run_mpi<T, F, R>(_: &Options, _: T, _: F) -> Vec<R>
where
    T: IntoIterator,
    F: Fn(T::Item) -> R,
{
    unreachable!("`mpi_enabled` keeps `backend = mpi` from compiling in this build")
}

#[cfg(feature = "mpi")]
mod job {
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::parallel::{Options, TaskError};

    /// Environment variables that MPI launchers set in the processes they start: MPICH's Hydra
    /// and other PMI launchers, PMIx (Open MPI 5, recent SLURM), Open MPI's own.
    const LAUNCHER_VARIABLES: &[&str] = &[
        "PMI_RANK",
        "PMI_SIZE",
        "PMIX_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "MPI_LOCALRANKID",
    ];

    /// This process's place in the job.
    #[derive(Clone, Copy)]
    struct Place {
        rank: usize,
        size: usize,
    }

    /// The job this process is part of, found at the first use: `None` when no launcher started
    /// it (one rank, no MPI).
    fn job() -> Option<Place> {
        static JOB: OnceLock<Option<Place>> = OnceLock::new();
        *JOB.get_or_init(|| {
            // A processes worker inherits its rank's environment, not its MPI connection.
            if crate::parallel::processes::is_worker_process() || !launched() {
                return None;
            }
            Some(start())
        })
    }

    fn launched() -> bool {
        LAUNCHER_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    }

    before_main! {
        /// Starts MPI before `main` under a launcher, so that a rank that fails before its
        /// first `parallel!` still ends the job (its exit handler needs MPI to). `run_mpi`
        /// refers to it.
        static START = start_early;
    }

    extern "C" fn start_early() {
        // Not in a processes worker, which is its parent's helper and no rank.
        if std::env::var_os(crate::parallel::processes::WORKER_ENV).is_none() && launched() {
            let _ = std::panic::catch_unwind(job);
        }
    }

    /// The MPI environment joblet started, kept until the process exits.
    static UNIVERSE: Mutex<Option<mpi::environment::Universe>> = Mutex::new(None);

    /// Initializes MPI, or joins the program's own, and arranges for the end of the process to
    /// finalize it, or to end the job when the process fails.
    fn start() -> Place {
        use mpi::traits::Communicator;
        if !mpi::environment::is_initialized()
            && let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Multiple)
        {
            *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(universe);
            at_exit();
        }
        let world = mpi::topology::SimpleCommunicator::world();
        Place {
            rank: usize::try_from(world.rank()).unwrap_or(0),
            size: usize::try_from(world.size()).unwrap_or(1),
        }
    }

    /// At exit: finalizes MPI when the process succeeds, and ends the whole job when it fails
    /// (a panic out of `main`, `main` returning an error, `exit(1)`), since the other ranks
    /// would wait for this one forever. Only glibc tells an exit handler the status; elsewhere
    /// MPI is finalized whatever it is.
    fn at_exit() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            unsafe extern "C" {
                fn on_exit(
                    f: extern "C" fn(libc::c_int, *mut libc::c_void),
                    arg: *mut libc::c_void,
                ) -> libc::c_int;
            }
            extern "C" fn handler(status: libc::c_int, _: *mut libc::c_void) {
                if status == 0 {
                    finalize();
                } else {
                    abort(status);
                }
            }
            // SAFETY: registers a handler that does not unwind; the argument is unused.
            unsafe { on_exit(handler, std::ptr::null_mut()) };
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            extern "C" fn handler() {
                finalize();
            }
            // SAFETY: registers a handler that takes no arguments and does not unwind.
            unsafe { libc::atexit(handler) };
        }
    }

    /// Dropping the universe finalizes MPI.
    fn finalize() {
        let universe = UNIVERSE.lock().map(|mut u| u.take());
        drop(universe);
    }

    /// Ends every rank of the job at once, with `code`, after giving what this rank wrote to
    /// stderr time to reach the launcher (which drops what is still in flight).
    fn abort(code: i32) -> ! {
        use mpi::traits::Communicator;
        use std::io::Write;
        let _ = std::io::stderr().flush();
        std::thread::sleep(std::time::Duration::from_millis(300));
        mpi::topology::SimpleCommunicator::world().abort(code)
    }

    /// Says why this rank ends the job, then ends it (exit code 101).
    fn fail(why: std::fmt::Arguments<'_>) -> ! {
        eprintln!("joblet: {why}; ending the job");
        abort(101)
    }

    /// MPI runs under way in this process: one inside another's task runs in place.
    static RUNNING: AtomicUsize = AtomicUsize::new(0);

    /// The rank of this process in its MPI job: 0 to [`size`]` - 1`, and 0 in a program started
    /// without a launcher.
    ///
    /// ```
    /// assert_eq!(joblet_runtime::mpi::rank(), 0); // not under `mpiexec`
    /// ```
    pub fn rank() -> usize {
        job().map_or(0, |j| j.rank)
    }

    /// The number of ranks in the job: 1 in a program started without a launcher.
    ///
    /// ```
    /// assert_eq!(joblet_runtime::mpi::size(), 1);
    /// ```
    pub fn size() -> usize {
        job().map_or(1, |j| j.size)
    }

    /// Whether this is rank 0, the one that prints and writes files for the job.
    ///
    /// ```
    /// assert!(joblet_runtime::mpi::is_root());
    /// ```
    pub fn is_root() -> bool {
        rank() == 0
    }

    /// Waits until every rank of the job gets here; returns at once without a launcher.
    ///
    /// ```
    /// joblet_runtime::mpi::barrier();
    /// ```
    pub fn barrier() {
        use mpi::traits::CommunicatorCollectives;
        if job().is_some_and(|place| place.size > 1) {
            mpi::topology::SimpleCommunicator::world().barrier();
        }
    }

    /// Runs `f` on rank 0 only, and returns its result there; `None` on the other ranks. For
    /// output and files that the job should write once, not once a rank.
    ///
    /// ```
    /// let written = joblet_runtime::mpi::on_root(|| println!("written once"));
    /// assert!(written.is_some());
    /// ```
    pub fn on_root<T>(f: impl FnOnce() -> T) -> Option<T> {
        is_root().then(f)
    }

    /// Runs the tasks over the job's ranks; every rank returns every result, in input order.
    ///
    /// # Panics
    /// A task that panics ends the whole job, on every rank, with the task's message; so do
    /// ranks that built different numbers of tasks.
    pub fn run_mpi<T, F, R>(opts: &Options, tasks: T, f: F) -> Vec<R>
    where
        T: IntoIterator,
        T::Item: Send,
        F: Fn(T::Item) -> R + Sync + Send,
        R: Serialize + DeserializeOwned + Send,
    {
        std::hint::black_box(&START);
        // Nested in a task of another run, or with no launcher: this process runs everything.
        let place = match job() {
            Some(place) if place.size > 1 && RUNNING.load(Ordering::SeqCst) == 0 => place,
            _ => return crate::parallel::run_iter(opts, tasks, f),
        };
        RUNNING.fetch_add(1, Ordering::SeqCst);
        let items: Vec<T::Item> = tasks.into_iter().collect();
        let total = items.len();
        let batch = opts.batch.mpi(total, place.size);
        let owner = |i: usize| (i / batch) % place.size;
        let mine: Vec<(usize, T::Item)> = items
            .into_iter()
            .enumerate()
            .filter(|&(i, _)| owner(i) == place.rank)
            .collect();
        // A failed task ends the job at once, not when its rank's other tasks are done.
        let task =
            |(index, item): (usize, T::Item)| match panic::catch_unwind(AssertUnwindSafe(|| {
                f(item)
            })) {
                Ok(result) => result,
                Err(payload) => {
                    let failure = TaskError::panicked(index, &*payload);
                    fail(format_args!(
                        "rank {} of the MPI job: {failure}",
                        place.rank
                    ))
                }
            };
        // Progress lines come from rank 0 alone, for its share.
        let local = if place.rank == 0 {
            opts.clone()
        } else {
            opts.silent()
        };
        let results = crate::parallel::run_iter(&local, mine, task);
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        // Each rank's part starts with its count of all the tasks: ranks that built different
        // tasks would mix up their results.
        let mut bytes = (total as u64).to_le_bytes().to_vec();
        if let Err(e) = postcard::to_io(&results, &mut bytes) {
            fail(format_args!(
                "rank {} cannot serialize its results: {e}",
                place.rank
            ))
        }
        drop(results);
        let (all, parts) = gather(&bytes, place);
        drop(bytes);
        let mut from: Vec<std::vec::IntoIter<R>> = parts
            .into_iter()
            .enumerate()
            .map(|(r, part)| {
                let (count, part) = all[part].split_at(8);
                let count = u64::from_le_bytes(count.try_into().expect("8 bytes"));
                if count != total as u64 {
                    fail(format_args!(
                        "rank {r} built {count} tasks and rank {} built {total}: every rank must build the same tasks, in the same order (a `HashMap` or `HashSet` iterates in another order in each process)",
                        place.rank
                    ))
                }
                match postcard::from_bytes::<Vec<R>>(part) {
                    Ok(results) => results.into_iter(),
                    Err(e) => {
                        fail(format_args!("the results of rank {r} cannot be read: {e}"))
                    }
                }
            })
            .collect();
        (0..total)
            .map(|i| {
                from[owner(i)]
                    .next()
                    .expect("each rank sends one result per task it owns")
            })
            .collect()
    }

    /// Every rank's `bytes`, on every rank: all of them, and where each rank's are. MPI counts
    /// bytes in `i32`s, so they go in rounds, each rank sending at most 2 GiB / ranks a round:
    /// one round unless the results are large.
    fn gather(bytes: &[u8], place: Place) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        use mpi::datatype::PartitionMut;
        use mpi::traits::CommunicatorCollectives;
        let world = mpi::topology::SimpleCommunicator::world();
        let mut lengths = vec![0u64; place.size];
        world.all_gather_into(&(bytes.len() as u64), &mut lengths[..]);
        let mut parts = Vec::with_capacity(place.size);
        let mut end = 0usize;
        for &length in &lengths {
            let length = usize::try_from(length).expect("a length this process holds");
            parts.push(end..end + length);
            end += length;
        }
        let mut all = vec![0u8; end];
        let chunk = chunk_size(place.size);
        let rounds = lengths
            .iter()
            .map(|&l| l.div_ceil(chunk as u64))
            .max()
            .unwrap_or(0);
        tracing::debug!(bytes = end, rounds, "results exchanged");
        let mut round_buffer = Vec::new();
        for round in 0..rounds as usize {
            // Each rank's piece of this round: its bytes from `round * chunk`, at most `chunk`.
            let piece = |length: usize| length.saturating_sub(round * chunk).min(chunk);
            let counts: Vec<i32> = parts
                .iter()
                .map(|p| i32::try_from(piece(p.len())).expect("a chunk fits an i32"))
                .collect();
            let displacements: Vec<i32> = counts
                .iter()
                .scan(0i32, |at, &c| {
                    let here = *at;
                    *at += c;
                    Some(here)
                })
                .collect();
            let mine = round * chunk;
            let mine = &bytes[mine.min(bytes.len())..(mine + piece(bytes.len())).min(bytes.len())];
            round_buffer.clear();
            round_buffer.resize(counts.iter().map(|&c| c as usize).sum(), 0);
            {
                let mut partition =
                    PartitionMut::new(&mut round_buffer[..], &counts[..], &displacements[..]);
                world.all_gather_varcount_into(mine, &mut partition);
            }
            for ((part, &count), &at) in parts.iter().zip(&counts).zip(&displacements) {
                // A rank whose bytes ran out in an earlier round sends nothing.
                if count > 0 {
                    let into = part.start + round * chunk;
                    let (count, at) = (count as usize, at as usize);
                    all[into..into + count].copy_from_slice(&round_buffer[at..at + count]);
                }
            }
        }
        (all, parts)
    }

    /// The most bytes a rank sends in one round: 2 GiB shared by the ranks, or less when
    /// `JOBLET_MPI_CHUNK_BYTES` says so (to try many rounds without gigabytes of results).
    fn chunk_size(ranks: usize) -> usize {
        let most = i32::MAX as usize / ranks.max(1);
        std::env::var("JOBLET_MPI_CHUNK_BYTES")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(most, |n| n.clamp(1, most))
    }
}
