//! Proxy handles: one counted reference to a shared object.

use std::fmt;
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use manager_core::ledger::Owner;
use manager_core::wire::Request;
use manager_core::{Address, Codec, ObjectId, RemoteError, Returned, Shared, Token, TypedError};
use serde::de::DeserializeOwned;
use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::call::{Call, CallFailure};
use super::connection::{Connection, OwnedReply, Payload, Started};
use crate::handoff::{self, with_context, AdoptContext, ProxyWire};
use crate::server::objects::{Args, Dispatch, Erased};
use crate::server::{Caller, ServerState};
use crate::value;
use crate::{CallError, Error, Result, TransportError};

/// Where a handle's reference lives.
enum Link {
    /// Held by a client connection.
    Remote(Arc<Connection>),
    /// Held inside the server by one of its objects (a proxy stored in a shared object),
    /// as an owner of its own: it can release only the reference it took.
    Local(Weak<ServerState>, Owner),
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
}

impl ProxyHandle {
    /// Take ownership of the reference a create reply carried.
    pub(crate) fn adopt(conn: Arc<Connection>, token: Token) -> Self {
        conn.learn_server_address(&token.address);
        Self {
            link: Link::Remote(conn),
            token: Arc::new(token),
        }
    }

    /// A handle for a reference `owner`, a proxy inside the server, holds.
    pub(crate) fn local(
        state: &Arc<ServerState>,
        id: ObjectId,
        typeid: &str,
        owner: Owner,
    ) -> Self {
        Self {
            link: Link::Local(Arc::downgrade(state), owner),
            token: Arc::new(Token {
                typeid: typeid.to_owned(),
                address: state.address.clone(),
                id,
            }),
        }
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
            Link::Local(..) => Codec::Postcard,
        }
    }

    fn context(&self) -> AdoptContext {
        match &self.link {
            Link::Remote(conn) => conn.adopt_context().clone(),
            Link::Local(state, _) => AdoptContext::Server(state.clone()),
        }
    }

    fn server(state: &Weak<ServerState>) -> Result<Arc<ServerState>> {
        state
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
    pub(super) fn remote(&self) -> Option<&Arc<Connection>> {
        match &self.link {
            Link::Remote(conn) => Some(conn),
            Link::Local(..) => None,
        }
    }

    /// Decode a call's result, adopting the proxies in it through this handle's link.
    pub(super) fn decode<R: DeserializeOwned>(&self, value: &[u8]) -> Result<R> {
        let codec = self.codec();
        match &self.link {
            Link::Remote(conn) => Ok(with_context(conn.adopt_context(), || codec.decode(value))?),
            Link::Local(..) => Ok(with_context(&self.context(), || codec.decode(value))?),
        }
    }

    /// The value of a remote call's reply.
    pub(super) fn value_of(&self, method: &str, reply: OwnedReply) -> Result<Payload> {
        match &self.link {
            Link::Remote(conn) => Self::value_reply(conn, method, reply),
            Link::Local(..) => Err(reply.unexpected()),
        }
    }

    /// Queue a call of `method` on `conn`, its arguments encoded straight into the request
    /// (through a buffer kept per thread, so a call allocates nothing for them).
    ///
    /// With `stash`, the call goes to the connection's stash (see
    /// [`Connection::start_stashed`]) instead of being queued now.
    pub(super) fn start_call<'c, A: Serialize>(
        &self,
        conn: &'c Connection,
        method: &str,
        args: &A,
        waker: Option<Waker>,
        stash: bool,
    ) -> Result<Started<'c>> {
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        // Taken, not borrowed: a nested use (an argument whose serialisation makes a call)
        // just gets a fresh buffer.
        let mut buf = SCRATCH.take();
        buf.clear();
        let buf = self.codec().encode_into(args, buf)?;
        let object = self.token.id;
        let build = |id| Request::Call {
            id,
            object,
            method,
            args: &buf,
        };
        let started = match stash {
            true => conn.start_stashed(build),
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
                OwnedReply::Created(token) => ProxyHandle::adopt(conn.clone(), token),
                other => return Err(other.unexpected()),
            },
            Link::Local(state, _) => {
                let state = Self::server(state)?;
                match self.call_local(&state, method, args).await? {
                    Returned::Object { typeid, object } => {
                        let Ok(erased) = object.downcast::<Erased>() else {
                            return Err(RemoteError::Protocol("foreign object".into()).into());
                        };
                        let owner = state.proxy_owner();
                        let id = state.objects.insert(typeid, erased.0, owner);
                        ProxyHandle::local(&state, id, typeid, owner)
                    }
                    Returned::Value(_) => {
                        return Err(RemoteError::Protocol(format!(
                            "`{method}` returns a value, not a shared object"
                        ))
                        .into())
                    }
                }
            }
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
            Link::Local(state, _) => {
                let state = Self::server(state)?;
                match self.call_local(&state, method, args.to_vec()).await? {
                    Returned::Value(v) => Ok(Bytes::from(v)),
                    Returned::Object { .. } => Err(Self::returns_object(method)),
                }
            }
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
        conn.request(|id| Request::Call {
            id,
            object,
            method,
            args,
        })
        .await
    }

    /// Call a method of an object of the same server, from inside the server.
    async fn call_local(
        &self,
        state: &Arc<ServerState>,
        method: &str,
        args: Vec<u8>,
    ) -> Result<Returned> {
        let id = self.token.id;
        let (object, typeid) = state
            .objects
            .get(id)
            .ok_or(RemoteError::UnknownObject { id })?;
        let context = AdoptContext::Server(Arc::downgrade(state));
        let caller = Caller {
            connection: None,
            server: Arc::downgrade(state),
        };
        let frame = Bytes::from(args);
        let args = Args {
            frame: &frame,
            bytes: &frame,
        };
        // A call from inside the server is its own: its effects stand (nothing undoes them
        // for the caller of the method making it).
        let (dispatch, _stands) = crate::server::effects::collect(|| {
            object.call(typeid, method, args, Codec::Postcard, &context, &caller)
        });
        let result = match dispatch {
            Dispatch::Ready(result) => result,
            Dispatch::Spawn(task) => crate::server::effects::collect_async(task).await.0,
        };
        Ok(result?)
    }

    /// The referent's `Display` text (Python's `str(proxy)`); `<typeid object>` when the
    /// type does not implement `Display`.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn referent_to_string(&self) -> Result<String> {
        let object = self.token.id;
        match &self.link {
            Link::Remote(conn) => match conn.request(|id| Request::Display { id, object }).await? {
                OwnedReply::Text(t) => Ok(t),
                other => Err(other.unexpected()),
            },
            Link::Local(state, _) => {
                let state = Self::server(state)?;
                let (obj, typeid) = state
                    .objects
                    .get(object)
                    .ok_or(RemoteError::UnknownObject { id: object })?;
                Ok(crate::server::objects::display_text(obj, &typeid.name()).await?)
            }
        }
    }
}

