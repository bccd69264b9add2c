//! `#[cached]` on every supported signature: hits and misses, keys, controls, threads.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use joblet::{Array, cached};
use serde::{Deserialize, Serialize};

static SQUARES: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("square"))]
fn square(x: u64) -> u64 {
    SQUARES.fetch_add(1, SeqCst);
    x * x
}

#[test]
fn a_second_call_with_equal_arguments_loads_instead_of_computing() {
    assert_eq!(square(7), 49);
    assert_eq!(SQUARES.load(SeqCst), 1);
    assert_eq!(square(7), 49);
    assert_eq!(SQUARES.load(SeqCst), 1, "the second call computed");
    assert_eq!(square(8), 64);
    assert_eq!(SQUARES.load(SeqCst), 2);
    assert_eq!(common::entries(&common::dir("square")).len(), 2);
}

static CONTROLLED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("controls"))]
fn controlled(x: u64) -> u64 {
    CONTROLLED.fetch_add(1, SeqCst);
    x + 1
}

#[test]
fn controls_check_recompute_and_clear_without_surprises() {
    assert!(!controlled::is_cached(1));
    assert_eq!(CONTROLLED.load(SeqCst), 0, "is_cached computed");
    assert_eq!(controlled(1), 2);
    assert!(controlled::is_cached(1));
    assert!(!controlled::is_cached(2));

    assert_eq!(controlled::refresh(1), 2);
    assert_eq!(CONTROLLED.load(SeqCst), 2, "refresh did not compute");
    assert_eq!(controlled(1), 2);
    assert_eq!(CONTROLLED.load(SeqCst), 2, "refresh did not store");

    controlled::clear().unwrap();
    assert!(!controlled::is_cached(1));
    assert!(common::entries(&common::dir("controls")).is_empty());
    assert_eq!(controlled(1), 2);
    assert_eq!(CONTROLLED.load(SeqCst), 3);
    controlled::clear().unwrap();
    controlled::clear().unwrap(); // clearing nothing is fine
}

static DESCRIBED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("generic"))]
fn describe<T: Serialize>(value: T) -> String {
    DESCRIBED.fetch_add(1, SeqCst);
    format!("{}:{}", std::any::type_name::<T>(), serde_len(&value))
}

fn serde_len<T: Serialize>(value: &T) -> usize {
    joblet::__private::key_of(value).map_or(0, |k| k.0 as usize % 7)
}

#[cached(dir = common::dir("generic"))]
fn zero<T: Default + Serialize + for<'de> Deserialize<'de>>() -> T {
    T::default()
}

/// A free function with an `impl` block of its own inside: still a free function.
#[cached(dir = common::dir("generic"))]
fn with_local_impl(x: u32) -> u32 {
    struct Local(u32);
    impl Local {
        fn get(&self) -> Self {
            Local(self.0 + 1)
        }
    }
    Local(x).get().0
}

#[test]
fn a_local_impl_block_does_not_make_a_method() {
    assert_eq!(with_local_impl(1), 2);
    assert!(with_local_impl::is_cached(1));
}

