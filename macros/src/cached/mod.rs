//! `#[cached]`: parse the arguments and the function, check them, expand.

mod attr;
mod expand;
mod fingerprint;
mod reach;
mod signature;
mod valid;

use std::path::Path;

use proc_macro2::TokenStream;
use quote::quote;

/// Expands `#[cached(args)] item`. On any error, emits the errors *and the user's item
/// unchanged*, so that callers of the function see one error, not a cascade.
///
/// `file` is the file the attribute is written in, when the compiler says: the function's
/// fingerprint covers what it reaches in its crate from there.
pub fn expand(args: TokenStream, item: TokenStream, file: Option<&Path>) -> TokenStream {
    match try_expand(args, item.clone(), file) {
        Ok(tokens) => tokens,
        Err(e) => {
            let errors = e.to_compile_error();
            quote!(#errors #item)
        }
    }
}

fn try_expand(
    args: TokenStream,
    item: TokenStream,
    file: Option<&Path>,
) -> syn::Result<TokenStream> {
    let mut errors = crate::errors::Errors::default();
    let args = attr::Args::parse(args, &mut errors);
    let item = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(item) => item,
        Err(e) => {
            // A declaration without a body (in a trait) parses as a trait item.
            match syn::parse2::<syn::TraitItemFn>(item) {
                Ok(decl) if decl.default.is_none() => errors.spanned(
                    &decl.sig,
                    "`#[cached]` needs the function's body, which this declaration does not have; put the attribute on the implementation instead",
                ),
                _ => errors.error(
                    e.span(),
                    format!("`#[cached]` applies to a function with a body: {e}"),
                ),
            }
            return Err(errors.finish().expect_err("an error was just pushed"));
        }
    };
    let mut model = valid::check(args, item, errors)?;
    model.fingerprint = reach::fingerprint(&model.item, model.fingerprint, file);
    Ok(expand::expand(model))
}
