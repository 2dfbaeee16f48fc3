//! Proxy handles: one counted reference to a shared object.

use std::fmt;
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use manager_core::ledger::Owner;
use manager_core::wire::Request;
use manager_core::{Address, Codec, ObjectId, RemoteError, Shared, Token, TypedError};
use serde::de::DeserializeOwned;
use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::call::{Call, CallFailure};
use super::connection::{Connection, Started};
use super::handoff::{self, with_context, AdoptContext, ProxyWire};
use super::live;
use super::local::{LocalLink, LocalReturn, LocalServer};
use super::reply::{OwnedReply, Payload};
use crate::{CallError, Error, Result, TransportError};

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

/// One reference to a shared object: the base of every proxy (Python's `BaseProxy`).
///
/// Each live handle is one reference on the manager. `Clone` takes another (an incref)
/// and `Drop` releases it (a decref); on a client both travel on the connection in order
/// with the calls, so a reference is never released before a call made through it. When
/// the connection closes, or the client process dies, the manager releases every
/// reference it held.
///
/// Handles (and so proxies) are `Serialize + Deserialize`: a proxy can be an argument or
/// result of a method, be stored in a shared object, or be sent to another process by any
/// channel, and arrives as a live proxy (see the crate docs on proxies that travel).
pub struct ProxyHandle {
    link: Link,
    token: Arc<Token>,
    /// The deadline of this handle's calls, if it has one of its own
    /// ([`with_timeout`](Self::with_timeout)); else its connection's default.
    timeout: Option<Duration>,
}

/// A call request: with its deadline, if it has one.
pub(super) fn call_request<'b>(
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

