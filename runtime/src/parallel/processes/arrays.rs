//! `Array`s on their way to workers, joblib's `max_nbytes`: the arrays of what a call captures,
//! or of a batch's items, that hold `max_nbytes` or more together are written once to a file
//! of shared memory, which every worker maps; the value itself travels with each array as the
//! index of its section, as in an entry file (the same `Sink` and `Source` of `array.rs`), and
//! a worker reads it as views into the map, without a copy.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::xxh3::xxh3_64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::channel::shared_file;
use crate::array::{SectionRef, Sink, Source, SourceGuard};

/// Where sections start in the shared file: as in entry files, aligned for any element type.
const ALIGN: usize = 64;

/// The arrays of a value, written to shared memory, and where each lies there.
pub(super) struct Shared {
    pub(super) file: File,
    pub(super) table: Table,
}

/// Where each array section lies in a shared file: `(offset, length, hash)`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(super) struct Table(Vec<(u64, u64, u64)>);

/// Serializes `values` one after the other onto `out` and says where each ends; when their
/// arrays hold `max_nbytes` or more, they go to shared memory instead, and the values hold
/// their section indices. An error names the value that did not serialize.
pub(super) fn encode<V: Serialize>(
    values: &[V],
    max_nbytes: u64,
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<Option<Arc<Shared>>, (usize, postcard::Error)> {
    let (start, first_end) = (out.len(), ends.len());
    let write_all = |out: &mut Vec<u8>, ends: &mut Vec<usize>| {
        values.iter().enumerate().try_for_each(|(i, v)| {
            postcard::to_io(v, &mut *out).map_err(|e| (i, e))?;
            ends.push(out.len());
            Ok(())
        })
    };
    let sink = Sink::open();
    let written = write_all(out, ends);
    let sections = sink.finish();
    written?;
    let total: u64 = sections.iter().map(|s| s.bytes().len() as u64).sum();
    if sections.is_empty() {
        return Ok(None);
    }
    if total >= max_nbytes {
        let shared = share(sections.iter().map(|s| s.bytes()));
        match shared {
            Ok(shared) => return Ok(Some(Arc::new(shared))),
            // Copied through the pipe instead, as smaller arrays are: slower, never lost.
            Err(e) => tracing::warn!(
                "`parallel!(backend = processes)` sends {total} bytes of arrays through its pipes: {e}"
            ),
        }
    }
    // Small: written again, each array as its bytes.
    out.truncate(start);
    ends.truncate(first_end);
    let _no_sink = Sink::suspend();
    write_all(out, ends)?;
    Ok(None)
}

/// Writes the sections one after the other, aligned, into a new file of shared memory.
fn share<'a>(sections: impl Iterator<Item = &'a [u8]> + Clone) -> io::Result<Shared> {
    let mut table = Vec::new();
    let file = shared_file("the arrays sent to the workers", |file: &mut File| {
        table.clear();
        let mut at = 0u64;
        for bytes in sections.clone() {
            let pad = at.next_multiple_of(ALIGN as u64) - at;
            file.write_all(&[0; ALIGN][..pad as usize])?;
            at += pad;
            file.write_all(bytes)?;
            table.push((at, bytes.len() as u64, xxh3_64(bytes)));
            at += bytes.len() as u64;
        }
        Ok(())
    })?;
    Ok(Shared {
        file,
        table: Table(table),
    })
}

/// A worker's map of a shared file, and its table.
pub(super) struct Mapped {
    map: Arc<memmap2::Mmap>,
    sections: Vec<SectionRef>,
}

impl Mapped {
    /// Maps the shared file a request came with.
    pub(super) fn new(fd: OwnedFd, table: &Table) -> io::Result<Mapped> {
        let file = File::from(fd);
        // SAFETY: the parent wrote the file whole before sending it, and never writes it again;
        // nothing else has it. Its pages exist, so reading them cannot fault.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let sections = table
            .0
            .iter()
            .map(|&(offset, len, hash)| {
                let (offset, len) = (usize::try_from(offset), usize::try_from(len));
                match (offset, len) {
                    (Ok(offset), Ok(len)) if offset.saturating_add(len) <= map.len() => {
                        Ok(SectionRef { offset, len, hash })
                    }
                    _ => Err(io::Error::other("an array section outside its shared file")),
                }
            })
            .collect::<io::Result<_>>()?;
        Ok(Mapped {
            map: Arc::new(map),
            sections,
        })
    }
}

/// Deserializes one value off the front of `bytes`, its arrays as views into `arrays` when
/// they came in shared memory.
pub(super) fn take<'a, T: DeserializeOwned>(
    bytes: &'a [u8],
    arrays: Option<&Mapped>,
) -> postcard::Result<(T, &'a [u8])> {
    // Open while this value is read only: a task that reads arrays with serde itself must see
    // them as bytes.
    let _source = SourceGuard::enter(arrays.map(|m| Source {
        map: m.map.clone(),
        sections: m.sections.clone(),
        verify: false,
    }));
    postcard::take_from_bytes(bytes)
}
