//! The deserializing wrapper: every call passed on to the wrapped deserializer, the visitors,
//! accesses and seeds it is handed wrapped in turn, the levels counted where the serializing
//! wrapper counts them.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::{Fail, Track};

/// A stand-in for a refusal, in the error type of the deserializer it crosses.
fn stand_in<E: de::Error>() -> E {
    E::custom("refused by joblet")
}

/// A deserializer `D`, wrapped.
pub(super) struct De<'t, D> {
    inner: D,
    track: &'t Track,
}

impl<'t, D> De<'t, D> {
    pub(super) fn new(inner: D, track: &'t Track) -> Self {
        De { inner, track }
    }
}

/// Anything handed to the wrapped deserializer (a visitor, a seed) or handed back by it (an
/// access), wrapped.
struct W<'t, T> {
    inner: T,
    track: &'t Track,
}

impl<'t, T> W<'t, T> {
    fn new(inner: T, track: &'t Track) -> Self {
        W { inner, track }
    }
}

/// Forwards `deserialize_*` methods that read one value of no nesting.
macro_rules! leaf {
    ($($method:ident $(($($arg:ident: $ty:ty),*))?),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self $($(, $arg: $ty)*)?, visitor: V) -> Result<V::Value, Self::Error> {
            let visitor = W::new(visitor, self.track);
            self.inner.$method($($($arg,)*)? visitor).map_err(Fail::Inner)
        }
    )*};
}

/// Forwards `deserialize_*` methods that read a level of nesting.
macro_rules! level {
    ($($method:ident $(($($arg:ident: $ty:ty),*))?),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self $($(, $arg: $ty)*)?, visitor: V) -> Result<V::Value, Self::Error> {
            let (inner, track) = (self.inner, self.track);
            track.nested(|| inner.$method($($($arg,)*)? W::new(visitor, track)).map_err(Fail::Inner))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<'_, D> {
    type Error = Fail<D::Error>;

    leaf!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_unit_struct(name: &'static str),
        deserialize_identifier,
    );

    level!(
        deserialize_any,
        deserialize_ignored_any,
        deserialize_option,
        deserialize_newtype_struct(name: &'static str),
        deserialize_seq,
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map,
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    );

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Forwards `visit_*` methods of a plain value: the wrapped visitor fails in the wrapper's
/// error type, so that its message is kept.
macro_rules! visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            let track = self.track;
            self.inner.$method::<Fail<E>>(v).map_err(|fail| track.back(fail, stand_in))
        }
    )*};
}

/// Forwards `visit_*` methods handed a deserializer or an access to the nested value, which
/// is passed on wrapped.
macro_rules! nested {
    ($($method:ident($ty:ident: $bound:ident) => $wrap:ident),* $(,)?) => {$(
        fn $method<$ty: $bound<'de>>(self, nested: $ty) -> Result<Self::Value, $ty::Error> {
            let track = self.track;
            self.inner
                .$method($wrap::new(nested, track))
                .map_err(|fail| track.back(fail, stand_in))
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for W<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        let track = self.track;
        self.inner
            .visit_none::<Fail<E>>()
            .map_err(|fail| track.back(fail, stand_in))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        let track = self.track;
        self.inner
            .visit_unit::<Fail<E>>()
            .map_err(|fail| track.back(fail, stand_in))
    }

    nested!(
        visit_some(D: Deserializer) => De,
        visit_newtype_struct(D: Deserializer) => De,
        visit_seq(A: SeqAccess) => W,
        visit_map(A: MapAccess) => W,
        visit_enum(A: EnumAccess) => W,
    );
}

/// A seed deserializes through a wrapped deserializer, whichever deserializer it is given.
impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for W<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        let track = self.track;
        self.inner
            .deserialize(De::new(d, track))
            .map_err(|fail| track.back(fail, stand_in))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for W<'_, A> {
    type Error = Fail<A::Error>;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let seed = W::new(seed, self.track);
        self.inner.next_element_seed(seed).map_err(Fail::Inner)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for W<'_, A> {
    type Error = Fail<A::Error>;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let seed = W::new(seed, self.track);
        self.inner.next_key_seed(seed).map_err(Fail::Inner)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let seed = W::new(seed, self.track);
        self.inner.next_value_seed(seed).map_err(Fail::Inner)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 't, A: EnumAccess<'de>> EnumAccess<'de> for W<'t, A> {
    type Error = Fail<A::Error>;
    type Variant = W<'t, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Self::Error> {
        let track = self.track;
        let (value, variant) = self
            .inner
            .variant_seed(W::new(seed, track))
            .map_err(Fail::Inner)?;
        Ok((value, W::new(variant, track)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for W<'_, A> {
    type Error = Fail<A::Error>;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant().map_err(Fail::Inner)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        let seed = W::new(seed, self.track);
        self.inner.newtype_variant_seed(seed).map_err(Fail::Inner)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = W::new(visitor, self.track);
        self.inner.tuple_variant(len, visitor).map_err(Fail::Inner)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = W::new(visitor, self.track);
        self.inner
            .struct_variant(fields, visitor)
            .map_err(Fail::Inner)
    }
}
