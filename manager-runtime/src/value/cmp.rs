//! Equality, ordering and hashing of [`Value`] by value (see the module documentation).
//!
//! `Eq` and `Hash` are both derived from one normal form, so equal values hash alike:
//! numbers as Python compares them (booleans and integers as `i128`, a float with an
//! integral value as that integer, other floats with `-0.0` and NaNs canonical), maps as
//! their sorted entries, proxies as (address, id).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use manager_core::{Address, ObjectId};

use super::Value;
use crate::ProxyHandle;

impl Value {
    /// The kinds, in the order values of different kinds sort (numbers are one kind).
    fn rank(&self) -> u8 {
        match self {
            Value::None => 0,
            Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_) => 1,
            Value::Str(_) => 2,
            Value::Bytes(_) => 3,
            Value::List(_) => 4,
            Value::Tuple(_) => 5,
            Value::Map(_) => 6,
            Value::Variant(..) => 7,
            Value::Proxy(_) => 8,
            Value::Opaque(_) => 9,
        }
    }

    /// A boolean or an integer, as Python counts it (`True == 1`).
    fn integer(&self) -> Option<i128> {
        match *self {
            Value::Bool(b) => Some(i128::from(b)),
            Value::Int(i) => Some(i128::from(i)),
            Value::UInt(u) => Some(i128::from(u)),
            _ => None,
        }
    }
}

/// The integer a float equals, if it is integral and in `i128`'s range.
fn integral(f: f64) -> Option<i128> {
    // 2^127 is exact in f64; every integral float below it in magnitude converts exactly.
    (f.fract() == 0.0 && f.abs() < LIMIT).then_some(f as i128)
}

/// 2^127: integral floats below it in magnitude convert to `i128` exactly.
const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

/// An integer against a float, exactly (no rounding of either); NaN sorts above all.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f < -LIMIT {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // `whole` is integral and within range: the conversion is exact.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
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
            (Value::Float(a), Value::Float(b)) => canonical(*a).total_cmp(&canonical(*b)),
            (Value::Float(f), n) if n.integer().is_some() => n
                .integer()
                .map_or(Ordering::Equal, |i| cmp_int_float(i, *f).reverse()),
            (n, Value::Float(f)) if n.integer().is_some() => n
                .integer()
                .map_or(Ordering::Equal, |i| cmp_int_float(i, *f)),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => a.cmp(b),
            (Value::Map(a), Value::Map(b)) => cmp_maps(a, b),
            (Value::Opaque(a), Value::Opaque(b)) => a.cmp(b),
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
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => a == b,
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
            // Equal numbers hash alike: integral floats as their integer.
            Value::Bool(_) | Value::Int(_) | Value::UInt(_) => self.integer().hash(state),
            Value::Float(f) => match integral(*f) {
                Some(i) => Some(i).hash(state),
                None => canonical(*f).to_bits().hash(state),
            },
            Value::Str(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::List(items) | Value::Tuple(items) => items.hash(state),
            Value::Opaque(o) => o.hash(state),
            Value::Map(entries) => sorted(entries).hash(state),
            Value::Variant(name, payload) => {
                name.hash(state);
                payload.hash(state);
            }
            Value::Proxy(handle) => proxy_key(handle).hash(state),
        }
    }
}
