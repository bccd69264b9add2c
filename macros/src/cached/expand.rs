//! Generates the code of a checked `#[cached]` function. Expansion cannot fail.
//!
//! A free function gets a companion: a braced struct of the same name. A braced struct lives
//! only in the type namespace, where functions never do, so the name is free and no new name
//! is invented; it carries the controls `is_cached`, `refresh` and `clear` and the function's
//! machinery. A function inside an `impl` block (it has a receiver or names `Self`) cannot have
//! a companion, since an attribute cannot add items to a trait impl: its body is rewritten in
//! place.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericParam, Ident, Signature, Type};

use super::signature::{
    contains_impl_trait, params, return_type, rewrite_sig, sort_attrs, turbofish, unsafety,
};
use super::valid::{Model, Output, Param};

pub fn expand(model: Model) -> TokenStream {
    if model.in_impl {
        in_place(&model)
    } else {
        with_companion(&model)
    }
}

// Input:
//     #[cached(dir = "cache")]
//     pub fn square(x: u64, (a, b): (u8, u8)) -> u64 { x * x + a + b }
//
// Output:
//     pub fn square(x: u64, __arg1: (u8, u8)) -> u64 {
//         square::__run(Mode::Call, x, __arg1)
//     }
//     pub struct square {}
//     impl square {
//         fn __site() -> &'static Site {
//             static __SITE: Site = Site::new(module_path!(), "square", None, <fingerprint>, "",
//                 Some({ fn __joblet_dir() -> PathBuf { dir_path("cache") } __joblet_dir }))
//                 .verbose(0);
//             &__SITE
//         }
//         fn __key(__key: &mut CallKey, x: &u64, __arg1: &(u8, u8)) {
//             Self::__site().start_key(__key, None);
//             __key.arg::<u64>(x);
//             __key.arg::<(u8, u8)>(__arg1);
//         }
//         fn __run(__mode: Mode, x: u64, __arg1: (u8, u8)) -> u64 {
//             assert_output::<u64>();
//             let __site = Self::__site();
//             let mut __key = CallKey::new(); // in place: it holds a 4 KiB buffer
//             Self::__key(&mut __key, &x, &__arg1);
//             match __site.begin::<u64>(__mode, None, &mut __key, <decoder of u64>) {
//                 Begin::Hit(__value) => __value,
//                 Begin::Compute(mut __pending) => {
//                     __site.describe(&mut __pending, |__args| { .. });
//                     let __value = (move || -> u64 { let (a, b) = __arg1; x * x + a + b })();
//                     __site.finish::<u64>(__pending, __value)
//                 }
//             }
//         }
//         pub fn is_cached(x: u64, __arg1: (u8, u8)) -> bool { .. }
//         pub fn refresh(x: u64, __arg1: (u8, u8)) -> u64 { Self::__run(Mode::Refresh, x, __arg1) }
//         pub fn clear() -> Result<(), Error> { Self::__site().clear() }
//     }
fn with_companion(model: &Model) -> TokenStream {
    let item = &model.item;
    let sig = &item.sig;
    let ident = &sig.ident;
    let vis = &item.vis;
    let (everywhere, lints, main_only) = sort_attrs(&item.attrs);
    let private = quote!(::joblet::__private);
    let key = Ident::new("__key", Span::mixed_site());
    let site = Ident::new("__site", Span::mixed_site());
    let mode = Ident::new("__mode", Span::mixed_site());

    let turbofish = turbofish(sig);
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let ret = return_type(sig);
    let asyncness = &sig.asyncness;
    let unsafety = unsafety(sig);
    let dot_await = sig.asyncness.map(|_| quote!(.await));
    let call_mode = call_mode(sig);
    let names: Vec<&Ident> = model.params.iter().map(|p| &p.name).collect();
    let hashed: Vec<&Param> = model.params.iter().filter(|p| p.hashed).collect();
    let hashed_names: Vec<&Ident> = hashed.iter().map(|p| &p.name).collect();

    // The user's signature, with patterns replaced by their `__argN` names and `mut` dropped
    // (the main function only passes its arguments on).
    let main_sig = rewrite_sig(sig, &model.params, false);
    let run_params = params(&model.params, true);
    let plain_params = params(&model.params, false);
    let key_params = hashed.iter().map(|p| {
        let (name, ty) = (&p.name, &p.ty);
        match ty {
            // Parenthesized: `&impl A + B` would not parse.
            Type::ImplTrait(_) | Type::TraitObject(_) => quote!(#name: &(#ty)),
            _ => quote!(#name: &#ty),
        }
    });
    let key_args = hashed.iter().map(|p| hash_arg(&key, &p.name, &p.ty, false));
    let type_keys = generic_keys(sig, &key);

    let site_init = site_init(model);
    let stored = model.output.stored();
    let assert_output = assert_output(stored);
    let load_or_compute = load_or_compute(
        model,
        &site,
        &key,
        &quote!(#mode),
        &quote!(::core::option::Option::None),
        &ret,
    );
    let call_unsafe = |call: TokenStream| match unsafety {
        Some(_) => quote!(#[allow(unused_unsafe)] unsafe { #call }),
        None => call,
    };
    let main_call = call_unsafe(
        quote!(#ident::__run #turbofish (#private::#call_mode, #(#names),*) #dot_await),
    );
    let refresh_call = call_unsafe(
        quote!(Self::__run #turbofish (#private::Mode::Refresh, #(#names),*) #dot_await),
    );
    let doc = format!(
        "Cache controls of [`{ident}`](fn@{ident}), made by `#[joblet::cached]`: check for a stored result, recompute one, or clear them all."
    );

    quote! {
        #(#everywhere)*
        #(#lints)*
        #(#main_only)*
        #vis #main_sig {
            #main_call
        }

        #(#everywhere)*
        #[doc = #doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}

        #(#everywhere)*
        #[allow(dead_code, clippy::all)]
        impl #ident {
            #[doc(hidden)]
            #[inline]
            fn __site() -> &'static #private::Site {
                static __SITE: #private::Site = #site_init;
                &__SITE
            }

            #[doc(hidden)]
            #[inline]
            fn __key #generics (#key: &mut #private::CallKey, #(#key_params),*) #where_clause {
                Self::__site().start_key(#key, ::core::option::Option::None);
                #type_keys
                #(#key_args)*
            }

            #[doc(hidden)]
            #(#lints)*
            #asyncness #unsafety fn __run #generics (#mode: #private::Mode, #(#run_params),*) -> #ret #where_clause {
                #assert_output
                let #site = Self::__site();
                // Built in place: the key holds a 4 KiB buffer, which a move would copy.
                let mut #key = #private::CallKey::new();
                Self::__key #turbofish (&mut #key, #(&#hashed_names),*);
                #load_or_compute
            }

            /// Whether a call with these arguments has a valid stored result. Computes nothing.
            #[allow(unused_variables)]
            pub fn is_cached #generics (#(#plain_params),*) -> bool #where_clause {
                let mut #key = #private::CallKey::new();
                Self::__key #turbofish (&mut #key, #(&#hashed_names),*);
                Self::__site().contains::<#stored>(&mut #key)
            }

            /// Calls the function bypassing the cache: computes, stores the result in place of
            /// any stored one, and returns it.
            pub #asyncness #unsafety fn refresh #generics (#(#plain_params),*) -> #ret #where_clause {
                #refresh_call
            }

            /// Removes every stored result of the function, for every version of its code.
            ///
            /// # Errors
            /// Fails when the function's cache folder exists but cannot be removed.
            pub fn clear() -> ::core::result::Result<(), #private::Error> {
                Self::__site().clear()
            }
        }
    }
}

