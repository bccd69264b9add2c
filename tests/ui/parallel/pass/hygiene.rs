//! The expansion survives odd user code: no prelude, modules shadowing `core` and `std`, and
//! user names that look like the generated ones.
#![no_implicit_prelude]
#![deny(warnings)]

extern crate joblet;

#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod std {}

fn main() {
    let __opts = 1u64;
    let __tasks = 2u64;
    let __task = 3u64;
    let __kind = 4u64;
    let out = joblet::parallel!(n_jobs = 2, batch_size = 3, verbose = 0; for i in 0..10u64 => i + __opts + __tasks + __task + __kind);
    let _ = out;
    let words = ["a", "bb"];
    let _ = joblet::parallel!(for w in &words => w.len());
    let _ = joblet::parallel!(backend = sequential; for (a, b) in [(1, 2), (3, 4)] => a * b);
    let firsts = joblet::parallel!(n_jobs = 2, pre_dispatch = 3, return_as = generator;
        for i in 0..10u64 => i * __opts);
    let _ = ::std::iter::Iterator::count(::std::iter::Iterator::take(firsts, 3));
    let lazy = joblet::parallel!(backend = sequential, return_as = generator; for i in 0..3u64 => i);
    let _ = ::std::iter::Iterator::count(lazy);
}
