//! A frame's key, hashed straight from its Arrow buffers: the schema, then each column's
//! validity and values as one stream whatever the column's chunks, with the bytes under null
//! slots and outside a chunk's slice left out, so that equal frames hash equal however built.

use crate::xxh3::Xxh3Wide;
use polars_arrow::array::{Array, BinaryViewArray, BooleanArray, PrimitiveArray, Utf8ViewArray};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::types::NativeType;
use polars_core::prelude::{Column, DataFrame, DataType};

use super::check;

/// Bumped when the stream changes, so that keys of one encoding never meet another's.
const STREAM: &[u8] = b"joblet::Frame/1";

/// Elements copied at a time to blank the bytes under a chunk's null slots.
const BLOCK: usize = 4096;

/// The 128-bit digest of `frame`; an error names a column whose dtype has no hashing here.
pub(crate) fn digest(frame: &DataFrame) -> Result<u128, String> {
    let mut h = Xxh3Wide::new();
    h.update(STREAM);
    h.update(&(frame.width() as u64).to_le_bytes());
    h.update(&(frame.height() as u64).to_le_bytes());
    for column in frame.columns() {
        self::column(&mut h, column)?;
    }
    Ok(h.digest128())
}

fn field(h: &mut Xxh3Wide, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn column(h: &mut Xxh3Wide, column: &Column) -> Result<(), String> {
    // Checked on the logical dtype: a categorical's physical values are codes.
    if !check::held(column.dtype()) {
        return Err(check::refused(column));
    }
    field(h, column.name().as_bytes());
    // `Debug` spells a dtype whole (time unit, time zone), where `Display` abbreviates.
    field(h, format!("{:?}", column.dtype()).as_bytes());
    let series = column.as_materialized_series();
    let physical = series.to_physical_repr();
    let chunks = physical.chunks();
    let nulls = series.null_count();
    h.update(&(nulls as u64).to_le_bytes());
    if nulls > 0 {
        // The validity as one run of bits; a chunk without a bitmap is all valid.
        let mut bits = Bits::new(h);
        for chunk in chunks {
            match chunk.validity() {
                Some(validity) => bits.bitmap(validity),
                None => bits.ones(chunk.len()),
            }
        }
        bits.finish();
    }
    macro_rules! primitive {
        ($($variant:ident => $t:ty),*) => {
            match physical.dtype() {
                $(DataType::$variant => {
                    for chunk in chunks {
                        values::<$t>(h, downcast(chunk.as_ref())?);
                    }
                })*
                DataType::Boolean => {
                    let mut bits = Bits::new(h);
                    for chunk in chunks {
                        let chunk: &BooleanArray = downcast(chunk.as_ref())?;
                        match chunk.validity().filter(|v| v.unset_bits() > 0) {
                            Some(validity) => bits.bitmap(&(chunk.values() & validity)),
                            None => bits.bitmap(chunk.values()),
                        }
                    }
                    bits.finish();
                }
                DataType::String => {
                    for chunk in chunks {
                        let chunk: &Utf8ViewArray = downcast(chunk.as_ref())?;
                        views(h, chunk.len(), chunk.validity(), |i| chunk.value(i).as_bytes());
                    }
                }
                DataType::Binary => {
                    for chunk in chunks {
                        let chunk: &BinaryViewArray = downcast(chunk.as_ref())?;
                        views(h, chunk.len(), chunk.validity(), |i| chunk.value(i));
                    }
                }
                // Its length and dtype say it all.
                DataType::Null => {}
                _ => return Err(check::refused(column)),
            }
        };
    }
    primitive!(
        Int8 => i8, Int16 => i16, Int32 => i32, Int64 => i64,
        Int128 => i128, UInt8 => u8, UInt16 => u16, UInt32 => u32, UInt64 => u64,
        Float32 => f32, Float64 => f64
    );
    Ok(())
}

fn downcast<A: 'static>(chunk: &dyn Array) -> Result<&A, String> {
    chunk.as_any().downcast_ref::<A>().ok_or_else(|| {
        format!(
            "a chunk of dtype {:?} is not its own array type",
            chunk.dtype()
        )
    })
}

