//! Queues, dicts, lists, namespaces and value cells. The server stores every element as a
//! format-neutral [`Value`]; the typed proxies convert on the client.
//!
//! Storing a plain value copies it, as in Python: changing a list you got back does not
//! change the shared one. Storing a *proxy* stores a live reference: a dict of lists or a
//! list of queues keeps those objects alive and shared.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::error::{flatten, Outcome, SyncError};
use crate::{from_value, shared, to_value, Proxy, ProxyHandle, Value};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, SyncError> {
    to_value(value).map_err(|e| SyncError::Invalid(e.to_string()))
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, SyncError> {
    from_value(value).map_err(|e| SyncError::Invalid(e.to_string()))
}

/// Python-like `repr` of a stored value, for `Display` of containers.
fn repr(value: &Value, out: &mut String) {
    match value {
        Value::None => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Str(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Bytes(b) => {
            let _ = write!(out, "b{:?}", String::from_utf8_lossy(b));
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(k, out);
                out.push_str(": ");
                repr(v, out);
            }
            out.push('}');
        }
        Value::Variant(name, payload) => {
            out.push_str(name);
            if !payload.is_none() {
                out.push('(');
                repr(payload, out);
                out.push(')');
            }
        }
        Value::Proxy(p) => {
            let _ = write!(out, "<proxy {} {}>", p.typeid(), p.id());
        }
        other => {
            let _ = write!(out, "{other:?}");
        }
    }
}

/// Normalise a Python-style index (negative counts from the end).
fn position(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { index + len } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// Implement `Proxy`, `Clone`, `Debug` and serde for a typed proxy over a generated one.
macro_rules! typed_proxy {
    ($proxy:ident<$($t:ident),+>, $raw:ident, $target:ty) => {
        impl<$($t),+> Clone for $proxy<$($t),+> {
            fn clone(&self) -> Self {
                Self { raw: self.raw.clone(), _types: PhantomData }
            }
        }

        impl<$($t),+> std::fmt::Debug for $proxy<$($t),+> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.raw, f)
            }
        }

        impl<$($t: 'static),+> Proxy for $proxy<$($t),+> {
            type Target = $target;
            fn from_handle(handle: ProxyHandle) -> Self {
                Self { raw: <$raw as Proxy>::from_handle(handle), _types: PhantomData }
            }
            fn handle(&self) -> &ProxyHandle {
                Proxy::handle(&self.raw)
            }
        }

        impl<$($t),+> serde::Serialize for $proxy<$($t),+> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.raw.serialize(s)
            }
        }

        impl<'de, $($t),+> serde::Deserialize<'de> for $proxy<$($t),+> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $raw::deserialize(d).map(|raw| Self { raw, _types: PhantomData })
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// Queue

struct QueueState {
    items: VecDeque<Value>,
    /// Items put and not yet marked done (for `join`).
    unfinished: usize,
}

/// A FIFO queue (Python's `manager.Queue(maxsize)` and `manager.JoinableQueue(maxsize)`:
/// both have `task_done` and `join`). `maxsize` 0 means unbounded.
///
/// A `get` whose client disconnects while it waits takes nothing: the next item goes to
/// the next getter (Python loses it).
pub struct Queue {
    state: Mutex<QueueState>,
    maxsize: usize,
    not_empty: Notify,
    not_full: Notify,
    all_done: Notify,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("len", &lock(&self.state).items.len())
            .field("maxsize", &self.maxsize)
            .finish()
    }
}

impl Queue {
    /// A queue holding at most `maxsize` items (0: unbounded).
    pub fn new(maxsize: usize) -> Self {
        Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                unfinished: 0,
            }),
            maxsize,
            not_empty: Notify::new(),
            not_full: Notify::new(),
            all_done: Notify::new(),
        }
    }

    fn is_full(&self, state: &QueueState) -> bool {
        self.maxsize > 0 && state.items.len() >= self.maxsize
    }
}

async fn wait_for(
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    deadline: Option<Instant>,
) -> bool {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, notified).await.is_ok(),
        None => {
            notified.await;
            true
        }
    }
}

