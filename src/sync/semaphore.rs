//! `Semaphore` and `BoundedSemaphore`, with the permits each client holds tracked so that
//! a client that dies returns them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{flatten, Outcome, SyncError};
use super::lock::LockGuard;
use super::support::{caller_id, lock, take_permit};
use crate::{shared, Caller, CallerId, DisconnectHook};

struct SemInner {
    permits: tokio::sync::Semaphore,
    /// The initial value, for a bounded semaphore.
    bound: Option<usize>,
    /// Permits each client holds, with the hook that returns them if it disconnects.
    held: Mutex<Vec<(CallerId, usize, Option<DisconnectHook>)>>,
    /// Permits returned because their holders disconnected: as many releases by clients
    /// that hold none (made on the dead holders' behalf, as a Python parent releases what
    /// its child acquired) are accepted without raising the value a second time.
    orphans: Mutex<usize>,
}

/// The largest value a semaphore can have (tokio's `Semaphore::MAX_PERMITS`, 2^61 - 1 on
/// 64-bit targets).
pub const SEMAPHORE_MAX_VALUE: usize = tokio::sync::Semaphore::MAX_PERMITS;

impl SemInner {
    fn new(value: usize, bounded: bool) -> Result<Arc<Self>, SyncError> {
        if value > SEMAPHORE_MAX_VALUE {
            return Err(too_large(value));
        }
        Ok(Arc::new(SemInner {
            permits: tokio::sync::Semaphore::new(value),
            bound: bounded.then_some(value),
            held: Mutex::new(Vec::new()),
            orphans: Mutex::new(0),
        }))
    }

    fn record(self: &Arc<Self>) {
        let Some(caller) = Caller::current() else {
            return;
        };
        let id = caller.id();
        let mut held = lock(&self.held);
        if let Some(entry) = held.iter_mut().find(|e| e.0 == id) {
            entry.1 += 1;
            return;
        }
        held.push((id, 1, None));
        drop(held);
        let weak = Arc::downgrade(self);
        let hook = caller.on_disconnect(move || {
            if let Some(inner) = weak.upgrade() {
                let mut held = lock(&inner.held);
                if let Some(pos) = held.iter().position(|e| e.0 == id) {
                    let (_, n, hook) = held.swap_remove(pos);
                    // Under `held`, like `release`, so that the bound check stays exact;
                    // saturated, as releases by others may have raised the value meanwhile.
                    let room = SEMAPHORE_MAX_VALUE - inner.permits.available_permits();
                    inner.permits.add_permits(n.min(room));
                    let mut orphans = lock(&inner.orphans);
                    *orphans = orphans.saturating_add(n);
                    drop(orphans);
                    drop(held);
                    drop(hook);
                }
            }
        });
        let mut held = lock(&self.held);
        match held.iter_mut().find(|e| e.0 == id) {
            Some(entry) => entry.2 = Some(hook),
            None => drop(hook),
        }
    }

    async fn acquire(self: &Arc<Self>, blocking: bool, timeout: Option<Duration>) -> bool {
        let taken = take_permit(&self.permits, blocking, timeout).await;
        if taken {
            self.record();
            // A caller that never learns it got the permit (it dropped the call, or died
            // while the reply was on its way) gives it back.
            if let Some(id) = caller_id() {
                let weak = Arc::downgrade(self);
                Caller::undo_unless_taken(move || {
                    if let Some(inner) = weak.upgrade() {
                        let _ = inner.release_by(Some(id));
                    }
                });
            }
        }
        taken
    }

    fn release(&self) -> Outcome<()> {
        self.release_by(caller_id())
    }

    /// Return a permit for `me` (one of its own, or anyone's).
    fn release_by(&self, me: Option<CallerId>) -> Outcome<()> {
        let mut held = lock(&self.held);
        if !held.iter().any(|e| Some(e.0) == me) {
            let mut orphans = lock(&self.orphans);
            if *orphans > 0 {
                // Made on behalf of a holder that disconnected: its permit is back already.
                *orphans -= 1;
                return Ok(());
            }
        }
        if let Some(bound) = self.bound {
            if self.permits.available_permits() >= bound {
                return Err(SyncError::TooManyReleases);
            }
        }
        if self.permits.available_permits() >= SEMAPHORE_MAX_VALUE {
            return Err(too_large(SEMAPHORE_MAX_VALUE + 1));
        }
        // Count the release against the caller's permits, or anyone's (as in Python, any
        // holder may release a semaphore).
        let pos = held
            .iter()
            .position(|e| Some(e.0) == me)
            .or(if held.is_empty() { None } else { Some(0) });
        let mut dropped = None;
        if let Some(pos) = pos {
            held[pos].1 -= 1;
            if held[pos].1 == 0 {
                dropped = Some(held.swap_remove(pos));
            }
        }
        // Still under `held`: two releases must not both pass the bound check above.
        self.permits.add_permits(1);
        drop(held);
        drop(dropped);
        Ok(())
    }
}

