//! `Barrier`: a party that times out or whose client dies breaks it for the others.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::error::{flatten, Outcome, SyncError};
use super::support::{before_effects, deadline, lock, wait_until};
use crate::shared;

struct BarrierState {
    parties: usize,
    count: usize,
    generation: u64,
    broken: bool,
    /// How recent generations ended: `true` passed, `false` reset while waiting.
    ended: VecDeque<(u64, bool)>,
}

impl BarrierState {
    /// What a party of round `generation` gets once that round has ended.
    fn outcome(&self, generation: u64, index: usize) -> Outcome<usize> {
        let passed = self
            .ended
            .iter()
            .find(|e| e.0 == generation)
            .is_none_or(|e| e.1);
        if passed {
            Ok(index)
        } else {
            Err(SyncError::BrokenBarrier)
        }
    }

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

#[shared(proxy = BarrierCalls, name = "Barrier", errors = value)]
impl Barrier {
    /// Wait for all parties (at most `timeout`, else the barrier's default); returns this
    /// party's arrival index, `0..parties`.
    ///
    /// Cancel safety: dropped while it waits for the others, it breaks the barrier for
    /// them, as a timeout does; through a proxy, that happens when the client drops the
    /// call or disconnects. Dropped before it arrived (it yields once first), it has no
    /// effect. A wait that returned is not undone.
    pub async fn wait(&self, timeout: Option<Duration>) -> Outcome<usize> {
        before_effects().await;
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
                    return s.outcome(generation, index);
                }
                if s.broken {
                    guard.armed = false;
                    return Err(SyncError::BrokenBarrier);
                }
            }
            if !wait_until(notified, deadline).await {
                // Timed out. If the round passed in the meantime, this party passed too;
                // otherwise break the barrier for everyone, under the same lock.
                guard.armed = false;
                let mut s = lock(&self.state);
                if s.generation != generation {
                    return s.outcome(generation, index);
                }
                s.broken = true;
                drop(s);
                self.changed.notify_waiters();
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
#[derive(Clone, Debug, crate::Proxy)]
#[proxy(target = Barrier)]
pub struct BarrierProxy {
    #[proxy(inner)]
    raw: BarrierCalls,
}

impl BarrierProxy {
    /// Wait for all parties with the barrier's default timeout; returns the arrival index.
    ///
    /// # Cancel safety
    /// Dropping the future while this party waits at the server breaks the barrier for the
    /// other parties, exactly as a timeout would: they get [`SyncError::BrokenBarrier`],
    /// as do later waits until [`reset`](Self::reset). Dropped before the server counted
    /// this party, it has no effect; a wait that completed on the server (the round
    /// passed) is not undone, even if its reply is dropped. To bound the wait, use
    /// [`wait_timeout`](Self::wait_timeout) rather than `tokio::time::timeout`: the effect
    /// on the barrier is the same, and this party gets the error.
    pub async fn wait(&self) -> Result<usize, SyncError> {
        flatten(self.raw.wait(None).await)
    }

    /// Wait for all parties, at most `timeout`.
    ///
    /// Cancel safety: as [`wait`](Self::wait): dropping the future while this party waits
    /// breaks the barrier; a wait that completed is not undone.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<usize, SyncError> {
        flatten(self.raw.wait(Some(timeout)).await)
    }

    /// Break the barrier.
    ///
    /// Cancel safety: once polled, the barrier is broken even if the future is dropped;
    /// only the reply is lost.
    pub async fn abort(&self) -> Result<(), SyncError> {
        Ok(self.raw.abort().await?)
    }

    /// Reset the barrier.
    ///
    /// Cancel safety: once polled, the barrier is reset even if the future is dropped;
    /// only the reply is lost.
    pub async fn reset(&self) -> Result<(), SyncError> {
        Ok(self.raw.reset().await?)
    }

    /// The number of parties.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn parties(&self) -> Result<usize, SyncError> {
        Ok(self.raw.parties().await?)
    }

    /// How many parties are waiting.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn n_waiting(&self) -> Result<usize, SyncError> {
        Ok(self.raw.n_waiting().await?)
    }

    /// Whether the barrier is broken.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn broken(&self) -> Result<bool, SyncError> {
        Ok(self.raw.broken().await?)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// Poll a party's wait until it has arrived: its first poll only yields (see
    /// `before_effects`), its second counts it and waits for the others.
    fn arrive(mut wait: std::pin::Pin<&mut impl Future<Output = Outcome<usize>>>) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending(), "yields first");
        assert!(
            wait.as_mut().poll(&mut cx).is_pending(),
            "waits for the others"
        );
    }

    #[tokio::test]
    async fn a_wait_dropped_at_its_first_poll_leaves_the_barrier_whole() {
        // What a server does to a wait it refuses past its limit of waiting calls.
        let barrier = Barrier::new(2, None);
        let mut refused = Box::pin(barrier.wait(None));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(refused.as_mut().poll(&mut cx), Poll::Pending));
        drop(refused);
        assert!(!barrier.broken());
        assert!(matches!(
            futures_util::join!(barrier.wait(None), barrier.wait(None)),
            (Ok(0), Ok(1))
        ));
    }

    #[tokio::test]
    async fn a_party_dropped_after_its_round_passed_does_not_break_the_next() {
        let barrier = Barrier::new(2, None);
        let mut first = Box::pin(barrier.wait(None));
        arrive(first.as_mut());
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
        arrive(first.as_mut());
        drop(first);
        assert!(barrier.broken());
        assert!(matches!(
            barrier.wait(None).await,
            Err(SyncError::BrokenBarrier)
        ));
    }
}
