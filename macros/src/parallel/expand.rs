//! Generates the code of a checked `parallel!` call. Expansion cannot fail.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::parse::{Backend, BatchSize, Model, OnError, ReturnAs};

// Input:
//     parallel!(n_jobs = 4, batch_size = 1000, verbose = 10; for i in 0..40000 => my_task(i))
//
// Output:
//     {
//         let __opts = Options::new(Some(integer(4)), batch_size(1000), integer(10), false);
//         let __tasks = 0..40000;
//         let __task = task_fn(&__tasks, |i| my_task(i)); // settles `i: u64`
//         let __kind = (&&TaskKind::of(&__tasks)).kind(); // `Indexed` for a range
//         __kind.run(&__opts, __tasks, __task)
//     }
pub fn expand(model: &Model) -> TokenStream {
    let private = quote!(::joblet::__private);
    let opts = Ident::new("__opts", Span::mixed_site());
    let tasks = Ident::new("__tasks", Span::mixed_site());
    let kind = Ident::new("__kind", Span::mixed_site());
    let task = Ident::new("__task", Span::mixed_site());

    let (pat, task_expr) = (&model.pat, &model.tasks);
    let on_error = model.on_error();
    // On threads, `continue` and `collect` catch each task's panic in the task itself.
    let caught;
    let body = match (model.backend, on_error) {
        (Backend::Processes | Backend::Mpi, _) | (_, OnError::Stop) => &model.body,
        (Backend::Threads | Backend::Sequential, OnError::Continue | OnError::Collect) => {
            let body = &model.body;
            caught = syn::parse_quote!(#private::catch(|| #body));
            &caught
        }
    };
    let run = match (model.backend, model.return_as) {
        (Backend::Processes, _) => return processes(model, &opts),
        (Backend::Mpi, _) => return mpi(model, &opts),
        // The tasks outlive the call, consumed as they complete: they must own their data.
        (Backend::Threads, ReturnAs::Unordered) => quote! {
            #private::run_unordered(&#opts, #task_expr, move |#pat| #body)
        },
        (Backend::Threads, ReturnAs::Generator) => quote! {
            #private::run_ordered(&#opts, #task_expr, move |#pat| #body)
        },
        (Backend::Sequential, ReturnAs::Unordered) => quote! {
            #private::run_lazy(&#opts, #task_expr, move |#pat| #body)
        },
        (Backend::Sequential, ReturnAs::Generator) => quote! {
            #private::run_lazy_ordered(&#opts, #task_expr, move |#pat| #body)
        },
        (Backend::Sequential, ReturnAs::List) => quote! {
            #private::run_sequential(&#opts, #task_expr, |#pat| #body)
        },
        (Backend::Threads, ReturnAs::List) => quote! {{
            let #tasks = #task_expr;
            // Typed from the input first, so that the body settles the input's type before
            // the input kind is picked from it.
            let #task = #private::task_fn(&#tasks, |#pat| #body);
            let #kind = {
                // Only one of the two is used, whichever method resolution picks.
                #[allow(unused_imports)]
                use #private::{ViaIndexed as _, ViaLazy as _};
                (&&#private::TaskKind::of(&#tasks)).kind()
            };
            #kind.run(&#opts, #tasks, #task)
        }},
    };
    let run = match on_error {
        OnError::Stop => run,
        OnError::Continue => quote!(#private::unwrap_all(#private::collected(#run))),
        OnError::Collect => quote!(#private::collected(#run)),
    };
    let options = options(model, &opts);
    quote! {{
        #options
        #run
    }}
}

/// `let __opts = Options::new(...).pre_dispatch(...);`
fn options(model: &Model, opts: &Ident) -> TokenStream {
    let private = quote!(::joblet::__private);
    let n_jobs = match &model.n_jobs {
        Some(e) => {
            quote_spanned!(e.span()=> ::core::option::Option::Some(#private::integer(#e)))
        }
        // `JOBLET_N_JOBS`, or every core.
        None => quote!(::core::option::Option::None),
    };
    let batch = match &model.batch_size {
        Some(BatchSize::Fixed(e)) => quote_spanned!(e.span()=> #private::batch_size(#e)),
        Some(BatchSize::Auto) | None => quote!(#private::Batch::Auto),
    };
    let verbose = match &model.verbose {
        Some(e) => quote_spanned!(e.span()=> #private::integer(#e)),
        None => quote!(0),
    };
    let progress = match &model.progress {
        Some(e) => quote_spanned!(e.span()=> (#e)),
        None => quote!(false),
    };
    let pre_dispatch = model
        .pre_dispatch
        .as_ref()
        .map(|(_, e)| quote_spanned!(e.span()=> .pre_dispatch(#e)));
    quote!(let #opts = #private::Options::new(#n_jobs, #batch, #verbose, #progress) #pre_dispatch;)
}

// Input:
//     parallel!(backend = processes, n_jobs = 2; for i in 0..n => scale * my_task(i))
//
// Output:
//     {
//         ::joblet::__private::enabled::<()>(); // fails at `processes` without the backend
//         let __opts = Options::new(Some(integer(2)), Batch::Auto, 0, false);
//         let __settings = ProcessOptions::new();
//         { /* `scale` must be Serialize + DeserializeOwned, checked at `scale` */ }
//         let __captures = (&scale, ());
//         let __tasks = 0..n;
//         // A closure that captures nothing: it rebinds `scale` from its first argument.
//         let __body = body_fn(&__tasks, &__captures, |__captures, i| {
//             let (scale,) = ((&&Place(&__captures.0)).get(),);
//             scale * my_task(i)
//         });
//         run_processes(&__opts, __settings, OnError::Stop, __tasks, &__captures, __body)
//     }
fn processes(model: &Model, opts: &Ident) -> TokenStream {
    let private = quote!(::joblet::__private);
    let settings = Ident::new("__settings", Span::mixed_site());
    let captures = Ident::new("__captures", Span::mixed_site());
    let tasks = Ident::new("__tasks", Span::mixed_site());
    let body_fn = Ident::new("__body", Span::mixed_site());
    let (pat, task_expr, body) = (&model.pat, &model.tasks, &model.body);
    let backend = model.backend_token.as_ref().expect("set with `processes`");
    let enabled = quote_spanned!(backend.span()=> #private::enabled::<()>(););
    let options = options(model, opts);
    let timeout = model
        .timeout
        .as_ref()
        .map(|(_, e)| quote_spanned!(e.span()=> .timeout(#private::timeout(#e))));
    let idle_timeout = model
        .idle_timeout
        .as_ref()
        .map(|(_, e)| quote_spanned!(e.span()=> .idle_timeout(#private::timeout(#e))));
    let max_memory = model.max_memory.as_ref().map(|(_, lit)| {
        let bytes = size(lit, quote!(in_max_memory));
        quote!(.max_memory(#bytes))
    });
    let max_nbytes = model.max_nbytes.as_ref().map(|(_, lit)| {
        let bytes = size(lit, quote!(in_max_nbytes));
        quote!(.max_nbytes(#bytes))
    });
    let names = &model.captures;
    let checks = names.iter().map(check_capture);
    // `(&a, (&b, ()))`, and the path to each in it: `.0`, `.1.0`, ...
    let list = names
        .iter()
        .rev()
        .fold(quote!(()), |rest, name| quote!((&#name, #rest)));
    let places = (0..names.len()).map(|i| {
        let ones = std::iter::repeat_n(quote!(.1), i);
        quote!((&&#private::Place(&#captures #(#ones)* .0)).get())
    });
    let rebind = (!names.is_empty()).then(|| {
        quote! {
            let (#(#names,)*) = {
                // Only one of the two may be used, whichever method resolution picks.
                #[allow(unused_imports)]
                use #private::{ByCopy as _, ByRef as _};
                (#(#places,)*)
            };
        }
    });
    // `collect` returns `Result`s; the others raise the first failure, at once or at the end.
    // The iterators raise failures as they are reached, and stop at the first.
    let how = match model.on_error() {
        OnError::Stop => quote!(#private::OnError::Stop),
        OnError::Continue | OnError::Collect => quote!(#private::OnError::Continue),
    };
    let run = match (model.return_as, model.on_error()) {
        (ReturnAs::Unordered, _) => quote! {
            #private::run_processes_unordered(&#opts, #settings, #tasks, &#captures, #body_fn)
        },
        (ReturnAs::Generator, _) => quote! {
            #private::run_processes_ordered(&#opts, #settings, #tasks, &#captures, #body_fn)
        },
        (ReturnAs::List, OnError::Collect) => quote! {
            #private::run_processes_collect(&#opts, #settings, #tasks, &#captures, #body_fn)
        },
        (ReturnAs::List, OnError::Stop | OnError::Continue) => quote! {
            #private::run_processes(&#opts, #settings, #how, #tasks, &#captures, #body_fn)
        },
    };
    let items_check = quote_spanned!(task_expr.span()=> #private::items_sendable(&#tasks););
    let result_check = quote_spanned!(body.span()=> #private::result_sendable(&#body_fn););
    quote! {{
        #enabled
        #options
        let #settings = #private::ProcessOptions::new() #timeout #max_memory #max_nbytes #idle_timeout;
        #(#checks)*
        let #captures = #list;
        let #tasks = #task_expr;
        #items_check
        let #body_fn = #private::body_fn(&#tasks, &#captures, |#captures, #pat| {
            #rebind
            #body
        });
        #result_check
        #run
    }}
}

// Input:
//     parallel!(backend = mpi, n_jobs = 2; for i in 0..40000 => my_task(i))
//
// Output:
//     {
//         ::joblet::__private::mpi_enabled::<()>(); // fails at `mpi` without the backend
//         let __opts = Options::new(Some(integer(2)), Batch::Auto, 0, false);
//         let __tasks = 0..40000; // on every rank: every rank runs the program
//         let __task = task_fn(&__tasks, |i| my_task(i));
//         results_travel(&__tasks, &__task); // the result must be Serialize + Deserialize
//         run_mpi(&__opts, __tasks, __task)
//     }
fn mpi(model: &Model, opts: &Ident) -> TokenStream {
    let private = quote!(::joblet::__private);
    let tasks = Ident::new("__tasks", Span::mixed_site());
    let task = Ident::new("__task", Span::mixed_site());
    let (pat, task_expr, body) = (&model.pat, &model.tasks, &model.body);
    let backend = model.backend_token.as_ref().expect("set with `mpi`");
    let enabled = quote_spanned!(backend.span()=> #private::mpi_enabled::<()>(););
    let options = options(model, opts);
    let check = quote_spanned!(body.span()=> #private::results_travel(&#tasks, &#task););
    quote! {{
        #enabled
        #options
        let #tasks = #task_expr;
        let #task = #private::task_fn(&#tasks, |#pat| #body);
        #check
        #private::run_mpi(&#opts, #tasks, #task)
    }}
}

/// A size literal as bytes, parsed at compile time: one that does not parse is an error at
/// the literal, with the message `SizeError::#message` gives.
fn size(lit: &syn::LitStr, message: TokenStream) -> TokenStream {
    let private = quote!(::joblet::__private);
    quote_spanned! {lit.span()=>
        const {
            match #private::size_in_bytes(#lit) {
                ::core::result::Result::Ok(bytes) => bytes,
                ::core::result::Result::Err(why) => ::core::panic!("{}", why.#message()),
            }
        }
    }
}

/// Checks at `name` that a captured variable can travel to a worker, with a message naming it.
fn check_capture(name: &Ident) -> TokenStream {
    let private = quote!(::joblet::__private);
    let sendable = Ident::new("__Sendable", Span::mixed_site());
    let check = Ident::new("__check", Span::mixed_site());
    let message = format!(
        "`parallel!(backend = processes)` sends `{name}` to its worker processes, but `{{Self}}` cannot be sent: it must implement `Serialize` and `DeserializeOwned`"
    );
    let label = format!("`{name}` is captured by the body here");
    quote_spanned! {name.span()=>
        {
            #[diagnostic::on_unimplemented(
                message = #message,
                label = #label,
                note = "derive `serde::Serialize` and `serde::Deserialize` for it, or capture an owned value that has them (a reference such as `&[T]` or `&str` cannot be deserialized in a worker: capture `.to_vec()` or `.to_string()`); a function passed as a value is taken for a variable: call it in a closure instead"
            )]
            trait #sendable {}
            impl<T: #private::serde::Serialize + #private::serde::de::DeserializeOwned> #sendable for T {}
            fn #check<T: #sendable>(_: &T) {}
            #check(&#name);
        }
    }
}
