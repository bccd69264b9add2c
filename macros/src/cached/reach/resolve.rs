//! Follows a function's references through the crate, transitively: paths through modules,
//! `use` imports (renames and globs), `crate::`, `self::`, `super::` and `Self::`; methods by
//! name; macros by name; and for each type it reaches, the trait `impl`s that operators,
//! formatting and conversions call without naming them.
//!
//! Where syntax cannot tell which item is meant, every candidate is taken: a method call
//! `.area()` reaches every `area` in the crate's `impl`s and traits, and `T::new()` every `new`
//! in a trait or trait `impl`. Taking too much costs a recomputation; taking too little would
//! serve a result the current code would not compute.

use std::collections::BTreeSet;

use super::index::{Index, Item, ItemId, ModId, Target};
use super::items::Kind;
use super::scan::{Include, Refs};
use super::uses::Use;

/// The crates a function's code can reach: this crate, and the package's library when this
/// crate is one of the package's binaries, tests, examples or benchmarks.
pub struct Crates<'a> {
    pub indexes: Vec<&'a Index>,
    /// The name the library is known by here (`my_lib` for the package `my-lib`).
    pub lib_name: Option<String>,
}

/// An item of one of the crates: the crate's position in [`Crates::indexes`], and the item.
pub type Found = (usize, ItemId);

/// Where a piece of code is: its crate, module, the type `Self` names, and its own `use`s.
struct Ctx<'r> {
    krate: usize,
    module: ModId,
    self_name: Option<&'r str>,
    uses: &'r [Use],
}

/// The walk over the crates from one function.
pub struct Reach<'a> {
    crates: &'a Crates<'a>,
    /// Every item reached.
    pub items: BTreeSet<Found>,
    /// Files the reached code reads with `include!` and its kin, with the module they are read
    /// from.
    pub includes: Vec<(usize, ModId, Include)>,
    queue: Vec<Found>,
    /// Items not to include: the function itself, whose code is fingerprinted already.
    skip: BTreeSet<Found>,
}

/// How deep `use` chains are followed; real crates need two or three.
const MAX_DEPTH: usize = 16;

impl<'a> Reach<'a> {
    pub fn new(crates: &'a Crates<'a>) -> Self {
        Reach {
            crates,
            items: BTreeSet::new(),
            includes: Vec::new(),
            queue: Vec::new(),
            skip: BTreeSet::new(),
        }
    }

    /// Starts from the function `id` of crate `krate`: what it refers to is reached, not the
    /// function itself.
    pub fn start_from(&mut self, krate: usize, id: ItemId) {
        self.skip.insert((krate, id));
        let item = &self.crates.indexes[krate].items[id];
        self.follow(krate, item.module, item.self_name.as_deref(), &item.refs);
    }

    /// Starts from code that is not in the index, written in module `module`.
    pub fn start_from_refs(&mut self, krate: usize, module: ModId, refs: &Refs) {
        self.follow(krate, module, None, refs);
    }

    /// Reaches `found` and everything it reaches in turn.
    pub fn include(&mut self, found: Found) {
        if !self.skip.contains(&found) && self.items.insert(found) {
            self.queue.push(found);
        }
    }

    /// Follows the queue until everything reachable is reached.
    pub fn run(&mut self) {
        while let Some((krate, id)) = self.queue.pop() {
            let index = self.crates.indexes[krate];
            let item = &index.items[id];
            if let Some(parent) = item.parent {
                self.include((krate, parent));
            }
            if is_type(item) {
                self.trait_impls_of(&item.name);
            }
            self.follow(krate, item.module, item.self_name.as_deref(), &item.refs);
        }
    }

    /// The trait `impl`s of every type called `name`, with all their members: operators,
    /// `Display`, `Drop`, `From` and the like run them without naming them.
    fn trait_impls_of(&mut self, name: &str) {
        for krate in 0..self.crates.indexes.len() {
            let index = self.crates.indexes[krate];
            for &imp in index.impls_of.get(name).into_iter().flatten() {
                if matches!(
                    &index.items[imp].kind,
                    Kind::Impl {
                        trait_name: Some(_),
                        ..
                    }
                ) {
                    self.include((krate, imp));
                    for &member in &index.items[imp].members {
                        self.include((krate, member));
                    }
                }
            }
        }
    }

