//! The object table: every live shared object, who holds references to it, the
//! references in transit between processes, and the type-erased view of an object that
//! calls dispatch through.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use bytes::Bytes;
use manager_core::ledger::{NotHeld, Owner, RefCounts};
use manager_core::wire::{HoldId, ObjectInfo};
use manager_core::{
    finish, CallOutcome, CallResult, Codec, ExclusiveGuard, MethodInfo, ObjectId, Receiver,
    RemoteError, Shared, SharedGuard, Waiting,
};
use rustc_hash::FxHashMap;

use super::caller::{Caller, ConnId};
use crate::client::handoff::{in_context, with_context, AdoptContext};

/// A call that may wait: polled once where it is read, then driven on its own task if it
/// did not finish.
pub(crate) type CallTask = Pin<Box<dyn Future<Output = CallResult> + Send>>;

/// How a call proceeds after lookup.
pub(crate) enum Dispatch {
    /// Finished inline (a plain `fn` whose lock was free).
    Ready(CallResult),
    /// May wait: an `async fn`, or a lock that is busy (see [`CallTask`]). A panic in it is
    /// its result (`RemoteError::Panicked`).
    Spawn(CallTask),
}

/// A shared object with its type erased. Implemented for [`ObjectLock<T>`]: `&self`
/// methods take the read lock (so they run concurrently), `&mut self` methods the write
/// lock; and for [`Unlocked<T>`], a type without `&mut self` methods.
pub(crate) trait ErasedObject: Send + Sync {
    /// Start a call of `method` on behalf of `caller`. Errors name the object's
    /// registered `typeid`; proxies in the arguments are adopted in `context`.
    fn call(
        self: Arc<Self>,
        typeid: Typeid<'_>,
        method: &str,
        args: Args<'_>,
        codec: Codec,
        context: &AdoptContext,
        caller: &Caller,
    ) -> Dispatch;
    /// The object's `Display` text.
    fn display(self: Arc<Self>) -> Pin<Box<dyn Future<Output = Option<String>> + Send>>;
    /// The object as `Any`, to reach its concrete type inside the server.
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

/// The encoded arguments of a call: a part of the frame they came in, copied out (a
/// reference count, not the bytes) only for a call that runs on its own task.
#[derive(Clone, Copy)]
pub(crate) struct Args<'a> {
    pub(crate) frame: &'a Bytes,
    pub(crate) bytes: &'a [u8],
}

impl Args<'_> {
    fn owned(self) -> Bytes {
        self.frame.slice_ref(self.bytes)
    }
}

/// The typeid of a live object, by its number in the table: its name is fetched only when
/// needed (an error, a spawned call), so a call touches no reference count for it.
#[derive(Clone, Copy)]
pub(crate) struct Typeid<'t> {
    table: &'t ObjectTable,
    index: usize,
}

impl Typeid<'_> {
    pub(crate) fn name(self) -> Arc<str> {
        self.table.typeid_name(self.index)
    }

    /// The typeid's index in the table (for counting).
    pub(crate) fn index(self) -> usize {
        self.index
    }
}

impl std::fmt::Display for Typeid<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// An erased object travelling inside [`manager_core::Returned::Object`].
pub(crate) struct Erased(pub(crate) Arc<dyn ErasedObject>);

/// Wrap a value as a table object.
pub(crate) fn erase<T: Shared>(value: T) -> Arc<dyn ErasedObject> {
    if has_exclusive_methods::<T>() {
        Arc::new(ObjectLock::new(value))
    } else {
        Arc::new(Unlocked(value))
    }
}

/// Wrap a value for [`manager_core::Returned::Object`].
pub(crate) fn erase_boxed<T: Shared>(value: T) -> Box<dyn Any + Send> {
    Box::new(Erased(erase(value)))
}

/// Run a plain method inline, in `caller`'s scope and `context`, turning a panic into a
/// remote error.
fn run_inline<'a>(
    info: MethodInfo,
    typeid: Typeid<'_>,
    caller: &Caller,
    context: &AdoptContext,
    f: impl FnOnce() -> CallOutcome<'a>,
) -> Dispatch {
    let result = super::panics::catch(info.name, || {
        Caller::scope_sync(caller, || with_context(context, || ready(f())))
    });
    Dispatch::Ready(result.map_err(|e| e.with_typeid(&typeid.name())))
}