/// The error for a semaphore value over [`SEMAPHORE_MAX_VALUE`].
fn too_large(value: usize) -> SyncError {
    SyncError::Invalid(format!(
        "a semaphore value of {value} is over the maximum of {SEMAPHORE_MAX_VALUE}"
    ))
}

macro_rules! semaphore {
    ($(#[$doc:meta])* $name:ident, $calls:ident, $proxy:ident, $shared_name:literal, $bounded:expr) => {
        $(#[$doc])*
        pub struct $name {
            inner: Arc<SemInner>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("value", &self.inner.permits.available_permits())
                    .finish()
            }
        }

        impl $name {
            /// A semaphore with `value` permits.
            ///
            /// # Panics
            /// If `value` is over [`SEMAPHORE_MAX_VALUE`]; [`Self::try_new`] returns an error instead.
            pub fn new(value: usize) -> Self {
                Self::try_new(value).expect("semaphore value over SEMAPHORE_MAX_VALUE")
            }

            /// A semaphore with `value` permits, or [`SyncError::Invalid`] if `value` is
            /// over [`SEMAPHORE_MAX_VALUE`] (what the server does with a client's value).
            pub fn try_new(value: usize) -> Result<Self, SyncError> {
                Ok($name { inner: SemInner::new(value, $bounded)? })
            }
        }

        #[shared(proxy = $calls, name = $shared_name, errors = value)]
        impl $name {
            /// Take a permit: wait (up to `timeout`) when `blocking`, else try once.
            ///
            /// Cancel safety: dropped while it waits, it takes nothing. Through a proxy, a
            /// permit it took for a call whose result the client never takes (it dropped
            /// the call, or disconnected) is returned by the server.
            pub async fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> bool {
                self.inner.acquire(blocking, timeout).await
            }

            /// Return a permit.
            pub fn release(&self) -> Outcome<()> {
                self.inner.release()
            }

            /// Permits available now.
            pub fn value(&self) -> usize {
                self.inner.permits.available_permits()
            }
        }

        #[doc = concat!("A proxy for a shared [`", stringify!($name), "`].")]
        #[derive(Clone, Debug, crate::Proxy)]
        #[proxy(target = $name)]
        pub struct $proxy {
            #[proxy(inner)]
            raw: $calls,
        }

        impl $proxy {
            /// Take a permit, waiting as long as it takes.
            ///
            /// Cancel safe: dropping the future while it waits withdraws the request, and
            /// a permit the server granted to a dropped call is returned as the cancel
            /// reaches it, so a dropped `acquire` keeps no permit.
            pub async fn acquire(&self) -> Result<(), SyncError> {
                self.raw.acquire(true, None).await?;
                Ok(())
            }

            /// Take a permit, waiting at most `timeout`; false if it timed out.
            ///
            /// Cancel safe, as [`acquire`](Self::acquire): a dropped call keeps no permit.
            pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
                Ok(self.raw.acquire(true, Some(timeout)).await?)
            }

            /// Take a permit only if one is free now.
            ///
            /// Cancel safe, as [`acquire`](Self::acquire): a dropped call keeps no permit.
            pub async fn try_acquire(&self) -> Result<bool, SyncError> {
                Ok(self.raw.acquire(false, None).await?)
            }

            /// Return a permit.
            ///
            /// Cancel safety: once polled, the release is made even if the future is
            /// dropped; only its result is lost.
            pub async fn release(&self) -> Result<(), SyncError> {
                flatten(self.raw.release().await)
            }

            /// Permits available now.
            ///
            /// Cancel safe: it only reads, so dropping it only discards the answer.
            pub async fn value(&self) -> Result<usize, SyncError> {
                Ok(self.raw.value().await?)
            }

            /// Take a permit and return a guard that gives it back when dropped.
            ///
            /// Cancel safe, as [`acquire`](Self::acquire): a dropped call keeps no permit.
            pub async fn guard(&self) -> Result<LockGuard, SyncError> {
                self.acquire().await?;
                Ok(LockGuard::new(self))
            }
        }
    };
}

semaphore!(
    /// A counting semaphore (Python's `manager.Semaphore(value)`). Permits taken by a
    /// client that disconnects are returned.
    Semaphore, SemaphoreCalls, SemaphoreProxy, "Semaphore", false
);
semaphore!(
    /// A semaphore that refuses to be released above its initial value (Python's
    /// `manager.BoundedSemaphore(value)`): such a release fails with
    /// [`SyncError::TooManyReleases`].
    BoundedSemaphore, BoundedSemaphoreCalls, BoundedSemaphoreProxy, "BoundedSemaphore", true
);
