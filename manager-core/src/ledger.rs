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

/// Who holds references, as the ledger tells them apart: finer than [`Holder`], which is
/// what `debug_info` reports. Each proxy stored inside the server is an owner of its own,
/// so it can release only the reference it took (never one another proxy holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A client connection, by its number.
    Connection(u64),
    /// One proxy held inside the server (stored in a shared object), by a number the
    /// server gives it.
    Proxy(u64),
    /// Proxies serialised and not adopted yet.
    InTransit,
    /// CPython clients, all together: their protocol counts references per object, not
    /// per holder (each `incref`/`decref` comes on a connection of its own).
    Python,
}

impl Owner {
    /// The holder `debug_info` reports for this owner (every proxy inside the server is
    /// [`Holder::Objects`]).
    pub fn holder(self) -> Holder {
        match self {
            Owner::Connection(n) => Holder::Connection(n),
            Owner::Proxy(_) => Holder::Objects,
            Owner::InTransit => Holder::InTransit,
            Owner::Python => Holder::Python,
        }
    }
}

/// Numbers at or above this are proxies (`PROXY | n`).
const PROXY: u64 = 1 << 62;
const IN_TRANSIT: u64 = u64::MAX;
const PYTHON: u64 = u64::MAX - 1;

fn pack(owner: Owner) -> u64 {
    // Connection and proxy numbers come from counters and never reach 2^62.
    match owner {
        Owner::Connection(n) => n.min(PROXY - 1),
        Owner::Proxy(n) => PROXY | n.min(PROXY - 2),
        Owner::InTransit => IN_TRANSIT,
        Owner::Python => PYTHON,
    }
}

fn unpack(packed: u64) -> Owner {
    match packed {
        IN_TRANSIT => Owner::InTransit,
        PYTHON => Owner::Python,
        n if n >= PROXY => Owner::Proxy(n & !PROXY),
        n => Owner::Connection(n),
    }
}

/// Holders past the first: a short list, and a map once there are many (each proxy stored
/// inside the server is a holder of its own, so one object can have thousands), with
/// their total kept so no operation scans them all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct More {
    total: u64,
    few: Vec<(Owner, u64)>,
    many: std::collections::HashMap<Owner, u64>,
}

/// Past this many holders in `few`, they move to `many`.
const FEW: usize = 16;

impl More {
    fn get(&self, owner: Owner) -> u64 {
        match self.few.iter().find(|(o, _)| *o == owner) {
            Some((_, n)) => *n,
            None => self.many.get(&owner).copied().unwrap_or(0),
        }
    }

    fn add(&mut self, owner: Owner, n: u64) {
        self.total = self.total.saturating_add(n);
        if let Some((_, count)) = self.few.iter_mut().find(|(o, _)| *o == owner) {
            *count = count.saturating_add(n);
        } else if let Some(count) = self.many.get_mut(&owner) {
            *count = count.saturating_add(n);
        } else if self.few.len() < FEW {
            self.few.push((owner, n));
        } else {
            self.many.insert(owner, n);
        }
    }

    /// Take `n` of `owner`'s references; false (nothing taken) if it has fewer.
    fn sub(&mut self, owner: Owner, n: u64) -> bool {
        if let Some(pos) = self.few.iter().position(|(o, _)| *o == owner) {
            if self.few[pos].1 < n {
                return false;
            }
            self.few[pos].1 -= n;
            if self.few[pos].1 == 0 {
                self.few.swap_remove(pos);
            }
        } else {
            match self.many.get_mut(&owner) {
                Some(count) if *count >= n => {
                    *count -= n;
                    if *count == 0 {
                        self.many.remove(&owner);
                    }
                }
                _ => return false,
            }
        }
        self.total -= n;
        true
    }

    /// Any one holder, taken out with its count.
    fn pop(&mut self) -> Option<(Owner, u64)> {
        let taken = match self.few.pop() {
            Some(taken) => taken,
            None => {
                let owner = *self.many.keys().next()?;
                (owner, self.many.remove(&owner)?)
            }
        };
        self.total -= taken.1;
        Some(taken)
    }

    fn is_empty(&self) -> bool {
        self.few.is_empty() && self.many.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (Owner, u64)> + '_ {
        self.few
            .iter()
            .copied()
            .chain(self.many.iter().map(|(o, n)| (*o, *n)))
    }
}

