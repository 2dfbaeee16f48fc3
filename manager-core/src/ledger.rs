//! Reference counting, kept apart from any lock or socket so it can be tested alone.
//!
//! A server keeps one [`RefCounts`] per live object: how many references each holder (a
//! client connection, the server's own objects, or proxies in transit) has. The total is
//! the object's refcount; a holder can only release what it holds, and a closed
//! connection's references can all be released at once. Most objects have one holder, so
//! the first is stored inline and the rest in a box: 24 bytes per object, 4 of which are a
//! [`RefCounts::tag`] its owner may use.

use crate::wire::Holder;

/// A release of a reference that was never taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no reference to object {0} is held here")]
pub struct NotHeld(pub crate::ObjectId);

const OBJECTS: u64 = u64::MAX - 1;
const IN_TRANSIT: u64 = u64::MAX;

fn pack(holder: Holder) -> u64 {
    match holder {
        // Connection numbers come from a counter and never reach the two reserved values.
        Holder::Connection(n) => n.min(OBJECTS - 1),
        Holder::Objects => OBJECTS,
        Holder::InTransit => IN_TRANSIT,
    }
}

fn unpack(packed: u64) -> Holder {
    match packed {
        OBJECTS => Holder::Objects,
        IN_TRANSIT => Holder::InTransit,
        n => Holder::Connection(n),
    }
}

/// The references to one object, by holder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefCounts {
    /// The first holder, packed; meaningless while `first_count` is 0.
    first: u64,
    /// Any further holders. Boxed on purpose: 8 bytes in every object's entry instead of
    /// 24 for a `Vec`, and most objects never need it.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<(Holder, u64)>>>,
    /// The first holder's references. Sticky at `u32::MAX`: a holder that took four
    /// billion references to one object keeps it alive for good (released references are
    /// no longer counted), rather than risk freeing it under a live proxy.
    first_count: u32,
    /// Four bytes the layout has free anyway, for the owner of the counts (the server keeps
    /// the object's typeid there). Not touched by the counting.
    pub tag: u32,
}

