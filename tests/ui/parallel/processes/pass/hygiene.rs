//! The processes expansion survives odd user code: modules shadowing `core` and `std`, and
//! user names that look like the generated ones. (Not `#![no_implicit_prelude]`: there the
//! `#[diagnostic::on_unimplemented]` of the per-variable checks does not resolve, a limit of
//! rustc's tool attributes.)
#![deny(warnings)]

#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod std {}

fn main() {
    let __captures = 1u64;
    let __isolation = 2u64;
    let __body = 3u64;
    let __tasks = 4u64;
    let out = joblet::parallel!(backend = processes, n_jobs = 2, max_memory = "4 GiB", timeout = 60;
        for i in 0..4u64 => i + __captures + __isolation + __body + __tasks);
    ::std::assert_eq!(out, [10, 11, 12, 13]);
}
