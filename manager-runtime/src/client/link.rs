//! What the connections of one session share ([`SessionLink`]): the session's state as
//! `Client::connection_state` reports it, the count of references its proxies hold while
//! it can be resumed, the connection a resume is being tried on, and the calls waiting
//! for a reconnect to end. How a dropped session is resumed is `session.rs`; this module
//! is below the connection, so it names the connection type only as a parameter (`C`,
//! always `Connection`).

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::Duration;

use manager_core::wire::{Resume, Session, SessionId};
use manager_core::ObjectId;
use rustc_hash::FxHashMap;
use tokio::sync::watch;

use super::ordered::{Level, Ordered, OrderedGuard};
use crate::Error;

/// The state of a client's connection, as [`Client::connection_state`](crate::Client::connection_state)
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected: the first connection, or a session resumed after a drop.
    Connected,
    /// The connection dropped; reconnecting to resume the session (the server keeps it for
    /// its grace period).
    Reconnecting,
    /// The connection is gone for good, and with it every proxy made through it: it was
    /// closed, it dropped and the server keeps no sessions, or reconnecting failed.
    Lost(LostReason),
}

/// Why a connection was lost ([`ConnectionState::Lost`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// It dropped, and the server keeps no sessions (`session_grace` is off) or this client
    /// does not reconnect (`ClientBuilder::reconnect(None)`).
    Dropped,
    /// The session's grace period passed before the client got back.
    Expired,
    /// The client got back to a new instance of the server (it restarted): the session's
    /// objects are gone.
    ServerRestarted,
}

impl LostReason {
    /// The error a proxy (of `token`) of a session lost for this reason gets.
    pub(crate) fn error_for(&self, token: &manager_core::Token) -> Error {
        match self {
            LostReason::ServerRestarted => Error::ServerRestarted {
                typeid: token.typeid.clone(),
                id: token.id,
            },
            LostReason::Dropped | LostReason::Expired => Error::SessionLost {
                typeid: token.typeid.clone(),
                id: token.id,
            },
        }
    }
}

/// What starts a reconnect when a connection of the session drops (given by
/// `session.rs`, which makes the link): the dropped connection, the link, and the grace
/// period the server keeps the session for.
pub(crate) type Reconnect<C> = Box<dyn Fn(Weak<C>, Arc<SessionLink<C>>, Duration) + Send + Sync>;

/// What the connections of one session share.
pub(crate) struct SessionLink<C> {
    id: SessionId,
    epoch: u64,
    /// How long the server keeps the session after a drop; `None`: it does not (or this
    /// client does not reconnect).
    grace: Option<Duration>,
    /// Whether calls made while reconnecting wait for it.
    wait: bool,
    state: watch::Sender<ConnectionState>,
    /// The references this client's proxies hold, per object, while the session can be
    /// resumed. Every reference change is counted under this lock.
    refs: Ordered<FxHashMap<ObjectId, u64>>,
    /// The connection a resume is being tried on: reference changes go to it, behind its
    /// `Hello`.
    trying: Ordered<Option<Arc<C>>>,
    /// Calls waiting for the outcome of a reconnect.
    waiters: Mutex<Vec<Waker>>,
    reconnect: Reconnect<C>,
}

impl<C> std::fmt::Debug for SessionLink<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLink")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C> SessionLink<C> {
    /// The link of `session`, which can be resumed if the server keeps it after a drop and
    /// the client `reconnects` (then `reconnect` is called on a drop); `wait`: calls made
    /// while reconnecting wait for it.
    pub(crate) fn new(
        session: &Session,
        reconnects: bool,
        wait: bool,
        reconnect: Reconnect<C>,
    ) -> Self {
        let grace =
            (session.grace_ms > 0 && reconnects).then(|| Duration::from_millis(session.grace_ms));
        SessionLink {
            id: session.id,
            epoch: session.epoch,
            grace,
            wait,
            state: watch::Sender::new(ConnectionState::Connected),
            refs: Ordered::new(Level::SessionRefs, FxHashMap::default()),
            trying: Ordered::new(Level::SessionTrying, None),
            waiters: Mutex::default(),
            reconnect,
        }
    }

    /// Whether the session can be resumed (references are counted).
    pub(crate) fn resumable(&self) -> bool {
        self.grace.is_some()
    }

    /// The server instance the session is on.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    /// Set the session's state, and wake the calls waiting for a reconnect to end.
    pub(crate) fn set_state(&self, state: ConnectionState) {
        self.state.send_replace(state);
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Whether a reconnect is under way.
    pub(crate) fn reconnecting(&self) -> bool {
        *self.state.borrow() == ConnectionState::Reconnecting
    }

    /// Why the session is gone, if it is.
    pub(crate) fn lost(&self) -> Option<LostReason> {
        match &*self.state.borrow() {
            ConnectionState::Lost(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// Whether calls made while reconnecting wait for it.
    pub(crate) fn waits(&self) -> bool {
        self.wait
    }

    /// Wake `waker` when the reconnect under way ends; false if none is.
    pub(crate) fn wait(&self, waker: &Waker) -> bool {
        let mut waiters = lock(&self.waiters);
        // Checked under the waiters' lock: a state set after this is seen by its wake-up.
        if !self.reconnecting() {
            return false;
        }
        waiters.push(waker.clone());
        true
    }

    /// Wait until a reconnect under way ends.
    ///
    /// Cancel safe: it only waits.
    pub(crate) async fn settled(&self) {
        let mut state = self.state.subscribe();
        let _ = state
            .wait_for(|s| *s != ConnectionState::Reconnecting)
            .await;
    }

    /// Count a change of `delta` to the references held to `object`, and return the lock
    /// (the change's frame must be queued under it; see `session.rs`).
    pub(crate) fn count(
        &self,
        object: ObjectId,
        delta: i64,
    ) -> OrderedGuard<'_, FxHashMap<ObjectId, u64>> {
        let mut refs = self.refs.lock();
        let n = refs.entry(object).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            refs.remove(&object);
        }
        refs
    }

    /// Start resuming the session on `new`: `hello` queues the resuming `Hello` with the
    /// reference count, under the count's lock; once it is queued `new` is the connection
    /// tried, so reference changes after the count go to it, behind the `Hello`.
    pub(crate) fn start_resume<T>(
        &self,
        new: &Arc<C>,
        hello: impl FnOnce(Resume) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let refs = self.refs.lock();
        let resume = Resume {
            session: self.id,
            epoch: self.epoch,
            refs: refs.iter().map(|(&o, &n)| (o, n)).collect(),
        };
        let started = hello(resume)?;
        *self.trying.lock() = Some(new.clone());
        drop(refs);
        Ok(started)
    }

    /// The resume tried ended (its outcome is set with [`SessionLink::set_state`]).
    pub(crate) fn resume_ended(&self) {
        *self.trying.lock() = None;
    }

    /// The connection a resume is being tried on, if any.
    pub(crate) fn trying(&self) -> Option<Arc<C>> {
        self.trying.lock().clone()
    }

    /// The connection `conn` dropped: the session is lost at once if it cannot be resumed;
    /// else a reconnect starts.
    pub(crate) fn dropped(self: &Arc<Self>, conn: Weak<C>) {
        match self.grace {
            Some(grace) => {
                self.set_state(ConnectionState::Reconnecting);
                (self.reconnect)(conn, self.clone(), grace);
            }
            None => self.set_state(ConnectionState::Lost(LostReason::Dropped)),
        }
    }
}
