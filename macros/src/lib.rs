//! Procedural macros of [joblet](https://docs.rs/joblet). Use them through the `joblet` crate:
//! the code they generate names `::joblet::__private`, which only exists there.

mod cached;
mod errors;
mod parallel;

use proc_macro::TokenStream;

/// Caches a function's results on disk. See `joblet::cached` for the documentation.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    // The file the attribute is written in: the fingerprint follows the function's references
    // from there.
    let file = proc_macro::Span::call_site().local_file();
    cached::expand(args.into(), item.into(), file.as_deref()).into()
}

/// Runs a loop's tasks in parallel. See `joblet::parallel!` for the documentation.
#[proc_macro]
pub fn parallel(input: TokenStream) -> TokenStream {
    parallel::expand(input.into()).into()
}
