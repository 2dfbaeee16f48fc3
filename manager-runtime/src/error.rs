use std::io;
use std::sync::Arc;

pub use manager_core::handshake::HandshakeError;
use manager_core::{AddressParseError, CodecError, RemoteError};

/// Everything a manager operation can fail with.
///
/// [`Error::Remote`] is a failure of one request that the server reported (the connection
/// is fine); [`Error::Transport`] and [`Error::Auth`] mean the connection itself failed or
/// never came up; [`Error::Codec`] is a local encode/decode failure. `Error` is `Clone` so
/// that every call pending on a failed connection receives the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused or failed this one request.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The connection failed, closed or was never established.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The handshake failed: the keys differ, or the peer is not a manager.
    #[error("authentication failed: {0}")]
    Auth(#[source] HandshakeError),
    /// A value could not be encoded or decoded on this side.
    #[error("codec error: {0}")]
    Codec(#[from] CodecError),
    /// An address string was not valid.
    #[error(transparent)]
    Address(#[from] AddressParseError),
    /// The call's deadline passed before its result came
    /// ([`Call::timeout`](crate::Call::timeout), [`Proxy::with_timeout`](crate::Proxy::with_timeout),
    /// [`ClientBuilder::call_timeout`](crate::ClientBuilder::call_timeout)). The call was
    /// withdrawn with nothing lost: a lock granted or an item taken at the deadline is
    /// given back, as for a cancelled call. The connection is fine.
    #[error("the call's deadline of {timeout:?} passed")]
    DeadlineExceeded {
        /// The deadline the call had.
        timeout: std::time::Duration,
    },
    /// The proxy is for an object of an earlier instance of its manager: the server at
    /// that address restarted since, and its objects are gone. The proxy never reaches an
    /// object of the new instance (even one with the same id).
    #[error("the manager restarted: `{typeid}` object {id} of its earlier instance is gone")]
    ServerRestarted {
        /// The proxy's typeid.
        typeid: String,
        /// The object's id in the earlier instance.
        id: manager_core::ObjectId,
    },
    /// The proxy's session ended: its connection dropped and was not resumed in time (the
    /// server's `session_grace` passed, or it keeps no sessions), so the server released
    /// its references, as for a client that disconnected.
    #[error("the session holding `{typeid}` object {id} ended: its connection dropped")]
    SessionLost {
        /// The proxy's typeid.
        typeid: String,
        /// The object's id.
        id: manager_core::ObjectId,
    },
}

impl Error {
    /// A server's `DeadlineExceeded` is the client's: one error for a deadline wherever it
    /// passed first.
    pub(crate) fn deadline_mapped(self) -> Self {
        match self {
            Error::Remote(RemoteError::DeadlineExceeded { timeout_ms }) => {
                Error::DeadlineExceeded {
                    timeout: std::time::Duration::from_millis(timeout_ms),
                }
            }
            other => other,
        }
    }

    /// Whether this is [`Error::DeadlineExceeded`].
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Error::DeadlineExceeded { .. })
    }

    /// The server's error, if this is one.
    pub fn as_remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the server refused this request for want of capacity
    /// ([`RemoteError::Busy`]): it may be sent again later as it is.
    pub fn is_retryable(&self) -> bool {
        self.as_remote().is_some_and(RemoteError::is_retryable)
    }

    /// Whether the connection is gone (as opposed to one request failing).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Transport(_) | Error::Auth(_) | Error::SessionLost { .. }
        )
    }
}

/// Why a connection failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// An I/O error on the socket (connect, bind, read or write).
    #[error("i/o error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// Connecting to the server failed (refused, unreachable, no such socket file).
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address dialled.
        address: String,
        /// Why the connection failed.
        #[source]
        source: Arc<io::Error>,
    },
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The connection was closed on this side (the client or manager was shut down).
    #[error("connection closed locally")]
    ClosedLocally,
    /// A frame announced more bytes than the configured maximum.
    #[error("frame exceeds the maximum frame length")]
    FrameTooLarge,
    /// The peer sent bytes that are not a valid message.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The handshake did not finish within the configured time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer sent part of a frame, then nothing for longer than allowed.
    #[error("the peer stalled in the middle of a frame")]
    Stalled,
    /// The peer sent nothing for longer than its idle timeout allows.
    #[error("the connection was idle for too long")]
    Idle,
    /// TLS failed: set-up, a peer without TLS (or with it when this side has none), or a
    /// certificate refused by either side.
    #[error(transparent)]
    Tls(TlsError),
}

