//! What a piece of code refers to, read from its tokens alone: paths (`a::b::c`), method calls
//! (`.name(..)`), macro invocations (`name!`), names inside format strings, `use` declarations
//! and files read with `include!`, `include_str!` or `include_bytes!`.
//!
//! Tokens, not syntax trees: macro arguments and `macro_rules!` bodies are tokens too, and a
//! name found where it is not a reference only widens what is fingerprinted, never narrows it.

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};

use super::tokens::{closing_angle, is_path_sep, is_punct, name_of, string_value};
use super::uses::{self, Use};

/// Everything one item refers to.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    /// Paths, each as its segments; `::a::b` (an extern path) is left out.
    pub paths: Vec<Vec<String>>,
    /// Paths behind a qualified self type or a generic (`<T as Tr>::f`, `<X>::f`): only the
    /// last segment is known.
    pub assoc: Vec<String>,
    /// Names called as methods, `.name(..)` or `.name::<T>(..)`.
    pub methods: Vec<String>,
    /// Names invoked as macros, `name!(..)` or `path::name!(..)`.
    pub macros: Vec<String>,
    /// Files read at compile time, as the argument's pieces.
    pub includes: Vec<Include>,
    /// `use` declarations inside the item: they bring names into the scope of its body.
    pub uses: Vec<Use>,
}

/// The argument of `include!("...")` and its kin: literal pieces and environment variables,
/// concatenated (`concat!(env!("OUT_DIR"), "/gen.rs")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Env(String),
}

/// The references in `tokens`.
pub fn refs(tokens: TokenStream) -> Refs {
    let mut refs = Refs::default();
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    scan(&tts, false, &mut refs);
    refs
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "_",
];

fn scan(tts: &[TokenTree], in_macro: bool, refs: &mut Refs) {
    let mut i = 0;
    while i < tts.len() {
        match &tts[i] {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                // An attribute: `#[..]` or `#![..]`; its paths are lints and options.
                let mut next = i + 1;
                if is_punct(tts.get(next), '!') {
                    next += 1;
                }
                if matches!(tts.get(next), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket)
                {
                    i = next + 1;
                } else {
                    i += 1;
                }
            }
            TokenTree::Punct(p) if p.as_char() == '<' => {
                // `<T as Trait>::f` or `<X>::f`: the path after the `>` has an unknown head.
                let close = closing_angle(tts, i);
                scan(&tts[i + 1..close.min(tts.len())], in_macro, refs);
                i = close + 1;
                if is_path_sep(tts, i)
                    && let Some(TokenTree::Ident(name)) = tts.get(i + 2)
                {
                    refs.assoc.push(name_of(name));
                    i = path_rest(tts, i + 3, &mut Vec::new(), in_macro, refs);
                }
            }
            TokenTree::Group(g) => {
                scan_group(g, in_macro, refs);
                i += 1;
            }
            TokenTree::Literal(lit) if in_macro => {
                format_names(&lit.to_string(), refs);
                i += 1;
            }
            TokenTree::Ident(ident) => i = ident_at(tts, i, &name_of(ident), in_macro, refs),
            _ => i += 1,
        }
    }
}

fn scan_group(g: &Group, in_macro: bool, refs: &mut Refs) {
    let tts: Vec<TokenTree> = g.stream().into_iter().collect();
    scan(&tts, in_macro, refs);
}

