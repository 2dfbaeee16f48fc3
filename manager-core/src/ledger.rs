//! Reference counting, kept separate from any lock or socket so it can be tested alone.
//!
//! A server keeps one [`Ledger`] for its object table (the total count of each object) and
//! one per connection (what that connection holds), so that when a connection closes it
//! can release exactly what it held and nothing else.

use std::collections::HashMap;

use crate::ObjectId;

/// Counts of references per object.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    counts: HashMap<ObjectId, u64>,
}

/// A release of a reference that was never taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no reference to object {0} is held here")]
pub struct NotHeld(pub ObjectId);

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one reference; returns the new count.
    pub fn incref(&mut self, id: ObjectId) -> u64 {
        let count = self.counts.entry(id).or_insert(0);
        *count += 1;
        *count
    }

    /// Release one reference; returns the remaining count (0 means the last one went, and
    /// the id is forgotten).
    pub fn decref(&mut self, id: ObjectId) -> Result<u64, NotHeld> {
        let count = self.counts.get_mut(&id).ok_or(NotHeld(id))?;
        *count -= 1;
        let left = *count;
        if left == 0 {
            self.counts.remove(&id);
        }
        Ok(left)
    }

    /// Release `n` references at once; returns the remaining count.
    pub fn release(&mut self, id: ObjectId, n: u64) -> Result<u64, NotHeld> {
        let count = self.counts.get_mut(&id).ok_or(NotHeld(id))?;
        if *count < n {
            return Err(NotHeld(id));
        }
        *count -= n;
        let left = *count;
        if left == 0 {
            self.counts.remove(&id);
        }
        Ok(left)
    }

    /// The current count of `id` (0 when not held).
    pub fn count(&self, id: ObjectId) -> u64 {
        self.counts.get(&id).copied().unwrap_or(0)
    }

    /// How many distinct objects are held.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Empty the ledger, yielding every held id with its count.
    pub fn drain(&mut self) -> impl Iterator<Item = (ObjectId, u64)> + '_ {
        self.counts.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_down() {
        let mut l = Ledger::new();
        let a = ObjectId(1);
        assert_eq!(l.incref(a), 1);
        assert_eq!(l.incref(a), 2);
        assert_eq!(l.decref(a), Ok(1));
        assert_eq!(l.count(a), 1);
        assert_eq!(l.decref(a), Ok(0));
        assert!(l.is_empty());
        assert_eq!(l.decref(a), Err(NotHeld(a)));
    }

    #[test]
    fn release_and_drain() {
        let mut l = Ledger::new();
        for _ in 0..3 {
            l.incref(ObjectId(1));
        }
        l.incref(ObjectId(2));
        assert_eq!(l.release(ObjectId(1), 4), Err(NotHeld(ObjectId(1))));
        assert_eq!(l.release(ObjectId(1), 2), Ok(1));
        let mut all: Vec<_> = l.drain().collect();
        all.sort();
        assert_eq!(all, vec![(ObjectId(1), 1), (ObjectId(2), 1)]);
        assert_eq!(l.len(), 0);
    }
}
