//! Clients: a connection to a manager, typed creation, and proxies.

mod call;
mod connection;
mod core;
mod handle;
pub(crate) mod handoff;
mod link;
pub(crate) mod live;
pub(crate) mod local;
mod options;
mod ordered;
mod proxy;
mod reply;
pub(crate) mod session;

use std::sync::Arc;
use std::time::Duration;

use manager_core::describe::TypeDescription;
use manager_core::wire::{ObjectInfo, Request};
use manager_core::{Address, Shared};
use serde::Serialize;

pub use call::{Call, CallFailure, Pipeline};
pub(crate) use connection::Connection;

pub use link::{ConnectionState, LostReason};
pub use options::Backoff;
use options::ConnectOptions;
pub use proxy::{HasProxy, Proxy, ProxyHandle, ProxyOf};
use reply::OwnedReply;

use crate::transport::DEFAULT_MAX_FRAME;

/// The default bound of bytes queued for one connection's socket.
const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
use crate::{AuthKey, IntoAddress, Result};

/// A connection to a manager (Python's `BaseManager.connect()`); cheap to clone, and all
/// clones and all proxies made from it share one multiplexed connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), manager_runtime::Error> {
/// use manager_runtime::Client;
/// let client = Client::connect("127.0.0.1:50000", "abc").await?;
/// println!("{} objects", client.number_of_objects().await?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    conn: Arc<Connection>,
}

/// Options for [`Client`] connections.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    options: ConnectOptions,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            options: ConnectOptions {
                max_frame: DEFAULT_MAX_FRAME,
                handshake_timeout: Duration::from_secs(10),
                max_calls_in_flight: core::MAX_IN_FLIGHT,
                max_queued_bytes: MAX_QUEUED_BYTES,
                tls: None,
                call_timeout: None,
                reconnect: Some(Backoff::default()),
                reconnect_wait: true,
            },
        }
    }
}

impl ClientBuilder {
    /// The largest reply frame accepted (default 16 MiB).
    pub fn max_frame_length(mut self, bytes: usize) -> Self {
        self.options.max_frame = bytes;
        self
    }

    /// How long connecting and authenticating may take (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.options.handshake_timeout = timeout.min(crate::transport::MAX_TIMEOUT);
        self
    }

    /// The most calls one connection keeps in flight at once (default 65 536). One more
    /// waits, before sending anything, until a call in flight ends: its future stays
    /// pending (a `Pipeline` keeps the calls pushed beyond it, encoded, and sends them as
    /// room comes). At least 1.
    ///
    /// Keep it above the number of calls that may *wait on the server* at once on one
    /// connection (blocked `get`s, contended locks): a call waiting for room here cannot be
    /// the one that would release them (the server bounds those with its own
    /// `ServerBuilder::max_calls_in_flight`, 1024 by default).
    pub fn max_calls_in_flight(mut self, calls: usize) -> Self {
        self.options.max_calls_in_flight = calls.max(1);
        self
    }

    /// The most bytes one connection queues for its socket (default 16 MiB) while the
    /// server does not read them. Beyond it, calls wait as for
    /// [`max_calls_in_flight`](Self::max_calls_in_flight), and the reference changes of
    /// proxies cloned and dropped meanwhile (which cannot wait) are coalesced per object and
    /// sent, netted, once the queue drains or before the next request, whichever comes
    /// first: a proxy's drop never blocks and never grows the queue without bound. One
    /// request may exceed it (a single large argument). At least 1.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.options.max_queued_bytes = bytes.max(1);
        self
    }

    /// A deadline for every call on this connection that sets none of its own (none by
    /// default): see [`Call::timeout`] for what happens when it passes, and
    /// [`Proxy::with_timeout`] for a proxy's own default.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.options.call_timeout = Some(timeout.min(crate::transport::MAX_TIMEOUT));
        self
    }

    /// How to reconnect when the connection drops (default: pauses from 20 ms, doubling up
    /// to 1 s); `None`: never. A client reconnects only to resume its session, so only to a
    /// server that keeps sessions (`ServerBuilder::session_grace`), and only within its
    /// grace period: then every proxy works again, with its locks still held. Calls in
    /// flight when the connection dropped fail with the transport error (the server
    /// withdrew them: nothing they would have taken was taken). If the session cannot be
    /// resumed (its grace period passed, or the server restarted), the client and its
    /// proxies are lost: their calls fail with [`Error::SessionLost`](crate::Error::SessionLost)
    /// or [`Error::ServerRestarted`](crate::Error::ServerRestarted). Watch it with
    /// [`Client::connection_state`].
    pub fn reconnect(mut self, backoff: Option<Backoff>) -> Self {
        self.options.reconnect = backoff;
        self
    }

    /// Whether calls made while the client reconnects wait for the outcome (default
    /// `true`; each call still within its deadline, if it has one) or fail at once with
    /// the transport error. This holds for calls pushed on a [`Pipeline`], and for the
    /// [`Client`]'s own requests (`create`, ...), too.
    pub fn reconnect_wait(mut self, wait: bool) -> Self {
        self.options.reconnect_wait = wait;
        self
    }

    /// Connect over TLS (to TCP addresses; Unix sockets stay plaintext): the server's
    /// certificate is checked against the CA and the name `tls` gives, then the authkey
    /// handshake runs inside TLS. Without it, connections are plaintext.
    ///
    /// A server that requires TLS refuses a plaintext client at once, and the reverse, with
    /// [`TlsError::RequiredByServer`](crate::TlsError::RequiredByServer) and
    /// [`TlsError::NotOfferedByServer`](crate::TlsError::NotOfferedByServer); a certificate
    /// refused on either side fails with
    /// [`TlsError::BadPeerCertificate`](crate::TlsError::BadPeerCertificate) here or
    /// [`TlsError::RefusedByPeer`](crate::TlsError::RefusedByPeer) (all inside
    /// [`TransportError::Tls`](crate::TransportError::Tls)).
    pub fn tls(mut self, tls: crate::ClientTls) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Connect and authenticate with `authkey`.
    ///
    /// Fails with [`Error::Auth`](crate::Error::Auth) when the server has another key.
    ///
    /// Cancel safe: dropping it closes the connection being opened; nothing is left
    /// behind.
    pub async fn connect(
        &self,
        address: impl IntoAddress,
        authkey: impl Into<AuthKey>,
    ) -> Result<Client> {
        let address = address.into_address()?;
        let conn = session::open(address, &authkey.into(), &self.options).await?;
        handoff::register(conn.address(), &conn);
        Ok(Client { conn })
    }
}

