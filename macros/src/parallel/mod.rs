//! `parallel!`: parse the options and the loop, check them, expand.

mod expand;
mod parse;

use proc_macro2::TokenStream;

/// Expands `parallel!(options; for PAT in EXPR => BODY)`. On error, emits the errors only:
/// the macro is an expression, and there is no user item to keep.
pub fn expand(input: TokenStream) -> TokenStream {
    match parse::Model::parse(input) {
        Ok(model) => expand::expand(&model),
        Err(e) => e.to_compile_error(),
    }
}
