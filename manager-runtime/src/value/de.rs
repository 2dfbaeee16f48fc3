//! The serde `Deserializer` over a [`Value`]: `Value` itself, consumed.

use serde::de::{
    self, DeserializeSeed, EnumAccess, Error as _, Expected, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;

use super::wire::{self, VALUE_MARKER};
use super::{Value, ValueError};
use crate::client::live::PROXY_MARKER;

type Result<T> = std::result::Result<T, ValueError>;

impl Value {
    /// What serde error messages call this value.
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Value::None => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Int(i) => Unexpected::Signed(*i),
            Value::UInt(u) => Unexpected::Unsigned(*u),
            Value::Float(f) => Unexpected::Float(*f),
            Value::Str(s) => Unexpected::Str(s),
            Value::Bytes(b) => Unexpected::Bytes(b),
            Value::List(_) => Unexpected::Seq,
            Value::Map(_) => Unexpected::Map,
            Value::Variant(..) => Unexpected::Enum,
            Value::Proxy(_) => Unexpected::Other("proxy"),
            Value::Tuple(_) => Unexpected::Seq,
            Value::Opaque(_) => Unexpected::Other("an opaque Python object"),
        }
    }

    fn invalid_type(&self, expected: &dyn Expected) -> ValueError {
        ValueError::invalid_type(self.unexpected(), expected)
    }
}

/// The elements of a list of small integers as bytes, if that is what it is.
fn list_to_bytes(items: &[Value]) -> Option<Vec<u8>> {
    items
        .iter()
        .map(|item| item.as_i64().and_then(|i| u8::try_from(i).ok()))
        .collect()
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::UInt(u) => visitor.visit_u64(u),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::List(items) | Value::Tuple(items) => visit_list(items.into_iter(), visitor),
            Value::Map(entries) => visit_map(entries, visitor),
            // As self-describing formats write an externally tagged enum.
            Value::Variant(name, payload) => visit_map(vec![(Value::Str(name), *payload)], visitor),
            Value::Proxy(_) => Err(ValueError::custom(format_args!(
                "invalid type: proxy, expected {}: a proxy is read only by a proxy type",
                &visitor as &dyn Expected
            ))),
            Value::Opaque(o) => Err(ValueError::custom(format_args!(
                "invalid type: an opaque Python object ({}), expected {}",
                o.type_name(),
                &visitor as &dyn Expected
            ))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::None => visitor.visit_none(),
            some => visitor.visit_some(some),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::None => visitor.visit_unit(),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == VALUE_MARKER {
            // `Value` itself: hand it over unchanged.
            return wire::deliver(self, false, visitor);
        }
        if name == PROXY_MARKER {
            // A proxy type: hand over the live handle (no new reference).
            return match self {
                Value::Proxy(_) => wire::deliver(self, true, visitor),
                other => Err(other.invalid_type(&"a proxy")),
            };
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::List(items) | Value::Tuple(items) => visit_list(items.into_iter(), visitor),
            // A `Vec<u8>` from a byte string, a byte at a time (not a `Value` per byte at
            // once: that would be 32 times the string's size).
            Value::Bytes(bytes) => visit_list(bytes.into_iter().map(Value::from), visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::Map(entries) => visit_map(entries, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self {
            Value::Map(entries) => visit_map(entries, visitor),
            // Derived struct visitors also read the fields in order from a sequence.
            Value::List(items) | Value::Tuple(items) => visit_list(items.into_iter(), visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self {
            Value::Variant(name, payload) => visitor.visit_enum(Enum {
                name,
                payload: *payload,
            }),
            // A unit variant by name.
            Value::Str(name) => visitor.visit_enum(Enum {
                name,
                payload: Value::None,
            }),
            // `{name: payload}`, as self-describing formats write enums.
            Value::Map(entries) => match <[_; 1]>::try_from(entries) {
                Ok([(Value::Str(name), payload)]) => visitor.visit_enum(Enum { name, payload }),
                Ok([entry]) => Err(Value::Map(vec![entry]).invalid_type(&"an enum variant")),
                Err(entries) => Err(Value::Map(entries).invalid_type(&"an enum variant")),
            },
            other => Err(other.invalid_type(&"an enum variant")),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Value::Bytes(bytes) => visitor.visit_byte_buf(bytes),
            Value::List(items) => match list_to_bytes(&items) {
                Some(bytes) => visitor.visit_byte_buf(bytes),
                None => Err(Value::List(items).invalid_type(&visitor)),
            },
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            // Field and variant indices are read as `u64`.
            Value::Int(i) if i >= 0 => visitor.visit_u64(i.unsigned_abs()),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        drop(self);
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
    }
}

impl IntoDeserializer<'_, ValueError> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

/// What a list with elements left over expected: as many as were read.
struct ListOf(usize);

impl Expected for ListOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a list of {} elements", self.0)
    }
}

fn visit_list<'de, V: Visitor<'de>>(
    items: impl ExactSizeIterator<Item = Value>,
    visitor: V,
) -> Result<V::Value> {
    let len = items.len();
    let mut seq = Seq(items);
    let out = visitor.visit_seq(&mut seq)?;
    match seq.0.len() {
        0 => Ok(out),
        left => Err(ValueError::invalid_length(len, &ListOf(len - left))),
    }
}

fn visit_map<'de, V: Visitor<'de>>(entries: Vec<(Value, Value)>, visitor: V) -> Result<V::Value> {
    let len = entries.len();
    let mut map = Map {
        entries: entries.into_iter(),
        value: None,
    };
    let out = visitor.visit_map(&mut map)?;
    match map.entries.len() {
        0 => Ok(out),
        left => Err(ValueError::invalid_length(len, &MapOf(len - left))),
    }
}

/// What a map with entries left over expected: as many as were read.
struct MapOf(usize);

impl Expected for MapOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a map of {} entries", self.0)
    }
}

struct Seq<I>(I);

impl<'de, I: ExactSizeIterator<Item = Value>> SeqAccess<'de> for Seq<I> {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        self.0.next().map(|item| seed.deserialize(item)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map {
    entries: std::vec::IntoIter<(Value, Value)>,
    /// The value of the entry whose key was just read.
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Map {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value> {
        let value = self
            .value
            .take()
            .ok_or_else(|| ValueError::custom("a map value was read before its key"))?;
        seed.deserialize(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A variant being read: its name, then its payload.
struct Enum {
    name: String,
    payload: Value,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = ValueError;
    type Variant = Payload;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Payload)> {
        let variant = seed.deserialize(Value::Str(self.name))?;
        Ok((variant, Payload(self.payload)))
    }
}

/// The payload of a variant, read in the variant's shape.
struct Payload(Value);

impl<'de> VariantAccess<'de> for Payload {
    type Error = ValueError;

    fn unit_variant(self) -> Result<()> {
        match self.0 {
            Value::None => Ok(()),
            other => Err(other.invalid_type(&"a unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_seq(self.0, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(self.0, "", fields, visitor)
    }
}
