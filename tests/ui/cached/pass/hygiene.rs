//! The expansion survives odd user code: no prelude, modules shadowing `core` and `std`, and
//! user names that look like the generated ones.
#![no_implicit_prelude]

extern crate joblet;
extern crate serde;

#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod std {}

#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Result;

fn fresh(entry: &joblet::EntryInfo) -> bool {
    entry.hits < 100
}

#[joblet::cached(dir = "target/ui-hygiene", expires = "2h", validate = fresh)]
fn f(__mode: u32, __key: u32, __site: u32) -> u32 {
    let __value = __mode + __key;
    let __pending = __site;
    __value + __pending
}

#[derive(serde::Serialize)]
struct Model(u32);

impl Model {
    #[joblet::cached(dir = "target/ui-hygiene")]
    #[allow(non_snake_case)]
    fn get(&self, __self_ty: u32) -> u32 {
        let __SITE = self.0;
        __SITE + __self_ty
    }
}

fn main() {
    let _ = f(1, 2, 3);
    let _ = f::is_cached(1, 2, 3);
    let _ = Model(1).get(2);
}
