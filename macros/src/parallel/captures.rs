//! The variables a `parallel!` body uses from around it. With `backend = processes` they are
//! what travels to the workers, so the expansion must name them; a macro sees syntax only, so
//! they are found by it:
//!
//! - a captured variable is a single lower-case name used as a value (`scale`, `data.len()`,
//!   `S { n }`, `println!("{n}")`) that nothing in the body binds;
//! - a name that is called (`my_task(i)`) is taken for a function, and an upper-case one for
//!   a constant, a static or a unit struct;
//! - nested items are skipped: they cannot capture.
//!
//! A capture this misses (a closure in a variable, called) is reported by rustc, which names
//! it: the body becomes a function pointer, which cannot capture.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Pat, Token};

use super::parse::{Backend, BatchSize, Model};
use crate::errors::Errors;

/// What the body of a checked call captures, in order of first use, for
/// `backend = processes`; a use of `self`, which cannot be sent, goes to `errors`.
pub fn of(model: &Model, errors: &mut Errors) -> Vec<Ident> {
    if model.backend != Backend::Processes {
        return Vec::new();
    }
    let found = find(&model.pat, &model.body);
    if let Some(at) = found.self_at {
        errors.error(
            at,
            "`backend = processes` cannot send `self` to its workers; bind what the body needs first, as in `let data = self.data.clone();`, and use that",
        );
    }
    found.names
}

/// What a body captures.
pub struct Captures {
    /// In order of first use, each once.
    pub names: Vec<Ident>,
    /// Where the body uses `self`, which cannot be rebound.
    pub self_at: Option<Span>,
}

/// The captures of `body`, run for each item bound by `pat`.
pub fn find(pat: &Pat, body: &Expr) -> Captures {
    let mut finder = Finder {
        scopes: vec![HashSet::new()],
        used: Vec::new(),
        self_at: None,
    };
    finder.bind(pat);
    finder.visit_expr(body);
    let mut seen = HashSet::new();
    let names = finder
        .used
        .into_iter()
        .filter(|name| seen.insert(name.to_string()))
        .collect();
    Captures {
        names,
        self_at: finder.self_at,
    }
}

struct Finder {
    /// The names bound where the visit is, innermost scope last.
    scopes: Vec<HashSet<String>>,
    /// Names used where nothing binds them.
    used: Vec<Ident>,
    self_at: Option<Span>,
}

/// Collects the names a pattern binds.
struct Bindings<'a>(&'a mut HashSet<String>);

impl<'ast> Visit<'ast> for Bindings<'_> {
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        self.0.insert(p.ident.to_string());
        visit::visit_pat_ident(self, p);
    }
}

impl Finder {
    /// Binds the names of `pat` in the innermost scope.
    fn bind(&mut self, pat: &Pat) {
        let scope = self.scopes.last_mut().expect("a scope");
        Bindings(scope).visit_pat(pat);
    }

