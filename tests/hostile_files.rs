//! Files made to break joblet, at the paths it reads: a FIFO, a device, a sparse file of
//! gigabytes, headers that claim gigabytes. Each is a miss (or a `load` error) that comes back
//! at once, without a hang, a panic, an abort or an allocation the file cannot justify. The
//! memory checks run in a child process of their own, under a counting allocator that refuses
//! what passes a limit, as `malloc` does when memory runs out.
#![cfg(target_os = "linux")]

mod common;

#[path = "common/counting.rs"]
mod counting;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use joblet::{Compression, ErrorKind, cached, dump_with, load};
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

const CHILD: &str = "JOBLET_HOSTILE_CHILD";

/// Whether this process is the child that a test started to run `..._child` in.
fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the test `name` in a child process of its own, and returns what it printed, once it
/// has succeeded.
fn in_child(name: &str) -> String {
    let out = common::child(name).env(CHILD, "1").output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {}\n{text}", out.status);
    text
}

/// The figure the child printed after `label`.
fn figure(text: &str, label: &str) -> u64 {
    text.split(label)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
}

/// Runs `f` on a thread, and fails if it has not returned within a minute: what blocks on a
/// FIFO blocks for ever.
fn without_blocking<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(f()));
    receive
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} blocked"))
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid C string for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// The one entry file below `dir`, once `store` has stored it.
fn entry_of(dir: &Path, store: impl FnOnce()) -> PathBuf {
    store();
    let mut entries = common::entries(dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.pop().unwrap()
}

static PIPED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("hostile-fifo"))]
fn piped(x: u64) -> u64 {
    PIPED.fetch_add(1, SeqCst);
    x * 7
}

#[test]
fn a_fifo_at_an_entry_path_is_a_miss_not_a_hang() {
    let path = entry_of(&common::dir("hostile-fifo"), || assert_eq!(piped(1), 7));
    fs::remove_file(&path).unwrap();
    mkfifo(&path);
    // Nobody writes into it: opening it for reading, or reading it, would wait for ever.
    assert!(!without_blocking("is_cached", || piped::is_cached(1)));
    let (value, logged) = without_blocking("the call", || common::warnings(|| piped(1)));
    assert_eq!(value, 7);
    assert_eq!(PIPED.load(SeqCst), 2, "not recomputed");
    assert!(logged.contains("not a regular file"), "{logged}");
    // The result took the FIFO's place (written in the background: waited for).
    joblet::flush();
    assert!(fs::symlink_metadata(&path).unwrap().is_file());
    assert!(piped::is_cached(1));

    let fifo = common::dir("hostile-fifo").join("loose.jbl");
    mkfifo(&fifo);
    let err = without_blocking("load", move || load::<u64>(&fifo).unwrap_err());
    assert!(matches!(err.kind(), ErrorKind::NotAFile), "{err}");
}

static LIMITED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("hostile-fifo-settings"))]
fn limited(x: u64) -> u64 {
    LIMITED.fetch_add(1, SeqCst);
    x + 1
}

#[test]
fn a_fifo_settings_file_is_reported_not_waited_on() {
    let dir = common::dir("hostile-fifo-settings");
    fs::create_dir_all(&dir).unwrap();
    mkfifo(&dir.join(joblet::CONFIG_FILE));
    // The first store into the folder reads its settings.
    // Small results are stored in the background: waited for, so that its warning is seen.
    let (value, logged) = without_blocking("a store", || {
        common::warnings(|| {
            let value = limited(1);
            joblet::flush();
            value
        })
    });
    assert_eq!(value, 2);
    assert!(
        logged.contains("joblet.toml") && logged.contains("not a regular file"),
        "{logged}"
    );
    assert!(limited::is_cached(1));
}

static ZEROS: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("hostile-device"))]
fn zeros(x: u64) -> Vec<u8> {
    ZEROS.fetch_add(1, SeqCst);
    vec![x as u8; 100_000]
}

#[cached(dir = common::dir("hostile-device-settings"))]
fn settled(x: u64) -> u64 {
    x
}

/// `/dev/zero` at an entry's path and at a settings file's: were either read to its end, the
/// reading would take every byte the allocator gives.
#[test]
fn device_child() {
    if !is_child() {
        return;
    }
    let path = entry_of(&common::dir("hostile-device"), || {
        assert_eq!(zeros(3).len(), 100_000)
    });
    fs::remove_file(&path).unwrap();
    symlink("/dev/zero", &path).unwrap();
    let settings = common::dir("hostile-device-settings");
    fs::create_dir_all(&settings).unwrap();
    symlink("/dev/zero", settings.join(joblet::CONFIG_FILE)).unwrap();
    counting::limit(256 << 20);
    counting::reset_peak();

    // Small results are stored in the background: waited for, here and below.
    let (value, logged) = common::warnings(|| {
        let value = zeros(3);
        joblet::flush();
        value
    });
    assert_eq!(value, vec![3u8; 100_000]);
    assert_eq!(ZEROS.load(SeqCst), 2, "not recomputed");
    assert!(logged.contains("not a regular file"), "{logged}");
    assert!(
        fs::symlink_metadata(&path).unwrap().is_file(),
        "not replaced"
    );
    let err = load::<Vec<u8>>("/dev/zero").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotAFile), "{err}");
    let (value, logged) = common::warnings(|| {
        let value = settled(5);
        joblet::flush();
        value
    });
    assert_eq!(value, 5);
    assert!(
        logged.contains("joblet.toml") && logged.contains("not a regular file"),
        "{logged}"
    );
    println!("peak {}", counting::peak());
}