#[shared(proxy = QueueCalls, typeid = "Queue")]
impl Queue {
    /// Add `item`; when full, wait (at most `timeout`) if `block`, else fail with `Full`.
    pub async fn put(&self, item: Value, block: bool, timeout: Option<Duration>) -> Outcome<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let notified = self.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if !self.is_full(&state) {
                    state.items.push_back(item);
                    state.unfinished += 1;
                    drop(state);
                    self.not_empty.notify_one();
                    return Ok(());
                }
            }
            if !block || !wait_for(notified, deadline).await {
                return Err(SyncError::Full);
            }
        }
    }

    /// Take the oldest item; when empty, wait (at most `timeout`) if `block`, else fail
    /// with `Empty`.
    pub async fn get(&self, block: bool, timeout: Option<Duration>) -> Outcome<Value> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let notified = self.not_empty.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if let Some(item) = state.items.pop_front() {
                    let more = !state.items.is_empty();
                    drop(state);
                    self.not_full.notify_one();
                    if more {
                        // Pass the wake-up on if another getter may be waiting.
                        self.not_empty.notify_one();
                    }
                    return Ok(item);
                }
            }
            if !block || !wait_for(notified, deadline).await {
                return Err(SyncError::Empty);
            }
        }
    }

    /// How many items are queued.
    pub fn qsize(&self) -> usize {
        lock(&self.state).items.len()
    }

    /// Whether it is empty.
    pub fn empty(&self) -> bool {
        lock(&self.state).items.is_empty()
    }

    /// Whether it is full.
    pub fn full(&self) -> bool {
        self.is_full(&lock(&self.state))
    }

    /// Mark one item as processed.
    pub fn task_done(&self) -> Outcome<()> {
        let mut state = lock(&self.state);
        if state.unfinished == 0 {
            return Err(SyncError::TooManyTaskDone);
        }
        state.unfinished -= 1;
        if state.unfinished == 0 {
            drop(state);
            self.all_done.notify_waiters();
        }
        Ok(())
    }

    /// Wait until every item put has been marked done.
    pub async fn join(&self) {
        loop {
            let notified = self.all_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.state).unfinished == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A typed proxy for a shared [`Queue`] of `T`.
pub struct QueueProxy<T> {
    raw: QueueCalls,
    _types: PhantomData<fn() -> T>,
}
typed_proxy!(QueueProxy<T>, QueueCalls, Queue);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    /// Add an item, waiting while the queue is full.
    pub async fn put(&self, item: T) -> Result<(), SyncError> {
        flatten(self.raw.put(encode(&item)?, true, None).await)
    }

    /// Add an item, waiting at most `timeout` (if `block`) while the queue is full;
    /// [`SyncError::Full`] otherwise.
    pub async fn put_with(
        &self,
        item: T,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), SyncError> {
        flatten(self.raw.put(encode(&item)?, block, timeout).await)
    }

    /// Add an item only if there is room now.
    pub async fn put_nowait(&self, item: T) -> Result<(), SyncError> {
        self.put_with(item, false, None).await
    }

    /// Take the oldest item, waiting while the queue is empty.
    pub async fn get(&self) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(true, None).await)?)
    }

    /// Take the oldest item, waiting at most `timeout` (if `block`); [`SyncError::Empty`]
    /// otherwise.
    pub async fn get_with(&self, block: bool, timeout: Option<Duration>) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(block, timeout).await)?)
    }

    /// Take an item only if one is there now.
    pub async fn get_nowait(&self) -> Result<T, SyncError> {
        self.get_with(false, None).await
    }

    /// How many items are queued.
    pub async fn qsize(&self) -> Result<usize, SyncError> {
        Ok(self.raw.qsize().await?)
    }

    /// Whether it is empty.
    pub async fn empty(&self) -> Result<bool, SyncError> {
        Ok(self.raw.empty().await?)
    }

    /// Whether it is full.
    pub async fn full(&self) -> Result<bool, SyncError> {
        Ok(self.raw.full().await?)
    }

    /// Mark one item as processed ([`SyncError::TooManyTaskDone`] if none is pending).
    pub async fn task_done(&self) -> Result<(), SyncError> {
        flatten(self.raw.task_done().await)
    }

    /// Wait until every item put has been marked done.
    pub async fn join(&self) -> Result<(), SyncError> {
        Ok(self.raw.join().await?)
    }
}

// ---------------------------------------------------------------------------------------
// Dict

/// A dictionary (Python's `manager.dict()`), in insertion order, with keys compared by
/// value.
pub struct Dict {
    map: IndexMap<Value, Value>,
}