// Input:
//     impl Model {
//         #[cached(dir = "cache")]
//         fn predict(&self, x: f64) -> f64 { self.w * x }
//     }
//
// Output:
//     impl Model {
//         fn predict(&self, x: f64) -> f64 {
//             let __site: &'static Site = { static __SITE: Site = Site::new(...); &__SITE };
//             assert_output::<f64>();
//             let __self_ty = Some(type_name_of_val(&|| ())); // `<Model>::predict::{{closure}}`
//             let mut __key = CallKey::new();
//             __site.start_key(&mut __key, __self_ty);
//             __key.arg(&self);
//             __key.arg::<f64>(&x);
//             match __site.begin::<f64>(Mode::Call, __self_ty, &mut __key, <decoder of f64>) {
//                 Begin::Hit(__value) => __value,
//                 Begin::Compute(mut __pending) => {
//                     __site.describe(&mut __pending, |__args| { .. });
//                     let __value = (move || -> f64 { self.w * x })();
//                     __site.finish::<f64>(__pending, __value)
//                 }
//             }
//         }
//     }
fn in_place(model: &Model) -> TokenStream {
    let item = &model.item;
    let sig = &item.sig;
    let vis = &item.vis;
    let attrs = &item.attrs;
    let call_mode = call_mode(&item.sig);
    let private = quote!(::joblet::__private);
    let key = Ident::new("__key", Span::mixed_site());
    let site = Ident::new("__site", Span::mixed_site());
    let self_ty = Ident::new("__self_ty", Span::mixed_site());

    let main_sig = rewrite_sig(sig, &model.params, true);
    let ret = return_type(sig);
    let site_init = site_init(model);
    let type_keys = generic_keys(sig, &key);
    let receiver_key = sig.receiver().filter(|_| model.hash_self).map(|r| {
        let self_token = &r.self_token;
        quote_spanned!(r.span()=> #key.arg(&#self_token);)
    });
    let arg_keys = model
        .params
        .iter()
        .filter(|p| p.hashed)
        .map(|p| hash_arg(&key, &p.name, &p.ty, true));
    let assert_output = assert_output(model.output.stored());
    let load_or_compute = load_or_compute(
        model,
        &site,
        &key,
        &quote!(#private::#call_mode),
        &quote!(#self_ty),
        &ret,
    );

    quote! {
        #(#attrs)*
        #vis #main_sig {
            // In a block of its own, so that the user's body may use any name for its locals.
            let #site: &'static #private::Site = {
                static __SITE: #private::Site = #site_init;
                &__SITE
            };
            #assert_output
            // The path of a closure in the body names every generic in force: the impl's, a
            // trait's, the method's. `type_name::<Self>()` would miss the impl's and trait's.
            let #self_ty = ::core::option::Option::Some(::core::any::type_name_of_val(&|| ()));
            let mut #key = #private::CallKey::new();
            #site.start_key(&mut #key, #self_ty);
            #type_keys
            #receiver_key
            #(#arg_keys)*
            #load_or_compute
        }
    }
}

/// The load-or-compute-and-store step both expansions end with: a hit returns the stored
/// value; a miss runs the body and stores its value.
fn load_or_compute(
    model: &Model,
    site: &Ident,
    key: &Ident,
    mode: &TokenStream,
    self_ty: &TokenStream,
    ret: &TokenStream,
) -> TokenStream {
    let private = quote!(::joblet::__private);
    // Locals that hold the outcome, invisible to the user's tokens.
    let value = Ident::new("__value", Span::mixed_site());
    let pending = Ident::new("__pending", Span::mixed_site());
    let (begin, finish) = steps(&model.output);
    let decoder = decoder(model.output.stored());
    let body = compute(model, ret);
    let describe = describe(model, site, &pending);
    quote! {
        match #site.#begin(#mode, #self_ty, &mut #key, #decoder) {
            #private::Begin::Hit(#value) => #value,
            #private::Begin::Compute(mut #pending) => {
                #describe
                let #value = #body;
                #site.#finish(#pending, #value)
            }
        }
    }
}

