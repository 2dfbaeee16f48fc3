//! Locks, semaphores, events and barriers, with their owners tracked so that a client that
//! dies releases what it held.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::error::{flatten, Outcome, SyncError};
use crate::{shared, Caller, CallerId, DisconnectHook, ProxyHandle};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn caller_id() -> Option<CallerId> {
    Caller::current().map(|c| c.id())
}

/// Wait for `notified` until `deadline` (forever if `None`); false on timeout.
async fn wait_until(
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

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// Implement `Proxy` and serde for a typed proxy wrapping a generated one.
macro_rules! wrap_proxy {
    ($proxy:ident, $raw:ident, $target:ty) => {
        impl $crate::Proxy for $proxy {
            type Target = $target;
            fn from_handle(handle: $crate::ProxyHandle) -> Self {
                Self::wrap(<$raw as $crate::Proxy>::from_handle(handle))
            }
            fn handle(&self) -> &$crate::ProxyHandle {
                $crate::Proxy::handle(&self.raw)
            }
        }

        impl serde::Serialize for $proxy {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.raw.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $proxy {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $raw::deserialize(d).map(Self::wrap)
            }
        }
    };
}
pub(crate) use wrap_proxy;

// ---------------------------------------------------------------------------------------
// Lock

/// Who holds a lock, and the hook that frees it if that client disconnects.
struct Held {
    by: Option<CallerId>,
    _hook: Option<DisconnectHook>,
}

struct LockInner {
    permits: tokio::sync::Semaphore,
    holder: Mutex<Option<Held>>,
}

impl LockInner {
    /// Record the current caller as the holder, to be released if it disconnects.
    fn record(self: &Arc<Self>) {
        let by = caller_id();
        *lock(&self.holder) = Some(Held { by, _hook: None });
        if let (Some(caller), Some(id)) = (Caller::current(), by) {
            let weak = Arc::downgrade(self);
            let hook = caller.on_disconnect(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.release_if_held_by(id);
                }
            });
            let mut holder = lock(&self.holder);
            match holder.as_mut() {
                Some(held) if held.by == Some(id) => held._hook = Some(hook),
                _ => drop(hook),
            }
        }
    }

    fn release_if_held_by(&self, id: CallerId) {
        let mut holder = lock(&self.holder);
        if holder.as_ref().is_some_and(|h| h.by == Some(id)) {
            *holder = None;
            drop(holder);
            self.permits.add_permits(1);
        }
    }

    async fn acquire(self: &Arc<Self>, blocking: bool, timeout: Option<Duration>) -> bool {
        let permit = if !blocking {
            self.permits.try_acquire().ok()
        } else {
            match timeout {
                Some(t) => tokio::time::timeout(t, self.permits.acquire())
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => self.permits.acquire().await.ok(),
            }
        };
        match permit {
            Some(p) => {
                p.forget();
                self.record();
                true
            }
            None => false,
        }
    }

    fn release(&self) -> Outcome<()> {
        let mut holder = lock(&self.holder);
        if holder.is_none() {
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
/// it is released.
pub struct Lock {
    inner: Arc<LockInner>,
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
            }),
        }
    }
}

#[shared(proxy = LockCalls, typeid = "Lock")]
impl Lock {
    /// Acquire: wait (up to `timeout`, if given) when `blocking`, else try once. Returns
    /// whether the lock was acquired.
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
#[derive(Clone, Debug)]
pub struct LockProxy {
    raw: LockCalls,
}
wrap_proxy!(LockProxy, LockCalls, Lock);

impl LockProxy {
    fn wrap(raw: LockCalls) -> Self {
        LockProxy { raw }
    }

    /// Acquire, waiting as long as it takes (`acquire(True)`).
    pub async fn acquire(&self) -> Result<(), SyncError> {
        self.raw.acquire(true, None).await?;
        Ok(())
    }

    /// Acquire, waiting at most `timeout`; false if it timed out.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(true, Some(timeout)).await?)
    }

