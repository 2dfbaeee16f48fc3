//! `list`: a sequence of stored [`Value`]s with Python's indexes and slices.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use std::sync::{Arc, Mutex};

use super::error::{flatten, Outcome, SyncError};
use super::support::lock;
use super::values::{
    decode, decode_all, encode, encode_all, not_found, position, repr_list, slice_indices,
};
use crate::{shared, Caller, Value};

/// A list (Python's `manager.list()`). Indexes may be negative, counting from the end.
///
/// Items are stored as copies, as in Python: changing an item you read back does not
/// change the stored one; [`set`](ListProxy::set) it again instead. A *proxy* stored as an
/// item stays a live reference: a list of `QueueProxy` keeps those queues alive and
/// shared, and reading the item back gives a working proxy of the same queue.
pub struct List {
    /// Behind a lock of its own (every method takes `&self`), so that a `pop` can be
    /// undone after it returned, when its caller never takes the item.
    items: Arc<Mutex<Items>>,
}

/// A list's items.
struct Items {
    items: Vec<Value>,
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for List {
    /// `[1, "a", None]`, like Python's repr.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        repr_list(&self.lock().items, &mut out);
        f.write_str(&out)
    }
}

impl List {
    /// A list of `items`.
    pub fn new(items: Vec<Value>) -> Self {
        List {
            items: Arc::new(Mutex::new(Items { items })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Items> {
        lock(&self.items)
    }
}

#[shared(proxy = ListCalls, name = "list", errors = value)]
impl List {
    /// Add `item` at the end.
    pub fn append(&self, item: Value) {
        self.lock().append(item)
    }

    /// Add every item of `items` at the end.
    pub fn extend(&self, items: Vec<Value>) {
        self.lock().extend(items)
    }

    /// Insert `item` before `index` (clamped, as in Python).
    pub fn insert(&self, index: i64, item: Value) {
        self.lock().insert(index, item)
    }

    /// Remove and return the item at `index` (default: the last).
    pub fn pop(&self, index: Option<i64>) -> Outcome<Value> {
        let (at, item) = self.lock().pop(index)?;
        let items = self.items.clone();
        let back = item.clone();
        Caller::undo_unless_taken(move || {
            let mut items = lock(&items);
            let at = at.min(items.items.len());
            items.items.insert(at, back);
        });
        Ok(item)
    }

    /// The position of the first item equal to `item`.
    pub fn index(&self, item: Value) -> Outcome<usize> {
        self.lock().index(item)
    }

    /// How many items equal `item`.
    pub fn count(&self, item: Value) -> usize {
        self.lock().count(item)
    }

    /// Remove the first item equal to `item`.
    pub fn remove(&self, item: Value) -> Outcome<()> {
        self.lock().remove(item)
    }

    /// Reverse in place.
    pub fn reverse(&self) {
        self.lock().reverse()
    }

    /// Sort in place (by value), optionally descending. Stable, as Python's: equal items
    /// keep their order either way.
    pub fn sort(&self, reverse: bool) {
        self.lock().sort(reverse)
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The item at `index` (`l[index]`).
    pub fn get(&self, index: i64) -> Outcome<Value> {
        self.lock().get(index)
    }

    /// Replace the item at `index` (`l[index] = item`).
    pub fn set(&self, index: i64, item: Value) -> Outcome<()> {
        self.lock().set(index, item)
    }

    /// The items from `start` to `stop` (`l[start:stop]`).
    pub fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Vec<Value> {
        self.lock().slice(start, stop)
    }

    /// Every item: one call for the whole list.
    pub fn to_vec(&self) -> Vec<Value> {
        self.lock().to_vec()
    }

    /// Remove every item.
    pub fn clear(&self) {
        self.lock().clear()
    }

    /// `l[start:stop:step] = items`, with Python's slice bounds (negative counts from the
    /// end, clamped). With a step of 1 the slice is replaced by any number of items; with
    /// another step there must be one item per position selected. A step of 0 is refused.
    pub fn assign_slice(
        &self,
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
        items: Vec<Value>,
    ) -> Outcome<()> {
        self.lock().assign_slice(start, stop, step, items)
    }

    /// `del l[start:stop:step]`, with Python's slice bounds. A step of 0 is refused.
    pub fn delete_slice(&self, start: Option<i64>, stop: Option<i64>, step: i64) -> Outcome<()> {
        self.lock().delete_slice(start, stop, step)
    }

    /// Repeat the items in place, `times` times in all (Python's `l *= times`; 0 or less
    /// empties it). Refused past 2^24 items.
    pub fn repeat(&self, times: i64) -> Outcome<()> {
        self.lock().repeat(times)
    }
}

/// The list's items and the operations on them, run under its lock.
impl Items {
    /// `start..stop` of a slice, clamped to the list as Python does.
    fn bounds(&self, start: Option<i64>, stop: Option<i64>) -> (usize, usize) {
        let len = self.items.len() as i64;
        let clamp = |i: i64| (if i < 0 { i + len } else { i }).clamp(0, len) as usize;
        let start = start.map_or(0, clamp);
        let stop = stop.map_or(len as usize, clamp);
        (start, stop.max(start))
    }

    /// Add `item` at the end.
    fn append(&mut self, item: Value) {
        self.items.push(item);
    }

    /// Add every item of `items` at the end.
    fn extend(&mut self, items: Vec<Value>) {
        self.items.extend(items);
    }

    /// Insert `item` before `index` (clamped, as in Python).
    fn insert(&mut self, index: i64, item: Value) {
        let (at, _) = self.bounds(Some(index), None);
        self.items.insert(at, item);
    }

    /// Remove and return the item at `index` (default: the last).
    fn pop(&mut self, index: Option<i64>) -> Outcome<(usize, Value)> {
        if self.items.is_empty() {
            return Err(SyncError::OutOfRange("pop from empty list".into()));
        }
        let at = position(index.unwrap_or(-1), self.items.len())?;
        Ok((at, self.items.remove(at)))
    }

    /// The position of the first item equal to `item`.
    fn index(&self, item: Value) -> Outcome<usize> {
        self.items
            .iter()
            .position(|v| *v == item)
            .ok_or_else(|| not_found(&item))
    }

    /// How many items equal `item`.
    fn count(&self, item: Value) -> usize {
        self.items.iter().filter(|v| **v == item).count()
    }

    /// Remove the first item equal to `item`.
    fn remove(&mut self, item: Value) -> Outcome<()> {
        let at = self.index(item)?;
        self.items.remove(at);
        Ok(())
    }

    /// Reverse in place.
    fn reverse(&mut self) {
        self.items.reverse();
    }

    /// Sort in place (by value), optionally descending. Stable, as Python's: equal items
    /// keep their order either way.
    fn sort(&mut self, reverse: bool) {
        if reverse {
            self.items.sort_by(|a, b| b.cmp(a));
        } else {
            self.items.sort();
        }
    }

    /// The number of items.
    fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item at `index` (`l[index]`).
    fn get(&self, index: i64) -> Outcome<Value> {
        Ok(self.items[position(index, self.items.len())?].clone())
    }

    /// Replace the item at `index` (`l[index] = item`).
    fn set(&mut self, index: i64, item: Value) -> Outcome<()> {
        let at = position(index, self.items.len())?;
        self.items[at] = item;
        Ok(())
    }

    /// The items from `start` to `stop` (`l[start:stop]`).
    fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Vec<Value> {
        let (start, stop) = self.bounds(start, stop);
        self.items[start..stop].to_vec()
    }

    /// Every item: one call for the whole list.
    fn to_vec(&self) -> Vec<Value> {
        self.items.clone()
    }

    /// Remove every item.
    fn clear(&mut self) {
        self.items.clear();
    }

    /// `l[start:stop:step] = items`, with Python's slice bounds (negative counts from the
    /// end, clamped). With a step of 1 the slice is replaced by any number of items; with
    /// another step there must be one item per position selected. A step of 0 is refused.
    fn assign_slice(
        &mut self,
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
        items: Vec<Value>,
    ) -> Outcome<()> {
        if step == 1 {
            let (start, stop) = self.bounds(start, stop);
            self.items.splice(start..stop, items);
            return Ok(());
        }
        if step == 0 {
            return Err(SyncError::Invalid("slice step cannot be zero".into()));
        }
        let at = slice_indices(self.items.len(), start, stop, step);
        if at.len() != items.len() {
            return Err(SyncError::Invalid(format!(
                "attempt to assign sequence of size {} to extended slice of size {}",
                items.len(),
                at.len()
            )));
        }
        for (i, item) in at.into_iter().zip(items) {
            self.items[i] = item;
        }
        Ok(())
    }

    /// `del l[start:stop:step]`, with Python's slice bounds. A step of 0 is refused.
    fn delete_slice(&mut self, start: Option<i64>, stop: Option<i64>, step: i64) -> Outcome<()> {
        if step == 0 {
            return Err(SyncError::Invalid("slice step cannot be zero".into()));
        }
        let mut at = slice_indices(self.items.len(), start, stop, step);
        at.sort_unstable();
        let mut i = 0;
        self.items.retain(|_| {
            let keep = at.binary_search(&i).is_err();
            i += 1;
            keep
        });
        Ok(())
    }

    /// Repeat the items in place, `times` times in all (Python's `l *= times`; 0 or less
    /// empties it). Refused past 2^24 items.
    fn repeat(&mut self, times: i64) -> Outcome<()> {
        let times = usize::try_from(times).unwrap_or(0);
        if self.items.len().saturating_mul(times) > 1 << 24 {
            return Err(SyncError::Invalid(
                "the repeated list would be too large".into(),
            ));
        }
        let once = std::mem::take(&mut self.items);
        self.items = (0..times).flat_map(|_| once.iter().cloned()).collect();
        Ok(())
    }
}

/// A typed proxy for a shared [`List`] of `T` (from [`SyncManager::list`] or
/// [`SyncManager::list_from`]).
///
/// Items read back are copies, except proxies, which stay live (see [`List`]). Iterate
/// over [`to_vec`](Self::to_vec) or a [`slice`](Self::slice): one round trip for all of
/// them.
///
/// [`SyncManager::list`]: super::SyncManager::list
/// [`SyncManager::list_from`]: super::SyncManager::list_from
#[derive(crate::Proxy)]
#[proxy(target = List, clone, debug)]
pub struct ListProxy<T> {
    #[proxy(inner)]
    raw: ListCalls,
    _types: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Add `item` at the end.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn append(&self, item: &T) -> Result<(), SyncError> {
        Ok(self.raw.append(encode(item)?).await?)
    }

    /// Add every item at the end.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), SyncError> {
        Ok(self.raw.extend(encode_all(items)?).await?)
    }

    /// Insert `item` before `index`.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn insert(&self, index: i64, item: &T) -> Result<(), SyncError> {
        Ok(self.raw.insert(index, encode(item)?).await?)
    }

    /// Remove and return the last item ([`SyncError::OutOfRange`] if empty).
    ///
    /// Cancel safe: an item removed for a call dropped before it took it goes back where it
    /// was, as a queue's `get` gives its item back.
    pub async fn pop(&self) -> Result<T, SyncError> {
        decode(flatten(self.raw.pop(None).await)?)
    }

    /// Remove and return the item at `index` ([`SyncError::OutOfRange`] if none).
    ///
    /// Cancel safe: an item removed for a call dropped before it took it goes back where it
    /// was, as a queue's `get` gives its item back.
    pub async fn pop_at(&self, index: i64) -> Result<T, SyncError> {
        decode(flatten(self.raw.pop(Some(index)).await)?)
    }

    /// The position of the first item equal to `item` ([`SyncError::NotFound`] if none).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn index(&self, item: &T) -> Result<usize, SyncError> {
        flatten(self.raw.index(encode(item)?).await)
    }

    /// How many items equal `item`.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn count(&self, item: &T) -> Result<usize, SyncError> {
        Ok(self.raw.count(encode(item)?).await?)
    }

