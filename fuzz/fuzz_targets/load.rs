//! Arbitrary bytes as an entry file (or a `dump`): loading them as any type, and listing the
//! folder they are in, never panics, aborts, faults or allocates more than they justify.
//!
//!     cargo +nightly fuzz run load -- -max_len=65536 -malloc_limit_mb=256 -max_total_time=600
#![no_main]

#[path = "../../tests/common/fuzz_input.rs"]
mod fuzz_input;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

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
        (root, file)
    })
}

fuzz_target!(|data: &[u8]| {
    let (root, file) = paths();
    std::fs::write(file, data).unwrap();
    fuzz_input::load_every_way(root, file);
});