    /// Acquire only if free right now (`acquire(False)`).
    pub async fn try_acquire(&self) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(false, None).await?)
    }

    /// Release.
    pub async fn release(&self) -> Result<(), SyncError> {
        flatten(self.raw.release().await)
    }

    /// Whether it is locked.
    pub async fn locked(&self) -> Result<bool, SyncError> {
        Ok(self.raw.locked().await?)
    }

    /// Acquire and return a guard that releases the lock when dropped (`with lock:`).
    pub async fn lock(&self) -> Result<LockGuard, SyncError> {
        self.acquire().await?;
        Ok(LockGuard {
            handle: Some(Proxy::handle(self).clone()),
        })
    }
}

use crate::Proxy;

/// Holds a lock, or a semaphore permit, until dropped (or [`LockGuard::unlock`]ed).
///
/// Dropping sends the release without waiting for its reply; it is ordered after every call
/// made before on the same connection.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    handle: Option<ProxyHandle>,
}

impl LockGuard {
    /// Release now and see whether that worked.
    pub async fn unlock(mut self) -> Result<(), SyncError> {
        let handle = self
            .handle
            .take()
            .expect("a guard holds its handle until dropped");
        flatten(handle.call_method::<_, Outcome<()>>("release", ()).await)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.call_detached("release", ());
        }
    }
}

// ---------------------------------------------------------------------------------------
// RLock

struct RLockState {
    /// The holder: its connection and the proxy's owner token.
    owner: Option<(Option<CallerId>, u64)>,
    count: usize,
    hook: Option<DisconnectHook>,
}

struct RLockInner {
    state: Mutex<RLockState>,
    released: Notify,
}

impl RLockInner {
    fn new() -> Arc<Self> {
        Arc::new(RLockInner {
            state: Mutex::new(RLockState {
                owner: None,
                count: 0,
                hook: None,
            }),
            released: Notify::new(),
        })
    }

    fn try_take(self: &Arc<Self>, me: (Option<CallerId>, u64)) -> bool {
        let mut state = lock(&self.state);
        match state.owner {
            Some(owner) if owner == me => {
                state.count += 1;
                true
            }
            Some(_) => false,
            None => {
                state.owner = Some(me);
                state.count = 1;
                drop(state);
                self.watch(me);
                true
            }
        }
    }

    /// Free the lock if its holder's connection closes.
    fn watch(self: &Arc<Self>, me: (Option<CallerId>, u64)) {
        let Some(caller) = Caller::current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        let hook = caller.on_disconnect(move || {
            if let Some(inner) = weak.upgrade() {
                let mut state = lock(&inner.state);
                if state.owner.is_some_and(|o| o.0 == me.0) {
                    state.owner = None;
                    state.count = 0;
                    let hook = state.hook.take();
                    drop(state);
                    drop(hook);
                    inner.released.notify_one();
                }
            }
        });
        let mut state = lock(&self.state);
        if state.owner == Some(me) {
            state.hook = Some(hook);
        }
    }

    async fn acquire(
        self: &Arc<Self>,
        token: u64,
        blocking: bool,
        timeout: Option<Duration>,
    ) -> bool {
        let me = (caller_id(), token);
        let deadline = deadline(timeout);
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.try_take(me) {
                return true;
            }
            if !blocking {
                return false;
            }
            if !wait_until(notified, deadline).await {
                // Timed out: one last try (a take must never be reported as a failure).
                return self.try_take(me);
            }
        }
    }

    /// Release one level; `Ok(true)` when the lock became free.
    fn release(&self, token: u64) -> Outcome<bool> {
        let me = (caller_id(), token);
        let mut state = lock(&self.state);
        if state.owner != Some(me) {
            return Err(SyncError::NotOwner);
        }
        state.count -= 1;
        if state.count > 0 {
            return Ok(false);
        }
        state.owner = None;
        let hook = state.hook.take();
        drop(state);
        drop(hook);
        self.released.notify_one();
        Ok(true)
    }

    /// Release every level (for `Condition::wait`); returns the count to restore.
    fn release_all(&self, token: u64) -> Outcome<usize> {
        let me = (caller_id(), token);
        let mut state = lock(&self.state);
        if state.owner != Some(me) {
            return Err(SyncError::NotOwner);
        }
        let count = std::mem::take(&mut state.count);
        state.owner = None;
        let hook = state.hook.take();
        drop(state);
        drop(hook);
        self.released.notify_one();
        Ok(count)
    }

    /// Restore the recursion count after `Condition::wait` re-acquired the lock.
    fn set_count(&self, count: usize) {
        lock(&self.state).count = count.max(1);
    }

    fn owned_by(&self, token: u64) -> bool {
        lock(&self.state).owner == Some((caller_id(), token))
    }
}

