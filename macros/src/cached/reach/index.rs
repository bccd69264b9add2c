//! The items of one crate, read from its files: its module tree (`mod x;` files, `#[path]`,
//! inline modules, `include!`), what each module names and imports, and for each item its
//! fingerprint and what it refers to. Built once per crate and kept: it holds plain data only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use xxhash_rust::xxh3::xxh3_128;

use super::items::{Kind, RawItem, split};
use super::scan::{self, Include, Piece, Refs};
use super::tokens::{self, string_value};
use super::uses::{self, Use};
use crate::cached::fingerprint::canonical;

pub type ItemId = usize;
pub type ModId = usize;

/// Reads the files of a crate as tokens.
pub trait Sources {
    /// The tokens of the file at `path`, or `None` if it cannot be read or lexed.
    fn tokens(&mut self, path: &Path) -> Option<TokenStream>;
}

/// What a name in a module stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Item(ItemId),
    Module(ModId),
}

pub struct Module {
    pub parent: Option<ModId>,
    /// `crate::a::b`.
    pub path: String,
    /// The file its items are written in.
    pub file: PathBuf,
    /// Where its `mod x;` files are: `x.rs` or `x/mod.rs` in this folder.
    dir: PathBuf,
    /// Declared in braces, `mod x { .. }`, rather than in a file of its own.
    inline: bool,
    pub names: HashMap<String, Vec<Target>>,
    pub uses: Vec<Use>,
    /// Macro calls and other tokens at item position: they may define any name they mention.
    pub opaque: Vec<ItemId>,
}

/// Where a module is: in the tree, in a file, and where its `mod x;` files are.
struct Place {
    parent: Option<ModId>,
    path: String,
    file: PathBuf,
    dir: PathBuf,
    inline: bool,
}

pub struct Item {
    pub kind: Kind,
    pub name: String,
    pub module: ModId,
    /// For an item inside an `impl` or a trait: that `impl` or trait.
    pub parent: Option<ItemId>,
    /// Inside an `impl` or a trait: the name `Self` stands for.
    pub self_name: Option<String>,
    /// For an `impl` or a trait: the items in its braces.
    pub members: Vec<ItemId>,
    /// A hash of its tokens (docs, comments and spacing aside), path and kind. For an `impl`
    /// or a trait, of its header alone: each member has its own.
    pub fingerprint: u128,
    /// For a function: the hash that `fingerprint::of` gives its signature and body, to find
    /// the function a `#[cached]` attribute is on.
    pub code: Option<u128>,
    pub refs: Refs,
    /// For a macro call or unknown tokens: every name they mention.
    pub mentions: Vec<String>,
    /// Names of functions declared inside its body (a doctest's `main` holds the whole test).
    pub inner_fns: Vec<String>,
}

#[derive(Default)]
pub struct Index {
    pub modules: Vec<Module>,
    pub items: Vec<Item>,
    /// Items inside `impl`s and traits, by name: what `.name(..)` may call.
    pub members: HashMap<String, Vec<ItemId>>,
    /// Items inside trait `impl`s and traits, by name: what `T::name` and `<X as Tr>::name`
    /// may call.
    pub trait_members: HashMap<String, Vec<ItemId>>,
    /// `impl`s by the last name of their self type.
    pub impls_of: HashMap<String, Vec<ItemId>>,
    /// `impl`s by the last name of their trait.
    pub impls_for_trait: HashMap<String, Vec<ItemId>>,
    /// `macro_rules!` macros by name (their scoping is textual; any of them may be meant).
    pub macros: HashMap<String, Vec<ItemId>>,
    /// Files that were needed but could not be read: what is in them is unknown.
    pub missing: Vec<PathBuf>,
}

/// Reads the crate whose root file is `root`.
pub fn build(root: &Path, sources: &mut dyn Sources) -> Index {
    let mut index = Index::default();
    let dir = root.parent().unwrap_or(Path::new("")).to_path_buf();
    match sources.tokens(root) {
        Some(tokens) => {
            let tts: Vec<TokenTree> = tokens.into_iter().collect();
            let place = Place {
                parent: None,
                path: "crate".into(),
                file: root.into(),
                dir,
                inline: false,
            };
            index.add_module(place, &tts, sources);
        }
        None => index.missing.push(root.into()),
    }
    index
}

