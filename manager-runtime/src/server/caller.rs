//! Who is calling: lets a shared object tie state to the client connection that made a call
//! and undo it when that client goes away (a lock it held, a permit it took).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

use tracing::warn;

/// Numbers the connections of one server (and the sessions they belong to).
pub(crate) type ConnId = u64;

scoped_tls::scoped_thread_local! {
    /// The caller of the method running on this thread: set for the duration of a plain
    /// method, and for each poll of an `async` one (borrowed: no clone per call). Scopes
    /// nest, so the innermost method's caller is the one seen (a method that calls another
    /// through a proxy the server holds).
    static CALLER: Caller
}

type Callback = Box<dyn FnOnce() + Send>;

/// The disconnect callbacks of one server.
#[derive(Default)]
pub(crate) struct Hooks {
    state: Mutex<HookState>,
    next: AtomicU64,
}

#[derive(Default)]
struct HookState {
    open: HashSet<ConnId>,
    /// By connection, then by registration number: ordered, so that they run newest first.
    callbacks: HashMap<ConnId, BTreeMap<u64, Callback>>,
}

impl Hooks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HookState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn opened(&self, conn: ConnId) {
        self.lock().open.insert(conn);
    }

    /// Run every callback registered for `conn` (it closed), newest first: undo in the
    /// reverse order of doing, like unwinding, and the same order every time.
    pub(crate) fn closed(&self, conn: ConnId) {
        let callbacks = {
            let mut state = self.lock();
            state.open.remove(&conn);
            state.callbacks.remove(&conn).unwrap_or_default()
        };
        for (_, callback) in callbacks.into_iter().rev() {
            run(callback);
        }
    }

    fn register(&self, conn: ConnId, callback: Callback) -> Option<u64> {
        let mut state = self.lock();
        if !state.open.contains(&conn) {
            drop(state);
            // Already gone: undo right away.
            run(callback);
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        state
            .callbacks
            .entry(conn)
            .or_default()
            .insert(id, callback);
        Some(id)
    }

    fn cancel(&self, conn: ConnId, id: u64) {
        let mut state = self.lock();
        if let Some(map) = state.callbacks.get_mut(&conn) {
            map.remove(&id);
        }
    }
}

fn run(callback: Callback) {
    if catch_unwind(AssertUnwindSafe(|| super::panics::user_code(callback))).is_err() {
        warn!("a disconnect callback panicked");
    }
}

/// Identifies who made a call: one client connection, or the server itself (a proxy held
/// inside a shared object). Two calls have equal ids when they came over the same
/// connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerId(Option<ConnId>);

impl fmt::Debug for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, "connection #{c}"),
            None => f.write_str("the server"),
        }
    }
}

/// The caller of the shared-object method that is running now.
///
/// Available inside methods called through a proxy ([`Caller::current`]); use it to
/// remember who acquired something and to undo it when that client disconnects.
#[derive(Clone)]
pub struct Caller {
    pub(crate) connection: Option<ConnId>,
    pub(crate) hooks: Weak<Hooks>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Caller").field(&self.id()).finish()
    }
}

impl Caller {
    /// The caller of the method running on this task, if a method is running.
    pub fn current() -> Option<Caller> {
        CALLER.is_set().then(|| CALLER.with(Caller::clone))
    }

    /// Who this is.
    pub fn id(&self) -> CallerId {
        CallerId(self.connection)
    }

    /// Run `callback` when this caller's connection closes (or the client process dies).
    /// If it has closed already, `callback` runs now. Calls from inside the server never
    /// disconnect. Dropping the returned hook cancels the callback. The callbacks of one
    /// connection run one after another, the most recently registered first.
    pub fn on_disconnect(&self, callback: impl FnOnce() + Send + 'static) -> DisconnectHook {
        let registered = match (self.connection, self.hooks.upgrade()) {
            (Some(conn), Some(hooks)) => hooks
                .register(conn, Box::new(callback))
                .map(|id| (conn, id)),
            _ => None,
        };
        DisconnectHook {
            hooks: self.hooks.clone(),
            registered,
        }
    }

    /// Register how to undo what the method running now did (a lock it acquired, an item
    /// it took) in case its caller never takes the result: the caller dropped the call,
    /// before or after the reply came back, or its connection closed first (a client that
    /// died while the reply was on its way). Once the caller takes the result, `undo` is
    /// dropped without running; it runs at most once, on the server, outside the method.
    ///
    /// Register it when the effect has happened, after the method's last wait, as it is
    /// about to succeed: if the method then returns an error (an `Err` that reaches the
    /// caller as a remote error) or panics, `undo` runs at once; if the call is cancelled
    /// while it still waits, `undo` is dropped without running. Several undos of one call
    /// run newest first; a panicking one is caught and logged. Outside a method called by a
    /// client (for example a call from inside the server), this does nothing.
    ///
    /// With the `managers` facade (where the crate docs run this example):
    ///
    /// ```ignore
    /// use std::sync::{Arc, Mutex};
    /// use managers::{shared, Caller};
    ///
    /// pub struct Tickets(Arc<Mutex<Vec<u32>>>);
    ///
    /// #[shared]
    /// impl Tickets {
    ///     /// Take a ticket; a caller that never receives it gives it back.
    ///     pub fn take(&self) -> Option<u32> {
    ///         let ticket = self.0.lock().unwrap().pop()?;
    ///         let tickets = self.0.clone();
    ///         Caller::undo_unless_taken(move || tickets.lock().unwrap().push(ticket));
    ///         Some(ticket)
    ///     }
    /// }
    /// ```
    pub fn undo_unless_taken(undo: impl FnOnce() + Send + 'static) {
        super::effects::register(Box::new(undo));
    }

    /// Run `f`, a plain method (it does not await), as called by `caller`.
    pub(crate) fn scope_sync<R>(caller: &Caller, f: impl FnOnce() -> R) -> R {
        CALLER.set(caller, f)
    }

    /// Wrap a method's future so that it runs as called by `caller` (each of its polls).
    pub(crate) async fn scope<F: std::future::Future>(caller: Caller, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| CALLER.set(&caller, || future.as_mut().poll(cx))).await
    }
}

/// A callback registered with [`Caller::on_disconnect`]; dropping it cancels the callback.
#[must_use = "dropping the hook cancels the callback"]
pub struct DisconnectHook {
    hooks: Weak<Hooks>,
    registered: Option<(ConnId, u64)>,
}

impl fmt::Debug for DisconnectHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DisconnectHook")
            .field("armed", &self.registered.is_some())
            .finish()
    }
}

impl Drop for DisconnectHook {
    fn drop(&mut self) {
        if let (Some((conn, id)), Some(hooks)) = (self.registered, self.hooks.upgrade()) {
            hooks.cancel(conn, id);
        }
    }
}
