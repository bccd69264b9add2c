//! Parses `parallel!` input into a typed model that keeps every token's span, checking each
//! option's value and the pattern's shape as it goes. Checks of options against each other
//! are in [`super::valid`].

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Pat, Token, UnOp};

use crate::errors::Errors;

/// A parsed `parallel!` call.
pub struct Model {
    pub n_jobs: Option<Expr>,
    pub backend: Backend,
    pub batch_size: Option<BatchSize>,
    pub verbose: Option<Expr>,
    pub progress: Option<Expr>,
    /// `return_as`: a `Vec`, or an iterator in input or completion order; with its value's
    /// token, where errors about it point.
    pub return_as: ReturnAs,
    pub return_as_token: Option<Ident>,
    /// `pre_dispatch = N`: batches dispatched ahead of the results taken.
    pub pre_dispatch: Option<(Ident, Expr)>,
    pub on_error: Option<OnError>,
    /// The key of `on_error`, where errors about it point.
    pub on_error_key: Option<Ident>,
    /// `timeout = <duration>`, with the `timeout` key for errors.
    pub timeout: Option<(Ident, Expr)>,
    /// `max_memory = "2 GiB"`, with its key.
    pub max_memory: Option<(Ident, LitStr)>,
    /// `max_nbytes = "1M"`, with its key.
    pub max_nbytes: Option<(Ident, LitStr)>,
    /// `idle_timeout = <duration>`, with its key.
    pub idle_timeout: Option<(Ident, Expr)>,
    /// The `processes` or `mpi` token, where a build without the backend reports it.
    pub backend_token: Option<Ident>,
    /// What the body captures, with `backend = processes`: found once the call is checked
    /// (see [`super::captures::of`]).
    pub captures: Vec<Ident>,
    pub pat: Pat,
    pub tasks: Expr,
    pub body: Expr,
}

/// Where the tasks run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Threads,
    Sequential,
    Processes,
    Mpi,
}

/// What a run does when a task fails: `on_error = stop | continue | collect`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The default on every backend: no batch starts after the first failure, which is raised.
    Stop,
    /// Every task runs, then the first failure is raised.
    Continue,
    /// Every task runs; the result is a `Vec<Result<R, TaskError>>`.
    Collect,
}

/// What a call returns: `return_as = list | generator | unordered`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReturnAs {
    /// A `Vec` in input order, the default.
    List,
    /// An iterator in input order.
    Generator,
    /// An iterator in completion order.
    Unordered,
}

pub enum BatchSize {
    Auto,
    Fixed(Expr),
}

/// Every option, as error messages list them: `parse_option` handles each (a test checks).
const OPTIONS: &[&str] = &[
    "n_jobs",
    "backend",
    "batch_size",
    "verbose",
    "progress",
    "return_as",
    "pre_dispatch",
    "on_error",
    "timeout",
    "max_memory",
    "max_nbytes",
    "idle_timeout",
];
const BACKENDS: &str = "`threads`, `processes`, `mpi` or `sequential`";

impl Model {
    /// Parses a call. A mistake that leaves the rest readable goes to `errors`, and parsing
    /// goes on, so that the user sees every mistake at once; one that does not is the error.
    pub fn parse(input: TokenStream, errors: &mut Errors) -> syn::Result<Model> {
        (|input: ParseStream| Model::parse_all(input, errors)).parse2(input)
    }

