//! Where the crate being compiled is written, and its index, read once per compilation.
//!
//! A procedural macro runs inside rustc (or rustdoc), so the crate's root file is among the
//! process's arguments, and the file a `#[cached]` attribute is written in is its call site's
//! file. The index is kept for the rest of the process, and read anew if a file it was built
//! from changes (a long-lived process, such as an IDE's macro server, expands many times).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use proc_macro2::TokenStream;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use super::index::{self, Index, Sources};

/// One crate's index, and the files it was read from.
pub struct Crate {
    pub index: Index,
    /// The root file, as given.
    pub root: PathBuf,
    files: Vec<(PathBuf, Option<Stamp>)>,
    /// A hash of the text of every `.rs` file in the root file's folder tree: the fingerprint
    /// to fall back on where the index cannot say what code runs.
    text: OnceLock<u128>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

impl Crate {
    /// A hash of every `.rs` file's text under the root file's folder.
    pub fn text_fingerprint(&self) -> u128 {
        *self.text.get_or_init(|| text_fingerprint(&self.root))
    }

    fn fresh(&self) -> bool {
        self.files.iter().all(|(path, seen)| stamp(path) == *seen)
    }
}

/// A hash of the text of every `.rs` file in the folder tree of the crate whose root file is
/// `root`: any edit to the crate changes it.
pub fn text_fingerprint(root: &Path) -> u128 {
    let mut files = Vec::new();
    rust_files(root.parent().unwrap_or(Path::new(".")), &mut files, 0);
    files.sort();
    let mut hasher = Xxh3::new();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(&std::fs::read(&file).unwrap_or_default());
    }
    hasher.digest128()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth < 16 && entry.file_name() != "target" {
            rust_files(&path, out, depth + 1);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The index of the crate whose root file is `root`, read at the first call of this process
/// and again when one of its files changed.
pub fn load(root: &Path) -> Arc<Crate> {
    static CRATES: Mutex<Vec<Arc<Crate>>> = Mutex::new(Vec::new());
    let mut crates = CRATES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = crates.iter().find(|c| c.root == root && c.fresh()) {
        return Arc::clone(known);
    }
    let mut sources = Files::default();
    let index = {
        let _fallback = Fallback::force();
        index::build(root, &mut sources)
    };
    let built = Arc::new(Crate {
        index,
        root: root.to_path_buf(),
        files: sources.read,
        text: OnceLock::new(),
    });
    crates.retain(|c| c.root != root);
    crates.push(Arc::clone(&built));
    built
}

/// proc-macro2's own lexer and tokens while it lives, instead of the compiler's.
///
/// The compiler's lexer cannot report some errors without failing the whole compilation, so
/// proc-macro2 checks a text with its own lexer before handing it over: lexing once, with
/// proc-macro2's lexer alone, halves the cost, and no file (one compiled out by a `cfg`, say)
/// can fail the build. Its tokens are plain data, and none outlives the index's construction;
/// expansion runs on one thread.
struct Fallback;

impl Fallback {
    fn force() -> Fallback {
        proc_macro2::fallback::force();
        Fallback
    }
}

impl Drop for Fallback {
    fn drop(&mut self) {
        proc_macro2::fallback::unforce();
    }
}

/// Reads files from disk, lexes them, and remembers each file's stamp.
#[derive(Default)]
struct Files {
    read: Vec<(PathBuf, Option<Stamp>)>,
}

impl Sources for Files {
    fn tokens(&mut self, path: &Path) -> Option<TokenStream> {
        self.read.push((path.to_path_buf(), stamp(path)));
        let text = std::fs::read_to_string(path).ok()?;
        lex(&text)
    }
}

/// The tokens of a source file's text, without its byte-order mark and `#!` line.
pub fn lex(text: &str) -> Option<TokenStream> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = match text.strip_prefix("#!") {
        Some(rest) if !rest.trim_start().starts_with('[') => {
            &text[text.find('\n').unwrap_or(text.len())..]
        }
        _ => text,
    };
    text.parse().ok()
}

/// The root file of the crate being compiled: the `.rs` file among rustc's arguments (also in
/// `@file` argument files).
pub fn root_file() -> Option<PathBuf> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let files: Vec<String> = args
        .iter()
        .filter_map(|a| a.strip_prefix('@'))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    args.extend(files);
    args.into_iter()
        .map(PathBuf::from)
        .find(|p| p.extension().is_some_and(|e| e == "rs") && p.is_file())
}

/// The package's library, when the crate being compiled is another target of the package (a
/// binary, test, example or benchmark): its name in code and its root file.
pub fn library(root: &Path) -> Option<(String, PathBuf)> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let lib = manifest.join("src").join("lib.rs");
    let name = std::env::var("CARGO_PKG_NAME").ok()?.replace('-', "_");
    (lib.is_file() && !same_file(&lib, root)).then_some((name, lib))
}

/// A hash of the bytes of the file at `path`, or of its absence.
pub fn file_fingerprint(path: &Path) -> u128 {
    match std::fs::read(path) {
        Ok(bytes) => xxh3_128(&bytes),
        Err(_) => xxh3_128(path.to_string_lossy().as_bytes()),
    }
}

/// Whether two paths name one file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}