impl Clone for ProxyHandle {
    fn clone(&self) -> Self {
        let object = self.token.id;
        let link = match &self.link {
            Link::Remote(conn) => {
                conn.send_oneway(Request::Incref { object });
                Link::Remote(conn.clone())
            }
            Link::Local(state, owner) => {
                // The clone is an owner of its own, with a reference of its own (none if
                // the object is gone, like this one's).
                let owner = match state.upgrade() {
                    Some(server) => {
                        let new = server.proxy_owner();
                        // Refused (the clone then holds nothing, like this handle) when this
                        // handle holds no reference: its object is gone, or the hand-off
                        // that gave it one never came.
                        let _ = server.objects.incref_from(object, *owner, new);
                        new
                    }
                    None => *owner,
                };
                Link::Local(state.clone(), owner)
            }
        };
        Self {
            link,
            token: self.token.clone(),
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let object = self.token.id;
        match &self.link {
            Link::Remote(conn) => conn.send_oneway(Request::Decref { object }),
            Link::Local(state, owner) => {
                if let Some(state) = state.upgrade() {
                    // Dropped here, outside the table's lock.
                    drop(state.objects.decref(object, *owner));
                }
            }
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
        serializer.serialize_newtype_struct(value::PROXY_MARKER, &InTransit(self))
    }
}

/// The content of a serialised handle: a reference put in transit.
struct InTransit<'a>(&'a ProxyHandle);

impl Serialize for InTransit<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let handle = self.0;
        if value::offer(|| crate::Value::Proxy(handle.clone())) {
            // The value serializer took a clone of the live handle.
            return serializer.serialize_unit();
        }
        let hold = handoff::new_hold();
        let object = handle.token.id;
        match &handle.link {
            Link::Remote(conn) => conn.send_oneway(Request::Hold { object, hold }),
            Link::Local(state, owner) => {
                let state = state
                    .upgrade()
                    .ok_or_else(|| serde::ser::Error::custom("the manager has shut down"))?;
                let expires = Instant::now() + state.limits.hold_timeout;
                // Counted against the connection whose call this is, if any.
                let on_behalf = crate::Caller::current().and_then(|c| c.connection);
                if let Err(refused) = state.objects.hold(object, hold, expires, *owner, on_behalf) {
                    return Err(serde::ser::Error::custom(format!(
                        "the proxy cannot be sent: {refused}"
                    )));
                }
            }
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
        deserializer.deserialize_newtype_struct(value::PROXY_MARKER, HandleVisitor)
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
        match value::take_delivered() {
            // From the value deserializer: the live handle a `Value::Proxy` held.
            Some(crate::Value::Proxy(handle)) => Ok(handle),
            Some(other) => Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Other(other.type_name()),
                &self,
            )),
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
        AdoptContext::Server(state) => {
            if let Some(state) = state.upgrade().filter(|s| s.address == token.address) {
                let expires = Instant::now() + state.limits.hold_timeout;
                let owner = state.proxy_owner();
                // Counted against the connection whose call carries the proxy.
                let on_behalf = crate::Caller::current().and_then(|c| c.connection);
                state
                    .objects
                    .adopt(object, hold, owner, expires, on_behalf)
                    .map_err(|refused| format!("a proxy argument was refused: {refused}"))?;
                return Ok(ProxyHandle::local(&state, object, &token.typeid, owner));
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
    /// For a proxy held inside the server itself (an argument of a constructor or method,
    /// or a field of a shared object): run `f` on the object it refers to, if it is a `T`
    /// and not locked by a `&mut self` call right now. `None` for a client's proxy, another
    /// type, a gone object or a busy one.
    ///
    /// This lets one shared type build on another's state, for example a condition
    /// variable that shares the lock it was given.
    pub fn with_local<T: Shared, R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let Link::Local(state, _) = &self.link else {
            return None;
        };
        let state = state.upgrade()?;
        let (object, _) = state.objects.get(self.token.id)?;
        let object = object.as_any();
        if let Some(plain) = object.downcast_ref::<crate::server::objects::Unlocked<T>>() {
            return Some(f(&plain.0));
        }
        let lock = object.downcast_ref::<crate::server::objects::ObjectLock<T>>()?;
        let guard = lock.try_read()?;
        Some(f(&guard))
    }

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
