//! Entries moving between the bucket and the local tier: a download streams an object into a
//! temporary file of the tier, renamed into place once whole; an upload sends a tier file in
//! one request, or in parts when it is large.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};

use bytes::Bytes;
use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use super::client::Failure;
use super::{Remote, down};
use crate::error::{Error, ErrorKind};
use crate::store::EntryId;
use crate::store::layout::entry_path;
use crate::store::write::replace;

/// Files up to this long go up in one request; longer ones in parts of this length, each
/// given the timeout.
const PART: usize = 8 << 20;

/// Parts sent at once.
const PARTS_AT_ONCE: usize = 4;

/// Chunks of a download that wait for the tier's file at most.
const CHUNKS_AHEAD: usize = 8;

impl Remote {
    /// Downloads the entry `id` into the local tier; says whether it is there now. `false`:
    /// the bucket has no such entry, or the store failed (which is noted).
    pub(super) fn download(&self, id: &EntryId<'_>) -> bool {
        if !self.client.up() {
            return false;
        }
        let location = self.object(&Self::relative(id));
        let store = Arc::clone(&self.client.store);
        let (tx, rx) = mpsc::sync_channel(CHUNKS_AHEAD);
        let task = self.client.spawn(async move {
            let sent = stream_object(store, location, &tx).await;
            let _ = tx.send(sent.map(|()| None));
        });
        let mut failure = None;
        let path = entry_path(&self.tier_root, id);
        let written = replace(&path, true, |file| {
            let mut len = 0u64;
            loop {
                let chunk = match rx.recv_timeout(self.client.timeout) {
                    Ok(Ok(Some(chunk))) => chunk,
                    Ok(Ok(None)) => return Ok(len),
                    Ok(Err(e)) => {
                        failure = Some(Failure::from(e));
                        return Err(ErrorKind::NotFound);
                    }
                    Err(_) => {
                        let why = format!("no data within {:?}", self.client.timeout);
                        failure = Some(Failure::Down(why));
                        return Err(ErrorKind::NotFound);
                    }
                };
                file.write_all(&chunk).map_err(ErrorKind::from_io)?;
                len += chunk.len() as u64;
            }
        });
        task.abort();
        let outcome = match failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        };
        self.client.note("downloading an entry", &outcome);
        match (written, outcome) {
            (Ok(_), _) => true,
            (Err(kind), Ok(())) => {
                let error = Error::new(&path, kind);
                tracing::warn!(%error, "cannot write the local tier; the entry is not loaded");
                false
            }
            (Err(_), Err(_)) => false,
        }
    }

    /// Uploads the entry `id`, just written to the local tier with `len` bytes: a conditional
    /// create, which keeps an entry another machine stored first, unless `id` was marked to be
    /// replaced. A failure is noted (warned of once); the tier keeps the entry.
    pub(super) fn upload(&self, id: &EntryId<'_>, len: u64) {
        let replacing = self.take_mark(id);
        if !self.client.up() {
            return;
        }
        let file = entry_path(&self.tier_root, id);
        let location = self.object(&Self::relative(id));
        let store = Arc::clone(&self.client.store);
        let outcome = if len <= PART as u64 {
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => Bytes::from(bytes),
                // Replaced or removed meanwhile by another process: its own store uploads.
                Err(_) => return,
            };
            let request = async move {
                if replacing {
                    return store
                        .put(&location, PutPayload::from(bytes))
                        .await
                        .map(|_| ());
                }
                match store
                    .put_opts(&location, PutPayload::from(bytes), create())
                    .await
                {
                    Ok(_) => Ok(()),
                    // A server may answer a create of an existing key before it reads the
                    // body, and close the connection: the request fails as it sends.
                    Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => {
                        match store.head(&location).await {
                            Ok(_) => Err(exists(&location)),
                            Err(_) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            };
            self.client.run(self.client.timeout, request)
        } else {
            let parts = u32::try_from(len.div_ceil(PART as u64)).unwrap_or(u32::MAX);
            let limit = self.client.timeout * (parts + 2);
            self.client
                .run(limit, upload_parts(store, location, file, replacing))
        };
        match outcome {
            Err(Failure::Absent) => {
                let why = "404 Not Found: does the bucket exist?";
                self.client.failed("storing an entry", why);
            }
            // `Exists`: stored first by another machine, the same value for a deterministic
            // function, which stays.
            outcome => self.client.note("storing an entry", &outcome),
        }
    }

    /// Deletes every object of the function whose folder is `function`.
    pub(super) fn delete_below(&self, function: &str) -> Result<(), Error> {
        let prefix = self.object(function);
        let store = Arc::clone(&self.client.store);
        let limit = self.client.timeout * 60;
        let outcome = self.client.run(limit, async move {
            let locations = store
                .list(Some(&prefix))
                .map(|meta| meta.map(|m| m.location))
                .boxed();
            let mut deleted = store.delete_stream(locations);
            while let Some(done) = deleted.next().await {
                match done {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        self.client.note("removing a function's entries", &outcome);
        match outcome {
            Ok(()) | Err(Failure::Absent | Failure::Exists) => Ok(()),
            Err(Failure::Down(why)) => Err(down(
                &PathBuf::from(format!("{}/{function}", self.url)),
                why,
            )),
        }
    }
}

/// What a create of the existing object `location` comes to.
fn exists(location: &ObjectPath) -> object_store::Error {
    object_store::Error::AlreadyExists {
        path: location.to_string(),
        source: "stored first by another process".into(),
    }
}

/// A create that fails when the object exists (`If-None-Match: *`).
fn create() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    }
}

/// Sends the object at `location` chunk by chunk into `tx`, which the tier's file takes.
async fn stream_object(
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    tx: &mpsc::SyncSender<Result<Option<Bytes>, object_store::Error>>,
) -> Result<(), object_store::Error> {
    let mut chunks = store.get(&location).await?.into_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        // The tier's writer takes chunks as fast as the disk does: waiting for it here blocks
        // this worker thread only, which the runtime is told of.
        if tokio::task::block_in_place(|| tx.send(Ok(Some(chunk)))).is_err() {
            break;
        }
    }
    Ok(())
}

/// Uploads the file at `file` to `location` in parts, unless an object is there already and
/// is not to be replaced (a multipart upload has no conditional create of its own).
async fn upload_parts(
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    file: PathBuf,
    replacing: bool,
) -> Result<(), object_store::Error> {
    if !replacing {
        match store.head(&location).await {
            Ok(_) => return Err(exists(&location)),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let io = |e: std::io::Error| object_store::Error::Generic {
        store: "joblet",
        source: Box::new(e),
    };
    let mut file = std::fs::File::open(&file).map_err(io)?;
    let mut upload =
        WriteMultipart::new_with_chunk_size(store.put_multipart(&location).await?, PART);
    let mut buffer = vec![0u8; PART];
    loop {
        let read = tokio::task::block_in_place(|| read_full(&mut file, &mut buffer));
        let read = match read {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) => {
                let _ = upload.abort().await;
                return Err(io(e));
            }
        };
        if let Err(e) = upload.wait_for_capacity(PARTS_AT_ONCE).await {
            let _ = upload.abort().await;
            return Err(e);
        }
        upload.write(&buffer[..read]);
    }
    upload.finish().await.map(|_| ())
}

/// Reads until `buffer` is full or the file ends; returns how much was read.
fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