#[test]
fn generic_functions_key_on_their_concrete_types() {
    let a = describe(1u32);
    let b = describe(1u64);
    assert!(a.starts_with("u32:") && b.starts_with("u64:"), "{a} {b}");
    assert_eq!(describe(1u32), a);
    assert_eq!(DESCRIBED.load(SeqCst), 2);
    // A type parameter that appears only in the return type.
    assert_eq!(zero::<u8>(), 0);
    assert_eq!(zero::<String>(), "");
    assert_eq!(zero::<Vec<u8>>(), Vec::<u8>::new());
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Model {
    weight: f64,
}

static PREDICTED: AtomicUsize = AtomicUsize::new(0);

impl Model {
    #[cached(dir = common::dir("method"))]
    fn predict(&self, x: f64) -> f64 {
        PREDICTED.fetch_add(1, SeqCst);
        self.weight * x
    }

    #[cached(dir = common::dir("method"))]
    fn with_weight(weight: f64) -> Self {
        Model { weight }
    }

    /// An associated function that never names `Self`: it must say `controls = false`.
    #[cached(dir = common::dir("method"), controls = false)]
    fn scaled(weight: f64, by: f64) -> f64 {
        weight * by
    }

    /// Names `Self` only in its body.
    #[cached(dir = common::dir("method"))]
    fn doubled(weight: f64) -> Model {
        Self {
            weight: 2.0 * weight,
        }
    }

    #[cached(dir = common::dir("method"), ignore = [self])]
    fn constant(&self, x: u32) -> u32 {
        PREDICTED.fetch_add(100, SeqCst);
        x
    }
}

trait Describe<T> {
    fn describe(&self) -> String;
}

trait Named {
    const NAME: &'static str;
}

struct First;
struct Second;
impl Named for First {
    const NAME: &'static str = "first";
}
impl Named for Second {
    const NAME: &'static str = "second";
}

#[derive(Serialize)]
struct Thing;

impl<T: Named> Describe<T> for Thing {
    #[cached(dir = common::dir("trait-generics"))]
    fn describe(&self) -> String {
        T::NAME.to_string()
    }
}

#[test]
fn methods_key_on_the_generics_of_their_impl_and_trait() {
    assert_eq!(<Thing as Describe<First>>::describe(&Thing), "first");
    assert_eq!(<Thing as Describe<Second>>::describe(&Thing), "second");
    assert_eq!(<Thing as Describe<First>>::describe(&Thing), "first");
}

static BOUNDED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("impl-bounds"))]
fn with_bounds(value: impl Serialize + Clone, tag: &str) -> String {
    BOUNDED.fetch_add(1, SeqCst);
    let _ = value.clone();
    tag.to_uppercase()
}

#[test]
fn impl_trait_arguments_with_several_bounds() {
    assert_eq!(with_bounds(3u8, "a"), "A");
    assert_eq!(with_bounds(3u8, "a"), "A");
    assert_eq!(with_bounds(3u16, "a"), "A"); // another concrete type: another key
    assert_eq!(BOUNDED.load(SeqCst), 2);
}

#[test]
fn methods_key_on_self() {
    let two = Model { weight: 2.0 };
    let three = Model { weight: 3.0 };
    assert_eq!(two.predict(5.0), 10.0);
    assert_eq!(three.predict(5.0), 15.0);
    assert_eq!(two.predict(5.0), 10.0);
    assert_eq!(PREDICTED.load(SeqCst), 2);
    assert_eq!(Model::with_weight(4.0), Model { weight: 4.0 });
    assert_eq!(Model::with_weight(4.0), Model { weight: 4.0 });
    assert_eq!(Model::doubled(4.0), Model { weight: 8.0 });
    assert_eq!(Model::scaled(2.0, 3.0), 6.0);
    assert_eq!(Model::scaled(2.0, 3.0), 6.0);
    // `ignore = [self]`: the receiver is left out of the key.
    assert_eq!(two.constant(1), 1);
    assert_eq!(three.constant(1), 1);
    assert_eq!(PREDICTED.load(SeqCst), 102);
}

static FETCHED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("async"))]
async fn fetch(name: &str, times: usize) -> Result<String, std::num::ParseIntError> {
    FETCHED.fetch_add(1, SeqCst);
    let n: u32 = name.parse()?;
    std::future::ready(()).await;
    Ok(n.to_string().repeat(times))
}

#[test]
fn async_functions_are_cached() {
    assert_eq!(pollster::block_on(fetch("12", 2)).unwrap(), "1212");
    assert_eq!(pollster::block_on(fetch("12", 2)).unwrap(), "1212");
    assert_eq!(FETCHED.load(SeqCst), 1);
    assert!(pollster::block_on(fetch("x", 1)).is_err());
    assert!(pollster::block_on(fetch::refresh("12", 2)).is_ok());
    assert_eq!(FETCHED.load(SeqCst), 3);
    assert!(fetch::is_cached("12", 2));
}

static BORROWED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("refs"))]
fn borrowed(text: &str, values: &[f64], model: &Model, (lo, hi): (usize, usize)) -> f64 {
    BORROWED.fetch_add(1, SeqCst);
    values[lo..hi].iter().sum::<f64>() * model.weight + text.len() as f64
}

