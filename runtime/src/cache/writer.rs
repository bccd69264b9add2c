//! Stores off the caller's path: a small result's entry is made in memory by the caller, which
//! returns at once, and one background thread writes it to its store (atomically, as every
//! store is written), then tells the size limit.
//!
//! Until it is written, this process's calls find the entry here ([`pending`]); other
//! processes find it once it is written, within a millisecond or so. A failure to write is
//! warned about through the `tracing` subscriber of the call that stored it. Everything queued is
//! written before the process exits normally, before `Memory` lists or removes entries, before
//! a function's `clear`, and by [`flush`]. A process killed in between loses what it had not
//! written: a recomputation, never a wrong or partial entry.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::key::Key;
use crate::store::{EntryId, Image, Store};

/// Where a function's entries go: the same for all its calls (but a method's, whose folder
/// depends on `Self`).
pub(crate) struct Destination {
    pub store: Arc<dyn Store>,
    /// The store's name in [`pending`].
    pub store_id: u64,
    pub function: String,
    pub version: String,
    /// The size limit, for the budget once written.
    pub max_size: Option<u64>,
    /// The function's name, for the warning if an entry cannot be written.
    pub name: String,
}

/// An entry to write.
pub(crate) struct Job {
    pub to: Arc<Destination>,
    pub key: Key,
    pub image: Image,
    /// The `tracing` subscriber of the call that stored it, for the writer's events.
    pub dispatch: tracing::Dispatch,
}

/// Beyond this many entries queued, a caller waits for the writer: memory stays bounded when
/// results come faster than the disk takes them.
const QUEUED_AT_MOST: usize = 4096;

struct Queue {
    jobs: VecDeque<Job>,
    /// Whether the writer is writing a job it has taken from `jobs`.
    writing: bool,
    /// Whether the writer waits for a job: only then does a new one need a wake-up call.
    idle: bool,
    /// How many threads wait for the writer's progress ([`flush`], or a full queue).
    waiting: usize,
    started: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    jobs: VecDeque::new(),
    writing: false,
    idle: false,
    waiting: 0,
    started: false,
});
/// Signals a new job to the idle writer.
static WORK: Condvar = Condvar::new();
/// Signals the writer's progress to the threads waiting for it.
static DONE: Condvar = Condvar::new();

/// The entries queued or being written, by store and key: the last queued of each. Apart from
/// the queue, so that the calls that look here (every call, while any is pending) do not wait
/// for the writer's hold on the queue.
static PENDING: RwLock<Option<HashMap<(u64, u128), Image>>> = RwLock::new(None);
/// How many entries `PENDING` holds, read without its lock: mostly none.
static PENDING_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The entry `key` of the store `store_id`, if it is queued or being written: not in its
/// store yet.
pub(crate) fn pending(store_id: u64, key: Key) -> Option<Image> {
    if PENDING_COUNT.load(Relaxed) == 0 {
        return None;
    }
    let pending = PENDING.read().unwrap_or_else(|e| e.into_inner());
    pending.as_ref()?.get(&(store_id, key.0)).cloned()
}

/// Queues `job`; writes it here instead if no writer thread can be started.
pub(crate) fn submit(job: Job) {
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    if !queue.started {
        let spawned = std::thread::Builder::new()
            .name("joblet-writer".into())
            .spawn(run);
        if spawned.is_err() {
            drop(queue);
            write(&job);
            return;
        }
        queue.started = true;
        crate::at_exit::at_exit(flush);
    }
    if queue.jobs.len() >= QUEUED_AT_MOST {
        queue.waiting += 1;
        while queue.jobs.len() >= QUEUED_AT_MOST {
            queue = DONE.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
        queue.waiting -= 1;
    }
    {
        let mut pending = PENDING.write().unwrap_or_else(|e| e.into_inner());
        let map = pending.get_or_insert_with(HashMap::new);
        map.insert((job.to.store_id, job.key.0), job.image.clone());
        PENDING_COUNT.store(map.len(), Relaxed);
    }
    queue.jobs.push_back(job);
    if queue.idle {
        WORK.notify_one();
    }
}

/// Writes every entry queued so far by this process, and waits until they are written.
///
/// `#[cached]` functions hand small results to a background writer and return at once (see
/// the README's "Stores"); this waits for it. It runs by itself when the process exits
/// normally, and before `Memory` lists or removes entries.
///
/// ```
/// # use joblet_runtime::Memory;
/// # let memory = Memory::new(std::env::temp_dir().join("joblet-doc-flush"));
/// let double = memory.cache("double", |x: u64| 2 * x);
/// double.call(21);
/// joblet_runtime::flush(); // the entry is in its file now, for other processes to load
/// ```
pub fn flush() {
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    queue.waiting += 1;
    while !queue.jobs.is_empty() || queue.writing {
        queue = DONE.wait(queue).unwrap_or_else(|e| e.into_inner());
    }
    queue.waiting -= 1;
}

/// Jobs the writer takes from the queue at once: fewer turns of the locks that callers take too.
const BATCH: usize = 64;

fn run() {
    let mut done: Vec<Job> = Vec::with_capacity(BATCH);
    loop {
        if !done.is_empty() {
            // These entries are in their store now, unless a later store of the same call is
            // queued (then its image stays pending).
            let mut pending = PENDING.write().unwrap_or_else(|e| e.into_inner());
            if let Some(map) = pending.as_mut() {
                for job in &done {
                    let name = (job.to.store_id, job.key.0);
                    if map.get(&name).is_some_and(|i| Arc::ptr_eq(i, &job.image)) {
                        map.remove(&name);
                    }
                }
                PENDING_COUNT.store(map.len(), Relaxed);
            }
            drop(pending);
            done.clear();
        }
        let batch: Vec<Job> = {
            let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            queue.writing = false;
            if queue.waiting > 0 {
                DONE.notify_all();
            }
            while queue.jobs.is_empty() {
                queue.idle = true;
                queue = WORK.wait(queue).unwrap_or_else(|e| e.into_inner());
                queue.idle = false;
            }
            queue.writing = true;
            let n = queue.jobs.len().min(BATCH);
            queue.jobs.drain(..n).collect()
        };
        for job in batch {
            write(&job);
            done.push(job);
        }
    }
}

fn write(job: &Job) {
    let to = &*job.to;
    let id = EntryId {
        function: &to.function,
        version: &to.version,
        key: job.key,
    };
    match to.store.put_image(&id, &job.image) {
        Ok(bytes) => {
            tracing::dispatcher::with_default(&job.dispatch, || {
                tracing::debug!(function = %to.name, key = job.key.hex().short(), bytes, "stored");
                super::budget::stored(&*to.store, bytes, to.max_size);
            });
        }
        Err(e) => tracing::dispatcher::with_default(&job.dispatch, || {
            tracing::warn!(function = %to.name, key = job.key.hex().short(), error = %e, "cannot store result in the cache; returning it uncached");
        }),
    }
}
