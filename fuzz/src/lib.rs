//! What the `load` target and the `seeds` writer share: the types loaded and the seeds, in one
//! crate, so that the types' names, which entries record, are the same in both.

#[path = "../../tests/common/fuzz_input.rs"]
pub mod fuzz_input;

#[path = "../../tests/common/counting.rs"]
pub mod counting;
