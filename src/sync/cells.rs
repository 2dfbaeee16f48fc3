//! `Namespace`, `Value` and `Array`: named attributes, a single value and a fixed-length
//! array, each stored as format-neutral [`Value`]s.

use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{flatten, Outcome, SyncError};
use super::values::{decode, decode_all, encode, position, repr};
use crate::{shared, Value};

/// Named attributes (Python's `manager.Namespace()`); `Display` shows them all.
///
/// Attributes are stored as copies, as in Python (`ns.x.append(1)` changes a temporary
/// copy); a proxy stored as an attribute stays a live reference.
pub struct Namespace {
    attrs: IndexMap<String, Value>,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Namespace {
    /// An empty namespace.
    pub fn new() -> Self {
        Namespace {
            attrs: IndexMap::new(),
        }
    }
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Namespace {
    /// `Namespace(a=1, b='x')`, exactly as Python's `repr` of its `Namespace`: the
    /// `name=repr(value)` items sorted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut items: Vec<String> = self
            .attrs
            .iter()
            .map(|(name, value)| {
                let mut item = format!("{name}=");
                repr(value, &mut item);
                item
            })
            .collect();
        items.sort();
        write!(f, "Namespace({})", items.join(", "))
    }
}

#[shared(proxy = NamespaceCalls, name = "Namespace", errors = value)]
impl Namespace {
    /// The attribute `name`.
    pub fn get(&self, name: String) -> Outcome<Value> {
        self.attrs
            .get(&name)
            .cloned()
            .ok_or(SyncError::NotFound(name))
    }

    /// Set the attribute `name`.
    pub fn set(&mut self, name: String, value: Value) {
        self.attrs.insert(name, value);
    }

    /// Delete the attribute `name`.
    pub fn delete(&mut self, name: String) -> Outcome<()> {
        self.attrs
            .shift_remove(&name)
            .map(|_| ())
            .ok_or(SyncError::NotFound(name))
    }

    /// Every attribute name.
    pub fn names(&self) -> Vec<String> {
        self.attrs.keys().cloned().collect()
    }
}

/// A proxy for a shared [`Namespace`]; each attribute has its own type.
#[derive(Clone, Debug, crate::Proxy)]
#[proxy(target = Namespace)]
pub struct NamespaceProxy {
    #[proxy(inner)]
    raw: NamespaceCalls,
}

impl NamespaceProxy {
    /// The attribute `name` ([`SyncError::NotFound`] if unset).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(name.to_owned()).await)?)
    }

    /// Set the attribute `name`.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), SyncError> {
        Ok(self.raw.set(name.to_owned(), encode(value)?).await?)
    }

    /// Delete the attribute `name`.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn delete(&self, name: &str) -> Result<(), SyncError> {
        flatten(self.raw.delete(name.to_owned()).await)
    }

    /// Every attribute name.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn names(&self) -> Result<Vec<String>, SyncError> {
        Ok(self.raw.names().await?)
    }

    /// `Namespace(a=1, b='x')`, fetched from the server (as Python prints it).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn repr(&self) -> Result<String, SyncError> {
        Ok(self.raw.referent_to_string().await?)
    }
}

/// A single shared value (Python's `manager.Value(typecode, value)`; the type is the
/// proxy's `T`, so there is no typecode).
pub struct ValueCell {
    value: Value,
}

impl std::fmt::Debug for ValueCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ValueCell").field(&self.value).finish()
    }
}

impl ValueCell {
    /// A cell holding `value`.
    pub fn new(value: Value) -> Self {
        ValueCell { value }
    }
}

#[shared(proxy = ValueCalls, name = "Value", errors = value)]
impl ValueCell {
    /// The value.
    pub fn get(&self) -> Value {
        self.value.clone()
    }

    /// Replace the value.
    pub fn set(&mut self, value: Value) {
        self.value = value;
    }
}

/// A typed proxy for a shared [`ValueCell`] holding a `T`.
#[derive(crate::Proxy)]
#[proxy(target = ValueCell, clone, debug)]
pub struct ValueProxy<T> {
    #[proxy(inner)]
    raw: ValueCalls,
    _types: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The value (`v.value`).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn get(&self) -> Result<T, SyncError> {
        decode(self.raw.get().await?)
    }

    /// Replace the value (`v.value = x`).
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn set(&self, value: &T) -> Result<(), SyncError> {
        Ok(self.raw.set(encode(value)?).await?)
    }
}

/// A fixed-length shared array (Python's `manager.Array(typecode, sequence)`; the type is
/// the proxy's `T`, so there is no typecode).
pub struct ArrayCell {
    items: Vec<Value>,
}

impl std::fmt::Debug for ArrayCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ArrayCell").field(&self.items.len()).finish()
    }
}

impl ArrayCell {
    /// An array of `items`.
    pub fn new(items: Vec<Value>) -> Self {
        ArrayCell { items }
    }
}

#[shared(proxy = ArrayCalls, name = "Array", errors = value)]
impl ArrayCell {
    /// The item at `index` (negative counts from the end).
    pub fn get(&self, index: i64) -> Outcome<Value> {
        Ok(self.items[position(index, self.items.len())?].clone())
    }

    /// Replace the item at `index`.
    pub fn set(&mut self, index: i64, value: Value) -> Outcome<()> {
        let at = position(index, self.items.len())?;
        self.items[at] = value;
        Ok(())
    }

    /// The length.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every item, in one call.
    pub fn to_vec(&self) -> Vec<Value> {
        self.items.clone()
    }
}

/// A typed proxy for a shared [`ArrayCell`] of `T`.
#[derive(crate::Proxy)]
#[proxy(target = ArrayCell, clone, debug)]
pub struct ArrayProxy<T> {
    #[proxy(inner)]
    raw: ArrayCalls,
    _types: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// The item at `index` (`a[i]`; negative counts from the end;
    /// [`SyncError::OutOfRange`] outside the array).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn get(&self, index: i64) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(index).await)?)
    }

    /// Replace the item at `index` (`a[i] = x`; [`SyncError::OutOfRange`] outside the
    /// array).
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn set(&self, index: i64, value: &T) -> Result<(), SyncError> {
        flatten(self.raw.set(index, encode(value)?).await)
    }

    /// The length.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn len(&self) -> Result<usize, SyncError> {
        Ok(self.raw.len().await?)
    }

    /// Whether it is empty.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn is_empty(&self) -> Result<bool, SyncError> {
        Ok(self.raw.is_empty().await?)
    }

    /// Every item, in one call.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn to_vec(&self) -> Result<Vec<T>, SyncError> {
        decode_all(self.raw.to_vec().await?)
    }
}
