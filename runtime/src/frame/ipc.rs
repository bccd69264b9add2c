//! A frame as an Arrow IPC file: written whole into memory, read back by mapping, so that the
//! columns' buffers are views of the bytes that hold the file (an entry's memory map, or an
//! aligned copy of bytes decoded from a payload).

use std::io::Cursor;
use std::sync::Arc;

use polars_arrow::array::{Array, ArrayRef, BinaryViewArray, Utf8ViewArray};
use polars_arrow::datatypes::PhysicalType;
use polars_arrow::io::ipc::read::read_file_metadata;
use polars_arrow::io::ipc::write::{FileWriter, WriteOptions};
use polars_core::prelude::{Column, CompatLevel, DataFrame, Series};

use super::check;

/// The file of `frame`; an error names a column of a dtype no frame stores.
pub(crate) fn encode(frame: &DataFrame) -> Result<Vec<u8>, String> {
    let mut frame = frame.clone();
    // Record batches cut every column at the same rows.
    frame.align_chunks_par();
    let schema = frame
        .columns()
        .iter()
        .map(|c| {
            let field = c.field().to_arrow(CompatLevel::newest());
            if check::storable(&field.dtype) {
                Ok((field.name.clone(), field))
            } else {
                Err(format!(
                    "column `{}` is of dtype {}, which joblet does not store; cast it to a \
                     primitive, string, boolean or date dtype",
                    c.name(),
                    c.dtype()
                ))
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
    Ok(out)
}

/// The frame in the file `owner` holds, its buffers views of those bytes. The bytes must be
/// 8-byte aligned, as a memory map's sections are, and as [`Aligned`] copies are.
pub(crate) fn decode<T>(owner: Arc<T>) -> Result<DataFrame, check::Problem>
where
    T: AsRef<[u8]> + Send + Sync + 'static,
{
    // The checks below refuse what Polars' reader would trip on; a panic left in it (its
    // parsers index into the bytes) is still a refusal, not a crash.
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
