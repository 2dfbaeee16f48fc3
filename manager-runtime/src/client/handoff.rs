//! Proxies that travel: the serialised form of a proxy, and where a deserialised proxy
//! finds its connection.
//!
//! Serialising a proxy puts one new reference *in transit* on its manager (a `Hold` with a
//! random id) and writes the token and that id. Deserialising *adopts* the hold: over the
//! connection the bytes arrived on (a reply), inside the server itself (an argument of a
//! method: the proxy is then held by the server's objects), or over any connection this
//! process has open to that manager. The sender's own reference is untouched, so the
//! object cannot be freed while the proxy is in flight; a hold nobody adopts is released
//! when it expires on the server.

use std::sync::{Arc, Mutex, Weak};

use manager_core::wire::HoldId;
use manager_core::{Address, Token};
use serde::{Deserialize, Serialize};

use super::local::LocalLink;
use super::Connection;

/// What a proxy looks like on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProxyWire {
    pub(crate) token: Token,
    pub(crate) hold: HoldId,
}

/// Where proxies being deserialised on this thread come from.
#[derive(Clone, Default)]
pub(crate) enum AdoptContext {
    /// No particular source: look the manager up among this process's connections.
    #[default]
    Process,
    /// Arguments of a call inside a server: proxies to this server become local references
    /// held by its objects.
    Server(LocalLink),
    /// A reply on this connection (weak: each connection keeps its own context).
    Client(Weak<Connection>),
}

scoped_tls::scoped_thread_local! {
    /// The context of the decode running on this thread, if any: borrowed for its
    /// duration (setting it costs no clone).
    static CONTEXT: AdoptContext
}

/// Run `f` (a decode) with `context` as the source of proxies it deserialises.
pub(crate) fn with_context<R>(context: &AdoptContext, f: impl FnOnce() -> R) -> R {
    CONTEXT.set(context, f)
}

/// `future`, with `context` set around each of its polls: proxies it deserialises at any
/// point come from `context`.
pub(crate) async fn in_context<F: std::future::Future>(
    context: AdoptContext,
    future: F,
) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| with_context(&context, || future.as_mut().poll(cx))).await
}

/// The context proxies are being deserialised in.
pub(crate) fn current_context() -> AdoptContext {
    if CONTEXT.is_set() {
        CONTEXT.with(AdoptContext::clone)
    } else {
        AdoptContext::Process
    }
}

/// A fresh, unguessable hold id.
pub(crate) fn new_hold() -> HoldId {
    let mut hold = [0u8; 16];
    getrandom::getrandom(&mut hold).expect("the operating system random generator failed");
    hold
}

/// Every open client connection of this process, by the addresses its manager is known
/// under (the one dialled and the one the server reports in its tokens).
static CONNECTIONS: Mutex<Vec<(Address, Weak<Connection>)>> = Mutex::new(Vec::new());

/// Remember `conn` as a way to reach the manager at `address`.
pub(crate) fn register(address: &Address, conn: &Arc<Connection>) {
    let mut all = CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(_, c)| c.strong_count() > 0);
    if !all
        .iter()
        .any(|(a, c)| a == address && c.as_ptr() == Arc::as_ptr(conn))
    {
        all.push((address.clone(), Arc::downgrade(conn)));
    }
}

/// A live connection of this process to the manager at `address`.
pub(crate) fn find(address: &Address) -> Option<Arc<Connection>> {
    let all = CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .filter(|(a, _)| a == address)
        .find_map(|(_, c)| c.upgrade().filter(|c| c.is_open()))
}
