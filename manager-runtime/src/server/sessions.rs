//! Client sessions that outlive a connection: a session whose connection drops is parked
//! for the grace period (`ServerBuilder::session_grace`) with its references, locks and
//! holds, and a client that reconnects in time takes it back (`Request::Hello` with
//! `resume`). Parked past the grace period, it is released as a closed connection is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use manager_core::wire::SessionId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use super::caller::ConnId;

/// Every session of a server that can be resumed.
#[derive(Default)]
pub(crate) struct Sessions {
    state: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionId, Entry>,
    /// Distinguishes the connections a session has had.
    next_generation: u64,
}

struct Entry {
    /// The connection id the session's references and locks are held under.
    conn: ConnId,
    /// Which of the session's connections has it now.
    generation: u64,
    /// Cancels the connection that has the session, while it is connected; `None` while
    /// parked.
    live: Option<CancellationToken>,
}

/// What a connection that resumed a session gets.
pub(crate) struct Resumed {
    /// The session's connection id, to act as from now on.
    pub(crate) conn: ConnId,
    pub(crate) generation: u64,
}

/// What a closing connection must do with its session.
pub(crate) enum OnClose {
    /// Another connection took the session over: leave it alone.
    TakenOver,
    /// Parked: released later unless resumed.
    Parked,
    /// Release it now.
    Release,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open a session for connection `conn`; returns its generation.
    pub(crate) fn open(&self, id: SessionId, conn: ConnId, live: CancellationToken) -> u64 {
        let mut inner = self.lock();
        inner.next_generation += 1;
        let generation = inner.next_generation;
        inner.sessions.insert(
            id,
            Entry {
                conn,
                generation,
                live: Some(live),
            },
        );
        generation
    }

    /// Take session `id` over for a new connection (`live` cancels it). A session still
    /// connected (the client saw its connection drop before the server did) is taken from
    /// that connection, which is closed. `None` if there is no such session.
    pub(crate) fn resume(&self, id: &SessionId, live: CancellationToken) -> Option<Resumed> {
        let mut inner = self.lock();
        inner.next_generation += 1;
        let generation = inner.next_generation;
        let entry = inner.sessions.get_mut(id)?;
        if let Some(old) = entry.live.replace(live) {
            old.cancel();
        }
        entry.generation = generation;
        Some(Resumed {
            conn: entry.conn,
            generation,
        })
    }

    /// The connection of generation `generation` of session `id` closed: park the session
    /// for `grace` (on `tracker`, unless `cancel` is cancelled first: at shutdown every
    /// object goes anyway), then `release` its connection unless it was resumed; or say
    /// what else to do.
    pub(crate) fn close(
        self: &Arc<Self>,
        id: &SessionId,
        generation: u64,
        grace: Option<Duration>,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
        release: impl FnOnce(ConnId) + Send + 'static,
    ) -> OnClose {
        let mut inner = self.lock();
        let Some(entry) = inner.sessions.get_mut(id) else {
            return OnClose::Release;
        };
        if entry.generation != generation {
            return OnClose::TakenOver;
        }
        let Some(grace) = grace.filter(|_| !cancel.is_cancelled()) else {
            inner.sessions.remove(id);
            return OnClose::Release;
        };
        entry.live = None;
        let (id, conn) = (*id, entry.conn);
        drop(inner);
        let sessions: Weak<Sessions> = Arc::downgrade(self);
        let cancel = cancel.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(grace) => {}
            }
            let Some(sessions) = sessions.upgrade() else {
                return;
            };
            if sessions.expire(&id, generation) {
                info!(
                    connection = conn,
                    "a session's grace period passed: releasing it"
                );
                release(conn);
            }
        });
        OnClose::Parked
    }

    /// The client of generation `generation` of session `id` is done with it: forget it
    /// (its connection releases everything as it closes). False if another connection
    /// has the session now.
    pub(crate) fn end(&self, id: &SessionId, generation: u64) -> bool {
        let mut inner = self.lock();
        if inner
            .sessions
            .get(id)
            .is_some_and(|e| e.generation == generation)
        {
            inner.sessions.remove(id);
            return true;
        }
        false
    }

    /// How many sessions are parked now.
    pub(crate) fn parked(&self) -> u64 {
        self.lock()
            .sessions
            .values()
            .filter(|e| e.live.is_none())
            .count() as u64
    }

    /// Remove session `id` if it is still parked as generation `generation` left it.
    fn expire(&self, id: &SessionId, generation: u64) -> bool {
        let mut inner = self.lock();
        let parked = inner
            .sessions
            .get(id)
            .is_some_and(|e| e.generation == generation && e.live.is_none());
        if parked {
            inner.sessions.remove(id);
        }
        parked
    }
}
