//! Compile errors of the macros, and tricky inputs that must compile, checked with trybuild.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/cached/*.rs");
    t.pass("tests/ui/cached/pass/*.rs");
    if !cfg!(feature = "remote") {
        t.compile_fail("tests/ui/cached/remote_off/*.rs");
    }
    t.compile_fail("tests/ui/parallel/*.rs");
    t.pass("tests/ui/parallel/pass/*.rs");
    if cfg!(feature = "processes") {
        t.compile_fail("tests/ui/parallel/processes/*.rs");
        t.pass("tests/ui/parallel/processes/pass/*.rs");
    } else {
        t.compile_fail("tests/ui/parallel/processes_off/*.rs");
    }
}
