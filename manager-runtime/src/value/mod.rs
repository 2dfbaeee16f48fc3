//! [`Value`]: a format-neutral, self-describing value, what the `SyncManager` containers
//! (shared dict, list, queue, `Namespace`, `Value`) store.
//!
//! Any `Serialize` type becomes a [`Value`] with [`to_value`], and any `Deserialize` type
//! comes back out with [`from_value`]; values written by one client decode in another
//! without either knowing the other's Rust types, keys compare by value, and the shapes
//! are those of Python's pickle data model, so a Python-compatible wire format can share
//! the same stored values later.
//!
//! # From the serde data model, and to Python
//!
//! | serde data model                              | `Value`                       | Python       |
//! |-----------------------------------------------|-------------------------------|--------------|
//! | `unit`, unit struct, `none`                   | [`Value::None`]               | `None`       |
//! | `some(x)`                                     | whatever `x` is               |              |
//! | `bool`                                        | [`Value::Bool`]               | `bool`       |
//! | `i8`..`i64`, `u8`..`u64`, `i128`/`u128` in range | [`Value::Int`], [`Value::UInt`] above `i64::MAX` | `int` |
//! | `f32`, `f64`                                  | [`Value::Float`]              | `float`      |
//! | `char`, `str`                                 | [`Value::Str`]                | `str`        |
//! | `bytes` (`serde_bytes`)                       | [`Value::Bytes`]              | `bytes`      |
//! | seq                                           | [`Value::List`]               | `list`       |
//! | tuple, tuple struct                           | [`Value::Tuple`]              | `tuple`      |
//! | map                                           | [`Value::Map`]                | `dict`       |
//! | struct                                        | [`Value::Map`] with [`Value::Str`] keys | `dict` |
//! | newtype struct                                | whatever its content is       |              |
//! | enum variant                                  | [`Value::Variant`]            | no counterpart: `{name: payload}`, as self-describing serde formats write it |
//! | a proxy ([`ProxyHandle`] or a typed proxy)    | [`Value::Proxy`]              | a proxy      |
//!
//! Integers that do not fit in `-2^63..2^64` (from `i128`/`u128`) are refused with
//! [`ValueError::IntegerOutOfRange`].
//!
//! Options flatten: `Some(x)` is stored as `x` and `None` as [`Value::None`], so
//! `Option<T>` round-trips, but `Option<Option<T>>` does not: `Some(None)` comes back as
//! `None` (Python has the same single `None`). Newtype structs are transparent the same
//! way.
//!
//! # Enums
//! A variant is stored as [`Value::Variant`]`(name, payload)`, whatever its shape:
//!
//! | variant                      | payload                              |
//! |------------------------------|--------------------------------------|
//! | unit, `E::A`                 | [`Value::None`]                      |
//! | newtype, `E::B(x)`           | the value of `x`                     |
//! | tuple, `E::C(x, y)`          | [`Value::List`] of the fields        |
//! | struct, `E::D { x, y }`      | [`Value::Map`] with [`Value::Str`] keys |
//!
//! The target type decides which shape is read back, so the four shapes round-trip.
//! [`from_value`] also reads a unit variant from a bare [`Value::Str`] and any variant
//! from a one-entry map `{name: payload}` (what a Python peer or a JSON document would
//! naturally send). Internally, adjacently tagged and untagged enums work too (they are
//! maps and plain values).
//!
//! # Proxies
//! A [`Value::Proxy`] is a live [`ProxyHandle`], one reference to its object like any other
//! handle: cloning the value takes a reference, dropping it releases one. [`to_value`] on
//! a proxy (or on anything holding proxies) clones the handle: no reference is put in
//! transit, nothing is adopted, and no message other than the clone's incref is sent.
//! [`from_value`] hands the stored handle to the proxy type that asks for it, so typed
//! proxies come out of a value live. Serialising a `Value` with another format (postcard
//! on the wire) puts its proxies in transit like any proxy, and deserialising adopts them
//! in the current context: a value travelling client, server, client keeps its proxies
//! live.
//!
//! A proxy can only be read back as a proxy type, and a `Value` nested in a type read
//! with [`from_value`] is handed over as it is: neither works through a buffering
//! `#[serde(untagged)]`/`#[serde(flatten)]` container, which sees plain content
//! without handles (the wire format avoids those attributes anyway).
//!
//! # Comparing, ordering, hashing
//! [`Value`] is `Eq + Ord + Hash` by value, so it can be a key: integers compare as
//! numbers whatever their width (`to_value(&5u8) == to_value(&5i64)`); floats by
//! [`f64::total_cmp`] with `-0.0 == 0.0` and every NaN equal to every other NaN; maps as
//! Python dicts do, by their entries whatever their order (the order is kept for
//! iteration only); proxies by their manager's address and object id. Numbers compare as
//! Python's do, whatever their kind: `1 == 1.0 == true`, so they are one key in a map
//! (and hash alike), and `2 < 2.5`. A tuple is not equal to the list of the same items.
//! Values of different kinds order by kind: `None`, numbers, strings, bytes, lists,
//! tuples, maps, variants, proxies, opaque Python objects.
//!
//! Clippy's `mutable_key_type` lint fires on a `HashSet<Value>` or `BTreeMap<Value, _>`
//! because a proxy handle holds its (internally mutable) connection. It is a false
//! positive: comparing and hashing read only the handle's immutable token. Allow the lint
//! there, or list `manager_runtime::Value` under `ignore-interior-mutability` in
//! `clippy.toml`.