/// The references to one object, by holder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefCounts {
    /// The first holder, packed; meaningless while `first_count` is 0.
    first: u64,
    /// Any further holders. Boxed on purpose: 8 bytes in every object's entry, and most
    /// objects never need it.
    more: Option<Box<More>>,
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
    pub fn add(&mut self, holder: Owner, n: u64) {
        let packed = pack(holder);
        if self.first_count == 0 {
            self.first = packed;
            self.first_count = inline(n);
        } else if self.first == packed {
            if self.first_count != u32::MAX {
                self.first_count = inline(u64::from(self.first_count) + n);
            }
        } else {
            self.more
                .get_or_insert_with(Default::default)
                .add(holder, n);
        }
    }

    /// Remove `n` references of `holder`; false (and no change) if it holds fewer.
    pub fn sub(&mut self, holder: Owner, n: u64) -> bool {
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
        if !more.sub(holder, n) {
            return false;
        }
        if more.is_empty() {
            self.more = None;
        }
        true
    }

    /// Remove every reference of `holder`, a saturated count included (a holder that is
    /// gone, such as a closed connection, keeps nothing alive); returns how many there
    /// were.
    pub fn remove_all(&mut self, holder: Owner) -> u64 {
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
    pub fn count(&self, holder: Owner) -> u64 {
        let packed = pack(holder);
        if self.first_count > 0 && self.first == packed {
            return u64::from(self.first_count);
        }
        self.more.as_ref().map_or(0, |m| m.get(holder))
    }

    /// The total: the object's refcount.
    pub fn total(&self) -> u64 {
        u64::from(self.first_count) + self.more.as_ref().map_or(0, |m| m.total)
    }

    /// Whether nobody holds a reference.
    pub fn is_empty(&self) -> bool {
        self.first_count == 0 && self.more.is_none()
    }

    /// Every holder with its count, sorted by holder (the proxies inside the server summed
    /// as [`Holder::Objects`]).
    pub fn holders(&self) -> Vec<(Holder, u64)> {
        let mut all: Vec<(Holder, u64)> = Vec::new();
        let first =
            (self.first_count > 0).then(|| (unpack(self.first), u64::from(self.first_count)));
        let more = self.more.iter().flat_map(|m| m.iter());
        for (owner, n) in first.into_iter().chain(more) {
            let holder = owner.holder();
            match all.iter_mut().find(|(h, _)| *h == holder) {
                Some((_, count)) => *count += n,
                None => all.push((holder, n)),
            }
        }
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Owner = Owner::Connection(1);
    const B: Owner = Owner::Connection(2);
    const HA: Holder = Holder::Connection(1);
    const HB: Holder = Holder::Connection(2);

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
        assert_eq!(r.holders(), vec![(HB, u64::from(u32::MAX))]);
        assert_eq!(r.remove_all(B), u64::from(u32::MAX));
        assert!(r.is_empty());
    }

    #[test]
    fn counts_per_holder() {
        let mut r = RefCounts::new();
        assert!(r.is_empty());
        r.add(A, 2);
        r.add(Owner::Proxy(4), 1);
        r.add(B, 1);
        r.add(A, 1);
        assert_eq!(r.total(), 5);
        assert_eq!(r.count(A), 3);
        assert_eq!(r.holders(), vec![(HA, 3), (HB, 1), (Holder::Objects, 1)]);
        assert!(!r.sub(B, 2), "cannot release more than held");
        assert!(
            !r.sub(Owner::InTransit, 1),
            "cannot release what is not held"
        );
        assert_eq!(r.total(), 5);
        assert!(r.sub(A, 3));
        assert_eq!(r.count(A), 0);
        assert_eq!(r.total(), 2);
        assert_eq!(r.remove_all(B), 1);
        assert_eq!(r.holders(), vec![(Holder::Objects, 1)]);
        assert!(
            !r.sub(Owner::Proxy(5), 1),
            "another proxy's reference is not this one's"
        );
        assert!(r.sub(Owner::Proxy(4), 1));
        assert!(r.is_empty());
        assert_eq!(r, RefCounts::new());
    }

    #[test]
    fn holders_round_trip_through_packing() {
        for h in [
            Owner::Connection(0),
            Owner::Connection(7),
            Owner::Proxy(0),
            Owner::Proxy(9),
            Owner::InTransit,
        ] {
            assert_eq!(unpack(pack(h)), h);
        }
    }

    #[test]
    fn thousands_of_holders_of_one_object() {
        let mut r = RefCounts::new();
        for n in 0..5000 {
            r.add(Owner::Proxy(n), 1);
        }
        r.add(A, 2);
        assert_eq!(r.total(), 5002);
        assert_eq!(r.count(Owner::Proxy(4321)), 1);
        assert!(!r.sub(Owner::Proxy(9999), 1));
        for n in 0..5000 {
            assert!(r.sub(Owner::Proxy(n), 1));
        }
        assert_eq!(r.holders(), vec![(HA, 2)]);
        assert_eq!(r.remove_all(A), 2);
        assert!(r.is_empty());
        assert_eq!(r, RefCounts::new());
    }

    #[test]
    fn proxies_inside_the_server_are_reported_together() {
        let mut r = RefCounts::new();
        r.add(Owner::Proxy(1), 1);
        r.add(Owner::Proxy(2), 2);
        r.add(A, 1);
        assert_eq!(r.holders(), vec![(HA, 1), (Holder::Objects, 3)]);
        assert_eq!(r.count(Owner::Proxy(2)), 2);
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
