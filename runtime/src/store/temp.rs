//! The temporary file a writer fills before renaming it over its target, and what is left of
//! those of writers that were killed.
//!
//! A temporary file is named after its target, in a numbered slot (`.tmp-<hash of the
//! target's name>-<slot>.jbl`, beside the target), and its writer holds a lock on it (`flock`)
//! until it is renamed: the kernel releases the lock of a writer that dies, however it dies.
//! So the next writer to the same path tells a dead writer's file from a live one's by taking
//! its lock, and removes it: the first slot free or freed is its own, and after its rename it
//! removes those of dead writers in the slots that follow, up to the first empty one. (Two
//! writers killed in the middle of writing the same path, with a third finishing between,
//! can leave a file past an empty slot: in a cache folder it goes when the folder is pruned,
//! an hour on, as any other.) Where locks are not to be had (not Unix), or every slot is
//! taken, the file gets a random name instead, and is left behind if its writer dies.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::xxh3::xxh3_64;

use super::layout::SUFFIX;

/// Prefix of temporary files, so that tools can recognise (and clean up) those of a crashed writer.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// How many writers of one path can each have a slot at once; more get random names.
const SLOTS: usize = 16;

/// A temporary file being written, removed when dropped unless renamed over its target.
pub(crate) struct Temp {
    file: File,
    path: PathBuf,
    /// Its slot, if it has one (else its name is random).
    slot: Option<usize>,
    renamed: bool,
}

impl Temp {
    /// A new, empty temporary file for `target`, in its folder, which is created if missing
    /// and `create_dirs` is set.
    pub(crate) fn new(target: &Path, create_dirs: bool) -> io::Result<Temp> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        match Temp::in_dir(dir, target) {
            Err(e) if create_dirs && e.kind() == io::ErrorKind::NotFound => {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::DirBuilderExt;
                    // As the files: never writable by others, whatever the process umask allows.
                    builder.mode(0o755);
                }
                builder.create(dir)?;
                Temp::in_dir(dir, target)
            }
            other => other,
        }
    }

    fn in_dir(dir: &Path, target: &Path) -> io::Result<Temp> {
        #[cfg(unix)]
        if let Some(temp) = slots::claim(dir, target)? {
            return Ok(temp);
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX).suffix(SUFFIX);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(MODE));
        }
        let (file, path) = builder.tempfile_in(dir)?.keep().map_err(|e| e.error)?;
        Ok(Temp {
            file,
            path,
            slot: None,
            renamed: false,
        })
    }

    pub(crate) fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// Renames the file over `target`, which is `target` as given to [`Temp::new`]; then
    /// removes what dead writers of `target` left in the slots after this one.
    pub(crate) fn rename_over(mut self, target: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, target)?;
        self.renamed = true;
        #[cfg(unix)]
        if let Some(slot) = self.slot {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            slots::sweep(dir, target, slot + 1);
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The mode of a new file: readable like any file the program writes (the process umask still
/// applies); never executable, never writable by others.
#[cfg(unix)]
const MODE: u32 = 0o644;

/// The name of slot `slot` of the target `target`.
fn slot_name(target: &Path, slot: usize) -> String {
    let name = target.file_name().unwrap_or(target.as_os_str());
    let hash = xxh3_64(name.as_encoded_bytes());
    format!("{TEMP_PREFIX}{hash:016x}-{slot}{SUFFIX}")
}

#[cfg(unix)]
mod slots {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::path::Path;

    use super::{MODE, SLOTS, Temp, slot_name};

    /// The first slot of `target` in `dir` that is free, or whose writer is dead; `None` when
    /// every slot has a live writer.
    pub(super) fn claim(dir: &Path, target: &Path) -> io::Result<Option<Temp>> {
        for slot in 0..SLOTS {
            let path = dir.join(slot_name(target, slot));
            // Twice: once more after removing a dead writer's file.
            for _ in 0..2 {
                let created = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(MODE)
                    .open(&path);
                match created {
                    // Another writer may have found it just created, taken it for a dead
                    // writer's and removed it: it is this one's only once locked, and still there.
                    Ok(file) if owned(&file, &path) => {
                        return Ok(Some(Temp {
                            file,
                            path,
                            slot: Some(slot),
                            renamed: false,
                        }));
                    }
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if !remove_if_dead(&path) {
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(None)
    }

    /// Removes the files of dead writers of `target` in `dir`, from slot `from` to the first
    /// empty one.
    pub(super) fn sweep(dir: &Path, target: &Path, from: usize) {
        for slot in from..SLOTS {
            let path = dir.join(slot_name(target, slot));
            if std::fs::symlink_metadata(&path).is_err() {
                break;
            }
            remove_if_dead(&path);
        }
    }

    /// Whether `file`, open, is locked by this process now, and is the file at `path`.
    fn owned(file: &File, path: &Path) -> bool {
        // SAFETY: `flock` on a descriptor that `file` owns, open for the whole call.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        locked && same_file(file, path)
    }

    fn same_file(file: &File, path: &Path) -> bool {
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
            _ => false,
        }
    }

    /// Removes the temporary file at `path` if its writer is dead (no one holds its lock);
    /// says whether the slot is free now.
    fn remove_if_dead(path: &Path) -> bool {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let file = match opened {
            Ok(file) => file,
            Err(e) => return e.kind() == io::ErrorKind::NotFound,
        };
        // Held until `file` closes, after the removal: a writer that opened the same file
        // meanwhile cannot lock it before it is gone, and then finds it gone.
        owned(&file, path) && std::fs::remove_file(path).is_ok()
    }
}
