//! A computed call's last step: its entry made in memory and handed to the background writer
//! when small, streamed to its store from here when large.

use std::sync::Arc;

use serde::Serialize;

use super::{Pending, Site};
use crate::cache::writer::{self, Destination, Job};
use crate::store::{self, EntryId, Meta};

/// Results whose entry is at most this long are written by the background writer; larger ones
/// stream to their file from the caller, which a copy in memory would only slow down.
const BACKGROUND_UP_TO: usize = 256 << 10;

impl Site {
    /// Where the entry `id`'s function's entries go, for the background writer.
    pub(super) fn destination(&self, id: &EntryId<'_>) -> Arc<Destination> {
        Arc::new(Destination {
            store: Arc::clone(self.shared_store()),
            store_id: self.store_id(),
            function: id.function.to_owned(),
            version: id.version.to_owned(),
            max_size: self.max_size,
            name: self.name.to_string(),
        })
    }

    pub(super) fn save<T: Serialize>(&self, mut pending: Pending, value: &T) {
        let Some(target) = pending.target.take() else {
            return;
        };
        let id = self.id(&target);
        let hex = id.key.hex();
        let took = pending.start.elapsed();
        let meta = Meta {
            type_name: std::any::type_name::<T>(),
            args: pending.args.as_str(),
            compute: took,
        };
        // A small result's entry is made here and written by the background writer; a large
        // one streams to its file from here.
        match store::image(value, &meta, BACKGROUND_UP_TO) {
            Ok(Some(image)) => {
                let to = match target.method {
                    None => Arc::clone(self.destination.get_or_init(|| self.destination(&id))),
                    Some(_) => self.destination(&id),
                };
                writer::submit(Job {
                    to,
                    key: id.key,
                    image,
                    dispatch: tracing::dispatcher::get_default(Clone::clone),
                });
                if let Some(mut flight) = pending.flight.take() {
                    // Waiting threads find the result queued.
                    flight.stored();
                }
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(function = %self.name, key = hex.short(), error = %e, "cannot store result in the cache; returning it uncached");
                return;
            }
        }
        match self.store().save(&id, value, &meta) {
            Ok(bytes) => {
                if let Some(mut flight) = pending.flight.take() {
                    // Let the threads waiting for this call load it now, not after the
                    // size limit's eviction below.
                    flight.stored();
                }
                tracing::debug!(function = %self.name, key = hex.short(), bytes, ?took, "stored");
                crate::cache::budget::stored(self.store(), bytes, self.max_size);
            }
            Err(e) => {
                tracing::warn!(function = %self.name, key = hex.short(), error = %e, "cannot store result in the cache; returning it uncached");
            }
        }
    }
}
