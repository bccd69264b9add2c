//! Parses the arguments of `#[cached(...)]` into a typed model that keeps every token's span.
//!
//! Parsing goes on after a bad argument so that every mistake is reported at once.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitInt, LitStr, Token, bracketed};

use crate::errors::Errors;

/// The arguments, as written.
#[derive(Default)]
pub struct Args {
    /// `dir = <expr>`: the cache folder.
    pub dir: Option<Expr>,
    /// `version = "..."`: a salt mixed into every key.
    pub version: Option<LitStr>,
    /// `name = "..."`: the identity under which entries are stored.
    pub name: Option<LitStr>,
    /// `ignore = [a, b]`: parameters left out of the key.
    pub ignore: Vec<Ident>,
    /// `controls = false`: no companion with `is_cached`/`refresh`/`clear`, which an
    /// associated function needs, since nothing can be added beside it in an `impl` block.
    pub controls: Option<LitBool>,
    /// `verbose = N`: joblib's `[Memory]` lines on stderr, from 1 for computed calls, from 5
    /// for loaded ones too.
    pub verbose: Option<LitInt>,
    /// `max_size = "10G"`: the most bytes the cache folder may hold; checked at compile time.
    pub max_size: Option<LitStr>,
    /// `expires = "7d"`: how long an entry serves; checked at compile time.
    pub expires: Option<LitStr>,
    /// `validate = path::to::check`: a `fn(&EntryInfo) -> bool` asked before each hit.
    pub validate: Option<Expr>,
}

const KEYS: &[&str] = &[
    "controls", "dir", "expires", "ignore", "max_size", "name", "validate", "verbose", "version",
];

impl Args {
    /// Parses what it can; every mistake goes to `errors`.
    pub fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
        let mut args = Args::default();
        let parser = |input: ParseStream| {
            while !input.is_empty() {
                args.parse_one(input, errors)?;
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            Ok(())
        };
        if let Err(e) = parser.parse2(tokens) {
            errors.push(e);
        }
        args
    }