    fn parse_all(input: ParseStream, errors: &mut Errors) -> syn::Result<Model> {
        let mut model = Model {
            n_jobs: None,
            backend: Backend::Threads,
            batch_size: None,
            verbose: None,
            progress: None,
            return_as: ReturnAs::List,
            return_as_token: None,
            pre_dispatch: None,
            on_error: None,
            on_error_key: None,
            timeout: None,
            max_memory: None,
            max_nbytes: None,
            idle_timeout: None,
            backend_token: None,
            captures: Vec::new(),
            pat: Pat::Verbatim(TokenStream::new()),
            tasks: Expr::Verbatim(TokenStream::new()),
            body: Expr::Verbatim(TokenStream::new()),
        };
        let mut seen = Vec::<String>::new();
        // Options, up to `;`. A loop with no options may start right away with `for`.
        if !input.peek(Token![for]) {
            loop {
                if input.peek(Token![;]) {
                    input.parse::<Token![;]>()?;
                    break;
                }
                if input.is_empty() {
                    return Err(
                        input.error("expected `; for PATTERN in TASKS => BODY` after the options")
                    );
                }
                if input.peek(Token![for]) {
                    return Err(input.error(
                        "expected `;` between the options and `for`, as in `parallel!(n_jobs = 4; for i in 0..n => f(i))`",
                    ));
                }
                model.parse_option(input, errors, &mut seen)?;
                if input.peek(Token![,]) {
                    input.parse::<Token![,]>()?;
                } else if input.peek(Token![for]) {
                    return Err(input.error(
                        "expected `;` between the options and `for`, as in `parallel!(n_jobs = 4; for i in 0..n => f(i))`",
                    ));
                } else if !input.peek(Token![;]) {
                    return Err(input.error("expected `,` between options, or `;` before the loop"));
                }
            }
        }
        input
            .parse::<Token![for]>()
            .map_err(|e| syn::Error::new(e.span(), "expected `for PATTERN in TASKS => BODY`"))?;
        model.pat = Pat::parse_single(input)?;
        if let Some(what) = refutable(&model.pat) {
            errors.spanned(
                &model.pat,
                format!(
                    "the pattern of `parallel!` must match every item, but {what}; filter the items first, as in `for x in items.into_iter().flatten() => ...`"
                ),
            );
        }
        input.parse::<Token![in]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `in` after the pattern, as in `for i in 0..n => f(i)`",
            )
        })?;
        model.tasks = Expr::parse_without_eager_brace(input)?;
        input.parse::<Token![=>]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `=>` between the tasks and the body, as in `for i in 0..n => f(i)`",
            )
        })?;
        model.body = input.parse()?;
        if !input.is_empty() {
            return Err(
                input.error("unexpected tokens after the loop body; wrap the body in `{ }`")
            );
        }
        Ok(model)
    }

    fn parse_option(
        &mut self,
        input: ParseStream,
        errors: &mut Errors,
        seen: &mut Vec<String>,
    ) -> syn::Result<()> {
        let key = input.call(Ident::parse_any).map_err(|e| {
            syn::Error::new(e.span(), format!("expected an option: {}", list(OPTIONS)))
        })?;
        input.parse::<Token![=]>().map_err(|_| {
            syn::Error::new(
                key.span(),
                format!("expected `=` after `{key}`, as in `{key} = ...`"),
            )
        })?;
        let name = key.to_string();
        if seen.contains(&name) {
            errors.error(
                key.span(),
                format!("duplicate option `{key}`; give it once"),
            );
        }
        seen.push(name.clone());
        match name.as_str() {
            "n_jobs" => {
                let e: Expr = input.parse()?;
                if is_zero(&e) {
                    errors.spanned(&e, "`n_jobs = 0` would run nothing: give a number of workers, or -1 for all cores, -2 for all but one");
                }
                self.n_jobs = Some(e);
            }
            "batch_size" => {
                if input.peek(Ident) && input.fork().parse::<Ident>().is_ok_and(|i| i == "auto") {
                    input.parse::<Ident>()?;
                    self.batch_size = Some(BatchSize::Auto);
                } else {
                    let e: Expr = input.parse()?;
                    if is_zero(&e) {
                        errors.spanned(&e, "`batch_size = 0` would never run a task: give a positive number, or `auto`");
                    }
                    self.batch_size = Some(BatchSize::Fixed(e));
                }
            }
            "verbose" => self.verbose = Some(input.parse()?),
            "return_as" => {
                let how = input.call(Ident::parse_any)?;
                match how.to_string().as_str() {
                    "list" => self.return_as = ReturnAs::List,
                    "generator" => self.return_as = ReturnAs::Generator,
                    "unordered" => self.return_as = ReturnAs::Unordered,
                    _ => errors.error(
                        how.span(),
                        format!(
                            "unknown `return_as = {how}`; expected `list` (a `Vec` in input order, the default), `generator` (an iterator in input order) or `unordered` (an iterator in completion order)"
                        ),
                    ),
                }
                self.return_as_token = Some(how);
            }
            "pre_dispatch" => {
                let e: Expr = input.parse()?;
                if is_zero(&e) {
                    errors.spanned(&e, "`pre_dispatch = 0` would never dispatch a batch: give a positive number of batches, as in `pre_dispatch = 2 * n_jobs`");
                }
                self.pre_dispatch = Some((key.clone(), e));
            }
            "progress" => self.progress = Some(input.parse()?),
            "on_error" => {
                let how = input.call(Ident::parse_any)?;
                self.on_error = match how.to_string().as_str() {
                    "stop" => Some(OnError::Stop),
                    "continue" => Some(OnError::Continue),
                    "collect" => Some(OnError::Collect),
                    _ => {
                        errors.error(
                            how.span(),
                            format!(
                                "unknown `on_error = {how}`; expected `stop` (end the run at the first failure), `continue` (run every task, then raise the first failure) or `collect` (a `Vec<Result<_, TaskError>>`)"
                            ),
                        );
                        None
                    }
                };
                self.on_error_key = Some(key.clone());
            }
            "timeout" => self.timeout = Some((key.clone(), input.parse()?)),
            "idle_timeout" => self.idle_timeout = Some((key.clone(), input.parse()?)),
            "max_memory" => self.max_memory = size(&key, input, errors, "2 GiB")?,
            "max_nbytes" => self.max_nbytes = size(&key, input, errors, "1M")?,
            "backend" => {
                let backend = input.call(Ident::parse_any)?;
                match backend.to_string().as_str() {
                    "threads" => self.backend = Backend::Threads,
                    "sequential" => self.backend = Backend::Sequential,
                    "processes" => {
                        self.backend = Backend::Processes;
                        self.backend_token = Some(backend);
                    }
                    "mpi" => {
                        self.backend = Backend::Mpi;
                        self.backend_token = Some(backend);
                    }
                    _ => errors.error(
                        backend.span(),
                        format!("unknown backend `{backend}`; expected {BACKENDS}"),
                    ),
                }
            }
            _ => {
                errors.error(
                    key.span(),
                    format!("unknown option `{key}`; expected one of {}", list(OPTIONS)),
                );
                input.parse::<Expr>()?;
            }
        }
        Ok(())
    }
}

