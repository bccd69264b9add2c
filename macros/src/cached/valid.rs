//! Checks the function `#[cached]` is applied to and builds the model that expansion reads.
//!
//! Every check runs, and every failure is kept, so that the user sees all mistakes at once.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident};
use syn::{
    FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReceiverKind, ReturnType, Type,
};

use super::attr::Args;
use crate::errors::Errors;

/// A checked `#[cached]` function.
pub struct Model {
    pub args: Args,
    pub item: ItemFn,
    pub params: Vec<Param>,
    /// The function has a `self` receiver, or names `Self`: it sits in an `impl` block, where
    /// no companion item can be added beside it.
    pub in_impl: bool,
    /// The receiver is part of the key (it is, unless listed in `ignore`).
    pub hash_self: bool,
    pub output: Output,
    pub fingerprint: u128,
}

/// One typed parameter.
pub struct Param {
    /// The name the parameter is passed by: the user's identifier, or `__argN` for a pattern.
    pub name: Ident,
    /// The user's pattern when it is more than an identifier; it is bound inside the body.
    pub pattern: Option<Pat>,
    /// `mut` on a plain identifier.
    pub mutable: bool,
    pub ty: Type,
    /// Part of the key (not listed in `ignore`).
    pub hashed: bool,
}

/// What the function returns.
pub enum Output {
    /// Any value: it is stored.
    Plain(Type),
    /// `Result<T, E>`: only `Ok(T)` is stored, and `E` need not be serializable.
    Result { ok: Type },
}

impl Output {
    /// The type that is stored.
    pub fn stored(&self) -> &Type {
        match self {
            Output::Plain(ty) | Output::Result { ok: ty } => ty,
        }
    }
}

/// Checks `item`, adding to the `errors` already found in the arguments.
pub fn check(args: Args, item: ItemFn, mut errors: Errors) -> syn::Result<Model> {
    let sig = &item.sig;

    if let Some(c) = &sig.constness {
        errors.error(
            c.span,
            "`#[cached]` cannot apply to a `const fn`: a cached call reads and writes files at run time; remove `const`",
        );
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "`#[cached]` cannot apply to a variadic function");
    }

    let output = match &sig.output {
        ReturnType::Default => {
            errors.error(
                sig.paren_token.span.close(),
                format!(
                    "`#[cached]` needs a return value to store, but `{}` returns nothing: add a return type, as in `-> u64`",
                    sig.ident
                ),
            );
            None
        }
        ReturnType::Type(_, ty) => output_of(ty, &mut errors),
    };

    // `Self` anywhere, signature or body, means an `impl` block. (An associated function that
    // never names `Self` cannot be told apart from a free function.)
    let mut in_impl =
        mentions_self(&sig.to_token_stream()) || mentions_self(&item.block.to_token_stream());
    let mut hash_self = false;
    let mut params = Vec::new();
    let mut names = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => {
                in_impl = true;
                hash_self = true;
                names.push("self".to_owned());
                let mutable_ref = match &receiver.kind {
                    ReceiverKind::Reference(_, _, m) => m.is_some(),
                    ReceiverKind::Typed(_, ty) => is_mut_ref(ty),
                    _ => false,
                };
                if mutable_ref {
                    errors.spanned(
                        receiver,
                        "`#[cached]` cannot apply to a method taking `&mut self`: a cache hit skips the body, so its changes to `self` would be lost; take `&self`",
                    );
                }
            }
            FnArg::Typed(arg) => {
                if is_mut_ref(&arg.ty) {
                    errors.spanned(
                        &arg.ty,
                        "`#[cached]` cannot take a `&mut` parameter: a cache hit skips the body, so its changes through the reference would be lost; take the value or a shared reference",
                    );
                }
                let (name, pattern, mutable) = match &*arg.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                        (p.ident.clone(), None, p.mutability.is_some())
                    }
                    other => (
                        format_ident!("__arg{}", index, span = Span::mixed_site()),
                        Some(other.clone()),
                        false,
                    ),
                };
                if pattern.is_none() {
                    names.push(name.to_string());
                }
                params.push(Param {
                    name,
                    pattern,
                    mutable,
                    ty: (*arg.ty).clone(),
                    hashed: true,
                });
            }
        }
    }

    for ignored in &args.ignore {
        let text = ignored.to_string();
        if text == "self" && hash_self {
            hash_self = false;
        } else if let Some(p) = params
            .iter_mut()
            .find(|p| p.pattern.is_none() && p.name == text)
        {
            p.hashed = false;
        } else {
            let known = match names.as_slice() {
                [] => "it has no named parameters".to_owned(),
                names => format!(
                    "its parameters are {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let patterns = if params.iter().any(|p| p.pattern.is_some()) {
                "; a destructured parameter cannot be ignored: give it a name and destructure it in the body"
            } else {
                ""
            };
            errors.error(
                ignored.span(),
                format!(
                    "`ignore` names `{text}`, which is not a parameter of `{}`; {known}{patterns}",
                    sig.ident
                ),
            );
        }
    }

    if args.controls.as_ref().is_some_and(|c| !c.value) {
        in_impl = true;
    }
    errors.finish()?;
    let fingerprint = super::fingerprint::of(&item);
    Ok(Model {
        args,
        output: output.expect("a missing return type is an error above"),
        item,
        params,
        in_impl,
        hash_self,
        fingerprint,
    })
}

fn output_of(ty: &Type, errors: &mut Errors) -> Option<Output> {
    match ty {
        Type::Tuple(t) if t.elems.is_empty() => {
            errors.spanned(
                ty,
                "`#[cached]` needs a return value to store, but this function returns `()`: return the value to cache",
            );
            None
        }
        Type::ImplTrait(_) => {
            errors.spanned(
                ty,
                "`#[cached]` cannot store an `impl Trait` result: a hit must rebuild the value, so name the concrete type",
            );
            None
        }
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            if last.ident != "Result" {
                return Some(Output::Plain(ty.clone()));
            }
            match &last.arguments {
                PathArguments::AngleBracketed(a) => match a.args.first() {
                    Some(GenericArgument::Type(ok)) => Some(Output::Result { ok: ok.clone() }),
                    _ => Some(Output::Plain(ty.clone())),
                },
                _ => Some(Output::Plain(ty.clone())),
            }
        }
        Type::Paren(p) => output_of(&p.elem, errors),
        _ => Some(Output::Plain(ty.clone())),
    }
}

fn is_mut_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => r.mutability.is_some(),
        Type::Paren(p) => is_mut_ref(&p.elem),
        Type::Group(g) => is_mut_ref(&g.elem),
        _ => false,
    }
}

/// Whether `Self` appears, leaving out the blocks of nested `impl` and `trait` items, whose
/// `Self` is their own.
fn mentions_self(tokens: &TokenStream) -> bool {
    let mut nested_item = false;
    tokens.clone().into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => {
            if i == "impl" || i == "trait" {
                nested_item = true;
            }
            i == "Self" && !nested_item
        }
        TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace && nested_item => {
            nested_item = false;
            false
        }
        TokenTree::Group(g) => mentions_self(&g.stream()),
        TokenTree::Punct(p) if p.as_char() == ';' => {
            nested_item = false;
            false
        }
        _ => false,
    })
}
