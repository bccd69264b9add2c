//! The fuzz target's work (`fuzz/fuzz_targets/load.rs`), replayed on stable in every test run:
//! the inputs with which it found bugs (`tests/fuzz-regressions/`), every truncation and many
//! byte changes of valid files, and random mutations of the fuzzer's seeds, signed as a forger
//! would, loaded every way without a panic and without allocating more than their size
//! justifies: under the counting allocator the target has, which refuses what would pass its
//! bound, as `malloc` does when memory runs out.

mod common;

#[path = "common/fuzz_input.rs"]
mod fuzz_input;

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

use std::path::{Path, PathBuf};

use joblet::{Array, Compression, dump_with};

/// A cache-shaped folder with one entry file, as the fuzz target has.
fn entry_file(name: &str) -> (PathBuf, PathBuf) {
    let root = common::dir(&format!("fuzz-{name}"));
    let shard = root.join("fuzz.f").join("0123456789abcdef").join("ab");
    std::fs::create_dir_all(&shard).unwrap();
    (root, shard.join("ab0123456789abcdef0123456789abcd.jbl"))
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
    let before = common::peak_virtual_memory();
    replay(&root, &file, &bytes);
    println!("peak raised by {}", common::peak_virtual_memory() - before);
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

/// Replays every truncation of the entry `valid`, and every damage of one of its bytes: in the
/// header, lengths and counts at their largest; elsewhere the top bit flipped.
fn replay_damaged(root: &Path, file: &Path, valid: &[u8]) {
    for len in 0..valid.len() {
        replay_forged(root, file, valid[..len].to_vec());
    }
    for at in 0..valid.len() {
        let mut damaged = valid.to_vec();
        damaged[at] = if at < 64 { 0xff } else { valid[at] ^ 0x80 };
        replay_forged(root, file, damaged);
    }
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
        replay_damaged(&root, &file, &valid);
    }
    // A lone compressed array, which loads straight into its memory.
    for compression in [Compression::Lz4, Compression::Zstd(1)] {
        dump_with(&Array::from(vec![3u16; 16]), &file, compression).unwrap();
        let valid = std::fs::read(&file).unwrap();
        assert_eq!(joblet::load::<Array<u16>>(&file).unwrap()[..], [3u16; 16]);
        replay_damaged(&root, &file, &valid);
    }
    dump_with(&Array::from(vec![3u16; 16]), &file, Compression::None).unwrap();
    let valid = std::fs::read(&file).unwrap();
    for at in 16..64 {
        let mut damaged = valid.clone();
        damaged[at] = 0xff;
        replay_forged(&root, &file, damaged);
    }
}

const MUTATE: &str = "JOBLET_FUZZ_MUTATE";

/// The fuzz target's bound: the most memory in use at once that loading an input of at most
/// 64 KB may take.
const MEMORY_BOUND: usize = 256 << 20;

/// A small, seeded generator of the mutations: the same ones every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `bytes`, of the kinds the fuzzer makes, biased towards the header's lengths
/// and the payload's length prefixes, where forged sizes live.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    let len = bytes.len();
    match rng.below(8) {
        0 if len > 0 => {
            let at = rng.below(len);
            bytes[at] ^= 1 << rng.below(8);
        }
        1 if len >= 64 => {
            // A length or count in the header, at an extreme or a near miss.
            let field = [20, 22, 24, 32, 40][rng.below(5)];
            let value: u64 = match rng.below(5) {
                0 => u64::MAX,
                1 => 1 << (rng.below(40) + 10),
                2 => u64::from(u32::MAX),
                3 => len as u64,
                _ => rng.next() % 70_000,
            };
            let width = if field < 24 {
                2
            } else if field < 32 {
                4
            } else {
                8
            };
            bytes[field..field + width].copy_from_slice(&value.to_le_bytes()[..width]);
        }
        2 if len > 64 => {
            // A varint that claims much: a run of continuation bytes in the body.
            let at = 64 + rng.below(len - 64);
            let run = 1 + rng.below(9);
            for b in bytes.iter_mut().skip(at).take(run) {
                *b = 0xff;
            }
        }
        3 if len > 0 => {
            let at = rng.below(len);
            bytes.truncate(at);
        }
        4 => {
            let at = rng.below(len + 1);
            let junk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, junk);
        }
        5 if len > 1 => {
            let from = rng.below(len);
            let to = (from + 1 + rng.below(64)).min(len);
            bytes.drain(from..to);
        }
        6 if len > 1 => {
            // A part repeated, as when the fuzzer splices an input into itself.
            let from = rng.below(len);
            let to = (from + 1 + rng.below(256)).min(len);
            let part = bytes[from..to].to_vec();
            let at = rng.below(len);
            bytes.splice(at..at, part);
        }
        _ if len > 0 => {
            let at = rng.below(len);
            bytes[at] = [0, 0xff, 0x80, 0x7f][rng.below(4)];
        }
        _ => bytes.push(rng.next() as u8),
    }
}

/// In a child process of its own: the seeds, each mutated again and again, every input
/// signed and loaded every way, with the memory in use bounded as under the fuzzer. The
/// entry file holds the input being loaded, should the child die.
#[test]
fn mutations_child() {
    let Some(count) = std::env::var_os(MUTATE) else {
        return;
    };
    let count: usize = count.to_str().unwrap().parse().unwrap();
    let seeds = common::dir("fuzz-seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    fuzz_input::write_seeds(&seeds).unwrap();
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&seeds)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    let (root, file) = entry_file("mutations");
    counting::limit(MEMORY_BOUND);
    let mut rng = Rng(0x5eed_0ff0_2201);
    for i in 0..count {
        let mut bytes = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut bytes, &mut rng);
        }
        bytes.truncate(64 << 10);
        replay_forged(&root, &file, bytes);
    }
    println!("{count} inputs, peak {}", counting::peak());
}

/// The stable stand-in for a fuzzing run: set `JOBLET_FUZZ_MUTATIONS` for a longer one.
#[test]
fn mutations_of_the_seeds_load_every_way_within_their_means() {
    let count = std::env::var("JOBLET_FUZZ_MUTATIONS").unwrap_or_else(|_| "3000".into());
    let out = common::child("mutations_child")
        .env(MUTATE, &count)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let (_, file) = entry_file("mutations");
        let kept = file.with_file_name("crash.jbl");
        let _ = std::fs::copy(&file, &kept);
        panic!("{}; the input is in {}\n{text}", out.status, kept.display());
    }
    println!(
        "{}",
        text.lines().find(|l| l.contains("peak")).unwrap_or("")
    );
}