    /// Runs `f` in a new scope.
    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        self.scopes.push(HashSet::new());
        f(self);
        self.scopes.pop();
    }

    fn name(&mut self, ident: &Ident) {
        let text = ident.to_string();
        if text == "self" {
            self.self_at.get_or_insert(ident.span());
        } else if text.starts_with(|c: char| c.is_lowercase() || c == '_')
            && !self.scopes.iter().any(|scope| scope.contains(&text))
        {
            self.used.push(ident.clone());
        }
    }

    /// The names a format string uses inline: `"{n}"`, `"{total:>5}"`.
    fn format_string(&mut self, lit: &LitStr) {
        let text = lit.value();
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            rest = &rest[open + 1..];
            if let Some(after) = rest.strip_prefix('{') {
                rest = after;
                continue;
            }
            let end = rest.find('}').unwrap_or(rest.len());
            let (name, spec) = rest[..end].split_once(':').unwrap_or((&rest[..end], ""));
            // `{name}`, and widths or precisions given by name: `{:w$}`, `{x:.p$}`.
            let by_name = spec.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'));
            let names = by_name.filter_map(|word| word.strip_suffix('$'));
            for name in std::iter::once(name).chain(names) {
                if name.starts_with(|c: char| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                    && syn::parse_str::<Ident>(name).is_ok()
                {
                    self.name(&Ident::new(name, lit.span()));
                }
            }
            rest = &rest[end..];
        }
    }

    /// A `parallel!` in the body: what it uses that its own loop does not bind. One with a
    /// mistake of its own is left to the generic walk of a macro's arguments.
    fn nested_parallel(&mut self, mac: &syn::Macro) -> bool {
        let mut errors = Errors::default();
        let Ok(inner) = Model::parse(mac.tokens.clone(), &mut errors) else {
            return false;
        };
        super::valid::check(&inner, &mut errors);
        of(&inner, &mut errors);
        if errors.finish().is_err() {
            return false;
        }
        let options = [&inner.n_jobs, &inner.verbose, &inner.progress];
        for e in options.into_iter().flatten() {
            self.visit_expr(e);
        }
        if let Some(BatchSize::Fixed(e)) = &inner.batch_size {
            self.visit_expr(e);
        }
        let keyed = [&inner.timeout, &inner.idle_timeout, &inner.pre_dispatch];
        for (_, e) in keyed.into_iter().flatten() {
            self.visit_expr(e);
        }
        self.visit_expr(&inner.tasks);
        self.scoped(|me| {
            me.bind(&inner.pat);
            me.visit_expr(&inner.body);
        });
        true
    }

    /// `matches!(value, pattern if guard)`: the guard sees the pattern's names.
    fn matches(&mut self, mac: &syn::Macro) -> bool {
        let parsed = mac.parse_body_with(|input: syn::parse::ParseStream| {
            let value: Expr = input.parse()?;
            input.parse::<Token![,]>()?;
            let pat = Pat::parse_multi_with_leading_vert(input)?;
            let guard = match input.parse::<Option<Token![if]>>()? {
                Some(_) => Some(input.parse::<Expr>()?),
                None => None,
            };
            input.parse::<Option<Token![,]>>()?;
            Ok((value, pat, guard))
        });
        let Ok((value, pat, guard)) = parsed else {
            return false;
        };
        self.visit_expr(&value);
        self.scoped(|me| {
            me.bind(&pat);
            if let Some(guard) = &guard {
                me.visit_expr(guard);
            }
        });
        true
    }
}

/// Where a macro of the standard library takes its format string: after how many arguments.
fn format_position(mac: &syn::Macro) -> Option<usize> {
    let name = mac.path.segments.last()?.ident.to_string();
    match name.as_str() {
        "format" | "format_args" | "print" | "println" | "eprint" | "eprintln" | "panic"
        | "unreachable" | "todo" | "unimplemented" => Some(0),
        "write" | "writeln" | "assert" | "debug_assert" => Some(1),
        "assert_eq" | "assert_ne" | "debug_assert_eq" | "debug_assert_ne" => Some(2),
        _ => None,
    }
}

