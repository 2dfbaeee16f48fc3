//! Server statistics (`Request::Stats`): connections, waiting calls, and calls per
//! typeid and method. Each connection counts its calls in a table of its own, without a
//! lock, and adds it to the server's before it writes their replies: one lock per batch
//! of requests, and a client that saw a reply finds its call counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use manager_core::stats::{MethodCalls, ServerStats, TypeidObjects};
use rustc_hash::FxHashMap;

use super::objects::ObjectTable;

/// Calls and failed calls, per typeid (by its index in the object table) and method.
#[derive(Default)]
pub(crate) struct Counts {
    by_typeid: FxHashMap<usize, FxHashMap<Box<str>, [u64; 2]>>,
    /// Whether anything was counted since the last merge.
    dirty: bool,
}

impl Counts {
    /// Count one call of `method` of `typeid` (one that failed if `failed`).
    pub(crate) fn add(&mut self, typeid: usize, method: &str, calls: u64, failed: bool) {
        let methods = self.by_typeid.entry(typeid).or_default();
        let counts = match methods.get_mut(method) {
            Some(counts) => counts,
            None => methods.entry(method.into()).or_default(),
        };
        counts[0] += calls;
        counts[1] += u64::from(failed);
        self.dirty = true;
    }

    /// Add `other`'s counts to these, and zero them there (keeping its table's room).
    fn take_from(&mut self, other: &mut Counts) {
        for (&typeid, methods) in &mut other.by_typeid {
            for (method, counts) in methods.iter_mut() {
                if *counts != [0, 0] {
                    let [calls, errors] = std::mem::take(counts);
                    let mine = self
                        .by_typeid
                        .entry(typeid)
                        .or_default()
                        .entry(method.clone())
                        .or_default();
                    mine[0] += calls;
                    mine[1] += errors;
                }
            }
        }
        other.dirty = false;
    }
}

/// The server's counters.
#[derive(Default)]
pub(crate) struct Stats {
    open: AtomicU64,
    total: AtomicU64,
    waiting: AtomicU64,
    calls: Mutex<Counts>,
}

/// Counts one open connection until dropped.
pub(crate) struct Open(Arc<Stats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts one waiting call until dropped.
pub(crate) struct Waiting(pub(crate) Arc<Stats>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection was authenticated: counted open until the guard drops.
    pub(crate) fn opened(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }

    /// A call waits on its own task: counted until the guard drops.
    pub(crate) fn waiting(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.clone())
    }

    /// Add a connection's counts to the server's.
    pub(crate) fn merge(&self, local: &mut Counts) {
        if local.dirty {
            self.lock().take_from(local);
        }
    }

    /// Count one failed call of `method` of `typeid` already counted as a call.
    pub(crate) fn failed(&self, typeid: usize, method: &str) {
        self.lock().add(typeid, method, 0, true);
    }

    /// Everything, now.
    pub(crate) fn snapshot(&self, objects: &ObjectTable, sessions_parked: u64) -> ServerStats {
        let mut calls: Vec<MethodCalls> = {
            let counts = self.lock();
            counts
                .by_typeid
                .iter()
                .flat_map(|(&typeid, methods)| {
                    let name = objects.typeid_name(typeid);
                    methods
                        .iter()
                        .map(move |(method, &[calls, errors])| MethodCalls {
                            typeid: name.to_string(),
                            method: method.to_string(),
                            calls,
                            errors,
                        })
                })
                .collect()
        };
        calls.sort_by(|a, b| (&a.typeid, &a.method).cmp(&(&b.typeid, &b.method)));
        let objects = objects
            .count_by_typeid()
            .into_iter()
            .map(|(typeid, objects)| TypeidObjects { typeid, objects })
            .collect();
        ServerStats {
            connections: self.open.load(Ordering::Relaxed),
            connections_total: self.total.load(Ordering::Relaxed),
            sessions_parked,
            calls_waiting: self.waiting.load(Ordering::Relaxed),
            objects,
            calls,
        }
    }
}