/// A chunk's values, with zeros under its null slots.
fn values<T: NativeType>(h: &mut Xxh3Wide, chunk: &PrimitiveArray<T>) {
    let values = chunk.values().as_slice();
    let Some(validity) = chunk.validity().filter(|v| v.unset_bits() > 0) else {
        h.update(bytemuck::cast_slice(values));
        return;
    };
    let mut block = Vec::with_capacity(BLOCK.min(values.len()));
    let mut valid = validity.iter();
    for part in values.chunks(BLOCK) {
        block.clear();
        block.extend_from_slice(part);
        for (slot, valid) in block.iter_mut().zip(&mut valid) {
            if !valid {
                *slot = T::default();
            }
        }
        h.update(bytemuck::cast_slice(&block));
    }
}

/// Strings or byte strings, each with its length; a null one is empty.
fn views<'a>(
    h: &mut Xxh3Wide,
    len: usize,
    validity: Option<&Bitmap>,
    value: impl Fn(usize) -> &'a [u8],
) {
    // Gathered into blocks: xxh3 streams a few KiB at a time far faster than a call a string.
    // The stream is the same as `field` for each string, so chunking still does not count.
    let mut out = Vec::with_capacity(4 * BLOCK);
    for i in 0..len {
        let bytes = match validity {
            Some(v) if !v.get_bit(i) => &[][..],
            _ => value(i),
        };
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        if bytes.len() > BLOCK {
            h.update(&out);
            out.clear();
            h.update(bytes);
            continue;
        }
        out.extend_from_slice(bytes);
        if out.len() >= 4 * BLOCK {
            h.update(&out);
            out.clear();
        }
    }
    h.update(&out);
}

/// Packs bits from any number of bitmaps, at any bit offset, into whole 64-bit words.
struct Bits<'h> {
    h: &'h mut Xxh3Wide,
    word: u64,
    filled: u32,
    out: Vec<u8>,
}

impl<'h> Bits<'h> {
    fn new(h: &'h mut Xxh3Wide) -> Self {
        Bits {
            h,
            word: 0,
            filled: 0,
            out: Vec::with_capacity(BLOCK),
        }
    }

    /// Appends the low `n` bits of `bits` (`n` ≤ 64, higher bits zero).
    fn push(&mut self, bits: u64, n: u32) {
        if n == 0 {
            return;
        }
        self.word |= bits << self.filled;
        let total = self.filled + n;
        if total >= 64 {
            self.out.extend_from_slice(&self.word.to_le_bytes());
            if self.out.len() >= BLOCK {
                self.h.update(&self.out);
                self.out.clear();
            }
            // The bits of `bits` that did not fit; none when the word was empty.
            self.word = if self.filled == 0 {
                0
            } else {
                bits >> (64 - self.filled)
            };
            self.filled = total - 64;
        } else {
            self.filled = total;
        }
    }

    fn bitmap(&mut self, bitmap: &Bitmap) {
        let chunks = bitmap.chunks::<u64>();
        let rest = chunks.remainder_len() as u32;
        let last = chunks.remainder();
        for word in chunks {
            self.push(word, 64);
        }
        // The remainder's bits past the bitmap's end are not the bitmap's.
        self.push(last & mask(rest), rest);
    }

    fn ones(&mut self, mut n: usize) {
        while n > 0 {
            let take = n.min(64) as u32;
            self.push(mask(take), take);
            n -= take as usize;
        }
    }

    fn finish(mut self) {
        self.out.extend_from_slice(&self.word.to_le_bytes());
        self.out.push(self.filled as u8);
        self.h.update(&self.out);
    }
}

fn mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(parts: &[(u64, u32)]) -> (Vec<u8>, u128) {
        let mut h = Xxh3Wide::new();
        let mut bits = Bits::new(&mut h);
        for &(b, n) in parts {
            bits.push(b, n);
        }
        let out = {
            let mut copy = bits.out.clone();
            copy.extend_from_slice(&bits.word.to_le_bytes());
            copy.push(bits.filled as u8);
            copy
        };
        bits.finish();
        (out, h.digest128())
    }

    #[test]
    fn bits_pack_the_same_whatever_the_split() {
        let whole = packed(&[(u64::MAX >> 1, 63), (1, 1), (0b101, 3)]);
        let split = packed(&[(0b111, 3), (u64::MAX >> 4, 60), (1, 1), (0b101, 3)]);
        assert_eq!(whole, split);
        assert_ne!(whole, packed(&[(u64::MAX >> 1, 63), (1, 1), (0b100, 3)]));
    }
}
