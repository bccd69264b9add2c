//! A cache in an object store, against a real S3 server: `s3s-fs` (an S3 server over a local
//! folder), started by each test on a port of its own and stopped by its PID when the test
//! ends. Install it with `cargo install s3s-fs@0.14.1 --locked --features binary` (`.ci/run`
//! does); `JOBLET_S3S_FS` may name the binary.
//!
//! Each scenario runs in child processes (this test binary run again, its `child` test), each
//! with a local tier of its own, as separate machines would be: the environment (`AWS_*`,
//! `JOBLET_CACHE_DIR`, `JOBLET_LOCAL_TIER`) is theirs alone.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use joblet::{Array, cached, parallel};

const CALLS: &str = "JOBLET_TEST_CALLS";
const BUCKET: &str = "joblet-test";

static COMPUTED: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn square(n: u64) -> u64 {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    n * n
}

/// 8 MB: one request.
#[cached]
fn series(n: u64) -> Vec<f64> {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    (0..1_000_000u64).map(|i| (i * n) as f64).collect()
}

/// 24 MB: an upload in parts.
#[cached]
fn long_series(n: u64) -> Vec<f64> {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    (0..3_000_000u64).map(|i| (i + n) as f64).collect()
}

#[cached]
fn table(n: u64) -> Array<f64> {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    Array::from(
        (0..1_000_000u64)
            .map(|i| (i % 1000 + n) as f64)
            .collect::<Vec<_>>(),
    )
}

/// Long enough that two machines started together both miss it, and both store it.
#[cached]
fn slow(n: u64) -> u64 {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    n + 1
}

/// Its cache named in the attribute, not by `JOBLET_CACHE_DIR`.
#[cached(dir = "s3://joblet-test/explicit")]
fn cube(n: u64) -> u64 {
    COMPUTED.fetch_add(1, Ordering::SeqCst);
    n * n * n
}

/// What a call returns, in one number, so that runs compare.
fn call(name: &str, n: u64) -> f64 {
    match name {
        "square" => square(n) as f64,
        "series" => series(n).iter().sum(),
        "long_series" => long_series(n).iter().sum(),
        "table" => table(n).iter().sum(),
        "slow" => slow(n) as f64,
        "cube" => cube(n) as f64,
        "is_cached" => f64::from(u8::from(square::is_cached(n))),
        "clear" => square::clear().map_or(-1.0, |()| 0.0),
        _ => panic!("no function {name}"),
    }
}

/// Runs the calls in `JOBLET_TEST_CALLS` (`square:3,series:1`, `pool:8` for `square` of
/// `100..108` on worker processes, `pause:50` to wait 50 ms), printing for each a line
/// `RESULT <call> <value> <computed|loaded> <ms>`.
#[test]
fn child() {
    let Ok(calls) = std::env::var(CALLS) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .without_time()
        .init();
    for item in calls.split(',') {
        let (name, arg) = item.split_once(':').unwrap();
        let n: u64 = arg.parse().unwrap();
        let start = Instant::now();
        let before = COMPUTED.load(Ordering::SeqCst);
        let value = match name {
            "pause" => {
                std::thread::sleep(Duration::from_millis(n));
                continue;
            }
            "pool" => {
                let squares =
                    parallel!(n_jobs = 2, backend = processes; for i in 100..100 + n => square(i));
                squares.iter().sum::<u64>() as f64
            }
            name => call(name, n),
        };
        let how = if COMPUTED.load(Ordering::SeqCst) > before {
            "computed"
        } else {
            "loaded"
        };
        let ms = start.elapsed().as_millis();
        println!("RESULT {item} {value} {how} {ms}");
    }
    joblet::flush();
}

/// An `s3s-fs` server on 127.0.0.1, over a folder of its own, with the bucket made.
struct Server {
    child: Child,
    port: u16,
    root: PathBuf,
    /// Whether requests must be signed with [`KEY`] and [`SECRET`].
    auth: bool,
}

