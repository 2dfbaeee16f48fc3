//! Connections still in the handshake: a bounded set of their own, apart from the logged-in
//! ones, where the oldest makes way for a newcomer once it has had a fair chance.
//!
//! A client that says nothing after connecting costs the server a slot until the handshake
//! timeout. With slots shared with logged-in connections, about a hundred silent
//! connections a second kept a server full and every legitimate client out. Here a
//! handshake that has lasted [`Handshakes::grace`] gives its slot up to a new connection
//! when the slots are full: a legitimate client authenticates in a round trip or two, far
//! within the grace, while a flood has to bring `max_handshakes / grace` new connections a
//! second just to make newcomers wait, and even then they get in, oldest first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The handshakes in progress, oldest first.
#[derive(Debug)]
pub(crate) struct Handshakes {
    max: usize,
    grace: Duration,
    pending: Mutex<VecDeque<Pending>>,
    /// Woken when a handshake ends.
    freed: Notify,
    next: AtomicU64,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    started: Instant,
    /// Cancelled to make the handshake give its slot up.
    evict: CancellationToken,
}

/// One connection's place among the handshakes; gives it back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    handshakes: Arc<Handshakes>,
    id: u64,
    /// Cancelled if a newer connection takes this slot over.
    pub(crate) evicted: CancellationToken,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut pending = self.handshakes.lock();
        if let Some(pos) = pending.iter().position(|p| p.id == self.id) {
            pending.remove(pos);
        }
        drop(pending);
        self.handshakes.freed.notify_one();
    }
}

impl Handshakes {
    /// At most `max` handshakes at once; one may be cut short once it has lasted `grace`.
    pub(crate) fn new(max: usize, grace: Duration) -> Self {
        Handshakes {
            max: max.max(1),
            grace,
            pending: Mutex::new(VecDeque::new()),
            freed: Notify::new(),
            next: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection: a free one, or the oldest handshake's once it has
    /// lasted the grace (that handshake is cancelled; `true` says so). Waits otherwise.
    ///
    /// Cancel safety: dropping the future takes no slot.
    pub(crate) async fn admit(self: &Arc<Self>) -> (Slot, bool) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let ripe = match self.try_admit() {
                Ok(admitted) => return admitted,
                Err(ripe) => ripe,
            };
            tokio::select! {
                () = &mut freed => {}
                () = tokio::time::sleep_until(ripe) => {}
            }
        }
    }

    /// A slot now, or when the oldest handshake may be cut short.
    fn try_admit(self: &Arc<Self>) -> Result<(Slot, bool), Instant> {
        let mut pending = self.lock();
        let mut evicted = false;
        if pending.len() >= self.max {
            let now = Instant::now();
            let ripe = pending.front().map_or(now, |p| p.started + self.grace);
            if ripe > now {
                return Err(ripe);
            }
            if let Some(old) = pending.pop_front() {
                old.evict.cancel();
                evicted = true;
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evict = CancellationToken::new();
        pending.push_back(Pending {
            id,
            started: Instant::now(),
            evict: evict.clone(),
        });
        Ok((
            Slot {
                handshakes: self.clone(),
                id,
                evicted: evict,
            },
            evicted,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_oldest_handshake_makes_way_once_it_had_its_grace() {
        let h = Arc::new(Handshakes::new(2, Duration::from_millis(100)));
        let (a, evicted) = h.admit().await;
        assert!(!evicted);
        let (b, _) = h.admit().await;
        // Full, and nobody has had the grace yet: the third waits, then takes a's slot.
        let started = Instant::now();
        let (c, evicted) = h.admit().await;
        assert!(evicted);
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert!(a.evicted.is_cancelled());
        assert!(!b.evicted.is_cancelled() && !c.evicted.is_cancelled());
        // A handshake that ends frees its slot at once.
        drop(b);
        let (_d, evicted) = h.admit().await;
        assert!(!evicted);
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }
}
