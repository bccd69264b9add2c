//! `parallel!`: results in input order for every kind of input, exact worker counts, panics,
//! nesting, logging and progress output. Run with and without the `threads` feature.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hint::black_box;
use std::panic;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread::ThreadId;
use std::time::Duration;

use joblet::{TaskPanic, parallel};

/// The seed notebook's task: the sum of `0..n`, kept real with `black_box`.
fn my_task(n: u64) -> u64 {
    let mut sum = 0u64;
    for m in 0..n {
        sum += black_box(m);
    }
    sum
}

#[test]
fn results_come_back_in_input_order_for_every_kind_of_input() {
    let expected: Vec<u64> = (0..3000).map(my_task).collect();
    for n_jobs in [1, 2, 3, 4, -1] {
        // A range whose type the body settles (u64).
        let out = parallel!(n_jobs = n_jobs; for i in 0..3000 => my_task(i));
        assert_eq!(out, expected);
        let out = parallel!(n_jobs = n_jobs, batch_size = 7; for i in 0..3000 => my_task(i));
        assert_eq!(out, expected);

        // A vector by value, by reference, a slice and an array.
        let inputs: Vec<u64> = (0..3000).collect();
        let by_ref = parallel!(n_jobs = n_jobs, batch_size = 100; for &i in &inputs => my_task(i));
        let by_slice = parallel!(n_jobs = n_jobs; for i in &inputs[..] => my_task(*i));
        let by_value = parallel!(n_jobs = n_jobs; for i in inputs => my_task(i));
        assert_eq!(
            (&by_ref, &by_slice, &by_value),
            (&expected, &expected, &expected)
        );
        let array = parallel!(n_jobs = n_jobs; for (a, b) in [(1, 2), (3, 4), (5, 6)] => a * b);
        assert_eq!(array, vec![2, 12, 30]);

        // Iterators without an index: collected, then run in their order.
        let evens =
            parallel!(n_jobs = n_jobs; for i in (0..3000u64).filter(|i| i % 2 == 0) => my_task(i));
        let sequential: Vec<u64> = (0..3000u64).filter(|i| i % 2 == 0).map(my_task).collect();
        assert_eq!(evens, sequential);

        let map: HashMap<String, u64> = (0..500).map(|i| (format!("k{i}"), i)).collect();
        let out = parallel!(n_jobs = n_jobs; for (k, v) in &map => format!("{k}={}", my_task(*v)));
        let sequential: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{k}={}", my_task(*v)))
            .collect();
        assert_eq!(out, sequential);
        let sorted: BTreeMap<u64, u64> = (0..100).map(|i| (i, i * i)).collect();
        let out = parallel!(n_jobs = n_jobs; for (k, v) in sorted => k + v);
        assert_eq!(out, (0..100).map(|i| i + i * i).collect::<Vec<_>>());
    }
}

#[test]
fn ranges_of_every_integer_type_cover_exactly_their_values() {
    let all_i8 = parallel!(n_jobs = 2; for x in i8::MIN..=i8::MAX => i16::from(x));
    assert_eq!(all_i8, (-128i16..=127).collect::<Vec<_>>());
    let wide = parallel!(n_jobs = 2; for x in (u64::MAX - 5)..u64::MAX => x);
    assert_eq!(wide, ((u64::MAX - 5)..u64::MAX).collect::<Vec<_>>());
    let signed = parallel!(n_jobs = 3; for x in -1000i64..1000 => x * 2);
    assert_eq!(signed, (-1000i64..1000).map(|x| x * 2).collect::<Vec<_>>());
    let empty = parallel!(n_jobs = 2; for x in 5u32..5 => x);
    assert!(empty.is_empty());
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = parallel!(n_jobs = 2; for x in 5i32..=4 => x);
    assert!(backwards.is_empty());
}

#[test]
fn bodies_borrow_locals_and_blocks_are_bodies() {
    let offset = 10u64;
    let names = ["a".to_string(), "bb".to_string()];
    let out = parallel!(n_jobs = 2; for i in 0..4u64 => {
        let extra = names[(i % 2) as usize].len() as u64;
        i + offset + extra
    });
    assert_eq!(out, vec![11, 13, 13, 15]);
}

#[test]
fn the_sequential_backend_gives_the_same_results() {
    let seq = parallel!(backend = sequential, n_jobs = 4; for i in 0..2000 => my_task(i));
    let par = parallel!(backend = threads, n_jobs = 4; for i in 0..2000 => my_task(i));
    assert_eq!(seq, par);
}