const KEY: &str = "joblet-test-key";
const SECRET: &str = "joblet-test-secret";

impl Server {
    fn start(name: &str, auth: bool) -> Server {
        let root = common::dir(&format!("s3-{name}"));
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        Server::start_at(root, None, auth)
    }

    /// Starts the server over `root`, on `port` (a free one when `None`).
    fn start_at(root: PathBuf, port: Option<u16>, auth: bool) -> Server {
        let port = port.unwrap_or_else(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        });
        let binary = std::env::var_os("JOBLET_S3S_FS").unwrap_or_else(|| "s3s-fs".into());
        let mut cmd = Command::new(&binary);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        if auth {
            cmd.args(["--access-key", KEY, "--secret-key", SECRET]);
        }
        let child = cmd
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; install it with `cargo install s3s-fs@0.14.1 --locked --features binary`",
                    binary.to_string_lossy()
                )
            });
        let server = Server {
            child,
            port,
            root,
            auth,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The environment a process reaches the server with.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ]
    }

    /// Stops the server, by its PID.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The entry files in the bucket, below `prefix`.
    fn objects(&self, prefix: &str) -> Vec<PathBuf> {
        common::files(&self.root.join(BUCKET).join(prefix), |p| {
            p.extension().is_some_and(|x| x == "jbl")
        })
    }

    /// Writes `body` at `key` with a plain, unsigned PUT (the server takes it without auth).
    fn plain_put(&self, key: &str, body: &[u8]) {
        assert!(!self.auth);
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "PUT /{BUCKET}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a child run printed.
struct Run {
    /// `call -> (value, computed, ms)`.
    results: HashMap<String, (f64, bool, u128)>,
    stderr: String,
}

impl Run {
    fn computed(&self) -> usize {
        self.results.values().filter(|r| r.1).count()
    }

    fn values(&self) -> HashMap<String, f64> {
        self.results.iter().map(|(k, v)| (k.clone(), v.0)).collect()
    }

    fn warnings(&self) -> usize {
        self.stderr.matches("WARN").count()
    }
}

/// A machine: this test binary's `child`, to run `calls` with the local tier `tier` and its
/// cache at `url`, its output piped.
fn machine(server: &Server, url: &str, tier: &Path, calls: &str) -> Command {
    let mut cmd = common::child("child");
    cmd.envs(server.env())
        .env("JOBLET_CACHE_DIR", url)
        .env("JOBLET_LOCAL_TIER", tier)
        .env("JOBLET_REMOTE_TIMEOUT", "2s")
        .env(CALLS, calls)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `calls` on a machine (see [`machine`]), with `env` besides.
fn run(server: &Server, url: &str, tier: &Path, calls: &str, env: &[(&str, &str)]) -> Run {
    let out = machine(server, url, tier, calls)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let results = stdout
        .lines()
        // The first follows libtest's `test child ... ` on its line.
        .filter_map(|l| l.split_once("RESULT ").map(|(_, result)| result))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let result = (
                f[1].parse().unwrap(),
                f[2] == "computed",
                f[3].parse().unwrap(),
            );
            (f[0].to_owned(), result)
        })
        .collect();
    Run { results, stderr }
}

fn url(prefix: &str) -> String {
    format!("s3://{BUCKET}/{prefix}")
}

const MIXED: &str = "square:3,square:4,series:2,long_series:1,table:5";

#[test]
fn two_machines_share_results_through_the_bucket() {
    let server = Server::start("share", true);
    let tiers = common::dir("share-tiers");
    let first = run(&server, &url("cache"), &tiers.join("a"), MIXED, &[]);
    assert_eq!(first.computed(), 5, "{}", first.stderr);
    assert_eq!(first.warnings(), 0, "{}", first.stderr);
    assert_eq!(server.objects("cache").len(), 5);

    // Another machine: its own, empty local tier. It computes nothing.
    let second = run(&server, &url("cache"), &tiers.join("b"), MIXED, &[]);
    assert_eq!(second.computed(), 0, "{}", second.stderr);
    assert_eq!(second.values(), first.values());
    // Now in its local tier, entry files like a folder's: an `Array` is mapped from there.
    assert_eq!(common::entries(&tiers.join("b")).len(), 5);

    // Its next run loads from the local tier, even with the server gone.
    drop(server);
    let third = run(&Server::dead(), &url("cache"), &tiers.join("b"), MIXED, &[]);
    assert_eq!(third.computed(), 0, "{}", third.stderr);
    assert_eq!(third.values(), first.values());
}

