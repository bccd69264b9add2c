//! Writes the seed corpus of the `load` target: valid files of each type it loads, every
//! compression among them, for the fuzzer to start from.

#[path = "../../tests/common/fuzz_input.rs"]
mod fuzz_input;

use std::path::Path;

fn main() -> Result<(), joblet::Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/load");
    std::fs::create_dir_all(&dir)?;
    fuzz_input::write_seeds(&dir)?;
    println!("seeds in {}", dir.display());
    Ok(())
}