/// A single name without generic arguments, as a path expression.
fn single_name(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        _ => None,
    }
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_expr_path(&mut self, e: &'ast syn::ExprPath) {
        if let (None, Some(ident)) = (&e.qself, e.path.get_ident()) {
            self.name(ident);
        }
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if single_name(&call.func).is_none() {
            self.visit_expr(&call.func);
        }
        for arg in &call.args {
            self.visit_expr(arg);
        }
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.scoped(|me| {
            for stmt in &block.stmts {
                match stmt {
                    // The value first: `let x = x + 1;` uses the `x` from before.
                    syn::Stmt::Local(local) => {
                        if let Some(init) = &local.init {
                            me.visit_expr(&init.expr);
                            if let Some((_, diverge)) = &init.diverge {
                                me.visit_expr(diverge);
                            }
                        }
                        me.bind(&local.pat);
                    }
                    other => me.visit_stmt(other),
                }
            }
        });
    }

    fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
        self.scoped(|me| {
            for input in &closure.inputs {
                me.bind(input);
            }
            me.visit_expr(&closure.body);
        });
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.scoped(|me| {
            me.bind(&arm.pat);
            if let Pat::Guard(guarded) = &arm.pat {
                me.visit_expr(&guarded.guard);
            }
            me.visit_expr(&arm.body);
        });
    }

    fn visit_expr_for_loop(&mut self, the_loop: &'ast syn::ExprForLoop) {
        self.visit_expr(&the_loop.expr);
        self.scoped(|me| {
            me.bind(&the_loop.pat);
            me.visit_block(&the_loop.body);
        });
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        // `if let` binds in the branch taken, not in `else`.
        self.scoped(|me| {
            me.visit_expr(&e.cond);
            me.visit_block(&e.then_branch);
        });
        if let Some((_, other)) = &e.else_branch {
            self.visit_expr(other);
        }
    }

    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        self.scoped(|me| {
            me.visit_expr(&e.cond);
            me.visit_block(&e.body);
        });
    }

    fn visit_expr_let(&mut self, e: &'ast syn::ExprLet) {
        self.visit_expr(&e.expr);
        self.bind(&e.pat);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let name = mac.path.segments.last().map(|s| s.ident.to_string());
        match name.as_deref() {
            Some("parallel") if self.nested_parallel(mac) => return,
            Some("matches") if self.matches(mac) => return,
            _ => {}
        }
        let format_at = format_position(mac);
        // Most macros take expressions separated by commas (`println!`, `assert_eq!`, `vec!`)
        // or `vec![value; n]`; the rest are left to rustc.
        let exprs = mac
            .parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
            .map(|list| list.into_iter().collect::<Vec<_>>())
            .or_else(|_| {
                mac.parse_body_with(|input: syn::parse::ParseStream| {
                    let value: Expr = input.parse()?;
                    input.parse::<Token![;]>()?;
                    Ok(vec![value, input.parse()?])
                })
            })
            .unwrap_or_default();
        // A format string's `{w}` may name an argument given as `w = value`.
        let named: HashSet<String> = exprs
            .iter()
            .filter_map(|e| match e {
                Expr::Assign(named) => single_name(&named.left).map(ToString::to_string),
                _ => None,
            })
            .collect();
        for (position, expr) in exprs.iter().enumerate() {
            match expr {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(lit), ..
                }) if Some(position) == format_at => {
                    self.scopes.push(named.clone());
                    self.format_string(lit);
                    self.scopes.pop();
                }
                // A named argument: `name = value`.
                Expr::Assign(named) if single_name(&named.left).is_some() => {
                    self.visit_expr(&named.right)
                }
                _ => self.visit_expr(expr),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captures(pat: &str, body: &str) -> Vec<String> {
        let pat = syn::parse_str::<syn::PatType>(&format!("{pat}: ()")).unwrap();
        let body = syn::parse_str::<Expr>(body).unwrap();
        find(&pat.pat, &body)
            .names
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn finds_what_the_body_uses_from_around_it() {
        assert_eq!(captures("i", "my_task(i)"), Vec::<String>::new());
        assert_eq!(
            captures("i", "scale * my_task(i) + offset"),
            ["scale", "offset"]
        );
        assert_eq!(captures("(a, b)", "a + b + c"), ["c"]);
        assert_eq!(captures("i", "data[i] + data.len()"), ["data"]);
        assert_eq!(captures("i", "{ let k = i * 2; k + n }"), ["n"]);
        assert_eq!(
            captures("i", "xs.iter().map(|x| x * w).sum::<u64>()"),
            ["xs", "w"]
        );
        assert_eq!(
            captures("i", "match i { 0 => N, other => other + m }"),
            ["m"]
        );
        assert_eq!(captures("i", "Point { x: i, y }"), ["y"]);
    }

    #[test]
    fn a_name_is_captured_where_nothing_binds_it_yet() {
        assert_eq!(captures("i", "{ let w = w + 1; w * i }"), ["w"]);
        assert_eq!(captures("i", "{ let f = |v| v * k; f(i) + v }"), ["k", "v"]);
        assert_eq!(
            captures("i", "if let Some(x) = opt { x } else { x }"),
            ["opt", "x"]
        );
        assert_eq!(
            captures("i", "match i { n if n > lo => n, _ => n }"),
            ["lo", "n"]
        );
        assert_eq!(
            captures("i", "{ for j in 0..i { total += j } j }"),
            ["total", "j"]
        );
    }

    #[test]
    fn looks_into_macros_and_format_strings() {
        assert_eq!(
            captures("i", "format!(\"{prefix}-{i}-{}\", suffix)"),
            ["prefix", "suffix"]
        );
        assert_eq!(
            captures("i", "format!(\"{{literal}} {w:>5}\", w = width)"),
            ["width"]
        );
        assert_eq!(captures("i", "vec![fill; len]"), ["fill", "len"]);
        assert_eq!(captures("i", "assert_eq!(i, expected)"), ["expected"]);
        assert_eq!(captures("i", "format!(\"{i:>width$.p$}\")"), ["width", "p"]);
        assert_eq!(
            captures("i", "assert_ne!(i.to_string(), \"{id}\")"),
            Vec::<String>::new()
        );
        assert_eq!(captures("i", "matches!(i, n if n > lo)"), ["lo"]);
        assert_eq!(
            captures("i", "parallel!(n_jobs = k; for j in 0..i => i * j * scale)"),
            ["k", "scale"]
        );
    }

    #[test]
    fn self_is_reported_apart() {
        let body = syn::parse_str::<Expr>("self.data[i]").unwrap();
        let pat = syn::parse_str::<syn::PatType>("i: ()").unwrap();
        let found = find(&pat.pat, &body);
        assert!(found.names.is_empty());
        assert!(found.self_at.is_some());
    }
}
