//! The counted reference inside every proxy ([`Reference`]): where it lives (a client
//! connection, or inside the server), how its calls are routed there, how it is cloned
//! and released, and how it is put in transit and adopted (with `handoff.rs`).
//!
//! The public [`ProxyHandle`](super::ProxyHandle) that wraps it, with the typed calling
//! API and `Serialize`/`Deserialize`, is in `proxy.rs`; the call future, `call.rs`.

use std::fmt;
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use manager_core::ledger::Owner;
use manager_core::wire::Request;
use manager_core::{Address, Codec, MethodInfo, ObjectId, RemoteError, Token};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::connection::{Connection, Started};
use super::handoff::{self, with_context, AdoptContext, ProxyWire};
use super::local::{LocalAdopted, LocalLink, LocalReturn, LocalServer};
use super::reply::{OwnedReply, Payload};
use crate::{Error, Result, TransportError};

/// Where a handle's reference lives.
enum Link {
    /// Held by a client connection.
    Remote(Arc<Connection>),
    /// Held inside the server by one of its objects (a proxy stored in a shared object),
    /// as an owner of its own: it can release only the reference it took.
    Local(LocalLink, Owner),
    /// No reference: the object is out of reach for good (its server restarted, or its
    /// session ended); every use fails with this error.
    Gone(Error),
}

/// One counted reference to a shared object, and where it lives: what a public
/// [`Reference`](super::Reference) is made of, and what its calls ([`Call`](super::Call),
/// [`Pipeline`](super::Pipeline)) go through. `Clone` takes another reference (an incref)
/// and `Drop` releases it (a decref).
///
/// `pub` only so that the sealed `CallFailure` can take it: this module is private, so
/// nothing outside the crate can name it.
pub struct Reference {
    link: Link,
    token: Arc<Token>,
    /// The deadline of this handle's calls, if it has one of its own
    /// ([`with_timeout`](Self::with_timeout)); else its connection's default.
    timeout: Option<Duration>,
}

/// A call request: with its deadline, if it has one.
fn call_request<'b>(
    id: manager_core::wire::RequestId,
    object: ObjectId,
    method: &'b str,
    args: &'b [u8],
    timeout: Option<Duration>,
) -> Request<'b> {
    // Rounded up: a deadline never passes early on the server.
    let timeout_ms =
        timeout.map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX));
    #[cfg(feature = "otel")]
    if let Some(trace) = crate::otel::current_parent() {
        return Request::CallTraced {
            id,
            object,
            method,
            args,
            timeout_ms,
            trace,
        };
    }
    match timeout_ms {
        None => Request::Call {
            id,
            object,
            method,
            args,
        },
        Some(timeout_ms) => Request::CallWithin {
            id,
            object,
            method,
            args,
            timeout_ms,
        },
    }
}

impl Reference {
    /// Take ownership of the reference a create reply carried.
    pub(crate) fn adopt(conn: Arc<Connection>, token: Token) -> Self {
        if conn.learn_server_address(&token.address) {
            // Proxies for it that arrive by any route find this connection.
            handoff::register(&token.address, &conn);
        }
        conn.count_adopted(token.id);
        Self {
            link: Link::Remote(conn),
            token: Arc::new(token),
            timeout: None,
        }
    }

    /// A handle without a reference, for an object out of reach for good: its manager is
    /// another instance than the one that made `token` (it restarted).
    pub(crate) fn restarted(token: Token) -> Self {
        let error = Error::ServerRestarted {
            typeid: token.typeid.clone(),
            id: token.id,
        };
        Self {
            link: Link::Gone(error),
            token: Arc::new(token),
            timeout: None,
        }
    }

    /// A handle for a reference `owner`, a proxy inside the server, holds.
    pub(crate) fn local<S: LocalServer>(
        server: &Arc<S>,
        id: ObjectId,
        typeid: &str,
        owner: Owner,
    ) -> Self {
        let link: LocalLink = Arc::downgrade(server) as Weak<dyn LocalServer>;
        Self::held(link, Self::token_of(&**server, id, typeid), owner)
    }

