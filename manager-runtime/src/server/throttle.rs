//! Warnings a peer can cause at will (failed logins, bad frames, refcount messages for
//! unknown objects), logged at most once a second per kind with a count of those left out:
//! a flood of them costs the server a counter increment each, not a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How often one kind of warning may be logged, in milliseconds.
const PERIOD_MS: u64 = 1000;

/// One kind of warning: when it may next be logged, and how many were left out since.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// The time every `next` is counted from.
    start: Instant,
    /// Milliseconds after `start` before which the warning is not logged again.
    next: AtomicU64,
    /// Warnings left out since the last one logged.
    suppressed: AtomicU64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            start: Instant::now(),
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl Throttle {
    /// Whether to log this warning now: `Some(n)` with the number left out since the last
    /// one, or `None` (counted) if one was logged less than a second ago.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.check_at(now)
    }

    fn check_at(&self, now: u64) -> Option<u64> {
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(PERIOD_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The server's throttled warnings, by kind.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    /// Handshakes that failed or timed out.
    pub(crate) handshake: Throttle,
    /// Connections closed for bad input.
    pub(crate) bad_input: Throttle,
    /// Increfs, decrefs and holds of objects a connection does not hold.
    pub(crate) refcount: Throttle,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_a_period_with_the_count_of_those_left_out() {
        let t = Throttle::default();
        assert_eq!(t.check_at(5), Some(0));
        assert_eq!(t.check_at(6), None);
        assert_eq!(t.check_at(1004), None);
        assert_eq!(t.check_at(1005), Some(2));
        assert_eq!(t.check_at(1006), None);
        assert_eq!(t.check_at(5000), Some(1));
        assert_eq!(t.check_at(u64::MAX), Some(0));
    }
}
