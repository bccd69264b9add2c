//! The hasher as a serde `Serializer`: the byte stream that makes a value's key, an
//! unambiguous encoding for a given type (see [`super`]).

use serde::ser::{self, Serialize};

use super::{HashError, KeyHasher, digest};

/// Whether a sequence being serialized is a hash set, whose iteration order is arbitrary.
///
/// serde serializes `HashSet` and `Vec` through the same `collect_seq` call, so the container's
/// type name is the only thing that tells them apart. Only the outermost type counts: a
/// `Vec<HashSet<_>>` is ordered.
fn is_unordered<I>() -> bool {
    let name = std::any::type_name::<I>().trim_start_matches('&');
    let head = name.split('<').next().unwrap_or(name);
    head.ends_with("HashSet")
}

// Tags that keep different shapes apart where the type alone does not (an unordered collection
// and an unknown-length sequence are written as a digest, not element by element).
const TAG_UNORDERED: u8 = 0xA5;
const TAG_UNSIZED_SEQ: u8 = 0x5A;

impl<'a> ser::Serializer for &'a mut KeyHasher {
    type Ok = ();
    type Error = HashError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), HashError> {
        self.put(&[v as u8]);
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), HashError> {
        self.put(&[v]);
        Ok(())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), HashError> {
        self.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), HashError> {
        self.put(&v.to_bits().to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), HashError> {
        self.put(&v.to_bits().to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), HashError> {
        self.put(&(v as u32).to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), HashError> {
        self.str(v);
        Ok(())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), HashError> {
        self.len_prefix(v.len());
        self.put(v);
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Result<(), HashError> {
        self.put(&[0]);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), HashError> {
        self.put(&[1]);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), HashError> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), HashError> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), HashError> {
        self.put(&index.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        self.put(&index.to_le_bytes());
        value.serialize(self)
    }

    #[inline]
    fn collect_seq<I>(self, iter: I) -> Result<(), HashError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if is_unordered::<I>() {
            let mut set = Compound::unordered(self);
            for item in iter {
                set.add(digest(&item)?);
            }
            ser::SerializeSeq::end(set)
        } else {
            let iter = iter.into_iter();
            let len = match iter.size_hint() {
                (lo, Some(hi)) if lo == hi => Some(lo),
                _ => None,
            };
            let mut seq = ser::Serializer::serialize_seq(self, len)?;
            for item in iter {
                ser::SerializeSeq::serialize_element(&mut seq, &item)?;
            }
            ser::SerializeSeq::end(seq)
        }
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>, HashError> {
        Ok(match len {
            Some(len) => {
                self.len_prefix(len);
                Compound::Ordered(self)
            }
            None => Compound::Unsized {
                parent: self,
                // Rare (an iterator of unknown length); boxed to keep `Compound` small.
                inner: Box::new(KeyHasher::new()),
                count: 0,
            },
        })
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, HashError> {
        Ok(Compound::Ordered(self))
    }
    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, HashError> {
        Ok(Compound::Ordered(self))
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, HashError> {
        self.put(&index.to_le_bytes());
        Ok(Compound::Ordered(self))
    }
    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, HashError> {
        Ok(Compound::unordered(self))
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>, HashError> {
        Ok(Compound::Ordered(self))
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, HashError> {
        self.put(&index.to_le_bytes());
        Ok(Compound::Ordered(self))
    }
}

/// The state of a compound value being hashed. Kept small: it is returned by value for every
/// struct, tuple and sequence.
pub enum Compound<'a> {
    /// Elements go straight into the parent, in order.
    Ordered(&'a mut KeyHasher),
    /// Elements of a sequence of unknown length: hashed apart, then written as count and digest.
    Unsized {
        parent: &'a mut KeyHasher,
        inner: Box<KeyHasher>,
        count: u64,
    },
    /// Map entries or set elements: each hashed apart, the digests summed so order is irrelevant.
    Unordered {
        parent: &'a mut KeyHasher,
        /// The digest of a map key whose value has not come yet.
        key: Option<u128>,
        sum: u128,
        count: u64,
    },
}

impl<'a> Compound<'a> {
    fn unordered(parent: &'a mut KeyHasher) -> Self {
        Compound::Unordered {
            parent,
            key: None,
            sum: 0,
            count: 0,
        }
    }

    /// Marks a struct field present or skipped. Structs always serialize `Ordered`.
    #[inline]
    fn present(&mut self, present: bool) {
        if let Compound::Ordered(h) = self {
            h.put(&[u8::from(present)]);
        }
    }

    fn add(&mut self, digest: u128) {
        if let Compound::Unordered { sum, count, .. } = self {
            *sum = sum.wrapping_add(digest);
            *count += 1;
        }
    }

    #[inline]
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), HashError> {
        match self {
            Compound::Ordered(h) => value.serialize(&mut **h),
            Compound::Unsized { inner, count, .. } => {
                *count += 1;
                value.serialize(&mut **inner)
            }
            Compound::Unordered { .. } => {
                let d = digest(value)?;
                self.add(d);
                Ok(())
            }
        }
    }

    #[inline]
    fn key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), HashError> {
        match self {
            Compound::Unordered { key: pending, .. } => {
                *pending = Some(digest(key)?);
                Ok(())
            }
            _ => self.element(key),
        }
    }

    #[inline]
    fn value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), HashError> {
        match self {
            Compound::Unordered { key, .. } => {
                // An entry is the digest of its key's and value's digests. serde calls
                // `serialize_value` only after `serialize_key`; a hand-written impl that does
                // otherwise gets its value hashed as an entry of its own.
                let k = key.take();
                let v = digest(value)?;
                let entry = match k {
                    Some(k) => {
                        let mut h = KeyHasher::new();
                        h.u128(k);
                        h.u128(v);
                        h.finish().0
                    }
                    None => v,
                };
                self.add(entry);
                Ok(())
            }
            _ => self.element(value),
        }
    }

    fn done(self) -> Result<(), HashError> {
        match self {
            Compound::Ordered(_) => {}
            Compound::Unsized {
                parent,
                mut inner,
                count,
            } => {
                parent.put(&[TAG_UNSIZED_SEQ]);
                parent.put(&count.to_le_bytes());
                parent.u128(inner.finish().0);
            }
            Compound::Unordered {
                parent, sum, count, ..
            } => {
                parent.put(&[TAG_UNORDERED]);
                parent.put(&count.to_le_bytes());
                parent.u128(sum);
            }
        }
        Ok(())
    }
}

macro_rules! forward_compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = HashError;
            #[inline]
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), HashError> {
                self.element(value)
            }
            fn end(self) -> Result<(), HashError> {
                self.done()
            }
        }
    )*};
}

forward_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

// Every struct field carries a presence byte: with `skip_serializing_if`, a skipped field
// must not let the fields after it pass for its value.
impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = HashError;
    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        self.present(true);
        self.element(value)
    }
    #[inline]
    fn skip_field(&mut self, _key: &'static str) -> Result<(), HashError> {
        self.present(false);
        Ok(())
    }
    #[inline]
    fn end(self) -> Result<(), HashError> {
        self.done()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = HashError;
    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), HashError> {
        self.present(true);
        self.element(value)
    }
    #[inline]
    fn skip_field(&mut self, _key: &'static str) -> Result<(), HashError> {
        self.present(false);
        Ok(())
    }
    #[inline]
    fn end(self) -> Result<(), HashError> {
        self.done()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = HashError;
    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), HashError> {
        self.key(key)
    }
    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), HashError> {
        self.value(value)
    }
    #[inline]
    fn end(self) -> Result<(), HashError> {
        self.done()
    }
}
