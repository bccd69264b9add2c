//! A frame as an Arrow IPC file: written whole into memory, read back by mapping, so that the
//! columns' buffers are views of the bytes that hold the file (an entry's memory map, or an
//! aligned copy of bytes decoded from a payload).

use std::io::Cursor;
use std::sync::Arc;

use crate::xxh3::Xxh3;
use polars_arrow::array::{Array, ArrayRef, BinaryViewArray, Utf8ViewArray};
use polars_arrow::datatypes::PhysicalType;
use polars_arrow::io::ipc::read::read_file_metadata;
use polars_arrow::io::ipc::write::{FileWriter, WriteOptions};
use polars_core::prelude::{Column, CompatLevel, DataFrame, Series};
use serde::{Deserialize, Serialize};

use super::check;

/// The file of `frame`, and its [`Skeleton`]; an error names a column of a dtype no frame
/// stores.
pub(crate) fn encode(frame: &DataFrame) -> Result<(Vec<u8>, Skeleton), String> {
    let mut frame = frame.clone();
    // Record batches cut every column at the same rows.
    frame.align_chunks_par();
    let schema = frame
        .columns()
        .iter()
        .map(|c| {
            let field = c.field().to_arrow(CompatLevel::newest());
            if check::held(c.dtype()) && check::storable(&field.dtype) {
                Ok((field.name.clone(), field))
            } else {
                Err(check::refused(c))
            }
        })
        .collect::<Result<_, _>>()?;
    let options = WriteOptions { compression: None };
    let mut out = Vec::new();
    let failed = |e: polars_core::error::PolarsError| e.to_string();
    let mut writer =
        FileWriter::try_new(&mut out, Arc::new(schema), None, options).map_err(failed)?;
    if frame.width() > 0 {
        for batch in frame.iter_chunks(CompatLevel::newest(), false) {
            writer.write(&batch, None).map_err(failed)?;
        }
    }
    writer.finish().map_err(failed)?;
    let metadata = read_file_metadata(&mut Cursor::new(&out)).map_err(failed)?;
    let bodies = metadata
        .blocks
        .iter()
        .map(|b| {
            let start = b.offset as u64 + b.meta_data_length as u64;
            (start, start + b.body_length as u64)
        })
        .collect();
    let skeleton = Skeleton::of(&out, bodies).map_err(str::to_owned)?;
    Ok((out, skeleton))
}

/// Where a file's record batches' bodies lie, and the hash of every other byte: the schema,
/// the batches' messages (every buffer's place and length, every column's row and null
/// counts) and the footer. Written beside the section index in the payload, whose checksum
/// covers it, so that this much of a mapped file is checked before any of it is parsed,
/// without reading the bodies, which hold the columns' buffers (see `Frame`'s "Integrity").
#[derive(Serialize, Deserialize)]
pub(crate) struct Skeleton {
    hash: u64,
    bodies: Vec<(u64, u64)>,
}

impl Skeleton {
    fn of(bytes: &[u8], mut bodies: Vec<(u64, u64)>) -> Result<Self, check::Problem> {
        bodies.sort_unstable();
        let mut h = Xxh3::new();
        let mut at = 0;
        for &(start, end) in &bodies {
            let (start, end) = (usize::try_from(start), usize::try_from(end));
            let (Ok(start), Ok(end)) = (start, end) else {
                return Err("block out of bounds");
            };
            if start < at || end < start || end > bytes.len() {
                return Err("blocks overlap or lie out of bounds");
            }
            h.update(&bytes[at..start]);
            at = end;
        }
        h.update(&bytes[at..]);
        Ok(Skeleton {
            hash: h.digest(),
            bodies,
        })
    }

    /// Whether `bytes` have this skeleton.
    fn holds(&self, bytes: &[u8]) -> bool {
        Skeleton::of(bytes, self.bodies.clone()).is_ok_and(|s| s.hash == self.hash)
    }
}

/// The frame in the file `owner` holds, its buffers views of those bytes, once the file is
/// found to have `skeleton` (when given). The bytes must be 8-byte aligned, as a memory map's
/// sections are, and as [`Aligned`] copies are.
pub(crate) fn decode<T>(
    owner: Arc<T>,
    skeleton: Option<&Skeleton>,
) -> Result<DataFrame, check::Problem>
where
    T: AsRef<[u8]> + Send + Sync + 'static,
{
    // The checks below refuse what Polars' reader would trip on; a panic left in it (its
    // parsers index into the bytes) is still a refusal, not a crash.
    if skeleton.is_some_and(|s| !s.holds((*owner).as_ref())) {
        return Err("frame section checksum mismatch");
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_checked(owner)))
        .unwrap_or(Err("the frame's Arrow IPC file does not hold"))
}