/// A re-entrant lock (Python's `manager.RLock()`): its holder may acquire it again, and
/// only its holder may release it.
///
/// The holder is one proxy on one connection: each [`RLockProxy`] value (clones included)
/// is a distinct holder, like a thread in Python. Releasing it from another holder fails
/// with [`SyncError::NotOwner`]. If the holder's client disconnects, it is released.
pub struct RLock {
    inner: Arc<RLockInner>,
}

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLock")
            .field("count", &lock(&self.inner.state).count)
            .finish()
    }
}

impl Default for RLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RLock {
    /// An unlocked re-entrant lock.
    pub fn new() -> Self {
        RLock {
            inner: RLockInner::new(),
        }
    }
}

#[shared(proxy = RLockCalls, typeid = "RLock")]
impl RLock {
    /// Acquire for holder `owner` (a token chosen by the proxy).
    pub async fn acquire(&self, owner: u64, blocking: bool, timeout: Option<Duration>) -> bool {
        self.inner.acquire(owner, blocking, timeout).await
    }

    /// Release one level for holder `owner`.
    pub fn release(&self, owner: u64) -> Outcome<()> {
        self.inner.release(owner).map(|_| ())
    }

    /// Whether `owner` holds it.
    pub fn is_owned(&self, owner: u64) -> bool {
        self.inner.owned_by(owner)
    }
}

/// A fresh holder token.
fn new_token() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Unique per process; the connection id distinguishes processes on the server.
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A proxy for a shared [`RLock`]; each value is one holder.
#[derive(Debug)]
pub struct RLockProxy {
    raw: RLockCalls,
    owner: u64,
}
wrap_proxy!(RLockProxy, RLockCalls, RLock);

impl Clone for RLockProxy {
    /// A clone is another holder (like another thread).
    fn clone(&self) -> Self {
        Self::wrap(self.raw.clone())
    }
}

impl RLockProxy {
    fn wrap(raw: RLockCalls) -> Self {
        RLockProxy {
            raw,
            owner: new_token(),
        }
    }

    /// Acquire (again, if this holder holds it already), waiting as long as it takes.
    pub async fn acquire(&self) -> Result<(), SyncError> {
        self.raw.acquire(self.owner, true, None).await?;
        Ok(())
    }

    /// Acquire, waiting at most `timeout`; false if it timed out.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(self.owner, true, Some(timeout)).await?)
    }

    /// Acquire only if possible right now.
    pub async fn try_acquire(&self) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(self.owner, false, None).await?)
    }

    /// Release one level; [`SyncError::NotOwner`] if this holder does not hold it.
    pub async fn release(&self) -> Result<(), SyncError> {
        flatten(self.raw.release(self.owner).await)
    }

    /// Whether this holder holds it.
    pub async fn is_owned(&self) -> Result<bool, SyncError> {
        Ok(self.raw.is_owned(self.owner).await?)
    }
}

// ---------------------------------------------------------------------------------------
// Semaphore and BoundedSemaphore

struct SemInner {
    permits: tokio::sync::Semaphore,
    /// The initial value, for a bounded semaphore.
    bound: Option<usize>,
    /// Permits each client holds, with the hook that returns them if it disconnects.
    held: Mutex<Vec<(CallerId, usize, Option<DisconnectHook>)>>,
}

impl SemInner {
    fn new(value: usize, bounded: bool) -> Arc<Self> {
        Arc::new(SemInner {
            permits: tokio::sync::Semaphore::new(value),
            bound: bounded.then_some(value),
            held: Mutex::new(Vec::new()),
        })
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
                    // Under `held`, like `release`, so that the bound check stays exact.
                    inner.permits.add_permits(n);
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
        let permit = if !blocking {
            self.permits.try_acquire().ok()
        } else {
            match timeout {
                Some(t) => tokio::time::timeout(t, self.permits.acquire())
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => self.permits.acquire().await.ok(),
            }
        };
        match permit {
            Some(p) => {
                p.forget();
                self.record();
                true
            }
            None => false,
        }
    }

