//! Helpers the lock types and the queue share: poison-free mutex access, the caller's id,
//! deadlines and waits with a server-side timeout, and taking a semaphore permit.

use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::time::Instant;

use crate::{Caller, CallerId};

/// Lock `m`, taking the guard back if a panic poisoned it.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection the current call came from, if it came from one.
pub(super) fn caller_id() -> Option<CallerId> {
    Caller::current().map(|c| c.id())
}

/// When a wait of at most `timeout` (forever if `None`) started now ends. A timeout too
/// long to be a point in time (`Duration::MAX` from a client) waits forever.
pub(super) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Yield once before a wait that has effects as it starts (a barrier counts its party, a
/// condition releases its lock). A server polls every call once as it reads it and, past
/// its limit of waiting calls, drops one that did not finish there and answers
/// `RemoteError::Busy`; yielding first makes that refusal leave nothing to undo.
pub(super) async fn before_effects() {
    tokio::task::yield_now().await
}

/// Wait for `notified` until `deadline` (forever if `None`); false on timeout. Dropping a
/// `notify_one` wake-up that was not consumed passes it on to the next waiter, so a
/// timed-out or cancelled waiter never swallows one.
pub(super) async fn wait_until(
    notified: Pin<&mut Notified<'_>>,
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

/// Take one permit from `permits` for good: wait (up to `timeout`, if given) when
/// `blocking`, else try once. Returns whether a permit was taken.
pub(super) async fn take_permit(
    permits: &tokio::sync::Semaphore,
    blocking: bool,
    timeout: Option<Duration>,
) -> bool {
    let permit = if !blocking {
        permits.try_acquire().ok()
    } else {
        match timeout {
            Some(t) => tokio::time::timeout(t, permits.acquire())
                .await
                .ok()
                .and_then(Result::ok),
            None => permits.acquire().await.ok(),
        }
    };
    match permit {
        Some(p) => {
            p.forget();
            true
        }
        None => false,
    }
}
