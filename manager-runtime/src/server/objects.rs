//! The object table: every live shared object, its typeid and its total refcount, and the
//! type-erased view of an object the connection code dispatches through.

use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use manager_core::wire::ObjectInfo;
use manager_core::{panic_message, CallOutcome, Codec, ObjectId, Receiver, RemoteError, Shared};
use tokio::sync::RwLock;

/// A call that has to be driven on its own task.
pub(crate) type CallTask = Pin<Box<dyn Future<Output = Result<Vec<u8>, RemoteError>> + Send>>;

/// How a call proceeds after lookup.
pub(crate) enum Dispatch {
    /// Finished inline (a plain `fn` whose lock was free).
    Ready(Result<Vec<u8>, RemoteError>),
    /// Must be spawned: an `async fn`, or a lock that is busy.
    Spawn {
        method: &'static str,
        task: CallTask,
    },
}

/// A shared object with its type erased. Implemented for `RwLock<T>`: `&self` methods take
/// the read lock (so they run concurrently), `&mut self` methods the write lock.
pub(crate) trait ErasedObject: Send + Sync {
    /// Start a call of `method`.
    /// Start a call of `method`; errors name the object's registered `typeid`.
    fn call(self: Arc<Self>, typeid: Arc<str>, method: &str, args: Bytes, codec: Codec)
        -> Dispatch;
    /// The object's `Display` text.
    fn display(self: Arc<Self>) -> Pin<Box<dyn Future<Output = Option<String>> + Send>>;
}

/// Run a plain method inline, turning a panic into a remote error.
fn run_inline(method: &'static str, f: impl FnOnce() -> Result<Vec<u8>, RemoteError>) -> Dispatch {
    Dispatch::Ready(catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(RemoteError::Panicked {
            method: method.to_owned(),
            message: panic_message(&*payload),
        })
    }))
}

async fn finish(outcome: CallOutcome<'_>) -> Result<Vec<u8>, RemoteError> {
    match outcome {
        CallOutcome::Ready(r) => r,
        CallOutcome::Pending(f) => f.await,
    }
}

impl<T: Shared> ErasedObject for RwLock<T> {
    fn call(
        self: Arc<Self>,
        typeid: Arc<str>,
        method: &str,
        args: Bytes,
        codec: Codec,
    ) -> Dispatch {
        let index = match T::method_index(method) {
            Ok(i) => i,
            Err(e) => return Dispatch::Ready(Err(e.with_typeid(&typeid))),
        };
        let info = T::METHODS[index];
        if !info.is_async {
            // A plain fn whose lock is free runs right here: no task, no allocation.
            match info.receiver {
                Receiver::Ref => {
                    if let Ok(guard) = self.try_read() {
                        return run_inline(info.name, || {
                            ready(guard.call_ref(index, &args, codec))
                        });
                    }
                }
                Receiver::Mut => {
                    if let Ok(mut guard) = self.try_write() {
                        return run_inline(info.name, || {
                            ready(guard.call_mut(index, &args, codec))
                        });
                    }
                }
            }
        }
        let task: CallTask = Box::pin(async move {
            let result = match info.receiver {
                Receiver::Ref => {
                    let guard = self.read().await;
                    finish(guard.call_ref(index, &args, codec)).await
                }
                Receiver::Mut => {
                    let mut guard = self.write().await;
                    finish(guard.call_mut(index, &args, codec)).await
                }
            };
            result.map_err(|e| e.with_typeid(&typeid))
        });
        Dispatch::Spawn {
            method: info.name,
            task,
        }
    }

    fn display(self: Arc<Self>) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> {
        Box::pin(async move { self.read().await.display() })
    }
}

/// The result of an outcome that must already be complete.
fn ready(outcome: CallOutcome<'_>) -> Result<Vec<u8>, RemoteError> {
    match outcome {
        CallOutcome::Ready(r) => r,
        CallOutcome::Pending(_) => Err(RemoteError::Protocol(
            "a plain method returned a future".to_owned(),
        )),
    }
}

/// Wrap a value as a table object.
pub(crate) fn erase<T: Shared>(value: T) -> Arc<dyn ErasedObject> {
    Arc::new(RwLock::new(value))
}

struct Entry {
    typeid: Arc<str>,
    object: Arc<dyn ErasedObject>,
    refcount: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ObjectId, Entry>,
    next_id: u64,
}

/// All live objects. A plain mutex: every critical section is a map operation.
#[derive(Default)]
pub(crate) struct ObjectTable {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ObjectTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectTable")
            .field("len", &self.len())
            .finish()
    }
}

impl ObjectTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding this lock; recover the data if one ever did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh id, never reused.
    pub(crate) fn allocate_id(&self) -> ObjectId {
        let mut inner = self.lock();
        inner.next_id += 1;
        ObjectId(inner.next_id)
    }

    /// Insert a new object with one reference.
    pub(crate) fn insert(&self, typeid: Arc<str>, object: Arc<dyn ErasedObject>) -> ObjectId {
        let id = self.allocate_id();
        self.insert_or_incref(id, typeid, object);
        id
    }

    /// Take a reference to `id`, inserting `object` under it if it is not live (a shared
    /// instance that all clients see).
    pub(crate) fn insert_or_incref(
        &self,
        id: ObjectId,
        typeid: Arc<str>,
        object: Arc<dyn ErasedObject>,
    ) {
        let mut inner = self.lock();
        inner
            .entries
            .entry(id)
            .or_insert(Entry {
                typeid,
                object,
                refcount: 0,
            })
            .refcount += 1;
    }

    /// The object and its typeid.
    pub(crate) fn get(&self, id: ObjectId) -> Option<(Arc<dyn ErasedObject>, Arc<str>)> {
        let inner = self.lock();
        inner
            .entries
            .get(&id)
            .map(|e| (e.object.clone(), e.typeid.clone()))
    }

    /// Take one more reference; false when the object is not live.
    pub(crate) fn incref(&self, id: ObjectId) -> bool {
        let mut inner = self.lock();
        match inner.entries.get_mut(&id) {
            Some(e) => {
                e.refcount += 1;
                true
            }
            None => false,
        }
    }

    /// Release `n` references; returns the object if that was the last one, so the caller
    /// drops it outside the lock.
    pub(crate) fn release(&self, id: ObjectId, n: u64) -> Option<Arc<dyn ErasedObject>> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(&id)?;
        entry.refcount = entry.refcount.saturating_sub(n);
        if entry.refcount == 0 {
            inner.entries.remove(&id).map(|e| e.object)
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub(crate) fn debug_info(&self) -> Vec<ObjectInfo> {
        let inner = self.lock();
        let mut rows: Vec<ObjectInfo> = inner
            .entries
            .iter()
            .map(|(id, e)| ObjectInfo {
                typeid: e.typeid.to_string(),
                id: *id,
                refcount: e.refcount,
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// Drop every object (server shutdown).
    pub(crate) fn clear(&self) {
        let entries = std::mem::take(&mut self.lock().entries);
        drop(entries);
    }
}
