//! `Event`: a flag that tasks can wait for.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::support::{deadline, lock, wait_until};
use crate::shared;

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

#[shared(proxy = EventProxy, name = "Event", errors = value)]
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
    ///
    /// Cancel safe: dropping it while it waits (through a proxy, dropping the call) has no
    /// effect on the event.
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