/// The distinct threads that ran `tasks` tasks of ~2 ms each.
fn threads_used(n_jobs: i64) -> HashSet<ThreadId> {
    let seen = Mutex::new(HashSet::new());
    parallel!(n_jobs = n_jobs, batch_size = 1; for _ in 0..60 => {
        std::thread::sleep(Duration::from_millis(2));
        seen.lock().unwrap().insert(std::thread::current().id());
    });
    seen.into_inner().unwrap()
}

#[cfg(feature = "threads")]
#[test]
fn exactly_n_jobs_worker_threads_run_the_tasks() {
    // More workers than this machine's cores is allowed, as in joblib.
    for n in [1, 2, 3, 4] {
        let threads = threads_used(n);
        assert_eq!(threads.len(), n as usize, "n_jobs = {n}");
        assert!(!threads.contains(&std::thread::current().id()));
    }
    // Pools are kept: the same threads serve a second call.
    assert_eq!(threads_used(3), threads_used(3));
}

#[cfg(not(feature = "threads"))]
#[test]
fn without_the_threads_feature_tasks_run_on_the_calling_thread() {
    let threads = threads_used(4);
    assert_eq!(threads, HashSet::from([std::thread::current().id()]));
}

#[test]
fn a_panicking_task_reaches_the_caller_with_its_index_and_payload() {
    let started = AtomicUsize::new(0);
    let caught = panic::catch_unwind(|| {
        parallel!(n_jobs = 2, batch_size = 1; for i in 0..2000usize => {
            started.fetch_add(1, SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            if i == 17 {
                panic!("task {i} failed");
            }
            i
        })
    });
    let failure = caught.unwrap_err().downcast::<TaskPanic>().unwrap();
    assert_eq!(failure.index(), 17);
    assert_eq!(failure.message(), Some("task 17 failed"));
    assert_eq!(failure.to_string(), "task 17 panicked: task 17 failed");
    assert_eq!(
        *failure.into_payload().downcast::<String>().unwrap(),
        "task 17 failed"
    );
    // The batches after the failure were not started. (How many started before the flag was
    // seen depends on the panic hook: printing a backtrace takes milliseconds.)
    let started = started.load(SeqCst);
    assert!(started < 1000, "{started} of 2000 tasks started");
    // The workers are still usable.
    let out = parallel!(n_jobs = 2, batch_size = 1; for i in 0..100usize => i);
    assert_eq!(out, (0..100).collect::<Vec<_>>());
}

#[test]
fn a_panic_in_a_nested_call_keeps_its_message() {
    let caught = panic::catch_unwind(|| {
        parallel!(n_jobs = 2; for i in 0..4u32 => {
            parallel!(n_jobs = 2; for j in 0..4u32 => if i == 2 && j == 3 { panic!("deep") } else { j })
        })
    });
    let outer = caught.unwrap_err().downcast::<TaskPanic>().unwrap();
    assert_eq!(outer.index(), 2);
    assert_eq!(outer.message(), Some("deep"));
    let inner = outer.into_payload().downcast::<TaskPanic>().unwrap();
    assert_eq!(inner.index(), 3);
}

#[test]
fn the_sequential_backend_reports_panics_the_same_way() {
    let caught = panic::catch_unwind(
        || parallel!(backend = sequential; for i in 0..10 => if i == 3 { panic!("three") } else { i }),
    );
    let failure = caught.unwrap_err().downcast::<TaskPanic>().unwrap();
    assert_eq!((failure.index(), failure.message()), (3, Some("three")));
}

#[test]
fn nested_calls_finish_without_more_threads_than_the_outer_call() {
    let seen = Mutex::new(HashSet::new());
    let out = parallel!(n_jobs = 2; for i in 0..8u64 => {
        let inner = parallel!(n_jobs = 4; for j in 0..50u64 => {
            seen.lock().unwrap().insert(std::thread::current().id());
            my_task(i * 50 + j)
        });
        inner.iter().sum::<u64>()
    });
    let expected: Vec<u64> = (0..8u64)
        .map(|i| (0..50).map(|j| my_task(i * 50 + j)).sum())
        .collect();
    assert_eq!(out, expected);
    let threads = seen.into_inner().unwrap().len();
    assert!(threads <= 2, "{threads} threads ran nested tasks");
}

#[test]
fn tracing_events_in_tasks_reach_the_callers_scoped_subscriber() {
    let (out, logged) = common::logs(tracing::Level::INFO, || {
        parallel!(n_jobs = 3, batch_size = 2; for i in 0..40 => {
            tracing::info!(task = i, "working on it");
            i * 2
        })
    });
    assert_eq!(out, (0..40).map(|i| i * 2).collect::<Vec<_>>());
    for i in 0..40 {
        let field = format!("task={i}");
        assert!(
            logged.lines().any(|l| l.ends_with(&field)),
            "task {i} not logged:\n{logged}"
        );
    }
}

#[test]
fn tracing_events_in_unordered_tasks_reach_the_callers_subscriber() {
    let (count, logged) = common::logs(tracing::Level::INFO, || {
        parallel!(n_jobs = 2, batch_size = 3, return_as = unordered; for i in 0..20u32 => {
            tracing::info!(task = i, "in the background");
            i
        })
        .count()
    });
    assert_eq!(count, 20);
    for i in 0..20 {
        let field = format!("task={i}");
        assert!(
            logged.lines().any(|l| l.ends_with(&field)),
            "task {i}:\n{logged}"
        );
    }
}

/// `common::logs` for the events of runs. tracing caches each callsite's interest for the
/// whole process, set when a callsite is first reached: reached then by a test's thread without
/// a subscriber, joblet's callsites could be cached as "never" while this test's subscriber is
/// the only one. So a first run reaches them all (a task failing, without the panic hook's
/// output) under a subscriber of its own, which registers them; installing the test's
/// subscriber then recomputes them with it, and the rebuild below closes the window in which
/// another thread was registering one at that moment.
fn run_logs<T>(level: tracing::Level, f: impl FnOnce() -> T) -> (T, String) {
    common::logs(tracing::Level::TRACE, || {
        let _ = panic::catch_unwind(|| {
            parallel!(backend = sequential, batch_size = 1; for i in 0..2 => {
                if i == 1 {
                    panic::resume_unwind(Box::new(()));
                }
            })
        });
    });
    common::logs(level, || {
        tracing::callsite::rebuild_interest_cache();
        f()
    })
}

/// One of joblet's own events in a run, as the fmt subscriber writes it: the fields of its
/// `parallel` span, its message and its own fields.
#[derive(Debug)]
struct RunEvent<'a> {
    span: &'a str,
    message: String,
    fields: HashMap<&'a str, &'a str>,
}