/// A call that may wait, in `caller`'s scope. `start` decodes the arguments (in the adoption
/// context, on its first poll) and computes the outcome.
fn spawn_call<F>(info: MethodInfo, typeid: Typeid<'_>, caller: &Caller, start: F) -> Dispatch
where
    F: Future<Output = CallResult> + Send + 'static,
{
    let typeid = typeid.name();
    // Each poll runs user code (its panics are logged, not printed, and caught as this
    // call's error).
    let call = Caller::scope(caller.clone(), start);
    let task: CallTask = Box::pin(async move {
        super::panics::catch_async(info.name, call)
            .await
            .map_err(|e| e.with_typeid(&typeid))
    });
    Dispatch::Spawn(task)
}

/// The object's `Display` text, `<typeid object>` for a type without one. A `Display` that
/// panics is reported like a method that panics.
pub(crate) async fn display_text(
    object: Arc<dyn ErasedObject>,
    typeid: &str,
) -> Result<String, RemoteError> {
    let text =
        super::panics::catch_async("<display>", async { Ok(object.display().await) }).await?;
    Ok(text.unwrap_or_else(|| format!("<{typeid} object>")))
}

/// The result of an outcome that must already be complete.
fn ready(outcome: CallOutcome<'_>) -> CallResult {
    match outcome {
        CallOutcome::Ready(r) => r,
        CallOutcome::Pending(_) => Err(RemoteError::Protocol(
            "a plain method returned a future".to_owned(),
        )),
    }
}

/// The method `name` of `T`, or the dispatch that refuses it.
fn lookup<T: Shared>(name: &str, typeid: Typeid<'_>) -> Result<(usize, MethodInfo), Dispatch> {
    match T::method_index(name) {
        Ok(i) => Ok((i, T::METHODS[i])),
        Err(e) => Err(Dispatch::Ready(Err(e.with_typeid(&typeid.name())))),
    }
}

/// Whether any exposed method of `T` takes `&mut self` (then its objects need a lock).
const fn has_exclusive_methods<T: Shared>() -> bool {
    let mut i = 0;
    while i < T::METHODS.len() {
        if matches!(T::METHODS[i].receiver, Receiver::Mut) {
            return true;
        }
        i += 1;
    }
    false
}

/// The lock around each shared object that has `&mut self` methods: `&self` methods share
/// it, `&mut self` methods take it alone. (`async-lock`'s: uncontended locking and
/// unlocking are a few atomic operations, and it is small, which matters with many live
/// objects.)
pub(crate) type ObjectLock<T> = async_lock::RwLock<T>;

/// An object whose exposed methods all take `&self`: known at compile time, so its calls
/// take no lock and it is stored without one.
pub(crate) struct Unlocked<T>(pub(crate) T);

impl<T: Shared> ErasedObject for ObjectLock<T> {
    fn call(
        self: Arc<Self>,
        typeid: Typeid<'_>,
        method: &str,
        args: Args<'_>,
        codec: Codec,
        context: &AdoptContext,
        caller: &Caller,
    ) -> Dispatch {
        let (index, info) = match lookup::<T>(method, typeid) {
            Ok(found) => found,
            Err(refused) => return refused,
        };
        if !info.is_async {
            // A plain fn whose lock is free runs right here: no task, no allocation.
            match info.receiver {
                Receiver::Ref => {
                    if let Some(guard) = self.try_read() {
                        return run_inline(info, typeid, caller, context, || {
                            guard.call_ref(index, args.bytes, codec)
                        });
                    }
                }
                Receiver::Mut => {
                    if let Some(mut guard) = self.try_write() {
                        return run_inline(info, typeid, caller, context, || {
                            guard.call_mut(index, args.bytes, codec)
                        });
                    }
                }
            }
        }
        // The arguments are decoded when the call starts (its first poll, as the request is
        // read), before it waits for the lock: the proxies among them are adopted at once,
        // however long the lock takes. Every poll runs in `context` (a hand-written
        // `call_waiting` decodes only once it holds the lock).
        let (context, args) = (context.clone(), args.owned());
        let call = async move {
            let object = match info.receiver {
                Receiver::Ref => Waiting::Shared(Box::pin(async move {
                    Box::new(self.read_arc().await) as SharedGuard<'static, T>
                })),
                Receiver::Mut => Waiting::Exclusive(Box::pin(async move {
                    Box::new(self.write_arc().await) as ExclusiveGuard<'static, T>
                })),
            };
            finish(T::call_waiting(object, index, &args, codec)).await
        };
        spawn_call(info, typeid, caller, in_context(context, call))
    }

    fn display(self: Arc<Self>) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> {
        Box::pin(async move { self.read().await.display() })
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

impl<T: Shared> ErasedObject for Unlocked<T> {
    fn call(
        self: Arc<Self>,
        typeid: Typeid<'_>,
        method: &str,
        args: Args<'_>,
        codec: Codec,
        context: &AdoptContext,
        caller: &Caller,
    ) -> Dispatch {
        let (index, info) = match lookup::<T>(method, typeid) {
            Ok(found) => found,
            Err(refused) => return refused,
        };
        if !info.is_async {
            return run_inline(info, typeid, caller, context, || {
                self.0.call_ref(index, args.bytes, codec)
            });
        }
        let (context, args) = (context.clone(), args.owned());
        spawn_call(info, typeid, caller, async move {
            let outcome = with_context(&context, || self.0.call_ref(index, &args, codec));
            finish(outcome).await
        })
    }

    fn display(self: Arc<Self>) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> {
        // Lazily: a `Display` that panics must do so inside the future, where the caller
        // catches it.
        Box::pin(async move { self.0.display() })
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

/// What [`ObjectTable::expire`] dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired {
    /// References in transit nobody adopted.
    pub(crate) holds: usize,
    /// Adoptions whose hold never came.
    pub(crate) adoptions: usize,
}

/// Objects whose last reference went, to drop once the table lock is released (dropping
/// one may release proxies it held, which takes the lock again).
pub(crate) type Released = Vec<Arc<dyn ErasedObject>>;

/// One live object: 40 bytes in the table, plus the object itself.
struct Entry {
    object: Arc<dyn ErasedObject>,
    /// Its references; `refs.tag` is the index of its typeid in `Inner::typeids`.
    refs: RefCounts,
}

impl Entry {
    fn typeid(&self) -> usize {
        self.refs.tag as usize
    }
}

/// A reference in transit: a serialised proxy not adopted yet.
struct Transit {
    object: ObjectId,
    expires: Instant,
    /// The connection that sent the `Hold` (it counts against that connection's bound);
    /// `None` for a proxy the server itself serialised.
    from: Option<ConnId>,
}

/// An adoption that arrived before its hold (the two travel on different connections).
struct EarlyAdopt {
    object: ObjectId,
    /// Who gets the reference when the hold arrives; `None` once the adopted proxy was
    /// already released (its decref overtook the hold), so the hold is simply dropped.
    owner: Option<Owner>,
    /// References the owner took on it while waiting (a proxy cloned before its hold
    /// came): given with the hold's, or absorbed by decrefs if the hold never comes.
    extra: u64,
    /// Whose bound it counts against (see [`pending_key`]).
    on_behalf: ConnId,
    expires: Instant,
}

/// The key of the bound on hand-offs in flight: the connection they came from, or 0 (no
/// connection has that number) for the server's own.
fn pending_key(conn: Option<ConnId>) -> ConnId {
    conn.unwrap_or(0)
}

/// Object ids: a keyed hash (SipHash, with keys random per server) of a counter, so they
/// cannot be guessed from the ids a client has seen.
struct Ids {
    keys: std::hash::RandomState,
    counter: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            keys: std::hash::RandomState::new(),
            counter: 0,
        }
    }
}

impl Ids {
    /// A fresh id for which `taken` is false.
    fn next(&mut self, taken: impl Fn(ObjectId) -> bool) -> ObjectId {
        use std::hash::BuildHasher;
        loop {
            self.counter += 1;
            let id = ObjectId(self.keys.hash_one(self.counter));
            if id.0 != 0 && !taken(id) {
                return id;
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    /// By id. Ids are random, never chosen by a client, so a fast hash is safe.
    entries: FxHashMap<ObjectId, Entry>,
    /// Counts removals from `entries` (shared with [`ObjectTable::removals`]).
    removals: Arc<AtomicU64>,
    ids: Ids,
    /// Ids handed out for shared instances not in `entries` yet.
    reserved: std::collections::HashSet<ObjectId>,
    /// Every typeid objects were created under, once each.
    typeids: Vec<Arc<str>>,
    typeid_index: HashMap<Arc<str>, u32>,
    transit: HashMap<HoldId, Transit>,
    early: HashMap<HoldId, EarlyAdopt>,
    /// The holds of `early` by object and owner, so that a decref finds its owner's pending
    /// adoption without a scan.
    early_by: HashMap<(ObjectId, Owner), Vec<HoldId>>,
    /// Hand-offs in flight per connection (holds it sent, adoptions it waits for), bounded
    /// by `max_pending`.
    pending: HashMap<ConnId, usize>,
    /// Decrefs a connection owes nothing for: releases of proxies whose adoption never got
    /// its hold (the client holds a proxy the server counts no reference for). A decref
    /// takes one of these before any reference, so it cannot release one of the
    /// connection's real references in their place.
    unbacked: HashMap<(ObjectId, ConnId), u64>,
    max_pending: usize,
    /// Connections that may still hold references (a call finishing after its connection
    /// closed must not leave an object held by it).
    open: std::collections::HashSet<ConnId>,
    /// The objects each connection holds references to: a closing connection releases
    /// them without a scan of the whole table.
    held: HashMap<ConnId, rustc_hash::FxHashSet<ObjectId>>,
    /// Proxies sent to CPython clients inside values, not increfed yet: each keeps its
    /// object alive (one `InTransit` reference) until the client's `incref` for it comes,
    /// or until it expires. By object: the expiries, oldest first.
    python_transit: FxHashMap<ObjectId, std::collections::VecDeque<Instant>>,
}

impl Inner {
    fn is_closed(&self, owner: Owner) -> bool {
        matches!(owner, Owner::Connection(c) if !self.open.contains(&c))
    }

    fn new_id(&mut self) -> ObjectId {
        let (entries, reserved) = (&self.entries, &self.reserved);
        self.ids
            .next(|id| entries.contains_key(&id) || reserved.contains(&id))
    }

    fn intern(&mut self, typeid: &str) -> u32 {
        if let Some(&i) = self.typeid_index.get(typeid) {
            return i;
        }
        let name: Arc<str> = Arc::from(typeid);
        let i = self.typeids.len() as u32;
        self.typeids.push(name.clone());
        self.typeid_index.insert(name, i);
        i
    }

    fn add(&mut self, id: ObjectId, owner: Owner, n: u64) -> bool {
        match self.entries.get_mut(&id) {
            Some(entry) => {
                entry.refs.add(owner, n);
                self.index(id, owner);
                true
            }
            None => false,
        }
    }

    /// Note that `owner` holds references to `id` (for a connection: in `held`).
    fn index(&mut self, id: ObjectId, owner: Owner) {
        if let Owner::Connection(conn) = owner {
            self.held.entry(conn).or_default().insert(id);
        }
    }

    /// Note that `owner` may have released its last reference to `id`.
    fn unindex(&mut self, id: ObjectId, owner: Owner) {
        if let Owner::Connection(conn) = owner {
            let still = self
                .entries
                .get(&id)
                .is_some_and(|e| e.refs.count(owner) > 0);
            if !still {
                if let Some(ids) = self.held.get_mut(&conn) {
                    ids.remove(&id);
                }
            }
        }
    }

    /// Remove `n` references of `owner`, collecting the object if they were the last.
    fn sub(
        &mut self,
        id: ObjectId,
        owner: Owner,
        n: u64,
        released: &mut Released,
    ) -> Result<(), NotHeld> {
        let entry = self.entries.get_mut(&id).ok_or(NotHeld(id))?;
        if !entry.refs.sub(owner, n) {
            return Err(NotHeld(id));
        }
        if entry.refs.is_empty() {
            if let Some(e) = self.entries.remove(&id) {
                self.removals.fetch_add(1, Ordering::Release);
                released.push(e.object);
            }
        }
        self.unindex(id, owner);
        Ok(())
    }

    /// Count one more hand-off in flight for `key`; false (nothing counted) at the bound.
    fn reserve(&mut self, key: ConnId) -> bool {
        let n = self.pending.entry(key).or_insert(0);
        if *n >= self.max_pending {
            return false;
        }
        *n += 1;
        true
    }

    /// One hand-off of `key` is no longer in flight.
    fn unreserve(&mut self, key: ConnId) {
        if let Some(n) = self.pending.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&key);
            }
        }
    }

    /// Take the early adoption under `hold` out of `early` and the indexes.
    fn take_early(&mut self, hold: &HoldId) -> Option<EarlyAdopt> {
        let early = self.early.remove(hold)?;
        if let Some(owner) = early.owner {
            self.forget_early_owner(early.object, owner, hold);
        }
        self.unreserve(early.on_behalf);
        Some(early)
    }

    fn forget_early_owner(&mut self, object: ObjectId, owner: Owner, hold: &HoldId) {
        if let Some(holds) = self.early_by.get_mut(&(object, owner)) {
            holds.retain(|h| h != hold);
            if holds.is_empty() {
                self.early_by.remove(&(object, owner));
            }
        }
    }

    /// The adoptions `owner` made that still wait for their holds.
    fn adoptions_of(&self, owner: Owner) -> Vec<HoldId> {
        self.early
            .iter()
            .filter(|(_, a)| a.owner == Some(owner))
            .map(|(h, _)| *h)
            .collect()
    }

    /// The first adoption of `object` by `owner` still waiting for its hold.
    fn adopting(&self, object: ObjectId, owner: Owner) -> Option<HoldId> {
        if self.early_by.is_empty() {
            return None;
        }
        self.early_by
            .get(&(object, owner))
            .and_then(|h| h.first().copied())
    }

    /// An adoption that will never get its hold (it expired, or its connection went):
    /// what its owner took on it is owed by no reference.
    fn abandon(&mut self, early: EarlyAdopt) {
        if let Some(Owner::Connection(conn)) = early.owner {
            if self.open.contains(&conn) && self.entries.contains_key(&early.object) {
                let owed = self.unbacked.entry((early.object, conn)).or_insert(0);
                *owed = owed.saturating_add(1 + early.extra);
            }
        }
    }
}

/// The holds in `map` whose entry `is_due`.
fn due<T>(map: &HashMap<HoldId, T>, is_due: impl Fn(&T) -> bool) -> Vec<HoldId> {
    map.iter()
        .filter(|(_, entry)| is_due(entry))
        .map(|(hold, _)| *hold)
        .collect()
}

/// Why a hand-off message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The object is not live.
    Unknown,
    /// The connection holds no reference to the object it tried to put in transit.
    NotHeld,
    /// The hold id is in use for another object.
    Mismatch,
    /// The connection has `max_pending_handoffs` hand-offs in flight already.
    TooMany,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Unknown => "the object is not live",
            Refused::NotHeld => "the connection holds no reference to the object",
            Refused::Mismatch => "the hand-off names another object",
            Refused::TooMany => "too many hand-offs in flight on this connection",
        })
    }
}

