//! The resolver over syntax, on crates written in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;

use super::index::{self, Index, Sources};
use super::resolve::Crates;
use super::{reach_from, scan};

struct Memory(HashMap<PathBuf, String>);

impl Sources for Memory {
    fn tokens(&mut self, path: &Path) -> Option<TokenStream> {
        self.0.get(path)?.parse().ok()
    }
}

fn crate_of(files: &[(&str, &str)]) -> Index {
    let files = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()));
    let mut sources = Memory(files.collect());
    index::build(Path::new("src/lib.rs"), &mut sources)
}

/// What `name`, written in `file`, reaches: `module::name` of each item, sorted.
fn reached_in(indexes: Vec<&Index>, lib: Option<&str>, file: &str, name: &str) -> Vec<String> {
    let crates = Crates {
        indexes,
        lib_name: lib.map(str::to_owned),
    };
    let (reach, found) = reach_from(&crates, Path::new(file), name, 0, scan::Refs::default);
    assert!(found, "{name} not found in {file}");
    let mut out: Vec<String> = reach
        .items
        .iter()
        .map(|&(k, id)| {
            let index = crates.indexes[k];
            let item = &index.items[id];
            let owner = item
                .self_name
                .as_deref()
                .map(|s| format!("{s}."))
                .unwrap_or_default();
            let name = match (&item.kind, item.name.as_str()) {
                (super::Kind::Impl { .. }, _) => "impl",
                (_, "") => "macro",
                (_, name) => name,
            };
            format!("{}::{owner}{name}", index.modules[item.module].path)
        })
        .collect();
    out.sort();
    out
}

fn reached(files: &[(&str, &str)], name: &str) -> Vec<String> {
    let index = crate_of(files);
    reached_in(vec![&index], None, "src/lib.rs", name)
}

#[test]
fn helpers_in_module_files_consts_and_methods() {
    let got = reached(
        &[
            (
                "src/lib.rs",
                "mod helpers; mod shapes; use shapes::Shape;
                 const OFFSET: u64 = 10;
                 fn local_helper(x: u64) -> u64 { helpers::scale(x) + OFFSET }
                 fn work(x: u64) -> u64 { local_helper(x) + Shape { w: 1 }.area() }
                 fn unrelated() -> u64 { 7 }",
            ),
            (
                "src/helpers.rs",
                "pub fn scale(x: u64) -> u64 { x * 3 } pub fn other() {}",
            ),
            (
                "src/shapes/mod.rs",
                "pub struct Shape { pub w: u64 } impl Shape { pub fn area(&self) -> u64 { self.w * 2 } pub fn perimeter(&self) -> u64 { 0 } }",
            ),
        ],
        "work",
    );
    assert_eq!(
        got,
        [
            "crate::OFFSET",
            "crate::helpers::scale",
            "crate::local_helper",
            "crate::shapes::Shape",
            "crate::shapes::Shape.area",
            "crate::shapes::impl",
        ]
    );
}

#[test]
fn use_renames_globs_super_and_nested_modules() {
    let got = reached(
        &[(
            "src/lib.rs",
            "mod a { pub mod b { pub fn deep() {} pub fn unused() {} }
                         pub fn up() { super::top() } }
                 mod g { pub fn globbed() {} pub const K: u8 = 1; }
                 use a::b::deep as renamed;
                 use g::*;
                 fn top() {}
                 fn work() { renamed(); globbed(); a::up(); self::a::b::deep(); crate::g::K; }",
        )],
        "work",
    );
    assert_eq!(
        got,
        [
            "crate::a::b::deep",
            "crate::a::up",
            "crate::g::K",
            "crate::g::globbed",
            "crate::top",
        ]
    );
}

