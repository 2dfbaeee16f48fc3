//! The serde `Serializer` that produces a [`Value`].

use serde::ser::{self, Serialize};

use super::wire::VALUE_MARKER;
use super::{Value, ValueError};
use crate::client::live::{self, PROXY_MARKER};
use crate::ProxyHandle;

/// Serialises into a [`Value`]; see the module documentation for the mapping.
#[derive(Debug, Clone, Copy)]
pub(super) struct ValueSerializer;

type Result<T> = std::result::Result<T, ValueError>;

/// Convert any `Serialize` value into a [`Value`].
///
/// Proxies inside `value` are cloned into [`Value::Proxy`] (one reference each).
///
/// # Errors
/// When an `i128`/`u128` does not fit, or the type's own `Serialize` impl fails.
///
/// # Examples
/// ```
/// use std::collections::BTreeMap;
/// use manager_runtime::{from_value, to_value, Value};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Point {
///     x: i32,
///     y: i32,
/// }
///
/// let value = to_value(&Point { x: 1, y: -2 })?;
/// assert_eq!(
///     value,
///     Value::Map(vec![
///         (Value::from("x"), Value::Int(1)),
///         (Value::from("y"), Value::Int(-2)),
///     ])
/// );
/// // Keys compare by value: any integer width, any map order.
/// let mut dict = BTreeMap::new();
/// dict.insert(to_value(&5u8)?, value);
/// assert!(dict.contains_key(&to_value(&5i64)?));
/// # Ok::<(), manager_runtime::ValueError>(())
/// ```
pub fn to_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Value> {
    value.serialize(ValueSerializer)
}

/// Serialise the content of a marker newtype with the value serializer, taking the live
/// value it offers (a `Value`, or a `ProxyHandle`). Content that offers nothing is
/// serialised as it is (a transparent newtype).
fn capture<T: Serialize + ?Sized>(content: &T) -> Result<Value> {
    let (written, live) = live::capture(|| content.serialize(ValueSerializer));
    let written = written?;
    let Some(live) = live else {
        return Ok(written);
    };
    match live.downcast::<Value>() {
        Ok(value) => Ok(*value),
        Err(live) => match live.downcast::<ProxyHandle>() {
            Ok(handle) => Ok(Value::Proxy(*handle)),
            Err(_) => Ok(written),
        },
    }
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = ListBuilder;
    type SerializeTuple = ListBuilder;
    type SerializeTupleStruct = ListBuilder;
    type SerializeTupleVariant = VariantBuilder<ListBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder<MapBuilder>;

    fn serialize_bool(self, v: bool) -> Result<Value> {
        Ok(Value::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<Value> {
        Ok(Value::Int(v))
    }

    fn serialize_i128(self, v: i128) -> Result<Value> {
        Value::try_from(v)
    }

    fn serialize_u8(self, v: u8) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_u128(self, v: u128) -> Result<Value> {
        Value::try_from(v)
    }

    fn serialize_f32(self, v: f32) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<Value> {
        Ok(Value::Float(v))
    }

    fn serialize_char(self, v: char) -> Result<Value> {
        Ok(Value::Str(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value> {
        Ok(Value::from(v))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn serialize_none(self) -> Result<Value> {
        Ok(Value::None)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value> {
        Ok(Value::None)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value> {
        Ok(Value::None)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value> {
        Ok(variant_of(variant, Value::None))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value> {
        if name == PROXY_MARKER || name == VALUE_MARKER {
            // A proxy or a value: take a clone of the live thing (see `wire`).
            return capture(value);
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value> {
        Ok(variant_of(variant, value.serialize(self)?))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ListBuilder> {
        Ok(ListBuilder::new(len.unwrap_or(0)))
    }

    fn serialize_tuple(self, len: usize) -> Result<ListBuilder> {
        Ok(ListBuilder::tuple(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<ListBuilder> {
        Ok(ListBuilder::tuple(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<ListBuilder>> {
        Ok(VariantBuilder {
            variant,
            inner: ListBuilder::new(len),
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder> {
        Ok(MapBuilder::new(len.unwrap_or(0)))
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder> {
        Ok(MapBuilder::new(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<MapBuilder>> {
        Ok(VariantBuilder {
            variant,
            inner: MapBuilder::new(len),
        })
    }
}

fn variant_of(variant: &str, payload: Value) -> Value {
    Value::Variant(variant.to_owned(), Box::new(payload))
}

/// Collects a sequence, tuple or tuple struct into a [`Value::List`].
#[derive(Debug)]
pub(super) struct ListBuilder {
    items: Vec<Value>,
    /// A tuple or tuple struct: ends as a [`Value::Tuple`].
    tuple: bool,
}

impl ListBuilder {
    fn new(len: usize) -> Self {
        // A length hint is trusted only so far: it comes from the type being serialised.
        ListBuilder {
            items: Vec::with_capacity(len.min(4096)),
            tuple: false,
        }
    }

    fn tuple(len: usize) -> Self {
        ListBuilder {
            tuple: true,
            ..Self::new(len)
        }
    }

    fn finish(self) -> Value {
        match self.tuple {
            true => Value::Tuple(self.items),
            false => Value::List(self.items),
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }
}

impl ser::SerializeSeq for ListBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }

    fn end(self) -> Result<Value> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for ListBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }

    fn end(self) -> Result<Value> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for ListBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }

    fn end(self) -> Result<Value> {
        Ok(self.finish())
    }
}

/// Collects a map or struct into a [`Value::Map`].
#[derive(Debug)]
pub(super) struct MapBuilder {
    entries: Vec<(Value, Value)>,
    /// A key whose value has not been serialised yet.
    key: Option<Value>,
}

impl MapBuilder {
    fn new(len: usize) -> Self {
        MapBuilder {
            entries: Vec::with_capacity(len.min(4096)),
            key: None,
        }
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self.key.take().ok_or_else(|| {
            ValueError::Message("a map value was serialised before its key".to_owned())
        })?;
        self.entries.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }

    fn end(self) -> Result<Value> {
        Ok(Value::Map(self.entries))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.entries
            .push((Value::from(key), value.serialize(ValueSerializer)?));
        Ok(())
    }

    fn end(self) -> Result<Value> {
        Ok(Value::Map(self.entries))
    }
}

/// A tuple or struct variant: its fields, then wrapped in [`Value::Variant`].
#[derive(Debug)]
pub(super) struct VariantBuilder<B> {
    variant: &'static str,
    inner: B,
}

impl ser::SerializeTupleVariant for VariantBuilder<ListBuilder> {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.inner.push(value)
    }

    fn end(self) -> Result<Value> {
        Ok(variant_of(self.variant, Value::List(self.inner.items)))
    }
}

impl ser::SerializeStructVariant for VariantBuilder<MapBuilder> {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }

    fn end(self) -> Result<Value> {
        Ok(variant_of(self.variant, Value::Map(self.inner.entries)))
    }
}