/// All live objects and references. A plain mutex: every critical section is a few map
/// operations, and no object is dropped while it is held.
pub(crate) struct ObjectTable {
    inner: Mutex<Inner>,
    /// Counts removals of objects: an object looked up while it has not changed is still
    /// live (see [`ObjectCache`]).
    removals: Arc<AtomicU64>,
}

impl Default for ObjectTable {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PENDING)
    }
}

/// Hand-offs one connection may have in flight by default.
pub(crate) const DEFAULT_MAX_PENDING: usize = 16_384;

/// A connection's last object looked up, reused while no object was removed from the
/// table: a run of calls on one object takes the table's lock once. It holds the object
/// weakly, so it never delays the drop of an object the table released.
#[derive(Default)]
pub(crate) struct ObjectCache {
    last: Option<(ObjectId, Weak<dyn ErasedObject>, usize, u64)>,
}

impl ObjectCache {
    /// Object `id` and its typeid, as [`ObjectTable::get`] would return them.
    pub(crate) fn get<'t>(
        &mut self,
        table: &'t ObjectTable,
        id: ObjectId,
    ) -> Option<(Arc<dyn ErasedObject>, Typeid<'t>)> {
        let removals = table.removals.load(Ordering::Acquire);
        if let Some((cached, object, index, seen)) = &self.last {
            if *cached == id && *seen == removals {
                if let Some(object) = object.upgrade() {
                    return Some((
                        object,
                        Typeid {
                            table,
                            index: *index,
                        },
                    ));
                }
            }
        }
        let (object, typeid) = table.get(id)?;
        self.last = Some((id, Arc::downgrade(&object), typeid.index, removals));
        Some((object, typeid))
    }
}

