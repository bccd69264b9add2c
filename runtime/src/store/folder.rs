//! A cache folder on this machine: entries are files laid out as [`super::layout`] says,
//! written atomically, their hits counted in place; listed shard by shard (`super::scan`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::layout::entry_path;
use super::read::Opened;
use super::scan::{Shard, read_dir, scan};
use super::write::replace;
use super::{Detail, EntryId, Found, Reader, Store, Summary, Writer, hits, sums};
use crate::error::{Error, ErrorKind};

/// A cache folder on this machine.
pub(crate) struct Folder {
    root: PathBuf,
    /// A hash of `root`, which names the folder's entries in the table of hits.
    seed: u64,
    /// Whether hits may count themselves in their entries; cleared at the first refusal.
    writable: AtomicBool,
}

impl Folder {
    pub(crate) fn new(root: &Path, count_hits: bool) -> Self {
        Folder {
            root: root.to_owned(),
            seed: xxh3_64(root.as_os_str().as_encoded_bytes()),
            writable: AtomicBool::new(count_hits),
        }
    }

    /// The name of the entry `id` in this process's table of hits: the same for hits read from
    /// the file and hits served from memory, without making its path.
    fn tally(&self, id: &EntryId<'_>) -> u64 {
        // The key names the function and its code version too (it hashes them first).
        xxh3_64_with_seed(&id.key.0.to_le_bytes(), self.seed)
    }

    /// The shard folders of every function, or of the one whose folder is `function`.
    fn shards(&self, function: Option<&str>) -> Result<Vec<Shard>, Error> {
        let functions = match function {
            // Never `.` or `..` (see `function_folder`): always a name inside the cache; and
            // only a folder, never a link to one elsewhere (as `subfolders` below), whose
            // files are not the cache's to list or remove.
            Some(f) => {
                let dir = self.root.join(f);
                let real = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
                real.then_some(dir).into_iter().collect()
            }
            None => subfolders(&self.root)?,
        };
        let mut shards = Vec::new();
        for function in functions {
            for version in subfolders(&function)? {
                for dir in subfolders(&version)? {
                    shards.push(Shard {
                        function: last_name(&function),
                        version: last_name(&version),
                        dir,
                    });
                }
            }
        }
        Ok(shards)
    }
}

impl Store for Folder {
    fn get(&self, id: &EntryId<'_>, read: Reader<'_>) -> Result<(), Error> {
        let path = entry_path(&self.root, id);
        hits::open(&path, &self.writable)
            .and_then(|mut file| {
                read(&mut file)?;
                hits::count(&file, self.tally(id), &path);
                Ok(())
            })
            .map_err(|kind| Error::new(&path, kind))
    }

    fn count_hit(&self, id: &EntryId<'_>) -> bool {
        if !self.writable.load(Ordering::Relaxed) {
            return true;
        }
        hits::count_closed(self.tally(id), &|| entry_path(&self.root, id))
    }

    fn peek(&self, id: &EntryId<'_>, read: Reader<'_>) -> Result<(), Error> {
        let path = entry_path(&self.root, id);
        Opened::open(&path, false)
            .and_then(|mut file| read(&mut file))
            .map_err(|kind| Error::new(&path, kind))
    }

    fn put(&self, id: &EntryId<'_>, write: Writer<'_>) -> Result<u64, Error> {
        let path = entry_path(&self.root, id);
        replace(&path, true, write).map_err(|kind| Error::new(&path, kind))
    }

    fn remove_function(&self, function: &str) -> Result<(), Error> {
        let dir = self.root.join(function);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::new(&dir, ErrorKind::from_io(e))),
        }
    }

    fn visit(
        &self,
        function: Option<&str>,
        detail: Detail,
        found: &mut dyn FnMut(Found),
    ) -> Result<(), Error> {
        if detail != Detail::Sizes {
            // This process's own hits, so that the counts and the times listed are up to date.
            hits::write_all(true);
        }
        scan(&self.shards(function)?, detail, found)
    }

    fn sum(&self, function: Option<&str>, sum: &mut dyn FnMut(&str, Summary)) -> Result<(), Error> {
        hits::write_all(true);
        sums::sum(&self.root, &self.shards(function)?, function.is_none(), sum)
    }

    fn path_of(&self, id: &EntryId<'_>) -> PathBuf {
        entry_path(&self.root, id)
    }

    fn bounded(&self) -> (&Path, &dyn Store) {
        (&self.root, self)
    }

    fn remove(&self, path: &Path) -> Result<bool, Error> {
        let removed = match std::fs::remove_file(path) {
            Ok(()) => true,
            // Removed meanwhile by another process: as good.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::new(path, ErrorKind::from_io(e))),
        };
        // Then the shard, version and function folders it leaves empty. `remove_dir` refuses
        // a folder that is not empty, and another writer may just have filled one again.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(removed)
    }
}

fn last_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The subfolders of `dir`, sorted; none when it does not exist.
fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut dirs: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}
