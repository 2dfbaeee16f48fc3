//! `dict`: an insertion-ordered map of stored [`Value`]s, keys compared by value.

use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use std::sync::{Arc, Mutex};

use super::error::{flatten, Outcome, SyncError};
use super::support::lock;
use super::values::{decode, decode_all, encode, encode_pairs, not_found, repr_map};
use crate::{shared, Caller, Value};

/// A dictionary (Python's `manager.dict()`), in insertion order, with keys compared by
/// value (`5u8` and `5i64` are the same key; two maps with the same entries in another
/// order are the same key).
///
/// Keys and values are stored as copies, as in Python: changing a value you read back
/// does not change the stored one (`d[k].append(x)` on a `DictProxy` changes a temporary
/// copy in Python too); set the entry again instead. A *proxy* stored as a value stays a
/// live reference: a dict of `ListProxy` keeps those lists alive and shared, and reading
/// the entry back gives a working proxy of the same list.
pub struct Dict {
    /// Behind a lock of its own (every method takes `&self`): a `pop` can then be undone
    /// after it returned, when its caller never takes the entry.
    map: Arc<Mutex<IndexMap<Value, Value>>>,
}

impl std::fmt::Debug for Dict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Dict {
    /// `{"a": 1, 2: [3]}`, like Python's repr.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        repr_map(&*self.map(), &mut out);
        f.write_str(&out)
    }
}

impl Dict {
    /// A dictionary with `entries` (a later duplicate key wins, as in Python).
    pub fn new(entries: Vec<(Value, Value)>) -> Self {
        Dict {
            map: Arc::new(Mutex::new(entries.into_iter().collect())),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, IndexMap<Value, Value>> {
        lock(&self.map)
    }

    /// If the caller never takes the entry removed from `index`, put it back there
    /// (unless the key was set again meanwhile).
    fn give_back_unless_taken(&self, index: usize, key: Value, value: Value) {
        let map = self.map.clone();
        Caller::undo_unless_taken(move || {
            let mut map = lock(&map);
            if !map.contains_key(&key) {
                let at = index.min(map.len());
                map.shift_insert(at, key, value);
            }
        });
    }
}

#[shared(proxy = DictCalls, name = "dict", errors = value)]
impl Dict {
    /// The value of `key`, if present.
    pub fn get(&self, key: Value) -> Option<Value> {
        self.map().get(&key).cloned()
    }

    /// Set `key` to `value`.
    pub fn set(&self, key: Value, value: Value) {
        self.map().insert(key, value);
    }

    /// Remove `key` (`del d[key]`).
    pub fn delete(&self, key: Value) -> Outcome<()> {
        self.map()
            .shift_remove(&key)
            .map(|_| ())
            .ok_or_else(|| not_found(&key))
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: Value) -> bool {
        self.map().contains_key(&key)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<Value> {
        self.map().keys().cloned().collect()
    }

    /// Every value.
    pub fn values(&self) -> Vec<Value> {
        self.map().values().cloned().collect()
    }

    /// Every entry: one call for the whole dict.
    pub fn items(&self) -> Vec<(Value, Value)> {
        self.map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Set every entry of `entries`.
    pub fn update(&self, entries: Vec<(Value, Value)>) {
        self.map().extend(entries);
    }

    /// Remove `key` and return its value, or `default`, or fail.
    pub fn pop(&self, key: Value, default: Option<Value>) -> Outcome<Value> {
        let removed = self.map().shift_remove_full(&key);
        match removed {
            Some((index, key, value)) => {
                self.give_back_unless_taken(index, key, value.clone());
                Ok(value)
            }
            None => default.ok_or_else(|| not_found(&key)),
        }
    }

    /// Remove and return the last entry.
    pub fn popitem(&self) -> Outcome<(Value, Value)> {
        let popped = {
            let mut map = self.map();
            map.pop().map(|entry| (map.len(), entry))
        };
        let (index, (key, value)) =
            popped.ok_or_else(|| SyncError::NotFound("popitem(): dictionary is empty".into()))?;
        self.give_back_unless_taken(index, key.clone(), value.clone());
        Ok((key, value))
    }

    /// The value of `key`, inserting `default` first if absent.
    pub fn setdefault(&self, key: Value, default: Value) -> Value {
        self.map().entry(key).or_insert(default).clone()
    }

    /// Remove every entry.
    pub fn clear(&self) {
        self.map().clear();
    }
}

/// A typed proxy for a shared [`Dict`] from `K` to `V` (from [`SyncManager::dict`] or
/// [`SyncManager::dict_from`]).
///
/// Values read back are copies, except proxies, which stay live (see [`Dict`]). Iterate
/// over [`items`](Self::items), [`keys`](Self::keys) or [`values`](Self::values): one round
/// trip for the whole dict.
///
/// [`SyncManager::dict`]: super::SyncManager::dict
/// [`SyncManager::dict_from`]: super::SyncManager::dict_from
#[derive(crate::Proxy)]
#[proxy(target = Dict, clone, debug)]
pub struct DictProxy<K, V> {
    #[proxy(inner)]
    raw: DictCalls,
    _types: PhantomData<fn() -> (K, V)>,
}

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
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn get(&self, key: &K) -> Result<Option<V>, SyncError> {
        self.raw.get(encode(key)?).await?.map(decode).transpose()
    }

    /// Set `key` to `value` (`d[key] = value`).
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn set(&self, key: &K, value: &V) -> Result<(), SyncError> {
        Ok(self.raw.set(encode(key)?, encode(value)?).await?)
    }

    /// Remove `key` (`del d[key]`); [`SyncError::NotFound`] if absent.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn delete(&self, key: &K) -> Result<(), SyncError> {
        flatten(self.raw.delete(encode(key)?).await)
    }

    /// Whether `key` is present (`key in d`).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn contains(&self, key: &K) -> Result<bool, SyncError> {
        Ok(self.raw.contains(encode(key)?).await?)
    }

    /// The number of entries.
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

    /// Every key, in one call.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn keys(&self) -> Result<Vec<K>, SyncError> {
        decode_all(self.raw.keys().await?)
    }

