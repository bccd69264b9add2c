//! Writes the seed corpus of the `load` target: valid files of each type it loads, every
//! compression among them, for the fuzzer to start from.

#[path = "../../tests/common/fuzz_input.rs"]
mod fuzz_input;

use std::collections::HashMap;
use std::path::Path;

use joblet::{Array, Compression, dump, dump_with};

fn main() -> Result<(), joblet::Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/load");
    std::fs::create_dir_all(&dir)?;
    let arrays = fuzz_input::Arrays {
        name: "seed".into(),
        a: (0..40).map(f64::from).collect(),
        b: Some(vec![1u8, 2, 3].into()),
        c: vec![vec![-1i32, 7].into(), Array::from(Vec::<i32>::new())],
    };
    let map: HashMap<String, Vec<i64>> = [("k".to_string(), vec![1, -2, 3])].into();
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
    }
    dump(&Vec::<u8>::new(), dir.join("empty.jbl"))?;
    println!("seeds in {}", dir.display());
    Ok(())
}
