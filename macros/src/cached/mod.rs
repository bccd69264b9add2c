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
    let args = attr::Args::parse(args);
    let item = syn::parse2::<syn::ItemFn>(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`#[cached]` applies to a function with a body: {e}"),
        )
    });
    // Report argument and item errors together.
    let (args, item) = match (args, item) {
        (Ok(a), Ok(i)) => (a, i),
        (Err(mut a), Err(i)) => {
            a.combine(i);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let model = valid::check(args, item)?;
    Ok(expand::expand(model))
}