impl Server {
    /// No server: its port refuses connections.
    fn dead() -> Server {
        let mut server = Server::start("dead", true);
        server.stop();
        server
    }
}

#[test]
fn the_first_of_two_machines_storing_a_key_stays() {
    let server = Server::start("race", true);
    let tiers = common::dir("race-tiers");
    let start = |tier: &str| {
        let mut cmd = machine(&server, &url("c"), &tiers.join(tier), "slow:1");
        cmd.spawn().unwrap()
    };
    let (a, b) = (start("a"), start("b"));
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stdout.contains("RESULT slow:1 2 computed"), "{stdout}");
        // The second create is refused (412), which is no failure.
        assert!(!stderr.contains("WARN"), "{stderr}");
    }
    assert_eq!(server.objects("c").len(), 1);
    let third = run(&server, &url("c"), &tiers.join("c"), "slow:1", &[]);
    assert_eq!(third.computed(), 0, "{}", third.stderr);
}

#[test]
fn controls_work_against_the_bucket() {
    let server = Server::start("controls", true);
    let tiers = common::dir("controls-tiers");
    let stored = run(&server, &url("c"), &tiers.join("a"), "square:3,cube:2", &[]);
    assert_eq!(stored.computed(), 2);
    assert_eq!(server.objects("explicit").len(), 1, "`dir = \"s3://...\"`");
    let cube = run(&server, &url("c"), &tiers.join("b"), "cube:2", &[]);
    assert_eq!(cube.computed(), 0);
    // Another machine: asked, then cleared, then asked again.
    let b = run(
        &server,
        &url("c"),
        &tiers.join("b"),
        "is_cached:3,is_cached:4,clear:0",
        &[],
    );
    assert_eq!(b.values()["is_cached:3"], 1.0);
    assert_eq!(b.values()["is_cached:4"], 0.0);
    assert_eq!(b.values()["clear:0"], 0.0);
    assert!(server.objects("c").is_empty());
    for tier in ["a", "b"] {
        let after = run(&server, &url("c"), &tiers.join(tier), "is_cached:3", &[]);
        let left = if tier == "a" { 1.0 } else { 0.0 };
        // `a` keeps its local copy: a clear elsewhere reaches the bucket and the local tier
        // of the machine that cleared.
        assert_eq!(after.values()["is_cached:3"], left, "tier {tier}");
    }
}

#[test]
fn a_size_limit_bounds_the_local_tier_not_the_bucket() {
    let server = Server::start("limit", true);
    let tiers = common::dir("limit-tiers");
    // The tier of `s3://joblet-test/c` is `<tier>/joblet-test/c`; its settings file holds.
    let tier = tiers.join("a").join(BUCKET).join("c");
    std::fs::create_dir_all(&tier).unwrap();
    std::fs::write(tier.join(joblet::CONFIG_FILE), "max_size = \"20MB\"\n").unwrap();
    let calls = "series:1,series:2,series:3,series:4";
    let stored = run(&server, &url("c"), &tiers.join("a"), calls, &[]);
    assert_eq!(stored.computed(), 4, "{}", stored.stderr);
    assert_eq!(server.objects("c").len(), 4, "the bucket keeps every entry");
    let in_tier = common::entries(&tier);
    let bytes: u64 = in_tier
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        in_tier.len() < 4 && bytes <= 20_000_000,
        "{} entries, {bytes} bytes",
        in_tier.len()
    );
    // What the tier evicted is still a hit, from the bucket.
    let again = run(&server, &url("c"), &tiers.join("a"), calls, &[]);
    assert_eq!(again.computed(), 0, "{}", again.stderr);
}

