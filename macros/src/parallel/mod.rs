//! `parallel!`: parse the options and the loop, check them, expand.

mod captures;
mod expand;
mod parse;

use proc_macro2::TokenStream;

/// Expands `parallel!(options; for PAT in EXPR => BODY)`. On error, emits the errors only:
/// the macro is an expression, and there is no user item to keep. They go in a block of type
/// `!`, where several `compile_error!`s may follow one another and no type error follows them.
pub fn expand(input: TokenStream) -> TokenStream {
    match parse::Model::parse(input) {
        Ok(model) => expand::expand(&model),
        Err(e) => {
            let errors = e.to_compile_error();
            quote::quote!({ #errors ::core::unreachable!() })
        }
    }
}