    fn parse_one(&mut self, input: ParseStream, errors: &mut Errors) -> syn::Result<()> {
        let key = input.call(Ident::parse_any).map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "expected an argument such as `dir = \"cache\"`; arguments are {}",
                    listed(" and ")
                ),
            )
        })?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `=` after `{key}`, as in `{key} = ...`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let name = key.to_string();
        let duplicate = match name.as_str() {
            "dir" => self.dir.is_some(),
            "version" => self.version.is_some(),
            "name" => self.name.is_some(),
            "ignore" => !self.ignore.is_empty(),
            "controls" => self.controls.is_some(),
            "verbose" => self.verbose.is_some(),
            "max_size" => self.max_size.is_some(),
            "expires" => self.expires.is_some(),
            "validate" => self.validate.is_some(),
            _ => false,
        };
        if duplicate {
            errors.push(syn::Error::new(
                key.span(),
                format!("duplicate argument `{key}`; give it once"),
            ));
        }
        match name.as_str() {
            "dir" => {
                let expr: Expr = input.parse()?;
                if let Some(kind) = non_string_literal(&expr) {
                    errors.push(syn::Error::new_spanned(
                        &expr,
                        format!(
                            "`dir` takes a path: a string literal such as `dir = \"cache\"` or an expression implementing `AsRef<Path>`, not {kind}"
                        ),
                    ));
                }
                if let Some(url) = url_literal(&expr)
                    && let Err(why) = check_url(&url.value())
                {
                    errors.push(syn::Error::new(url.span(), why));
                }
                self.dir.get_or_insert(expr);
            }
            "version" | "name" | "max_size" | "expires" => {
                let example = match name.as_str() {
                    "version" => "2",
                    "name" => "features",
                    "expires" => "7d",
                    _ => "10G",
                };
                let lit = parse_lit_str(input, &key, example)?;
                match name.as_str() {
                    "version" => self.version.get_or_insert(lit),
                    "name" => self.name.get_or_insert(lit),
                    "expires" => self.expires.get_or_insert(lit),
                    _ => self.max_size.get_or_insert(lit),
                };
            }
            "validate" => {
                let expr: Expr = input.parse()?;
                if let Expr::Lit(lit) = &expr {
                    errors.spanned(
                        lit,
                        "`validate` takes a function `fn(&joblet::EntryInfo) -> bool`, as in `validate = still_valid`",
                    );
                }
                self.validate.get_or_insert(expr);
            }
            "controls" => {
                let expr: Expr = input.parse()?;
                match expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Bool(b), ..
                    }) => {
                        self.controls.get_or_insert(b);
                    }
                    other => errors.spanned(
                        other,
                        "`controls` takes `true` or `false`, as in `controls = false`",
                    ),
                }
            }
            "verbose" => {
                let expr: Expr = input.parse()?;
                match expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(n), ..
                    }) if n.base10_parse::<u8>().is_ok() => {
                        self.verbose.get_or_insert(n);
                    }
                    other => errors.spanned(
                        other,
                        "`verbose` takes an integer from 0 to 255, as in `verbose = 1` (5 and over also report loads)",
                    ),
                }
            }
            "ignore" => {
                if !input.peek(syn::token::Bracket) {
                    let found: Expr = input.parse()?;
                    errors.push(syn::Error::new_spanned(
                        found,
                        "`ignore` takes parameter names in brackets, as in `ignore = [verbose]`",
                    ));
                    return Ok(());
                }
                let content;
                bracketed!(content in input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any,
                )
                .map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`ignore` takes parameter names, as in `ignore = [verbose, log]`",
                    )
                })?;
                self.ignore.extend(names);
            }
            _ => {
                errors.push(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{key}`; expected one of {}", listed(", ")),
                ));
                // Skip the value so that the arguments after it are still checked.
                input.parse::<Expr>()?;
            }
        }
        Ok(())
    }
}

/// The valid arguments, as `a`, `b` and `c` (or `, ` before the last).
fn listed(last: &str) -> String {
    let quoted: Vec<String> = KEYS.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        Some((tail, head)) if !head.is_empty() => format!("{}{last}{tail}", head.join(", ")),
        _ => quoted.join(""),
    }
}

fn parse_lit_str(input: ParseStream, key: &Ident, example: &str) -> syn::Result<LitStr> {
    let expr: Expr = input.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(
            &other,
            format!("`{key}` takes a string literal, as in `{key} = \"{example}\"`"),
        )),
    }
}

/// The string literal `expr`, when it is an object store's URL (`scheme://...`).
pub fn url_literal(expr: &Expr) -> Option<&syn::LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) if lit.value().contains("://") => Some(lit),
        _ => None,
    }
}

/// Whether `url` names a store joblet reaches, with a bucket: says what to write if not.
fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if !matches!(scheme, "s3" | "s3a") {
        return Err(format!(
            "`dir` names a `{scheme}://` store, which joblet does not reach: write `s3://bucket/prefix` (S3, or an S3-compatible server through AWS_ENDPOINT_URL), or a folder"
        ));
    }
    if rest.split('/').next().is_none_or(str::is_empty) {
        return Err("`dir` names no bucket: write `s3://bucket/prefix`".to_owned());
    }
    Ok(())
}

fn non_string_literal(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => None,
            Lit::Int(_) => Some("an integer"),
            Lit::Float(_) => Some("a float"),
            Lit::Bool(_) => Some("a boolean"),
            Lit::Char(_) => Some("a character"),
            Lit::ByteStr(_) | Lit::CStr(_) => Some("a byte string"),
            Lit::Byte(_) => Some("a byte"),
            _ => Some("this literal"),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_argument_is_read() {
        for key in KEYS {
            let mut errors = Errors::default();
            let input: TokenStream = format!("{key} = 1").parse().unwrap();
            let _ = Args::parse(input, &mut errors);
            if let Err(all) = errors.finish() {
                for e in all {
                    assert!(!e.to_string().contains("unknown argument"), "{key}: {e}");
                }
            }
        }
    }
}