#[test]
fn a_device_at_an_entry_or_settings_path_is_never_read() {
    let out = in_child("device_child");
    // The value (100 kB), the entry written (as much), and the rest of a call.
    let peak = figure(&out, "peak ");
    assert!(peak < 8 << 20, "{peak} bytes at once");
}

static SPARSE: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("hostile-sparse"))]
fn sparse(x: u64) -> Vec<f64> {
    SPARSE.fetch_add(1, SeqCst);
    vec![x as f64; 10]
}

/// A sparse file of 4 GiB in `dir`: no disk space, but any map of it is 4 GiB of address
/// space, and reading it 4 GiB of zeros.
fn sparse_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let file = fs::File::create(&path).unwrap();
    file.set_len(4 << 30).unwrap();
    path
}

/// An entry path pointing to 4 GiB of zeros: the first 4 KiB show that it is no entry.
#[test]
fn sparse_child() {
    if !is_child() {
        return;
    }
    let dir = common::dir("hostile-sparse");
    let path = entry_of(&dir, || assert_eq!(sparse(2).len(), 10));
    fs::remove_file(&path).unwrap();
    let big = sparse_file(&dir, "zeros.bin");
    symlink(&big, &path).unwrap();
    let before = common::peak_virtual_memory();

    let (value, logged) = common::warnings(|| sparse(2));
    assert_eq!(value, vec![2.0; 10]);
    assert_eq!(SPARSE.load(SeqCst), 2, "not recomputed");
    assert!(logged.contains("not a joblet file"), "{logged}");
    let err = load::<Vec<f64>>(&big).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotAnEntry), "{err}");
    println!("mapped {}", common::peak_virtual_memory() - before);
    fs::remove_file(big).unwrap();
}

#[test]
fn a_large_file_that_is_no_entry_is_refused_before_it_is_mapped() {
    let mapped = figure(&in_child("sparse_child"), "mapped ");
    assert!(mapped < 256 << 20, "{mapped} bytes of address space");
}

static FORGED: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("hostile-forged"))]
fn forged(x: u64) -> Vec<f64> {
    FORGED.fetch_add(1, SeqCst);
    vec![x as f64; 1000]
}

/// Rewrites the `Vec<f64>` entry at `path` to claim 2^29 numbers (4 GiB), in a sparse file
/// of the length that claim calls for, as a damaged or forged header can: the checksum is
/// left as it was, wrong.
fn claim_four_gib(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let payload = common::payload_start(&bytes);
    let count = 1u64 << 29;
    // postcard's varint of 2^29, in 5 bytes.
    let varint = [0x80, 0x80, 0x80, 0x80, 0x02];
    let payload_len = count * 8 + varint.len() as u64;
    bytes[32..40].copy_from_slice(&payload_len.to_le_bytes());
    bytes.truncate(payload);
    bytes.extend_from_slice(&varint);
    fs::write(path, &bytes).unwrap();
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(payload as u64 + payload_len).unwrap();
}

#[test]
fn forged_child() {
    if !is_child() {
        return;
    }
    let path = entry_of(&common::dir("hostile-forged"), || {
        assert_eq!(forged(4).len(), 1000)
    });
    let copy = path.with_file_name("copy.jbl");
    fs::copy(&path, &copy).unwrap();
    claim_four_gib(&path);
    claim_four_gib(&copy);
    // As under `ulimit -v 1G`.
    counting::limit(1 << 30);

    let (value, logged) = common::warnings(|| forged(4));
    assert_eq!(value, vec![4.0; 1000]);
    assert_eq!(FORGED.load(SeqCst), 2, "not recomputed");
    assert!(logged.contains("cannot allocate"), "{logged}");
    let err = load::<Vec<f64>>(&copy).unwrap_err();
    assert!(err.to_string().contains("cannot allocate"), "{err}");
    fs::remove_file(copy).unwrap();
}

#[test]
fn a_header_claiming_gigabytes_is_a_miss_when_they_cannot_be_had() {
    in_child("forged_child");
}

