//! `Iterator`: what CPython's `iter(dict_proxy)` gets (its `method_to_typeid`).

use std::collections::VecDeque;
use std::sync::Mutex;

use super::error::{Outcome, SyncError};
use super::support::lock;
use crate::{shared, ProxyHandle, Value};

/// An iterator over a snapshot of items, shared as the `Iterator` typeid: a Python client's
/// `for key in d` over a shared dict iterates one of these, one round trip per item (as
/// against CPython's server). Not created by clients directly.
pub struct PyIterator {
    items: Mutex<VecDeque<Value>>,
    /// The dict iterated and its size when the iteration began: a dict whose size changed
    /// meanwhile makes `next` fail, as a Python dict iterator does.
    source: Option<(ProxyHandle, usize)>,
    /// The source changed size: every `next` fails from then on.
    broken: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PyIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyIterator")
            .field("left", &lock(&self.items).len())
            .field("source", &self.source.as_ref().map(|(d, _)| d.id()))
            .finish()
    }
}

impl PyIterator {
    /// An iterator over `items`, taken from `source` (a proxy to a shared
    /// [`Dict`](super::Dict), in a [`Value::Proxy`]) if given.
    pub fn new(items: Vec<Value>, source: Option<Value>) -> Self {
        let size = items.len();
        PyIterator {
            items: Mutex::new(items.into()),
            source: match source {
                Some(Value::Proxy(handle)) => Some((handle, size)),
                _ => None,
            },
            broken: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

#[shared(proxy = PyIteratorCalls, name = "Iterator", errors = value)]
impl PyIterator {
    /// The next item, `None` once they are all taken; an error if the dict it iterates
    /// changed size since the iteration began.
    pub fn next(&self) -> Outcome<Option<Value>> {
        let mut items = lock(&self.items);
        if items.is_empty() {
            return Ok(None);
        }
        let changed = self.source.as_ref().is_some_and(|(dict, size)| {
            dict.with_local(|d: &super::Dict| d.len())
                .is_some_and(|now| now != *size)
        });
        if changed || self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            self.broken.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(SyncError::Invalid(
                "dictionary changed size during iteration".into(),
            ));
        }
        Ok(items.pop_front())
    }

    /// Drop the items left (Python's `close()` of a generator).
    pub fn close(&self) {
        lock(&self.items).clear();
    }
}