    /// Remove the first item equal to `item` ([`SyncError::NotFound`] if none).
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn remove(&self, item: &T) -> Result<(), SyncError> {
        flatten(self.raw.remove(encode(item)?).await)
    }

    /// Reverse in place.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn reverse(&self) -> Result<(), SyncError> {
        Ok(self.raw.reverse().await?)
    }

    /// Sort in place by value (for numbers and strings, their natural order).
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn sort(&self, reverse: bool) -> Result<(), SyncError> {
        Ok(self.raw.sort(reverse).await?)
    }

    /// The number of items.
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

    /// The item at `index` (negative counts from the end; [`SyncError::OutOfRange`]
    /// outside the list).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn get(&self, index: i64) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(index).await)?)
    }

    /// Replace the item at `index` ([`SyncError::OutOfRange`] outside the list).
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn set(&self, index: i64, item: &T) -> Result<(), SyncError> {
        flatten(self.raw.set(index, encode(item)?).await)
    }

    /// The items from `start` to `stop` (`l[start:stop]`; `None` for an open end,
    /// negative counts from the end), in one call.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Result<Vec<T>, SyncError> {
        decode_all(self.raw.slice(start, stop).await?)
    }

    /// Every item, in one call (iterate over this rather than calling per index).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn to_vec(&self) -> Result<Vec<T>, SyncError> {
        decode_all(self.raw.to_vec().await?)
    }

    /// Remove every item.
    ///
    /// Cancel safety: once polled, the change may be made even if the future is dropped (a
    /// cancel stops it only while it still waits behind another call on the object); only
    /// the result is lost.
    pub async fn clear(&self) -> Result<(), SyncError> {
        Ok(self.raw.clear().await?)
    }
}