impl Index {
    fn add_module(&mut self, place: Place, tts: &[TokenTree], sources: &mut dyn Sources) -> ModId {
        let id = self.modules.len();
        self.modules.push(Module {
            parent: place.parent,
            path: place.path,
            file: place.file,
            dir: place.dir,
            inline: place.inline,
            names: HashMap::new(),
            uses: Vec::new(),
            opaque: Vec::new(),
        });
        for raw in split(tts) {
            self.add_item(id, raw, sources);
        }
        id
    }

    fn add_item(&mut self, m: ModId, raw: RawItem, sources: &mut dyn Sources) {
        match &raw.kind {
            Kind::Mod => self.add_child_module(m, &raw, sources),
            Kind::Use => {
                let tree = &raw.tokens[raw.head + 1..raw.tokens.len().saturating_sub(1)];
                let found = uses::parse(tree);
                self.modules[m].uses.extend(found);
            }
            Kind::Impl { .. } | Kind::Trait => self.add_container(m, raw),
            Kind::MacroCall(path) if path.len() == 1 && path[0] == "include" => {
                let refs = scan::refs(raw.tokens.iter().cloned().collect());
                let included = refs.includes.first().and_then(|inc| {
                    let file = self.include_path(m, inc)?;
                    Some((sources.tokens(&file)?, file))
                });
                match included {
                    Some((tokens, _)) => {
                        let tts: Vec<TokenTree> = tokens.into_iter().collect();
                        for raw in split(&tts) {
                            self.add_item(m, raw, sources);
                        }
                    }
                    None => {
                        let id = self.push(m, None, None, &raw, true);
                        self.modules[m].opaque.push(id);
                        self.missing.push(self.modules[m].file.clone());
                    }
                }
            }
            Kind::MacroCall(_) | Kind::Other | Kind::ExternBlock => {
                let id = self.push(m, None, None, &raw, true);
                self.modules[m].opaque.push(id);
                // Items written inside a macro call's braces, as `cfg_if!`, `thread_local!`
                // and `lazy_static!` hold them, are taken for what they look like.
                if matches!(raw.kind, Kind::MacroCall(_)) {
                    self.add_braced_items(m, &raw.tokens, sources, 0);
                }
            }
            Kind::ExternCrate => {}
            Kind::MacroRules => {
                let id = self.push(m, None, None, &raw, false);
                self.macros.entry(raw.name.clone()).or_default().push(id);
            }
            _ => {
                let id = self.push(m, None, None, &raw, false);
                self.name(m, &raw.name, Target::Item(id));
            }
        }
    }

    /// The items in every brace group of `tts`, at any depth (up to a few levels).
    fn add_braced_items(
        &mut self,
        m: ModId,
        tts: &[TokenTree],
        sources: &mut dyn Sources,
        depth: usize,
    ) {
        if depth > 4 {
            return;
        }
        for tt in tts {
            let TokenTree::Group(g) = tt else {
                continue;
            };
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            for raw in split(&inner) {
                match raw.kind {
                    Kind::Other | Kind::MacroCall(_) => {
                        self.add_braced_items(m, &raw.tokens, sources, depth + 1);
                    }
                    Kind::ExternCrate | Kind::ExternBlock | Kind::MacroRules => {}
                    _ if raw.kind != Kind::Use && raw.name.is_empty() => {}
                    _ => self.add_item(m, raw, sources),
                }
            }
        }
    }

    fn name(&mut self, m: ModId, name: &str, target: Target) {
        if !name.is_empty() && name != "_" {
            let names = &mut self.modules[m].names;
            names.entry(name.to_owned()).or_default().push(target);
        }
    }

