//! Sessions, and sessions that survive a dropped connection (`ServerBuilder::session_grace`
//! on the server): [`open`] opens a connection and its session; when a connection of a
//! session that can be resumed drops, the client reconnects by itself and resumes it, and
//! every proxy of the dropped connection goes on through the new one. What the
//! connections of a session share is in `link.rs`.
//!
//! While a session can be resumed, the client counts the references its proxies hold per
//! object (`SessionLink::count`): reference changes sent just before a connection
//! dropped may or may not have reached the server, so the resuming `Hello` carries the
//! count and the server makes the session's references exactly that. The count is taken
//! under the same lock every reference change takes, and the changes after it are
//! queued behind the `Hello` on the new connection: the server sees each change exactly
//! once.
//!
//! Calls: those in flight when the connection dropped fail with the transport error
//! (the server withdrew them: a blocked `get` took nothing, an effect not yet taken was
//! undone). Calls made while reconnecting wait for the outcome (`ClientBuilder::
//! reconnect_wait`, bounded by their deadline) or fail at once.

use std::sync::{Arc, Weak};
use std::time::Duration;

use manager_core::wire::Request;
use manager_core::Address;

use super::connection::Connection;
use super::handoff;
use super::link::{ConnectionState, LostReason, Reconnect, SessionLink};
use super::options::ConnectOptions;
use super::reply::OwnedReply;
use crate::{AuthKey, Error, Result, TransportError};

/// Where and how a session's connections are made: what a reconnect needs.
struct Dial {
    address: Address,
    key: AuthKey,
    options: ConnectOptions,
}

/// Connect to `address`, authenticate with `key` and open a session, within the handshake
/// timeout.
///
/// A server with all its handshake slots taken may close a handshake to make way for a
/// newer one (see `ServerBuilder::max_handshakes`), even one that ended on this side: the
/// connection closed before the session opened is tried again, after a short pause,
/// while time is left.
///
/// Cancel safe: dropping it closes the connection being opened.
pub(crate) async fn open(
    address: Address,
    key: &AuthKey,
    options: &ConnectOptions,
) -> Result<Arc<Connection>> {
    let dial = Arc::new(Dial {
        address,
        key: key.clone(),
        options: options.clone(),
    });
    let deadline = tokio::time::Instant::now() + options.handshake_timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match tokio::time::timeout_at(deadline, attempt(&dial)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(Error::Transport(TransportError::Closed)))
                if tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Transport(TransportError::HandshakeTimeout)),
        }
    }
}

/// One try of [`open`].
async fn attempt(dial: &Arc<Dial>) -> Result<Arc<Connection>> {
    let conn = Connection::connect(&dial.address, &dial.key, &dial.options).await?;
    // The session: the server instance (whose tokens only this connection's proxies may
    // use) and whether it can be resumed.
    match conn
        .request(|id| Request::Hello { id, resume: None })
        .await?
    {
        OwnedReply::Session(session) => {
            let link = SessionLink::new(
                &session,
                dial.options.reconnect.is_some(),
                dial.options.reconnect_wait,
                reconnector(dial.clone()),
            );
            conn.join_session(Arc::new(link), session);
        }
        other => return Err(other.unexpected()),
    }
    Ok(conn)
}

/// What a session's link calls when a connection of it drops: a reconnect, as a task.
fn reconnector(dial: Arc<Dial>) -> Reconnect<Connection> {
    Box::new(move |old, link, grace| {
        tokio::spawn(reconnect(old, link, grace, dial.clone()));
    })
}

/// Reconnect to resume the session of `old`, trying until the server's grace period
/// would have passed.
async fn reconnect(
    old: Weak<Connection>,
    link: Arc<SessionLink<Connection>>,
    grace: Duration,
    dial: Arc<Dial>,
) {
    let give_up = tokio::time::Instant::now() + grace;
    let backoff = dial.options.reconnect.unwrap_or_default();
    let mut pause = backoff.initial;
    loop {
        if old.strong_count() == 0 {
            // Nobody uses the session any more.
            return;
        }
        let attempt = tokio::time::timeout(
            dial.options.handshake_timeout,
            Connection::connect(&dial.address, &dial.key, &dial.options),
        )
        .await;
        if let Ok(Ok(new)) = attempt {
            let Some(old) = old.upgrade() else { return };
            // If the new connection failed too, try again.
            if let Ok(outcome) = resume(&old, &new, &link, &dial.address).await {
                tracing::info!(
                    target: "managers::client",
                    address = %dial.address,
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

/// Ask `new` to resume the session of `old` (on the manager at `address`): `Connected`
/// once it did (the proxies of `old` go on through `new`), `Lost` if the server no longer
/// has the session, an error if `new` failed before answering.
async fn resume(
    old: &Arc<Connection>,
    new: &Arc<Connection>,
    link: &Arc<SessionLink<Connection>>,
    address: &Address,
) -> Result<ConnectionState> {
    // Reference changes from the count on go to `new`, behind the `Hello`.
    let started = link.start_resume(new, |resume| {
        new.start(
            |id| Request::Hello {
                id,
                resume: Some(resume.clone()),
            },
            None,
        )
    })?;
    let reply = match started {
        Some(started) => started.reply().await,
        None => Err(Error::Transport(TransportError::Closed)),
    };
    link.resume_ended();
    let session = match reply {
        Ok(OwnedReply::Session(session)) => session,
        Ok(other) => return Err(other.unexpected()),
        Err(e) => return Err(e),
    };
    if session.resumed {
        new.join_session(link.clone(), session);
        old.hand_over(new.clone());
        handoff::register(address, new);
        return Ok(ConnectionState::Connected);
    }
    let why = match session.epoch == link.epoch() {
        true => LostReason::Expired,
        false => LostReason::ServerRestarted,
    };
    Ok(ConnectionState::Lost(why))
}