/// Why TLS failed ([`TransportError::Tls`]).
///
/// ```
/// # use manager_runtime::{Error, TlsError, TransportError};
/// # fn demo(e: Error) {
/// match e {
///     Error::Transport(TransportError::Tls(TlsError::RequiredByServer)) => {
///         eprintln!("this server requires TLS: connect with ClientBuilder::tls")
///     }
///     Error::Transport(TransportError::Tls(TlsError::BadPeerCertificate(why))) => {
///         eprintln!("the server's certificate is not trusted here: {why}")
///     }
///     other => eprintln!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The TLS set-up is unusable: an unreadable file, invalid PEM, a key that does not fit
    /// its certificate, no CA to trust, an invalid server name.
    #[error("TLS set-up: {0}")]
    Config(String),
    /// The server requires TLS and this client connected without it.
    #[error("the server requires TLS; this client connected without it")]
    RequiredByServer,
    /// This client connected with TLS and the server does not offer it.
    #[error("this client requires TLS; the server does not offer it")]
    NotOfferedByServer,
    /// This side refused the peer's certificate: signed by a CA not trusted here, issued
    /// for another name, expired, or missing where one is required.
    #[error("the peer's certificate was refused: {0}")]
    BadPeerCertificate(String),
    /// The peer refused the TLS handshake (an alert), for example because it requires a
    /// client certificate and got none, or does not trust the one it got.
    #[error("the peer refused the TLS connection: {0}")]
    RefusedByPeer(String),
    /// Any other TLS failure: a corrupt record, a protocol violation.
    #[error("TLS error: {0}")]
    Protocol(String),
}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> Self {
        // LengthDelimitedCodec reports an oversized frame as InvalidData with this source.
        if e.get_ref()
            .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>())
        {
            return TransportError::FrameTooLarge;
        }
        // The TLS halves report a failure as InvalidData with the `TlsError` inside.
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) {
            return TransportError::Tls(tls.clone());
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => TransportError::Closed,
            _ => TransportError::Io(Arc::new(e)),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Transport(e.into())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a call to a method with typed errors (`#[shared(errors = typed)]`) fails with:
/// the method's own error, as the method returned it, or a failure of the call itself.
///
/// ```
/// # use manager_runtime::{CallError, Error, RemoteError};
/// # #[derive(Debug, PartialEq)] enum BoardError { EmptyName }
/// # fn demo(result: Result<u64, CallError<BoardError>>) {
/// match result {
///     Ok(id) => println!("job {id}"),
///     Err(CallError::Method(BoardError::EmptyName)) => println!("give the job a name"),
///     Err(CallError::Rpc(e)) => println!("the call failed: {e}"),
/// }
/// # }
/// ```
///
/// `?` converts an [`Error`] into `CallError::Rpc`, so one function can mix typed calls
/// and other manager operations.
#[derive(Debug, Clone)]
pub enum CallError<E> {
    /// The method ran and returned `Err(e)`.
    Method(E),
    /// The call itself failed: the connection, the server refusing it, a panic in the
    /// method, or an error that did not decode as `E`.
    Rpc(Error),
}

impl<E> CallError<E> {
    /// The method's own error, if that is what this is.
    pub fn method(self) -> Option<E> {
        match self {
            CallError::Method(e) => Some(e),
            CallError::Rpc(_) => None,
        }
    }

    /// The call's failure, if that is what this is.
    pub fn rpc(self) -> Option<Error> {
        match self {
            CallError::Method(_) => None,
            CallError::Rpc(e) => Some(e),
        }
    }
}

impl<E> From<Error> for CallError<E> {
    fn from(e: Error) -> Self {
        CallError::Rpc(e)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Method(e) => e.fmt(f),
            CallError::Rpc(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Method(e) => e.source(),
            CallError::Rpc(e) => e.source(),
        }
    }
}
