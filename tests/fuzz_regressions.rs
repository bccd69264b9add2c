//! The fuzz target's work (`fuzz/fuzz_targets/load.rs`), replayed on stable in every test run:
//! the inputs with which it found bugs (`tests/fuzz-regressions/`), and every truncation and
//! many byte changes of valid files, signed as a forger would, loaded every way without a
//! panic and without allocating more than their size justifies.

mod common;

#[path = "common/fuzz_input.rs"]
mod fuzz_input;

use std::path::{Path, PathBuf};

use joblet::{Array, Compression, dump_with};

/// A cache-shaped folder with one entry file, as the fuzz target has.
fn entry_file(name: &str) -> (PathBuf, PathBuf) {
    let root = common::dir(&format!("fuzz-{name}"));
    let shard = root.join("fuzz.f").join("0123456789abcdef").join("ab");
    std::fs::create_dir_all(&shard).unwrap();
    (root, shard.join("ab0123456789abcdef0123456789abcd.jbl"))
}

/// The peak of this process's virtual memory, in bytes: every allocation counts, the zstd
/// library's (made in C) among them, whether or not its pages are ever touched.
fn peak_virtual_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

const REPLAY: &str = "JOBLET_FUZZ_REPLAY";

/// In a child process of its own, so that nothing else moves its peak: replays one input
/// and prints how far it raised the peak of virtual memory.
#[test]
fn replay_child() {
    let Some(input) = std::env::var_os(REPLAY) else {
        return;
    };
    let mut bytes = std::fs::read(&input).unwrap();
    // The fuzzer's inputs got past the checksum only because it always passes under the
    // fuzzer: sign them as a forger would.
    common::resign(&mut bytes);
    let (root, file) = entry_file("replay");
    // A valid file of each compression first, to set up what any load sets up.
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd(3)] {
        dump_with(&vec![0.5f64; 64], &file, compression).unwrap();
        fuzz_input::load_every_way(&root, &file);
    }
    let before = peak_virtual_memory();
    replay(&root, &file, &bytes);
    println!("peak raised by {}", peak_virtual_memory() - before);
}

#[cfg(target_os = "linux")]
#[test]
fn inputs_that_found_bugs_load_every_way_within_their_means() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    for input in inputs {
        let out = common::child("replay_child")
            .env(REPLAY, &input)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {stdout}", input.display());
        let raised: u64 = stdout
            .split("peak raised by ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure: {stdout}"));
        // Nothing of note, whatever the file claims: a zstd frame of 109 bytes once made the
        // decoder allocate an 80 MB window (which raised this peak by 17 MB, on top of what
        // the valid files before it had reached).
        assert!(
            raised < 4 << 20,
            "{}: raised the peak by {raised} bytes",
            input.display()
        );
    }
}

fn replay(root: &Path, file: &Path, bytes: &[u8]) {
    std::fs::write(file, bytes).unwrap();
    fuzz_input::load_every_way(root, file);
}

/// Replays `bytes` signed as a forger would, so that the damage gets past the checksum to
/// the decoders, as the fuzzer's does. (That the checksum finds damage is the entry module's
/// unit tests.)
fn replay_forged(root: &Path, file: &Path, mut bytes: Vec<u8>) {
    if bytes.len() >= 64 {
        common::resign(&mut bytes);
    }
    replay(root, file, &bytes);
}

#[test]
fn damaged_files_of_every_kind_load_every_way_without_a_panic() {
    let (root, file) = entry_file("damaged");
    let arrays = fuzz_input::Arrays {
        name: "damaged".into(),
        a: (0..40).map(f64::from).collect(),
        b: Some(vec![1u8, 2, 3].into()),
        c: vec![vec![-1i32, 7].into()],
    };
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd(1)] {
        dump_with(&arrays, &file, compression).unwrap();
        let valid = std::fs::read(&file).unwrap();
        let loaded: fuzz_input::Arrays = joblet::load(&file).unwrap();
        assert_eq!(loaded.a[..], arrays.a[..]);
        for len in 0..valid.len() {
            replay_forged(&root, &file, valid[..len].to_vec());
        }
        // Lengths and counts at their largest in the header; elsewhere the top bit flipped.
        for at in 0..valid.len() {
            let mut damaged = valid.clone();
            damaged[at] = if at < 64 { 0xff } else { valid[at] ^ 0x80 };
            replay_forged(&root, &file, damaged);
        }
    }
    dump_with(&Array::from(vec![3u16; 16]), &file, Compression::None).unwrap();
    let valid = std::fs::read(&file).unwrap();
    for at in 16..64 {
        let mut damaged = valid.clone();
        damaged[at] = 0xff;
        replay_forged(&root, &file, damaged);
    }
}
