//! The fuzz target's work (`fuzz/fuzz_targets/load.rs`), replayed on stable in every test run:
//! every truncation and many byte changes of valid files, loaded every way without a panic.

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

fn replay(root: &Path, file: &Path, bytes: &[u8]) {
    std::fs::write(file, bytes).unwrap();
    fuzz_input::load_every_way(root, file);
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
            replay(&root, &file, &valid[..len]);
        }
        // Lengths and counts at their largest in the header; elsewhere the top bit flipped.
        for at in 0..valid.len() {
            let mut damaged = valid.clone();
            damaged[at] = if at < 64 { 0xff } else { valid[at] ^ 0x80 };
            replay(&root, &file, &damaged);
        }
    }
    dump_with(&Array::from(vec![3u16; 16]), &file, Compression::None).unwrap();
    let valid = std::fs::read(&file).unwrap();
    for at in 16..64 {
        let mut damaged = valid.clone();
        damaged[at] = 0xff;
        replay(&root, &file, &damaged);
    }
}