/// Reads what starts at the identifier `tts[i]`; returns where scanning goes on.
fn ident_at(tts: &[TokenTree], i: usize, name: &str, in_macro: bool, refs: &mut Refs) -> usize {
    let before = i.checked_sub(1).map(|b| &tts[b]);
    if (is_punct(before, '$') && name != "crate") || is_punct(before, '\'') {
        // A macro metavariable or a lifetime (`$crate` is the crate).
        return i + 1;
    }
    if is_punct(before, '.') && !(i >= 2 && is_punct(Some(&tts[i - 2]), '.')) {
        // `.name(..)` or `.name::<T>(..)` is a method call; `.name` alone a field.
        let called = matches!(tts.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis)
            || is_path_sep(tts, i + 1);
        if called {
            refs.methods.push(name.to_owned());
        }
        return i + 1;
    }
    if name == "use" {
        return use_at(tts, i, refs);
    }
    if KEYWORDS.contains(&name) {
        return i + 1;
    }
    if i >= 2 && is_path_sep(tts, i - 2) {
        // `::name` at the start of a path: an extern crate's path.
        let rooted = i < 3 || !matches!(tts[i - 3], TokenTree::Ident(_));
        if rooted {
            return path_rest(tts, i + 1, &mut Vec::new(), in_macro, refs);
        }
    }
    let mut segments = vec![name.to_owned()];
    let next = path_rest(tts, i + 1, &mut segments, in_macro, refs);
    if is_punct(tts.get(next), '!') && !is_punct(tts.get(next + 1), '=') {
        macro_call(tts, next, segments, refs)
    } else {
        refs.paths.push(segments);
        next
    }
}

/// Follows `::segment` and `::<generics>` after a path's first segment, scanning the generic
/// arguments on the way; returns the index after the path.
fn path_rest(
    tts: &[TokenTree],
    mut i: usize,
    segments: &mut Vec<String>,
    in_macro: bool,
    refs: &mut Refs,
) -> usize {
    while is_path_sep(tts, i) {
        match tts.get(i + 2) {
            Some(TokenTree::Ident(next)) => {
                segments.push(name_of(next));
                i += 3;
            }
            Some(TokenTree::Punct(p)) if p.as_char() == '<' => {
                let close = closing_angle(tts, i + 2);
                scan(&tts[i + 3..close.min(tts.len())], in_macro, refs);
                i = close + 1;
            }
            _ => break,
        }
    }
    i
}

/// A macro invocation whose `!` is at `tts[bang]`: records it, reads `include!`'s file and
/// scans the arguments, with format strings.
fn macro_call(tts: &[TokenTree], bang: usize, segments: Vec<String>, refs: &mut Refs) -> usize {
    let name = segments.last().cloned().unwrap_or_default();
    let mut i = bang + 1;
    // `macro_rules! name { .. }` names what it defines after the `!`.
    if matches!(tts.get(i), Some(TokenTree::Ident(_))) {
        i += 1;
    }
    let Some(TokenTree::Group(args)) = tts.get(i) else {
        return i;
    };
    if matches!(name.as_str(), "include" | "include_str" | "include_bytes")
        && let Some(include) = include_arg(args.stream())
    {
        refs.includes.push(include);
    }
    if name != "macro_rules" {
        refs.macros.push(name);
    }
    scan_group(args, true, refs);
    i + 1
}

/// The pieces of `"file"`, `concat!(env!("OUT_DIR"), "/file")` and the like.
fn include_arg(tokens: TokenStream) -> Option<Include> {
    let mut pieces = Vec::new();
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tts.len() {
        match &tts[i] {
            TokenTree::Literal(lit) => pieces.push(Piece::Text(string_value(&lit.to_string())?)),
            TokenTree::Ident(m) if is_punct(tts.get(i + 1), '!') => {
                let Some(TokenTree::Group(inner)) = tts.get(i + 2) else {
                    return None;
                };
                match m.to_string().as_str() {
                    "concat" => pieces.extend(include_arg(inner.stream())?.pieces),
                    "env" => {
                        let Some(TokenTree::Literal(var)) = inner.stream().into_iter().next()
                        else {
                            return None;
                        };
                        pieces.push(Piece::Env(string_value(&var.to_string())?));
                    }
                    _ => return None,
                }
                i += 2;
            }
            TokenTree::Punct(p) if p.as_char() == ',' => {}
            _ => return None,
        }
        i += 1;
    }
    (!pieces.is_empty()).then_some(Include { pieces })
}

