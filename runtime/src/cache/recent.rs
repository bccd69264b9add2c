//! Small results this process stored or loaded lately, kept in memory as their entries' bytes:
//! a hit on one costs a lookup and a decode, no system call.
//!
//! What stays true with it:
//! - a result is kept only once its entry is stored (or queued to be, see `writer`) or was
//!   loaded from the store; it is decoded and checked (checksum, type) at every hit, as a file
//!   would be;
//! - `refresh` and `JOBLET_REFRESH` replace the copy with the new result; any removal of
//!   entries by this process (`clear`, `Memory`'s clearing and pruning, the size limit's
//!   eviction) drops every copy;
//! - hits still count in the entry file, at most once a second an entry, as file hits do; that
//!   write finds an entry removed by another process, and the copy goes with it. Until then,
//!   another process's `clear` or `refresh` is not seen by this one: for at most a second after
//!   its first hit of a copy, and then between two of its counts;
//! - the table is bounded in bytes (`JOBLET_IN_MEMORY`, default 64 MiB; `0` turns it off), and
//!   keeps entries of at most 64 KiB; the least recently used go first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{OnceLock, RwLock};
use std::time::SystemTime;

use crate::key::Key;
use crate::size::size_in_bytes;
use crate::store::Image;

/// The environment variable that bounds the table, as a size (`64M`, `1G`); `0` turns it off.
///
/// ```
/// assert_eq!(joblet_runtime::IN_MEMORY_ENV, "JOBLET_IN_MEMORY");
/// ```
pub const IN_MEMORY_ENV: &str = "JOBLET_IN_MEMORY";

/// The table's bound when [`IN_MEMORY_ENV`] does not say.
const DEFAULT_LIMIT: usize = 64 << 20;

/// Entries larger than this are not kept: a hit on a large one is bound by copying its value,
/// which memory does not make cheaper than the page cache.
pub(crate) const KEEP_UP_TO: usize = 64 << 10;

/// What an entry is named by: its store (a hash of the cache folder) and its key, which names
/// the function, its code version and the call.
type Name = (u64, u128);

struct Copy {
    image: Image,
    /// When the entry was stored, for `expires`.
    created: SystemTime,
    /// The table's clock at its last hit, for eviction.
    used: AtomicU64,
}

/// Hashes a [`Name`], two hashes already, by mixing them: no need for SipHash.
#[derive(Default, Clone, Copy)]
struct Mixed(u64);

impl std::hash::Hasher for Mixed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = self.0.rotate_left(29) ^ v;
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64 ^ (v >> 64) as u64);
    }
}

type Copies = HashMap<Name, Copy, std::hash::BuildHasherDefault<Mixed>>;

struct Table {
    copies: RwLock<Copies>,
    bytes: AtomicUsize,
    clock: AtomicU64,
    limit: usize,
}

fn table() -> Option<&'static Table> {
    static TABLE: OnceLock<Option<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let limit = match std::env::var(IN_MEMORY_ENV) {
                Ok(text) => match size_in_bytes(&text) {
                    Ok(bytes) => usize::try_from(bytes).unwrap_or(usize::MAX),
                    Err(e) => {
                        tracing::warn!(
                            "{IN_MEMORY_ENV}={text:?}: {e}; keeping the default, 64 MiB"
                        );
                        DEFAULT_LIMIT
                    }
                },
                Err(_) => DEFAULT_LIMIT,
            };
            (limit > 0).then(|| Table {
                copies: RwLock::new(Copies::default()),
                bytes: AtomicUsize::new(0),
                clock: AtomicU64::new(0),
                limit,
            })
        })
        .as_ref()
}

/// The copy of the entry `key` of the store `store`, with its creation time.
pub(crate) fn get(store: u64, key: Key) -> Option<(Image, SystemTime)> {
    let table = table()?;
    let copies = table.copies.read().unwrap_or_else(|e| e.into_inner());
    let copy = copies.get(&(store, key.0))?;
    copy.used.store(table.clock.fetch_add(1, Relaxed), Relaxed);
    Some((copy.image.clone(), copy.created))
}

/// Keeps `image`, the entry `key` of the store `store`, if it is small enough.
pub(crate) fn put(store: u64, key: Key, image: Image, created: SystemTime) {
    let Some(table) = table() else { return };
    if image.len() > KEEP_UP_TO {
        return;
    }
    let len = image.len();
    let copy = Copy {
        image,
        created,
        used: AtomicU64::new(table.clock.fetch_add(1, Relaxed)),
    };
    let mut copies = table.copies.write().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = copies.insert((store, key.0), copy) {
        table.bytes.fetch_sub(old.image.len(), Relaxed);
    }
    if table.bytes.fetch_add(len, Relaxed) + len > table.limit {
        evict(table, &mut copies);
    }
}

/// Drops the copy of the entry `key`.
pub(crate) fn remove(store: u64, key: Key) {
    let Some(table) = table() else { return };
    let mut copies = table.copies.write().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = copies.remove(&(store, key.0)) {
        table.bytes.fetch_sub(old.image.len(), Relaxed);
    }
}

/// Drops every copy: entries were removed.
pub(crate) fn forget_all() {
    let Some(table) = table() else { return };
    let mut copies = table.copies.write().unwrap_or_else(|e| e.into_inner());
    copies.clear();
    table.bytes.store(0, Relaxed);
}

/// Drops the least recently used copies until the table holds 90 % of its bound.
fn evict(table: &Table, copies: &mut Copies) {
    let target = table.limit - table.limit / 10;
    let mut by_use: Vec<(u64, Name, usize)> = copies
        .iter()
        .map(|(name, c)| (c.used.load(Relaxed), *name, c.image.len()))
        .collect();
    by_use.sort_unstable();
    let mut bytes = table.bytes.load(Relaxed);
    for (_, name, len) in by_use {
        if bytes <= target {
            break;
        }
        copies.remove(&name);
        bytes -= len;
    }
    table.bytes.store(bytes, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize) -> Image {
        vec![7u8; len].into()
    }

    #[test]
    fn copies_are_kept_replaced_removed_and_evicted_least_recent_first() {
        let now = SystemTime::now();
        // A store of its own, so that other tests' copies do not interfere.
        let store = 0x5eed;
        put(store, Key(1), image(10), now);
        assert_eq!(get(store, Key(1)).unwrap().0.len(), 10);
        put(store, Key(1), image(20), now);
        assert_eq!(get(store, Key(1)).unwrap().0.len(), 20);
        remove(store, Key(1));
        assert!(get(store, Key(1)).is_none());
        put(store, Key(2), image(KEEP_UP_TO + 1), now);
        assert!(get(store, Key(2)).is_none(), "too large to keep");

        // Fill past the bound: the first copy, never hit again, goes; a hit one stays.
        put(store, Key(3), image(KEEP_UP_TO), now);
        put(store, Key(4), image(KEEP_UP_TO), now);
        for i in 0..(DEFAULT_LIMIT / KEEP_UP_TO) as u128 {
            get(store, Key(4));
            put(store, Key(100 + i), image(KEEP_UP_TO), now);
        }
        assert!(get(store, Key(3)).is_none(), "least recently used");
        assert!(get(store, Key(4)).is_some(), "used at every step");
        assert!(table().unwrap().bytes.load(Relaxed) <= DEFAULT_LIMIT);
        forget_all();
        assert!(get(store, Key(4)).is_none());
    }
}
