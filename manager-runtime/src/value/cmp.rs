//! Equality, ordering and hashing of [`Value`] by value (see the module documentation).
//!
//! `Eq` and `Hash` are both derived from one normal form, so equal values hash alike:
//! integers as `i128`, floats with `-0.0` and NaNs canonical, maps as their sorted
//! entries, proxies as (address, id).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use manager_core::{Address, ObjectId};

use super::Value;
use crate::ProxyHandle;

impl Value {
    /// The kinds, in the order values of different kinds sort.
    fn rank(&self) -> u8 {
        match self {
            Value::None => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::UInt(_) => 2,
            Value::Float(_) => 3,
            Value::Str(_) => 4,
            Value::Bytes(_) => 5,
            Value::List(_) => 6,
            Value::Map(_) => 7,
            Value::Variant(..) => 8,
            Value::Proxy(_) => 9,
        }
    }

    fn integer(&self) -> Option<i128> {
        match *self {
            Value::Int(i) => Some(i128::from(i)),
            Value::UInt(u) => Some(i128::from(u)),
            _ => None,
        }
    }
}

/// `-0.0` as `0.0`, every NaN as one NaN: what equal floats have in common.
fn canonical(f: f64) -> f64 {
    if f == 0.0 {
        0.0
    } else if f.is_nan() {
        f64::NAN
    } else {
        f
    }
}

/// A map's entries in sorted order: equal maps have equal sorted entries.
fn sorted(entries: &[(Value, Value)]) -> Vec<&(Value, Value)> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_unstable();
    sorted
}

fn cmp_maps(a: &[(Value, Value)], b: &[(Value, Value)]) -> Ordering {
    if a.len() == b.len() && a.iter().eq(b.iter()) {
        // The same entries in the same order (the common case): no sorting.
        return Ordering::Equal;
    }
    sorted(a).cmp(&sorted(b))
}

/// What identifies a proxy's object: its manager's address (as comparable bytes) and id.
fn proxy_key(handle: &ProxyHandle) -> (u8, Cow<'_, [u8]>, ObjectId) {
    let (kind, address) = match handle.address() {
        Address::Tcp(host_port) => (0, Cow::Borrowed(host_port.as_bytes())),
        Address::Unix(path) => (1, Cow::Borrowed(path.as_os_str().as_encoded_bytes())),
        other => (2, Cow::Owned(other.to_string().into_bytes())),
    };
    (kind, address, handle.id())
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::None, Value::None) => Ordering::Equal,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => canonical(*a).total_cmp(&canonical(*b)),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::List(a), Value::List(b)) => a.cmp(b),
            (Value::Map(a), Value::Map(b)) => cmp_maps(a, b),
            (Value::Variant(a, x), Value::Variant(b, y)) => a.cmp(b).then_with(|| x.cmp(y)),
            (Value::Proxy(a), Value::Proxy(b)) => proxy_key(a).cmp(&proxy_key(b)),
            _ => match (self.integer(), other.integer()) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => self.rank().cmp(&other.rank()),
            },
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a.len() == b.len() && cmp_maps(a, b).is_eq(),
            _ => self.cmp(other).is_eq(),
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.rank());
        match self {
            Value::None => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(_) | Value::UInt(_) => self.integer().hash(state),
            Value::Float(f) => canonical(*f).to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::List(items) => items.hash(state),
            Value::Map(entries) => sorted(entries).hash(state),
            Value::Variant(name, payload) => {
                name.hash(state);
                payload.hash(state);
            }
            Value::Proxy(handle) => proxy_key(handle).hash(state),
        }
    }
}
