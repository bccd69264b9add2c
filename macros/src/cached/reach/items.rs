//! Splits a file's tokens (or a module's, an `impl`'s or a trait's braces) into items: what
//! kind each is, its name, its tokens and its braced body. Bodies are not parsed: they are
//! fingerprinted and scanned as tokens, which keeps reading a whole crate cheap.

use proc_macro2::{Delimiter, Group, TokenTree};

use super::tokens::{closing_angle, is_path_sep, is_punct, name_of};

/// One item, as written.
pub struct RawItem {
    pub kind: Kind,
    /// Its name; empty for `impl`, `use`, macro calls and what is not understood.
    pub name: String,
    /// All its tokens, outer attributes included.
    pub tokens: Vec<TokenTree>,
    /// Its outer attributes, the bracketed part of each (`#[path = ".."]` is read from them).
    pub attrs: Vec<Group>,
    /// Where, in `tokens`, the item starts after its attributes and visibility.
    pub head: usize,
    /// Where, in `tokens`, its braced body is, if it has one.
    pub body: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Fn,
    Const,
    Static,
    Struct,
    Enum,
    Union,
    TypeAlias,
    Trait,
    /// `impl [Trait for] Type`: the last names of the self type's and trait's paths.
    Impl {
        self_name: String,
        trait_name: Option<String>,
    },
    Mod,
    Use,
    MacroRules,
    /// An item-position macro call, `path!(..)`; its path.
    MacroCall(Vec<String>),
    ExternCrate,
    ExternBlock,
    /// Tokens that are no item this reader knows.
    Other,
}

impl RawItem {
    /// The braced body's group.
    pub fn body_group(&self) -> Option<&Group> {
        match self.tokens.get(self.body?) {
            Some(TokenTree::Group(g)) => Some(g),
            _ => None,
        }
    }
}

/// The items in `tts`, in order. Inner attributes (`#![..]`) are skipped.
pub fn split(tts: &[TokenTree]) -> Vec<RawItem> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < tts.len() {
        let start = i;
        let mut attrs = Vec::new();
        while is_punct(tts.get(i), '#') {
            let inner = is_punct(tts.get(i + 1), '!');
            let at = if inner { i + 2 } else { i + 1 };
            match tts.get(at) {
                Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket => {
                    if !inner {
                        attrs.push(g.clone());
                    }
                    i = at + 1;
                }
                _ => break,
            }
        }
        if i >= tts.len() {
            break;
        }
        if is_punct(tts.get(i), ';') && attrs.is_empty() {
            i += 1;
            continue;
        }
        if word(tts, i).as_deref() == Some("pub") {
            i += 1;
            if matches!(tts.get(i), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis)
            {
                i += 1;
            }
        }
        let head = i;
        let (kind, name, end, body) = item_at(tts, i);
        let end = end.max(i + 1).min(tts.len());
        items.push(RawItem {
            kind,
            name,
            tokens: tts[start..end].to_vec(),
            attrs,
            head: head - start,
            body: body.map(|b| b - start),
        });
        i = end;
    }
    items
}

