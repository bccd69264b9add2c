//! Writes the seed corpus of the `load` target: valid files of each type it loads, every
//! compression among them, for the fuzzer to start from.

use std::path::Path;

use joblet_fuzz::fuzz_input;

fn main() -> Result<(), joblet::Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/load");
    std::fs::create_dir_all(&dir)?;
    fuzz_input::write_seeds(&dir)?;
    println!("seeds in {}", dir.display());
    Ok(())
}
