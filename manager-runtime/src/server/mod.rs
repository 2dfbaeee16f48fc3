//! The server: registry of typeids, object table, listener and lifecycle.

mod admission;
mod caller;
mod connection;
pub(crate) mod effects;
mod local;
mod memory;
pub(crate) mod objects;
mod panics;
mod python;
mod registry;
mod sessions;
mod state;
mod stats;
mod throttle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use manager_core::Address;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use caller::{Caller, CallerId, DisconnectHook};
pub use registry::Registration;
use state::{Limits, ServerState};

use crate::transport::{Listener, MAX_TIMEOUT};
use crate::{AuthKey, IntoAddress, Result};

/// Configures and binds a [`Server`] (Python's `BaseManager(address, authkey)` plus its
/// `register()` calls).
///
/// A panic in a shared object's code (a method, a constructor, a `Display`) is caught: the
/// caller gets [`RemoteError::Panicked`](crate::RemoteError::Panicked) and the server logs it once through `tracing`
/// (`warn`). For that, the first server of a process installs a panic hook that handles
/// only panics raised in that code and passes every other one to the hook installed
/// before it.
///
/// ```no_run
/// # async fn demo() -> Result<(), manager_runtime::Error> {
/// use manager_runtime::ServerBuilder;
/// let server = ServerBuilder::new()
///     .address("127.0.0.1:50000")
///     .authkey("abc")
///     // .register(Registration::constructor("get_pair", |(x, y)| Pair::new(x, y)))
///     .bind()
///     .await?;
/// println!("serving on {}", server.address());
/// server.serve_forever().await
/// # }
/// ```
#[derive(Debug)]
pub struct ServerBuilder {
    address: std::result::Result<Address, manager_core::AddressParseError>,
    authkey: Option<AuthKey>,
    registrations: Vec<Registration>,
    limits: Limits,
    shutdown_timeout: Duration,
    tls: Option<crate::ServerTls>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// A builder for a server on `127.0.0.1:0` (a free port) with a random key.
    pub fn new() -> Self {
        Self {
            address: Ok(Address::Tcp("127.0.0.1:0".into())),
            authkey: None,
            registrations: Vec::new(),
            limits: Limits::default(),
            shutdown_timeout: Duration::from_secs(1),
            tls: None,
        }
    }

    /// Where to listen: `host:port` (port 0 picks a free one), `unix:PATH` or a path.
    /// An invalid address is reported by [`bind`](Self::bind).
    pub fn address(mut self, address: impl IntoAddress) -> Self {
        self.address = address.into_address();
        self
    }

    /// The key clients must prove they have. Without one, a random 32-byte key is made;
    /// read it back with [`Server::authkey`].
    pub fn authkey(mut self, key: impl Into<AuthKey>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// Add a typeid. A later registration of the same typeid replaces an earlier one, as
    /// in Python.
    pub fn register(mut self, registration: Registration) -> Self {
        self.registrations.push(registration);
        self
    }

    /// The largest frame accepted from a client (default 16 MiB). A larger one closes that
    /// client's connection.
    pub fn max_frame_length(mut self, bytes: usize) -> Self {
        self.limits.max_frame = bytes;
        self
    }

    /// How long a new connection may take to authenticate (default 5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.handshake_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// How many connections may be in the handshake at once (default 256), apart from the
    /// logged-in ones. When they are all taken, a new connection takes the slot of the
    /// oldest handshake once that one has lasted a fiftieth of the handshake timeout (100 ms
    /// by default; a client authenticates in a round trip or two): a flood of connections
    /// that never authenticate cannot keep a legitimate client out. A client whose
    /// handshake is cut short this way connects again by itself.
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.limits.max_handshakes = n.max(1);
        self
    }

