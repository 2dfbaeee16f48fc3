//! The client's lock order, checked: every mutex a client connection takes while it may
//! hold another is an [`Ordered`] mutex with a [`Level`], and locks are taken in the order
//! of their levels (a session's reference counts, the session's connection being resumed,
//! a connection's pipeline stash, its calls in flight, its output buffer).
//!
//! In debug builds (every test run) each thread counts the levels it holds, and taking a
//! lock at a level at or below one already held panics with both levels named: any
//! inversion a test reaches fails that test, instead of deadlocking some day in
//! production. Taking two locks of one level (of two connections) is refused too. In
//! release builds an [`Ordered`] mutex is a plain [`std::sync::Mutex`] and the check costs
//! nothing. The per-thread count is the only state of this module; it exists only in
//! debug builds (`docs/design.md`, "State that no signature shows").

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

/// A lock's place in the order: a lock may be taken only while every lock held has a lower
/// level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// `SessionLink::refs`: the references counted for a resumable session (a reference
    /// change is queued under it).
    SessionRefs = 0,
    /// `SessionLink::trying`: the connection a resume is being tried on.
    SessionTrying = 1,
    /// A connection's `Stash`: calls pipelines made and did not queue yet.
    Stash = 2,
    /// A connection's `Pending`: the calls in flight (the reader task takes it too).
    Pending = 3,
    /// A connection's `Output`: the frames waiting to be written.
    Output = 4,
}

#[cfg(debug_assertions)]
const LEVELS: usize = 5;

/// A mutex with a [`Level`] in the client's lock order. A poisoned lock is taken anyway
/// (the state behind every one of them stays consistent between statements).
#[derive(Debug)]
pub(crate) struct Ordered<T> {
    level: Level,
    inner: Mutex<T>,
}

impl<T> Ordered<T> {
    pub(crate) fn new(level: Level, value: T) -> Self {
        Ordered {
            level,
            inner: Mutex::new(value),
        }
    }

    /// Take the lock; in debug builds, panics if this thread holds a lock of this level or
    /// a later one.
    pub(crate) fn lock(&self) -> OrderedGuard<'_, T> {
        held::acquire(self.level);
        OrderedGuard {
            guard: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
            level: self.level,
        }
    }
}

/// The guard of an [`Ordered`] lock.
pub(crate) struct OrderedGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    level: Level,
}

impl<T> Deref for OrderedGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for OrderedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for OrderedGuard<'_, T> {
    fn drop(&mut self) {
        held::release(self.level);
    }
}

#[cfg(debug_assertions)]
mod held {
    use std::cell::Cell;

    use super::{Level, LEVELS};

    thread_local! {
        /// How many locks of each level this thread holds.
        static HELD: Cell<[u8; LEVELS]> = const { Cell::new([0; LEVELS]) };
    }

    pub(super) fn acquire(level: Level) {
        HELD.with(|held| {
            let mut counts = held.get();
            if let Some(later) = (level as usize..LEVELS).rev().find(|&l| counts[l] > 0) {
                panic!(
                    "lock order: taking a {level:?} lock while holding a {:?} lock",
                    LEVEL_NAMES[later]
                );
            }
            counts[level as usize] += 1;
            held.set(counts);
        });
    }

    pub(super) fn release(level: Level) {
        // Also reached while a panic unwinds (the guard's drop): never panics itself.
        let _ = HELD.try_with(|held| {
            let mut counts = held.get();
            counts[level as usize] = counts[level as usize].saturating_sub(1);
            held.set(counts);
        });
    }

    const LEVEL_NAMES: [Level; LEVELS] = [
        Level::SessionRefs,
        Level::SessionTrying,
        Level::Stash,
        Level::Pending,
        Level::Output,
    ];
}

#[cfg(not(debug_assertions))]
mod held {
    use super::Level;

    #[inline(always)]
    pub(super) fn acquire(_: Level) {}

    #[inline(always)]
    pub(super) fn release(_: Level) {}
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    /// The message of the panic `f` raised, if it panicked.
    fn panic_of(f: impl FnOnce()) -> Option<String> {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()?;
        Some(caught.downcast_ref::<String>().cloned().unwrap_or_default())
    }

    #[test]
    fn locks_taken_in_order_are_fine_and_released_in_any_order() {
        let refs = Ordered::new(Level::SessionRefs, ());
        let pending = Ordered::new(Level::Pending, ());
        let output = Ordered::new(Level::Output, ());
        let r = refs.lock();
        let p = pending.lock();
        let o = output.lock();
        drop(p);
        drop(r);
        drop(o);
        // All released: any order may start again.
        let _o = output.lock();
    }

    #[test]
    fn an_inversion_panics_naming_both_levels() {
        let pending = Ordered::new(Level::Pending, ());
        let output = Ordered::new(Level::Output, ());
        let _o = output.lock();
        let text = panic_of(|| drop(pending.lock())).expect("inverted");
        assert!(
            text.contains("Pending") && text.contains("Output"),
            "{text}"
        );
    }

    #[test]
    fn two_locks_of_one_level_are_refused() {
        let a = Ordered::new(Level::Stash, ());
        let b = Ordered::new(Level::Stash, ());
        let _a = a.lock();
        assert!(panic_of(|| drop(b.lock())).is_some());
    }
}