    /// The token of `server`'s object `id` of `typeid`.
    fn token_of(server: &dyn LocalServer, id: ObjectId, typeid: &str) -> Token {
        Token {
            typeid: typeid.to_owned(),
            address: server.address().clone(),
            id,
            epoch: server.epoch(),
        }
    }

    /// A handle for the reference `owner` holds inside the server `link` leads to.
    fn held(link: LocalLink, token: Token, owner: Owner) -> Self {
        Self {
            link: Link::Local(link, owner),
            token: Arc::new(token),
            timeout: None,
        }
    }

    /// A handle for the reference `owner` holds to `server`'s object `id` of `typeid` (a
    /// new object a call inside the server returned).
    fn in_server(server: &Arc<dyn LocalServer>, id: ObjectId, typeid: &str, owner: Owner) -> Self {
        Self::held(
            Arc::downgrade(server),
            Self::token_of(&**server, id, typeid),
            owner,
        )
    }

    /// This build's idea of the object's type (`methods`), for the server to check once
    /// per connection and typeid: it refuses this connection's calls on the object with
    /// [`RemoteError::SchemaMismatch`] if its type differs, instead of mis-decoding them.
    pub(super) fn expect_schema(&self, methods: &'static [MethodInfo]) {
        if let Link::Remote(conn) = &self.link {
            conn.current().expect_schema(&self.token.typeid, methods);
        }
    }

    /// Call `method` (a `method_to_typeid` one) with `args` already encoded; the handle of
    /// the new object it returns, whose type the server checks against `methods` (this
    /// build's idea of it) as `create` does. Cancel safety: see
    /// [`Reference::call_for_proxy`].
    pub(super) async fn call_for_handle(
        &self,
        method: &str,
        args: Vec<u8>,
        methods: &'static [MethodInfo],
    ) -> Result<Reference> {
        match &self.link {
            Link::Remote(conn) => match self.request_call(conn, method, &args).await? {
                OwnedReply::Created(token) => {
                    let handle = Reference::adopt(conn.clone(), token);
                    // On a mismatch the new object is released as `handle` drops.
                    conn.check_schema(handle.typeid(), methods).await?;
                    Ok(handle)
                }
                other => Err(other.unexpected()),
            },
            Link::Local(server, _) => {
                let server = Self::server(server)?;
                match server.clone().call(self.token.id, method, args).await? {
                    LocalReturn::Object { id, typeid, owner } => {
                        Ok(Self::in_server(&server, id, &typeid, owner))
                    }
                    LocalReturn::Value(_) => Err(RemoteError::Protocol(format!(
                        "`{method}` returns a value, not a shared object"
                    ))
                    .into()),
                }
            }
            Link::Gone(e) => Err(e.clone()),
        }
    }

    /// The server holding this handle and the handle's owner there, for a handle held
    /// inside a server that is still running.
    pub(crate) fn local_server(&self) -> Option<(Arc<dyn LocalServer>, Owner)> {
        match &self.link {
            Link::Local(server, owner) => server.upgrade().map(|s| (s, *owner)),
            Link::Remote(_) | Link::Gone(_) => None,
        }
    }

    /// See [`ProxyHandle::with_timeout`](super::ProxyHandle::with_timeout).
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Self {
        let mut handle = self.clone();
        handle.timeout = Some(timeout.min(crate::transport::MAX_TIMEOUT));
        handle
    }

