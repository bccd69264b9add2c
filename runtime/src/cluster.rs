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
    R: crate::processes::SendableResult,
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
    use std::cell::Cell;
    use std::sync::{Mutex, OnceLock};

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::parallel::{Batch, Options, TaskPanic};

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
            if !LAUNCHER_VARIABLES
                .iter()
                .any(|v| std::env::var_os(v).is_some())
            {
                return None;
            }
            Some(start())
        })
    }

    /// The MPI environment, kept until the process exits, when it is finalized.
    static UNIVERSE: Mutex<Option<mpi::environment::Universe>> = Mutex::new(None);

    /// Initializes MPI, and arranges for a panic to end the job and for MPI to be finalized at
    /// exit.
    fn start() -> Place {
        use mpi::traits::Communicator;
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Multiple)
            .expect("MPI was initialized already, outside joblet");
        let world = universe.world();
        let place = Place {
            rank: usize::try_from(world.rank()).unwrap_or(0),
            size: usize::try_from(world.size()).unwrap_or(1),
        };
        *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(universe);
        extern "C" fn finalize() {
            // Dropping the universe finalizes MPI: every rank gets here as its `main` returns.
            let universe = UNIVERSE.lock().map(|mut u| u.take());
            drop(universe);
        }
        // SAFETY: registers a function that takes no arguments and does not unwind.
        unsafe { libc::atexit(finalize) };
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // A task's panic is caught and reported by the run, which then ends the job; any other
            // would leave the other ranks waiting for this one forever.
            if !IN_TASK.get() {
                abort(101);
            }
        }));
        place
    }

    std::thread_local! {
        /// Set while this thread runs a task of an MPI run.
        static IN_TASK: Cell<bool> = const { Cell::new(false) };
    }

    /// Ends every rank of the job at once, with `code`.
    fn abort(code: i32) -> ! {
        use mpi::traits::Communicator;
        mpi::topology::SimpleCommunicator::world().abort(code)
    }

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
    /// A task that panics ends the whole job, on every rank, with the task's message.
    pub fn run_mpi<T, F, R>(opts: &Options, tasks: T, f: F) -> Vec<R>
    where
        T: IntoIterator,
        T::Item: Send,
        F: Fn(T::Item) -> R + Sync + Send,
        R: Serialize + DeserializeOwned + Send,
    {
        let task = |item| {
            let outer = IN_TASK.replace(true);
            let result = f(item);
            IN_TASK.set(outer);
            result
        };
        // Inside a task (a nested run), or with no launcher: this process runs everything.
        let place = match (IN_TASK.get(), job()) {
            (false, Some(place)) if place.size > 1 => place,
            _ => return crate::parallel::run_iter(opts, tasks, task),
        };
        let items: Vec<T::Item> = tasks.into_iter().collect();
        let total = items.len();
        let batch = match opts.batch {
            Batch::Fixed(b) => b,
            // Enough batches that every rank gets several, spread over the whole range.
            Batch::Auto => (total / (place.size * 16)).max(1),
        };
        let owner = |i: usize| (i / batch) % place.size;
        let (mine, indices): (Vec<T::Item>, Vec<usize>) = items
            .into_iter()
            .enumerate()
            .filter(|&(i, _)| owner(i) == place.rank)
            .map(|(i, item)| (item, i))
            .unzip();
        // Progress lines come from rank 0 alone, for its share.
        let local = if place.rank == 0 {
            opts.clone()
        } else {
            opts.silent()
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::parallel::run_iter(&local, mine, task)
        }));
        let results = match ran {
            Ok(results) => results,
            Err(payload) => {
                let task = payload.downcast_ref::<TaskPanic>().map(|p| {
                    format!(
                        "task {}: {}",
                        indices[p.index()],
                        p.message().unwrap_or("a panic")
                    )
                });
                eprintln!(
                    "joblet: rank {} of the MPI job failed in {}; ending the job",
                    place.rank,
                    task.as_deref().unwrap_or("a task")
                );
                abort(101);
            }
        };
        let bytes = postcard::to_stdvec(&results).unwrap_or_else(|e| {
            eprintln!(
                "joblet: rank {} cannot serialize its results: {e}; ending the job",
                place.rank
            );
            abort(101)
        });
        let parts = gather(&bytes, place);
        let mut from: Vec<std::vec::IntoIter<R>> = parts
            .iter()
            .enumerate()
            .map(|(r, part)| match postcard::from_bytes::<Vec<R>>(part) {
                Ok(results) => results.into_iter(),
                Err(e) => {
                    eprintln!(
                        "joblet: the results of rank {r} cannot be read: {e}; ending the job"
                    );
                    abort(101)
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

    /// Every rank's `bytes`, on every rank, in rank order.
    fn gather(bytes: &[u8], place: Place) -> Vec<Vec<u8>> {
        use mpi::datatype::PartitionMut;
        use mpi::traits::CommunicatorCollectives;
        let world = mpi::topology::SimpleCommunicator::world();
        let Ok(count) = i32::try_from(bytes.len()) else {
            eprintln!(
                "joblet: rank {} has 2 GiB or more of results to send, more than one MPI message holds; ending the job",
                place.rank
            );
            abort(101)
        };
        let mut counts = vec![0i32; place.size];
        world.all_gather_into(&count, &mut counts[..]);
        let mut displacements = Vec::with_capacity(place.size);
        let mut end = 0i64;
        for &c in &counts {
            displacements.push(i32::try_from(end).unwrap_or(i32::MAX));
            end += i64::from(c);
        }
        if end > i64::from(i32::MAX) {
            eprintln!(
                "joblet: the job's results are 2 GiB or more, more than one MPI message holds; ending the job"
            );
            abort(101)
        }
        let mut all = vec![0u8; end as usize];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displacements[..]);
            world.all_gather_varcount_into(bytes, &mut partition);
        }
        counts
            .iter()
            .zip(&displacements)
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect()
    }
}