#[test]
fn reference_and_pattern_arguments_hash_as_their_values() {
    let values = vec![1.0, 2.0, 3.0, 4.0];
    let model = Model { weight: 2.0 };
    assert_eq!(borrowed("ab", &values, &model, (1, 3)), 12.0);
    let copy = values.clone();
    let text = String::from("ab");
    assert_eq!(borrowed(&text, &copy, &model.clone(), (1, 3)), 12.0);
    assert_eq!(BORROWED.load(SeqCst), 1);
    assert_eq!(borrowed("ab", &values, &model, (0, 3)), 14.0);
    assert_eq!(BORROWED.load(SeqCst), 2);
}

/// An error type that is neither `Serialize` nor `Deserialize`.
#[derive(Debug, PartialEq)]
struct Opaque(u32);

static DIVIDED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("result"))]
fn divide(a: u32, b: u32) -> Result<u32, Opaque> {
    DIVIDED.fetch_add(1, SeqCst);
    if b == 0 {
        return Err(Opaque(a));
    }
    Ok(a / b)
}

#[test]
fn results_cache_only_ok_values() {
    assert_eq!(divide(6, 3), Ok(2));
    assert_eq!(divide(6, 3), Ok(2));
    assert_eq!(DIVIDED.load(SeqCst), 1);
    assert_eq!(divide(6, 0), Err(Opaque(6)));
    assert_eq!(divide(6, 0), Err(Opaque(6)));
    assert_eq!(DIVIDED.load(SeqCst), 3, "an Err was cached");
    assert!(divide::is_cached(6, 3));
    assert!(!divide::is_cached(6, 0));
}

static COUNTED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("maps"), ignore = [verbose])]
fn count_words(words: HashMap<String, usize>, stop: &HashSet<String>, verbose: bool) -> usize {
    COUNTED.fetch_add(1, SeqCst);
    if verbose {
        println!("counting");
    }
    words
        .iter()
        .filter(|(w, _)| !stop.contains(*w))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn maps_and_sets_hit_whatever_their_order_and_ignored_arguments_do_not_count() {
    let pairs: Vec<(String, usize)> = (0..100).map(|i| (format!("w{i}"), i)).collect();
    let forward: HashMap<_, _> = pairs.iter().cloned().collect();
    let mut backward = HashMap::with_capacity(500);
    backward.extend(pairs.iter().rev().cloned());
    let stop1: HashSet<String> = ["w1", "w2", "w3"].map(String::from).into();
    let mut stop2 = HashSet::with_capacity(64);
    stop2.extend(["w3", "w2", "w1"].map(String::from));

    let expected = (0..100).sum::<usize>() - 6;
    assert_eq!(count_words(forward, &stop1, false), expected);
    assert_eq!(count_words(backward, &stop2, true), expected);
    assert_eq!(COUNTED.load(SeqCst), 1);

    let sorted: BTreeMap<String, usize> = pairs.iter().cloned().collect();
    let other: HashMap<_, _> = sorted.into_iter().filter(|(_, n)| *n != 50).collect();
    assert_eq!(count_words(other, &stop1, false), expected - 50);
    assert_eq!(COUNTED.load(SeqCst), 2);
}

mod invalidation {
    //! Two functions given one identity with `name`: what separates their entries is their code.
    use super::*;

    pub static V1: AtomicUsize = AtomicUsize::new(0);
    pub static V2: AtomicUsize = AtomicUsize::new(0);

    pub mod before {
        use super::*;
        #[cached(dir = common::dir("invalidation"), name = "score")]
        pub fn score(x: u32) -> u32 {
            V1.fetch_add(1, SeqCst);
            x + 1
        }
    }

    pub mod edited {
        use super::*;
        #[cached(dir = common::dir("invalidation"), name = "score")]
        pub fn score(x: u32) -> u32 {
            V2.fetch_add(1, SeqCst);
            x + 2
        }
    }

    pub mod redocumented {
        use super::*;
        /// The same code as `before`, with docs and comments added and other formatting.
        #[cached(dir = common::dir("invalidation"), name = "score")]
        pub fn score(x: u32) -> u32 {
            // counts computations
            V1.fetch_add(1, SeqCst);
            x + 1 /* unchanged */
        }
    }

    pub mod versioned {
        use super::*;
        #[cached(dir = common::dir("invalidation"), name = "score", version = "2")]
        pub fn score(x: u32) -> u32 {
            V1.fetch_add(1, SeqCst);
            x + 1
        }
    }
}

#[test]
fn changing_the_code_or_the_version_invalidates_but_comments_and_docs_do_not() {
    use invalidation::*;
    assert_eq!(before::score(1), 2);
    assert_eq!(V1.load(SeqCst), 1);
    // Edited body: its own entries, never the old value.
    assert_eq!(edited::score(1), 3);
    assert_eq!(V2.load(SeqCst), 1);
    // Same tokens, other comments and docs: the old entry is loaded.
    assert_eq!(redocumented::score(1), 2);
    assert_eq!(V1.load(SeqCst), 1);
    // Same code, new version salt: recomputed.
    assert_eq!(versioned::score(1), 2);
    assert_eq!(V1.load(SeqCst), 2);
}

static SLOW: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("threads"))]
fn slow_cube(x: u64) -> Vec<u64> {
    SLOW.fetch_add(1, SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(2));
    vec![x * x * x; 1000 + x as usize]
}