#[test]
fn use_inside_the_body_and_path_attributes() {
    let got = reached(
        &[
            (
                "src/lib.rs",
                "#[path = \"elsewhere/impl_file.rs\"] mod renamed_file;
                 mod inline { #[path = \"x.rs\"] pub mod inner; }
                 fn work() { use crate::renamed_file::{f as g}; g(); inline::inner::h(); }",
            ),
            ("src/elsewhere/impl_file.rs", "pub fn f() {}"),
            ("src/inline/x.rs", "pub fn h() {}"),
        ],
        "work",
    );
    assert_eq!(got, ["crate::inline::inner::h", "crate::renamed_file::f"]);
}

#[test]
fn a_method_reaches_every_method_of_that_name() {
    let got = reached(
        &[(
            "src/lib.rs",
            "struct A; struct B;
             impl A { fn area(&self) -> u8 { 1 } fn other(&self) {} }
             impl B { fn area(&self) -> u8 { 2 } }
             trait Tr { fn area(&self) -> u8 { 3 } }
             fn work(s: &dyn Tr) -> u8 { s.area() }",
        )],
        "work",
    );
    assert_eq!(
        got,
        [
            "crate::A",
            "crate::A.area",
            "crate::B",
            "crate::B.area",
            "crate::Tr",
            "crate::Tr.area",
            "crate::impl",
            "crate::impl",
        ]
    );
}

#[test]
fn recursion_between_helpers_terminates() {
    let got = reached(
        &[(
            "src/lib.rs",
            "fn even(n: u64) -> bool { n == 0 || odd(n - 1) }
             fn odd(n: u64) -> bool { n != 0 && even(n - 1) }
             fn work(n: u64) -> bool { even(n) || work(n - 1) }",
        )],
        "work",
    );
    assert_eq!(got, ["crate::even", "crate::odd"]);
}

#[test]
fn macros_and_what_they_call() {
    let got = reached(
        &[(
            "src/lib.rs",
            "fn helper() -> u8 { 1 } fn unused() {}
             macro_rules! twice { ($e:expr) => { $e + $crate::helper() } }
             const WIDTH: usize = 3;
             fn arg() -> u8 { 2 }
             fn work() -> u8 { println!(\"{WIDTH}\"); twice!(arg()) }",
        )],
        "work",
    );
    assert_eq!(
        got,
        [
            "crate::WIDTH",
            "crate::arg",
            "crate::helper",
            "crate::twice"
        ]
    );
}

#[test]
fn self_paths_trait_impls_of_reached_types_and_generic_calls() {
    let got = reached(
        &[(
            "src/lib.rs",
            "struct V(u8);
             impl std::ops::Add for V { type Output = V; fn add(self, o: V) -> V { V(self.0 + o.0) } }
             impl V { fn new() -> V { Self::zero() } fn zero() -> V { V(0) } fn unused() {} }
             trait Make { fn make() -> Self; }
             impl Make for u8 { fn make() -> u8 { 4 } }
             fn work<T: Make>() -> T { let _ = V::new() + V(1); T::make() }",
        )],
        "work",
    );
    assert_eq!(
        got,
        [
            "crate::Make",
            "crate::Make.make",
            "crate::V",
            "crate::V.Output",
            "crate::V.add",
            "crate::V.new",
            "crate::V.zero",
            "crate::impl",
            "crate::impl",
            "crate::impl",
            "crate::u8.make",
        ]
    );
}

#[test]
fn the_package_library_is_followed_from_a_binary() {
    let lib = crate_of(&[(
        "src/lib.rs",
        "pub mod helpers { pub fn scale(x: u64) -> u64 { x * 3 } pub fn unused() {} }",
    )]);
    let files = [(
        "src/main.rs",
        "use my_lib::helpers; fn work(x: u64) -> u64 { helpers::scale(x) } fn main() {}",
    )];
    let mut sources = Memory(
        files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect(),
    );
    let bin = index::build(Path::new("src/main.rs"), &mut sources);
    let got = reached_in(vec![&bin, &lib], Some("my_lib"), "src/main.rs", "work");
    assert_eq!(got, ["crate::helpers::scale"]);
}

#[test]
fn a_function_inside_another_reaches_the_whole_of_it() {
    let got = reached(
        &[(
            "src/lib.rs",
            "fn main() { fn helper() -> u8 { 1 } fn work() -> u8 { helper() } work(); } fn other() {}",
        )],
        "work",
    );
    assert_eq!(got, ["crate::main"]);
}

#[test]
fn item_macros_may_define_the_names_they_mention() {
    let got = reached(
        &[(
            "src/lib.rs",
            "thread_local! { static CACHE: u8 = 0; } define! { CONFIG } define! { OTHER }
             fn work() -> u8 { CACHE.with(|c| *c) + CONFIG }",
        )],
        "work",
    );
    assert_eq!(got, ["crate::CACHE", "crate::macro"]);
}

#[test]
fn items_inside_macro_calls_are_read() {
    let got = reached(
        &[
            (
                "src/lib.rs",
                "cfg_if::cfg_if! { if #[cfg(unix)] { mod sys; } else { mod sys_other; } }
                 lazy_static! { static ref TABLE: Vec<u8> = build(); }
                 fn build() -> Vec<u8> { vec![1] }
                 fn work() -> u8 { sys::native() + TABLE[0] }",
            ),
            ("src/sys.rs", "pub fn native() -> u8 { 1 }"),
            ("src/sys_other.rs", "pub fn native() -> u8 { 2 }"),
        ],
        "work",
    );
    assert_eq!(
        got,
        ["crate::TABLE", "crate::build", "crate::sys::native"],
        "the macro calls themselves mention neither name"
    );
}

#[test]
fn statics_and_included_files_are_reached() {
    let files = [
        (
            "src/lib.rs",
            "mod data; static TABLE: [u64; 2] = [1, 2]; static OTHER: u64 = 3;
             fn work(x: u64) -> u64 { TABLE[x as usize] + data::WORDS.len() as u64 }",
        ),
        (
            "src/data.rs",
            "pub const WORDS: &str = include_str!(\"words.txt\");",
        ),
    ];
    assert_eq!(
        reached(&files, "work"),
        ["crate::TABLE", "crate::data::WORDS"]
    );
}

/// The fingerprint itself, over a crate on disk: a file that a reached item includes and a
/// reached static change it; an unreached static does not.
#[test]
fn an_included_file_and_a_reached_static_change_the_fingerprint() {
    let root = std::env::temp_dir().join(format!("joblet-reach-{}", std::process::id()));
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let lib = src.join("lib.rs");
    let write_lib = |table: u64, other: u64| {
        let text = format!(
            "mod data; static TABLE: [u64; 2] = [1, {table}]; static OTHER: u64 = {other};
             fn work(x: u64) -> u64 {{ TABLE[x as usize] + data::WORDS.len() as u64 }}"
        );
        std::fs::write(&lib, text).unwrap();
    };
    let write_words = |words: &str| std::fs::write(src.join("words.txt"), words).unwrap();
    std::fs::write(
        src.join("data.rs"),
        "pub const WORDS: &str = include_str!(\"words.txt\");",
    )
    .unwrap();
    let work: syn::ItemFn =
        syn::parse_str("fn work(x: u64) -> u64 { TABLE[x as usize] + data::WORDS.len() as u64 }")
            .unwrap();
    let fingerprint = || super::of_crate(&work, 0, &lib, &lib);

    write_lib(2, 3);
    write_words("alpha");
    let first = fingerprint();
    write_words("beta");
    let words_edited = fingerprint();
    assert_ne!(first, words_edited, "the included file");
    write_lib(2, 4);
    assert_eq!(fingerprint(), words_edited, "an unreached static");
    write_lib(5, 4);
    assert_ne!(fingerprint(), words_edited, "a reached static");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_missing_module_file_is_reported() {
    let index = crate_of(&[(
        "src/lib.rs",
        "mod gone; #[cfg(windows)] mod off; fn work() {}",
    )]);
    assert_eq!(index.missing, [PathBuf::from("src/gone.rs")]);
}
