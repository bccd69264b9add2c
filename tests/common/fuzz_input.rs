//! What the fuzz target (`fuzz/fuzz_targets/load.rs`) does with each input, shared with the
//! regression test that replays the inputs it found bugs with and mutations of the seeds
//! (`tests/fuzz_regressions.rs`): the bytes as an entry file, loaded as values of many types
//! (a recursive one among them), every array read in full, and the folder listed as
//! `joblet report` lists it; and the seeds the fuzzer starts from.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use joblet::{Array, Compression, dump_with};
use serde::{Deserialize, Serialize};

/// A value with array sections, as the zero-copy path loads them.
#[derive(Serialize, Deserialize)]
pub struct Arrays {
    pub name: String,
    pub a: Array<f64>,
    pub b: Option<Array<u8>>,
    pub c: Vec<Array<i32>>,
}

/// A recursive type, as a syntax tree or a JSON value is: decoding it recurses a level at a
/// time, on the stack.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

/// A tree of `nodes` nodes, each the one child of the one before, around a leaf.
pub fn chain(nodes: usize) -> Tree {
    (0..nodes).fold(Tree::Leaf(7), |tree, _| Tree::Node(vec![tree]))
}

/// Writes the seeds into `dir`: a valid file of each type loaded, in every compression; for
/// the tree, one shallow and one nested near the limit.
pub fn write_seeds(dir: &Path) -> Result<(), joblet::Error> {
    let arrays = Arrays {
        name: "seed".into(),
        a: (0..40).map(f64::from).collect(),
        b: Some(vec![1u8, 2, 3].into()),
        c: vec![vec![-1i32, 7].into(), Array::from(Vec::<i32>::new())],
    };
    let map: HashMap<String, Vec<i64>> = [("k".to_string(), vec![1, -2, 3])].into();
    let tree = Tree::Node(vec![Tree::Leaf(1), chain(3), Tree::Node(vec![])]);
    for (i, compression) in [Compression::None, Compression::Lz4, Compression::Zstd(1)]
        .into_iter()
        .enumerate()
    {
        let at = |name: &str| dir.join(format!("{name}-{i}.jbl"));
        dump_with(&42u64, at("u64"), compression)?;
        dump_with(&"text".to_string(), at("string"), compression)?;
        dump_with(&vec![1.5f64; 20], at("f64s"), compression)?;
        dump_with(
            &("a".to_string(), 7u32, vec![9u8; 30]),
            at("tuple"),
            compression,
        )?;
        dump_with(&map, at("map"), compression)?;
        dump_with(&Some(vec![(1u16, 0.5f32)]), at("option"), compression)?;
        dump_with(&Array::from(vec![3u16; 16]), at("array"), compression)?;
        dump_with(&arrays, at("arrays"), compression)?;
        dump_with(&tree, at("tree"), compression)?;
        dump_with(&chain(120), at("deep-tree"), compression)?;
    }
    dump_with(&Vec::<u8>::new(), dir.join("empty.jbl"), Compression::None)
}

/// Loads the file at `path` (in a cache-shaped folder under `root`) as each type, and lists
/// `root`. Any outcome but a panic, an abort or a fault is fine: errors are expected.
pub fn load_every_way(root: &Path, path: &Path) {
    let _ = joblet::load::<u64>(path);
    let _ = joblet::load::<String>(path);
    let _ = joblet::load::<Vec<u8>>(path).map(|v| v.len());
    let _ = joblet::load::<Vec<f64>>(path).map(|v| v.iter().sum::<f64>());
    let _ = joblet::load::<(String, u32, Vec<u8>)>(path);
    let _ = joblet::load::<HashMap<String, Vec<i64>>>(path);
    let _ = joblet::load::<Option<Vec<(u16, f32)>>>(path);
    let _ = joblet::load::<Tree>(path);
    if let Ok(array) = joblet::load::<Array<u16>>(path) {
        let _ = array.verify();
        let _ = array.iter().map(|&x| u64::from(x)).sum::<u64>();
    }
    if let Ok(value) = joblet::load::<Arrays>(path) {
        let _ = value.a.verify() && value.b.as_ref().is_none_or(Array::verify);
        let _ = value.a.iter().sum::<f64>();
        let _ = value
            .b
            .map(|b| b.iter().map(|&x| u64::from(x)).sum::<u64>());
        let _ = value
            .c
            .iter()
            .flat_map(|c| c.iter())
            .fold(0i32, |a, &x| a.wrapping_add(x));
    }
    let _ = joblet::Memory::new(root).entries();
}
