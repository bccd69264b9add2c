//! The structure of an Arrow IPC file checked before Polars maps it: Polars' mapped reader
//! trusts each buffer's length and each column's row and null counts, and would read past a
//! buffer that a forged file makes too short. Only the column types a `Frame` stores pass.

use polars_arrow::bitmap::utils::count_zeros;
use polars_arrow::datatypes::{ArrowDataType, PhysicalType, PrimitiveType};
use polars_arrow::io::ipc::format::ipc::planus::ReadAsRoot;
use polars_arrow::io::ipc::format::ipc::{MessageHeaderRef, MessageRef};
use polars_arrow::io::ipc::read::FileMetadata;
use polars_core::prelude::{Column, DataType};

/// Why a section does not hold, for [`crate::ErrorKind::Corrupt`].
pub(crate) type Problem = &'static str;

/// Checks every record batch of the file `bytes`, whose footer says `metadata`.
pub(crate) fn structure(metadata: &FileMetadata, bytes: &[u8]) -> Result<(), Problem> {
    if metadata
        .dictionaries
        .as_ref()
        .is_some_and(|d| !d.is_empty())
    {
        return Err("a frame section holds dictionaries");
    }
    for block in &metadata.blocks {
        let at = usize::try_from(block.offset).map_err(|_| "negative block offset")?;
        let meta = usize::try_from(block.meta_data_length).map_err(|_| "negative block")?;
        let body = usize::try_from(block.body_length).map_err(|_| "negative block body")?;
        let body_at = at.checked_add(meta).ok_or("block out of bounds")?;
        let end = body_at.checked_add(body).ok_or("block out of bounds")?;
        let block_bytes = bytes.get(at..end).ok_or("block out of bounds")?;
        let body_bytes = &bytes[body_at..end];
        batch(metadata, message(&block_bytes[..meta])?, body_bytes)?;
    }
    Ok(())
}

/// The message at the start of a block's metadata.
fn message(meta: &[u8]) -> Result<MessageRef<'_>, Problem> {
    let word = |at: usize| -> Result<[u8; 4], Problem> {
        Ok(meta
            .get(at..at + 4)
            .ok_or("message out of bounds")?
            .try_into()
            .expect("4 bytes"))
    };
    let (mut len, mut at) = (word(0)?, 4);
    if len == [0xff; 4] {
        (len, at) = (word(4)?, 8);
    }
    let len = usize::try_from(i32::from_le_bytes(len)).map_err(|_| "negative message")?;
    let flat = meta.get(at..at + len).ok_or("message out of bounds")?;
    MessageRef::read_as_root(flat).map_err(|_| "message does not parse")
}

fn batch(metadata: &FileMetadata, message: MessageRef<'_>, body: &[u8]) -> Result<(), Problem> {
    let bad = |_| "record batch does not parse";
    let Some(MessageHeaderRef::RecordBatch(batch)) = message.header().map_err(bad)? else {
        return Err("a block is not a record batch");
    };
    if batch.compression().map_err(bad)?.is_some() {
        return Err("a frame section is compressed");
    }
    let rows = usize::try_from(batch.length().map_err(bad)?).map_err(|_| "negative length")?;
    let mut nodes = batch.nodes().map_err(bad)?.ok_or("no nodes")?.iter();
    let mut buffers = batch.buffers().map_err(bad)?.ok_or("no buffers")?.iter();
    let mut variadic = match batch.variadic_buffer_counts().map_err(bad)? {
        Some(counts) => counts.iter().collect::<Vec<i64>>(),
        None => Vec::new(),
    }
    .into_iter();
    let mut next_buffer = || -> Result<&[u8], Problem> {
        let buffer = buffers.next().ok_or("a buffer is missing")?;
        let at = usize::try_from(buffer.offset()).map_err(|_| "negative buffer offset")?;
        let len = usize::try_from(buffer.length()).map_err(|_| "negative buffer length")?;
        body.get(at..at.checked_add(len).ok_or("buffer out of bounds")?)
            .ok_or("buffer out of bounds")
    };
    for field in metadata.schema.iter_values() {
        let node = nodes.next().ok_or("a node is missing")?;
        let n = usize::try_from(node.length()).map_err(|_| "negative node length")?;
        let nulls = usize::try_from(node.null_count()).map_err(|_| "negative null count")?;
        if n != rows || nulls > n {
            return Err("a column's row or null count does not hold");
        }
        let bits = n.div_ceil(8);
        if field.dtype.to_physical_type() == PhysicalType::Null {
            continue;
        }
        let validity = next_buffer()?;
        if nulls > 0 && (validity.len() < bits || count_zeros(validity, 0, n) != nulls) {
            return Err("a column's validity does not hold");
        }
        let values = next_buffer()?;
        let width = match field.dtype.to_physical_type() {
            PhysicalType::Boolean => {
                if values.len() < bits {
                    return Err("a boolean column is short");
                }
                continue;
            }
            PhysicalType::Primitive(p) => {
                primitive_width(p).ok_or("a dtype a frame never stores")?
            }
            PhysicalType::Utf8View | PhysicalType::BinaryView => {
                let count = variadic.next().ok_or("a variadic count is missing")?;
                for _ in 0..usize::try_from(count).map_err(|_| "negative variadic count")? {
                    next_buffer()?;
                }
                16
            }
            _ => return Err("a dtype a frame never stores"),
        };
        if values.len() < n.checked_mul(width).ok_or("a column is too long")? {
            return Err("a column's values are short");
        }
    }
    Ok(())
}

fn primitive_width(p: PrimitiveType) -> Option<usize> {
    use PrimitiveType::*;
    Some(match p {
        Int8 | UInt8 => 1,
        Int16 | UInt16 => 2,
        Int32 | UInt32 | Float32 => 4,
        Int64 | UInt64 | Float64 => 8,
        // Decimals.
        Int128 => 16,
        _ => return None,
    })
}

/// Whether a frame hashes and stores a column of this dtype: those whose physical values are
/// all there is to them. Not categoricals, whose codes mean nothing without their mapping
/// (and which Polars builds only with its `dtype-categorical` feature, which another crate
/// of the program may turn on), nor nested dtypes.
pub(crate) fn held(dtype: &DataType) -> bool {
    use DataType::*;
    matches!(
        dtype,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | Int128
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Decimal(..)
            | String
            | Binary
            | Date
            | Datetime(..)
            | Duration(..)
            | Time
            | Null
    )
}

/// The error for `column`, of a dtype that is not [`held`].
pub(crate) fn refused(column: &Column) -> String {
    format!(
        "column `{}` is of dtype {}, which joblet does not hash or store; cast it to a \
         numeric, decimal, string, binary, boolean or temporal dtype",
        column.name(),
        column.dtype()
    )
}

/// Whether a frame stores a column of this Arrow type: those [`structure`] checks.
pub(crate) fn storable(dtype: &ArrowDataType) -> bool {
    match dtype.to_physical_type() {
        PhysicalType::Primitive(p) => primitive_width(p).is_some(),
        PhysicalType::Null
        | PhysicalType::Boolean
        | PhysicalType::Utf8View
        | PhysicalType::BinaryView => true,
        _ => false,
    }
}
