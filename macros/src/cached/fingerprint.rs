//! The fingerprint of a function's code: a hash of its signature's and body's tokens, so that
//! editing the code invalidates its stored results while comments, doc text and formatting do
//! not.
//!
//! Comments are not tokens; doc comments are `#[doc = "..."]` attributes and are skipped
//! wherever they appear; spacing between tokens is not hashed.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use xxhash_rust::xxh3::xxh3_128;

/// The fingerprint of a function's own code: its signature and body.
pub fn of(item: &syn::ItemFn) -> u128 {
    let mut canon = canonical(item.sig.to_token_stream());
    canon.push(0xFF);
    walk(item.block.to_token_stream(), &mut canon);
    xxh3_128(&canon)
}

/// The bytes that stand for `tokens` in a fingerprint: every token, with no spacing and no doc
/// attribute.
pub fn canonical(tokens: TokenStream) -> Vec<u8> {
    let mut canon = Vec::with_capacity(1024);
    walk(tokens, &mut canon);
    canon
}

fn walk(tokens: TokenStream, out: &mut Vec<u8>) {
    let mut iter = tokens.into_iter().peekable();
    while let Some(tt) = iter.next() {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                // `#[doc ...]` or `#![doc ...]`: skip the whole attribute.
                let mut look = iter.clone();
                if matches!(look.peek(), Some(TokenTree::Punct(b)) if b.as_char() == '!') {
                    look.next();
                }
                if let Some(TokenTree::Group(g)) = look.peek()
                    && g.delimiter() == Delimiter::Bracket
                    && is_doc(&g.stream())
                {
                    look.next();
                    iter = look;
                    continue;
                }
                out.push(b'#');
            }
            TokenTree::Punct(p) => {
                let mut buf = [0; 4];
                out.extend_from_slice(p.as_char().encode_utf8(&mut buf).as_bytes());
            }
            TokenTree::Ident(i) => {
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(0);
            }
            TokenTree::Literal(l) => {
                out.extend_from_slice(l.to_string().as_bytes());
                out.push(0);
            }
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => (b'(', b')'),
                    Delimiter::Brace => (b'{', b'}'),
                    Delimiter::Bracket => (b'[', b']'),
                    Delimiter::None => (1, 2),
                };
                out.push(open);
                walk(g.stream(), out);
                out.push(close);
            }
        }
    }
}

fn is_doc(attr: &TokenStream) -> bool {
    matches!(attr.clone().into_iter().next(), Some(TokenTree::Ident(i)) if i == "doc")
}

#[cfg(test)]
mod tests {
    use super::of;

    fn fp(src: &str) -> u128 {
        of(&syn::parse_str(src).unwrap())
    }

    #[test]
    fn code_changes_change_the_fingerprint() {
        let base = fp("fn f(x: u64) -> u64 { x * 2 }");
        assert_ne!(base, fp("fn f(x: u64) -> u64 { x * 3 }"));
        assert_ne!(base, fp("fn f(x: u32) -> u64 { x * 2 }"));
        assert_ne!(base, fp("fn f(x: u64) -> u64 { x * 2 + 0 }"));
        assert_ne!(
            fp("fn f() -> u8 { m!(ab c) }"),
            fp("fn f() -> u8 { m!(a bc) }")
        );
    }

    #[test]
    fn comments_docs_and_formatting_do_not() {
        let base = fp("fn f(x: u64) -> u64 { x * 2 }");
        assert_eq!(
            base,
            fp(
                "/// Doubles.\n#[doc = \"more\"]\nfn f(x: u64) -> u64 {\n    // twice\n    x*2 /* sic */\n}"
            )
        );
        assert_eq!(
            fp("fn f() -> u8 { /// item docs\n fn g() -> u8 { 1 } g() }"),
            fp("fn f() -> u8 { fn g() -> u8 { 1 } g() }")
        );
        assert_eq!(
            fp("fn f() -> Vec<Vec<u8> > { v }"),
            fp("fn f() -> Vec<Vec<u8>> { v }")
        );
    }
}