/// joblet's events in `logged`, in order (the tasks' own events are left out).
fn run_events(logged: &str) -> Vec<RunEvent<'_>> {
    logged
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(" parallel{")?;
            let (span, event) = rest.split_once("}: joblet_runtime::parallel: ")?;
            let words = event.split(' ');
            Some(RunEvent {
                span,
                message: words
                    .clone()
                    .take_while(|w| !w.contains('='))
                    .collect::<Vec<_>>()
                    .join(" "),
                fields: words.filter_map(|w| w.split_once('=')).collect(),
            })
        })
        .collect()
}

/// The `tasks` of each `batch done` event, by batch index, checking that the indices are
/// 0, 1, 2, ... and that every batch has its duration. (Two workers may log their batches in
/// an order other than their numbers.)
fn batch_sizes(events: &[RunEvent<'_>]) -> Vec<usize> {
    let mut batches: Vec<(usize, usize)> = events
        .iter()
        .filter(|e| e.message == "batch done")
        .map(|b| {
            assert!(b.fields.contains_key("elapsed"), "{b:?}");
            (
                b.fields["batch"].parse().unwrap(),
                b.fields["tasks"].parse().unwrap(),
            )
        })
        .collect();
    batches.sort_unstable();
    let indices: Vec<usize> = batches.iter().map(|&(index, _)| index).collect();
    assert_eq!(indices, (0..batches.len()).collect::<Vec<_>>());
    batches.into_iter().map(|(_, tasks)| tasks).collect()
}

/// Checks that `events` are one run in the span with `span` fields: a start, `batches`, and a
/// finish with `done` tasks and `failed` failures; the messages and span, in order.
fn assert_run(events: &[RunEvent<'_>], span: &str, batches: &[usize], done: usize, failed: usize) {
    assert!(events.iter().all(|e| e.span == span), "{events:#?}");
    assert_eq!(
        events.first().unwrap().message,
        "run started",
        "{events:#?}"
    );
    let finish = events.last().unwrap();
    assert_eq!(finish.message, "run finished", "{events:#?}");
    assert_eq!(finish.fields["tasks"], done.to_string());
    let failed = (failed > 0).then(|| failed.to_string());
    assert_eq!(finish.fields.get("failed").copied(), failed.as_deref());
    assert!(finish.fields.contains_key("elapsed"));
    assert_eq!(batch_sizes(events), batches, "{events:#?}");
}

#[cfg(feature = "threads")]
#[test]
fn a_threads_run_reports_its_start_batches_and_finish_in_its_span() {
    let (out, logged) = run_logs(tracing::Level::DEBUG, || {
        parallel!(n_jobs = 2, batch_size = 2; for i in 0..8 => {
            tracing::info!(task = i, "in a task");
            i
        })
    });
    assert_eq!(out, (0..8).collect::<Vec<_>>());
    let span = r#"backend="threads" n_jobs=2 tasks=8 batch_size=2 return_as="list""#;
    let events = run_events(&logged);
    // 8 tasks in batches of 2 split into exactly 4 rayon jobs.
    assert_run(&events, span, &[2, 2, 2, 2], 8, 0);
    assert_eq!(events.len(), 6, "{logged}");
    // The tasks' events, logged on the workers, are in the run's span too.
    let in_span = format!(" parallel{{{span}}}: ");
    let tasks: Vec<&str> = logged.lines().filter(|l| l.contains("in a task")).collect();
    assert_eq!(tasks.len(), 8, "{logged}");
    assert!(tasks.iter().all(|l| l.contains(&in_span)), "{logged}");
}

#[test]
fn a_sequential_run_reports_its_start_batches_and_finish_in_its_span() {
    let (out, logged) = run_logs(
        tracing::Level::DEBUG,
        || parallel!(backend = sequential, batch_size = 3; for i in 0..7 => i),
    );
    assert_eq!(out.len(), 7);
    let span = r#"backend="sequential" n_jobs=1 tasks=7 batch_size=3 return_as="list""#;
    let events = run_events(&logged);
    assert_run(&events, span, &[3, 3, 1], 7, 0);
    assert_eq!(events.len(), 5, "{logged}");

    // With `batch_size = auto`, a sequential run is one batch.
    let (_, logged) = run_logs(
        tracing::Level::DEBUG,
        || parallel!(backend = sequential; for i in 0..5 => i),
    );
    let span = r#"backend="sequential" n_jobs=1 tasks=5 batch_size="auto" return_as="list""#;
    assert_run(&run_events(&logged), span, &[5], 5, 0);
}

#[test]
fn a_failed_run_reports_the_tasks_done_and_failed() {
    let (caught, logged) = run_logs(tracing::Level::DEBUG, || {
        panic::catch_unwind(|| {
            parallel!(backend = sequential, batch_size = 2; for i in 0..7 => {
                if i == 3 { panic!("three") }
                i
            })
        })
    });
    assert!(caught.is_err());
    let events = run_events(&logged);
    // The batch the failure cut short is not reported; its completed task counts.
    let span = r#"backend="sequential" n_jobs=1 tasks=7 batch_size=2 return_as="list""#;
    assert_run(&events, span, &[2], 3, 1);
    let error = &events[events.len() - 2];
    assert_eq!(error.message, "task 3 panicked: three");
    assert_eq!(error.fields["task"], "3");
}

#[cfg(all(feature = "processes", unix))]
#[test]
fn a_processes_run_reports_its_batches_and_each_failure_in_its_span() {
    let (out, logged) = run_logs(tracing::Level::DEBUG, || {
        parallel!(backend = processes, n_jobs = 2, batch_size = 3, on_error = collect;
            for i in 0..10 => if i == 4 { panic!("four") } else { i })
    });
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 9);
    let events: Vec<_> = run_events(&logged)
        .into_iter()
        .filter(|e| e.message != "task 4 panicked: four")
        .collect();
    let span = r#"backend="processes" n_jobs=2 tasks=10 batch_size=3 return_as="list""#;
    assert!(events.iter().all(|e| e.span == span), "{events:#?}");
    assert_eq!(events[0].message, "run started");
    let finish = events.last().unwrap();
    assert_eq!(finish.message, "run finished", "{events:#?}");
    assert_eq!(
        (finish.fields["tasks"], finish.fields["failed"]),
        ("9", "1")
    );
    // A batch reports the tasks it completed (2 of the one that held the failure), numbered
    // in the order the two workers completed them.
    let mut sizes = batch_sizes(&events);
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 2, 3, 3], "{events:#?}");
    assert!(logged.contains("ERROR parallel{"), "{logged}");
    assert!(logged.contains("task=4"), "{logged}");
}