impl std::fmt::Debug for Dict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Dict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        repr(
            &Value::Map(
                self.map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            &mut out,
        );
        f.write_str(&out)
    }
}

impl Dict {
    /// A dictionary with `entries`.
    pub fn new(entries: Vec<(Value, Value)>) -> Self {
        Dict {
            map: entries.into_iter().collect(),
        }
    }
}

#[shared(proxy = DictCalls, typeid = "dict")]
impl Dict {
    /// The value of `key`, if present.
    pub fn get(&self, key: Value) -> Option<Value> {
        self.map.get(&key).cloned()
    }

    /// Set `key` to `value`.
    pub fn set(&mut self, key: Value, value: Value) {
        self.map.insert(key, value);
    }

    /// Remove `key` (`del d[key]`).
    pub fn delete(&mut self, key: Value) -> Outcome<()> {
        self.map
            .shift_remove(&key)
            .map(|_| ())
            .ok_or_else(|| not_found(&key))
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: Value) -> bool {
        self.map.contains_key(&key)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<Value> {
        self.map.keys().cloned().collect()
    }

    /// Every value.
    pub fn values(&self) -> Vec<Value> {
        self.map.values().cloned().collect()
    }

    /// Every entry: one call for the whole dict.
    pub fn items(&self) -> Vec<(Value, Value)> {
        self.map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Set every entry of `entries`.
    pub fn update(&mut self, entries: Vec<(Value, Value)>) {
        self.map.extend(entries);
    }

    /// Remove `key` and return its value, or `default`, or fail.
    pub fn pop(&mut self, key: Value, default: Option<Value>) -> Outcome<Value> {
        match self.map.shift_remove(&key) {
            Some(v) => Ok(v),
            None => default.ok_or_else(|| not_found(&key)),
        }
    }

    /// Remove and return the last entry.
    pub fn popitem(&mut self) -> Outcome<(Value, Value)> {
        self.map
            .pop()
            .ok_or_else(|| SyncError::NotFound("popitem(): dictionary is empty".into()))
    }

    /// The value of `key`, inserting `default` first if absent.
    pub fn setdefault(&mut self, key: Value, default: Value) -> Value {
        self.map.entry(key).or_insert(default).clone()
    }

    /// Remove every entry.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

fn not_found(key: &Value) -> SyncError {
    let mut out = String::new();
    repr(key, &mut out);
    SyncError::NotFound(out)
}

/// A typed proxy for a shared [`Dict`] from `K` to `V`.
pub struct DictProxy<K, V> {
    raw: DictCalls,
    _types: PhantomData<fn() -> (K, V)>,
}
typed_proxy!(DictProxy<K, V>, DictCalls, Dict);

fn decode_pairs<K: DeserializeOwned, V: DeserializeOwned>(
    pairs: Vec<(Value, Value)>,
) -> Result<Vec<(K, V)>, SyncError> {
    pairs
        .into_iter()
        .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
        .collect()
}

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The value of `key`, if present (`d.get(key)`).
    pub async fn get(&self, key: &K) -> Result<Option<V>, SyncError> {
        self.raw.get(encode(key)?).await?.map(decode).transpose()
    }

    /// Set `key` to `value` (`d[key] = value`).
    pub async fn set(&self, key: &K, value: &V) -> Result<(), SyncError> {
        Ok(self.raw.set(encode(key)?, encode(value)?).await?)
    }

    /// Remove `key` (`del d[key]`); [`SyncError::NotFound`] if absent.
    pub async fn delete(&self, key: &K) -> Result<(), SyncError> {
        flatten(self.raw.delete(encode(key)?).await)
    }

    /// Whether `key` is present (`key in d`).
    pub async fn contains(&self, key: &K) -> Result<bool, SyncError> {
        Ok(self.raw.contains(encode(key)?).await?)
    }

    /// The number of entries.
    pub async fn len(&self) -> Result<usize, SyncError> {
        Ok(self.raw.len().await?)
    }

    /// Whether it is empty.
    pub async fn is_empty(&self) -> Result<bool, SyncError> {
        Ok(self.raw.is_empty().await?)
    }

    /// Every key, in one call.
    pub async fn keys(&self) -> Result<Vec<K>, SyncError> {
        self.raw.keys().await?.into_iter().map(decode).collect()
    }

    /// Every value, in one call.
    pub async fn values(&self) -> Result<Vec<V>, SyncError> {
        self.raw.values().await?.into_iter().map(decode).collect()
    }

    /// Every entry, in one call (iterate over this rather than calling per key).
    pub async fn items(&self) -> Result<Vec<(K, V)>, SyncError> {
        decode_pairs(self.raw.items().await?)
    }

    /// Set every entry of `entries`.
    pub async fn update(&self, entries: impl IntoIterator<Item = (K, V)>) -> Result<(), SyncError> {
        let entries = entries
            .into_iter()
            .map(|(k, v)| Ok((encode(&k)?, encode(&v)?)))
            .collect::<Result<Vec<_>, SyncError>>()?;
        Ok(self.raw.update(entries).await?)
    }

    /// Remove `key` and return its value ([`SyncError::NotFound`] if absent).
    pub async fn pop(&self, key: &K) -> Result<V, SyncError> {
        decode(flatten(self.raw.pop(encode(key)?, None).await)?)
    }

    /// Remove `key` and return its value, or `default` if absent.
    pub async fn pop_or(&self, key: &K, default: V) -> Result<V, SyncError> {
        decode(flatten(
            self.raw.pop(encode(key)?, Some(encode(&default)?)).await,
        )?)
    }

    /// Remove and return the last entry.
    pub async fn popitem(&self) -> Result<(K, V), SyncError> {
        let (k, v) = flatten(self.raw.popitem().await)?;
        Ok((decode(k)?, decode(v)?))
    }

    /// The value of `key`, inserting `default` first if absent.
    pub async fn setdefault(&self, key: &K, default: &V) -> Result<V, SyncError> {
        decode(self.raw.setdefault(encode(key)?, encode(default)?).await?)
    }

    /// Remove every entry.
    pub async fn clear(&self) -> Result<(), SyncError> {
        Ok(self.raw.clear().await?)
    }

    /// A local copy of the whole dict (`d.copy()`), in insertion order.
    pub async fn copy(&self) -> Result<Vec<(K, V)>, SyncError> {
        self.items().await
    }
}

// ---------------------------------------------------------------------------------------
// List

/// A list (Python's `manager.list()`). Indexes may be negative, counting from the end.
pub struct List {
    items: Vec<Value>,
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        repr(&Value::List(self.items.clone()), &mut out);
        f.write_str(&out)
    }
}

impl List {
    /// A list of `items`.
    pub fn new(items: Vec<Value>) -> Self {
        List { items }
    }

