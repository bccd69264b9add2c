//! The store of a cache location that this build cannot reach: an object store's URL without
//! the `remote` feature, or whose settings do not hold. It holds nothing, so that every call
//! computes, as it would with no cache; it says why once, when it is opened, and again to
//! whoever lists or clears it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::layout::entry_path;
use super::{Detail, EntryId, Found, Reader, Store, Writer};
use crate::error::{Error, ErrorKind};

pub(crate) struct Unreachable {
    root: PathBuf,
    why: String,
}

impl Unreachable {
    /// The store of `root`, which cannot be reached for the reason `why`; warns of it once a
    /// process for each location.
    pub(crate) fn open(root: &Path, why: &str) -> Arc<dyn Store> {
        static WARNED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
        let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
        if warned.get_or_insert_default().insert(root.to_owned()) {
            tracing::warn!(cache = %root.display(), "cannot use this cache: {why}; computing every call without it");
        }
        Arc::new(Unreachable {
            root: root.to_owned(),
            why: why.to_owned(),
        })
    }

    fn error(&self) -> Error {
        Error::new(
            &self.root,
            ErrorKind::Io(std::io::Error::other(self.why.clone())),
        )
    }
}

impl Store for Unreachable {
    fn get(&self, id: &EntryId<'_>, _: Reader<'_>) -> Result<(), Error> {
        Err(Error::new(&self.path_of(id), ErrorKind::NotFound))
    }

    fn peek(&self, id: &EntryId<'_>, read: Reader<'_>) -> Result<(), Error> {
        self.get(id, read)
    }

    /// Stores nothing, as warned when the store was opened; not an error at each call.
    fn put(&self, _: &EntryId<'_>, _: Writer<'_>) -> Result<u64, Error> {
        Ok(0)
    }

    fn remove_function(&self, _: &str) -> Result<(), Error> {
        Err(self.error())
    }

    fn visit(&self, _: Option<&str>, _: Detail, _: &mut dyn FnMut(Found)) -> Result<(), Error> {
        Err(self.error())
    }

    fn count_hit(&self, _: &EntryId<'_>) -> bool {
        true
    }

    fn path_of(&self, id: &EntryId<'_>) -> PathBuf {
        entry_path(&self.root, id)
    }

    fn remove(&self, _: &Path) -> Result<bool, Error> {
        Err(self.error())
    }

    fn bounded(&self) -> (&Path, &dyn Store) {
        (&self.root, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    #[test]
    fn holds_nothing_and_says_why_to_listings() {
        let store = Unreachable::open(Path::new("s3://bucket/p"), "no `remote` feature");
        let id = EntryId {
            function: "f",
            version: "v",
            key: Key(7),
        };
        assert!(store.get(&id, &mut |_| Ok(())).unwrap_err().is_not_found());
        assert_eq!(store.put(&id, &mut |_| Ok(3)).unwrap(), 0);
        let err = store.list(None, Detail::Sizes).err().unwrap();
        assert_eq!(err.to_string(), "s3://bucket/p: no `remote` feature");
        assert!(
            store
                .path_of(&id)
                .starts_with(Path::new("s3://bucket/p/f/v"))
        );
    }
}
