//! The local folder, the one [`Store`] today: entries are files laid out as [`super::layout`]
//! says, written atomically, their hits counted in place.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, SystemTime};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::layout::{entry_path, key_of_file};
use super::read::{Opened, read_header};
use super::temp::TEMP_PREFIX;
use super::write::replace;
use super::{Detail, EntryId, EntryInfo, Found, Reader, Store, Writer, hits};
use crate::error::{Error, ErrorKind};

/// A temporary file older than this belongs to a writer that crashed: no live writer takes
/// this long between creating its file and renaming it.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

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
        let now = SystemTime::now();
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
        for function in functions {
            for version in subfolders(&function)? {
                for shard in subfolders(&version)? {
                    for file in read_dir(&shard)? {
                        let Ok(file) = file else { continue };
                        let name = file.file_name().to_string_lossy().into_owned();
                        let Ok(meta) = file.metadata() else { continue };
                        let key = match key_of_file(&name) {
                            Some(key) if meta.is_file() => key,
                            _ => continue,
                        };
                        let path = file.path();
                        let modified = meta.modified().unwrap_or(now);
                        if name.starts_with(TEMP_PREFIX) {
                            let age = now.duration_since(modified).unwrap_or_default();
                            if age > ABANDONED_AFTER {
                                found(Found::Abandoned(path));
                            }
                            continue;
                        }
                        let header = (detail == Detail::Headers)
                            .then(|| read_header(&path))
                            .flatten();
                        found(Found::Entry(EntryInfo {
                            function: last_name(&function),
                            code_version: last_name(&version),
                            key: key.to_owned(),
                            size: meta.len(),
                            type_name: header
                                .as_ref()
                                .map_or_else(|| "?".to_owned(), |h| h.type_name.clone()),
                            compute: header.as_ref().map_or(Duration::ZERO, |h| h.compute),
                            created: header.as_ref().map_or(modified, |h| h.created),
                            last_used: modified,
                            hits: header.as_ref().map_or(0, |h| u64::from(h.hits)),
                            args: header.map(|h| h.args).unwrap_or_default(),
                            path,
                            outdated: false,
                        }));
                    }
                }
            }
        }
        Ok(())
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

/// The entries of `dir`; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<std::io::Result<std::fs::DirEntry>>, Error> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::new(dir, ErrorKind::from_io(e))),
    }
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