    fn index_of(&self, index: i64) -> Outcome<usize> {
        position(index, self.items.len()).ok_or_else(|| SyncError::OutOfRange(index.to_string()))
    }

    fn bounds(&self, start: Option<i64>, stop: Option<i64>) -> (usize, usize) {
        let len = self.items.len() as i64;
        let clamp = |i: i64| (if i < 0 { i + len } else { i }).clamp(0, len) as usize;
        let start = start.map_or(0, clamp);
        let stop = stop.map_or(len as usize, clamp);
        (start, stop.max(start))
    }
}

#[shared(proxy = ListCalls, typeid = "list")]
impl List {
    /// Add `item` at the end.
    pub fn append(&mut self, item: Value) {
        self.items.push(item);
    }

    /// Add every item of `items` at the end.
    pub fn extend(&mut self, items: Vec<Value>) {
        self.items.extend(items);
    }

    /// Insert `item` before `index` (clamped, as in Python).
    pub fn insert(&mut self, index: i64, item: Value) {
        let (at, _) = self.bounds(Some(index), None);
        self.items.insert(at, item);
    }

    /// Remove and return the item at `index` (default: the last).
    pub fn pop(&mut self, index: Option<i64>) -> Outcome<Value> {
        if self.items.is_empty() {
            return Err(SyncError::OutOfRange("pop from empty list".into()));
        }
        let at = self.index_of(index.unwrap_or(-1))?;
        Ok(self.items.remove(at))
    }

    /// The position of the first item equal to `item`.
    pub fn index(&self, item: Value) -> Outcome<usize> {
        self.items
            .iter()
            .position(|v| *v == item)
            .ok_or_else(|| not_found(&item))
    }

    /// How many items equal `item`.
    pub fn count(&self, item: Value) -> usize {
        self.items.iter().filter(|v| **v == item).count()
    }

