//! How a client connects: the options a `ClientBuilder` gathers, which every connection
//! of a session (and every reconnect) uses.

use std::time::Duration;

/// Options for a client connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    pub(crate) max_frame: usize,
    pub(crate) handshake_timeout: Duration,
    /// The most calls in flight at once; more wait for room.
    pub(crate) max_calls_in_flight: usize,
    /// The most bytes queued for the socket before calls wait for room (and proxies'
    /// reference changes are coalesced).
    pub(crate) max_queued_bytes: usize,
    /// TLS for TCP addresses, if any.
    pub(crate) tls: Option<crate::ClientTls>,
    /// The deadline of calls that set none of their own.
    pub(crate) call_timeout: Option<Duration>,
    /// How to reconnect after a drop, to resume the session; `None`: never.
    pub(crate) reconnect: Option<Backoff>,
    /// Whether calls made while reconnecting wait for it.
    pub(crate) reconnect_wait: bool,
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
