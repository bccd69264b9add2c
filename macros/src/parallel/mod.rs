//! `parallel!`: parse the options and the loop, check them, find what the body captures,
//! expand.

mod captures;
mod expand;
mod parse;
mod valid;

use proc_macro2::TokenStream;

use crate::errors::Errors;

/// Expands `parallel!(options; for PAT in EXPR => BODY)`. On error, emits the errors only:
/// the macro is an expression, and there is no user item to keep. They go in a block of type
/// `!`, where several `compile_error!`s may follow one another and no type error follows them.
pub fn expand(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let model = parse::Model::parse(input, &mut errors).map(|mut model| {
        valid::check(&model, &mut errors);
        model.captures = captures::of(&model, &mut errors);
        model
    });
    // Whatever parsing could not read comes after the mistakes found before it.
    let checked = match (model, errors.finish()) {
        (Ok(model), Ok(())) => Ok(model),
        (Ok(_), Err(e)) | (Err(e), Ok(())) => Err(e),
        (Err(e), Err(mut all)) => {
            all.combine(e);
            Err(all)
        }
    };
    match checked {
        Ok(model) => expand::expand(&model),
        Err(e) => {
            let errors = e.to_compile_error();
            quote::quote!({ #errors ::core::unreachable!() })
        }
    }
}
