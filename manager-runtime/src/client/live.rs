//! The hand-over slot through which the value serializer and deserializer (`value/`)
//! exchange live values with the `Serialize`/`Deserialize` impls of `Value` and
//! [`ProxyHandle`](super::ProxyHandle), without a detour through their wire forms. See
//! `value/wire.rs` for the protocol; this module holds only the slot, so that the proxy
//! code does not depend on `value` (which depends on it).
//!
//! The slot is filled immediately before the one call that empties it, and a guard empties
//! it afterwards whatever happens, so no other (de)serialisation on the thread, nested or
//! later, can see it.

use std::any::Any;
use std::cell::RefCell;

/// The newtype name a [`ProxyHandle`](super::ProxyHandle) serialises under.
pub(crate) const PROXY_MARKER: &str = "$managers::Proxy";

enum Slot {
    Empty,
    /// The value serializer waits for the content of a marker newtype to offer itself.
    Armed,
    /// A live value, offered by a `Serialize` impl or delivered by the deserializer.
    Full(Box<dyn Any>),
}

thread_local! {
    static SLOT: RefCell<Slot> = const { RefCell::new(Slot::Empty) };
}

/// Empties the slot when dropped (dropping what it held outside the borrow).
struct EmptyOnDrop;

impl Drop for EmptyOnDrop {
    fn drop(&mut self) {
        drop(replace(Slot::Empty));
    }
}

fn replace(slot: Slot) -> Slot {
    SLOT.with(|s| std::mem::replace(&mut *s.borrow_mut(), slot))
}

/// Run `serialize` (the content of a marker newtype, by the value serializer) with the
/// slot armed; returns its result and the live value the content offered, if any.
pub(crate) fn capture<R>(serialize: impl FnOnce() -> R) -> (R, Option<Box<dyn Any>>) {
    let _empty = EmptyOnDrop;
    replace(Slot::Armed);
    let written = serialize();
    match replace(Slot::Empty) {
        Slot::Full(live) => (written, Some(live)),
        Slot::Armed | Slot::Empty => (written, None),
    }
}

/// Called first thing by the `Serialize` impl of a marker newtype's content: when the value
/// serializer waits for it, store `make()` for it and return true (the impl then writes a
/// unit); otherwise return false and leave the slot alone.
pub(crate) fn offer<T: Any>(make: impl FnOnce() -> T) -> bool {
    let armed = SLOT.with(|s| matches!(*s.borrow(), Slot::Armed));
    if armed {
        replace(Slot::Full(Box::new(make())));
    }
    armed
}

/// Run `visit` (a visitor of a marker newtype, called by the value deserializer) with
/// `live` in the slot.
pub(crate) fn deliver<R>(live: Box<dyn Any>, visit: impl FnOnce() -> R) -> R {
    let _empty = EmptyOnDrop;
    replace(Slot::Full(live));
    visit()
}

/// Called first thing by the visitor of a marker newtype: the live value the value
/// deserializer delivered, if it is the one calling.
pub(crate) fn take_delivered() -> Option<Box<dyn Any>> {
    let full = SLOT.with(|s| matches!(*s.borrow(), Slot::Full(_)));
    if !full {
        return None;
    }
    match replace(Slot::Empty) {
        Slot::Full(live) => Some(live),
        _ => None,
    }
}