#[test]
fn worker_processes_store_in_the_bucket() {
    let server = Server::start("pool", true);
    let tiers = common::dir("pool-tiers");
    let first = run(&server, &url("pool"), &tiers.join("a"), "pool:8", &[]);
    assert_eq!(
        first.results["pool:8"].0,
        (100..108u64).map(|i| i * i).sum::<u64>() as f64
    );
    assert_eq!(server.objects("pool").len(), 8, "{}", first.stderr);
    let calls: Vec<String> = (100..108).map(|i| format!("square:{i}")).collect();
    let second = run(
        &server,
        &url("pool"),
        &tiers.join("b"),
        &calls.join(","),
        &[],
    );
    assert_eq!(second.computed(), 0, "{}", second.stderr);
}

#[test]
fn a_server_stopped_mid_run_costs_time_not_values() {
    let mut server = Server::start("stopped", true);
    let tiers = common::dir("stopped-tiers");
    // Stored beforehand by another machine.
    run(
        &server,
        &url("c"),
        &tiers.join("a"),
        "square:1,square:2",
        &[],
    );
    // A run of calls, some stored in the bucket, most not; the server stops during it.
    let calls: Vec<String> = (1..=40)
        .flat_map(|i| [format!("square:{i}"), "pause:25".to_owned()])
        .collect();
    let child = machine(&server, &url("c"), &tiers.join("b"), &calls.join(","))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    server.stop();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let mut seen = 0;
    for line in stdout
        .lines()
        .filter_map(|l| l.split_once("RESULT square:").map(|(_, result)| result))
    {
        let f: Vec<&str> = line.split(' ').collect();
        let n: u64 = f[0].parse().unwrap();
        assert_eq!(f[1].parse::<f64>().unwrap(), (n * n) as f64, "square({n})");
        let ms: u64 = f[3].parse().unwrap();
        // No call waits much longer than the timeout, 2 s.
        assert!(ms < 4_000, "square({n}) took {ms} ms");
        seen += 1;
    }
    assert_eq!(seen, 40);
    assert_eq!(stderr.matches("WARN").count(), 1, "{stderr}");
}

#[test]
fn a_server_that_never_answers_costs_one_timeout() {
    // Takes connections, reads nothing, answers nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let server = Server::dead();
    let tiers = common::dir("silent-tiers");
    let calls: Vec<String> = (1..=20).map(|i| format!("square:{i}")).collect();
    let endpoint = format!("http://127.0.0.1:{port}");
    let silent = run(
        &server,
        &url("c"),
        &tiers.join("a"),
        &calls.join(","),
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("JOBLET_REMOTE_TIMEOUT", "1s"),
        ],
    );
    assert_eq!(silent.computed(), 20);
    assert_eq!(silent.values()["square:20"], 400.0);
    assert_eq!(silent.warnings(), 1, "{}", silent.stderr);
    // The first call waits for the timeout, 1 s; the store is then left alone.
    let waited: u128 = silent.results.values().map(|r| r.2).sum();
    assert!(waited < 3_000, "the calls waited {waited} ms in all");
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_warned_once() {
    let server = Server::start("refused", true);
    let tiers = common::dir("refused-tiers");
    let calls = "square:5,square:6,square:7,series:3";
    let wrong = run(
        &server,
        &url("c"),
        &tiers.join("a"),
        calls,
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
    );
    assert_eq!(wrong.computed(), 4);
    assert_eq!(wrong.values()["square:7"], 49.0);
    assert_eq!(wrong.warnings(), 1, "{}", wrong.stderr);
    assert!(server.objects("c").is_empty());

    // s3s-fs makes a bucket at the first PUT into it, as S3 does not: a file where its
    // folder would be keeps it from being made.
    std::fs::write(server.root.join("no-such-bucket"), b"").unwrap();
    let missing = run(
        &server,
        "s3://no-such-bucket/c",
        &tiers.join("b"),
        calls,
        &[],
    );
    assert_eq!(missing.computed(), 4);
    assert_eq!(missing.values()["square:7"], 49.0);
    assert_eq!(missing.warnings(), 1, "{}", missing.stderr);
}