    /// Every value, in one call.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn values(&self) -> Result<Vec<V>, SyncError> {
        decode_all(self.raw.values().await?)
    }

    /// Every entry, in one call (iterate over this rather than calling per key).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn items(&self) -> Result<Vec<(K, V)>, SyncError> {
        decode_pairs(self.raw.items().await?)
    }

    /// Set every entry of `entries`.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn update(&self, entries: impl IntoIterator<Item = (K, V)>) -> Result<(), SyncError> {
        Ok(self.raw.update(encode_pairs(entries)?).await?)
    }

    /// Remove `key` and return its value ([`SyncError::NotFound`] if absent).
    ///
    /// Cancel safe: an entry removed for a call dropped before it took it goes back where
    /// it was (unless the key was set again meanwhile), as a queue's `get` gives its item
    /// back.
    pub async fn pop(&self, key: &K) -> Result<V, SyncError> {
        decode(flatten(self.raw.pop(encode(key)?, None).await)?)
    }

    /// Remove `key` and return its value, or `default` if absent.
    ///
    /// Cancel safe: an entry removed for a call dropped before it took it goes back where
    /// it was (unless the key was set again meanwhile), as a queue's `get` gives its item
    /// back.
    pub async fn pop_or(&self, key: &K, default: V) -> Result<V, SyncError> {
        decode(flatten(
            self.raw.pop(encode(key)?, Some(encode(&default)?)).await,
        )?)
    }

    /// Remove and return the last entry ([`SyncError::NotFound`] if empty).
    ///
    /// Cancel safe: an entry removed for a call dropped before it took it goes back where
    /// it was (unless the key was set again meanwhile), as a queue's `get` gives its item
    /// back.
    pub async fn popitem(&self) -> Result<(K, V), SyncError> {
        let (k, v) = flatten(self.raw.popitem().await)?;
        Ok((decode(k)?, decode(v)?))
    }

    /// The value of `key`, inserting `default` first if absent.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn setdefault(&self, key: &K, default: &V) -> Result<V, SyncError> {
        decode(self.raw.setdefault(encode(key)?, encode(default)?).await?)
    }

    /// Remove every entry.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn clear(&self) -> Result<(), SyncError> {
        Ok(self.raw.clear().await?)
    }

    /// A local copy of the whole dict (`d.copy()`), in insertion order.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn copy(&self) -> Result<Vec<(K, V)>, SyncError> {
        self.items().await
    }
}