// Input:
//     #[cached(ignore = [log])]
//     fn f(&self, x: u64, log: Log)
//
// Output:
//     __site.describe(&mut __pending, |__args| {
//         (&Show(&self)).render(__args);
//         (&Show(&x)).render(__args);
//         __args.ignored();
//     });
/// Renders the arguments of a computed call, `Debug` where their types have it (autoref
/// specialization picks), for the entry and the `[Memory]` lines.
fn describe(model: &Model, site: &Ident, pending: &Ident) -> TokenStream {
    let private = quote!(::joblet::__private);
    let args = Ident::new("__args", Span::mixed_site());
    let receiver = model
        .item
        .sig
        .receiver()
        .filter(|_| model.hash_self)
        .map(|r| {
            let self_token = &r.self_token;
            quote!((&#private::Show(&#self_token)).render(#args);)
        });
    let each = model.params.iter().map(|p| {
        let name = &p.name;
        if p.hashed {
            quote!((&#private::Show(&#name)).render(#args);)
        } else {
            quote!(#args.ignored();)
        }
    });
    quote! {
        #site.describe(&mut #pending, |#args: &mut #private::Args| {
            // Only one of the two is used, whichever method resolution picks.
            #[allow(unused_imports)]
            use #private::{ViaDebug as _, ViaName as _};
            #receiver
            #(#each)*
        });
    }
}

/// `Site::new(...)` for this function.
fn site_init(model: &Model) -> TokenStream {
    let private = quote!(::joblet::__private);
    let name = model.item.sig.ident.to_string();
    let fingerprint = model.fingerprint;
    let version = model
        .args
        .version
        .as_ref()
        .map_or_else(|| quote!(""), ToTokens::to_token_stream);
    let rename = match &model.args.name {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let dir = match &model.args.dir {
        Some(expr) => {
            // An object store's URL fails to compile, at the literal, without `remote`.
            let mut to_path = quote_spanned!(expr.span()=> #private::dir_path(#expr));
            if let Some(url) = super::attr::url_literal(expr) {
                let enabled = quote_spanned!(url.span()=> #private::remote_enabled::<()>(););
                to_path = quote!({ #enabled #to_path });
            }
            quote!(::core::option::Option::Some({
                fn __joblet_dir() -> ::std::path::PathBuf {
                    #to_path
                }
                __joblet_dir
            }))
        }
        None => quote!(::core::option::Option::None),
    };
    let verbose = match &model.args.verbose {
        Some(n) => quote!(#n),
        None => quote!(0),
    };
    // Evaluated in the static's initializer, so that a size that does not parse is a compile
    // error at the literal.
    let max_size = model.args.max_size.as_ref().map(|lit| {
        quote_spanned! {lit.span()=>
            .max_size(match #private::size_in_bytes(#lit) {
                ::core::result::Result::Ok(bytes) => bytes,
                ::core::result::Result::Err(why) => ::core::panic!("{}", why.in_attribute()),
            })
        }
    });
    // The same, so that a duration that does not parse is a compile error at the literal.
    let expires = model.args.expires.as_ref().map(|lit| {
        quote_spanned! {lit.span()=>
            .expires(match #private::duration_of(#lit) {
                ::core::result::Result::Ok(age) => age,
                ::core::result::Result::Err(why) => ::core::panic!("{}", why.in_attribute()),
            })
        }
    });
    // A function of another type is an error at the path.
    let validate = model
        .args
        .validate
        .as_ref()
        .map(|check| quote_spanned!(check.span()=> .validate(#check)));
    quote! {
        #private::Site::new(::core::module_path!(), #name, #rename, #fingerprint, #version, #dir)
            .verbose(#verbose)
            #max_size
            #expires
            #validate
    }
}

/// The expression that runs the user's body and yields its value.
fn compute(model: &Model, ret: &TokenStream) -> TokenStream {
    let stmts = &model.item.block.stmts;
    let bindings = model.params.iter().filter_map(|p| {
        let pat = p.pattern.as_ref()?;
        let name = &p.name;
        Some(quote!(let #pat = #name;))
    });
    if model.item.sig.asyncness.is_some() {
        // The helper pins the block's output type, so that `?` inside it infers its error type.
        quote!(::joblet::__private::typed_future::<#ret, _>(async move { #(#bindings)* #(#stmts)* }).await)
    } else {
        quote!((move || -> #ret { #(#bindings)* #(#stmts)* })())
    }
}

/// The `begin` and `finish` steps for this kind of output.
fn steps(output: &Output) -> (TokenStream, TokenStream) {
    match output {
        Output::Plain(ty) => (
            quote_spanned!(ty.span()=> begin::<#ty>),
            quote_spanned!(ty.span()=> finish::<#ty>),
        ),
        Output::Result { ok } => (
            quote_spanned!(ok.span()=> begin_ok::<#ok, _>),
            quote_spanned!(ok.span()=> finish_ok::<#ok, _>),
        ),
    }
}

/// How a plain call treats the cache: an `async` function never blocks its thread to wait for
/// another computing the same call (that task could need this very thread).
fn call_mode(sig: &syn::Signature) -> TokenStream {
    if sig.asyncness.is_some() {
        quote!(Mode::CallAsync)
    } else {
        quote!(Mode::Call)
    }
}

/// The decoder of the stored type, chosen by autoref specialization: a bulk copy for vectors of
/// fixed-width numbers, serde otherwise.
fn decoder(stored: &Type) -> TokenStream {
    quote_spanned! {stored.span()=> {
        // Only one of the two is used, whichever method resolution picks.
        #[allow(unused_imports)]
        use ::joblet::__private::{ViaBulk as _, ViaSerde as _};
        (&&::joblet::__private::Codec::<#stored>::new()).decoder()
    }}
}

/// A check that the stored type is serializable, reported at the type.
fn assert_output(stored: &Type) -> TokenStream {
    quote_spanned!(stored.span()=> ::joblet::__private::assert_output::<#stored>();)
}

/// Feeds one argument into the key; a non-serializable type is reported at the type.
fn hash_arg(key: &Ident, name: &Ident, ty: &Type, by_value: bool) -> TokenStream {
    let value = if by_value {
        quote!(&#name)
    } else {
        quote!(#name)
    };
    if contains_impl_trait(ty) {
        // An `impl Trait` type cannot be named in a turbofish; its concrete type is in the key.
        quote_spanned!(ty.span()=> #key.ty_of(#value).arg(#value);)
    } else {
        quote_spanned!(ty.span()=> #key.arg::<#ty>(#value);)
    }
}

/// The concrete types and const values of a generic function are part of its key.
fn generic_keys(sig: &Signature, key: &Ident) -> TokenStream {
    sig.generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => {
                let ident = &t.ident;
                Some(quote!(#key.ty::<#ident>();))
            }
            GenericParam::Const(c) => {
                let ident = &c.ident;
                Some(quote!(#key.arg(&#ident);))
            }
            GenericParam::Lifetime(_) => None,
        })
        .collect()
}
