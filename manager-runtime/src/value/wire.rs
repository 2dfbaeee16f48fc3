//! `Value`'s own tagged `Serialize`/`Deserialize`, and the hand-over slot through which
//! the value serializer and deserializer exchange live values with `Value` and
//! [`ProxyHandle`] without a detour through their wire forms.
//!
//! # The hand-over
//! `Value` and `ProxyHandle` serialise as a newtype struct with a private name
//! ([`VALUE_MARKER`], [`PROXY_MARKER`]) around their real content. Postcard (like every
//! serde format this crate knows) writes newtype structs as their content, so the bytes
//! are those of the content alone. The value serializer recognises the names:
//!
//! * Serialising, it *arms* the thread-local slot and serialises the content; the
//!   content's `Serialize` impl sees the armed slot ([`offer`]), puts a clone of the live
//!   value in it (for a proxy: a clone of the handle, an incref, instead of a reference in
//!   transit) and writes a unit; the serializer takes the clone out of the slot.
//! * Deserialising, it puts the stored value in the slot and calls the visitor's
//!   `visit_newtype_struct`; the visitor takes it ([`take_delivered`]) instead of decoding
//!   the wire form.
//!
//! The slot is filled immediately before the one call that empties it, and a guard
//! empties it afterwards whatever happens, so no other (de)serialisation on the thread,
//! nested or later, can see it (the slot itself is in `client/live.rs`). The marker names
//! are private to this crate, so only the impls here and in `client/proxy.rs` are called
//! with them.

use std::cell::Cell;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use super::{Value, ValueError, MAX_DEPTH};
use crate::client::live;
use crate::ProxyHandle;

/// The newtype name a [`Value`] serialises under.
pub(super) const VALUE_MARKER: &str = "$managers::Value";

thread_local! {
    /// How many `Value`s are being decoded from another format on this thread, nested.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Hand `value` to a visitor of a marker newtype: the value itself (for `Value`), or the
/// handle it holds (for a proxy).
pub(super) fn deliver<'de, V: Visitor<'de>>(
    value: Value,
    proxy: bool,
    visitor: V,
) -> Result<V::Value, ValueError> {
    let live: Box<dyn std::any::Any> = match value {
        Value::Proxy(handle) if proxy => Box::new(handle),
        value => Box::new(value),
    };
    // Our visitors take the value from the slot and never look at this deserializer.
    live::deliver(live, || visitor.visit_newtype_struct(Value::None))
}

fn offer(make: impl FnOnce() -> Value) -> bool {
    live::offer(make)
}

fn take_delivered() -> Option<Value> {
    live::take_delivered().and_then(|live| live.downcast::<Value>().ok().map(|v| *v))
}

/// How other formats write a value: a variant index, then the content. Mirrors [`Owned`]
/// variant for variant (a test checks the two agree).
#[derive(serde::Serialize)]
#[serde(rename = "Value")]
enum Borrowed<'a> {
    None,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a serde_bytes::Bytes),
    List(&'a [Value]),
    Map(&'a [(Value, Value)]),
    Variant(&'a str, &'a Value),
    Proxy(&'a ProxyHandle),
    Tuple(&'a [Value]),
    Opaque(&'a str, &'a serde_bytes::Bytes),
}

/// How a value is read from other formats.
#[derive(serde::Deserialize)]
#[serde(rename = "Value")]
enum Owned {
    None,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(serde_bytes::ByteBuf),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Variant(String, Box<Value>),
    Proxy(ProxyHandle),
    Tuple(Vec<Value>),
    Opaque(String, serde_bytes::ByteBuf),
}

impl<'a> From<&'a Value> for Borrowed<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::None => Borrowed::None,
            Value::Bool(b) => Borrowed::Bool(*b),
            Value::Int(i) => Borrowed::Int(*i),
            Value::UInt(u) => Borrowed::UInt(*u),
            Value::Float(f) => Borrowed::Float(*f),
            Value::Str(s) => Borrowed::Str(s),
            Value::Bytes(b) => Borrowed::Bytes(serde_bytes::Bytes::new(b)),
            Value::List(items) => Borrowed::List(items),
            Value::Map(entries) => Borrowed::Map(entries),
            Value::Variant(name, payload) => Borrowed::Variant(name, payload),
            Value::Proxy(handle) => Borrowed::Proxy(handle),
            Value::Tuple(items) => Borrowed::Tuple(items),
            Value::Opaque(o) => {
                Borrowed::Opaque(o.type_name(), serde_bytes::Bytes::new(o.pickle()))
            }
        }
    }
}

impl From<Owned> for Value {
    fn from(owned: Owned) -> Self {
        match owned {
            Owned::None => Value::None,
            Owned::Bool(b) => Value::Bool(b),
            Owned::Int(i) => Value::Int(i),
            Owned::UInt(u) => Value::from(u),
            Owned::Float(f) => Value::Float(f),
            Owned::Str(s) => Value::Str(s),
            Owned::Bytes(b) => Value::Bytes(b.into_vec()),
            Owned::List(items) => Value::List(items),
            Owned::Map(entries) => Value::Map(entries),
            Owned::Variant(name, payload) => Value::Variant(name, payload),
            Owned::Proxy(handle) => Value::Proxy(handle),
            Owned::Tuple(items) => Value::Tuple(items),
            Owned::Opaque(name, pickle) => {
                Value::Opaque(super::Opaque::new(&name, pickle.into_vec()))
            }
        }
    }
}

/// The content of the [`VALUE_MARKER`] newtype.
struct Tagged<'a>(&'a Value);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if offer(|| self.0.clone()) {
            return serializer.serialize_unit();
        }
        Borrowed::from(self.0).serialize(serializer)
    }
}

impl Serialize for Value {
    /// The tagged form (see [`Value`]); the value serializer clones the value instead.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(VALUE_MARKER, &Tagged(self))
    }
}

impl<'de> Deserialize<'de> for Value {
    /// The tagged form (see [`Value`]); the value deserializer hands over the value itself.
    /// Proxies are adopted in the current context, as any deserialised proxy.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(VALUE_MARKER, ValueVisitor)
    }
}

struct ValueVisitor;

/// Counts one level of nesting while alive.
struct Nested;

impl Nested {
    fn enter<E: serde::de::Error>() -> Result<Nested, E> {
        let depth = DEPTH.with(|d| d.get()) + 1;
        if depth > MAX_DEPTH {
            return Err(E::custom(ValueError::TooDeep));
        }
        DEPTH.with(|d| d.set(depth));
        Ok(Nested)
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if let Some(value) = take_delivered() {
            return Ok(value);
        }
        let _nested = Nested::enter()?;
        Owned::deserialize(d).map(Value::from)
    }
}
