//! `use` declarations, read from tokens: each name they bring into scope, and the modules
//! whose names they bring in wholesale (`*`).

use proc_macro2::{Delimiter, TokenTree};

use super::tokens::{is_path_sep, is_punct, name_of};

/// One name a `use` brings into scope, or one glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The path, from its first segment (`crate`, `self`, `super` or a name in scope).
    pub path: Vec<String>,
    /// The name it is known by in scope; `None` for a glob, `path::*`.
    pub alias: Option<String>,
}

/// The uses of the tree `tts` (the tokens between `use` and `;`). Extern paths (`::a::b`) are
/// left out.
pub fn parse(tts: &[TokenTree]) -> Vec<Use> {
    let mut out = Vec::new();
    tree(tts, &[], &mut out);
    out
}

fn tree(tts: &[TokenTree], prefix: &[String], out: &mut Vec<Use>) {
    if prefix.is_empty() && is_path_sep(tts, 0) {
        return;
    }
    let mut path = prefix.to_vec();
    let mut i = 0;
    loop {
        match tts.get(i) {
            Some(TokenTree::Ident(seg)) => {
                let seg = name_of(seg);
                if seg == "self" && !path.is_empty() {
                    // `a::{self}` brings `a` itself.
                } else {
                    path.push(seg);
                }
                i += 1;
            }
            Some(TokenTree::Punct(p)) if p.as_char() == '*' => {
                out.push(Use { path, alias: None });
                return;
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for branch in inner.split(|t| is_punct(Some(t), ',')) {
                    if !branch.is_empty() {
                        tree(branch, &path, out);
                    }
                }
                return;
            }
            _ => return,
        }
        if is_path_sep(tts, i) {
            i += 2;
            continue;
        }
        let alias = match (tts.get(i), tts.get(i + 1)) {
            (Some(TokenTree::Ident(kw)), Some(TokenTree::Ident(name))) if kw == "as" => {
                name_of(name)
            }
            _ => path.last().cloned().unwrap_or_default(),
        };
        if alias != "_" && !path.is_empty() {
            out.push(Use {
                path,
                alias: Some(alias),
            });
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(src: &str) -> Vec<(String, Option<String>)> {
        let tts: Vec<TokenTree> = src
            .parse::<proc_macro2::TokenStream>()
            .unwrap()
            .into_iter()
            .collect();
        parse(&tts)
            .into_iter()
            .map(|u| (u.path.join("::"), u.alias))
            .collect()
    }

    #[test]
    fn trees() {
        assert_eq!(of("a::b"), [("a::b".into(), Some("b".into()))]);
        assert_eq!(of("a::b as c"), [("a::b".into(), Some("c".into()))]);
        assert_eq!(of("super::*"), [("super".into(), None)]);
        assert_eq!(
            of("crate::{x::{self, y as z}, w::*, Trait as _}"),
            [
                ("crate::x".into(), Some("x".into())),
                ("crate::x::y".into(), Some("z".into())),
                ("crate::w".into(), None),
            ]
        );
        assert!(of("::std::mem").is_empty());
    }
}
