//! Small readers of token sequences shared by the scanners: punctuation, `::`, angle
//! brackets, identifiers and string literals.

use proc_macro2::TokenTree;

/// The value of a plain or raw string literal, as written in source.
pub fn string_value(literal: &str) -> Option<String> {
    if let Some(raw) = literal.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let inner = raw.get(hashes + 1..raw.len().checked_sub(hashes + 1)?)?;
        return Some(inner.to_owned());
    }
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            '\n' => {
                // A line continuation skips the next line's leading whitespace.
                while chars.clone().next().is_some_and(char::is_whitespace) {
                    chars.next();
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// The index of the `>` closing the `<` at `tts[open]` (or the end), skipping `->` and `=>`.
pub fn closing_angle(tts: &[TokenTree], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, tt) in tts.iter().enumerate().skip(open) {
        if let TokenTree::Punct(p) = tt {
            match p.as_char() {
                '<' => depth += 1,
                '>' if !(i > 0
                    && (is_punct(Some(&tts[i - 1]), '-') || is_punct(Some(&tts[i - 1]), '='))) =>
                {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                ';' => return i,
                _ => {}
            }
        }
    }
    tts.len()
}

/// Whether `tts[i]` and `tts[i + 1]` are `::`.
pub fn is_path_sep(tts: &[TokenTree], i: usize) -> bool {
    is_punct(tts.get(i), ':') && is_punct(tts.get(i + 1), ':')
}

pub fn is_punct(tt: Option<&TokenTree>, c: char) -> bool {
    matches!(tt, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

/// An identifier's name, without `r#`.
pub fn name_of(ident: &proc_macro2::Ident) -> String {
    let name = ident.to_string();
    match name.strip_prefix("r#") {
        Some(raw) => raw.to_owned(),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_values() {
        assert_eq!(string_value(r#""a\"b""#).unwrap(), "a\"b");
        assert_eq!(string_value(r###"r#"x"y"#"###).unwrap(), "x\"y");
        assert_eq!(string_value("\"a\\\n   b\"").unwrap(), "ab");
    }
}