#[test]
fn unordered_and_lazy_runs_report_their_start_batches_and_finish() {
    // A consumer that drains the results has seen the run's events: the last `next` waits for
    // the background work to end.
    let (count, logged) = run_logs(tracing::Level::DEBUG, || {
        parallel!(n_jobs = 2, batch_size = 2, return_as = unordered; for i in 0..8u32 => i).count()
    });
    assert_eq!(count, 8);
    let span = if cfg!(feature = "threads") {
        r#"backend="threads" n_jobs=2 tasks=8 batch_size=2 return_as="unordered""#
    } else {
        r#"backend="sequential" n_jobs=1 tasks=8 batch_size=2 return_as="unordered""#
    };
    assert_run(&run_events(&logged), span, &[2, 2, 2, 2], 8, 0);

    let (count, logged) = run_logs(tracing::Level::DEBUG, || {
        parallel!(backend = sequential, batch_size = 3, return_as = unordered; for i in 0..7u32 => i)
            .count()
    });
    assert_eq!(count, 7);
    let span = r#"backend="sequential" n_jobs=1 tasks=7 batch_size=3 return_as="unordered""#;
    assert_run(&run_events(&logged), span, &[3, 3, 1], 7, 0);

    // Dropped early, a lazy run finishes with the tasks it ran.
    let (_, logged) = run_logs(tracing::Level::DEBUG, || {
        let mut results = parallel!(backend = sequential, batch_size = 3, return_as = unordered; for i in 0..7u32 => i);
        assert_eq!(results.next(), Some(0));
        assert_eq!(results.next(), Some(1));
    });
    let span = r#"backend="sequential" n_jobs=1 tasks=7 batch_size=3 return_as="unordered""#;
    assert_run(&run_events(&logged), span, &[2], 2, 0);
}