/// 64 KB that do not compress, stored with zstd, whose header then claims they decompress to
/// 32,768 times as much, re-signed so that the checksum holds.
#[test]
fn zstd_claim_child() {
    if !is_child() {
        return;
    }
    let path = common::dir("hostile-zstd").join("claim.jbl");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..64 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    dump_with(&noise, &path, Compression::Zstd(1)).unwrap();
    assert_eq!(load::<Vec<u8>>(&path).unwrap(), noise);
    let mut bytes = fs::read(&path).unwrap();
    let stored = u64::from_le_bytes(bytes[32..40].try_into().unwrap());
    bytes[40..48].copy_from_slice(&(stored * 32768).to_le_bytes());
    common::resign(&mut bytes);
    fs::write(&path, &bytes).unwrap();
    counting::limit(256 << 20);
    counting::reset_peak();

    let err = load::<Vec<u8>>(&path).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not decompress to its recorded size"),
        "{err}"
    );
    println!("peak {}", counting::peak());
}

#[test]
fn a_forged_zstd_size_allocates_what_the_frames_hold() {
    let peak = figure(&in_child("zstd_claim_child"), "peak ");
    // Room for a few times what the 64 KB decompress to, not 2 GiB.
    assert!(peak < 4 << 20, "{peak} bytes at once");
}

/// A recursive type, as an abstract syntax tree or a JSON value is.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

/// `nodes` nodes, each the one child of the one before, around a leaf: twice as many levels
/// and one (the enum and its `Vec` each nest one).
fn chain(nodes: usize) -> Tree {
    (0..nodes).fold(Tree::Leaf(9), |tree, _| Tree::Node(vec![tree]))
}

/// Rewrites the uncompressed `Tree` entry at `path` to hold `chain(nodes)`, encoded by hand (a
/// value that deep cannot be written), and re-signs it so that its checksum holds: two bytes a
/// node, an enum's variant and a `Vec`'s length.
fn nest(path: &Path, nodes: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes.truncate(common::payload_start(&bytes));
    let before = bytes.len();
    for _ in 0..nodes {
        bytes.extend_from_slice(&[1, 1]);
    }
    bytes.extend_from_slice(&[0, 9]);
    let payload_len = (bytes.len() - before) as u64;
    bytes[32..40].copy_from_slice(&payload_len.to_le_bytes());
    bytes[40..48].copy_from_slice(&payload_len.to_le_bytes());
    common::resign(&mut bytes);
    fs::write(path, bytes).unwrap();
}

/// A payload of 500,000 levels (1 MB), loaded on a thread of the test harness.
#[test]
fn deep_child() {
    if !is_child() {
        return;
    }
    let path = common::dir("hostile-deep").join("tree.jbl");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    joblet::dump(&chain(1), &path).unwrap();
    nest(&path, 500_000);
    assert!(fs::metadata(&path).unwrap().len() > 1_000_000);
    let err = load::<Tree>(&path).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Decode(_)), "{err}");
    assert!(
        err.to_string().contains("nests deeper than 256 levels"),
        "{err}"
    );
}

#[test]
fn a_payload_nested_half_a_million_levels_deep_is_a_decode_error() {
    in_child("deep_child");
}

static GROWN: AtomicUsize = AtomicUsize::new(0);

#[cached(dir = common::dir("hostile-grown"))]
fn grown(nodes: usize) -> Tree {
    GROWN.fetch_add(1, SeqCst);
    chain(nodes)
}

/// `grown(nodes)`, called in `parallel!` tasks, on rayon's threads of 2 MiB stacks.
fn grown_in_tasks(nodes: usize) -> Vec<Tree> {
    joblet::parallel!(n_jobs = 2; for _i in 0..2 => grown(nodes))
}

/// The entry of a `#[cached]` call rewritten to nest 32,000 levels (64 KB), loaded in a
/// `parallel!` task; and values as deep as the limit allows, and one level deeper.
#[test]
fn deep_in_task_child() {
    if !is_child() {
        return;
    }
    let path = entry_of(&common::dir("hostile-grown"), || {
        assert_eq!(grown(2), chain(2))
    });
    nest(&path, 16_000);
    let (trees, logged) = common::warnings(|| grown_in_tasks(2));
    assert!(trees.iter().all(|t| *t == chain(2)));
    assert!(GROWN.load(SeqCst) >= 2, "not recomputed");
    assert!(logged.contains("nests deeper than 256 levels"), "{logged}");
    assert!(grown::is_cached(2), "not rewritten");

    // 127 nodes nest 255 levels: stored, then loaded in tasks as hits.
    let limit = joblet::MAX_NESTING;
    assert_eq!(limit, 256);
    let before = GROWN.load(SeqCst);
    assert_eq!(grown(127), chain(127));
    assert!(grown::is_cached(127));
    assert!(grown_in_tasks(127).iter().all(|t| *t == chain(127)));
    assert_eq!(GROWN.load(SeqCst), before + 1, "not hits");
    // 128 nest 257: computed, returned, and not stored, with a warning that says why.
    let (tree, logged) = common::warnings(|| grown(128));
    assert_eq!(tree, chain(128));
    assert!(!grown::is_cached(128));
    assert!(logged.contains("nests deeper than 256 levels"), "{logged}");
    let err = joblet::dump(&chain(128), path.with_file_name("deep.jbl")).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Encode(_)), "{err}");
}

#[test]
fn a_cached_call_in_a_task_reads_deep_entries_without_overflowing_its_stack() {
    in_child("deep_in_task_child");
}