    fn release(&self) -> Outcome<()> {
        let mut held = lock(&self.held);
        if let Some(bound) = self.bound {
            if self.permits.available_permits() >= bound {
                return Err(SyncError::TooManyReleases);
            }
        }
        // Count the release against the caller's permits, or anyone's (as in Python, any
        // holder may release a semaphore).
        let me = caller_id();
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

macro_rules! semaphore {
    ($(#[$doc:meta])* $name:ident, $calls:ident, $proxy:ident, $typeid:literal, $bounded:expr) => {
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
            pub fn new(value: usize) -> Self {
                $name { inner: SemInner::new(value, $bounded) }
            }
        }

        #[shared(proxy = $calls, typeid = $typeid)]
        impl $name {
            /// Take a permit: wait (up to `timeout`) when `blocking`, else try once.
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
        #[derive(Clone, Debug)]
        pub struct $proxy {
            raw: $calls,
        }
        wrap_proxy!($proxy, $calls, $name);

        impl $proxy {
            fn wrap(raw: $calls) -> Self {
                $proxy { raw }
            }

            /// Take a permit, waiting as long as it takes.
            pub async fn acquire(&self) -> Result<(), SyncError> {
                self.raw.acquire(true, None).await?;
                Ok(())
            }

            /// Take a permit, waiting at most `timeout`; false if it timed out.
            pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
                Ok(self.raw.acquire(true, Some(timeout)).await?)
            }

            /// Take a permit only if one is free now.
            pub async fn try_acquire(&self) -> Result<bool, SyncError> {
                Ok(self.raw.acquire(false, None).await?)
            }

            /// Return a permit.
            pub async fn release(&self) -> Result<(), SyncError> {
                flatten(self.raw.release().await)
            }

            /// Permits available now.
            pub async fn value(&self) -> Result<usize, SyncError> {
                Ok(self.raw.value().await?)
            }

            /// Take a permit and return a guard that gives it back when dropped.
            pub async fn guard(&self) -> Result<LockGuard, SyncError> {
                self.acquire().await?;
                Ok(LockGuard { handle: Some(Proxy::handle(self).clone()) })
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

// ---------------------------------------------------------------------------------------
// Event

/// A flag that tasks can wait for (Python's `manager.Event()`).
pub struct Event {
    flag: Mutex<bool>,
    changed: Notify,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &*lock(&self.flag))
            .finish()
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// A clear event.
    pub fn new() -> Self {
        Event {
            flag: Mutex::new(false),
            changed: Notify::new(),
        }
    }
}

#[shared(proxy = EventProxy, typeid = "Event")]
impl Event {
    /// Set the flag and wake every waiter.
    pub fn set(&self) {
        *lock(&self.flag) = true;
        self.changed.notify_waiters();
    }

    /// Clear the flag.
    pub fn clear(&self) {
        *lock(&self.flag) = false;
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        *lock(&self.flag)
    }

    /// Wait until the flag is set, at most `timeout`; returns the flag.
    pub async fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = deadline(timeout);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if *lock(&self.flag) {
                return true;
            }
            if !wait_until(notified, deadline).await {
                return *lock(&self.flag);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Barrier

struct BarrierState {
    parties: usize,
    count: usize,
    generation: u64,
    broken: bool,
    /// How recent generations ended: `true` passed, `false` reset while waiting.
    ended: VecDeque<(u64, bool)>,
}

impl BarrierState {
    fn end(&mut self, passed: bool) {
        self.ended.push_back((self.generation, passed));
        if self.ended.len() > 32 {
            self.ended.pop_front();
        }
        self.generation += 1;
        self.count = 0;
    }
}

/// A barrier for a fixed number of parties (Python's `manager.Barrier(parties, action,
/// timeout)`; the `action` callable has no Rust counterpart here).
///
/// A party that times out, or whose client disconnects while waiting, breaks the barrier:
/// every other waiter gets [`SyncError::BrokenBarrier`], as do later waits until
/// [`reset`](BarrierProxy::reset).
pub struct Barrier {
    state: Arc<Mutex<BarrierState>>,
    changed: Arc<Notify>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("Barrier")
            .field("parties", &s.parties)
            .field("waiting", &s.count)
            .field("broken", &s.broken)
            .finish()
    }
}

impl Barrier {
    /// A barrier for `parties` (at least 1) with a default wait timeout.
    pub fn new(parties: usize, timeout: Option<Duration>) -> Self {
        Barrier {
            state: Arc::new(Mutex::new(BarrierState {
                parties: parties.max(1),
                count: 0,
                generation: 0,
                broken: false,
                ended: VecDeque::new(),
            })),
            changed: Arc::new(Notify::new()),
            timeout,
        }
    }

    /// Break the barrier; with `generation`, only if that generation is still waiting.
    fn break_now(state: &Mutex<BarrierState>, changed: &Notify, generation: Option<u64>) {
        let mut s = lock(state);
        if generation.is_some_and(|g| g != s.generation) {
            return;
        }
        s.broken = true;
        drop(s);
        changed.notify_waiters();
    }
}

/// Breaks the barrier if a waiter goes away (its client disconnected) before it is done.
struct BreakOnDrop<'a> {
    barrier: &'a Barrier,
    /// The generation the waiter waits in: once it has passed (or was reset), a late drop
    /// must not break the next one.
    generation: u64,
    armed: bool,
}

impl Drop for BreakOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            Barrier::break_now(
                &self.barrier.state,
                &self.barrier.changed,
                Some(self.generation),
            );
        }
    }
}

#[shared(proxy = BarrierCalls, typeid = "Barrier")]
impl Barrier {
    /// Wait for all parties (at most `timeout`, else the barrier's default); returns this
    /// party's arrival index, `0..parties`.
    pub async fn wait(&self, timeout: Option<Duration>) -> Outcome<usize> {
        let deadline = deadline(timeout.or(self.timeout));
        let (generation, index) = {
            let mut s = lock(&self.state);
            if s.broken {
                return Err(SyncError::BrokenBarrier);
            }
            let index = s.count;
            s.count += 1;
            if s.count == s.parties {
                s.end(true);
                drop(s);
                self.changed.notify_waiters();
                return Ok(index);
            }
            (s.generation, index)
        };
        let mut guard = BreakOnDrop {
            barrier: self,
            generation,
            armed: true,
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = lock(&self.state);
                if s.generation != generation {
                    guard.armed = false;
                    let passed = s
                        .ended
                        .iter()
                        .find(|e| e.0 == generation)
                        .is_none_or(|e| e.1);
                    return if passed {
                        Ok(index)
                    } else {
                        Err(SyncError::BrokenBarrier)
                    };
                }
                if s.broken {
                    guard.armed = false;
                    return Err(SyncError::BrokenBarrier);
                }
            }
            if !wait_until(notified, deadline).await {
                // Timed out: break the barrier for everyone (the guard does it).
                drop(guard);
                return Err(SyncError::BrokenBarrier);
            }
        }
    }

    /// Break the barrier: current and later waiters get [`SyncError::BrokenBarrier`].
    pub fn abort(&self) {
        Barrier::break_now(&self.state, &self.changed, None);
    }

    /// Return to the initial state; current waiters get [`SyncError::BrokenBarrier`].
    pub fn reset(&self) {
        let mut s = lock(&self.state);
        if s.count > 0 {
            s.end(false);
        }
        s.broken = false;
        drop(s);
        self.changed.notify_waiters();
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        lock(&self.state).parties
    }

    /// How many parties are waiting now.
    pub fn n_waiting(&self) -> usize {
        let s = lock(&self.state);
        if s.broken {
            0
        } else {
            s.count
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        lock(&self.state).broken
    }
}

/// A proxy for a shared [`Barrier`].
#[derive(Clone, Debug)]
pub struct BarrierProxy {
    raw: BarrierCalls,
}
wrap_proxy!(BarrierProxy, BarrierCalls, Barrier);

impl BarrierProxy {
    fn wrap(raw: BarrierCalls) -> Self {
        BarrierProxy { raw }
    }

    /// Wait for all parties with the barrier's default timeout; returns the arrival index.
    pub async fn wait(&self) -> Result<usize, SyncError> {
        flatten(self.raw.wait(None).await)
    }

    /// Wait for all parties, at most `timeout`.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<usize, SyncError> {
        flatten(self.raw.wait(Some(timeout)).await)
    }

    /// Break the barrier.
    pub async fn abort(&self) -> Result<(), SyncError> {
        Ok(self.raw.abort().await?)
    }

    /// Reset the barrier.
    pub async fn reset(&self) -> Result<(), SyncError> {
        Ok(self.raw.reset().await?)
    }

    /// The number of parties.
    pub async fn parties(&self) -> Result<usize, SyncError> {
        Ok(self.raw.parties().await?)
    }

    /// How many parties are waiting.
    pub async fn n_waiting(&self) -> Result<usize, SyncError> {
        Ok(self.raw.n_waiting().await?)
    }

    /// Whether the barrier is broken.
    pub async fn broken(&self) -> Result<bool, SyncError> {
        Ok(self.raw.broken().await?)
    }
}

// ---------------------------------------------------------------------------------------
// Condition

/// One waiter of a condition.
struct CondWaiter {
    woken: std::sync::atomic::AtomicBool,
    wake: Notify,
    /// Its client disconnected. Set by a disconnect hook as soon as the server notices;
    /// the call itself is dropped only later, and a notify in between must skip it.
    gone: std::sync::atomic::AtomicBool,
}

/// A condition variable over its own re-entrant lock (Python's `manager.Condition()`).
///
/// Use it like Python's: acquire, check the state, `wait` (which releases the lock while
/// waiting and re-acquires it), `notify`. A waiter whose client disconnects is withdrawn:
/// it consumes no notification.
pub struct Condition {
    lock: Arc<RLockInner>,
    waiters: Mutex<VecDeque<Arc<CondWaiter>>>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("waiters", &lock(&self.waiters).len())
            .finish()
    }
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl Condition {
    /// A condition with a fresh re-entrant lock.
    pub fn new() -> Self {
        Condition {
            lock: RLockInner::new(),
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    fn withdraw(&self, waiter: &Arc<CondWaiter>) {
        lock(&self.waiters).retain(|w| !Arc::ptr_eq(w, waiter));
    }
}

/// Withdraws a waiter that goes away before it is woken.
struct Withdraw<'a> {
    condition: &'a Condition,
    waiter: Arc<CondWaiter>,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.condition.withdraw(&self.waiter);
    }
}

#[shared(proxy = ConditionCalls, typeid = "Condition")]
impl Condition {
    /// Acquire the underlying lock for holder `owner`.
    pub async fn acquire(&self, owner: u64, blocking: bool, timeout: Option<Duration>) -> bool {
        self.lock.acquire(owner, blocking, timeout).await
    }

