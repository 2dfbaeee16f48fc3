//! Giving memory back after a burst of connections.
//!
//! glibc's allocator keeps what a thread freed in that thread's arena, and returns it to
//! the system only from the top of the heap: after a thousand clients came and went, a
//! server whose live data fits in a megabyte stayed at 40 MiB resident (measured with the
//! soak run, `docs/hardening.md`). When the number of open connections has fallen to half
//! of its high-water mark, a second after the fall (so that the rest of a leaving crowd
//! is gone too) the server asks the allocator to return its free pages (`malloc_trim`),
//! on a blocking thread. Elsewhere than glibc this does nothing: musl, macOS and Windows
//! return large free blocks by themselves, and an application with its own global
//! allocator (jemalloc, mimalloc) tunes that allocator itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

/// A burst smaller than this is not worth a trim.
const MIN_BURST: usize = 16;

/// How long after the fall the trim runs.
const SETTLE: Duration = Duration::from_secs(1);

/// Open connections and their high-water mark since the last trim.
#[derive(Debug)]
pub(crate) struct Reclaim {
    enabled: bool,
    open: AtomicUsize,
    high: AtomicUsize,
    scheduled: AtomicBool,
}

impl Reclaim {
    pub(crate) fn new(enabled: bool) -> Self {
        Reclaim {
            enabled,
            open: AtomicUsize::new(0),
            high: AtomicUsize::new(0),
            scheduled: AtomicBool::new(false),
        }
    }

    /// A connection was accepted.
    pub(crate) fn opened(&self) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.high.fetch_max(open, Ordering::Relaxed);
    }

    /// A connection ended; true if a trim should be scheduled now (the caller spawns
    /// [`Reclaim::trim_later`]).
    pub(crate) fn closed(&self) -> bool {
        let open = self.open.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        let high = self.high.load(Ordering::Relaxed);
        self.enabled
            && high >= MIN_BURST
            && open <= high / 2
            && !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// Wait for the crowd to finish leaving, then trim; the high-water mark starts again
    /// from the connections open then.
    pub(crate) async fn trim_later(self: Arc<Self>, cancel: CancellationToken) {
        tokio::select! {
            _ = cancel.cancelled() => {
                self.scheduled.store(false, Ordering::Release);
                return;
            }
            _ = tokio::time::sleep(SETTLE) => {}
        }
        self.high
            .store(self.open.load(Ordering::Relaxed), Ordering::Relaxed);
        let released = tokio::task::spawn_blocking(release_free_memory)
            .await
            .unwrap_or(false);
        debug!(released, "returned free memory to the system after a burst");
        self.scheduled.store(false, Ordering::Release);
    }
}

/// Ask the allocator to return its free pages to the system; whether it returned any.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and touches only glibc's own free lists,
    // which it locks like any other allocator call.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_once_half_a_burst_has_left() {
        let reclaim = Reclaim::new(true);
        for _ in 0..20 {
            reclaim.opened();
        }
        let due: Vec<bool> = (0..20).map(|_| reclaim.closed()).collect();
        // Due when 10 of 20 remain, and only once until the trim has run.
        assert_eq!(due.iter().position(|&d| d), Some(9));
        assert_eq!(due.iter().filter(|&&d| d).count(), 1);
    }

    #[test]
    fn small_bursts_and_a_disabled_reclaim_never_trim() {
        let small = Reclaim::new(true);
        let off = Reclaim::new(false);
        for r in [&small, &off] {
            for _ in 0..(if std::ptr::eq(r, &small) { 8 } else { 100 }) {
                r.opened();
            }
        }
        assert!((0..8).all(|_| !small.closed()));
        assert!((0..100).all(|_| !off.closed()));
    }
}
