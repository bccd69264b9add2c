//! A cache in an object store (`s3://bucket/prefix`), behind a folder on this machine, its
//! local tier.
//!
//! The bucket holds entry files, laid out as in a folder (`<prefix>/<function>/<version>/
//! <shard>/<key>.jbl`) and byte for byte the same. A load looks in the local tier first; an
//! entry found only in the bucket is downloaded into the tier (to a temporary file, renamed
//! into place) and read from there, so that it is checked, decoded and mapped exactly as a
//! local entry is, and the next hit is a local one. A store writes the tier, then uploads
//! the file with a conditional create (`If-None-Match: *`): the first entry stored under a key
//! stays, unless a load found it damaged or refused it, or the call was a refresh, which
//! replace it. Objects appear whole or not at all (a PUT, or a multipart upload's completion,
//! is atomic), and every load checks the checksum and the type, as for a folder.
//!
//! A store that fails (unreachable, slow, wrong credentials, no such bucket, throttling) costs
//! time, never values: each request waits at most the timeout, the failure is warned of once,
//! and the store is left alone for a while, during which the local tier serves what it has
//! and takes what is computed.

mod client;
mod listing;
mod transfer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::ObjectStoreExt as _;
use object_store::path::Path as ObjectPath;

use super::folder::Folder;
use super::layout::entry_path;
use super::{Detail, EntryId, Found, LOCAL_TIER_ENV, REMOTE_TIMEOUT_ENV, Reader, Store, Writer};
use crate::error::{Error, ErrorKind};
use client::{Client, DEFAULT_TIMEOUT, Failure};

/// An object store's bucket, and the local tier in front of it.
pub(crate) struct Remote {
    /// `s3://bucket/prefix`, without a trailing `/`: entries' paths start with it.
    url: String,
    /// The prefix of every object, inside the bucket.
    prefix: String,
    client: Client,
    tier: Folder,
    tier_root: PathBuf,
    /// Keys whose next store replaces the object there: it was found damaged, expired or
    /// refused, or the call is a refresh.
    replace: Mutex<HashSet<u128>>,
}

/// The store of `root`, an object store's URL: one for each URL in a process, opened at its
/// first use. Says why when it cannot be opened.
pub(super) fn open(root: &Path, count_hits: bool) -> Result<Arc<dyn Store>, String> {
    /// The stores opened, by URL and by whether they count hits.
    type Opened = HashMap<(PathBuf, bool), Arc<Remote>>;
    static OPEN: Mutex<Option<Opened>> = Mutex::new(None);
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let stores = open.get_or_insert_default();
    let id = (root.to_owned(), count_hits);
    if let Some(store) = stores.get(&id) {
        return Ok(Arc::clone(store) as Arc<dyn Store>);
    }
    let store = Arc::new(Remote::new(root, count_hits)?);
    stores.insert(id, Arc::clone(&store));
    Ok(store)
}

impl Remote {
    fn new(root: &Path, count_hits: bool) -> Result<Remote, String> {
        let text = root.to_str().ok_or("the URL is not UTF-8")?;
        let url = text.trim_end_matches('/');
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        if !matches!(scheme, "s3" | "s3a") {
            return Err(format!(
                "`{scheme}://` is not a store joblet reaches: write `s3://bucket/prefix` (S3, or an S3-compatible server through AWS_ENDPOINT_URL)"
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("the URL names no bucket: write `s3://bucket/prefix`".to_owned());
        }
        let timeout = match std::env::var(REMOTE_TIMEOUT_ENV) {
            Ok(text) if !text.is_empty() => crate::age::duration_of(&text)
                .map_err(|e| format!("{REMOTE_TIMEOUT_ENV}={text:?}: {}", e.message()))?
                .max(Duration::from_secs(1)),
            _ => DEFAULT_TIMEOUT,
        };
        let tier_root = tier_folder()?.join(bucket).join(prefix);
        Ok(Remote {
            client: Client::new(url, bucket, timeout)?,
            url: url.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
            tier: Folder::new(&tier_root, count_hits),
            tier_root,
            replace: Mutex::new(HashSet::new()),
        })
    }

    /// The object of the entry `id`, or of a path relative to the prefix.
    fn object(&self, relative: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{}/{relative}", self.prefix))
        }
    }

    /// The entry `id`'s path below the prefix: `<function>/<version>/<shard>/<key>.jbl`.
    fn relative(id: &EntryId<'_>) -> String {
        let path = entry_path(Path::new(""), id);
        path.to_string_lossy().into_owned()
    }

    /// Marks `id`'s object to be replaced at its next store.
    fn mark(&self, id: &EntryId<'_>) {
        let mut replace = self.replace.lock().unwrap_or_else(|e| e.into_inner());
        replace.insert(id.key.0);
    }

    /// Whether `id`'s object is to be replaced; forgets it.
    fn take_mark(&self, id: &EntryId<'_>) -> bool {
        let mut replace = self.replace.lock().unwrap_or_else(|e| e.into_inner());
        replace.remove(&id.key.0)
    }

    /// Reads `id` with `read` from the local tier (`hit`: counting a hit), downloading it
    /// there first when only the bucket has it.
    fn read(&self, id: &EntryId<'_>, read: Reader<'_>, hit: bool) -> Result<(), Error> {
        let local = |read: Reader<'_>| {
            let outcome = if hit {
                self.tier.get(id, read)
            } else {
                self.tier.peek(id, read)
            };
            if outcome.as_ref().is_err_and(|e| !e.is_not_found()) {
                // Damaged, expired or refused: what is computed instead replaces it.
                self.mark(id);
            }
            outcome
        };
        match local(read) {
            Err(e) if e.is_not_found() => {}
            done => return done,
        }
        if self.download(id) {
            local(read)
        } else {
            Err(Error::new(&self.path_of(id), ErrorKind::NotFound))
        }
    }
}