/// The kind, name, end and body index of the item whose keywords start at `tts[i]`.
fn item_at(tts: &[TokenTree], mut i: usize) -> (Kind, String, usize, Option<usize>) {
    loop {
        let Some(w) = word(tts, i) else {
            let (end, body) = to_body_or_semi(tts, i);
            return (Kind::Other, String::new(), end, body);
        };
        let next = word(tts, i + 1);
        let next = next.as_deref();
        let braced = |kind: Kind, name_at: usize| {
            let (end, body) = to_body_or_semi(tts, name_at);
            (kind, ident_name(tts, name_at), end, body)
        };
        match w.as_str() {
            "default" | "async" | "unsafe" | "safe" | "auto" => i += 1,
            "const" if matches!(next, Some("fn" | "unsafe" | "async" | "extern")) => i += 1,
            "extern" => match tts.get(i + 1) {
                Some(TokenTree::Ident(c)) if c == "crate" => {
                    let end = to_semi(tts, i);
                    return (Kind::ExternCrate, String::new(), end, None);
                }
                Some(TokenTree::Literal(_)) if !braced_at(tts, i + 2) => i += 2,
                Some(TokenTree::Ident(f)) if f == "fn" => i += 1,
                _ => {
                    let (end, body) = to_body_or_semi(tts, i + 1);
                    return (Kind::ExternBlock, String::new(), end, body);
                }
            },
            "fn" => return braced(Kind::Fn, i + 1),
            "struct" => return braced(Kind::Struct, i + 1),
            "enum" => return braced(Kind::Enum, i + 1),
            "union" if matches!(tts.get(i + 1), Some(TokenTree::Ident(_))) => {
                return braced(Kind::Union, i + 1);
            }
            "trait" => return braced(Kind::Trait, i + 1),
            "mod" => return braced(Kind::Mod, i + 1),
            "impl" => {
                let (end, body) = to_body_or_semi(tts, i + 1);
                let header = &tts[i + 1..body.unwrap_or(end).min(tts.len())];
                let (self_name, trait_name) = impl_names(header);
                return (
                    Kind::Impl {
                        self_name,
                        trait_name,
                    },
                    String::new(),
                    end,
                    body,
                );
            }
            "const" | "static" | "type" => {
                let mut name_at = i + 1;
                // `static mut X`, and `static ref X` in `lazy_static!`.
                if matches!(word(tts, name_at).as_deref(), Some("mut" | "ref")) {
                    name_at += 1;
                }
                let kind = match w.as_str() {
                    "const" => Kind::Const,
                    "static" => Kind::Static,
                    _ => Kind::TypeAlias,
                };
                return (kind, ident_name(tts, name_at), to_semi(tts, i), None);
            }
            "use" => return (Kind::Use, String::new(), to_semi(tts, i), None),
            "macro_rules" if is_punct(tts.get(i + 1), '!') => {
                let end = after_macro_args(tts, i + 3);
                return (Kind::MacroRules, ident_name(tts, i + 2), end, None);
            }
            _ => {
                let mut path = vec![w];
                let mut j = i + 1;
                while let Some(seg) = word(tts, j + 2).filter(|_| is_path_sep(tts, j)) {
                    path.push(seg);
                    j += 3;
                }
                if is_punct(tts.get(j), '!') {
                    let mut args = j + 1;
                    if matches!(tts.get(args), Some(TokenTree::Ident(_))) {
                        args += 1;
                    }
                    return (
                        Kind::MacroCall(path),
                        String::new(),
                        after_macro_args(tts, args),
                        None,
                    );
                }
                let (end, body) = to_body_or_semi(tts, i);
                return (Kind::Other, String::new(), end, body);
            }
        }
    }
}

fn word(tts: &[TokenTree], i: usize) -> Option<String> {
    match tts.get(i) {
        Some(TokenTree::Ident(ident)) => Some(name_of(ident)),
        _ => None,
    }
}

fn ident_name(tts: &[TokenTree], i: usize) -> String {
    match tts.get(i) {
        Some(TokenTree::Ident(ident)) => name_of(ident),
        _ => String::new(),
    }
}

fn braced_at(tts: &[TokenTree], i: usize) -> bool {
    matches!(tts.get(i), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace)
}

/// The end of an item that ends at its first `;` (its index + 1).
fn to_semi(tts: &[TokenTree], from: usize) -> usize {
    tts[from..]
        .iter()
        .position(|t| is_punct(Some(t), ';'))
        .map_or(tts.len(), |p| from + p + 1)
}

/// The end of an item that ends with a braced body or a `;`, whichever comes first outside
/// angle brackets (`Foo<{ N }>` is no body), and the body's index.
fn to_body_or_semi(tts: &[TokenTree], from: usize) -> (usize, Option<usize>) {
    let mut i = from;
    while i < tts.len() {
        match &tts[i] {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => return (i + 1, Some(i)),
            TokenTree::Punct(p) if p.as_char() == ';' => return (i + 1, None),
            TokenTree::Punct(p) if p.as_char() == '<' => i = closing_angle(tts, i),
            _ => {}
        }
        i += 1;
    }
    (tts.len(), None)
}

/// The end of a macro call whose arguments are at `tts[i]`: the group and an optional `;`.
fn after_macro_args(tts: &[TokenTree], i: usize) -> usize {
    let end = i + 1;
    if is_punct(tts.get(end), ';') {
        end + 1
    } else {
        end
    }
}