    fn follow(&mut self, krate: usize, module: ModId, self_name: Option<&str>, refs: &Refs) {
        let ctx = Ctx {
            krate,
            module,
            self_name,
            uses: &refs.uses,
        };
        let mut found = Vec::new();
        for path in &refs.paths {
            found.extend(self.path(&ctx, path, 0));
        }
        for u in refs.uses.iter().filter(|u| u.alias.is_some()) {
            found.extend(self.path(&ctx, &u.path, 0));
        }
        for name in &refs.assoc {
            found.extend(self.by_name(name, |index| &index.trait_members));
        }
        for name in &refs.methods {
            found.extend(self.by_name(name, |index| &index.members));
        }
        for name in &refs.macros {
            found.extend(self.by_name(name, |index| &index.macros));
        }
        for include in &refs.includes {
            self.includes.push((krate, module, include.clone()));
        }
        for (k, target) in found {
            if let Target::Item(id) = target {
                self.include((k, id));
            }
        }
    }

    /// Every item called `name` in one of the crates' tables.
    fn by_name(
        &self,
        name: &str,
        table: impl Fn(&Index) -> &std::collections::HashMap<String, Vec<ItemId>>,
    ) -> Vec<(usize, Target)> {
        let mut out = Vec::new();
        for (krate, index) in self.crates.indexes.iter().enumerate() {
            for &id in table(index).get(name).into_iter().flatten() {
                out.push((krate, Target::Item(id)));
            }
        }
        out
    }

    /// What the path `segs` names, written in `ctx`: each item it passes through (a type
    /// before `::new`), and what it ends at.
    fn path(&self, ctx: &Ctx, segs: &[String], depth: usize) -> Vec<(usize, Target)> {
        if segs.is_empty() || depth > MAX_DEPTH {
            return Vec::new();
        }
        let index = self.crates.indexes[ctx.krate];
        let mut rest = &segs[1..];
        let mut current: Vec<(usize, Target)> = match segs[0].as_str() {
            "crate" => vec![(ctx.krate, Target::Module(0))],
            "self" if segs.len() > 1 => vec![(ctx.krate, Target::Module(ctx.module))],
            "self" => return Vec::new(),
            "super" => {
                let mut module = ctx.module;
                let mut supers = segs.iter().take_while(|s| *s == "super").count();
                rest = &segs[supers..];
                while supers > 0 {
                    module = index.modules[module].parent.unwrap_or(0);
                    supers -= 1;
                }
                vec![(ctx.krate, Target::Module(module))]
            }
            "Self" => {
                let Some(self_name) = ctx.self_name else {
                    return Vec::new();
                };
                let mut found = self.lookup(ctx.krate, ctx.module, self_name, depth + 1);
                if let Some(member) = rest.first() {
                    found.extend(self.members_of(self_name, member));
                }
                return found;
            }
            head => {
                let mut found: Vec<(usize, Target)> = ctx
                    .uses
                    .iter()
                    .filter(|u| u.alias.as_deref() == Some(head))
                    .flat_map(|u| {
                        let outer = Ctx { uses: &[], ..*ctx };
                        self.path(&outer, &u.path, depth + 1)
                    })
                    .collect();
                found.extend(self.lookup(ctx.krate, ctx.module, head, depth + 1));
                let is_lib = self.crates.lib_name.as_deref() == Some(head);
                if found.is_empty() && is_lib && ctx.krate == 0 && self.crates.indexes.len() > 1 {
                    found.push((1, Target::Module(0)));
                }
                found
            }
        };
        if current.is_empty() {
            // Not the crate's: a local, a generic, a foreign type. `Vec::from(..)` or
            // `T::area(..)` may still call a trait impl of this crate.
            return match rest.last() {
                Some(last) => self.by_name(last, |index| &index.trait_members),
                None => Vec::new(),
            };
        }
        let mut passed = Vec::new();
        for seg in rest {
            passed.extend(current.iter().filter(|(_, t)| matches!(t, Target::Item(_))));
            let mut next = Vec::new();
            for &(krate, target) in &current {
                next.extend(self.member(krate, target, seg, depth + 1));
            }
            if next.is_empty() {
                next = self.by_name(seg, |index| &index.trait_members);
                if next.is_empty() {
                    return passed;
                }
            }
            current = next;
        }
        passed.extend(current);
        passed
    }