/// The value of a size option: a string literal, parsed where the expansion uses it.
fn size(
    key: &Ident,
    input: ParseStream,
    errors: &mut Errors,
    example: &str,
) -> syn::Result<Option<(Ident, LitStr)>> {
    match input.parse::<Expr>()? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(Some((key.clone(), lit))),
        other => {
            errors.spanned(
                other,
                format!("`{key}` takes a string literal, as in `{key} = \"{example}\"`"),
            );
            Ok(None)
        }
    }
}

impl Model {
    /// What a failure does: `on_error`, or the default on every backend, `stop`, as joblib.
    pub fn on_error(&self) -> OnError {
        self.on_error.unwrap_or(OnError::Stop)
    }
}

/// Why a pattern cannot match every item, for the patterns that plainly cannot. Others that
/// cannot (a variant of the user's own enum) are reported by rustc at the pattern.
fn refutable(pat: &Pat) -> Option<String> {
    match pat {
        Pat::Lit(_) => Some("a literal matches only itself".into()),
        Pat::Range(_) => Some("a range pattern matches only part of the values".into()),
        Pat::Or(_) => Some("`|` patterns are for `match`".into()),
        Pat::TupleStruct(syn::PatTupleStruct { path, .. })
        | Pat::Path(syn::ExprPath { path, .. }) => {
            let last = path.segments.last()?.ident.to_string();
            let other = match last.as_str() {
                "Some" => "None",
                "None" => "Some(_)",
                "Ok" => "Err(_)",
                "Err" => "Ok(_)",
                _ => return None,
            };
            Some(format!("`{last}` does not match `{other}`"))
        }
        Pat::Paren(p) => refutable(&p.pat),
        Pat::Reference(r) => refutable(&r.pat),
        _ => None,
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A literal zero, possibly negated or parenthesized.
fn is_zero(e: &Expr) -> bool {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_digits() == "0",
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        })
        | Expr::Paren(syn::ExprParen { expr, .. }) => is_zero(expr),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list that error messages give is the list of options read.
    #[test]
    fn every_listed_option_is_read() {
        for option in OPTIONS {
            let mut errors = Errors::default();
            let input: TokenStream = format!("{option} = 1; for i in 0..2 => i").parse().unwrap();
            let _ = Model::parse(input, &mut errors);
            if let Err(all) = errors.finish() {
                for e in all {
                    assert!(!e.to_string().contains("unknown option"), "{option}: {e}");
                }
            }
        }
    }
}
