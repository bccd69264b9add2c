//! Reading and rewriting the user's signature and attributes for the generated items.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Attribute, FnArg, GenericParam, Ident, Pat, PatIdent, PatType, Signature, Type};

use super::valid::Param;

/// `::<T, N>` for the type and const parameters, so that parameters used only in the return
/// type are still known to the helper functions. Lifetimes are inferred.
pub(super) fn turbofish(sig: &Signature) -> TokenStream {
    let args: Vec<&Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            GenericParam::Const(c) => Some(&c.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    if args.is_empty() {
        TokenStream::new()
    } else {
        quote!(::<#(#args),*>)
    }
}

pub(super) fn return_type(sig: &Signature) -> TokenStream {
    match &sig.output {
        syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
        syn::ReturnType::Default => quote!(()),
    }
}

pub(super) fn unsafety(sig: &Signature) -> Option<TokenStream> {
    match &sig.safety {
        syn::Safety::Unsafe(u) => Some(u.to_token_stream()),
        _ => None,
    }
}

/// Parameters as `name: Type`, optionally keeping `mut`.
pub(super) fn params(params: &[Param], keep_mut: bool) -> Vec<TokenStream> {
    params
        .iter()
        .map(|p| {
            let (name, ty) = (&p.name, &p.ty);
            let mutability = (keep_mut && p.mutable).then(|| quote!(mut));
            quote!(#mutability #name: #ty)
        })
        .collect()
}

/// The signature with each pattern parameter replaced by its `__argN` name.
pub(super) fn rewrite_sig(sig: &Signature, params: &[Param], keep_mut: bool) -> Signature {
    let mut sig = sig.clone();
    let mut typed = params.iter();
    for input in sig.inputs.iter_mut() {
        if let FnArg::Typed(PatType { pat, .. }) = input {
            let p = typed.next().expect("one Param per typed input");
            if p.pattern.is_some() || !keep_mut {
                **pat = Pat::Ident(PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: p.name.clone(),
                    subpat: None,
                });
            }
        }
    }
    sig
}

/// Splits attributes into those every generated item needs (`cfg`), lint levels (which the
/// body needs wherever it moves), and the rest (docs and others, for the function only).
pub(super) fn sort_attrs(
    attrs: &[Attribute],
) -> (Vec<&Attribute>, Vec<&Attribute>, Vec<&Attribute>) {
    let mut everywhere = Vec::new();
    let mut lints = Vec::new();
    let mut rest = Vec::new();
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("cfg") || path.is_ident("cfg_attr") {
            everywhere.push(attr);
        } else if ["allow", "warn", "deny", "forbid", "expect"]
            .iter()
            .any(|lint| path.is_ident(lint))
        {
            lints.push(attr);
        } else {
            rest.push(attr);
        }
    }
    (everywhere, lints, rest)
}

pub(super) fn contains_impl_trait(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => i == "impl",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}