#[test]
fn eight_threads_calling_at_once_get_correct_values() {
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for round in 0..50u64 {
                    // Half the calls share keys across threads, half are the thread's own.
                    let x = if round % 2 == 0 {
                        round % 5
                    } else {
                        100 + t * 50 + round
                    };
                    let v = slow_cube(x);
                    assert_eq!(v.len(), 1000 + x as usize);
                    assert!(v.iter().all(|&y| y == x * x * x));
                }
            });
        }
    });
    // 5 shared keys, each computed once however many threads miss it at once, and 8 * 25 own
    // keys.
    assert_eq!(SLOW.load(SeqCst), 205);
    for x in 0..5 {
        assert!(slow_cube::is_cached(x));
    }
    let dir = common::dir("threads");
    assert_eq!(common::entries(&dir).len(), 205);
    assert!(common::temp_files(&dir).is_empty());
}

static RAMPS: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("ramp"))]
fn ramp(n: usize) -> Array<f64> {
    RAMPS.fetch_add(1, SeqCst);
    (0..n).map(|i| i as f64).collect()
}

/// Kibibytes of the file at `path` that this process's mappings hold in memory (Linux).
#[cfg(target_os = "linux")]
fn resident_kib(path: &std::path::Path) -> u64 {
    let path = std::fs::canonicalize(path).unwrap();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut in_file = false;
    let mut total = 0;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let is_mapping = fields.next().is_some_and(|range| {
            range.contains('-') && range.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        });
        if is_mapping {
            in_file = fields
                .nth(4)
                .is_some_and(|name| std::path::Path::new(name) == path);
        }
        if in_file && let Some(kib) = line.strip_prefix("Rss:") {
            total += kib.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
        }
    }
    total
}

#[test]
fn a_cached_array_hits_as_a_view_without_reading_its_pages() {
    let n = 2 << 20; // 16 MiB of f64
    let computed = ramp(n);
    assert!(!computed.is_mapped());
    let hit = ramp(n);
    assert_eq!(RAMPS.load(SeqCst), 1, "the second call computed");
    assert!(hit.is_mapped());
    #[cfg(target_os = "linux")]
    {
        let entry = &common::entries(&common::dir("ramp"))[0];
        // The hit read the header and the payload, in the first page: with the kernel's
        // fault-around (16 pages), 64 KiB of the 16 MiB file.
        assert!(
            resident_kib(entry) <= 128,
            "{} KiB read",
            resident_kib(entry)
        );
        assert_eq!(hit[n - 1], (n - 1) as f64);
        assert_eq!(hit.iter().sum::<f64>(), computed.iter().sum::<f64>());
        assert!(
            resident_kib(entry) >= 16 << 10,
            "{} KiB",
            resident_kib(entry)
        );
    }
    assert!(hit.verify());
}

static SUMS: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("array-arg"))]
fn total(values: &Array<f64>) -> f64 {
    SUMS.fetch_add(1, SeqCst);
    values.iter().sum()
}

#[test]
fn an_array_argument_is_keyed_by_its_elements() {
    let a: Array<f64> = (0..1000).map(f64::from).collect();
    assert_eq!(total(&a), 499_500.0);
    assert_eq!(total(&a.clone()), 499_500.0);
    assert_eq!(total(&Array::from(a.to_vec())), 499_500.0);
    assert_eq!(SUMS.load(SeqCst), 1);
    let mut b = a.clone();
    b.make_mut()[0] = 1.0;
    assert_eq!(total(&b), 499_501.0);
    assert_eq!(SUMS.load(SeqCst), 2);
}

