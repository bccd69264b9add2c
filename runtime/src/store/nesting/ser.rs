//! The serializing wrapper: every call passed on to the wrapped serializer, nested values
//! wrapped in turn, the levels counted where the deserializing wrapper counts them.

use serde::ser::{self, Serialize, Serializer};

use super::{Fail, Track};

/// A serializer `S`, wrapped.
pub(super) struct Ser<'t, S> {
    inner: S,
    track: &'t Track,
}

impl<'t, S> Ser<'t, S> {
    pub(super) fn new(inner: S, track: &'t Track) -> Self {
        Ser { inner, track }
    }
}

/// A nested value, serialized through a wrapped serializer by whichever serializer is handed
/// to it.
struct Wrap<'a, 't, T: ?Sized> {
    value: &'a T,
    track: &'t Track,
}

impl<T: ?Sized + Serialize> Serialize for Wrap<'_, '_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let track = self.track;
        self.value
            .serialize(Ser::new(serializer, track))
            .map_err(|fail| track.back(fail, || ser::Error::custom("refused by joblet")))
    }
}

/// A compound value being serialized (`S::SerializeSeq` and its kind), wrapped; it leaves its
/// level at its end.
pub(super) struct Compound<'t, C> {
    inner: C,
    track: &'t Track,
}

impl<'t, C> Compound<'t, C> {
    fn wrap<'a, T: ?Sized>(&self, value: &'a T) -> Wrap<'a, 't, T> {
        Wrap {
            value,
            track: self.track,
        }
    }

    fn end<O, E>(self, end: impl FnOnce(C) -> Result<O, E>) -> Result<O, Fail<E>> {
        self.track.exit();
        end(self.inner).map_err(Fail::Inner)
    }
}

/// Forwards a method that takes a plain value.
macro_rules! plain {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method(self, v: $ty) -> Result<S::Ok, Self::Error> {
            self.inner.$method(v).map_err(Fail::Inner)
        }
    )*};
}

impl<'t, S: Serializer> Ser<'t, S> {
    /// One level deeper, for a compound value that `start` begins.
    fn compound<C>(
        self,
        start: impl FnOnce(S) -> Result<C, S::Error>,
    ) -> Result<Compound<'t, C>, Fail<S::Error>> {
        self.track.enter()?;
        match start(self.inner) {
            Ok(inner) => Ok(Compound {
                inner,
                track: self.track,
            }),
            Err(e) => {
                self.track.exit();
                Err(Fail::Inner(e))
            }
        }
    }
}

impl<'t, S: Serializer> Serializer for Ser<'t, S> {
    type Ok = S::Ok;
    type Error = Fail<S::Error>;
    type SerializeSeq = Compound<'t, S::SerializeSeq>;
    type SerializeTuple = Compound<'t, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'t, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'t, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'t, S::SerializeMap>;
    type SerializeStruct = Compound<'t, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'t, S::SerializeStructVariant>;

    plain!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }

    fn serialize_unit(self) -> Result<S::Ok, Self::Error> {
        self.inner.serialize_unit().map_err(Fail::Inner)
    }

    // An `Option` is a level even when `None`, as it is to the deserializer.
    fn serialize_none(self) -> Result<S::Ok, Self::Error> {
        let inner = self.inner;
        self.track
            .nested(|| inner.serialize_none().map_err(Fail::Inner))
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<S::Ok, Self::Error> {
        let (inner, track) = (self.inner, self.track);
        track.nested(|| {
            inner
                .serialize_some(&Wrap { value, track })
                .map_err(Fail::Inner)
        })
    }

    // An enum is a level even for a unit variant, as it is to the deserializer.
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, Self::Error> {
        let inner = self.inner;
        self.track.nested(|| {
            inner
                .serialize_unit_variant(name, index, variant)
                .map_err(Fail::Inner)
        })
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, Self::Error> {
        let (inner, track) = (self.inner, self.track);
        track.nested(|| {
            inner
                .serialize_newtype_struct(name, &Wrap { value, track })
                .map_err(Fail::Inner)
        })
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, Self::Error> {
        let (inner, track) = (self.inner, self.track);
        track.nested(|| {
            inner
                .serialize_newtype_variant(name, index, variant, &Wrap { value, track })
                .map_err(Fail::Inner)
        })
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        self.compound(|s| s.serialize_seq(len))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        self.compound(|s| s.serialize_tuple(len))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        self.compound(|s| s.serialize_tuple_struct(name, len))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        self.compound(|s| s.serialize_tuple_variant(name, index, variant, len))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        self.compound(|s| s.serialize_map(len))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        self.compound(|s| s.serialize_struct(name, len))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        self.compound(|s| s.serialize_struct_variant(name, index, variant, len))
    }

    fn collect_str<T: ?Sized + std::fmt::Display>(self, value: &T) -> Result<S::Ok, Self::Error> {
        self.inner.collect_str(value).map_err(Fail::Inner)
    }
}

/// Implements a compound trait for `Compound`: each element or field wrapped and passed on.
/// (`skip_field` is left to its default, which does nothing, as postcard's does.)
macro_rules! compound {
    ($($trait:ident::$method:ident($($key:ident: $key_ty:ty)?)),* $(,)?) => {$(
        impl<C: ser::$trait> ser::$trait for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = Fail<C::Error>;
            fn $method<T: ?Sized + Serialize>(
                &mut self,
                $($key: $key_ty,)?
                value: &T,
            ) -> Result<(), Self::Error> {
                let value = self.wrap(value);
                self.inner.$method($($key,)? &value).map_err(Fail::Inner)
            }
            fn end(self) -> Result<C::Ok, Self::Error> {
                Compound::end(self, C::end)
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(key: &'static str),
    SerializeStructVariant::serialize_field(key: &'static str),
);

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = Fail<C::Error>;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Self::Error> {
        let key = self.wrap(key);
        self.inner.serialize_key(&key).map_err(Fail::Inner)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Self::Error> {
        let value = self.wrap(value);
        self.inner.serialize_value(&value).map_err(Fail::Inner)
    }
    fn end(self) -> Result<C::Ok, Self::Error> {
        Compound::end(self, C::end)
    }
}