/// The last names of the self type's and the trait's paths in an `impl` header.
fn impl_names(header: &[TokenTree]) -> (String, Option<String>) {
    let mut i = 0;
    if is_punct(header.first(), '<') {
        i = closing_angle(header, 0) + 1;
    }
    let rest = &header[i.min(header.len())..];
    let mut depth = 0usize;
    let mut split = None;
    for (j, tt) in rest.iter().enumerate() {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' => depth = depth.saturating_sub(1),
            TokenTree::Ident(w) if depth == 0 && w == "for" => {
                split = Some(j);
                break;
            }
            _ => {}
        }
    }
    match split {
        Some(j) => (last_name(&rest[j + 1..]), Some(last_name(&rest[..j]))),
        None => (last_name(rest), None),
    }
}

/// The last identifier of a type's path, outside angle brackets: `&'a mut a::Foo<T>` is `Foo`.
fn last_name(tts: &[TokenTree]) -> String {
    let mut depth = 0usize;
    let mut last = String::new();
    for (j, tt) in tts.iter().enumerate() {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' => depth = depth.saturating_sub(1),
            TokenTree::Ident(w) if depth == 0 => {
                let name = name_of(w);
                if name == "where" {
                    break;
                }
                let lifetime = j > 0 && is_punct(tts.get(j - 1), '\'');
                if !lifetime && !matches!(name.as_str(), "mut" | "dyn" | "impl" | "!") {
                    last = name;
                }
            }
            _ => {}
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(src: &str) -> Vec<(Kind, String)> {
        let tts: Vec<TokenTree> = src
            .parse::<proc_macro2::TokenStream>()
            .unwrap()
            .into_iter()
            .collect();
        split(&tts).into_iter().map(|i| (i.kind, i.name)).collect()
    }

    #[test]
    fn kinds_and_names() {
        let got = items(
            r#"
            #![allow(dead_code)]
            /// Docs.
            #[inline]
            pub(crate) const unsafe fn f<const N: usize>() -> Foo<{ N }> where T: Fn() -> u8 { 1 }
            pub const OFFSET: u64 = { 10 };
            static mut COUNT: u32 = 0;
            struct S(u8);
            struct B<T> where T: Copy { t: T }
            enum E { A, B }
            union U { a: u8 }
            type A = Vec<u8>;
            unsafe trait Tr { fn g(&self); }
            impl<T: Clone> Tr for &'static mut crate::x::Shape<T> where T: Copy { }
            impl Shape { }
            mod m;
            mod inline { }
            use a::b;
            macro_rules! mac { () => {} }
            thread_local!(static K: u8 = 0);
            lazy_static::lazy_static! { static ref X: u8 = 1; }
            extern crate alloc;
            extern "C" { fn c(); }
            extern "C" fn d() {}
            "#,
        );
        let want = [
            (Kind::Fn, "f"),
            (Kind::Const, "OFFSET"),
            (Kind::Static, "COUNT"),
            (Kind::Struct, "S"),
            (Kind::Struct, "B"),
            (Kind::Enum, "E"),
            (Kind::Union, "U"),
            (Kind::TypeAlias, "A"),
            (Kind::Trait, "Tr"),
            (
                Kind::Impl {
                    self_name: "Shape".into(),
                    trait_name: Some("Tr".into()),
                },
                "",
            ),
            (
                Kind::Impl {
                    self_name: "Shape".into(),
                    trait_name: None,
                },
                "",
            ),
            (Kind::Mod, "m"),
            (Kind::Mod, "inline"),
            (Kind::Use, ""),
            (Kind::MacroRules, "mac"),
            (Kind::MacroCall(vec!["thread_local".into()]), ""),
            (
                Kind::MacroCall(vec!["lazy_static".into(), "lazy_static".into()]),
                "",
            ),
            (Kind::ExternCrate, ""),
            (Kind::ExternBlock, ""),
            (Kind::Fn, "d"),
        ];
        let want: Vec<(Kind, String)> = want.into_iter().map(|(k, n)| (k, n.to_owned())).collect();
        assert_eq!(got, want);
    }
}