#[test]
fn at_info_a_run_gives_its_tasks_events_context_and_logs_nothing_itself() {
    let (_, logged) = run_logs(
        tracing::Level::INFO,
        || parallel!(n_jobs = 2; for i in 0..4 => tracing::info!(task = i, "in a task")),
    );
    let lines: Vec<&str> = logged.lines().collect();
    assert_eq!(lines.len(), 4, "{logged}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" parallel{backend=") && l.contains("in a task")),
        "{logged}"
    );
}

const VERBOSE_CHILD: &str = "JOBLET_TEST_VERBOSE_CHILD";

#[test]
fn verbose_child() {
    if std::env::var_os(VERBOSE_CHILD).is_none() {
        return;
    }
    let out = parallel!(n_jobs = 2, batch_size = 100, verbose = 11; for i in 0..1000 => my_task(i));
    assert_eq!(out.len(), 1000);
    let out = parallel!(n_jobs = 2, backend = sequential, verbose = 10; for i in 0..300 => i);
    assert_eq!(out.len(), 300);
}

#[test]
fn verbose_output_follows_joblibs_format() {
    let out = common::child("verbose_child")
        .env(VERBOSE_CHILD, "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[Parallel"))
        .collect();
    let workers = if cfg!(feature = "threads") { 2 } else { 1 };
    let backend = if cfg!(feature = "threads") {
        "ThreadingBackend"
    } else {
        "SequentialBackend"
    };
    assert_eq!(
        lines[0],
        format!(
            "[Parallel(n_jobs={workers})]: Using backend {backend} with {workers} concurrent workers."
        )
    );
    // Above verbose 10, one line per batch of 100, then the closing line.
    let done = lines[..11]
        .iter()
        .filter(|l| l.contains("tasks      | elapsed:"))
        .count();
    assert_eq!(done, 9, "{stderr}");
    assert!(lines[1].starts_with(&format!(
        "[Parallel(n_jobs={workers})]: Done   100 tasks      | elapsed:   "
    )));
    assert!(lines[10].starts_with(&format!(
        "[Parallel(n_jobs={workers})]: Done  1000 out of  1000 | elapsed:"
    )));
    assert!(lines[10].ends_with("s finished"), "{}", lines[10]);
    // The sequential backend reports too.
    assert!(lines[11].contains("Using backend SequentialBackend with 1 concurrent workers."));
    assert!(
        lines
            .last()
            .unwrap()
            .contains("Done   300 out of   300 | elapsed:")
    );
}

