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
//! A call that already completed on the server is not undone: an item a dead client
//! received just before dying is gone with it.

mod error;
mod locks;

pub use error::SyncError;
pub use locks::{
    Barrier, BarrierCalls, BarrierProxy, BoundedSemaphore, BoundedSemaphoreCalls,
    BoundedSemaphoreProxy, Condition, ConditionCalls, ConditionProxy, Event, EventProxy, Lock,
    LockCalls, LockGuard, LockProxy, RLock, RLockCalls, RLockProxy, Semaphore, SemaphoreCalls,
    SemaphoreProxy,
};

use crate::{Registration, ServerBuilder};

/// Register every SyncManager type under Python's typeids (`Lock`, `RLock`, `Semaphore`,
/// `BoundedSemaphore`, `Event`, `Barrier`, ...).
pub fn register(builder: ServerBuilder) -> ServerBuilder {
    builder
        .register(Registration::constructor("Lock", |()| Lock::new()))
        .register(Registration::constructor("RLock", |()| RLock::new()))
        .register(Registration::constructor("Semaphore", |(value,)| {
            Semaphore::new(value)
        }))
        .register(Registration::constructor("BoundedSemaphore", |(value,)| {
            BoundedSemaphore::new(value)
        }))
        .register(Registration::constructor("Event", |()| Event::new()))
        .register(Registration::constructor("Condition", |()| {
            Condition::new()
        }))
        .register(Registration::constructor(
            "Barrier",
            |(parties, timeout)| Barrier::new(parties, timeout),
        ))
}

crate::manager! {
    /// A client for a SyncManager server (Python's `multiprocessing.Manager()` proxy
    /// factory): one method per standard type.
    pub struct SyncManager {
        /// A new lock (Python's `manager.Lock()`).
        fn lock() -> LockProxy as "Lock";
        /// A new re-entrant lock (Python's `manager.RLock()`).
        fn rlock() -> RLockProxy as "RLock";
        /// A new semaphore with `value` permits.
        fn semaphore(value: usize) -> SemaphoreProxy as "Semaphore";
        /// A new bounded semaphore with `value` permits.
        fn bounded_semaphore(value: usize) -> BoundedSemaphoreProxy as "BoundedSemaphore";
        /// A new condition variable with its own re-entrant lock.
        fn condition() -> ConditionProxy as "Condition";
        /// A new event, initially clear.
        fn event() -> EventProxy as "Event";
        /// A new barrier for `parties` waiters, with a default wait timeout.
        fn barrier(parties: usize, timeout: Option<std::time::Duration>) -> BarrierProxy as "Barrier";
    }
}