impl std::fmt::Debug for ObjectTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectTable")
            .field("len", &self.len())
            .finish()
    }
}

impl ObjectTable {
    /// A table bounding each connection's hand-offs in flight to `max_pending`.
    pub(crate) fn new(max_pending: usize) -> Self {
        let inner = Inner {
            max_pending: max_pending.max(1),
            ..Inner::default()
        };
        ObjectTable {
            removals: inner.removals.clone(),
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding this lock; recover the data if one ever did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh id, never reused (for a shared instance, inserted on first use).
    pub(crate) fn allocate_id(&self) -> ObjectId {
        let mut inner = self.lock();
        let id = inner.new_id();
        inner.reserved.insert(id);
        id
    }

    /// A connection starts: it may hold references from now on.
    pub(crate) fn open_connection(&self, conn: ConnId) {
        self.lock().open.insert(conn);
    }

    /// Insert a new object with one reference, held by `owner`. For a connection that has
    /// closed already, the object is dropped at once.
    pub(crate) fn insert(
        &self,
        typeid: &str,
        object: Arc<dyn ErasedObject>,
        owner: Owner,
    ) -> ObjectId {
        let mut inner = self.lock();
        let id = inner.new_id();
        if inner.is_closed(owner) {
            drop(inner);
            drop(object);
            return id;
        }
        let mut refs = RefCounts::new();
        refs.tag = inner.intern(typeid);
        refs.add(owner, 1);
        inner.entries.insert(id, Entry { object, refs });
        inner.index(id, owner);
        id
    }

    /// Take a reference to `id` for `owner`, inserting `object` under it if it is not live
    /// (a shared instance that all clients see).
    pub(crate) fn insert_or_incref(
        &self,
        id: ObjectId,
        typeid: &str,
        object: Arc<dyn ErasedObject>,
        owner: Owner,
    ) {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&id) {
            let mut refs = RefCounts::new();
            refs.tag = inner.intern(typeid);
            inner.entries.insert(id, Entry { object, refs });
        }
        inner.add(id, owner, 1);
    }

    /// The object and its typeid.
    pub(crate) fn get(&self, id: ObjectId) -> Option<(Arc<dyn ErasedObject>, Typeid<'_>)> {
        let inner = self.lock();
        let entry = inner.entries.get(&id)?;
        let typeid = Typeid {
            table: self,
            index: entry.typeid(),
        };
        Some((entry.object.clone(), typeid))
    }

    /// The name of typeid `index`.
    pub(crate) fn typeid_name(&self, index: usize) -> Arc<str> {
        self.lock().typeids[index].clone()
    }

    /// Take one more reference for `owner` (a proxy was cloned), which must hold one (or be
    /// adopting one: the clone then waits for the same hold).
    pub(crate) fn incref(&self, id: ObjectId, owner: Owner) -> Result<(), Refused> {
        let mut inner = self.lock();
        let entry = inner.entries.get(&id).ok_or(Refused::Unknown)?;
        if entry.refs.count(owner) > 0 {
            inner.add(id, owner, 1);
            return Ok(());
        }
        let hold = inner.adopting(id, owner).ok_or(Refused::NotHeld)?;
        if let Some(early) = inner.early.get_mut(&hold) {
            early.extra += 1;
        }
        Ok(())
    }

    /// One more reference for CPython clients, on any live object (their protocol has no
    /// holders: a proxy unpickled in another process increfs the id it names). A proxy sent
    /// to a Python client inside a value is what this incref comes for: its transit
    /// reference becomes the client's.
    pub(crate) fn incref_python(&self, id: ObjectId) -> Result<(), Refused> {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&id) {
            return Err(Refused::Unknown);
        }
        let arrived = match inner.python_transit.get_mut(&id) {
            Some(expiries) => {
                expiries.pop_front();
                if expiries.is_empty() {
                    inner.python_transit.remove(&id);
                }
                true
            }
            None => false,
        };
        if arrived {
            // The object stays alive throughout: the transit reference becomes the client's.
            let mut released = Vec::new();
            inner.add(id, Owner::Python, 1);
            let _ = inner.sub(id, Owner::InTransit, 1, &mut released);
            return Ok(());
        }
        inner.add(id, Owner::Python, 1);
        Ok(())
    }

