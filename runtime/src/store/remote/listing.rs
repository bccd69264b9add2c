//! What a bucket holds: its objects' names, sizes and times from the store's listing, and
//! for a report each entry's header, read with a ranged GET of its first bytes (many at once),
//! never the whole object.

use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};

use super::client::Failure;
use super::{Remote, down};
use crate::error::Error;
use crate::store::format::{self, Header};
use crate::store::layout::parse_relative;
use crate::store::{Detail, EntryInfo, Found};

/// The bytes of an entry read for its header, which its type name and arguments fit in most
/// often; a longer header is read again, whole.
const HEAD_BYTES: u64 = 1024;

/// Headers read at once.
const HEADS_AT_ONCE: usize = 64;

/// How long a listing waits for a page of names, or for a header.
const LISTING_TIMEOUT: Duration = super::client::LISTING_TIMEOUT;

impl Remote {
    /// Hands `found` the entries of every function, or of the one whose folder is `function`.
    pub(super) fn listing(
        &self,
        function: Option<&str>,
        detail: Detail,
        found: &mut dyn FnMut(Found),
    ) -> Result<(), Error> {
        let prefix = match function {
            Some(function) => Some(self.object(function)),
            None if self.prefix.is_empty() => None,
            None => Some(ObjectPath::from(self.prefix.as_str())),
        };
        // Listings are not on a call's path: they wait for a slow page as long as it takes.
        let store = Arc::clone(&self.client.listing);
        let timeout = self.client.timeout.max(LISTING_TIMEOUT);
        let headers = detail == Detail::Headers;
        let (tx, rx) = mpsc::channel();
        // Each request has its own timeout; the listing takes as long as the bucket needs.
        self.client.spawn(async move {
            let _ = tx.send(objects(store, prefix, headers, timeout).await);
        });
        let outcome = match rx.recv() {
            Ok(answer) => answer.map_err(Failure::from),
            Err(_) => Err(Failure::Down("the listing stopped".to_owned())),
        };
        self.client.note("listing entries", &outcome);
        let objects = match outcome {
            Ok(objects) => objects,
            Err(Failure::Absent | Failure::Exists) => return Ok(()),
            Err(Failure::Down(why)) => return Err(down(&PathBuf::from(&self.url), why)),
        };
        let base = match self.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        for (meta, head) in objects {
            let location = meta.location.as_ref();
            let Some(relative) = location.strip_prefix(base.as_str()) else {
                continue;
            };
            if let Some(entry) = self.entry(relative, &meta, head) {
                found(Found::Entry(entry));
            }
        }
        Ok(())
    }

    /// The entry of the object at `relative` (below the prefix), if it is one.
    fn entry(
        &self,
        relative: &str,
        meta: &ObjectMeta,
        header: Option<Header>,
    ) -> Option<EntryInfo> {
        let (function, version, key) = parse_relative(relative)?;
        let stored = SystemTime::from(meta.last_modified);
        Some(EntryInfo {
            function: function.to_owned(),
            code_version: version.to_owned(),
            key: key.to_owned(),
            path: PathBuf::from(format!("{}/{relative}", self.url)),
            size: meta.size,
            type_name: header
                .as_ref()
                .map_or_else(|| "?".to_owned(), |h| h.type_name.clone()),
            compute: header.as_ref().map_or(Duration::ZERO, |h| h.compute),
            created: header.as_ref().map_or(stored, |h| h.created),
            // Hits count in the local tiers, not in the bucket: its last use is its store.
            last_used: stored,
            hits: header.as_ref().map_or(0, |h| u64::from(h.hits)),
            args: header.map(|h| h.args).unwrap_or_default(),
            outdated: false,
        })
    }
}

/// The objects below `prefix`, with their headers when `headers` is set.
async fn objects(
    store: Arc<dyn ObjectStore>,
    prefix: Option<ObjectPath>,
    headers: bool,
    timeout: Duration,
) -> Result<Vec<(ObjectMeta, Option<Header>)>, object_store::Error> {
    let mut metas = Vec::new();
    let mut pages = store.list(prefix.as_ref());
    loop {
        match tokio::time::timeout(timeout, pages.next()).await {
            Ok(Some(meta)) => metas.push(meta?),
            Ok(None) => break,
            Err(_) => {
                let why = format!("no answer within {timeout:?}");
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: why.into(),
                });
            }
        }
    }
    if !headers {
        return Ok(metas.into_iter().map(|meta| (meta, None)).collect());
    }
    let heads = futures::stream::iter(metas).map(|meta| {
        let store = Arc::clone(&store);
        async move {
            match tokio::time::timeout(timeout, header(&*store, &meta)).await {
                // Removed since it was listed.
                Ok(Err(object_store::Error::NotFound { .. })) => None,
                // A header that cannot be read is listed as unknown (`?`).
                Ok(header) => Some((meta, header.ok().flatten())),
                Err(_) => Some((meta, None)),
            }
        }
    });
    Ok(heads
        .buffer_unordered(HEADS_AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await)
}

/// The header of the entry `meta`, from its first bytes: [`HEAD_BYTES`], or as many as its
/// type name and arguments take. Only the parsed header is kept, not the bytes.
async fn header(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
) -> Result<Option<Header>, object_store::Error> {
    let head = store
        .get_range(&meta.location, 0..meta.size.min(HEAD_BYTES))
        .await?;
    let Some(len) = format::header_len(&head) else {
        return Ok(None);
    };
    if len <= head.len() as u64 || len > meta.size {
        return Ok(Header::read(&head));
    }
    let head = store.get_range(&meta.location, 0..len).await?;
    Ok(Header::read(&head))
}