    /// How many connections are served at once (default 1024); more wait to be accepted.
    /// The TCP listen backlog is this number too (capped by the system's
    /// `net.core.somaxconn`), so that as many clients connecting at once wait in it rather
    /// than have their connections dropped.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How many calls of one connection may be waiting at once (default 1024): calls of
    /// `async` methods that did not finish at once, and calls waiting for their object's
    /// lock. A call that would wait beyond that is stopped where it waits, as if
    /// cancelled, and answered [`RemoteError::Busy`](crate::RemoteError::Busy) (retryable): the connection is still
    /// read and served, so the calls that would finish the waiting ones (a `put` for a
    /// blocked `get`, a cancel, a decref) always get through. Memory per connection stays
    /// bounded; raise the limit for clients that keep more calls waiting on purpose.
    pub fn max_calls_in_flight(mut self, n: usize) -> Self {
        self.limits.max_calls_in_flight = n.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How long a logged-in client may send nothing in the middle of a frame before its
    /// connection is closed (default 30 s; `None`: never). A frame that keeps arriving, however
    /// slowly, is not cut off: the time counts from the last bytes received.
    pub fn stalled_frame_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.stalled_frame_timeout = timeout.map(|t| t.min(MAX_TIMEOUT));
        self
    }

    /// How long a logged-in client may send nothing at all between requests before its
    /// connection is closed (default `None`: never, as a client that keeps proxies and makes
    /// no call for hours is normal for a manager). Closing the connection releases
    /// everything it held.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.idle_timeout = timeout.map(|t| t.min(MAX_TIMEOUT));
        self
    }

    /// Keep a client's session for `grace` after its connection drops (default `None`: a
    /// dropped connection releases everything at once, as in Python). Within the grace
    /// period a client that reconnects (`ClientBuilder::reconnect`, on by default) takes
    /// its session back: every proxy works again, its locks are still held, its references
    /// and holds are intact. Calls it had in flight when the connection dropped failed on
    /// the client and were withdrawn here (a blocked `get` took nothing). Past the grace
    /// period the session is released exactly as a closed connection is: its locks are
    /// released, its objects freed. So a client that vanished keeps its locks for up to
    /// `grace`: choose it knowing that other clients wait that long for them.
    pub fn session_grace(mut self, grace: Option<Duration>) -> Self {
        self.limits.session_grace = grace.map(|g| g.min(MAX_TIMEOUT));
        self
    }

    /// How many proxy hand-offs one connection may have in flight (default 16384): proxies
    /// it serialised that nobody adopted yet, and adoptions it made whose proxy has not
    /// arrived yet. One more is ignored (with a warning); the proxy involved then carries no
    /// reference.
    pub fn max_pending_handoffs(mut self, n: usize) -> Self {
        self.limits.max_pending_handoffs = n.max(1);
        self
    }

    /// Whether stock CPython clients may connect (default off): `multiprocessing.managers`
    /// clients of CPython 3.11 and later, on the same address as Rust clients, for the
    /// typeids registered with a [`PythonFace`](crate::python::PythonFace) (see
    /// [`python`](crate::python)). On, the handshake also accepts CPython 3.11's HMAC-MD5
    /// (both ways), which that version requires.
    pub fn python_clients(mut self, on: bool) -> Self {
        self.limits.python_clients = on;
        self
    }

    /// Whether a client may stop the server (default off): a Rust client's
    /// [`Client::request_shutdown`](crate::Client::request_shutdown) or a Python client's
    /// `shutdown` request then stops it as [`ShutdownHandle::shutdown`] would. Off, it is
    /// refused ([`RemoteError::ShutdownNotAllowed`](crate::RemoteError::ShutdownNotAllowed); a `#TRACEBACK` for Python clients)
    /// and the server is stopped by whoever runs it.
    pub fn client_shutdown(mut self, allowed: bool) -> Self {
        self.limits.client_shutdown = allowed;
        self
    }

    /// Whether to give free memory back to the system after a burst of connections
    /// (default on): when the open connections have fallen to half their peak, the
    /// allocator is asked, a second later, to return its free pages. It matters with
    /// glibc's allocator, which otherwise keeps a burst's memory for good (a server back
    /// to a megabyte of live data stayed at 40 MiB resident after 1,000 clients left);
    /// elsewhere it does nothing. The call runs on a blocking thread and costs a few
    /// milliseconds of CPU; turn it off if this process's allocator is tuned otherwise.
    pub fn release_memory_after_bursts(mut self, on: bool) -> Self {
        self.limits.release_memory = on;
        self
    }

    /// How long a proxy may be in transit (serialised and not yet deserialised by its
    /// receiver) before the reference it carries is released (default 60 s).
    pub fn hold_timeout(mut self, timeout: Duration) -> Self {
        self.limits.hold_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// How long a shutdown waits for running calls before abandoning them (default 1 s,
    /// Python's `shutdown_timeout`).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    pub(crate) fn tls_value(&self) -> Option<&crate::ServerTls> {
        self.tls.as_ref()
    }

    pub(crate) fn shutdown_timeout_value(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Require TLS on TCP connections, with the certificate (and for mutual TLS the client
    /// CA) in `tls`; the authkey handshake then runs inside TLS. Unix sockets stay
    /// plaintext.
    ///
    /// [`start`](Self::start) connects its manager's own client trusting exactly this
    /// certificate; it cannot when clients need certificates of their own (mutual TLS) or
    /// the set-up is [`ServerTls::from_rustls`](crate::ServerTls::from_rustls): then
    /// [`bind`](Self::bind), serve, and connect with
    /// [`ClientBuilder::tls`](crate::ClientBuilder::tls).
    ///
    /// A plaintext client fails at once with
    /// [`TlsError::RequiredByServer`](crate::TlsError::RequiredByServer): the server's first
    /// bytes on a connection announce TLS (see [`ServerTls`](crate::ServerTls)).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), manager_runtime::Error> {
    /// use manager_runtime::{ServerBuilder, ServerTls};
    /// let tls = ServerTls::from_pem_files("server.pem", "server.key")
    ///     .map_err(manager_runtime::TransportError::Tls)?;
    /// let server = ServerBuilder::new()
    ///     .address("0.0.0.0:50000")
    ///     .authkey("abc")
    ///     .tls(tls)
    ///     .bind()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, tls: crate::ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Bind the listening socket. The server does not accept until it is served.
    ///
    /// Cancel safe: the socket is bound in the same poll that returns the server, so a
    /// dropped `bind` leaves nothing bound.
    pub async fn bind(self) -> Result<Server> {
        let address = self.address?;
        let tls = self.tls.as_ref().map(crate::ServerTls::config);
        let (listener, bound) = Listener::bind(&address, self.limits.max_connections).await?;
        panics::install();
        let authkey = self.authkey.unwrap_or_else(AuthKey::random);
        let state = ServerState::new(bound, authkey, self.limits, self.registrations, tls);
        Ok(Server {
            state,
            listener,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// A bound manager server (Python's `Server` from `get_server()`).
pub struct Server {
    state: Arc<ServerState>,
    listener: Listener,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.state.address)
            .field("objects", &self.state.objects.len())
            .finish_non_exhaustive()
    }
}

/// Stops a running server from anywhere; cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Ask the server to stop: it stops accepting, closes connections and drops its
    /// objects. Returns at once; the serving future completes when the server is down.
    pub fn shutdown(&self) {
        self.0.cancel();
    }

    /// Whether shutdown was requested.
    pub fn is_shutdown(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Reads a running server's statistics from inside its process (what
/// [`Client::stats`](crate::Client::stats) asks over a connection); cheap to clone.
#[derive(Debug, Clone)]
pub struct StatsHandle(std::sync::Weak<ServerState>);

impl StatsHandle {
    /// The statistics now; `None` once the server is gone.
    pub fn stats(&self) -> Option<manager_core::stats::ServerStats> {
        let state = self.0.upgrade()?;
        Some(state.stats())
    }
}

impl Server {
    /// A handle that reads this server's statistics from inside the process (for a
    /// metrics endpoint, say).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::downgrade(&self.state))
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub fn address(&self) -> &Address {
        &self.state.address
    }

    /// The key clients must use.
    pub fn authkey(&self) -> &AuthKey {
        &self.state.authkey
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.state.cancel.clone())
    }

    /// Serve until a [`ShutdownHandle`] stops the server (Python's `serve_forever()`).
    ///
    /// Cancel safety: dropping this future stops accepting and closes every connection,
    /// like a shutdown that does not wait.
    pub async fn serve_forever(self) -> Result<()> {
        let cancel = self.state.cancel.clone();
        self.serve_until(async move { cancel.cancelled().await })
            .await
    }

    /// Serve until `signal` completes (for example [`crate::shutdown_signal`]), then shut
    /// down gracefully.
    ///
    /// Cancel safety: dropping this future stops accepting and closes every connection,
    /// like a shutdown that does not wait for running calls.
    pub async fn serve_until(self, signal: impl Future<Output = ()>) -> Result<()> {
        let state = self.state.clone();
        let _stop_on_drop = state.cancel.clone().drop_guard();
        info!(address = %state.address, "manager serving");
        let limit = Arc::new(Semaphore::new(state.limits.max_connections));
        state.tracker.spawn(expire_handoffs(Arc::downgrade(&state)));
        tokio::pin!(signal);
        let mut backoff = Duration::from_millis(1);
        loop {
            let permit = match limit.clone().try_acquire_owned() {
                Ok(permit) => Ok(permit),
                Err(_) => {
                    // Said once each time the limit is reached, not per connection.
                    warn!(
                        limit = state.limits.max_connections,
                        "connection limit reached: new connections wait to be accepted"
                    );
                    tokio::select! {
                        _ = &mut signal => break,
                        _ = state.cancel.cancelled() => break,
                        permit = limit.clone().acquire_owned() => permit,
                    }
                }
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                _ = &mut signal => break,
                _ = state.cancel.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(1);
                    let (slot, evicted) = tokio::select! {
                        _ = &mut signal => break,
                        _ = state.cancel.cancelled() => break,
                        admitted = state.handshakes.admit() => admitted,
                    };
                    if evicted {
                        if let Some(suppressed) = state.warnings.handshake.check() {
                            warn!(
                                limit = state.limits.max_handshakes,
                                suppressed,
                                "too many connections in the handshake: the oldest was closed"
                            );
                        }
                    }
                    let conn_state = state.clone();
                    state.reclaim.opened();
                    state.tracker.spawn(async move {
                        connection::run(conn_state.clone(), stream, peer, slot).await;
                        drop(permit);
                        if conn_state.reclaim.closed() {
                            let cancel = conn_state.cancel.clone();
                            conn_state
                                .tracker
                                .spawn(conn_state.reclaim.clone().trim_later(cancel));
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        info!("manager shutting down");
        state.cancel.cancel();
        state.tracker.close();
        if tokio::time::timeout(self.shutdown_timeout, state.tracker.wait())
            .await
            .is_err()
        {
            warn!("calls still running after the shutdown timeout were abandoned");
        }
        state.objects.clear();
        drop(self.listener);
        Ok(())
    }
}

/// A random, non-zero server instance id.
/// Release references in transit that were never adopted, a few times per hold timeout.
async fn expire_handoffs(state: std::sync::Weak<ServerState>) {
    let period = {
        let Some(state) = state.upgrade() else { return };
        (state.limits.hold_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cancel = match state.upgrade() {
            Some(state) => state.cancel.clone(),
            None => return,
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(state) = state.upgrade() else { return };
        let (expired, released) = state.objects.expire(std::time::Instant::now());
        if expired.holds > 0 || expired.adoptions > 0 {
            // A proxy sent and not received in time (its receiver, if it comes, gets a
            // proxy without a reference), or received and never sent.
            warn!(
                holds = expired.holds,
                adoptions = expired.adoptions,
                freed = released.len(),
                "proxy hand-offs expired unmatched (see hold_timeout)"
            );
        }
        drop(state);
        drop(released);
    }
}