    /// See [`ProxyHandle::timeout`](super::ProxyHandle::timeout).
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout.or_else(|| match &self.link {
            Link::Remote(conn) => conn.call_timeout(),
            Link::Local(..) | Link::Gone(_) => None,
        })
    }

    /// See [`ProxyHandle::token`](super::ProxyHandle::token).
    pub(crate) fn token(&self) -> &Token {
        &self.token
    }

    /// See [`ProxyHandle::typeid`](super::ProxyHandle::typeid).
    pub(crate) fn typeid(&self) -> &str {
        &self.token.typeid
    }

    /// See [`ProxyHandle::id`](super::ProxyHandle::id).
    pub(crate) fn id(&self) -> ObjectId {
        self.token.id
    }

    /// See [`ProxyHandle::address`](super::ProxyHandle::address).
    pub(crate) fn address(&self) -> &Address {
        &self.token.address
    }

    /// See [`ProxyHandle::codec`](super::ProxyHandle::codec).
    pub(crate) fn codec(&self) -> Codec {
        match &self.link {
            Link::Remote(conn) => conn.codec(),
            Link::Local(..) | Link::Gone(_) => Codec::Postcard,
        }
    }

    fn context(&self) -> AdoptContext {
        match &self.link {
            Link::Remote(conn) => AdoptContext::Client(Arc::downgrade(conn)),
            Link::Local(state, _) => AdoptContext::Server(state.clone()),
            Link::Gone(_) => AdoptContext::Process,
        }
    }

    fn server(server: &LocalLink) -> Result<Arc<dyn LocalServer>> {
        server
            .upgrade()
            .ok_or(Error::Transport(TransportError::ClosedLocally))
    }

    /// The client connection this handle's calls go through (`None` inside the server).
    pub(super) fn remote(&self) -> Option<&Connection> {
        match &self.link {
            Link::Remote(conn) => Some(conn.current()),
            Link::Local(..) | Link::Gone(_) => None,
        }
    }

    /// Decode a call's result, adopting the proxies in it through this handle's link.
    pub(super) fn decode<R: DeserializeOwned>(&self, value: &[u8]) -> Result<R> {
        let codec = self.codec();
        match &self.link {
            Link::Remote(conn) => {
                let context = AdoptContext::Client(Arc::downgrade(conn));
                Ok(with_context(&context, || codec.decode(value))?)
            }
            Link::Local(..) | Link::Gone(_) => {
                Ok(with_context(&self.context(), || codec.decode(value))?)
            }
        }
    }

    /// Queue a call of `method` on `conn` with arguments already encoded (a pipeline's
    /// call that waited for room); `None` as for [`start_call`](Self::start_call).
    pub(super) fn start_encoded<'c>(
        &self,
        conn: &'c Connection,
        method: &str,
        args: &[u8],
        waker: Option<Waker>,
        timeout: Option<Duration>,
    ) -> Result<Option<Started<'c>>> {
        let object = self.token.id;
        conn.start(|id| call_request(id, object, method, args, timeout), waker)
    }

    /// The value of a remote call's reply.
    pub(super) fn value_of(&self, method: &str, reply: OwnedReply) -> Result<Payload> {
        match &self.link {
            Link::Remote(conn) => Self::value_reply(conn, method, reply),
            Link::Local(..) | Link::Gone(_) => Err(reply.unexpected()),
        }
    }

    /// Queue a call of `method` on `conn`, its arguments encoded straight into the request
    /// (through a buffer kept per thread, so a call allocates nothing for them).
    ///
    /// With `stash`, the call goes to the connection's stash (see
    /// [`Connection::start_stashed`]) instead of being queued now.
    ///
    /// `None` when the connection has no room for another call now: nothing was queued
    /// and `waker` waits for room (never for a stashed call: the pipeline checks first).
    pub(super) fn start_call<'c, A: Serialize>(
        &self,
        conn: &'c Connection,
        method: &str,
        args: &A,
        waker: Option<Waker>,
        stash: bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Started<'c>>> {
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        // Taken, not borrowed: a nested use (an argument whose serialisation makes a call)
        // just gets a fresh buffer.
        let mut buf = SCRATCH.take();
        buf.clear();
        let buf = self.codec().encode_into(args, buf)?;
        let object = self.token.id;
        let build = |id| call_request(id, object, method, &buf, timeout);
        let started = match stash {
            true => conn.start_stashed(build).map(Some),
            false => conn.start(build, waker),
        };
        if buf.capacity() <= 64 * 1024 {
            SCRATCH.set(buf);
        }
        started
    }

    /// The value of a call's reply.
    fn value_reply(conn: &Arc<Connection>, method: &str, reply: OwnedReply) -> Result<Payload> {
        match reply {
            OwnedReply::Value(v) => Ok(v),
            OwnedReply::Created(token) => {
                // Release the reference the reply carried.
                drop(Reference::adopt(conn.clone(), token));
                Err(Self::returns_object(method))
            }
            other => Err(other.unexpected()),
        }
    }

    /// See [`ProxyHandle::call_encoded`](super::ProxyHandle::call_encoded).
    pub(crate) async fn call_encoded(&self, method: &str, args: &[u8]) -> Result<Bytes> {
        match &self.link {
            Link::Remote(conn) => {
                let reply = self.request_call(conn, method, args).await?;
                Ok(Self::value_reply(conn, method, reply)?.into_bytes())
            }
            Link::Local(server, _) => {
                let server = Self::server(server)?;
                match server
                    .clone()
                    .call(self.token.id, method, args.to_vec())
                    .await?
                {
                    LocalReturn::Value(v) => Ok(Bytes::from(v)),
                    LocalReturn::Object { id, typeid, owner } => {
                        // The new object is released as its handle drops.
                        drop(Self::in_server(&server, id, &typeid, owner));
                        Err(Self::returns_object(method))
                    }
                }
            }
            Link::Gone(e) => Err(e.clone()),
        }
    }

    fn returns_object(method: &str) -> Error {
        Error::Remote(RemoteError::Protocol(format!(
            "`{method}` returns a shared object: call it with `call_for_proxy`"
        )))
    }

    async fn request_call(
        &self,
        conn: &Connection,
        method: &str,
        args: &[u8],
    ) -> Result<OwnedReply> {
        let object = self.token.id;
        self.routed_request(conn, |id| Request::Call {
            id,
            object,
            method,
            args,
        })
        .await
    }

    /// Send a request of this handle through `conn`'s live connection, waiting for a
    /// reconnect under way (unless the client fails fast); a request that fails there
    /// because the session is gone gets this proxy's own error.
    async fn routed_request<'b>(
        &self,
        conn: &Connection,
        build: impl Fn(manager_core::wire::RequestId) -> Request<'b>,
    ) -> Result<OwnedReply> {
        let target = conn.routed().await;
        match target.request(build).await {
            Ok(reply) => Ok(reply),
            Err(e) => Err(match target.retry_later(e, None, &self.token) {
                Err(e) => e,
                Ok(()) => Error::Transport(TransportError::Closed),
            }),
        }
    }

    /// See [`ProxyHandle::referent_to_string`](super::ProxyHandle::referent_to_string).
    pub(crate) async fn referent_to_string(&self) -> Result<String> {
        let object = self.token.id;
        match &self.link {
            Link::Remote(conn) => match self
                .routed_request(conn, |id| Request::Display { id, object })
                .await?
            {
                OwnedReply::Text(t) => Ok(t),
                other => Err(other.unexpected()),
            },
            Link::Local(server, _) => Self::server(server)?.display(object).await,
            Link::Gone(e) => Err(e.clone()),
        }
    }
}