static ONCE: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("single-flight"))]
fn computed_once(x: u64) -> u64 {
    ONCE.fetch_add(1, SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(50));
    x * 3
}

#[test]
fn concurrent_misses_of_one_call_compute_it_once() {
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    computed_once(14)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(results, [42; 8]);
    assert_eq!(ONCE.load(SeqCst), 1);
}

static FLAKY: AtomicUsize = AtomicUsize::new(0);
/// Set once the first attempt has failed.
static FIRST_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Attempts that began before the first had failed: they did not wait for it.
static DID_NOT_WAIT: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("single-flight-panic"))]
fn flaky(x: u64) -> u64 {
    let attempt = FLAKY.fetch_add(1, SeqCst);
    if attempt > 0 && !FIRST_FAILED.load(SeqCst) {
        DID_NOT_WAIT.fetch_add(1, SeqCst);
    }
    std::thread::sleep(std::time::Duration::from_millis(30));
    if attempt == 0 {
        FIRST_FAILED.store(true, SeqCst);
        panic!("the first attempt fails");
    }
    x + 1
}

#[test]
fn when_the_computing_thread_panics_a_waiting_one_computes() {
    let barrier = std::sync::Barrier::new(4);
    let results: Vec<std::thread::Result<u64>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    flaky(1)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect()
    });
    // One thread computed first and panicked; the others waited for it, then computed each
    // (a computation that failed to land does not queue the rest behind another).
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(results.iter().flatten().all(|&v| v == 2));
    assert_eq!(DID_NOT_WAIT.load(SeqCst), 0);
    // Three more computed, one each (queued behind one another, two would): or two, if a
    // thread came so late that another had stored the result already.
    assert!((3..=4).contains(&FLAKY.load(SeqCst)), "{FLAKY:?}");
    assert!(flaky::is_cached(1));
}

static ASYNC_COMPUTED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("single-flight-async"))]
async fn fetched(x: u64) -> u64 {
    ASYNC_COMPUTED.fetch_add(1, SeqCst);
    YieldOnce(false).await;
    x * 2
}

/// A future that is pending once, so that two tasks interleave on one thread.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[test]
fn async_calls_on_one_thread_never_wait_for_each_other() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    // Two calls of one key in flight at once on one thread, as on a single-threaded executor:
    // had the second waited for the first, it would have blocked the thread the first needs.
    // On a thread of its own, so that such a deadlock fails the test instead of hanging it.
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut calls = [Box::pin(fetched(5)), Box::pin(fetched(5))];
        let mut results = [None, None];
        let mut cx = Context::from_waker(Waker::noop());
        while results.contains(&None) {
            for (call, result) in calls.iter_mut().zip(&mut results) {
                if result.is_none()
                    && let Poll::Ready(v) = call.as_mut().poll(&mut cx)
                {
                    *result = Some(v);
                }
            }
        }
        let _ = done.send(results);
    });
    let results = result.recv_timeout(std::time::Duration::from_secs(20));
    assert_eq!(
        results,
        Ok([Some(10), Some(10)]),
        "the calls waited for each other"
    );
    assert_eq!(ASYNC_COMPUTED.load(SeqCst), 2);
}

static IN_TASKS: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("single-flight-tasks"))]
fn nested(x: u64) -> u64 {
    IN_TASKS.fetch_add(1, SeqCst);
    // Parallel work inside, so that a worker waiting here could steal another task.
    joblet::parallel!(n_jobs = 2; for i in 0..x => i)
        .iter()
        .sum()
}

/// Tasks of a `parallel!` run repeating one key, whose body runs `parallel!` itself, complete.
/// (That rayon's workers never block to wait for another computing the call, which could
/// deadlock here, is the unit test `rayon_workers_never_wait_for_another_thread_computing_a_call`:
/// this run finishes either way on this machine.)
#[test]
fn parallel_tasks_repeating_a_call_that_runs_parallel_complete() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sums = joblet::parallel!(n_jobs = 2; for _ in 0..8 => nested(100));
        let _ = done.send(sums);
    });
    let sums = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run deadlocked");
    assert_eq!(sums, [4950; 8]);
    assert!(IN_TASKS.load(SeqCst) >= 1);
}