    /// Remove the first item equal to `item`.
    pub fn remove(&mut self, item: Value) -> Outcome<()> {
        let at = self.index(item)?;
        self.items.remove(at);
        Ok(())
    }

    /// Reverse in place.
    pub fn reverse(&mut self) {
        self.items.reverse();
    }

    /// Sort in place (by value), optionally descending.
    pub fn sort(&mut self, reverse: bool) {
        self.items.sort();
        if reverse {
            self.items.reverse();
        }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item at `index` (`l[index]`).
    pub fn get(&self, index: i64) -> Outcome<Value> {
        Ok(self.items[self.index_of(index)?].clone())
    }

    /// Replace the item at `index` (`l[index] = item`).
    pub fn set(&mut self, index: i64, item: Value) -> Outcome<()> {
        let at = self.index_of(index)?;
        self.items[at] = item;
        Ok(())
    }

    /// The items from `start` to `stop` (`l[start:stop]`).
    pub fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Vec<Value> {
        let (start, stop) = self.bounds(start, stop);
        self.items[start..stop].to_vec()
    }

    /// Every item: one call for the whole list.
    pub fn to_vec(&self) -> Vec<Value> {
        self.items.clone()
    }

    /// Remove every item.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// A typed proxy for a shared [`List`] of `T`.
pub struct ListProxy<T> {
    raw: ListCalls,
    _types: PhantomData<fn() -> T>,
}
typed_proxy!(ListProxy<T>, ListCalls, List);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Add `item` at the end.
    pub async fn append(&self, item: &T) -> Result<(), SyncError> {
        Ok(self.raw.append(encode(item)?).await?)
    }

    /// Add every item at the end.
    pub async fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), SyncError> {
        let items = items
            .into_iter()
            .map(|i| encode(&i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.raw.extend(items).await?)
    }

    /// Insert `item` before `index`.
    pub async fn insert(&self, index: i64, item: &T) -> Result<(), SyncError> {
        Ok(self.raw.insert(index, encode(item)?).await?)
    }

    /// Remove and return the last item.
    pub async fn pop(&self) -> Result<T, SyncError> {
        decode(flatten(self.raw.pop(None).await)?)
    }

    /// Remove and return the item at `index`.
    pub async fn pop_at(&self, index: i64) -> Result<T, SyncError> {
        decode(flatten(self.raw.pop(Some(index)).await)?)
    }

    /// The position of the first item equal to `item`.
    pub async fn index(&self, item: &T) -> Result<usize, SyncError> {
        flatten(self.raw.index(encode(item)?).await)
    }

    /// How many items equal `item`.
    pub async fn count(&self, item: &T) -> Result<usize, SyncError> {
        Ok(self.raw.count(encode(item)?).await?)
    }

    /// Remove the first item equal to `item`.
    pub async fn remove(&self, item: &T) -> Result<(), SyncError> {
        flatten(self.raw.remove(encode(item)?).await)
    }

    /// Reverse in place.
    pub async fn reverse(&self) -> Result<(), SyncError> {
        Ok(self.raw.reverse().await?)
    }

    /// Sort in place by value (for numbers and strings, their natural order).
    pub async fn sort(&self, reverse: bool) -> Result<(), SyncError> {
        Ok(self.raw.sort(reverse).await?)
    }

    /// The number of items.
    pub async fn len(&self) -> Result<usize, SyncError> {
        Ok(self.raw.len().await?)
    }

    /// Whether it is empty.
    pub async fn is_empty(&self) -> Result<bool, SyncError> {
        Ok(self.raw.is_empty().await?)
    }

    /// The item at `index` (negative counts from the end).
    pub async fn get(&self, index: i64) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(index).await)?)
    }

    /// Replace the item at `index`.
    pub async fn set(&self, index: i64, item: &T) -> Result<(), SyncError> {
        flatten(self.raw.set(index, encode(item)?).await)
    }

    /// The items from `start` to `stop`, in one call.
    pub async fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Result<Vec<T>, SyncError> {
        self.raw
            .slice(start, stop)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    /// Every item, in one call (iterate over this rather than calling per index).
    pub async fn to_vec(&self) -> Result<Vec<T>, SyncError> {
        self.raw.to_vec().await?.into_iter().map(decode).collect()
    }

    /// Remove every item.
    pub async fn clear(&self) -> Result<(), SyncError> {
        Ok(self.raw.clear().await?)
    }
}