    /// An `impl` or a trait: its header is one item, each member another.
    fn add_container(&mut self, m: ModId, raw: RawItem) {
        let (self_name, trait_name) = match &raw.kind {
            Kind::Impl {
                self_name,
                trait_name,
            } => (self_name.clone(), trait_name.clone()),
            _ => (raw.name.clone(), Some(raw.name.clone())),
        };
        let header = RawItem {
            kind: raw.kind.clone(),
            name: raw.name.clone(),
            tokens: raw.tokens[..raw.body.unwrap_or(raw.tokens.len())].to_vec(),
            attrs: raw.attrs.clone(),
            head: raw.head,
            body: None,
        };
        let id = self.push(m, None, None, &header, false);
        match &raw.kind {
            Kind::Impl { .. } => {
                self.impls_of.entry(self_name.clone()).or_default().push(id);
                if let Some(t) = &trait_name {
                    self.impls_for_trait.entry(t.clone()).or_default().push(id);
                }
            }
            _ => self.name(m, &raw.name, Target::Item(id)),
        }
        let Some(body) = raw.body_group() else {
            return;
        };
        let tts: Vec<TokenTree> = body.stream().into_iter().collect();
        for member in split(&tts) {
            if member.name.is_empty() {
                continue;
            }
            let mid = self.push(m, Some(id), Some(self_name.clone()), &member, false);
            self.items[id].members.push(mid);
            self.members
                .entry(member.name.clone())
                .or_default()
                .push(mid);
            if trait_name.is_some() {
                let by_name = self.trait_members.entry(member.name.clone()).or_default();
                by_name.push(mid);
            }
        }
    }

