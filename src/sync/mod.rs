//! The standard shared types: Python's `SyncManager`.
//!
//! Register them on a server with [`register`] (or run the `managerd` binary), create them
//! from a client with [`SyncManager`]. Every type lives on the server; clients hold typed
//! proxies. Blocking calls (`acquire`, `get`, `wait`) wait on the server without blocking
//! any other client or call, including other calls on the same connection, and their
//! timeouts are enforced by the server.
//!
//! # When a client dies
//! A client whose connection closes (its process exits or is killed) gets everything it
//! held undone, unlike Python:
//! - locks and semaphore permits it acquired are released;
//! - its pending calls are cancelled: a `get` it was blocked in takes nothing (the next item
//!   goes to the next getter), a condition `wait` is withdrawn, and a barrier it was
//!   waiting at is broken for the other parties, exactly as a timeout would break it.
//!
//! A lock, permit or queue item granted to a call whose result its client never takes is
//! given back too: the call was dropped after the server granted it (under a timeout, in
//! a `select!`), or the client died while the reply was on its way (see
//! [`Caller::undo_unless_taken`](crate::Caller::undo_unless_taken)). A barrier `wait` that
//! completed, and a condition `wait` dropped while it re-acquires its lock, are not undone.
//!
//! # Cancel safety
//! Every `async` method of these proxies is one call on the server. Dropping its future:
//! - before its first poll, sends nothing. Once polled, the request goes out even if the
//!   future is dropped at once (a cancel follows it), so a call that does not wait there
//!   (a `set`, an `append`, a `pop`, a `put` with room) may still take effect;
//! - while it waits there (`acquire`, `lock`, `get`, `put` on a full queue, `wait`,
//!   `join`), withdraws it: it takes nothing and holds nothing, except that a barrier
//!   party that had arrived breaks the barrier, as a timeout would, and a condition
//!   `wait` leaves its holder without the lock (the wait had released it);
//! - once it completed, undoes what it acquired or took (`acquire`, `lock`, `get`, a
//!   dict's `pop`, `pop_or` and `popitem`, a list's `pop`); any other completed call (a
//!   `set`, `put`, `release`, `notify`, `append`, ...) stands.
//!
//! A [`LockGuard`] dropped without `unlock` sends the release without waiting for its reply.

mod barrier;
mod cells;
mod dict;
mod error;
mod event;
mod iter;
mod list;
mod lock;
pub mod python;
mod queue;
mod rlock;
mod semaphore;
mod support;
mod values;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use barrier::{Barrier, BarrierCalls, BarrierProxy};
pub use cells::{
    ArrayCalls, ArrayCell, ArrayProxy, Namespace, NamespaceCalls, NamespaceProxy, ValueCalls,
    ValueCell, ValueProxy,
};
pub use dict::{Dict, DictCalls, DictProxy};
pub use error::SyncError;
pub use event::{Event, EventProxy};
pub use iter::{PyIterator, PyIteratorCalls};
pub use list::{List, ListCalls, ListProxy};
pub use lock::{Lock, LockCalls, LockGuard, LockProxy};
pub use queue::{Queue, QueueCalls, QueueProxy};
pub use rlock::{
    Condition, ConditionCalls, ConditionLock, ConditionProxy, RLock, RLockCalls, RLockProxy,
};
pub use semaphore::{
    BoundedSemaphore, BoundedSemaphoreCalls, BoundedSemaphoreProxy, Semaphore, SemaphoreCalls,
    SemaphoreProxy, SEMAPHORE_MAX_VALUE,
};

use crate::{AuthKey, Client, IntoAddress, Registration, ServerBuilder, Value};