    /// A proxy to `id` is being sent to a CPython client inside a value: keep the object
    /// alive until the client's `incref` for it (at most until `expires`).
    pub(crate) fn send_to_python(&self, id: ObjectId, expires: Instant) -> Result<(), Refused> {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&id) {
            return Err(Refused::Unknown);
        }
        inner.add(id, Owner::InTransit, 1);
        inner
            .python_transit
            .entry(id)
            .or_default()
            .push_back(expires);
        Ok(())
    }

    /// A reference for `owner` (a proxy held inside the server) to `id`, which a CPython
    /// client named in a value it sent: the client holds one meanwhile.
    pub(crate) fn hold_for_python_value(&self, id: ObjectId, owner: Owner) -> Result<(), Refused> {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&id) {
            return Err(Refused::Unknown);
        }
        inner.add(id, owner, 1);
        Ok(())
    }

    /// A reference for `new`, a clone of a proxy inside the server that `from` holds.
    pub(crate) fn incref_from(&self, id: ObjectId, from: Owner, new: Owner) -> Result<(), Refused> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(&id).ok_or(Refused::Unknown)?;
        if entry.refs.count(from) == 0 {
            return Err(Refused::NotHeld);
        }
        entry.refs.add(new, 1);
        Ok(())
    }

    /// Release one reference of `owner`; returns what to drop outside the lock.
    ///
    /// What the owner owes nothing for goes first: a release of a proxy whose adoption is
    /// still waiting for its hold (the hold travels on the sender's connection, the
    /// adoption and the release on the receiver's) takes from that adoption, and one whose
    /// hold never came takes nothing. Releasing a real reference in their place would free
    /// an object another of the owner's proxies still uses.
    pub(crate) fn decref(&self, id: ObjectId, owner: Owner) -> Result<Released, NotHeld> {
        let mut released = Vec::new();
        let mut inner = self.lock();
        if let Some(hold) = inner.adopting(id, owner) {
            let early = inner.early.get_mut(&hold).expect("indexed");
            if early.extra > 0 {
                early.extra -= 1;
            } else {
                early.owner = None;
                inner.forget_early_owner(id, owner, &hold);
            }
            return Ok(released);
        }
        if let Owner::Connection(conn) = owner {
            if !inner.unbacked.is_empty() {
                if let Some(owed) = inner.unbacked.get_mut(&(id, conn)) {
                    *owed -= 1;
                    if *owed == 0 {
                        inner.unbacked.remove(&(id, conn));
                    }
                    return Ok(released);
                }
            }
        }
        inner.sub(id, owner, 1, &mut released)?;
        Ok(released)
    }

    /// Release everything a closed connection held (through its index of them), and its
    /// pending adoptions.
    pub(crate) fn release_connection(&self, conn: ConnId) -> Released {
        let mut released = Vec::new();
        let mut inner = self.lock();
        let owner = Owner::Connection(conn);
        inner.open.remove(&conn);
        for hold in inner.adoptions_of(owner) {
            inner.take_early(&hold);
        }
        inner.unbacked.retain(|(_, c), _| *c != conn);
        for id in inner.held.remove(&conn).unwrap_or_default() {
            let Some(entry) = inner.entries.get_mut(&id) else {
                continue;
            };
            if entry.refs.remove_all(owner) > 0 && entry.refs.is_empty() {
                if let Some(e) = inner.entries.remove(&id) {
                    released.push(e.object);
                }
            }
        }
        if !released.is_empty() {
            inner.removals.fetch_add(1, Ordering::Release);
        }
        released
    }

    /// Make the references connection `conn` holds exactly `refs` (object, count), as a
    /// client resuming its session counts them: reference changes it sent as its previous
    /// connection dropped may or may not have arrived. Its adoptions still waiting for
    /// their holds are dropped (the count includes their proxies). An object that no
    /// longer exists is skipped.
    pub(crate) fn reconcile(&self, conn: ConnId, refs: &[(ObjectId, u64)]) -> Released {
        let mut released = Vec::new();
        let mut inner = self.lock();
        let owner = Owner::Connection(conn);
        for hold in inner.adoptions_of(owner) {
            if let Some(early) = inner.early.get_mut(&hold) {
                // The hold, when it comes, stays in transit until it expires.
                early.owner = None;
                early.extra = 0;
            }
            let object = inner.early[&hold].object;
            inner.forget_early_owner(object, owner, &hold);
        }
        inner.unbacked.retain(|(_, c), _| *c != conn);
        let wanted: HashMap<ObjectId, u64> = refs.iter().copied().collect();
        let held: Vec<ObjectId> = inner
            .held
            .get(&conn)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        for id in held {
            let has = inner.entries.get(&id).map_or(0, |e| e.refs.count(owner));
            let want = wanted.get(&id).copied().unwrap_or(0);
            if has > want {
                let _ = inner.sub(id, owner, has - want, &mut released);
            }
        }
        for (&id, &want) in &wanted {
            let has = inner.entries.get(&id).map_or(0, |e| e.refs.count(owner));
            if want > has {
                inner.add(id, owner, want - has);
            }
        }
        released
    }

    /// Put one new reference to `id` in transit under `hold` (a proxy `owner` holds was
    /// serialised), or hand it straight to an adoption that arrived first. The owner must
    /// hold a reference to `id`; the hand-off counts against `on_behalf`'s bound
    /// (`max_pending_handoffs`).
    pub(crate) fn hold(
        &self,
        id: ObjectId,
        hold: HoldId,
        expires: Instant,
        owner: Owner,
        on_behalf: Option<ConnId>,
    ) -> Result<(), Refused> {
        let mut inner = self.lock();
        let entry = inner.entries.get(&id).ok_or(Refused::Unknown)?;
        if entry.refs.count(owner) == 0 {
            return Err(Refused::NotHeld);
        }
        if inner.transit.contains_key(&hold) {
            return Err(Refused::Mismatch);
        }
        if let Some(early) = inner.early.get(&hold) {
            if early.object != id {
                // Not this object's adoption: keep it, ignore the mismatched hold.
                return Err(Refused::Mismatch);
            }
            let early = inner.take_early(&hold).expect("present");
            if let Some(adopter) = early.owner {
                inner.add(id, adopter, 1 + early.extra);
            }
            // Adopted and released before the hold came: nothing to keep.
            return Ok(());
        }
        let from = on_behalf;
        if !inner.reserve(pending_key(from)) {
            return Err(Refused::TooMany);
        }
        inner.add(id, Owner::InTransit, 1);
        inner.transit.insert(
            hold,
            Transit {
                object: id,
                expires,
                from,
            },
        );
        Ok(())
    }

    /// Give the reference in transit under `hold` to `owner`; if it has not arrived yet,
    /// wait for it until `expires` (counted against `on_behalf`'s bound). A hold that names
    /// another object, or never comes, gives `owner` nothing.
    pub(crate) fn adopt(
        &self,
        id: ObjectId,
        hold: HoldId,
        owner: Owner,
        expires: Instant,
        on_behalf: Option<ConnId>,
    ) -> Result<(), Refused> {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&id) {
            return Err(Refused::Unknown);
        }
        match inner.transit.get(&hold) {
            Some(t) if t.object == id => {
                let t = inner.transit.remove(&hold).expect("present");
                inner.unreserve(pending_key(t.from));
                if let Some(entry) = inner.entries.get_mut(&id) {
                    entry.refs.sub(Owner::InTransit, 1);
                    entry.refs.add(owner, 1);
                    inner.index(id, owner);
                }
                Ok(())
            }
            // Not this object's hold: ignore the forged adoption.
            Some(_) => Err(Refused::Mismatch),
            None if inner.early.contains_key(&hold) => Err(Refused::Mismatch),
            None => {
                let key = pending_key(on_behalf);
                if !inner.reserve(key) {
                    return Err(Refused::TooMany);
                }
                inner.early.insert(
                    hold,
                    EarlyAdopt {
                        object: id,
                        owner: Some(owner),
                        extra: 0,
                        on_behalf: key,
                        expires,
                    },
                );
                inner.early_by.entry((id, owner)).or_default().push(hold);
                Ok(())
            }
        }
    }

    /// Release references in transit that nobody adopted in time, and forget adoptions
    /// whose hold never came; says how many of each.
    pub(crate) fn expire(&self, now: Instant) -> (Expired, Released) {
        let mut released = Vec::new();
        let mut inner = self.lock();
        let late = due(&inner.early, |a| a.expires <= now);
        let adoptions = late.len();
        for hold in late {
            if let Some(early) = inner.take_early(&hold) {
                inner.abandon(early);
            }
        }
        let expired = due(&inner.transit, |t| t.expires <= now);
        let mut holds = expired.len();
        for hold in expired {
            if let Some(t) = inner.transit.remove(&hold) {
                inner.unreserve(pending_key(t.from));
                let _ = inner.sub(t.object, Owner::InTransit, 1, &mut released);
            }
        }
        // Proxies sent to Python clients that never increfed them.
        let late: Vec<ObjectId> = inner
            .python_transit
            .iter()
            .filter(|(_, expiries)| expiries.front().is_some_and(|&e| e <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let mut gone = 0;
            if let Some(expiries) = inner.python_transit.get_mut(&id) {
                while expiries.front().is_some_and(|&e| e <= now) {
                    expiries.pop_front();
                    gone += 1;
                }
                if expiries.is_empty() {
                    inner.python_transit.remove(&id);
                }
            }
            holds += gone;
            for _ in 0..gone {
                let _ = inner.sub(id, Owner::InTransit, 1, &mut released);
            }
        }
        (Expired { holds, adoptions }, released)
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
                typeid: inner.typeids[e.typeid()].to_string(),
                id: *id,
                refcount: e.refs.total(),
                holders: e.refs.holders(),
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// The index of `typeid`, if an object was ever created under it.
    pub(crate) fn typeid_index(&self, typeid: &str) -> Option<usize> {
        self.lock().typeid_index.get(typeid).map(|&i| i as usize)
    }

    /// How many live objects each typeid has, sorted by typeid.
    pub(crate) fn count_by_typeid(&self) -> Vec<(String, u64)> {
        let inner = self.lock();
        let mut counts: FxHashMap<usize, u64> = FxHashMap::default();
        for entry in inner.entries.values() {
            *counts.entry(entry.typeid()).or_default() += 1;
        }
        let mut rows: Vec<(String, u64)> = counts
            .into_iter()
            .map(|(typeid, n)| (inner.typeids[typeid].to_string(), n))
            .collect();
        rows.sort();
        rows
    }

    /// Drop every object (server shutdown).
    pub(crate) fn clear(&self) {
        let entries = {
            let mut inner = self.lock();
            inner.transit.clear();
            inner.early.clear();
            inner.early_by.clear();
            inner.pending.clear();
            inner.unbacked.clear();
            inner.held.clear();
            inner.removals.fetch_add(1, Ordering::Release);
            std::mem::take(&mut inner.entries)
        };
        drop(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object with no methods: the table only counts references to it.
    struct Dummy;

    impl ErasedObject for Dummy {
        fn call(
            self: Arc<Self>,
            _: Typeid<'_>,
            _: &str,
            _: Args<'_>,
            _: Codec,
            _: &AdoptContext,
            _: &Caller,
        ) -> Dispatch {
            Dispatch::Ready(Err(RemoteError::Protocol("no methods".into())))
        }
        fn display(self: Arc<Self>) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> {
            Box::pin(async { None })
        }
        fn as_any(&self) -> &(dyn Any + Send + Sync) {
            self
        }
    }

    const A: Owner = Owner::Connection(1);
    const B: Owner = Owner::Connection(2);

    /// A table with connections 1 and 2 open and one object held by connection 1.
    fn table(max_pending: usize) -> (ObjectTable, ObjectId) {
        let table = ObjectTable::new(max_pending);
        table.open_connection(1);
        table.open_connection(2);
        let id = table.insert("x", Arc::new(Dummy), A);
        (table, id)
    }

    fn later() -> Instant {
        Instant::now() + std::time::Duration::from_secs(60)
    }

    #[test]
    fn only_a_holder_can_put_an_object_in_transit() {
        let (table, id) = table(10);
        let other = table.insert("x", Arc::new(Dummy), A);
        assert_eq!(
            table.hold(id, [1; 16], later(), B, Some(2)),
            Err(Refused::NotHeld)
        );
        assert_eq!(table.hold(id, [1; 16], later(), A, Some(1)), Ok(()));
        // The same hold id again, or an object that is not live, is refused.
        assert_eq!(
            table.hold(id, [1; 16], later(), A, Some(1)),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            table.hold(ObjectId(7), [2; 16], later(), A, Some(1)),
            Err(Refused::Unknown)
        );
        // Adopting it under another object's id gets nothing; under its own, the reference.
        assert_eq!(
            table.adopt(other, [1; 16], B, later(), Some(2)),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            table.adopt(ObjectId(7), [1; 16], B, later(), Some(2)),
            Err(Refused::Unknown)
        );
        assert_eq!(table.adopt(id, [1; 16], B, later(), Some(2)), Ok(()));
        assert_eq!(table.lock().entries[&id].refs.count(B), 1);
    }

    #[test]
    fn a_connection_cannot_mint_a_reference_from_its_own_adoption() {
        let (table, id) = table(10);
        // An adoption naming a hold nobody sent, then that hold from the adopter itself.
        assert_eq!(table.adopt(id, [1; 16], B, later(), Some(2)), Ok(()));
        assert_eq!(
            table.hold(id, [1; 16], later(), B, Some(2)),
            Err(Refused::NotHeld)
        );
        assert_eq!(
            table.hold(id, [2; 16], later(), B, Some(2)),
            Err(Refused::NotHeld)
        );
        assert_eq!(table.lock().entries[&id].refs.count(B), 0);
        // An incref with no reference and no adoption is refused too.
        assert_eq!(
            table.incref(id, Owner::Connection(3)),
            Err(Refused::NotHeld)
        );
    }

    #[test]
    fn clones_made_while_adopting_get_their_references_with_the_hold() {
        let (table, id) = table(10);
        assert_eq!(table.adopt(id, [1; 16], B, later(), Some(2)), Ok(()));
        assert_eq!(table.incref(id, B), Ok(()));
        assert_eq!(table.incref(id, B), Ok(()));
        // One clone is dropped before the hold comes.
        drop(table.decref(id, B).unwrap());
        assert_eq!(table.hold(id, [1; 16], later(), A, Some(1)), Ok(()));
        assert_eq!(table.lock().entries[&id].refs.count(B), 2);
    }

    #[test]
    fn a_proxy_whose_hold_never_came_releases_none_of_its_connections_references() {
        let (table, id) = table(10);
        // B gets one real reference, and adopts a proxy whose hold never comes.
        assert_eq!(table.hold(id, [1; 16], later(), A, Some(1)), Ok(()));
        assert_eq!(table.adopt(id, [1; 16], B, later(), Some(2)), Ok(()));
        assert_eq!(table.adopt(id, [2; 16], B, later(), Some(2)), Ok(()));
        let (expired, _) = table.expire(later() + std::time::Duration::from_secs(1));
        assert_eq!(expired.adoptions, 1);
        // B releases the proxy that never got its reference: its real one stays.
        drop(table.decref(id, B).unwrap());
        assert_eq!(table.lock().entries[&id].refs.count(B), 1);
        drop(table.decref(id, B).unwrap());
        assert_eq!(table.lock().entries[&id].refs.count(B), 0);
    }

    #[test]
    fn hand_offs_in_flight_are_bounded_per_connection() {
        let (table, id) = table(2);
        assert_eq!(table.adopt(id, [1; 16], B, later(), Some(2)), Ok(()));
        assert_eq!(table.adopt(id, [2; 16], B, later(), Some(2)), Ok(()));
        assert_eq!(
            table.adopt(id, [3; 16], B, later(), Some(2)),
            Err(Refused::TooMany)
        );
        // Another connection has a bound of its own.
        assert_eq!(table.hold(id, [4; 16], later(), A, Some(1)), Ok(()));
        // A hold arriving for a pending adoption frees its place.
        assert_eq!(table.hold(id, [1; 16], later(), A, Some(1)), Ok(()));
        assert_eq!(table.adopt(id, [3; 16], B, later(), Some(2)), Ok(()));
        // So does the connection closing.
        drop(table.release_connection(2));
        assert_eq!(table.adopt(id, [5; 16], B, later(), Some(2)), Ok(()));
        assert_eq!(table.adopt(id, [6; 16], B, later(), Some(2)), Ok(()));
    }

    #[test]
    fn a_closing_connection_releases_what_it_holds_and_nothing_else() {
        let (table, x) = table(10);
        let y = table.insert("y", Arc::new(Dummy), B);
        let z = table.insert("z", Arc::new(Dummy), B);
        // B takes a reference to x too, then gives back z's.
        assert_eq!(table.hold(x, [1; 16], later(), A, Some(1)), Ok(()));
        assert_eq!(table.adopt(x, [1; 16], B, later(), Some(2)), Ok(()));
        drop(table.decref(z, B).unwrap());
        assert_eq!(table.len(), 2);
        let released = table.release_connection(2);
        assert_eq!(released.len(), 1, "y only");
        assert!(table.get(y).is_none() && table.get(x).is_some());
        assert_eq!(table.release_connection(1).len(), 1);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_released_pending_adoption_takes_nothing_from_other_owners() {
        let (table, id) = table(10);
        let proxy = Owner::Proxy(1);
        assert_eq!(table.incref_from(id, A, Owner::Proxy(2)), Ok(()));
        // Adopted before its hold came, then released: only the pending adoption goes.
        assert_eq!(table.adopt(id, [1; 16], proxy, later(), None), Ok(()));
        drop(table.decref(id, proxy).unwrap());
        assert_eq!(table.hold(id, [1; 16], later(), A, Some(1)), Ok(()));
        let refs = &table.lock().entries[&id].refs;
        assert_eq!(
            (
                refs.count(proxy),
                refs.count(Owner::Proxy(2)),
                refs.count(A)
            ),
            (0, 1, 1)
        );
    }
}
