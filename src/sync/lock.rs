//! `Lock`, and the `LockGuard` that a lock or a semaphore permit is held by.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{flatten, Outcome, SyncError};
use super::support::{caller_id, lock, take_permit};
use crate::{shared, Caller, CallerId, DisconnectHook, Proxy, ProxyHandle};

/// Who holds a lock, and the hook that frees it if that client disconnects.
struct Held {
    by: Option<CallerId>,
    _hook: Option<DisconnectHook>,
}

pub(crate) struct LockInner {
    permits: tokio::sync::Semaphore,
    holder: Mutex<Option<Held>>,
    /// Released because its holder disconnected, and not acquired since: the release
    /// another process makes on the dead holder's behalf (Python's hand-off of a lock
    /// acquired in a child and released by its parent) is then accepted, not an error.
    orphaned: std::sync::atomic::AtomicBool,
}

impl LockInner {
    /// Whether the current caller holds it (for a condition over this lock).
    pub(crate) fn held_by_caller(&self) -> bool {
        lock(&self.holder)
            .as_ref()
            .is_some_and(|h| h.by == caller_id())
    }

    /// Record the current caller as the holder, to be released if it disconnects.
    fn record(self: &Arc<Self>) {
        let by = caller_id();
        *lock(&self.holder) = Some(Held { by, _hook: None });
        if let (Some(caller), Some(id)) = (Caller::current(), by) {
            let weak = Arc::downgrade(self);
            let hook = caller.on_disconnect(move || {
                if let Some(inner) = weak.upgrade() {
                    if inner.release_if_held_by(id) {
                        inner
                            .orphaned
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
            let mut holder = lock(&self.holder);
            match holder.as_mut() {
                Some(held) if held.by == Some(id) => held._hook = Some(hook),
                _ => drop(hook),
            }
        }
    }

    /// Release the lock if `id` holds it; whether it did.
    fn release_if_held_by(&self, id: CallerId) -> bool {
        let mut holder = lock(&self.holder);
        if holder.as_ref().is_some_and(|h| h.by == Some(id)) {
            *holder = None;
            drop(holder);
            self.permits.add_permits(1);
            return true;
        }
        false
    }

    /// Take the lock for the caller (not undone if it never takes the result).
    pub(crate) async fn take(self: &Arc<Self>, blocking: bool, timeout: Option<Duration>) -> bool {
        let taken = take_permit(&self.permits, blocking, timeout).await;
        if taken {
            self.orphaned
                .store(false, std::sync::atomic::Ordering::SeqCst);
            self.record();
        }
        taken
    }

    pub(crate) async fn acquire(
        self: &Arc<Self>,
        blocking: bool,
        timeout: Option<Duration>,
    ) -> bool {
        let taken = self.take(blocking, timeout).await;
        if taken {
            // A caller that never learns it got the lock (it dropped the call, or died
            // while the reply was on its way) does not keep it.
            if let Some(id) = caller_id() {
                let weak = Arc::downgrade(self);
                Caller::undo_unless_taken(move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.release_if_held_by(id);
                    }
                });
            }
        }
        taken
    }

    pub(crate) fn release(&self) -> Outcome<()> {
        let mut holder = lock(&self.holder);
        if holder.is_none() {
            // The release a disconnected holder's lock was waiting for: it is free already.
            if self
                .orphaned
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                return Ok(());
            }
            return Err(SyncError::NotLocked);
        }
        let held = holder.take();
        drop(holder);
        drop(held);
        self.permits.add_permits(1);
        Ok(())
    }
}

/// A mutual-exclusion lock (Python's `threading.Lock` through `manager.Lock()`).
///
/// Any holder may release it, as in Python. If the client that acquired it disconnects,
/// it is released at once, so a dead client never blocks the others; the one release
/// that may still come for it (a parent releasing what its child acquired, as Python
/// programs do) is then accepted, until the lock is acquired again.
pub struct Lock {
    pub(crate) inner: Arc<LockInner>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &lock(&self.inner.holder).is_some())
            .finish()
    }
}

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Self {
        Lock {
            inner: Arc::new(LockInner {
                permits: tokio::sync::Semaphore::new(1),
                holder: Mutex::new(None),
                orphaned: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }
}

#[shared(proxy = LockCalls, name = "Lock", errors = value)]
impl Lock {
    /// Acquire: wait (up to `timeout`, if given) when `blocking`, else try once. Returns
    /// whether the lock was acquired.
    ///
    /// Cancel safety: dropped while it waits, it takes nothing. Through a proxy, a lock it
    /// acquired for a call whose result the client never takes (it dropped the call, or
    /// disconnected) is released again by the server.
    pub async fn acquire(&self, blocking: bool, timeout: Option<Duration>) -> bool {
        self.inner.acquire(blocking, timeout).await
    }

    /// Release; fails if it is not locked.
    pub fn release(&self) -> Outcome<()> {
        self.inner.release()
    }

    /// Whether it is locked.
    pub fn locked(&self) -> bool {
        lock(&self.inner.holder).is_some()
    }
}

/// A proxy for a shared [`Lock`].
#[derive(Clone, Debug, crate::Proxy)]
#[proxy(target = Lock)]
pub struct LockProxy {
    #[proxy(inner)]
    raw: LockCalls,
}

impl LockProxy {
    /// Acquire, waiting as long as it takes (`acquire(True)`).
    ///
    /// Cancel safe: dropping the future while it waits withdraws the request, and a lock
    /// the server granted to a dropped call is released as the cancel reaches it, so a
    /// dropped `acquire` does not leave the lock held.
    pub async fn acquire(&self) -> Result<(), SyncError> {
        self.raw.acquire(true, None).await?;
        Ok(())
    }

    /// Acquire, waiting at most `timeout`; false if it timed out.
    ///
    /// Cancel safe, as [`acquire`](Self::acquire): a dropped call does not leave the lock
    /// held.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(true, Some(timeout)).await?)
    }

    /// Acquire only if free right now (`acquire(False)`).
    ///
    /// Cancel safe, as [`acquire`](Self::acquire): a lock granted to a dropped call is
    /// released by the server.
    pub async fn try_acquire(&self) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(false, None).await?)
    }

    /// Release.
    ///
    /// Cancel safety: once polled, the release is made even if the future is dropped;
    /// only its result is lost.
    pub async fn release(&self) -> Result<(), SyncError> {
        flatten(self.raw.release().await)
    }

    /// Whether it is locked.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn locked(&self) -> Result<bool, SyncError> {
        Ok(self.raw.locked().await?)
    }

    /// Acquire and return a guard that releases the lock when dropped (`with lock:`).
    ///
    /// Cancel safe, as [`acquire`](Self::acquire): a dropped `lock` does not leave the
    /// lock held.
    pub async fn lock(&self) -> Result<LockGuard, SyncError> {
        self.acquire().await?;
        Ok(LockGuard::new(self))
    }
}