mod cmp;
mod de;
mod ser;
#[cfg(test)]
mod tests;
mod wire;

pub use ser::to_value;

use crate::ProxyHandle;

/// A self-describing value: what the shared containers store. See the
/// [module documentation](self) for how serde types and Python types map onto it.
///
/// `Value` itself is `Serialize + Deserialize` in a tagged form (one variant index, then
/// the content), so it travels over formats that are not self-describing such as postcard.
/// [`to_value`] of a `Value` is a clone of it, and [`from_value`] into `Value` returns it
/// unchanged.
///
/// A `Value` is also a serde `Deserializer` (consumed by reading): [`from_value`] is
/// `T::deserialize(value)`. Both directions report `is_human_readable() == true`, so types
/// with a textual form (IP addresses, for one) are stored as their strings, as Python
/// would hold them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Value {
    /// Python's `None`: unit, unit structs, and `Option::None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer from `i64::MIN` to `i64::MAX`.
    Int(i64),
    /// An integer above `i64::MAX`. [`to_value`], the `From` impls and decoding never make
    /// a `UInt` for a smaller number; a hand-made one still compares equal to the same
    /// [`Value::Int`].
    UInt(u64),
    /// A floating-point number (`f32` is widened).
    Float(f64),
    /// A string (also a `char`).
    Str(String),
    /// A byte string (`serde_bytes`); a plain `Vec<u8>` is a [`Value::List`] of integers.
    Bytes(Vec<u8>),
    /// A sequence: `Vec`, slices, sets, tuples, tuple structs.
    List(Vec<Value>),
    /// A map, in insertion order; structs are maps with [`Value::Str`] keys.
    Map(Vec<(Value, Value)>),
    /// An enum variant: its name and its payload (see the [module documentation](self)).
    Variant(String, Box<Value>),
    /// A live proxy: one reference to a shared object.
    Proxy(ProxyHandle),
    /// A tuple: a Rust tuple or tuple struct, or a Python `tuple`. It reads back as any
    /// sequence, like a list, but is a different value from the list of the same items (as
    /// in Python, where a tuple can be a dict key and a list cannot).
    Tuple(Vec<Value>),
    /// A Python object kept as it came, without being understood (see [`Opaque`]).
    Opaque(Opaque),
}

/// A Python object a server keeps without understanding it: a `set`, a `datetime`, a
/// `Decimal`, an instance of a user class, an integer beyond `-2^63..2^64`. It is kept as
/// the pickle that made it (data only: the server never runs a pickle) and written back
/// to Python clients unchanged, so Python code gets its object back; Rust code can store,
/// compare and pass it on, but not read it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Opaque {
    /// The Python type, `module.name` (for messages).
    type_name: std::sync::Arc<str>,
    /// A protocol 4 pickle of the object, without memo.
    pickle: std::sync::Arc<[u8]>,
}

impl Opaque {
    /// An opaque object from its pickle and its Python type name.
    pub fn new(type_name: &str, pickle: Vec<u8>) -> Self {
        Opaque {
            type_name: type_name.into(),
            pickle: pickle.into(),
        }
    }

    /// The Python type, `module.name` (`datetime.datetime`), or a builtin's name (`set`).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The pickle (protocol 4) that rebuilds the object in Python.
    pub fn pickle(&self) -> &[u8] {
        &self.pickle
    }
}

impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Opaque(<{}, {} bytes>)",
            self.type_name,
            self.pickle.len()
        )
    }
}

