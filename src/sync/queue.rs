//! `Queue` and `JoinableQueue`: a FIFO of stored [`Value`]s whose blocking `put`/`get` wait
//! on the server, with server-side timeouts.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use super::error::{flatten, Outcome, SyncError};
use super::support::{deadline, lock, wait_until};
use super::values::{decode, encode};
use crate::{shared, Caller, Value};

struct QueueState {
    items: VecDeque<Value>,
    /// Items put and not yet marked done (for `join`).
    unfinished: usize,
}

/// A FIFO queue (Python's `manager.Queue(maxsize)` and `manager.JoinableQueue(maxsize)`:
/// both have `task_done` and `join`). `maxsize` 0 means unbounded.
///
/// An item is stored as a copy, as in Python; a proxy put in the queue stays a live
/// reference to its object until it is taken out (or the queue is freed).
///
/// A `get` whose client disconnects while it waits takes nothing: the next item goes to
/// the next getter (Python loses it).
pub struct Queue {
    /// Shared with the undo of a `get` whose item was not taken.
    state: Arc<Mutex<QueueState>>,
    maxsize: usize,
    /// Woken (one at a time) when an item arrives.
    not_empty: Arc<Notify>,
    /// Woken (one at a time) when an item leaves a bounded queue.
    not_full: Notify,
    /// Woken (all) when the last unfinished item is marked done.
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
            state: Arc::new(Mutex::new(QueueState {
                items: VecDeque::new(),
                unfinished: 0,
            })),
            maxsize,
            not_empty: Arc::new(Notify::new()),
            not_full: Notify::new(),
            all_done: Notify::new(),
        }
    }

    fn is_full(&self, state: &QueueState) -> bool {
        self.maxsize > 0 && state.items.len() >= self.maxsize
    }
}

#[shared(proxy = QueueCalls, name = "Queue", errors = value)]
impl Queue {
    /// Add `item`; when full, wait (at most `timeout`) if `block`, else fail with `Full`.
    ///
    /// Cancel safety: dropped while it waits for room, it adds nothing. A put that returned
    /// `Ok` is not undone, even if its caller never takes the result.
    pub async fn put(&self, item: Value, block: bool, timeout: Option<Duration>) -> Outcome<()> {
        let deadline = deadline(timeout);
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
            if !block || !wait_until(notified, deadline).await {
                return Err(SyncError::Full);
            }
        }
    }

    /// Take the oldest item; when empty, wait (at most `timeout`) if `block`, else fail
    /// with `Empty`.
    ///
    /// Cancel safety: dropped while it waits, it takes nothing, and the next item goes to
    /// the next getter. Through a proxy, an item it took for a call whose result the client
    /// never takes (it dropped the call, or disconnected) goes back to the front of the
    /// queue.
    pub async fn get(&self, block: bool, timeout: Option<Duration>) -> Outcome<Value> {
        let deadline = deadline(timeout);
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
                    // A getter that never receives the item (it dropped the call, or died
                    // while the reply was on its way) gives it back, first in line.
                    let (state, not_empty, back) =
                        (self.state.clone(), self.not_empty.clone(), item.clone());
                    Caller::undo_unless_taken(move || {
                        lock(&state).items.push_front(back);
                        not_empty.notify_one();
                    });
                    return Ok(item);
                }
            }
            if !block || !wait_until(notified, deadline).await {
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
    ///
    /// Cancel safe: dropping it while it waits has no effect on the queue.
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

/// A typed proxy for a shared [`Queue`] of `T` (from [`SyncManager::queue`] or
/// [`SyncManager::joinable_queue`]).
///
/// `T` can hold proxies: a queue of `ListProxy<i64>` passes live lists around.
///
/// # Cancel safety
/// Dropping the future of a waiting `get` (or `put`) withdraws it: the client sends the
/// server a cancel for that request, and a `get` stopped before an item reached it takes
/// nothing, so the next item goes to the next getter. A `get` that had already taken its
/// item when its future was dropped gives it back, first in line (the server keeps it until
/// the client takes the result). A closed connection (a client that exits or dies)
/// withdraws all its pending calls the same way. A `put` that completed is not undone.
///
/// [`SyncManager::queue`]: super::SyncManager::queue
/// [`SyncManager::joinable_queue`]: super::SyncManager::joinable_queue
#[derive(crate::Proxy)]
#[proxy(target = Queue, clone, debug)]
pub struct QueueProxy<T> {
    #[proxy(inner)]
    raw: QueueCalls,
    _types: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    /// Add an item, waiting while the queue is full.
    ///
    /// Cancel safety: dropping the future while it waits for room withdraws it, and the
    /// item is not added (unless the server added it just before the cancel reached it).
    /// A put that completed on the server is not undone, even if its reply is dropped.
    pub async fn put(&self, item: T) -> Result<(), SyncError> {
        flatten(self.raw.put(encode(&item)?, true, None).await)
    }

    /// Add an item, waiting at most `timeout` (if `block`) while the queue is full;
    /// [`SyncError::Full`] otherwise.
    ///
    /// Cancel safety: as [`put`](Self::put): dropped while it waits, it adds nothing; a
    /// completed put is not undone.
    pub async fn put_with(
        &self,
        item: T,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), SyncError> {
        flatten(self.raw.put(encode(&item)?, block, timeout).await)
    }

    /// Add an item only if there is room now.
    ///
    /// Cancel safety: once polled, the item is added (if there is room) even if the future
    /// is dropped; only the result is lost.
    pub async fn put_nowait(&self, item: T) -> Result<(), SyncError> {
        self.put_with(item, false, None).await
    }

    /// Take the oldest item, waiting while the queue is empty.
    ///
    /// Cancel safe: dropping the future while it waits withdraws it, and it takes nothing
    /// (the next item goes to the next getter); an item the server had already taken for
    /// it is handed back, first in line, as the cancel reaches the server. No item is lost.
    pub async fn get(&self) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(true, None).await)?)
    }

    /// Take the oldest item, waiting at most `timeout` (if `block`); [`SyncError::Empty`]
    /// otherwise.
    ///
    /// Cancel safe, as [`get`](Self::get): an item taken for a dropped call goes back to
    /// the front of the queue.
    pub async fn get_with(&self, block: bool, timeout: Option<Duration>) -> Result<T, SyncError> {
        decode(flatten(self.raw.get(block, timeout).await)?)
    }

    /// Take an item only if one is there now.
    ///
    /// Cancel safe, as [`get`](Self::get): an item taken for a dropped call goes back to
    /// the front of the queue.
    pub async fn get_nowait(&self) -> Result<T, SyncError> {
        self.get_with(false, None).await
    }

    /// How many items are queued.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn qsize(&self) -> Result<usize, SyncError> {
        Ok(self.raw.qsize().await?)
    }

    /// Whether it is empty.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn empty(&self) -> Result<bool, SyncError> {
        Ok(self.raw.empty().await?)
    }

    /// Whether it is full.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn full(&self) -> Result<bool, SyncError> {
        Ok(self.raw.full().await?)
    }

    /// Mark one item as processed ([`SyncError::TooManyTaskDone`] if none is pending).
    ///
    /// Cancel safety: once polled, the item is marked done even if the future is dropped;
    /// only the result is lost.
    pub async fn task_done(&self) -> Result<(), SyncError> {
        flatten(self.raw.task_done().await)
    }

    /// Wait until every item put has been marked done.
    ///
    /// Cancel safe: dropping it while it waits has no effect on the queue.
    pub async fn join(&self) -> Result<(), SyncError> {
        Ok(self.raw.join().await?)
    }
}
