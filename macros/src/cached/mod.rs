//! `#[cached]`: parse the arguments and the function, check them, expand.

mod attr;
mod expand;
mod fingerprint;
mod valid;

use proc_macro2::TokenStream;
use quote::quote;

/// Expands `#[cached(args)] item`. On any error, emits the errors *and the user's item
/// unchanged*, so that callers of the function see one error, not a cascade.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(e) => {
            let errors = e.to_compile_error();
            quote!(#errors #item)
        }
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = attr::Errors::default();
    let args = attr::Args::parse(args, &mut errors);
    let item = match syn::parse2::<syn::ItemFn>(item) {
        Ok(item) => item,
        Err(e) => {
            errors.error(
                e.span(),
                format!("`#[cached]` applies to a function with a body: {e}"),
            );
            return Err(errors.finish().expect_err("an error was just pushed"));
        }
    };
    let model = valid::check(args, item, errors)?;
    Ok(expand::expand(model))
}