/// Register every SyncManager type under Python's typeids: `Lock`, `RLock`, `Semaphore`,
/// `BoundedSemaphore`, `Condition`, `Event`, `Barrier`, `Queue`, `JoinableQueue`, `dict`,
/// `list`, `Namespace`, `Value`, `Array`.
///
/// Add your own `#[shared]` types to the same server with more
/// [`register`](ServerBuilder::register) calls.
pub fn register(builder: ServerBuilder) -> ServerBuilder {
    builder
        .register(Registration::constructor("Lock", |()| Lock::new()).python(python::LOCK))
        .register(Registration::constructor("RLock", |()| RLock::new()).python(python::RLOCK))
        .register(
            Registration::try_constructor("Semaphore", |(value,)| Semaphore::try_new(value))
                .python(python::SEMAPHORE),
        )
        .register(
            Registration::try_constructor("BoundedSemaphore", |(value,)| {
                BoundedSemaphore::try_new(value)
            })
            .python(python::SEMAPHORE),
        )
        .register(Registration::constructor("Event", |()| Event::new()).python(python::EVENT))
        .register(
            Registration::try_constructor("Condition", |(lock,)| Condition::over(lock))
                .python(python::CONDITION),
        )
        .register(
            Registration::constructor("Barrier", |(parties, timeout)| {
                Barrier::new(parties, timeout)
            })
            .python(python::BARRIER),
        )
        .register(
            Registration::constructor("Queue", |(maxsize,)| Queue::new(maxsize))
                .python(python::QUEUE),
        )
        .register(
            Registration::constructor("JoinableQueue", |(maxsize,)| Queue::new(maxsize))
                .python(python::QUEUE),
        )
        .register(
            Registration::constructor("dict", |(entries,)| Dict::new(entries)).python(python::DICT),
        )
        .register(
            Registration::constructor("list", |(items,)| List::new(items)).python(python::LIST),
        )
        .register(
            Registration::constructor("Namespace", |()| Namespace::new()).python(python::NAMESPACE),
        )
        .register(
            Registration::constructor("Value", |(value,)| ValueCell::new(value))
                .python(python::VALUE),
        )
        .register(
            Registration::constructor("Iterator", |(items, source)| PyIterator::new(items, source))
                .create_method(false)
                .python(python::ITERATOR),
        )
        .register(
            Registration::constructor("Array", |(items,)| ArrayCell::new(items))
                .python(python::ARRAY),
        )
}

/// A client for a SyncManager server (Python's `multiprocessing.Manager()`): one method
/// per standard type, each creating a new shared object and returning its typed proxy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use managers::sync::{self, SyncManager};
/// let server = sync::register(managers::ServerBuilder::new()).start().await?;
/// let manager = SyncManager::from_client(server.client().clone());
/// let scores = manager.dict::<String, u32>().await?;
/// scores.set(&"ada".to_owned(), &36).await?;
/// let jobs = manager.queue::<String>(0).await?;
/// jobs.put("compile".into()).await?;
/// assert_eq!(jobs.get().await?, "compile");
/// assert_eq!(scores.get(&"ada".to_owned()).await?, Some(36));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SyncManager {
    client: Client,
}

impl SyncManager {
    /// Connect to the SyncManager server at `address` with `authkey`.
    ///
    /// Cancel safe: dropping it closes the connection being opened; nothing is left
    /// behind.
    pub async fn connect(
        address: impl IntoAddress,
        authkey: impl Into<AuthKey>,
    ) -> Result<Self, crate::Error> {
        Ok(SyncManager {
            client: Client::connect(address, authkey).await?,
        })
    }

    /// Use an existing connection: for example the client of your own [`manager!`](crate::manager)
    /// type (`SyncManager::from_client(board.client().clone())`), so that one connection
    /// serves your types and the SyncManager types at once.
    pub fn from_client(client: Client) -> Self {
        SyncManager { client }
    }

