//! Generates the code of a checked `parallel!` call. Expansion cannot fail.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::parse::{Backend, BatchSize, Model};

// Input:
//     parallel!(n_jobs = 4, batch_size = 1000, verbose = 10; for i in 0..40000 => my_task(i))
//
// Output:
//     {
//         let __opts = Options::new(integer(4), batch_size(1000), integer(10), false);
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

    let n_jobs = match &model.n_jobs {
        Some(e) => quote_spanned!(e.span()=> #private::integer(#e)),
        None => quote!(-1),
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
    let (pat, task_expr, body) = (&model.pat, &model.tasks, &model.body);
    let run = match (model.backend, model.unordered) {
        // The tasks outlive the call, consumed as they complete: they must own their data.
        (Backend::Threads, true) => quote! {
            #private::run_unordered(&#opts, #task_expr, move |#pat| #body)
        },
        (Backend::Sequential, true) => quote! {
            #private::run_lazy(&#opts, #task_expr, move |#pat| #body)
        },
        (Backend::Sequential, false) => quote! {
            #private::run_sequential(&#opts, #task_expr, |#pat| #body)
        },
        (Backend::Threads, false) => quote! {{
            let #tasks = #task_expr;
            // Typed from the input first, so that the body settles the input's type before
            // the input kind is picked from it.
            let #task = #private::task_fn(&#tasks, |#pat| #body);
            let #kind = {
                // Only one of the two is used, whichever method resolution picks.
                #[allow(unused_imports)]
                use #private::{ViaCollect as _, ViaIndexed as _};
                (&&#private::TaskKind::of(&#tasks)).kind()
            };
            #kind.run(&#opts, #tasks, #task)
        }},
    };
    quote! {{
        let #opts = #private::Options::new(#n_jobs, #batch, #verbose, #progress);
        #run
    }}
}
