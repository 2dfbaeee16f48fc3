//! `RLock` and `Condition`, which share the re-entrant lock state: a holder is one proxy
//! value on one connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::error::{flatten, Outcome, SyncError};
use super::support::{before_effects, caller_id, deadline, lock, wait_until};
use crate::{shared, Caller, CallerId, DisconnectHook, Proxy};

struct RLockState {
    /// The holder: its connection and the proxy's owner token.
    owner: Option<(Option<CallerId>, u64)>,
    count: usize,
    hook: Option<DisconnectHook>,
}

pub(crate) struct RLockInner {
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
                let state = lock(&inner.state);
                if state.owner.is_some_and(|o| o.0 == me.0) {
                    inner.free(state);
                }
            }
        });
        let mut state = lock(&self.state);
        if state.owner == Some(me) {
            state.hook = Some(hook);
        }
    }

    /// Take one level for `token`; with `undoable`, a caller that never takes the result
    /// gives it back (see `Caller::undo_unless_taken`).
    async fn acquire(
        self: &Arc<Self>,
        token: u64,
        blocking: bool,
        timeout: Option<Duration>,
        undoable: bool,
    ) -> bool {
        let me = (caller_id(), token);
        let deadline = deadline(timeout);
        let taken = loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.try_take(me) {
                break true;
            }
            if !blocking {
                break false;
            }
            if !wait_until(notified, deadline).await {
                // Timed out: one last try (a take must never be reported as a failure).
                break self.try_take(me);
            }
        };
        if taken && undoable && me.0.is_some() {
            // A caller that never learns it got this level (it dropped the call, or died
            // while the reply was on its way) does not keep it.
            let weak = Arc::downgrade(self);
            Caller::undo_unless_taken(move || {
                if let Some(inner) = weak.upgrade() {
                    let _ = inner.release_by(me);
                }
            });
        }
        taken
    }

    /// Release one level; `Ok(true)` when the lock became free.
    fn release(&self, token: u64) -> Outcome<bool> {
        self.release_by((caller_id(), token))
    }

    /// Release one level held by `me`.
    fn release_by(&self, me: (Option<CallerId>, u64)) -> Outcome<bool> {
        let mut state = lock(&self.state);
        if state.owner != Some(me) {
            return Err(SyncError::NotOwner);
        }
        state.count -= 1;
        if state.count > 0 {
            return Ok(false);
        }
        self.free(state);
        Ok(true)
    }

    /// Release every level (for `Condition::wait`); returns the count to restore.
    fn release_all(&self, token: u64) -> Outcome<usize> {
        let me = (caller_id(), token);
        let state = lock(&self.state);
        if state.owner != Some(me) {
            return Err(SyncError::NotOwner);
        }
        let count = state.count;
        self.free(state);
        Ok(count)
    }

    /// Free the lock (`state` is its locked state) and wake one waiter. The disconnect
    /// hook is dropped after the state is unlocked.
    fn free(&self, mut state: MutexGuard<'_, RLockState>) {
        state.owner = None;
        state.count = 0;
        let hook = state.hook.take();
        drop(state);
        drop(hook);
        self.released.notify_one();
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
    pub(crate) inner: Arc<RLockInner>,
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

#[shared(proxy = RLockCalls, name = "RLock", errors = value)]
impl RLock {
    /// Acquire for holder `owner` (a token chosen by the proxy).
    ///
    /// Cancel safety: dropped while it waits, it takes nothing. Through a proxy, a level
    /// it took for a call whose result the client never takes (it dropped the call, or
    /// disconnected) is released again by the server.
    pub async fn acquire(&self, owner: u64, blocking: bool, timeout: Option<Duration>) -> bool {
        self.inner.acquire(owner, blocking, timeout, true).await
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

/// A proxy's holder token: a fresh one for each proxy value (made from a handle, or cloned),
/// unique in this process; the connection id distinguishes processes on the server.
#[derive(Debug, PartialEq, Eq)]
struct HolderToken(u64);

impl Default for HolderToken {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        HolderToken(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The lock methods of a proxy that is one holder of a re-entrant lock (a struct with its
/// generated calls `raw` and its holder token `owner`, as [`RLockProxy`] and
/// [`ConditionProxy`] are): a `Clone` that is another holder, and `acquire`, `lock`,
/// `acquire_timeout` and `release`.
macro_rules! holder_methods {
    ($proxy:ident) => {
        impl Clone for $proxy {
            /// A clone is another holder (like another thread).
            fn clone(&self) -> Self {
                $proxy {
                    raw: self.raw.clone(),
                    owner: HolderToken::default(),
                }
            }
        }

        impl $proxy {
            /// This holder, with a deadline of `timeout` on every call (see
            /// [`Proxy::with_timeout`](crate::Proxy::with_timeout)): unlike a clone, the
            /// result is the *same* holder, so a lock acquired through it is released
            /// through `self`, and the reverse.
            pub fn with_timeout(&self, timeout: Duration) -> Self {
                $proxy {
                    raw: crate::Proxy::from_handle(self.raw.handle().with_timeout(timeout)),
                    owner: HolderToken(self.owner.0),
                }
            }

            /// Acquire the lock (again, if this holder holds it already), waiting as long
            /// as it takes.
            ///
            /// Cancel safe: dropping the future while it waits withdraws the request, and
            /// a level the server granted to a dropped call is released as the cancel
            /// reaches it, so a dropped `acquire` leaves this holder's hold as it was.
            pub async fn acquire(&self) -> Result<(), SyncError> {
                self.raw.acquire(self.owner.0, true, None).await?;
                Ok(())
            }

            /// Acquire and return a guard that releases one level when dropped
            /// (`with lock:`).
            ///
            /// Cancel safe, as [`acquire`](Self::acquire): a dropped `lock` leaves this
            /// holder's hold as it was.
            pub async fn lock(&self) -> Result<super::LockGuard, SyncError> {
                self.acquire().await?;
                Ok(super::lock::LockGuard::for_holder(self, self.owner.0))
            }

            /// Acquire the lock, waiting at most `timeout`; false if it timed out.
            ///
            /// Cancel safe, as [`acquire`](Self::acquire): a dropped call leaves this
            /// holder's hold as it was.
            pub async fn acquire_timeout(&self, timeout: Duration) -> Result<bool, SyncError> {
                Ok(self.raw.acquire(self.owner.0, true, Some(timeout)).await?)
            }

            /// Release one level; [`SyncError::NotOwner`] if this holder does not hold it.
            ///
            /// Cancel safety: once polled, the level is released even if the future is
            /// dropped; only the result is lost.
            pub async fn release(&self) -> Result<(), SyncError> {
                flatten(self.raw.release(self.owner.0).await)
            }
        }
    };
}

/// A proxy for a shared [`RLock`]; each value is one holder.
#[derive(Debug, crate::Proxy)]
#[proxy(target = RLock)]
pub struct RLockProxy {
    #[proxy(inner)]
    raw: RLockCalls,
    owner: HolderToken,
}
holder_methods!(RLockProxy);

impl RLockProxy {
    /// Acquire only if possible right now.
    ///
    /// Cancel safe, as [`acquire`](Self::acquire): a level granted to a dropped call is
    /// released by the server.
    pub async fn try_acquire(&self) -> Result<bool, SyncError> {
        Ok(self.raw.acquire(self.owner.0, false, None).await?)
    }

    /// Whether this holder holds it.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn is_owned(&self) -> Result<bool, SyncError> {
        Ok(self.raw.is_owned(self.owner.0).await?)
    }
}

// ---------------------------------------------------------------------------------------
// Condition

/// One waiter of a condition.
struct CondWaiter {
    woken: AtomicBool,
    wake: Notify,
    /// Its client disconnected. Set by a disconnect hook as soon as the server notices;
    /// the call itself is dropped only later, and a notify in between must skip it.
    gone: AtomicBool,
}

/// A condition variable over its own re-entrant lock (Python's `manager.Condition()`).
///
/// Use it like Python's: acquire, check the state, `wait` (which releases the lock while
/// waiting and re-acquires it), `notify`. A waiter whose client disconnects is withdrawn:
/// it consumes no notification.
pub struct Condition {
    lock: CondLock,
    waiters: Mutex<VecDeque<Arc<CondWaiter>>>,
}

/// The lock under a condition: its own or a given re-entrant lock, or a given plain lock.
enum CondLock {
    Reentrant(Arc<RLockInner>),
    Plain(Arc<super::lock::LockInner>),
}

impl CondLock {
    async fn acquire(&self, owner: u64, blocking: bool, timeout: Option<Duration>) -> bool {
        match self {
            CondLock::Reentrant(l) => l.acquire(owner, blocking, timeout, true).await,
            CondLock::Plain(l) => l.acquire(blocking, timeout).await,
        }
    }

    fn release(&self, owner: u64) -> Outcome<()> {
        match self {
            CondLock::Reentrant(l) => l.release(owner).map(|_| ()),
            CondLock::Plain(l) if l.held_by_caller() => l.release(),
            CondLock::Plain(_) => Err(SyncError::NotOwner),
        }
    }

    /// Release completely for a wait; returns what to restore.
    fn release_all(&self, owner: u64) -> Outcome<usize> {
        match self {
            CondLock::Reentrant(l) => l.release_all(owner),
            CondLock::Plain(_) => self.release(owner).map(|()| 1),
        }
    }

    /// Take the lock back after a wait, at the count it had. Not undone if the wait's
    /// caller never takes the result: it held the lock before the wait, and holds it after.
    async fn reacquire(&self, owner: u64, count: usize) {
        match self {
            CondLock::Reentrant(l) => {
                l.acquire(owner, true, None, false).await;
                l.set_count(count);
            }
            CondLock::Plain(l) => {
                l.take(true, None).await;
            }
        }
    }

    fn owned_by(&self, owner: u64) -> bool {
        match self {
            CondLock::Reentrant(l) => l.owned_by(owner),
            CondLock::Plain(l) => l.held_by_caller(),
        }
    }
}

/// The lock a condition is created over (Python's `manager.Condition(lock)`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ConditionLock {
    /// A shared [`Lock`](super::Lock): held by a client connection.
    Lock(super::LockProxy),
    /// A shared [`RLock`]: the condition's proxy becomes the same holder as this proxy.
    RLock(RLockProxy),
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
            lock: CondLock::Reentrant(RLockInner::new()),
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    /// A condition over `lock`, a lock of the same manager (inside the server, where the
    /// constructor runs). Fails for a lock of another manager.
    pub fn over(lock: Option<ConditionLock>) -> Result<Self, SyncError> {
        let lock = match lock {
            None => return Ok(Self::new()),
            Some(ConditionLock::Lock(p)) => {
                Proxy::handle(&p).with_local(|l: &super::Lock| CondLock::Plain(l.inner.clone()))
            }
            Some(ConditionLock::RLock(p)) => {
                Proxy::handle(&p).with_local(|l: &RLock| CondLock::Reentrant(l.inner.clone()))
            }
        };
        let lock = lock.ok_or_else(|| {
            SyncError::Invalid("a condition's lock must be a lock of the same manager".into())
        })?;
        Ok(Condition {
            lock,
            waiters: Mutex::new(VecDeque::new()),
        })
    }

    /// Remove `waiter` from the queue; false if a notify took it out already.
    fn withdraw(&self, waiter: &Arc<CondWaiter>) -> bool {
        let mut waiters = lock(&self.waiters);
        match waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            Some(pos) => {
                waiters.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Give a notification that a waiter could not use to the next live waiter.
    fn pass_on(&self) {
        let mut waiters = lock(&self.waiters);
        while let Some(w) = waiters.pop_front() {
            if w.gone.load(Ordering::SeqCst) {
                continue;
            }
            w.woken.store(true, Ordering::SeqCst);
            w.wake.notify_one();
            break;
        }
    }
}

/// Withdraws a waiter that goes away before it is woken.
struct Withdraw<'a> {
    condition: &'a Condition,
    waiter: Arc<CondWaiter>,
    /// The wait returned normally (the lock is held again).
    done: bool,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let was_queued = self.condition.withdraw(&self.waiter);
        // Notified, then dropped before it could use it (its client went away, or it was
        // cancelled while re-acquiring the lock): the notification goes to the next waiter.
        if !was_queued && !self.done && self.waiter.woken.load(Ordering::SeqCst) {
            self.condition.pass_on();
        }
    }
}

#[shared(proxy = ConditionCalls, name = "Condition", errors = value)]
impl Condition {
    /// Acquire the underlying lock for holder `owner`.
    ///
    /// Cancel safety: dropped while it waits, it takes nothing. Through a proxy, a lock (or
    /// level) it took for a call whose result the client never takes is released again by
    /// the server.
    pub async fn acquire(&self, owner: u64, blocking: bool, timeout: Option<Duration>) -> bool {
        self.lock.acquire(owner, blocking, timeout).await
    }

    /// Release the underlying lock (one level) for holder `owner`.
    pub fn release(&self, owner: u64) -> Outcome<()> {
        self.lock.release(owner)
    }

    /// Release the lock, wait for a notification (at most `timeout`), re-acquire the lock.
    /// Returns whether it was notified (false: timed out). The holder must hold the lock.
    ///
    /// Cancel safety: dropped before it started (it yields once first), it has no effect.
    /// Dropped while it waits for a notification or re-acquires the lock, it leaves
    /// `owner` without the lock: the wait released it, and the re-acquire is abandoned. A
    /// notification it had received goes to the next waiter. A wait that returned is not
    /// undone: `owner` holds the lock again, even if its caller never takes the result.
    pub async fn wait(&self, owner: u64, timeout: Option<Duration>) -> Outcome<bool> {
        before_effects().await;
        let waiter = Arc::new(CondWaiter {
            woken: AtomicBool::new(false),
            wake: Notify::new(),
            gone: AtomicBool::new(false),
        });
        let _gone = Caller::current().map(|caller| {
            let weak = Arc::downgrade(&waiter);
            caller.on_disconnect(move || {
                if let Some(waiter) = weak.upgrade() {
                    waiter.gone.store(true, Ordering::SeqCst);
                }
            })
        });
        lock(&self.waiters).push_back(waiter.clone());
        let mut withdraw = Withdraw {
            condition: self,
            waiter: waiter.clone(),
            done: false,
        };
        let count = self.lock.release_all(owner)?;
        let deadline = deadline(timeout);
        let woken = loop {
            let notified = waiter.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if waiter.woken.load(Ordering::SeqCst) {
                break true;
            }
            if !wait_until(notified, deadline).await {
                // Timed out, unless a notify took this waiter out of the queue meanwhile.
                break !self.withdraw(&waiter);
            }
        };
        self.lock.reacquire(owner, count).await;
        withdraw.done = true;
        drop(withdraw);
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
            if w.gone.load(Ordering::SeqCst) {
                continue; // a dead client's waiter consumes nothing
            }
            w.woken.store(true, Ordering::SeqCst);
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
#[derive(Debug, crate::Proxy)]
#[proxy(target = Condition)]
pub struct ConditionProxy {
    #[proxy(inner)]
    raw: ConditionCalls,
    owner: HolderToken,
}
holder_methods!(ConditionProxy);

impl ConditionProxy {
    /// This proxy, acting as the same holder as `rlock`, for a condition created over that
    /// re-entrant lock ([`SyncManager::condition_with_rlock`](super::SyncManager::condition_with_rlock)):
    /// then holding the lock through `rlock` lets this proxy `wait` and `notify`, as a
    /// Python thread does with `with lock: cond.wait()`.
    pub fn same_holder_as(mut self, rlock: &RLockProxy) -> Self {
        self.owner = HolderToken(rlock.owner.0);
        self
    }

    /// Wait for a notification (the lock must be held; it is released while waiting).
    /// Returns false if `timeout` passed first.
    ///
    /// # Cancel safety
    /// Not cancel safe for the lock. The server releases the lock when the wait starts and
    /// takes it back before it returns; dropping the future while it waits for a
    /// notification or re-acquires the lock withdraws the wait and abandons the
    /// re-acquire, so this holder no longer holds the lock: a later
    /// [`release`](Self::release) through this proxy, or by its
    /// [`LockGuard`](super::LockGuard), fails with [`SyncError::NotOwner`]. (Over a plain
    /// [`Lock`](super::Lock), ownership is per connection: if another task of this client
    /// holds that lock by then, such a release frees it.) A notification the dropped wait
    /// had received goes to the next waiter. Dropped before the server started the wait,
    /// the lock is still held. A wait that completed on the server is not undone: the lock
    /// is held again.
    ///
    /// To bound the wait, pass `timeout` rather than wrapping the call in
    /// `tokio::time::timeout`: a wait that times out on the server re-acquires the lock
    /// before it returns `false` (waiting for it as long as it takes, as in Python).
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        flatten(self.raw.wait(self.owner.0, timeout).await)
    }

    /// Wait until `predicate` holds (evaluated here, with the lock held), at most
    /// `timeout`; returns the predicate's last value (Python's `wait_for`).
    ///
    /// Cancel safety: dropped while `predicate` runs, it leaves the lock as it was; dropped
    /// inside its [`wait`](Self::wait), it leaves this holder without the lock, as a
    /// dropped `wait` does. Bound it with `timeout`, not `tokio::time::timeout`.
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
    ///
    /// Cancel safety: once polled, the waiters are woken even if the future is dropped;
    /// only the result is lost.
    pub async fn notify(&self, n: usize) -> Result<(), SyncError> {
        flatten(self.raw.notify(self.owner.0, n).await)
    }

    /// Wake every waiter (the lock must be held).
    ///
    /// Cancel safety: once polled, the waiters are woken even if the future is dropped;
    /// only the result is lost.
    pub async fn notify_all(&self) -> Result<(), SyncError> {
        flatten(self.raw.notify_all(self.owner.0).await)
    }
}