    fn push(
        &mut self,
        m: ModId,
        parent: Option<ItemId>,
        self_name: Option<String>,
        raw: &RawItem,
        opaque: bool,
    ) -> ItemId {
        let tokens: TokenStream = raw.tokens.iter().cloned().collect();
        let mut bytes =
            format!("{:?} {} {}\0", raw.kind, self.modules[m].path, raw.name).into_bytes();
        bytes.extend(canonical(tokens.clone()));
        let code = match (&raw.kind, raw.body) {
            (Kind::Fn, Some(body)) => {
                let mut code = canonical(raw.tokens[raw.head..body].iter().cloned().collect());
                code.push(0xFF);
                code.extend(canonical(raw.tokens[body..].iter().cloned().collect()));
                Some(xxh3_128(&code))
            }
            _ => None,
        };
        let refs = scan::refs(tokens.clone());
        let mentions = if opaque { idents(tokens) } else { Vec::new() };
        let inner_fns = match &raw.kind {
            Kind::Fn => raw
                .body_group()
                .map(|b| inner_fns(b.stream()))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.items.push(Item {
            kind: raw.kind.clone(),
            name: raw.name.clone(),
            module: m,
            parent,
            self_name,
            members: Vec::new(),
            fingerprint: xxh3_128(&bytes),
            code,
            refs,
            mentions,
            inner_fns,
        });
        self.items.len() - 1
    }

    /// `mod x;` or `mod x { .. }`.
    fn add_child_module(&mut self, m: ModId, raw: &RawItem, sources: &mut dyn Sources) {
        let parent = &self.modules[m];
        let path = format!("{}::{}", parent.path, raw.name);
        let child_dir = parent.dir.join(&raw.name);
        if let Some(body) = raw.body_group() {
            let tts: Vec<TokenTree> = body.stream().into_iter().collect();
            let place = Place {
                parent: Some(m),
                path,
                file: parent.file.clone(),
                dir: child_dir,
                inline: true,
            };
            let id = self.add_module(place, &tts, sources);
            self.name(m, &raw.name, Target::Module(id));
            return;
        }
        // `#[path = ".."]`, also inside `cfg_attr`: relative to the declaring file's folder,
        // or to the inline module's folder.
        let base = if parent.inline {
            parent.dir.clone()
        } else {
            parent.file.parent().unwrap_or(Path::new("")).to_path_buf()
        };
        let explicit: Vec<PathBuf> = raw
            .attrs
            .iter()
            .flat_map(path_attrs)
            .map(|p| base.join(p))
            .collect();
        let conditional = raw.attrs.iter().any(|a| {
            let first = a.stream().into_iter().next();
            matches!(first, Some(TokenTree::Ident(i)) if i == "cfg" || i == "cfg_attr")
        });
        let candidates: Vec<(PathBuf, PathBuf)> = if explicit.is_empty() {
            vec![
                (
                    parent.dir.join(format!("{}.rs", raw.name)),
                    child_dir.clone(),
                ),
                (child_dir.join("mod.rs"), child_dir.clone()),
            ]
        } else {
            // A file named by `#[path]` is read as a `mod.rs` file.
            explicit
                .into_iter()
                .map(|p| {
                    let dir = p.parent().unwrap_or(Path::new("")).to_path_buf();
                    (p, dir)
                })
                .collect()
        };
        let mut found = false;
        for (file, dir) in candidates {
            let Some(tokens) = sources.tokens(&file) else {
                continue;
            };
            let tts: Vec<TokenTree> = tokens.into_iter().collect();
            let place = Place {
                parent: Some(m),
                path: path.clone(),
                file,
                dir,
                inline: false,
            };
            let id = self.add_module(place, &tts, sources);
            self.name(m, &raw.name, Target::Module(id));
            found = true;
        }
        // A missing file behind a `cfg` is a module compiled out: rustc would fail otherwise.
        if !found && !conditional {
            self.missing
                .push(self.modules[m].dir.join(format!("{}.rs", raw.name)));
        }
    }

    /// The file an `include!` in module `m` reads.
    pub fn include_path(&self, m: ModId, include: &Include) -> Option<PathBuf> {
        let mut path = String::new();
        for piece in &include.pieces {
            match piece {
                Piece::Text(t) => path.push_str(t),
                Piece::Env(var) => path.push_str(&std::env::var(var).ok()?),
            }
        }
        let file = &self.modules[m].file;
        Some(file.parent().unwrap_or(Path::new("")).join(path))
    }
}

/// The paths named by `path = ".."` in an attribute, directly or inside `cfg_attr(..)`.
fn path_attrs(attr: &proc_macro2::Group) -> Vec<String> {
    let tts: Vec<TokenTree> = attr.stream().into_iter().collect();
    match tts.first() {
        Some(TokenTree::Ident(i)) if i == "path" => match tts.get(2) {
            Some(TokenTree::Literal(lit)) => string_value(&lit.to_string()).into_iter().collect(),
            _ => Vec::new(),
        },
        Some(TokenTree::Ident(i)) if i == "cfg_attr" => match tts.get(1) {
            Some(TokenTree::Group(args)) => {
                let inner: Vec<TokenTree> = args.stream().into_iter().collect();
                inner
                    .split(|t| tokens::is_punct(Some(t), ','))
                    .flat_map(|part| {
                        let g = proc_macro2::Group::new(
                            proc_macro2::Delimiter::Bracket,
                            part.iter().cloned().collect(),
                        );
                        path_attrs(&g)
                    })
                    .collect()
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Every identifier in `tokens` that could name an item a macro defines: keywords and the
/// names of the language's and the prelude's types are left out.
fn idents(tokens: TokenStream) -> Vec<String> {
    const NOT_DEFINED: &[&str] = &[
        "as", "bool", "Box", "char", "const", "crate", "enum", "Err", "f32", "f64", "false", "fn",
        "for", "i128", "i16", "i32", "i64", "i8", "impl", "in", "isize", "let", "mod", "mut",
        "None", "Ok", "Option", "pub", "ref", "Result", "self", "Self", "Some", "static", "str",
        "String", "struct", "super", "trait", "true", "type", "u128", "u16", "u32", "u64", "u8",
        "use", "usize", "Vec", "where",
    ];
    let mut out = Vec::new();
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                let name = tokens::name_of(&i);
                if !NOT_DEFINED.contains(&name.as_str()) {
                    out.push(name);
                }
            }
            TokenTree::Group(g) => out.extend(idents(g.stream())),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Names of the functions declared anywhere in `tokens`.
fn inner_fns(tokens: TokenStream) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_fn = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) if after_fn => {
                out.push(tokens::name_of(&i));
                after_fn = false;
            }
            TokenTree::Ident(i) => after_fn = i == "fn",
            TokenTree::Group(g) => {
                out.extend(inner_fns(g.stream()));
                after_fn = false;
            }
            _ => after_fn = false,
        }
    }
    out
}