/// Holds a lock, or a semaphore permit, until dropped (or [`LockGuard::unlock`]ed).
///
/// Dropping sends the release without waiting for its reply; it is ordered after every call
/// made before on the same connection.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    handle: Option<ProxyHandle>,
    /// The holder token `release` takes, for re-entrant locks.
    owner: Option<u64>,
}

impl LockGuard {
    /// A guard that releases what `proxy` acquired (calls its object's `release`).
    pub(super) fn new(proxy: &impl Proxy) -> Self {
        LockGuard {
            handle: Some(proxy.handle().clone()),
            owner: None,
        }
    }

    /// A guard that releases one level of a re-entrant lock for holder `owner`.
    pub(super) fn for_holder(proxy: &impl Proxy, owner: u64) -> Self {
        LockGuard {
            handle: Some(proxy.handle().clone()),
            owner: Some(owner),
        }
    }

    /// Release now and see whether that worked.
    ///
    /// Cancel safety: the release is sent even if this future is dropped (before its first
    /// poll, by the guard's own drop; after it, the request went out already); only the
    /// result is lost.
    pub async fn unlock(mut self) -> Result<(), SyncError> {
        let handle = self
            .handle
            .take()
            .expect("a guard holds its handle until dropped");
        let released = match self.owner {
            Some(owner) => {
                handle
                    .call_method::<_, Outcome<()>>("release", (owner,))
                    .await
            }
            None => handle.call_method::<_, Outcome<()>>("release", ()).await,
        };
        flatten(released)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            match self.owner {
                Some(owner) => handle.call_detached("release", (owner,)),
                None => handle.call_detached("release", ()),
            }
        }
    }
}