impl Client {
    /// Options for a connection.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connect to the manager at `address` with default options.
    ///
    /// Cancel safe: dropping it closes the connection being opened; nothing is left
    /// behind.
    pub async fn connect(address: impl IntoAddress, authkey: impl Into<AuthKey>) -> Result<Self> {
        ClientBuilder::default().connect(address, authkey).await
    }

    /// The manager's address.
    pub fn address(&self) -> &Address {
        self.conn.address()
    }

    /// The state of this client's connection, as it changes: connected, reconnecting after
    /// a drop (see [`ClientBuilder::reconnect`]), or lost.
    ///
    /// ```no_run
    /// # async fn demo(client: manager_runtime::Client) {
    /// use manager_runtime::ConnectionState;
    /// let mut state = client.connection_state();
    /// while state.changed().await.is_ok() {
    ///     match &*state.borrow() {
    ///         ConnectionState::Reconnecting => eprintln!("connection dropped; reconnecting"),
    ///         ConnectionState::Connected => eprintln!("session resumed"),
    ///         ConnectionState::Lost(why) => eprintln!("connection lost: {why:?}"),
    ///         _ => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub fn connection_state(&self) -> tokio::sync::watch::Receiver<ConnectionState> {
        match self.conn.link() {
            Some(link) => link.state(),
            None => tokio::sync::watch::Sender::new(ConnectionState::Connected).subscribe(),
        }
    }

    /// Create an object of `typeid` with constructor arguments `args` (a tuple, `()` for
    /// none) and return a typed proxy (Python's `manager.get_pair(1, 3)`).
    ///
    /// The server checks that `typeid` holds `P::Target`; if not, the call fails with
    /// [`RemoteError::TypeMismatch`](crate::RemoteError::TypeMismatch). Before that, once
    /// per connection and typeid, this build's idea of the type is checked against the
    /// server's ([`check_schema`](Self::check_schema)): a mismatch fails with
    /// [`RemoteError::SchemaMismatch`](crate::RemoteError::SchemaMismatch) and creates
    /// nothing.
    ///
    /// Cancel safety: dropped before its first poll, it sends nothing. Once polled, the
    /// request goes out, and the object may be created even if the future is dropped: the
    /// reference its reply carries is then released as soon as that reply arrives (so an
    /// object nobody else holds is freed again), or when the connection closes.
    pub async fn create<P: Proxy, A: Serialize>(&self, typeid: &str, args: A) -> Result<P> {
        self.check_schema::<P::Target>(typeid).await?;
        let handle = self
            .create_inner(typeid, &args, Some(<P::Target as Shared>::NAME))
            .await?;
        Ok(P::from_handle(handle))
    }

    /// Check that this build's `T` matches the server's type behind `typeid`, method by
    /// method (name, receiver, parameter and return types): once per connection and
    /// typeid, then remembered. [`create`](Self::create) does it before creating; call it
    /// yourself before raw calls by name ([`ProxyHandle::call_method`]) on an object of
    /// `typeid` to get the same protection.
    ///
    /// Fails with [`RemoteError::SchemaMismatch`](crate::RemoteError::SchemaMismatch)
    /// naming the methods that differ: a client built from another version of the type
    /// would otherwise have its calls mis-decoded (postcard is not self-describing). A `T`
    /// with fewer methods than the server's is compatible (an older client); a method the
    /// server lacks, or declares otherwise, is not.
    ///
    /// Cancel safe: dropping it only discards the answer (the check is made again later).
    pub async fn check_schema<T: Shared>(&self, typeid: &str) -> Result<()> {
        self.conn
            .routed()
            .await
            .check_schema(typeid, T::METHODS)
            .await
    }

    /// Create an object of `typeid` and return an untyped handle to it, whatever its type.
    ///
    /// Cancel safety: as [`create`](Self::create): once polled, the object may be created
    /// even if the future is dropped, and is then released as its reply arrives.
    pub async fn create_handle<A: Serialize>(&self, typeid: &str, args: A) -> Result<ProxyHandle> {
        self.create_inner(typeid, &args, None).await
    }

    async fn create_inner<A: Serialize>(
        &self,
        typeid: &str,
        args: &A,
        expected: Option<&str>,
    ) -> Result<ProxyHandle> {
        let args = self.conn.codec().encode(args)?;
        let conn = self.conn.routed().await;
        let reply = conn
            .request(|id| Request::Create {
                id,
                typeid,
                args: &args,
                expected,
            })
            .await?;
        match reply {
            OwnedReply::Created(token) => Ok(ProxyHandle::adopt(conn.arc()?, token)),
            other => Err(other.unexpected()),
        }
    }

    /// Run `f`, in which proxies being deserialised (for example from bytes another
    /// process sent) adopt their reference over this client's connection.
    ///
    /// Outside of it, a deserialised proxy uses any connection this process has open to its
    /// manager (and fails with a clear error if there is none).
    ///
    /// ```no_run
    /// # async fn demo(client: manager_runtime::Client, bytes: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// let handle: manager_runtime::ProxyHandle = client.adopting(|| postcard::from_bytes(&bytes))?;
    /// # Ok(()) }
    /// ```
    pub fn adopting<R>(&self, f: impl FnOnce() -> R) -> R {
        let context = handoff::AdoptContext::Client(self.conn.current().weak());
        handoff::with_context(&context, f)
    }

    /// How many objects the manager holds (Python's `_number_of_objects()`).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn number_of_objects(&self) -> Result<u64> {
        match self
            .conn
            .routed()
            .await
            .request(|id| Request::NumberOfObjects { id })
            .await?
        {
            OwnedReply::Count(n) => Ok(n),
            other => Err(other.unexpected()),
        }
    }

    /// Ask the server to shut down (Python's `shutdown`): `Ok` once it has agreed, then
    /// it stops as its own shutdown would; [`RemoteError::ShutdownNotAllowed`](manager_core::RemoteError::ShutdownNotAllowed) unless the
    /// server allows clients to
    /// ([`ServerBuilder::client_shutdown`](crate::ServerBuilder::client_shutdown)).
    ///
    /// Cancel safety: once polled, the request may reach the server even if the future is
    /// dropped.
    pub async fn request_shutdown(&self) -> Result<()> {
        match self
            .conn
            .routed()
            .await
            .request(|id| Request::Shutdown { id })
            .await?
        {
            OwnedReply::Value(_) => Ok(()),
            other => Err(other.unexpected()),
        }
    }

    /// Typeid, id and refcount of every object the manager holds, sorted by id (Python's
    /// `_debug_info()`).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn debug_info(&self) -> Result<Vec<ObjectInfo>> {
        match self
            .conn
            .routed()
            .await
            .request(|id| Request::DebugInfo { id })
            .await?
        {
            OwnedReply::DebugInfo(rows) => Ok(rows),
            other => Err(other.unexpected()),
        }
    }

    /// The manager's statistics: connections open and since it started, sessions kept
    /// for their grace period, calls waiting now, live objects per typeid, and calls and
    /// failed calls per typeid and method (of Rust clients). A call whose reply this
    /// process has seen is counted.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn stats(&self) -> Result<manager_core::stats::ServerStats> {
        match self
            .conn
            .routed()
            .await
            .request(|id| Request::Stats { id })
            .await?
        {
            OwnedReply::Stats(stats) => Ok(stats),
            other => Err(other.unexpected()),
        }
    }

    /// Every typeid the manager serves, described: the registration (constructor or
    /// instance, whether clients may create it) and the shared type's exposed methods, in
    /// order, with their parameters and return types as written in the source and their
    /// doc comments, as `#[shared]` recorded them at compile time. Sorted by typeid.
    /// [`TypeDescription::to_markdown`] renders one as Markdown (as `managerd describe`
    /// prints it); descriptions are `Serialize` (`managerd describe --json`).
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn describe(&self) -> Result<Vec<TypeDescription>> {
        match self
            .conn
            .routed()
            .await
            .request(|id| Request::Describe { id })
            .await?
        {
            OwnedReply::Description(types) => Ok(types),
            other => Err(other.unexpected()),
        }
    }
}