fn decode_checked<T>(owner: Arc<T>) -> Result<DataFrame, check::Problem>
where
    T: AsRef<[u8]> + Send + Sync + 'static,
{
    let bytes = (*owner).as_ref();
    let bad = |_| "the frame's Arrow IPC file does not hold";
    let metadata = read_file_metadata(&mut Cursor::new(bytes)).map_err(bad)?;
    check::structure(&metadata, bytes)?;
    let width = metadata.schema.len();
    let mut chunks: Vec<Vec<ArrayRef>> = vec![Vec::new(); width];
    let mut height = 0usize;
    let dictionaries = Default::default();
    for block in 0..metadata.blocks.len() {
        // SAFETY: `check::structure` checked that every buffer lies in `bytes` and is long
        // enough for its column's rows, and that there are no dictionaries; what it cannot
        // see (the views of strings) `checked` validates before anything reads them.
        let batch = unsafe {
            polars_arrow::mmap::mmap_unchecked(&metadata, &dictionaries, owner.clone(), block)
        }
        .map_err(bad)?;
        height = height.checked_add(batch.height()).ok_or("too many rows")?;
        for (column, array) in chunks.iter_mut().zip(batch.into_arrays()) {
            column.push(checked(array)?);
        }
    }
    let columns = metadata
        .schema
        .iter_values()
        .zip(chunks)
        .map(|(field, chunks)| Series::try_from((field, chunks)).map(Column::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "a column's dtype does not match its arrays")?;
    DataFrame::new(height, columns).map_err(|_| "the frame's columns differ in length")
}

/// `array`, with the views of a string or binary column validated.
fn checked(array: ArrayRef) -> Result<ArrayRef, check::Problem> {
    let bad = |_| "a string column's views do not hold";
    Ok(match array.dtype().to_physical_type() {
        PhysicalType::Utf8View => {
            let a = array
                .as_any()
                .downcast_ref::<Utf8ViewArray>()
                .ok_or("not views")?;
            Box::new(
                Utf8ViewArray::try_new(
                    a.dtype().clone(),
                    a.views().clone(),
                    a.data_buffers().clone(),
                    a.validity().cloned(),
                )
                .map_err(bad)?,
            )
        }
        PhysicalType::BinaryView => {
            let a = array
                .as_any()
                .downcast_ref::<BinaryViewArray>()
                .ok_or("not views")?;
            Box::new(
                BinaryViewArray::try_new(
                    a.dtype().clone(),
                    a.views().clone(),
                    a.data_buffers().clone(),
                    a.validity().cloned(),
                )
                .map_err(bad)?,
            )
        }
        _ => array,
    })
}

/// Bytes copied to 8-byte aligned memory, for a file decoded from a payload rather than mapped.
pub(crate) struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    pub(crate) fn copy(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Aligned {
            words,
            len: bytes.len(),
        }
    }
}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars_core::prelude::*;

    fn sample() -> DataFrame {
        let mut frame = df!(
            "i" => [Some(1i64), None, Some(3), Some(4)],
            "f" => [0.5f64, 1.5, f64::NAN, -0.0],
            "b" => [Some(true), Some(false), None, Some(true)],
            "s" => [Some("a"), None, Some("a string longer than twelve bytes"), Some("")],
        )
        .unwrap();
        frame.vstack_mut(&frame.clone()).unwrap();
        frame
    }

    #[test]
    fn a_file_round_trips_and_its_skeleton_holds() {
        let (file, skeleton) = encode(&sample()).unwrap();
        assert!(skeleton.holds(&file));
        let back = decode(Arc::new(Aligned::copy(&file)), Some(&skeleton)).unwrap();
        assert!(back.equals_missing(&sample()));
    }

    /// What a forger controls once every checksum is rewritten: any byte of the file. The
    /// reader refuses or reads it, and what it reads is usable; it never panics or reads out
    /// of bounds (run under Miri or a sanitizer to see the latter).
    #[test]
    fn every_flipped_byte_is_refused_or_read() {
        let (file, _) = encode(&sample()).unwrap();
        let mut refused = 0;
        for at in 0..file.len() {
            for flip in [0x01u8, 0x10, 0x80, 0xff] {
                let mut bad = file.clone();
                bad[at] ^= flip;
                match decode(Arc::new(Aligned::copy(&bad)), None) {
                    Ok(frame) => {
                        let _ = format!("{frame:?}");
                        let _ = super::super::digest::digest(&frame);
                    }
                    Err(_) => refused += 1,
                }
            }
        }
        assert!(refused > 0);
        for cut in 0..file.len() {
            assert!(decode(Arc::new(Aligned::copy(&file[..cut])), None).is_err());
        }
    }
}