/// The folder of local tiers: [`LOCAL_TIER_ENV`], else the user's cache folder.
fn tier_folder() -> Result<PathBuf, String> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let folder = match (set(LOCAL_TIER_ENV), set("XDG_CACHE_HOME"), set("HOME")) {
        (Some(tier), _, _) => PathBuf::from(tier),
        (None, Some(cache), _) => PathBuf::from(cache).join("joblet"),
        (None, None, Some(home)) => PathBuf::from(home).join(".cache").join("joblet"),
        (None, None, None) => {
            return Err(format!(
                "no folder for the local tier: set {LOCAL_TIER_ENV} (or HOME)"
            ));
        }
    };
    Ok(std::path::absolute(&folder).unwrap_or(folder))
}

impl Store for Remote {
    fn get(&self, id: &EntryId<'_>, read: Reader<'_>) -> Result<(), Error> {
        self.read(id, read, true)
    }

    fn peek(&self, id: &EntryId<'_>, read: Reader<'_>) -> Result<(), Error> {
        self.read(id, read, false)
    }

    fn put(&self, id: &EntryId<'_>, write: Writer<'_>) -> Result<u64, Error> {
        let len = self.tier.put(id, write)?;
        // The local tier has it: a bucket that does not take it costs other machines a
        // computation, never this one a value.
        self.upload(id, len);
        Ok(len)
    }

    fn remove_function(&self, function: &str) -> Result<(), Error> {
        let removed = self.delete_below(function);
        self.tier.remove_function(function)?;
        removed
    }

    fn visit(
        &self,
        function: Option<&str>,
        detail: Detail,
        found: &mut dyn FnMut(Found),
    ) -> Result<(), Error> {
        self.listing(function, detail, found)
    }

    fn count_hit(&self, id: &EntryId<'_>) -> bool {
        self.tier.count_hit(id)
    }

    fn path_of(&self, id: &EntryId<'_>) -> PathBuf {
        entry_path(Path::new(&self.url), id)
    }

    fn remove(&self, path: &Path) -> Result<bool, Error> {
        let relative = path
            .to_str()
            .and_then(|p| p.strip_prefix(self.url.as_str()))
            .and_then(|p| p.strip_prefix('/'))
            .ok_or_else(|| {
                let why = format!("not an entry of {}", self.url);
                Error::new(path, ErrorKind::Io(std::io::Error::other(why)))
            })?;
        let location = self.object(relative);
        let store = Arc::clone(&self.client.store);
        let outcome = self.client.run(
            self.client.timeout,
            async move { store.delete(&location).await },
        );
        self.client.note("removing an entry", &outcome);
        // Its copy in the local tier goes too, so that this machine does not serve it.
        let _ = self.tier.remove(&self.tier_root.join(relative));
        match outcome {
            Ok(()) => Ok(true),
            Err(Failure::Absent) => Ok(false),
            Err(Failure::Exists) => Ok(false),
            Err(Failure::Down(why)) => Err(down(path, why)),
        }
    }

    fn replacing(&self, id: &EntryId<'_>) {
        self.mark(id);
    }

    fn bounded(&self) -> (&Path, &dyn Store) {
        (&self.tier_root, &self.tier)
    }
}

/// The error of a request the store did not answer.
fn down(path: &Path, why: String) -> Error {
    Error::new(path, ErrorKind::Io(std::io::Error::other(why)))
}