    /// Release the underlying lock (one level) for holder `owner`.
    pub fn release(&self, owner: u64) -> Outcome<()> {
        self.lock.release(owner).map(|_| ())
    }

    /// Release the lock, wait for a notification (at most `timeout`), re-acquire the lock.
    /// Returns whether it was notified (false: timed out). The holder must hold the lock.
    pub async fn wait(&self, owner: u64, timeout: Option<Duration>) -> Outcome<bool> {
        let waiter = Arc::new(CondWaiter {
            woken: std::sync::atomic::AtomicBool::new(false),
            wake: Notify::new(),
            gone: std::sync::atomic::AtomicBool::new(false),
        });
        let _gone = Caller::current().map(|caller| {
            let weak = Arc::downgrade(&waiter);
            caller.on_disconnect(move || {
                if let Some(waiter) = weak.upgrade() {
                    waiter.gone.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            })
        });
        lock(&self.waiters).push_back(waiter.clone());
        let withdraw = Withdraw {
            condition: self,
            waiter: waiter.clone(),
        };
        let count = self.lock.release_all(owner)?;
        let deadline = deadline(timeout);
        let woken = loop {
            let notified = waiter.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if waiter.woken.load(std::sync::atomic::Ordering::SeqCst) {
                break true;
            }
            if !wait_until(notified, deadline).await {
                break waiter.woken.load(std::sync::atomic::Ordering::SeqCst);
            }
        };
        drop(withdraw);
        self.lock.acquire(owner, true, None).await;
        self.lock.set_count(count);
        Ok(woken)
    }

    /// Wake up to `n` waiters. The holder must hold the lock.
    pub fn notify(&self, owner: u64, n: usize) -> Outcome<()> {
        if !self.lock.owned_by(owner) {
            return Err(SyncError::NotOwner);
        }
        let mut waiters = lock(&self.waiters);
        let mut woken = 0;
        while woken < n {
            let Some(w) = waiters.pop_front() else { break };
            if w.gone.load(std::sync::atomic::Ordering::SeqCst) {
                continue; // a dead client's waiter consumes nothing
            }
            w.woken.store(true, std::sync::atomic::Ordering::SeqCst);
            w.wake.notify_one();
            woken += 1;
        }
        Ok(())
    }

    /// Wake every waiter. The holder must hold the lock.
    pub fn notify_all(&self, owner: u64) -> Outcome<()> {
        self.notify(owner, usize::MAX)
    }
}

/// A proxy for a shared [`Condition`]; each value is one holder of its lock.
#[derive(Debug)]
pub struct ConditionProxy {
    raw: ConditionCalls,
    owner: u64,
}
wrap_proxy!(ConditionProxy, ConditionCalls, Condition);

impl Clone for ConditionProxy {
    /// A clone is another holder (like another thread).
    fn clone(&self) -> Self {
        Self::wrap(self.raw.clone())
    }
}

impl ConditionProxy {
    fn wrap(raw: ConditionCalls) -> Self {
        ConditionProxy {
            raw,
            owner: new_token(),
        }
    }