    /// The underlying connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A new lock (`manager.Lock()`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn lock(&self) -> Result<LockProxy, crate::Error> {
        self.client.create("Lock", ()).await
    }

    /// A new re-entrant lock (`manager.RLock()`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn rlock(&self) -> Result<RLockProxy, crate::Error> {
        self.client.create("RLock", ()).await
    }

    /// A new semaphore with `value` permits (`manager.Semaphore(value)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn semaphore(&self, value: usize) -> Result<SemaphoreProxy, crate::Error> {
        self.client.create("Semaphore", (value,)).await
    }

    /// A new bounded semaphore (`manager.BoundedSemaphore(value)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn bounded_semaphore(
        &self,
        value: usize,
    ) -> Result<BoundedSemaphoreProxy, crate::Error> {
        self.client.create("BoundedSemaphore", (value,)).await
    }

    /// A new condition variable with its own re-entrant lock (`manager.Condition()`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn condition(&self) -> Result<ConditionProxy, crate::Error> {
        self.client
            .create("Condition", (None::<ConditionLock>,))
            .await
    }

    /// A new condition variable over a shared lock of this manager
    /// (`manager.Condition(lock)`): acquiring the condition acquires `lock`, and a client
    /// holding `lock` may `wait` and `notify` on the condition.
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn condition_with_lock(
        &self,
        lock: &LockProxy,
    ) -> Result<ConditionProxy, crate::Error> {
        let lock = ConditionLock::Lock(lock.clone());
        self.client.create("Condition", (Some(lock),)).await
    }

    /// A new condition variable over a shared re-entrant lock of this manager; the
    /// returned proxy is the same holder as `rlock`, so `rlock.acquire()` then
    /// `condition.wait(...)` works as in Python.
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn condition_with_rlock(
        &self,
        rlock: &RLockProxy,
    ) -> Result<ConditionProxy, crate::Error> {
        let lock = ConditionLock::RLock(rlock.clone());
        let condition: ConditionProxy = self.client.create("Condition", (Some(lock),)).await?;
        Ok(condition.same_holder_as(rlock))
    }

    /// A new event, initially clear (`manager.Event()`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn event(&self) -> Result<EventProxy, crate::Error> {
        self.client.create("Event", ()).await
    }

    /// A new barrier for `parties`, with a default wait timeout
    /// (`manager.Barrier(parties, timeout=...)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn barrier(
        &self,
        parties: usize,
        timeout: Option<Duration>,
    ) -> Result<BarrierProxy, crate::Error> {
        self.client.create("Barrier", (parties, timeout)).await
    }

    /// A new queue of `T` holding at most `maxsize` items, 0 for unbounded
    /// (`manager.Queue(maxsize)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn queue<T>(&self, maxsize: usize) -> Result<QueueProxy<T>, crate::Error>
    where
        T: 'static,
    {
        self.client.create("Queue", (maxsize,)).await
    }

    /// A new joinable queue (`manager.JoinableQueue(maxsize)`): the same as
    /// [`queue`](Self::queue), whose proxies all have `task_done` and `join`.
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn joinable_queue<T>(&self, maxsize: usize) -> Result<QueueProxy<T>, crate::Error>
    where
        T: 'static,
    {
        self.client.create("JoinableQueue", (maxsize,)).await
    }

    /// A new empty dict from `K` to `V` (`manager.dict()`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn dict<K: 'static, V: 'static>(&self) -> Result<DictProxy<K, V>, crate::Error> {
        self.client
            .create("dict", (Vec::<(Value, Value)>::new(),))
            .await
    }

    /// A new dict with `entries` (`manager.dict(mapping)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn dict_from<K, V>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<DictProxy<K, V>, SyncError>
    where
        K: Serialize + DeserializeOwned + 'static,
        V: Serialize + DeserializeOwned + 'static,
    {
        let entries = values::encode_pairs(entries)?;
        Ok(self.client.create("dict", (entries,)).await?)
    }

    /// A new empty list of `T` (`manager.list()`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn list<T: 'static>(&self) -> Result<ListProxy<T>, crate::Error> {
        self.client.create("list", (Vec::<Value>::new(),)).await
    }

    /// A new list of `items` (`manager.list(sequence)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn list_from<T: Serialize + DeserializeOwned + 'static>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ListProxy<T>, SyncError> {
        let items = values::encode_all(items)?;
        Ok(self.client.create("list", (items,)).await?)
    }

    /// A new namespace (`manager.Namespace()`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn namespace(&self) -> Result<NamespaceProxy, crate::Error> {
        self.client.create("Namespace", ()).await
    }

    /// A new shared value (`manager.Value(typecode, value)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn value<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: T,
    ) -> Result<ValueProxy<T>, SyncError> {
        let value = values::encode(&value)?;
        Ok(self.client.create("Value", (value,)).await?)
    }

    /// A new fixed-length array (`manager.Array(typecode, sequence)`).
    ///
    /// Cancel safety: once polled, the object may be created even if the future is
    /// dropped; it is then released as its reply arrives (see [`Client::create`]).
    pub async fn array<T: Serialize + DeserializeOwned + 'static>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ArrayProxy<T>, SyncError> {
        let items = values::encode_all(items)?;
        Ok(self.client.create("Array", (items,)).await?)
    }
}

impl std::ops::Deref for SyncManager {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}
