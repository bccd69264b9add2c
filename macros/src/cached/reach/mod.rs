//! The code a `#[cached]` function reaches in its crate, folded into its fingerprint: editing
//! a helper it calls, a const it reads, a method it may call or a macro it invokes, in any file
//! of the crate, gives its results a new code version, so that none stored by the old code is
//! served.
//!
//! The macro reads the crate's files itself (see `source`), splits them into items (`items`),
//! indexes names, imports and `impl`s (`index`), and follows the function's references
//! (`scan`, `uses`) transitively (`resolve`). Where it cannot read what it needs, it falls back
//! to the text of every file under the crate's root folder, which any edit changes.

mod index;
mod items;
mod resolve;
mod scan;
mod source;
mod tokens;
mod uses;

use std::path::Path;

use quote::ToTokens;
use xxhash_rust::xxh3::Xxh3;

use index::{Index, ItemId, ModId};
use items::Kind;
use resolve::{Crates, Reach};

/// The fingerprint of `item`, whose own code hashes to `own`, written in `file`: `own` itself
/// when the function reaches nothing else of its crate, so that its stored results stay valid.
pub fn fingerprint(item: &syn::ItemFn, own: u128, file: Option<&Path>) -> u128 {
    // Without a file (a tool that gives macros no source locations), only the function's own
    // code is known.
    let Some(file) = file else {
        return own;
    };
    let began = std::env::var_os(TIMING_ENV).map(|_| std::time::Instant::now());
    let root = source::root_file().unwrap_or_else(|| file.to_path_buf());
    // A flaw in reading the crate must not fail the user's build: the fallback is the text of
    // the whole crate, which any edit changes.
    let fingerprint = std::panic::catch_unwind(|| of_crate(item, own, file, &root))
        .unwrap_or_else(|_| combine(own, &mut vec![source::text_fingerprint(&root)]));
    if let Some(began) = began {
        // What reading the crate costs its build (`benches/reference/reach_cost.py`); the
        // first function of a compilation also reads and indexes the crate's files.
        eprintln!(
            "joblet: the fingerprint of `{}` took {:.3} ms",
            item.sig.ident,
            began.elapsed().as_secs_f64() * 1e3
        );
    }
    fingerprint
}

/// Set, the macro prints to the build's output how long each function's fingerprint took.
const TIMING_ENV: &str = "JOBLET_MACRO_TIMING";

fn of_crate(item: &syn::ItemFn, own: u128, file: &Path, root: &Path) -> u128 {
    let this = source::load(root);
    let lib = source::library(root).map(|(name, path)| (name, source::load(&path)));
    let mut indexes: Vec<&Index> = vec![&this.index];
    indexes.extend(lib.as_ref().map(|(_, c)| &c.index));
    let crates = Crates {
        indexes,
        lib_name: lib.as_ref().map(|(name, _)| name.clone()),
    };
    let name = item.sig.ident.to_string();
    let (reach, found) = reach_from(&crates, file, &name, own, || {
        scan::refs(item.to_token_stream())
    });

    let incomplete = !found || crates.indexes.iter().any(|i| !i.missing.is_empty());
    if reach.items.is_empty() && reach.includes.is_empty() && !incomplete {
        return own;
    }
    let mut parts: Vec<u128> = reach
        .items
        .iter()
        .map(|&(krate, id)| crates.indexes[krate].items[id].fingerprint)
        .collect();
    for (krate, module, include) in &reach.includes {
        if let Some(path) = crates.indexes[*krate].include_path(*module, include) {
            parts.push(source::file_fingerprint(&path));
        }
    }
    if incomplete {
        parts.push(this.text_fingerprint());
        parts.extend(lib.as_ref().map(|(_, c)| c.text_fingerprint()));
    }
    combine(own, &mut parts)
}

/// The function's own fingerprint and those of what it reaches, in one.
fn combine(own: u128, parts: &mut Vec<u128>) -> u128 {
    parts.sort_unstable();
    parts.dedup();
    let mut hasher = Xxh3::new();
    hasher.update(&own.to_le_bytes());
    for part in parts.iter() {
        hasher.update(&part.to_le_bytes());
    }
    hasher.digest128()
}

/// Walks from the function `name` written in `file`; also says whether the function was found
/// in the index. `tokens` gives its references when it was not.
fn reach_from<'a>(
    crates: &'a Crates<'a>,
    file: &Path,
    name: &str,
    own: u128,
    tokens: impl FnOnce() -> scan::Refs,
) -> (Reach<'a>, bool) {
    let index = crates.indexes[0];
    let modules: Vec<ModId> = (0..index.modules.len())
        .filter(|&m| source::same_file(&index.modules[m].file, file))
        .collect();
    let in_file = |item: &&index::Item| modules.contains(&item.module);
    let named: Vec<ItemId> = ids(index, |item| {
        in_file(&item) && item.kind == Kind::Fn && item.name == name
    });
    // The function itself; when the tokens differ (another attribute rewrote them), every
    // function of that name in the file.
    let exact: Vec<ItemId> = named
        .iter()
        .copied()
        .filter(|&id| index.items[id].code == Some(own))
        .collect();
    let starts = if exact.is_empty() { named } else { exact };

    let mut reach = Reach::new(crates);
    for &id in &starts {
        reach.start_from(0, id);
    }
    let mut found = !starts.is_empty();
    if !found {
        // Declared inside another function's body (a doctest's `main`): that whole function
        // is the code around it.
        let enclosing = ids(index, |item| {
            in_file(&item) && item.inner_fns.iter().any(|f| f == name)
        });
        found = !enclosing.is_empty();
        for id in enclosing {
            reach.include((0, id));
        }
        if !found {
            let refs = tokens();
            for &m in &modules {
                reach.start_from_refs(0, m, &refs);
            }
        }
    }
    reach.run();
    (reach, found)
}

fn ids(index: &Index, keep: impl Fn(&index::Item) -> bool) -> Vec<ItemId> {
    (0..index.items.len())
        .filter(|&id| keep(&index.items[id]))
        .collect()
}

#[cfg(test)]
mod tests;
