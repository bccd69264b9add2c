//! A call's first step: the result from memory (queued for the writer, or a copy loaded
//! lately), from the store, or the claim to compute it; and what may still be served.

use std::time::{Instant, SystemTime};

use super::{Begin, CallKey, Mode, Pending, Site, Target, format_time};
use crate::cache::flight::{CallId, Flight, may_wait};
use crate::cache::recent;
use crate::cache::switches::switches;
use crate::cache::writer;
use crate::store::{self, Decoder, EntryId, EntryInfo, Stored};

impl Site {
    /// Whether stored entries are checked before they are served.
    pub(super) fn checks_entries(&self) -> bool {
        self.expires.is_some() || self.validate.is_some()
    }

    /// Whether the entry `id`, which says `stored` of itself, may still be served.
    pub(super) fn serves(&self, id: &EntryId<'_>, stored: &Stored) -> bool {
        if let Some(limit) = self.expires {
            // An entry from the future (a clock set back) is taken as new.
            let age = SystemTime::now()
                .duration_since(stored.header.created)
                .unwrap_or_default();
            if age > limit {
                return false;
            }
        }
        match self.validate {
            Some(check) => check(&EntryInfo::of(id, self.store().path_of(id), stored)),
            None => true,
        }
    }

    /// Whether this function's results may be served from copies in memory: not when a
    /// `validate` check must see each hit's entry.
    pub(super) fn keeps_recent(&self) -> bool {
        self.validate.is_none()
    }

    /// The result from memory: its entry still queued for the writer, or a copy of the entry
    /// `id` this process loaded lately (counted as a hit); `None` when there is neither, the
    /// copy expired, or its file is gone.
    pub(super) fn recent_hit<T>(&self, id: &EntryId<'_>, decode: Decoder<T>) -> Option<T> {
        if let Some(image) = writer::pending(self.store_id(), id.key) {
            // Computed by this process lately: `validate` is asked about it as it will be
            // stored.
            let served = self.validate.is_none()
                || store::stored_image(&image).is_some_and(|stored| self.serves(id, &stored));
            let value = served.then(|| store::decode_image(&image, decode).ok())??;
            // Counted in the file once it is written.
            self.store().count_hit(id);
            return Some(value);
        }
        if !self.keeps_recent() {
            return None;
        }
        let (image, created) = recent::get(self.store_id(), id.key)?;
        let value = if self.serves_copy(created) {
            store::decode_image(&image, decode).ok()
        } else {
            None
        };
        // The hit counts in the entry file, which is then found gone if another process
        // removed it.
        if value.is_none() || !self.store().count_hit(id) {
            recent::remove(self.store_id(), id.key);
            return None;
        }
        value
    }

    /// Whether a copy in memory of an entry created at `created` may be served: `expires` is
    /// the one check a copy can answer (`validate` sites keep none).
    pub(super) fn serves_copy(&self, created: SystemTime) -> bool {
        self.expires.is_none_or(|limit| {
            SystemTime::now()
                .duration_since(created)
                .map_or(true, |age| age <= limit)
        })
    }

    /// The result stored for `target`, or the computation this thread is to do: in
    /// [`Mode::Call`], one thread of the process computes a call that others miss at the
    /// same time.
    pub(super) fn load_or_claim<T>(
        &self,
        mode: Mode,
        target: Target,
        decode: Decoder<T>,
        start: Instant,
    ) -> Begin<T> {
        let id = self.id(&target);
        // The key's digits are written only into events that are recorded.
        let check = |stored: &Stored| self.serves(&id, stored);
        let serve: Option<store::Serve<'_>> = self.checks_entries().then_some(&check);
        let hit = |value| {
            tracing::debug!(function = %self.name, key = id.key.hex().short(), took = ?start.elapsed(), "cache hit");
            if self.verbose >= 5 {
                let took = format_time(start.elapsed().as_secs_f64());
                eprintln!("[Memory]{took:>16}: Loading {}", self.name);
            }
            Begin::Hit(value)
        };
        loop {
            if mode != Mode::Refresh
                && let Some(value) = self.recent_hit(&id, decode)
            {
                return hit(value);
            }
            // The call is claimed before the store is looked in, so that a miss costs one look:
            // a thread that finds it claimed waits for the one computing it, then loads its
            // result. If that one could not store it (it panicked, or the cache cannot be
            // written), this one computes, without making further threads wait in turn.
            let flight = if mode == Mode::Call && may_wait() {
                match Flight::claim(CallId::new(self.root(), &id)) {
                    Ok(flight) => Some(flight),
                    Err(other) => {
                        tracing::debug!(
                            function = %self.name,
                            key = id.key.hex().short(),
                            "cache miss; waiting for the thread computing it"
                        );
                        if other.wait() {
                            continue;
                        }
                        break;
                    }
                }
            } else {
                None
            };
            if mode == Mode::Refresh {
                // A store that keeps the first entry of a key replaces it for a refresh.
                self.store().replacing(&id);
            } else {
                let keep = if self.keeps_recent() {
                    recent::KEEP_UP_TO
                } else {
                    0
                };
                match self.store().load_hit_keeping(&id, decode, serve, keep) {
                    Ok((value, image)) => {
                        if let Some(image) = image {
                            let created = store::created(&image);
                            recent::put(self.store_id(), id.key, image, created);
                        }
                        if let Some(mut flight) = flight {
                            // Threads that waited for this call load it too.
                            flight.stored();
                        }
                        return hit(value);
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) if e.is_stale() => {
                        tracing::debug!(function = %self.name, key = id.key.hex().short(), "stored entry expired or refused by `validate`; recomputing");
                    }
                    Err(e) => {
                        tracing::warn!(function = %self.name, key = id.key.hex().short(), error = %e, "unreadable cache entry; recomputing");
                    }
                }
            }
            tracing::debug!(function = %self.name, key = id.key.hex().short(), ?mode, "cache miss; computing");
            return Begin::Compute(Pending::new(Some(target), flight, start));
        }
        tracing::debug!(function = %self.name, key = id.key.hex().short(), ?mode, "computing");
        Begin::Compute(Pending::new(Some(target), None, start))
    }

    /// Whether a call with this key has a valid stored result of type `T`, without computing.
    /// (Only free functions have this control, so there is no `Self` to name.)
    pub fn contains<T>(&self, key: &mut CallKey) -> bool {
        !switches().disabled
            && self.target(None, key).is_some_and(|target| {
                let id = self.id(&target);
                let check = |stored: &Stored| self.serves(&id, stored);
                let serve: Option<store::Serve<'_>> = self.checks_entries().then_some(&check);
                let queued = writer::pending(self.store_id(), id.key)
                    .is_some_and(|image| store::image_holds::<T>(&image));
                let in_memory = self.keeps_recent()
                    && recent::get(self.store_id(), id.key).is_some_and(|(image, created)| {
                        store::image_holds::<T>(&image) && self.serves_copy(created)
                    });
                queued || in_memory || self.store().contains::<T>(&id, serve)
            })
    }
}
