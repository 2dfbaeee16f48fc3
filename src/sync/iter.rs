//! `Iterator`: what CPython's `iter(dict_proxy)` gets (its `method_to_typeid`).

use std::collections::VecDeque;
use std::sync::Mutex;

use super::support::lock;
use crate::{shared, Value};

/// An iterator over a snapshot of items, shared as the `Iterator` typeid: a Python client's
/// `for key in d` over a shared dict iterates one of these, one round trip per item (as
/// against CPython's server). Not created by clients directly.
pub struct PyIterator {
    items: Mutex<VecDeque<Value>>,
}

impl std::fmt::Debug for PyIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyIterator")
            .field("left", &lock(&self.items).len())
            .finish()
    }
}

impl PyIterator {
    /// An iterator over `items`.
    pub fn new(items: Vec<Value>) -> Self {
        PyIterator {
            items: Mutex::new(items.into()),
        }
    }
}

#[shared(proxy = PyIteratorCalls, typeid = "Iterator")]
impl PyIterator {
    /// The next item, `None` once they are all taken.
    pub fn next(&self) -> Option<Value> {
        lock(&self.items).pop_front()
    }

    /// Drop the items left (Python's `close()` of a generator).
    pub fn close(&self) {
        lock(&self.items).clear();
    }
}