/// A `use` declaration inside an item; returns the index after its `;`.
fn use_at(tts: &[TokenTree], i: usize, refs: &mut Refs) -> usize {
    let end = tts[i..]
        .iter()
        .position(|t| is_punct(Some(t), ';'))
        .map_or(tts.len(), |p| i + p);
    let tree: Vec<TokenTree> = tts[i + 1..end].to_vec();
    refs.uses.extend(uses::parse(&tree));
    end + 1
}

/// Names used in a format string's braces, `{name}` or `{name:>8}`: they may be consts.
fn format_names(literal: &str, refs: &mut Refs) {
    if !literal.starts_with('"') && !literal.starts_with('r') {
        return;
    }
    let mut rest = literal;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if rest.starts_with('{') {
            rest = &rest[1..];
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let starts_like_a_name = name.chars().next().is_some_and(|c| !c.is_ascii_digit());
        if starts_like_a_name && !KEYWORDS.contains(&name.as_str()) {
            refs.paths.push(vec![name]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(src: &str) -> Refs {
        refs(src.parse().unwrap())
    }

    fn paths(r: &Refs) -> Vec<String> {
        r.paths.iter().map(|p| p.join("::")).collect()
    }

    #[test]
    fn paths_methods_and_macros() {
        let r = of(
            "{ let y = helpers::scale(x) + OFFSET; s.area() + v.len + crate::m::f::<u8>(1) + m!(g(2)) }",
        );
        let p = paths(&r);
        for want in [
            "y",
            "helpers::scale",
            "x",
            "OFFSET",
            "s",
            "v",
            "crate::m::f",
            "u8",
            "g",
        ] {
            assert!(p.contains(&want.to_owned()), "{want} in {p:?}");
        }
        assert_eq!(r.methods, ["area"]);
        assert_eq!(r.macros, ["m"]);
    }

    #[test]
    fn turbofish_qualified_paths_and_ranges() {
        let r = of(
            "Vec::<Shape>::new(); <T as Area>::area(&t); <X>::build(); for i in 0..n {} x.0; y.iter::<u8>()",
        );
        let p = paths(&r);
        assert!(p.contains(&"Vec::new".to_owned()), "{p:?}");
        assert!(p.contains(&"Shape".to_owned()));
        assert!(p.contains(&"Area".to_owned()));
        assert!(
            p.contains(&"n".to_owned()),
            "a range's end is a path: {p:?}"
        );
        assert_eq!(r.assoc, ["area", "build"]);
        assert_eq!(r.methods, ["iter"]);
    }

    #[test]
    fn attributes_lifetimes_metavariables_and_extern_paths_are_skipped() {
        let r =
            of("#[allow(clippy::x)] fn f<'a>(x: &'a u8) { $crate::h($y); ::std::mem::drop(1) }");
        let p = paths(&r);
        assert!(!p.iter().any(|p| p.contains("clippy")), "{p:?}");
        assert!(!p.contains(&"a".to_owned()));
        assert!(!p.contains(&"y".to_owned()));
        assert!(p.contains(&"crate::h".to_owned()));
        assert!(!p.iter().any(|p| p.contains("std")), "{p:?}");
    }

    #[test]
    fn format_strings_name_consts() {
        let r = of(r#"println!("{OFFSET} {} {{x}} {0} {width:>8}", a)"#);
        let p = paths(&r);
        assert!(p.contains(&"OFFSET".to_owned()));
        assert!(p.contains(&"width".to_owned()));
        assert!(p.contains(&"a".to_owned()));
        assert!(!p.contains(&"x".to_owned()));
    }

    #[test]
    fn includes_and_uses() {
        let r = of(
            r#"{ use crate::h::{scale as s, deep::*}; include!(concat!(env!("OUT_DIR"), "/gen.rs")); include_str!("data.txt") }"#,
        );
        assert_eq!(
            r.includes[0].pieces,
            [Piece::Env("OUT_DIR".into()), Piece::Text("/gen.rs".into())]
        );
        assert_eq!(r.includes[1].pieces, [Piece::Text("data.txt".into())]);
        assert_eq!(r.uses.len(), 2);
    }
}
