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

/// The failure a caught panic of `parallel!` was raised for.
fn failure_of(payload: Box<dyn std::any::Any + Send>) -> TaskPanic {
    TaskPanic::of(&*payload).expect("the panic of a task")
}

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

/// The distinct threads that ran 60 tasks of ~2 ms each. With the threads backend, a task
/// also waits (at most 5 s in all) until `n_jobs` threads have run one, so that every worker
/// takes a task even when the machine is too busy to wake one in time; a pool with more
/// threads than `n_jobs` still shows, as more threads.
fn threads_used(n_jobs: i64) -> HashSet<ThreadId> {
    let seen = Mutex::new(HashSet::new());
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let wanted = if cfg!(feature = "threads") {
        n_jobs as usize
    } else {
        1
    };
    parallel!(n_jobs = n_jobs, batch_size = 1; for _ in 0..60 => {
        std::thread::sleep(Duration::from_millis(2));
        seen.lock().unwrap().insert(std::thread::current().id());
        while seen.lock().unwrap().len() < wanted && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
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
    let payload = caught.unwrap_err();
    // The payload is a message naming the task, as `should_panic(expected = ...)` reads it.
    assert_eq!(
        payload.downcast_ref::<String>().unwrap(),
        "task 17 panicked: task 17 failed"
    );
    let failure = failure_of(payload);
    assert_eq!(failure.index(), 17);
    assert_eq!(failure.message(), Some("task 17 failed"));
    assert_eq!(failure.to_string(), "task 17 panicked: task 17 failed");
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
    let outer = failure_of(caught.unwrap_err());
    assert_eq!(outer.index(), 2);
    // The inner failure's message names its task in turn.
    assert_eq!(outer.message(), Some("task 3 panicked: deep"));
    assert_eq!(outer.to_string(), "task 2 panicked: task 3 panicked: deep");
}

#[test]
fn the_sequential_backend_reports_panics_the_same_way() {
    let caught = panic::catch_unwind(
        || parallel!(backend = sequential; for i in 0..10 => if i == 3 { panic!("three") } else { i }),
    );
    let failure = failure_of(caught.unwrap_err());
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

/// Runs `run`, whose task 3 panics with "three" in batches of 2, and checks its events: the
/// run's `span`, one batch reported (`[0, 1]`), three tasks done (the batch the failure cut
/// short is not reported; its completed task counts) and one failed, at its index.
fn assert_failed_at_three<R>(run: impl FnOnce() -> R + panic::UnwindSafe, span: &str) {
    let (caught, logged) = run_logs(tracing::Level::DEBUG, || panic::catch_unwind(run));
    assert!(caught.is_err());
    let events = run_events(&logged);
    assert_run(&events, span, &[2], 3, 1);
    let error = &events[events.len() - 2];
    assert_eq!(error.message, "task 3 panicked: three");
    assert_eq!(error.fields["task"], "3");
}

#[test]
fn a_failed_run_reports_the_tasks_done_and_failed() {
    assert_failed_at_three(
        || {
            parallel!(backend = sequential, batch_size = 2; for i in 0..7 => {
                if i == 3 { panic!("three") }
                i
            })
        },
        r#"backend="sequential" n_jobs=1 tasks=7 batch_size=2 return_as="list""#,
    );
}

/// On threads, a batch counts its tasks as a whole: one that a failure cuts short counts those
/// before the failed task, and the batches after it never start. (One worker takes the
/// batches in input order: 8 tasks in batches of 2 are exactly 4 rayon jobs, `[0, 1]`, then
/// `[2, 3]`, which fails at 3.)
#[cfg(feature = "threads")]
#[test]
fn a_failed_threads_run_counts_the_tasks_done_before_the_failure() {
    assert_failed_at_three(
        || {
            parallel!(n_jobs = 1, batch_size = 2; for i in 0..8 => {
                if i == 3 { panic!("three") }
                i
            })
        },
        r#"backend="threads" n_jobs=1 tasks=8 batch_size=2 return_as="list""#,
    );
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
    // An input that does not tell its length.
    let out = parallel!(n_jobs = 2, batch_size = 100, verbose = 11;
        for i in (0..1000).filter(|_| true) => my_task(i));
    assert_eq!(out.len(), 1000);
    // From 50, joblib writes to stdout.
    let out = parallel!(backend = sequential, verbose = 50; for i in 0..3 => i);
    assert_eq!(out.len(), 3);
}

/// The spans of joblib's `test_parallel_pretty_print` pattern, `(Done\s+\d+ out of \d+ \|)`,
/// in `line`.
fn pretty_print_spans(line: &str) -> Vec<usize> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("Done") {
        let start = from + at;
        from = start + 4;
        let rest = &line[from..];
        let spaces = rest.len() - rest.trim_start().len();
        let rest = &rest[spaces..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Some(rest) = rest[digits..].strip_prefix(" out of ") else {
            continue;
        };
        let total = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if spaces > 0 && digits > 0 && total > 0 && rest[total..].starts_with(" |") {
            spans.push(4 + spaces + digits + " out of ".len() + total + " |".len());
        }
    }
    spans
}

/// The number of tasks a `Done` line reports.
fn count(line: &str) -> usize {
    let after = &line[line.find("Done").unwrap() + 4..];
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// `| elapsed: ` and joblib's `short_format_time`, `" %5.1fs"`: `"    0.0s"`.
fn is_elapsed(text: &str) -> bool {
    let Some(time) = text.strip_prefix("| elapsed: ") else {
        return false;
    };
    let time = time.strip_suffix(" finished").unwrap_or(time);
    time.len() == 7 && time.ends_with('s') && time[..6].trim().parse::<f64>().is_ok()
}

#[test]
fn verbose_output_follows_joblibs_format() {
    let out = common::child("verbose_child")
        .env(VERBOSE_CHILD, "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut lines: std::collections::VecDeque<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[Parallel"))
        .collect();
    let threads = cfg!(feature = "threads");
    let on_threads = format!("[Parallel(n_jobs={})]: ", if threads { 2 } else { 1 });
    let on_one = "[Parallel(n_jobs=1)]: ";
    // Each run's lines: `Done N out of M`, counts as wide as the total, and joblib's time.
    let mut expect = |prefix: &str, text: String, finished: bool| {
        let line = lines
            .pop_front()
            .unwrap_or_else(|| panic!("{text:?} missing"));
        let head = format!("{prefix}{text} ");
        assert!(line.starts_with(&head), "{line:?} for {head:?}");
        if text == "Using" {
            return line.to_owned();
        }
        let elapsed = line.find("| elapsed: ").unwrap_or(line.len());
        assert!(is_elapsed(&line[elapsed..]), "{line:?}");
        assert_eq!(line.ends_with(" finished"), finished, "{line:?}");
        line.to_owned()
    };
    let mut done_out_of = Vec::new();
    // joblib's sequential runs do not say which backend they use.
    if threads {
        let using = expect(&on_threads, "Using".into(), false);
        assert_eq!(
            using,
            format!("{on_threads}Using backend ThreadingBackend with 2 concurrent workers.")
        );
    }
    // Above verbose 10, a line per batch of 100, then the closing line.
    // Workers may print their lines in another order than their counts.
    let mut counts = Vec::new();
    for _ in (100..1000).step_by(100) {
        let line = expect(&on_threads, "Done".into(), false);
        let done = count(&line);
        assert!(
            line.contains(&format!("Done {done:>4} out of 1000 |")),
            "{line}"
        );
        counts.push(done);
        done_out_of.push(line);
    }
    counts.sort_unstable();
    assert_eq!(counts, (100..1000).step_by(100).collect::<Vec<_>>());
    done_out_of.push(expect(&on_threads, "Done 1000 out of 1000".into(), true));
    // The sequential run, its lines thinned out at verbose 10 as joblib's are.
    let mut seen = 0;
    loop {
        let line = expect(on_one, "Done".into(), false);
        let done: usize = line[on_one.len() + 4..].trim_start()[..3]
            .trim()
            .parse()
            .unwrap();
        assert!(done > seen, "{line}");
        seen = done;
        assert!(
            line.contains(&format!("Done {done:>3} out of 300 |")),
            "{line}"
        );
        done_out_of.push(line);
        if done > 250 {
            break;
        }
    }
    done_out_of.push(expect(on_one, "Done 300 out of 300".into(), true));
    // Without a total, `tasks` in its place, as wide (joblib's width is then 3).
    if threads {
        expect(&on_threads, "Using".into(), false);
    }
    // (Not knowing it is the last, the last batch reports too, as in joblib.)
    let mut counts = Vec::new();
    for _ in (100..=1000).step_by(100) {
        let line = expect(&on_threads, "Done".into(), false);
        let done = count(&line);
        assert!(
            line.contains(&format!("Done {done:>3} tasks      |")),
            "{line}"
        );
        counts.push(done);
    }
    counts.sort_unstable();
    assert_eq!(counts, (100..=1000).step_by(100).collect::<Vec<_>>());
    expect(&on_threads, "Done 1000 out of 1000".into(), true);
    // joblib's own check, `test_parallel_pretty_print`: within a run, every match of
    // `(Done\s+\d+ out of \d+ \|)` has the same length.
    let lengths = |total: &str| -> HashSet<usize> {
        done_out_of
            .iter()
            .filter(|l| l.contains(total))
            .flat_map(|l| pretty_print_spans(l))
            .collect()
    };
    assert_eq!(lengths("out of 1000").len(), 1, "{stderr}");
    assert_eq!(lengths("out of 300").len(), 1, "{stderr}");
    // From verbose 50, on stdout.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("[Parallel(n_jobs=1)]: Done 3 out of 3 | elapsed:    0.0s finished"),
        "{stdout}"
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
    let failure = failure_of(caught.unwrap_err());
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
        .unwrap_err();
        let failed = failure_of(failed);
        assert_eq!(
            (failed.index(), failed.message()),
            (3, Some("task 3 fails"))
        );
        assert_eq!(ran.into_inner(), 8, "every task ran (threads: {threads})");
    }
}

/// The items of an input that does not tell its length, counting how many were read, and
/// the most read ahead of the tasks done.
struct Counted {
    read: AtomicUsize,
    done: AtomicUsize,
    ahead: AtomicUsize,
}

impl Counted {
    const fn new() -> Self {
        Counted {
            read: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            ahead: AtomicUsize::new(0),
        }
    }

    /// `0..n` (or endless), read one item at a time, without an index.
    fn items(&'static self, n: Option<u64>) -> impl Iterator<Item = u64> + Send + 'static {
        (0..n.unwrap_or(u64::MAX)).filter(move |_| {
            let read = self.read.fetch_add(1, SeqCst) + 1;
            let ahead = read - self.done.load(SeqCst);
            self.ahead.fetch_max(ahead, SeqCst);
            true
        })
    }

    fn task(&self, i: u64) -> u64 {
        self.done.fetch_add(1, SeqCst);
        i * 2
    }
}

#[test]
fn a_generator_yields_in_input_order_as_soon_as_each_result_is_ready() {
    // Task 1 waits until the consumer has task 0's result: a generator that held it back
    // until more were done would wait forever.
    static GOT_FIRST: AtomicUsize = AtomicUsize::new(0);
    let mut results = parallel!(n_jobs = 2, batch_size = 1, return_as = generator;
    for i in 0..6u64 => {
        if i == 1 {
            let waited = std::time::Instant::now();
            while GOT_FIRST.load(SeqCst) == 0 {
                assert!(waited.elapsed() < Duration::from_secs(20), "result 0 held back");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Later tasks finish first, and still come in input order.
        std::thread::sleep(Duration::from_millis(5 * (6 - i)));
        i * 10
    });
    assert_eq!(results.next(), Some(0));
    GOT_FIRST.store(1, SeqCst);
    assert_eq!(results.collect::<Vec<_>>(), [10, 20, 30, 40, 50]);
    for n_jobs in [1, 3] {
        let out: Vec<String> = parallel!(n_jobs = n_jobs, return_as = generator;
            for s in ["a", "bb", "ccc"].map(String::from) => s.repeat(2))
        .collect();
        assert_eq!(out, ["aa", "bbbb", "cccccc"]);
    }
    let sequential: Vec<u64> =
        parallel!(backend = sequential, return_as = generator; for i in 0..5u64 => i + 1).collect();
    assert_eq!(sequential, [1, 2, 3, 4, 5]);
}

#[test]
fn a_generator_over_an_endless_iterator_stops_when_dropped_after_1000_results() {
    static INPUT: Counted = Counted::new();
    let results = parallel!(n_jobs = 2, batch_size = 10, pre_dispatch = 4, return_as = generator;
        for i in INPUT.items(None) => INPUT.task(i));
    let first: Vec<u64> = results.take(1000).collect();
    assert_eq!(first, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
    // Dropped: at most the 4 batches dispatched ahead were read, and nothing runs after.
    let read = INPUT.read.load(SeqCst);
    assert!(read <= 1000 + 4 * 10, "{read} items read");
    std::thread::sleep(Duration::from_millis(50));
    let done = INPUT.done.load(SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(INPUT.done.load(SeqCst), done, "tasks ran after the drop");
    assert!(done <= read);

    static SEQUENTIAL: Counted = Counted::new();
    let first: Vec<u64> = parallel!(backend = sequential, return_as = generator;
        for i in SEQUENTIAL.items(None) => SEQUENTIAL.task(i))
    .take(1000)
    .collect();
    assert_eq!(first.len(), 1000);
    assert_eq!(SEQUENTIAL.read.load(SeqCst), 1000);
}

#[test]
fn lists_and_unordered_runs_read_inputs_without_an_index_a_few_batches_ahead() {
    static LIST: Counted = Counted::new();
    let out = parallel!(n_jobs = 2, batch_size = 10, pre_dispatch = 4;
        for i in LIST.items(Some(10_000)) => LIST.task(i));
    assert_eq!(out, (0..10_000).map(|i| i * 2).collect::<Vec<_>>());
    // Never more than the batches in flight read ahead of the tasks done (on one thread, a
    // batch at a time).
    let ahead = LIST.ahead.load(SeqCst);
    assert!(ahead <= 4 * 10, "{ahead} items read ahead of the tasks");

    static UNORDERED: Counted = Counted::new();
    let mut out: Vec<u64> =
        parallel!(n_jobs = 2, batch_size = 10, pre_dispatch = 4, return_as = unordered;
        for i in UNORDERED.items(Some(10_000)) => UNORDERED.task(i))
        .collect();
    out.sort_unstable();
    assert_eq!(out, (0..10_000).map(|i| i * 2).collect::<Vec<_>>());
    let ahead = UNORDERED.ahead.load(SeqCst);
    assert!(ahead <= 4 * 10, "{ahead} items read ahead of the tasks");

    // With `batch_size = auto`, batches start at one task: the first tasks run before much of
    // the input is read.
    static AUTO: Counted = Counted::new();
    let mut results = parallel!(n_jobs = 2, return_as = generator;
        for i in AUTO.items(Some(100_000)) => AUTO.task(i));
    assert_eq!(results.next(), Some(0));
    let read = AUTO.read.load(SeqCst);
    assert!(read <= 4 * 2, "{read} items read before the first result");
    assert_eq!(results.count(), 99_999);
}

#[test]
#[should_panic(expected = "task 777 panicked: boom at 777")]
fn a_task_panic_is_what_should_panic_expects() {
    parallel!(n_jobs = 2; for i in 0..1000 => if i == 777 { panic!("boom at {i}") } else { i });
}

#[test]
#[should_panic(expected = "task 777 panicked: boom at 777")]
fn a_task_panic_on_sequential_is_what_should_panic_expects() {
    parallel!(backend = sequential; for i in 0..1000 => if i == 777 { panic!("boom at {i}") } else { i });
}

#[test]
#[should_panic(expected = "task 7 panicked: seven")]
fn a_generator_raises_a_task_panic_that_should_panic_expects() {
    let _all: Vec<u32> = parallel!(n_jobs = 2, return_as = generator;
        for i in 0..100u32 => if i == 7 { panic!("seven") } else { i })
    .collect();
}

#[test]
fn a_payload_that_is_not_a_string_passes_through_unchanged() {
    for backend in ["threads", "sequential", "generator", "lazy list"] {
        let caught = panic::catch_unwind(|| {
            let task = |i: u32| {
                if i == 5 {
                    panic::panic_any(42u32);
                }
                i
            };
            match backend {
                "threads" => parallel!(n_jobs = 2; for i in 0..10u32 => task(i)),
                "sequential" => parallel!(backend = sequential; for i in 0..10u32 => task(i)),
                "generator" => parallel!(n_jobs = 2, return_as = generator;
                    for i in 0..10u32 => if i == 5 { panic::panic_any(42u32) } else { i })
                .collect(),
                _ => parallel!(n_jobs = 2; for i in (0..10u32).filter(|_| true) => task(i)),
            }
        });
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42), "{backend}");
        let failure = failure_of(payload);
        assert_eq!((failure.index(), failure.message()), (5, None), "{backend}");
        assert_eq!(failure.to_string(), "task 5 panicked");
    }
}

const BOMB_CHILD: &str = "JOBLET_TEST_BOMB_CHILD";

/// A panic payload whose `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("a payload that panics when dropped");
    }
}

#[test]
fn bombs_child() {
    if std::env::var_os(BOMB_CHILD).is_none() {
        return;
    }
    // Two tasks panic with a `Bomb` at once: the second payload is dropped by the run.
    let both = std::sync::Barrier::new(2);
    let task = |i: usize| {
        if i == 3 || i == 5 {
            both.wait();
            panic::panic_any(Bomb);
        }
        i
    };
    // A generator raising the first drops the second, still in the run, as it unwinds.
    let generator = || {
        let both = std::sync::Barrier::new(2);
        parallel!(n_jobs = 2, batch_size = 1, return_as = generator; for i in 0..8usize => {
            if i == 3 || i == 5 {
                both.wait();
                panic::panic_any(Bomb);
            }
            i
        })
        .collect::<Vec<_>>()
    };
    let kinds: [&dyn Fn() -> Vec<usize>; 5] = [
        &generator,
        &|| parallel!(n_jobs = 2, batch_size = 1; for i in 0..8usize => task(i)),
        &|| parallel!(n_jobs = 2, batch_size = 1; for i in (0..8usize).filter(|_| true) => task(i)),
        &|| parallel!(n_jobs = 2, batch_size = 1, on_error = continue; for i in 0..8usize => task(i)),
        &|| parallel!(backend = sequential, on_error = continue; for i in 0..8usize => if i == 3 || i == 5 { panic::panic_any(Bomb) } else { i }),
    ];
    for (k, run) in kinds.iter().enumerate() {
        // The sequential run has no second thread to meet at the barrier.
        if k == 4 || cfg!(feature = "threads") {
            let caught = panic::catch_unwind(panic::AssertUnwindSafe(run));
            // The caller owns the first payload: leaked here, since it panics when dropped.
            std::mem::forget(caught.unwrap_err());
        }
    }
    println!("no abort");
}

#[test]
fn a_payload_whose_drop_panics_never_aborts_the_process() {
    let out = common::child("bombs_child")
        .env(BOMB_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("no abort"),
        "{:?}: {}{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn n_jobs_0_is_refused_on_every_backend() {
    let zero = std::hint::black_box(0);
    let refused = |run: &dyn Fn()| {
        let caught = panic::catch_unwind(panic::AssertUnwindSafe(run)).unwrap_err();
        let message = caught.downcast_ref::<String>().unwrap().clone();
        assert!(
            message.starts_with("`n_jobs = 0` is not valid"),
            "{message}"
        );
    };
    refused(&|| drop(parallel!(n_jobs = zero; for i in 0..3 => i)));
    refused(&|| drop(parallel!(n_jobs = zero, backend = sequential; for i in 0..3 => i)));
    refused(&|| drop(parallel!(n_jobs = zero, return_as = generator; for i in 0..3 => i)));
    refused(&|| {
        drop(
            parallel!(n_jobs = zero, backend = sequential, return_as = unordered; for i in 0..3 => i),
        )
    });
    #[cfg(all(feature = "processes", unix))]
    refused(&|| drop(parallel!(n_jobs = zero, backend = processes; for i in 0..3u32 => i)));
}

#[test]
fn cpu_count_and_effective_n_jobs_are_joblibs() {
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(joblet::cpu_count(), cores);
    assert_eq!(joblet::effective_n_jobs(-1), Ok(cores));
    assert_eq!(joblet::effective_n_jobs(-2), Ok((cores - 1).max(1)));
    assert_eq!(joblet::effective_n_jobs(5), Ok(5));
    assert_eq!(
        joblet::effective_n_jobs(0).unwrap_err().to_string(),
        "`n_jobs = 0` is not valid: give a number of workers, or -1 for all cores, -2 for all but one"
    );
}

const N_JOBS_CHILD: &str = "JOBLET_TEST_N_JOBS_CHILD";

#[test]
fn n_jobs_child() {
    let Some(expected) = std::env::var_os(N_JOBS_CHILD) else {
        return;
    };
    let expected: usize = expected.to_str().unwrap().parse().unwrap();
    // A call without `n_jobs` takes the environment's; one with it, its own.
    let seen = Mutex::new(HashSet::new());
    parallel!(batch_size = 1; for _ in 0..60 => {
        std::thread::sleep(Duration::from_millis(2));
        seen.lock().unwrap().insert(std::thread::current().id());
    });
    let workers = seen.into_inner().unwrap().len();
    let threads = if cfg!(feature = "threads") {
        expected
    } else {
        1
    };
    assert_eq!(workers, threads);
    assert_eq!(threads_used(1).len(), 1);
    println!("n_jobs checked");
}

#[test]
fn joblet_n_jobs_sets_the_default_n_jobs() {
    let run = |value: &str| {
        let out = common::child("n_jobs_child")
            .env(N_JOBS_CHILD, if value == "3" { "3" } else { "all" })
            .env(joblet::N_JOBS_ENV, value)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = run("3");
    assert!(ok && text.contains("n_jobs checked"), "{text}");
    // A value that is no number of workers is left out: every core, as without it.
    let cores = joblet::cpu_count().to_string();
    let out = common::child("n_jobs_child")
        .env(N_JOBS_CHILD, &cores)
        .env(joblet::N_JOBS_ENV, "zero")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "threads")]
#[test]
fn a_run_given_up_while_its_tasks_run_does_not_delay_the_next_call() {
    for generator in [false, true] {
        // The given-up run's tasks hold both workers of the pool until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Mutex::new(held);
        let started = AtomicUsize::new(0);
        let started = &*Box::leak(Box::new(started));
        let held = &*Box::leak(Box::new(held));
        let task = move |i: u32| {
            if i > 0 {
                started.fetch_add(1, SeqCst);
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(30));
            }
            i
        };
        let busy = || {
            while started.load(SeqCst) < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // Given up once both workers run its tasks.
        if generator {
            let mut results = parallel!(n_jobs = 2, batch_size = 1, return_as = generator;
                for i in 0..10u32 => task(i));
            assert_eq!(results.next(), Some(0));
            busy();
        } else {
            let mut results = parallel!(n_jobs = 2, batch_size = 1, return_as = unordered;
                for i in 0..10u32 => task(i));
            assert!(results.next().is_some());
            busy();
        }
        // The next call with the same `n_jobs` runs now, not when they end.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            done.send(parallel!(n_jobs = 2; for i in 0..100u32 => i + 1))
                .unwrap();
        });
        let next = finished.recv_timeout(Duration::from_secs(20));
        drop(release);
        assert_eq!(next.expect("the next call waited").len(), 100);
    }
}
