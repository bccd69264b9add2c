//! Arbitrary bytes as an entry file (or a `dump`): loading them as any type, and listing the
//! folder they are in, never panics, aborts, faults or allocates more than they justify.
//!
//!     cargo +nightly fuzz run load -- -max_len=65536 -malloc_limit_mb=256 -max_total_time=600
//!
//! The bound holds without the flags too: the target's allocator refuses (returns null, as
//! `malloc` does when memory runs out) what would take the memory in use past 256 MiB. A
//! fallible allocation then fails into an error, which is fine; any other aborts the run, and
//! the fuzzer keeps the input.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use joblet_fuzz::{counting, fuzz_input};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// The most memory in use at once that an input of at most 64 KB may make the loads take.
const MEMORY_BOUND: usize = 256 << 20;

/// A cache-shaped folder holding the one file each input is written to.
fn paths() -> &'static (PathBuf, PathBuf) {
    static PATHS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PATHS.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("joblet-fuzz-{}", std::process::id()));
        let shard = root.join("fuzz.f").join("0123456789abcdef").join("ab");
        std::fs::create_dir_all(&shard).unwrap();
        let file = shard.join("ab0123456789abcdef0123456789abcd.jbl");
        counting::limit(MEMORY_BOUND);
        (root, file)
    })
}

fuzz_target!(|data: &[u8]| {
    let (root, file) = paths();
    std::fs::write(file, data).unwrap();
    fuzz_input::load_every_way(root, file);
});