impl ProxyHandle {
    /// Take ownership of the reference a create reply carried.
    pub(crate) fn adopt(conn: Arc<Connection>, token: Token) -> Self {
        conn.learn_server_address(&token.address);
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
        Self {
            link: Link::Local(link, owner),
            token: Arc::new(Token {
                typeid: typeid.to_owned(),
                address: server.address().clone(),
                id,
                epoch: server.epoch(),
            }),
            timeout: None,
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

    /// Another handle to the same object (a new reference, as [`Clone`]) whose calls
    /// have a deadline of `timeout` unless a call sets its own
    /// ([`Call::timeout`](crate::Call::timeout)): see there for what happens at the
    /// deadline. It overrides the connection's default
    /// ([`ClientBuilder::call_timeout`](crate::ClientBuilder::call_timeout)).
    /// [`Proxy::with_timeout`] is the same for a typed proxy.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let mut handle = self.clone();
        handle.timeout = Some(timeout.min(crate::transport::MAX_TIMEOUT));
        handle
    }

    /// The deadline this handle's calls get: its own, else its connection's default.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.or_else(|| match &self.link {
            Link::Remote(conn) => conn.call_timeout(),
            Link::Local(..) | Link::Gone(_) => None,
        })
    }

    /// `handle`, deserialised, as a proxy of type `P`: the server is told this build's idea
    /// of `P::Target` (once per connection and typeid), and refuses this connection's
    /// calls on the object with [`RemoteError::SchemaMismatch`] if its type differs,
    /// instead of mis-decoding them. What generated proxies' `Deserialize` calls.
    #[doc(hidden)]
    pub fn into_adopted<P: Proxy>(self) -> P {
        if let Link::Remote(conn) = &self.link {
            conn.current()
                .expect_schema(&self.token.typeid, <P::Target as Shared>::METHODS);
        }
        P::from_handle(self)
    }

    /// The object's token: typeid, id and manager address.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The typeid the object was created under.
    pub fn typeid(&self) -> &str {
        &self.token.typeid
    }

    /// The object's id on its manager.
    pub fn id(&self) -> ObjectId {
        self.token.id
    }

    /// The manager's address.
    pub fn address(&self) -> &Address {
        &self.token.address
    }

    /// The codec of this handle's connection.
    #[doc(hidden)]
    pub fn codec(&self) -> Codec {
        match &self.link {
            Link::Remote(conn) => conn.codec(),
            Link::Local(..) | Link::Gone(_) => Codec::Postcard,
        }
    }

    fn context(&self) -> AdoptContext {
        match &self.link {
            Link::Remote(conn) => conn.adopt_context().clone(),
            Link::Local(state, _) => AdoptContext::Server(state.clone()),
            Link::Gone(_) => AdoptContext::Process,
        }
    }

    fn server(server: &LocalLink) -> Result<Arc<dyn LocalServer>> {
        server
            .upgrade()
            .ok_or(Error::Transport(TransportError::ClosedLocally))
    }

    /// Call `method` by name with `args`, a tuple of its arguments (`()` for none, `(x,)`
    /// for one): Python's `proxy._callmethod(name, args)`. The [`Call`] is a future of the
    /// result; it can also be pushed onto a [`Pipeline`](crate::Pipeline).
    ///
    /// The server refuses a method that is not exposed with
    /// [`RemoteError::NotExposed`], and arguments that do not decode as the method's
    /// parameters with [`RemoteError::BadArguments`]; the connection stays usable either
    /// way. (The default format, postcard, is not self-describing: arguments of other
    /// types that happen to decode are not detected. Generated proxies cannot send them.)
    ///
    /// Cancel safety: dropping the future sends the server a cancel for the call: an
    /// `async` method still running there is stopped (dropped at its next await). A method
    /// that already finished, or a plain `fn`, is not undone, unless it registered an undo
    /// with [`Caller::undo_unless_taken`](crate::Caller::undo_unless_taken) (the
    /// SyncManager lock, permit and queue `get` calls do); its reply is discarded.
    pub fn call_method<'a, A: Serialize, R: DeserializeOwned>(
        &'a self,
        method: &'a str,
        args: A,
    ) -> Call<'a, A, R> {
        Call::new(self, method, args)
    }

    /// Call `method` by name, as [`call_method`](Self::call_method) does, on a method with
    /// typed errors (`#[shared(errors = typed)]`): its `Err(e)` comes back as
    /// [`CallError::Method`]`(e)` (when `e` decodes as `M`), every other failure as
    /// [`CallError::Rpc`]. This is what generated proxies of such methods call.
    ///
    /// Cancel safety: as for [`call_method`](Self::call_method).
    pub fn call_method_typed<'a, A: Serialize, R: DeserializeOwned, M: TypedError>(
        &'a self,
        method: &'a str,
        args: A,
    ) -> Call<'a, A, R, CallError<M>> {
        Call::new(self, method, args)
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
            Link::Remote(conn) => Ok(with_context(conn.adopt_context(), || codec.decode(value))?),
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
                drop(ProxyHandle::adopt(conn.clone(), token));
                Err(Self::returns_object(method))
            }
            other => Err(other.unexpected()),
        }
    }

    /// Call a method that returns a new shared object (a `method_to_typeid` method) and
    /// return a proxy of type `P` for it.
    ///
    /// Cancel safety: as for [`call_method`](Self::call_method): once polled, dropping the
    /// future sends a cancel, which stops the method only if it still waits on the server.
    /// A method that finished is not undone; the new object it returned is released as its
    /// reply arrives.
    pub async fn call_for_proxy<P: Proxy, A: Serialize>(&self, method: &str, args: A) -> Result<P> {
        let args = self.codec().encode(&args)?;
        let handle = match &self.link {
            Link::Remote(conn) => match self.request_call(conn, method, &args).await? {
                OwnedReply::Created(token) => {
                    let handle = ProxyHandle::adopt(conn.clone(), token);
                    // This build's idea of the new object's type, checked as `create`
                    // checks it (once per connection and typeid); on a mismatch the new
                    // object is released as `handle` drops.
                    conn.check_schema(handle.typeid(), <P::Target as Shared>::METHODS)
                        .await?;
                    handle
                }
                other => return Err(other.unexpected()),
            },
            Link::Local(server, _) => {
                match Self::server(server)?
                    .call(self.token.id, method, args)
                    .await?
                {
                    LocalReturn::Object(handle) => handle,
                    LocalReturn::Value(_) => {
                        return Err(RemoteError::Protocol(format!(
                            "`{method}` returns a value, not a shared object"
                        ))
                        .into())
                    }
                }
            }
            Link::Gone(e) => return Err(e.clone()),
        };
        Ok(P::from_handle(handle))
    }

    /// Call a `method_to_typeid` method with typed errors (`#[shared(errors = typed)]`), as
    /// [`call_for_proxy`](Self::call_for_proxy) does: its `Err(e)` comes back as
    /// [`CallError::Method`]`(e)`, every other failure as [`CallError::Rpc`].
    ///
    /// Cancel safety: as for [`call_for_proxy`](Self::call_for_proxy).
    pub async fn call_for_proxy_typed<P: Proxy, A: Serialize, M: TypedError>(
        &self,
        method: &str,
        args: A,
    ) -> Result<P, CallError<M>> {
        self.call_for_proxy(method, args)
            .await
            .map_err(|e| CallError::from_error(e, self))
    }

    /// Call with arguments already encoded by the handle's codec; returns the encoded
    /// result.
    ///
    /// Cancel safety: as for [`call_method`](Self::call_method).
    #[doc(hidden)]
    pub async fn call_encoded(&self, method: &str, args: &[u8]) -> Result<Bytes> {
        match &self.link {
            Link::Remote(conn) => {
                let reply = self.request_call(conn, method, args).await?;
                Ok(Self::value_reply(conn, method, reply)?.into_bytes())
            }
            Link::Local(server, _) => {
                let server = Self::server(server)?;
                match server.call(self.token.id, method, args.to_vec()).await? {
                    LocalReturn::Value(v) => Ok(Bytes::from(v)),
                    // Released as it drops.
                    LocalReturn::Object(_) => Err(Self::returns_object(method)),
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

    /// The referent's `Display` text (Python's `str(proxy)`); `<typeid object>` when the
    /// type does not implement `Display`.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn referent_to_string(&self) -> Result<String> {
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

impl Clone for ProxyHandle {
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

impl Drop for ProxyHandle {
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

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("typeid", &self.token.typeid)
            .field("address", &format_args!("{}", self.token.address))
            .field("id", &format_args!("{}", self.token.id))
            .finish()
    }
}

impl Serialize for ProxyHandle {
    /// Puts a new reference in transit for the receiver (the sender keeps its own).
    ///
    /// Written as a newtype struct with a private name around a `ProxyWire`; postcard
    /// writes newtype structs as their content, so the bytes are the `ProxyWire`'s. The
    /// name lets [`crate::to_value`] take a clone of the handle instead (see
    /// `value/wire.rs`): no reference in transit, nothing to adopt.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(live::PROXY_MARKER, &InTransit(self))
    }
}

/// The content of a serialised handle: a reference put in transit.
struct InTransit<'a>(&'a ProxyHandle);

impl Serialize for InTransit<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let handle = self.0;
        if live::offer(|| handle.clone()) {
            // The value serializer took a clone of the live handle.
            return serializer.serialize_unit();
        }
        let hold = handoff::new_hold();
        let object = handle.token.id;
        match &handle.link {
            Link::Remote(conn) => {
                let conn = conn.current();
                if conn.has_dropped() {
                    // The reference could not be put in transit: the receiver would wait
                    // for it in vain.
                    return Err(serde::ser::Error::custom(
                        "the proxy's connection dropped (reconnecting, or lost): it cannot be sent now",
                    ));
                }
                conn.send_oneway(Request::Hold { object, hold })
            }
            Link::Local(server, owner) => {
                let server = server
                    .upgrade()
                    .ok_or_else(|| serde::ser::Error::custom("the manager has shut down"))?;
                server
                    .put_in_transit(object, hold, *owner)
                    .map_err(serde::ser::Error::custom)?;
            }
            Link::Gone(e) => return Err(serde::ser::Error::custom(e)),
        }
        ProxyWire {
            token: (*handle.token).clone(),
            hold,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ProxyHandle {
    /// Adopts the reference the sender put in transit; from a [`crate::Value`], takes the
    /// handle it holds.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(live::PROXY_MARKER, HandleVisitor)
    }
}

struct HandleVisitor;

impl<'de> Visitor<'de> for HandleVisitor {
    type Value = ProxyHandle;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a proxy")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<ProxyHandle, D::Error> {
        match live::take_delivered() {
            // From the value deserializer: the live handle a `Value::Proxy` held.
            Some(live) => match live.downcast::<ProxyHandle>() {
                Ok(handle) => Ok(*handle),
                Err(_) => Err(serde::de::Error::invalid_type(
                    serde::de::Unexpected::Other("a value"),
                    &self,
                )),
            },
            None => {
                let wire = ProxyWire::deserialize(deserializer)?;
                adopt(wire).map_err(serde::de::Error::custom)
            }
        }
    }
}

fn adopt(wire: ProxyWire) -> std::result::Result<ProxyHandle, String> {
    let ProxyWire { token, hold } = wire;
    let object = token.id;
    match handoff::current_context() {
        AdoptContext::Server(server) => {
            if let Some(adopted) = server.upgrade().and_then(|s| s.adopt(&token, hold)) {
                return adopted;
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
                    return Ok(ProxyHandle::restarted(token));
                }
                conn.send_oneway(Request::Adopt { object, hold });
                return Ok(ProxyHandle::adopt(conn, token));
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
        return Ok(ProxyHandle::restarted(token));
    }
    conn.send_oneway(Request::Adopt { object, hold });
    Ok(ProxyHandle::adopt(conn, token))
}

/// A typed proxy for objects of [`Proxy::Target`]: what `#[shared]` generates (Python's
/// `AutoProxy`), or a hand-written proxy type (`#[derive(Proxy)]`).
pub trait Proxy: Clone + Send + Sync + Sized + 'static {
    /// The shared type this proxy calls.
    type Target: Shared;

    /// Wrap a handle. The handle's object must be a `Target`; [`crate::Client::create`]
    /// checks that with the server.
    fn from_handle(handle: ProxyHandle) -> Self;

    /// The underlying handle, for raw calls ([`ProxyHandle::call_method`]) and the token.
    fn handle(&self) -> &ProxyHandle;

    /// Another proxy for the same object (a new reference, as [`Clone`]) whose every call
    /// has a deadline of `timeout`, unless the call sets its own
    /// ([`Call::timeout`](crate::Call::timeout)). For proxies whose methods are `async fn`s
    /// of their own (the SyncManager types), this is how their calls get a deadline:
    /// `queue.with_timeout(Duration::from_secs(2)).get().await`.
    ///
    /// The result is made with [`from_handle`](Self::from_handle): a proxy that keeps state
    /// of its own beyond the handle gets it fresh (`managers::sync`'s `RLockProxy` and
    /// `ConditionProxy` are each one holder of a lock: their inherent `with_timeout` keeps
    /// the holder, and is what method-call syntax picks).
    ///
    /// At the deadline the call fails with [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded)
    /// and is withdrawn on the server with nothing lost (see
    /// [`Call::timeout`](crate::Call::timeout)).
    fn with_timeout(&self, timeout: Duration) -> Self {
        Self::from_handle(self.handle().with_timeout(timeout))
    }
}

/// The proxy type a shared type is returned as by `method_to_typeid` methods: the
/// generated one, or the `custom_proxy` given to `#[shared]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a shared type",
    label = "not a `#[shared]` type",
    note = "a `method_to_typeid` target must have an `impl` block with `#[shared]`"
)]
pub trait HasProxy: Shared {
    /// The proxy.
    type Proxy: Proxy<Target = Self>;
}

/// The proxy type of the shared type `T`: `ProxyOf<Board>` is `BoardProxy` (or the custom
/// proxy `Board` names). Generated `method_to_typeid` methods return it.
#[allow(type_alias_bounds)]
pub type ProxyOf<T> = <T as HasProxy>::Proxy;

impl ProxyHandle {
    /// Call `method` without waiting for its reply, which is discarded (for releases in
    /// `Drop`). On a client connection it is ordered after every call made before it; the
    /// result, including any error, is not reported.
    pub fn call_detached<A: Serialize>(&self, method: &str, args: A) {
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