    /// What `name` stands for in module `module` of crate `krate`: its items and submodules,
    /// what its `use`s bring in (globs last), and failing those, its macro calls that mention
    /// the name.
    fn lookup(
        &self,
        krate: usize,
        module: ModId,
        name: &str,
        depth: usize,
    ) -> Vec<(usize, Target)> {
        if depth > MAX_DEPTH {
            return Vec::new();
        }
        let index = self.crates.indexes[krate];
        let m = &index.modules[module];
        let mut found: Vec<(usize, Target)> = m
            .names
            .get(name)
            .into_iter()
            .flatten()
            .map(|&t| (krate, t))
            .collect();
        let ctx = Ctx {
            krate,
            module,
            self_name: None,
            uses: &[],
        };
        for u in m.uses.iter().filter(|u| u.alias.as_deref() == Some(name)) {
            found.extend(self.path(&ctx, &u.path, depth + 1));
        }
        if found.is_empty() {
            for glob in m.uses.iter().filter(|u| u.alias.is_none()) {
                for (k, target) in self.path(&ctx, &glob.path, depth + 1) {
                    if let Target::Module(inner) = target {
                        found.extend(self.lookup(k, inner, name, depth + 1));
                    }
                }
            }
        }
        if found.is_empty() {
            for &id in &m.opaque {
                if index.items[id].mentions.iter().any(|n| n == name) {
                    found.push((krate, Target::Item(id)));
                }
            }
        }
        found
    }

    /// `target::seg`: an item of a module, or an associated item of a type or trait.
    fn member(
        &self,
        krate: usize,
        target: Target,
        seg: &str,
        depth: usize,
    ) -> Vec<(usize, Target)> {
        match target {
            Target::Module(module) => self.lookup(krate, module, seg, depth),
            Target::Item(id) => {
                let item = &self.crates.indexes[krate].items[id];
                if !is_type(item) && item.kind != Kind::Trait {
                    return Vec::new();
                }
                let mut found = self.members_of(&item.name, seg);
                if found.is_empty() && item.kind == Kind::Enum {
                    // A variant: the enum itself is what is reached.
                    found.push((krate, target));
                }
                found
            }
        }
    }

    /// The items called `seg` in the `impl`s of types called `type_name`, in the trait of
    /// that name, and in the `impl`s of that trait.
    fn members_of(&self, type_name: &str, seg: &str) -> Vec<(usize, Target)> {
        let mut out = Vec::new();
        for (krate, index) in self.crates.indexes.iter().enumerate() {
            for &id in index.members.get(seg).into_iter().flatten() {
                let Some(parent) = index.items[id].parent else {
                    continue;
                };
                let parent = &index.items[parent];
                let matches = match &parent.kind {
                    Kind::Impl {
                        self_name,
                        trait_name,
                    } => self_name == type_name || trait_name.as_deref() == Some(type_name),
                    Kind::Trait => parent.name == type_name,
                    _ => false,
                };
                if matches {
                    out.push((krate, Target::Item(id)));
                }
            }
        }
        out
    }
}

/// A struct, enum, union or type alias: a type whose trait `impl`s code may run unnamed.
fn is_type(item: &Item) -> bool {
    matches!(
        item.kind,
        Kind::Struct | Kind::Enum | Kind::Union | Kind::TypeAlias
    )
}
