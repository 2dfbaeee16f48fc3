//! Sessions that survive a dropped connection (`ServerBuilder::session_grace` on the
//! server): the client reconnects by itself and resumes its session, and every proxy of
//! the dropped connection goes on through the new one.
//!
//! While a session can be resumed, the client counts the references its proxies hold per
//! object (`refs`): reference changes sent just before a connection dropped may or may
//! not have reached the server, so the resuming `Hello` carries the count and the server
//! makes the session's references exactly that. The count is taken under the same lock
//! every reference change takes, and the changes after it are queued behind the `Hello`
//! on the new connection: the server sees each change exactly once.
//!
//! Calls: those in flight when the connection dropped fail with the transport error
//! (the server withdrew them: a blocked `get` took nothing, an effect not yet taken was
//! undone). Calls made while reconnecting wait for the outcome (`ClientBuilder::
//! reconnect_wait`, bounded by their deadline) or fail at once.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::Duration;

use manager_core::wire::{Request, Resume, SessionId};
use manager_core::ObjectId;
use rustc_hash::FxHashMap;
use tokio::sync::watch;

use super::connection::{ConnectOptions, Connection};
use super::ordered::{Level, Ordered, OrderedGuard};
use super::reply::OwnedReply;
use crate::{AuthKey, Error, TransportError};

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

/// How a client reconnects after its connection drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failed try (doubled after each, up to `max`).
    pub initial: Duration,
    /// The longest pause between tries.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_secs(1),
        }
    }
}

/// What the connections of one session share.
pub(crate) struct SessionLink {
    pub(crate) address: manager_core::Address,
    key: AuthKey,
    options: ConnectOptions,
    id: SessionId,
    epoch: u64,
    /// How long the server keeps the session after a drop; `None`: it does not.
    grace: Option<Duration>,
    state: watch::Sender<ConnectionState>,
    /// The references this client's proxies hold, per object, while the session can be
    /// resumed. Every reference change is counted under this lock.
    refs: Ordered<FxHashMap<ObjectId, u64>>,
    /// The connection a resume is being tried on: reference changes go to it, behind its
    /// `Hello`.
    trying: Ordered<Option<Arc<Connection>>>,
    /// Calls waiting for the outcome of a reconnect.
    waiters: Mutex<Vec<Waker>>,
}

impl std::fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLink")
            .field("address", &self.address)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionLink {
    pub(crate) fn new(
        address: manager_core::Address,
        key: AuthKey,
        options: ConnectOptions,
        session: &manager_core::wire::Session,
    ) -> Self {
        let grace = (session.grace_ms > 0 && options.reconnect.is_some())
            .then(|| Duration::from_millis(session.grace_ms));
        SessionLink {
            address,
            key,
            options,
            id: session.id,
            epoch: session.epoch,
            grace,
            state: watch::Sender::new(ConnectionState::Connected),
            refs: Ordered::new(Level::SessionRefs, FxHashMap::default()),
            trying: Ordered::new(Level::SessionTrying, None),
            waiters: Mutex::default(),
        }
    }

    /// Whether the session can be resumed (references are counted).
    pub(crate) fn resumable(&self) -> bool {
        self.grace.is_some()
    }

    pub(crate) fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    fn set_state(&self, state: ConnectionState) {
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
        self.options.reconnect_wait
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
    pub(crate) async fn settled(&self) {
        let mut state = self.state.subscribe();
        let _ = state
            .wait_for(|s| *s != ConnectionState::Reconnecting)
            .await;
    }

    /// Count a change of `delta` to the references held to `object`, and return the lock
    /// (the change's frame must be queued under it; see the module docs).
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

    /// The connection a resume is being tried on, if any.
    pub(crate) fn trying(&self) -> Option<Arc<Connection>> {
        self.trying.lock().clone()
    }

    /// The connection dropped: the session is lost at once if it cannot be resumed.
    pub(crate) fn dropped(self: &Arc<Self>, conn: Weak<Connection>) {
        match self.grace {
            Some(grace) => {
                self.set_state(ConnectionState::Reconnecting);
                tokio::spawn(reconnect(conn, self.clone(), grace));
            }
            None => self.set_state(ConnectionState::Lost(LostReason::Dropped)),
        }
    }

    /// The error a proxy of a lost session gets.
    pub(crate) fn lost_error(why: &LostReason, token: &manager_core::Token) -> Error {
        match why {
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

/// Reconnect to resume the session of `old`, trying until the server's grace period
/// would have passed.
async fn reconnect(old: Weak<Connection>, link: Arc<SessionLink>, grace: Duration) {
    let give_up = tokio::time::Instant::now() + grace;
    let backoff = link.options.reconnect.unwrap_or_default();
    let mut pause = backoff.initial;
    loop {
        if old.strong_count() == 0 {
            // Nobody uses the session any more.
            return;
        }
        let attempt = tokio::time::timeout(
            link.options.handshake_timeout,
            Connection::attempt(&link.address, &link.key, &link.options, false),
        )
        .await;
        if let Ok(Ok(new)) = attempt {
            let Some(old) = old.upgrade() else { return };
            // If the new connection failed too, try again.
            if let Ok(outcome) = resume(&old, &new, &link).await {
                tracing::info!(
                    target: "managers::client",
                    address = %link.address,
                    resumed = outcome == ConnectionState::Connected,
                    "reconnected"
                );
                link.set_state(outcome);
                return;
            }
        }
        if tokio::time::Instant::now() + pause >= give_up {
            link.set_state(ConnectionState::Lost(LostReason::Expired));
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(backoff.max);
    }
}

/// Ask `new` to resume the session of `old`: `Connected` once it did (the proxies of
/// `old` go on through `new`), `Lost` if the server no longer has the session, an error
/// if `new` failed before answering.
async fn resume(
    old: &Arc<Connection>,
    new: &Arc<Connection>,
    link: &Arc<SessionLink>,
) -> Result<ConnectionState, Error> {
    let started = {
        let refs = link.refs.lock();
        let counted: Vec<(ObjectId, u64)> = refs.iter().map(|(&o, &n)| (o, n)).collect();
        let resume = Resume {
            session: link.id,
            epoch: link.epoch,
            refs: counted,
        };
        let started = new.start(
            |id| Request::Hello {
                id,
                resume: Some(resume.clone()),
            },
            None,
        )?;
        // Reference changes from now on go to `new`, behind the `Hello`.
        *link.trying.lock() = Some(new.clone());
        drop(refs);
        started
    };
    let reply = match started {
        Some(started) => started.reply().await,
        None => Err(Error::Transport(TransportError::Closed)),
    };
    *link.trying.lock() = None;
    let session = match reply {
        Ok(OwnedReply::Session(session)) => session,
        Ok(other) => return Err(other.unexpected()),
        Err(e) => return Err(e),
    };
    if session.resumed {
        new.join_session(link.clone(), session);
        old.hand_over(new.clone());
        super::handoff::register(&link.address, new);
        return Ok(ConnectionState::Connected);
    }
    let why = match session.epoch == link.epoch {
        true => LostReason::Expired,
        false => LostReason::ServerRestarted,
    };
    Ok(ConnectionState::Lost(why))
}