/// `n` as an inline count, saturated.
fn inline(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl RefCounts {
    /// No references.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `n` references of `holder`.
    pub fn add(&mut self, holder: Holder, n: u64) {
        let packed = pack(holder);
        if self.first_count == 0 {
            self.first = packed;
            self.first_count = inline(n);
        } else if self.first == packed {
            if self.first_count != u32::MAX {
                self.first_count = inline(u64::from(self.first_count) + n);
            }
        } else {
            let more = self.more.get_or_insert_with(Default::default);
            match more.iter_mut().find(|(h, _)| *h == holder) {
                Some((_, count)) => *count += n,
                None => more.push((holder, n)),
            }
        }
    }

    /// Remove `n` references of `holder`; false (and no change) if it holds fewer.
    pub fn sub(&mut self, holder: Holder, n: u64) -> bool {
        let packed = pack(holder);
        if self.first_count > 0 && self.first == packed {
            if self.first_count == u32::MAX {
                // Saturated: kept for good.
                return true;
            }
            if u64::from(self.first_count) < n {
                return false;
            }
            self.first_count -= n as u32;
            if self.first_count == 0 {
                self.promote();
            }
            return true;
        }
        let Some(more) = self.more.as_mut() else {
            return false;
        };
        let Some(pos) = more.iter().position(|(h, _)| *h == holder) else {
            return false;
        };
        if more[pos].1 < n {
            return false;
        }
        more[pos].1 -= n;
        if more[pos].1 == 0 {
            more.swap_remove(pos);
            if more.is_empty() {
                self.more = None;
            }
        }
        true
    }

    /// Remove every reference of `holder`, a saturated count included (a holder that is
    /// gone, such as a closed connection, keeps nothing alive); returns how many there
    /// were.
    pub fn remove_all(&mut self, holder: Holder) -> u64 {
        let n = self.count(holder);
        if n > 0 && self.first_count > 0 && self.first == pack(holder) {
            self.first_count = 0;
            self.promote();
        } else if n > 0 {
            self.sub(holder, n);
        }
        n
    }

    /// Move a held-over holder into the inline slot after the first one emptied.
    fn promote(&mut self) {
        self.first = 0;
        if let Some(more) = self.more.as_mut() {
            if let Some((holder, count)) = more.pop() {
                self.first = pack(holder);
                self.first_count = inline(count);
            }
            if more.is_empty() {
                self.more = None;
            }
        }
    }

    /// The references `holder` has.
    pub fn count(&self, holder: Holder) -> u64 {
        let packed = pack(holder);
        if self.first_count > 0 && self.first == packed {
            return u64::from(self.first_count);
        }
        self.more
            .as_ref()
            .and_then(|m| m.iter().find(|(h, _)| *h == holder))
            .map_or(0, |(_, n)| *n)
    }

    /// The total: the object's refcount.
    pub fn total(&self) -> u64 {
        u64::from(self.first_count)
            + self
                .more
                .as_ref()
                .map_or(0, |m| m.iter().map(|(_, n)| n).sum())
    }

    /// Whether nobody holds a reference.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Every holder with its count, sorted by holder.
    pub fn holders(&self) -> Vec<(Holder, u64)> {
        let mut all = Vec::new();
        if self.first_count > 0 {
            all.push((unpack(self.first), u64::from(self.first_count)));
        }
        if let Some(more) = &self.more {
            all.extend(more.iter().copied());
        }
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Holder = Holder::Connection(1);
    const B: Holder = Holder::Connection(2);

    #[test]
    fn twenty_four_bytes_and_a_saturating_inline_count() {
        assert_eq!(std::mem::size_of::<RefCounts>(), 24);
        let mut r = RefCounts::new();
        r.tag = 7;
        r.add(A, u64::from(u32::MAX) - 1);
        r.add(A, 5);
        assert_eq!(r.count(A), u64::from(u32::MAX));
        // Saturated: releases are not counted, the object stays held.
        assert!(r.sub(A, 10));
        assert_eq!(r.count(A), u64::from(u32::MAX));
        assert!(!r.is_empty());
        // Other holders count normally, and the tag is untouched.
        r.add(B, u64::from(u32::MAX) + 3);
        assert_eq!(r.count(B), u64::from(u32::MAX) + 3);
        assert!(r.sub(B, 3));
        assert_eq!(r.tag, 7);
        // A holder that goes away releases even a saturated count.
        assert_eq!(r.remove_all(A), u64::from(u32::MAX));
        assert_eq!(r.count(A), 0);
        assert_eq!(r.holders(), vec![(B, u64::from(u32::MAX))]);
        assert_eq!(r.remove_all(B), u64::from(u32::MAX));
        assert!(r.is_empty());
    }

    #[test]
    fn counts_per_holder() {
        let mut r = RefCounts::new();
        assert!(r.is_empty());
        r.add(A, 2);
        r.add(Holder::Objects, 1);
        r.add(B, 1);
        r.add(A, 1);
        assert_eq!(r.total(), 5);
        assert_eq!(r.count(A), 3);
        assert_eq!(r.holders(), vec![(A, 3), (B, 1), (Holder::Objects, 1)]);
        assert!(!r.sub(B, 2), "cannot release more than held");
        assert!(
            !r.sub(Holder::InTransit, 1),
            "cannot release what is not held"
        );
        assert_eq!(r.total(), 5);
        assert!(r.sub(A, 3));
        assert_eq!(r.count(A), 0);
        assert_eq!(r.total(), 2);
        assert_eq!(r.remove_all(B), 1);
        assert_eq!(r.holders(), vec![(Holder::Objects, 1)]);
        assert!(r.sub(Holder::Objects, 1));
        assert!(r.is_empty());
        assert_eq!(r, RefCounts::new());
    }

    #[test]
    fn holders_round_trip_through_packing() {
        for h in [
            Holder::Connection(0),
            Holder::Connection(7),
            Holder::Objects,
            Holder::InTransit,
        ] {
            assert_eq!(unpack(pack(h)), h);
        }
    }

    #[test]
    fn one_holder_needs_no_allocation() {
        let mut r = RefCounts::new();
        r.add(A, 1);
        r.add(A, 1);
        assert!(r.more.is_none());
        assert_eq!(std::mem::size_of::<RefCounts>(), 24);
    }
}