#[test]
fn unordered_results_come_as_their_tasks_complete() {
    // With a worker each, the last task finishes first and the first last: 280 ms apart from
    // the others, a margin that a loaded 2-core machine does not eat.
    let out: Vec<u64> = parallel!(n_jobs = 6, batch_size = 1, return_as = unordered;
    for i in 0..6u64 => {
        let ms = match i { 0 => 600, 5 => 20, _ => 300 };
        std::thread::sleep(Duration::from_millis(ms));
        i
    })
    .collect();
    let mut sorted = out.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 2, 3, 4, 5]);
    if cfg!(feature = "threads") {
        assert_eq!(out.first(), Some(&5), "{out:?}");
        assert_eq!(out.last(), Some(&0), "{out:?}");
    } else {
        assert_eq!(out, sorted);
    }
}

#[test]
fn unordered_panics_reach_the_consumer_and_dropping_cancels_the_rest() {
    let caught = panic::catch_unwind(|| {
        parallel!(n_jobs = 2, return_as = unordered; for i in 0..10u32 => {
            if i == 4 { panic!("four") }
            i
        })
        .count()
    });
    let failure = caught.unwrap_err().downcast::<TaskPanic>().unwrap();
    assert_eq!((failure.index(), failure.message()), (4, Some("four")));

    static RAN: AtomicUsize = AtomicUsize::new(0);
    let mut results = parallel!(n_jobs = 2, batch_size = 1, return_as = unordered;
    for i in 0..1000u32 => {
        RAN.fetch_add(1, SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        i
    });
    assert!(results.next().is_some());
    drop(results);
    std::thread::sleep(Duration::from_millis(50));
    let ran = RAN.load(SeqCst);
    assert!(ran < 200, "{ran} tasks ran after the consumer left");
}

#[test]
fn a_progress_bar_run_gives_the_same_results() {
    let out = parallel!(n_jobs = 2, progress = true; for i in 0..5000 => my_task(i));
    assert_eq!(out, (0..5000).map(my_task).collect::<Vec<_>>());
}

#[test]
fn unordered_inside_a_task_does_not_deadlock() {
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sums = parallel!(n_jobs = 2; for i in 0..4u32 => {
            parallel!(n_jobs = 2, return_as = unordered; for j in 0..3u32 => j + i).sum::<u32>()
        });
        done.send(sums).unwrap();
    });
    let sums = wait
        .recv_timeout(Duration::from_secs(20))
        .expect("deadlocked");
    assert_eq!(sums, vec![3, 6, 9, 12]);
}

#[cfg(feature = "threads")]
#[test]
fn n_jobs_holds_inside_the_users_own_rayon_pool() {
    let theirs = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let used = theirs.install(|| threads_used(2));
    assert_eq!(used.len(), 2);
}

/// `on_error` on threads and sequential: `collect` returns every task's result or failure at
/// its index, `continue` runs every task before raising the first failure in input order.
#[test]
fn on_error_collects_or_continues_past_failures() {
    let collected = parallel!(n_jobs = 2, batch_size = 1, on_error = collect;
        for i in 0..6 => if i % 4 == 1 { panic!("odd one") } else { i });
    let failed: Vec<usize> = collected
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.index())
        .collect();
    assert_eq!(failed, [1, 5]);
    assert_eq!(
        collected[5].as_ref().unwrap_err().to_string(),
        "task 5 panicked: odd one"
    );
    assert_eq!(collected[4], Ok(4));
    for threads in [false, true] {
        let ran = AtomicUsize::new(0);
        let task = |i: usize| {
            ran.fetch_add(1, SeqCst);
            if i == 3 || i == 5 {
                panic!("task {i} fails");
            }
            i
        };
        let failed = panic::catch_unwind(panic::AssertUnwindSafe(|| {
            if threads {
                parallel!(n_jobs = 2, batch_size = 1, on_error = continue; for i in 0..8usize => task(i))
            } else {
                parallel!(backend = sequential, on_error = continue; for i in 0..8usize => task(i))
            }
        }))
        .unwrap_err()
        .downcast::<TaskPanic>()
        .unwrap();
        assert_eq!(
            (failed.index(), failed.message()),
            (3, Some("task 3 fails"))
        );
        assert_eq!(ran.into_inner(), 8, "every task ran (threads: {threads})");
    }
}