/// Why a value could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A message from serde or from a type's own `Serialize`/`Deserialize` impl, such as
    /// `invalid value: integer `300`, expected u8`.
    #[error("{0}")]
    Message(String),
    /// An `i128`/`u128` outside the range a value holds, `-2^63..2^64`.
    #[error("integer {0} is out of range: a value holds integers from -2^63 to 2^64-1")]
    IntegerOutOfRange(String),
    /// A value decoded from another format was nested deeper than [`MAX_DEPTH`] levels.
    #[error("value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// How deeply nested a [`Value`] decoded from another format (such as postcard) may be:
/// deeper input is refused instead of overflowing the stack.
pub const MAX_DEPTH: usize = 128;

impl serde::ser::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ValueError::Message(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ValueError::Message(msg.to_string())
    }
}

/// Read any `Deserialize` type out of a [`Value`].
///
/// Integers convert to any width that holds them; a [`Value::Proxy`] becomes the proxy
/// type asked for (the handle moves into it: no new reference).
///
/// # Errors
/// When the value does not have the shape of `T`: the message says what was found and
/// what was expected.
///
/// # Examples
/// ```
/// use manager_runtime::{from_value, to_value, Value};
///
/// let value = to_value(&(7u8, "seven", vec![Some(1.5), None]))?;
/// let back: (i64, String, Vec<Option<f32>>) = from_value(value)?;
/// assert_eq!(back, (7, "seven".to_owned(), vec![Some(1.5), None]));
///
/// let err = from_value::<u8>(Value::Int(300)).unwrap_err();
/// assert_eq!(err.to_string(), "invalid value: integer `300`, expected u8");
/// # Ok::<(), manager_runtime::ValueError>(())
/// ```
pub fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    T::deserialize(value)
}

impl Value {
    /// Read a `Deserialize` type out of this value: [`from_value`] as a method.
    ///
    /// # Errors
    /// As [`from_value`].
    pub fn deserialize_into<T: serde::de::DeserializeOwned>(self) -> Result<T, ValueError> {
        from_value(self)
    }

    /// The name of the Python type this value maps to (`"NoneType"`, `"int"`, `"dict"`,
    /// ...; `"variant"` and `"proxy"` for the two kinds without a builtin counterpart, and
    /// the Python type of an [`Opaque`] object).
    pub fn type_name(&self) -> &str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "dict",
            Value::Variant(..) => "variant",
            Value::Proxy(_) => "proxy",
            Value::Tuple(_) => "tuple",
            Value::Opaque(o) => o.type_name(),
        }
    }

    /// Whether this is [`Value::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// The integer, if this is one that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The string, if this is a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The handle, if this is a [`Value::Proxy`].
    pub fn as_proxy(&self) -> Option<&ProxyHandle> {
        match self {
            Value::Proxy(handle) => Some(handle),
            _ => None,
        }
    }
}

impl From<u64> for Value {
    /// [`Value::Int`] up to `i64::MAX`, [`Value::UInt`] above.
    fn from(u: u64) -> Self {
        match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(u),
        }
    }
}

macro_rules! from_small_int {
    ($($t:ty)*) => {$(
        impl From<$t> for Value {
            fn from(i: $t) -> Self {
                Value::Int(i64::from(i))
            }
        }
    )*};
}
from_small_int!(i8 i16 i32 i64 u8 u16 u32);

impl TryFrom<i128> for Value {
    type Error = ValueError;

    /// An integer, or [`ValueError::IntegerOutOfRange`] outside `-2^63..2^64`.
    fn try_from(i: i128) -> Result<Self, ValueError> {
        if let Ok(i) = i64::try_from(i) {
            Ok(Value::Int(i))
        } else if let Ok(u) = u64::try_from(i) {
            Ok(Value::UInt(u))
        } else {
            Err(ValueError::IntegerOutOfRange(i.to_string()))
        }
    }
}

impl TryFrom<u128> for Value {
    type Error = ValueError;

    /// An integer, or [`ValueError::IntegerOutOfRange`] above `u64::MAX`.
    fn try_from(u: u128) -> Result<Self, ValueError> {
        u64::try_from(u)
            .map(Value::from)
            .map_err(|_| ValueError::IntegerOutOfRange(u.to_string()))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<f32> for Value {
    fn from(f: f32) -> Self {
        Value::Float(f64::from(f))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::List(items)
    }
}

impl From<ProxyHandle> for Value {
    fn from(handle: ProxyHandle) -> Self {
        Value::Proxy(handle)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None` is [`Value::None`], `Some(x)` is `x`, as [`to_value`] does.
    fn from(option: Option<T>) -> Self {
        option.map_or(Value::None, Into::into)
    }
}
