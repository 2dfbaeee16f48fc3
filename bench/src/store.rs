//! The `managers` contender: a `#[shared]` store with the floor's operations.

// `#[shared]` exposes `pub` methods; in this binary nothing is reachable from outside.
#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::sync::Mutex;

use managers::shared;
use serde_bytes::ByteBuf;

/// A keyed counter/store.
#[derive(Debug, Default)]
pub struct Store {
    map: Mutex<HashMap<String, u64>>,
}

#[shared]
impl Store {
    /// Add one to `key`.
    pub fn incr(&self, key: String) -> u64 {
        let mut map = self.map.lock().unwrap();
        let v = map.entry(key).or_insert(0);
        *v += 1;
        *v
    }

    /// The value of `key`.
    pub fn get(&self, key: String) -> Option<u64> {
        self.map.lock().unwrap().get(&key).copied()
    }

    /// Set `key`.
    pub fn set(&self, key: String, value: u64) {
        self.map.lock().unwrap().insert(key, value);
    }

    /// Return the payload.
    pub fn echo(&self, bytes: ByteBuf) -> ByteBuf {
        bytes
    }
}

/// A small object, for the create/drop and memory workloads.
#[derive(Debug, Default)]
pub struct Small(pub u64);

#[shared]
impl Small {
    /// Its value.
    pub fn get(&self) -> u64 {
        self.0
    }
}