impl Reference {
    /// Put a new reference to the object in transit, for whoever deserialises the wire
    /// form returned (the sender keeps its own).
    pub(super) fn put_in_transit(&self) -> std::result::Result<ProxyWire, String> {
        let hold = handoff::new_hold();
        let object = self.token.id;
        match &self.link {
            Link::Remote(conn) => {
                let conn = conn.current();
                if conn.has_dropped() {
                    // The reference could not be put in transit: the receiver would wait
                    // for it in vain.
                    return Err(
                        "the proxy's connection dropped (reconnecting, or lost): it \
                                cannot be sent now"
                            .into(),
                    );
                }
                conn.send_oneway(Request::Hold { object, hold })
            }
            Link::Local(server, owner) => {
                let server = server.upgrade().ok_or("the manager has shut down")?;
                server.put_in_transit(object, hold, *owner)?;
            }
            Link::Gone(e) => return Err(e.to_string()),
        }
        Ok(ProxyWire {
            token: (*self.token).clone(),
            hold,
        })
    }
}

impl Clone for Reference {
    fn clone(&self) -> Self {
        let object = self.token.id;
        let link = match &self.link {
            Link::Remote(conn) => {
                conn.send_ref(object, 1);
                Link::Remote(conn.clone())
            }
            Link::Local(server, owner) => {
                // The clone is an owner of its own, with a reference of its own (none if
                // the object is gone, like this one's).
                let owner = match server.upgrade() {
                    Some(s) => s.clone_reference(object, *owner),
                    None => *owner,
                };
                Link::Local(server.clone(), owner)
            }
            Link::Gone(e) => Link::Gone(e.clone()),
        };
        Self {
            link,
            timeout: self.timeout,
            token: self.token.clone(),
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let object = self.token.id;
        match &self.link {
            Link::Remote(conn) => conn.send_ref(object, -1),
            Link::Local(server, owner) => {
                if let Some(server) = server.upgrade() {
                    server.release(object, *owner);
                }
            }
            Link::Gone(_) => {}
        }
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("typeid", &self.token.typeid)
            .field("address", &format_args!("{}", self.token.address))
            .field("id", &format_args!("{}", self.token.id))
            .finish()
    }
}

/// Adopt the reference `wire` puts in transit: inside the server or over a connection,
/// as the context of the deserialisation says (see `handoff.rs`).
pub(super) fn adopt_wire(wire: ProxyWire) -> std::result::Result<Reference, String> {
    let ProxyWire { token, hold } = wire;
    let object = token.id;
    match handoff::current_context() {
        AdoptContext::Server(link) => {
            if let Some(server) = link.upgrade() {
                if let Some(adopted) = server.adopt(&token, hold) {
                    return adopted.map(|adopted| match adopted {
                        LocalAdopted::Held(owner) => Reference::held(link, token, owner),
                        LocalAdopted::Restarted => Reference::restarted(token),
                    });
                }
            }
        }
        // A connection that has not learned its server's own address yet (no proxy has
        // used it) is taken at its word: the caller said this proxy comes through it (a
        // server bound to 0.0.0.0 names itself differently from the address dialled).
        AdoptContext::Client(conn) => {
            if let Some(conn) = conn
                .upgrade()
                .filter(|c| c.serves(&token.address) || !c.knows_server_address())
            {
                if token.epoch != conn.epoch() {
                    return Ok(Reference::restarted(token));
                }
                conn.send_oneway(Request::Adopt { object, hold });
                return Ok(Reference::adopt(conn, token));
            }
        }
        _ => {}
    }
    let conn = handoff::find(&token.address).ok_or_else(|| {
        format!(
            "a proxy for the manager at {} arrived, but this process has no connection to it: \
             connect a Client to that address (with its authkey) first",
            token.address
        )
    })?;
    // A proxy from an earlier instance of the manager: its id means nothing here (or
    // another object).
    if token.epoch != conn.epoch() {
        return Ok(Reference::restarted(token));
    }
    conn.send_oneway(Request::Adopt { object, hold });
    Ok(Reference::adopt(conn, token))
}

impl Reference {
    /// See [`ProxyHandle::call_detached`](super::ProxyHandle::call_detached).
    pub(crate) fn call_detached<A: Serialize>(&self, method: &str, args: A) {
        let Ok(args) = self.codec().encode(&args) else {
            return;
        };
        match &self.link {
            Link::Remote(conn) => conn.send_unanswered(|id| Request::Call {
                id,
                object: self.token.id,
                method,
                args: &args,
            }),
            Link::Gone(_) => {}
            Link::Local(..) => {
                let handle = self.clone();
                let method = method.to_owned();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = handle.call_encoded(&method, &args).await;
                    });
                }
            }
        }
    }
}