    /// Acquire the lock, waiting as long as it takes.
    pub async fn acquire(&self) -> Result<(), SyncError> {
        self.raw.acquire(self.owner, true, None).await?;
        Ok(())
    }

    /// Acquire the lock, waiting at most `timeout`.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(self.owner, true, Some(timeout)).await?)
    }

    /// Release the lock.
    pub async fn release(&self) -> Result<(), SyncError> {
        flatten(self.raw.release(self.owner).await)
    }

    /// Wait for a notification (the lock must be held; it is released while waiting).
    /// Returns false if `timeout` passed first.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        flatten(self.raw.wait(self.owner, timeout).await)
    }

    /// Wait until `predicate` holds (evaluated here, with the lock held), at most
    /// `timeout`; returns the predicate's last value (Python's `wait_for`).
    pub async fn wait_for<F, Fut>(
        &self,
        mut predicate: F,
        timeout: Option<Duration>,
    ) -> Result<bool, SyncError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, SyncError>>,
    {
        let deadline = deadline(timeout);
        loop {
            if predicate().await? {
                return Ok(true);
            }
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    Some(d - now)
                }
                None => None,
            };
            self.wait(remaining).await?;
        }
    }

    /// Wake up to `n` waiters (the lock must be held).
    pub async fn notify(&self, n: usize) -> Result<(), SyncError> {
        flatten(self.raw.notify(self.owner, n).await)
    }

    /// Wake every waiter (the lock must be held).
    pub async fn notify_all(&self) -> Result<(), SyncError> {
        flatten(self.raw.notify_all(self.owner).await)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use super::*;

    #[tokio::test]
    async fn a_party_dropped_after_its_round_passed_does_not_break_the_next() {
        let barrier = Barrier::new(2, None);
        let mut first = Box::pin(barrier.wait(None));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            first.as_mut().poll(&mut cx).is_pending(),
            "waits for a second party"
        );
        assert!(matches!(barrier.wait(None).await, Ok(1)));
        // The first party's call goes away (its client died) before it saw the round pass.
        drop(first);
        assert!(!barrier.broken());
        assert!(matches!(
            futures_util::join!(barrier.wait(None), barrier.wait(None)),
            (Ok(0), Ok(1))
        ));
    }

    #[tokio::test]
    async fn a_party_dropped_while_waiting_breaks_the_barrier() {
        let barrier = Barrier::new(2, None);
        let mut first = Box::pin(barrier.wait(None));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(first.as_mut().poll(&mut cx), Poll::Pending));
        drop(first);
        assert!(barrier.broken());
        assert!(matches!(
            barrier.wait(None).await,
            Err(SyncError::BrokenBarrier)
        ));
    }
}