#[test]
fn a_damaged_object_is_a_miss_recomputed_and_rewritten() {
    let server = Server::start("damaged", false);
    let anonymous = [("AWS_SKIP_SIGNATURE", "true")];
    let tiers = common::dir("damaged-tiers");
    let first = run(
        &server,
        &url("c"),
        &tiers.join("a"),
        "square:9,series:4",
        &anonymous,
    );
    assert_eq!(first.computed(), 2);
    for object in server.objects("c") {
        let good = std::fs::read(&object).unwrap();
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let key = object.strip_prefix(server.root.join(BUCKET)).unwrap();
        server.plain_put(&key.to_string_lossy(), &bad);
        assert_eq!(std::fs::read(&object).unwrap(), bad);
    }
    // A machine without them: the damaged objects are misses, computed again, and replaced.
    let second = run(
        &server,
        &url("c"),
        &tiers.join("b"),
        "square:9,series:4",
        &anonymous,
    );
    assert_eq!(second.computed(), 2, "{}", second.stderr);
    assert_eq!(second.values(), first.values());
    let third = run(
        &server,
        &url("c"),
        &tiers.join("c"),
        "square:9,series:4",
        &anonymous,
    );
    assert_eq!(third.computed(), 0, "{}", third.stderr);
    assert_eq!(third.values(), first.values());
}

#[test]
fn refresh_replaces_the_object() {
    let server = Server::start("refresh", true);
    let tiers = common::dir("refresh-tiers");
    run(&server, &url("c"), &tiers.join("a"), "square:11", &[]);
    let object = server.objects("c").pop().unwrap();
    let before = std::fs::read(&object).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let refreshed = run(
        &server,
        &url("c"),
        &tiers.join("b"),
        "square:11",
        &[("JOBLET_REFRESH", "1")],
    );
    assert_eq!(refreshed.computed(), 1);
    assert_ne!(
        std::fs::read(&object).unwrap(),
        before,
        "the refresh was not stored"
    );
}

/// The `joblet` command, built with its `remote` feature (`JOBLET_CLI` names a built one).
fn cli() -> PathBuf {
    if let Some(cli) = std::env::var_os("JOBLET_CLI") {
        return cli.into();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "joblet-cli",
            "--features",
            "remote",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let target = std::env::current_exe().unwrap();
    // target/debug/deps/remote-<hash> -> target/debug/joblet
    target.parent().unwrap().parent().unwrap().join("joblet")
}

#[test]
fn the_command_reports_lists_and_clears_the_bucket() {
    let server = Server::start("cli", true);
    let tiers = common::dir("cli-tiers");
    run(&server, &url("c"), &tiers.join("a"), MIXED, &[]);
    let joblet = |args: &[&str]| {
        let out = Command::new(cli())
            .args(["--dir", &url("c")])
            .args(args)
            .envs(server.env())
            .env("JOBLET_LOCAL_TIER", tiers.join("cli"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{text}\n{err}");
        text
    };
    let report = joblet(&["report"]);
    // Read from headers: nothing was downloaded.
    assert!(common::entries(&tiers.join("cli")).is_empty());
    for function in [
        "remote.square",
        "remote.series",
        "remote.long_series",
        "remote.table",
    ] {
        assert!(
            report.contains(function),
            "{function} missing from:\n{report}"
        );
    }
    let listed = joblet(&["ls", "remote::square"]);
    // A heading, and the two calls stored.
    assert_eq!(listed.lines().count(), 3, "{listed}");
    joblet(&["clear", "remote::square"]);
    assert_eq!(server.objects("c").len(), 3);
    joblet(&["clear"]);
    assert!(server.objects("c").is_empty());
}
