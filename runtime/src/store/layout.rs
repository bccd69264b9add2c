//! Where entries are in a store: `<function>/<code version>/<shard>/<key>.jbl`, the whole
//! layout in one place. The shard is the key's first two hex digits, so that a function with a
//! million entries has 256 folders of about 4,000, not one of a million.

use std::path::{Path, PathBuf};

use crate::xxh3::xxh3_64;

use super::EntryId;

/// How entry files' names end, and those of their temporary files.
pub(crate) const SUFFIX: &str = ".jbl";

/// The file of the entry `id` below `root`.
pub(crate) fn entry_path(root: &Path, id: &EntryId<'_>) -> PathBuf {
    let hex = id.key.hex();
    let hex = hex.as_str();
    let len = root.as_os_str().len() + id.function.len() + id.version.len() + hex.len();
    // Room for the shard, the separators and the extension: one allocation.
    let mut path = PathBuf::with_capacity(len + 16);
    path.push(root);
    path.push(id.function);
    path.push(id.version);
    path.push(&hex[..2]);
    path.push(hex);
    path.set_extension(&SUFFIX[1..]);
    path
}

/// The folder name of a function's identity: `a::b::f` becomes `a.b.f`; anything but ASCII
/// letters, digits, `_`, `-` and `.` becomes `_`. A name that would be no folder of its own
/// (empty, `.` or `..`, which `Memory::cache` or `name = "..."` could be given) gets a `_` in
/// front, so that a function's folder is always inside the cache folder, and its own.
pub(crate) fn function_folder(identity: &str) -> String {
    let name: String = identity
        .replace("::", ".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.as_str() {
        "" | "." | ".." => format!("_{name}"),
        _ => name,
    }
}

/// The folder name of a version of a function's code: a hash of its fingerprint and of the
/// `version` it was given.
pub(crate) fn version_folder(fingerprint: u128, version: &str) -> String {
    let mut code = Vec::with_capacity(16 + version.len());
    code.extend_from_slice(&fingerprint.to_le_bytes());
    code.extend_from_slice(version.as_bytes());
    format!("{:016x}", xxh3_64(&code))
}

/// The key of an entry file named `name`, if it is one.
pub(crate) fn key_of_file(name: &str) -> Option<&str> {
    name.ends_with(SUFFIX)
        .then(|| name.trim_end_matches(SUFFIX))
}

/// The function folder, version folder and key of the entry at `relative`, a path below a
/// store's root written with `/` (an object's name), if it is one.
#[cfg(feature = "remote")]
pub(crate) fn parse_relative(relative: &str) -> Option<(&str, &str, &str)> {
    let mut parts = relative.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(function), Some(version), Some(_shard), Some(file), None) => {
            Some((function, version, key_of_file(file)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    #[test]
    fn an_entry_is_sharded_by_its_key() {
        let key = Key(0x47463e97fff66fc1ee2dec2ca25cbfe1);
        let id = EntryId {
            function: "demo.square",
            version: "01c86cab8dd4a530",
            key,
        };
        assert_eq!(
            entry_path(Path::new("/cache"), &id),
            Path::new(
                "/cache/demo.square/01c86cab8dd4a530/47/47463e97fff66fc1ee2dec2ca25cbfe1.jbl"
            )
        );
        assert_eq!(key_of_file("47463e97.jbl"), Some("47463e97"));
        assert_eq!(key_of_file("47463e97jbl"), None);
    }

    #[cfg(feature = "remote")]
    #[test]
    fn an_objects_name_reads_back_as_its_entry() {
        let key = Key(0x47463e97fff66fc1ee2dec2ca25cbfe1);
        let id = EntryId {
            function: "demo.square",
            version: "01c86cab8dd4a530",
            key,
        };
        let name = entry_path(Path::new(""), &id);
        assert_eq!(
            parse_relative(name.to_str().unwrap()),
            Some(("demo.square", "01c86cab8dd4a530", key.hex().as_str()))
        );
        assert_eq!(parse_relative("demo.square/01c8/47"), None);
        assert_eq!(parse_relative("demo.square/01c8/47/47.jbl/x"), None);
        assert_eq!(parse_relative("demo.square/01c8/47/notes.txt"), None);
    }

    #[test]
    fn folder_names_are_portable() {
        assert_eq!(function_folder("demo::square"), "demo.square");
        assert_eq!(function_folder("demo::Point::norm"), "demo.Point.norm");
        assert_eq!(function_folder("a b/c:d"), "a_b_c_d");
        assert_eq!(function_folder(""), "_");
        assert_eq!(function_folder("."), "_.");
        assert_eq!(function_folder(".."), "_..");
        assert_eq!(function_folder("..."), "...");
    }
}