// ---------------------------------------------------------------------------------------
// Namespace

/// Named attributes (Python's `manager.Namespace()`); `Display` shows them all.
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
    /// `Namespace(a=1, b="x")`, like Python's repr.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::from("Namespace(");
        for (i, (name, value)) in self.attrs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(name);
            out.push('=');
            repr(value, &mut out);
        }
        out.push(')');
        f.write_str(&out)
    }
}

#[shared(proxy = NamespaceCalls, typeid = "Namespace")]
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
#[derive(Clone, Debug)]
pub struct NamespaceProxy {
    raw: NamespaceCalls,
}
super::locks::wrap_proxy!(NamespaceProxy, NamespaceCalls, Namespace);

impl NamespaceProxy {
    fn wrap(raw: NamespaceCalls) -> Self {
        NamespaceProxy { raw }
    }

    /// The attribute `name` ([`SyncError::NotFound`] if unset).
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(name.to_owned()).await)?)
    }

    /// Set the attribute `name`.
    pub async fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), SyncError> {
        Ok(self.raw.set(name.to_owned(), encode(value)?).await?)
    }

    /// Delete the attribute `name`.
    pub async fn delete(&self, name: &str) -> Result<(), SyncError> {
        flatten(self.raw.delete(name.to_owned()).await)
    }

    /// Every attribute name.
    pub async fn names(&self) -> Result<Vec<String>, SyncError> {
        Ok(self.raw.names().await?)
    }

    /// `Namespace(a=1, b="x")`, fetched from the server.
    pub async fn repr(&self) -> Result<String, SyncError> {
        Ok(self.raw.referent_to_string().await?)
    }
}

// ---------------------------------------------------------------------------------------
// Value and Array cells

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

#[shared(proxy = ValueCalls, typeid = "Value")]
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
pub struct ValueProxy<T> {
    raw: ValueCalls,
    _types: PhantomData<fn() -> T>,
}
typed_proxy!(ValueProxy<T>, ValueCalls, ValueCell);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The value (`v.value`).
    pub async fn get(&self) -> Result<T, SyncError> {
        decode(self.raw.get().await?)
    }

    /// Replace the value (`v.value = x`).
    pub async fn set(&self, value: &T) -> Result<(), SyncError> {
        Ok(self.raw.set(encode(value)?).await?)
    }
}

/// A fixed-length shared array (Python's `manager.Array(typecode, sequence)`).
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

    fn index_of(&self, index: i64) -> Outcome<usize> {
        position(index, self.items.len()).ok_or_else(|| SyncError::OutOfRange(index.to_string()))
    }
}

#[shared(proxy = ArrayCalls, typeid = "Array")]
impl ArrayCell {
    /// The item at `index`.
    pub fn get(&self, index: i64) -> Outcome<Value> {
        Ok(self.items[self.index_of(index)?].clone())
    }

    /// Replace the item at `index`.
    pub fn set(&mut self, index: i64, value: Value) -> Outcome<()> {
        let at = self.index_of(index)?;
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
pub struct ArrayProxy<T> {
    raw: ArrayCalls,
    _types: PhantomData<fn() -> T>,
}
typed_proxy!(ArrayProxy<T>, ArrayCalls, ArrayCell);

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// The item at `index` (`a[i]`).
    pub async fn get(&self, index: i64) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(index).await)?)
    }

    /// Replace the item at `index` (`a[i] = x`).
    pub async fn set(&self, index: i64, value: &T) -> Result<(), SyncError> {
        flatten(self.raw.set(index, encode(value)?).await)
    }

    /// The length.
    pub async fn len(&self) -> Result<usize, SyncError> {
        Ok(self.raw.len().await?)
    }

    /// Whether it is empty.
    pub async fn is_empty(&self) -> Result<bool, SyncError> {
        Ok(self.raw.is_empty().await?)
    }

    /// Every item, in one call.
    pub async fn to_vec(&self) -> Result<Vec<T>, SyncError> {
        self.raw.to_vec().await?.into_iter().map(decode).collect()
    }
}

/// Convert typed items for a constructor.
pub(crate) fn encode_all<T: Serialize>(
    items: impl IntoIterator<Item = T>,
) -> Result<Vec<Value>, SyncError> {
    items.into_iter().map(|i| encode(&i)).collect()
}
