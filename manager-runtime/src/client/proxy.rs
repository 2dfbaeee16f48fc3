//! Proxies: [`ProxyHandle`], the untyped proxy every typed one wraps (its calling API is
//! what generated proxy methods call; its `Serialize`/`Deserialize` make proxies travel),
//! and the [`Proxy`] trait every proxy type implements. The counted reference inside a
//! handle, and its routing, is `handle.rs`; the call future, `call.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use manager_core::ledger::Owner;
use manager_core::{Address, Codec, ObjectId, Shared, Token, TypedError};
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::call::{self, Call};
use super::connection::Connection;
use super::handle::{adopt_wire, Reference};
use super::handoff::ProxyWire;
use super::live;
use super::local::LocalServer;
use crate::{CallError, Result};

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
#[derive(Clone)]
pub struct ProxyHandle {
    reference: Reference,
}

impl ProxyHandle {
    /// The handle of `reference`.
    pub(crate) fn from_reference(reference: Reference) -> Self {
        ProxyHandle { reference }
    }

    /// Take ownership of the reference a create reply carried.
    pub(crate) fn adopt(conn: Arc<Connection>, token: Token) -> Self {
        Self::from_reference(Reference::adopt(conn, token))
    }

    /// A handle for a reference `owner`, a proxy inside the server, holds.
    pub(crate) fn local<S: LocalServer>(
        server: &Arc<S>,
        id: ObjectId,
        typeid: &str,
        owner: Owner,
    ) -> Self {
        Self::from_reference(Reference::local(server, id, typeid, owner))
    }

    /// The server holding this handle and the handle's owner there, for a handle held
    /// inside a server that is still running.
    pub(crate) fn local_server(&self) -> Option<(Arc<dyn LocalServer>, Owner)> {
        self.reference.local_server()
    }

    /// Another handle to the same object (a new reference, as [`Clone`]) whose calls
    /// have a deadline of `timeout` unless a call sets its own
    /// ([`Call::timeout`](crate::Call::timeout)): see there for what happens at the
    /// deadline. It overrides the connection's default
    /// ([`ClientBuilder::call_timeout`](crate::ClientBuilder::call_timeout)).
    /// [`Proxy::with_timeout`] is the same for a typed proxy.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self::from_reference(self.reference.with_timeout(timeout))
    }

    /// The deadline this handle's calls get: its own, else its connection's default.
    pub fn timeout(&self) -> Option<Duration> {
        self.reference.timeout()
    }

    /// The object's token: typeid, id and manager address.
    pub fn token(&self) -> &Token {
        self.reference.token()
    }

    /// The typeid the object was created under.
    pub fn typeid(&self) -> &str {
        self.reference.typeid()
    }

    /// The object's id on its manager.
    pub fn id(&self) -> ObjectId {
        self.reference.id()
    }

    /// The manager's address.
    pub fn address(&self) -> &Address {
        self.reference.address()
    }

    /// The codec of this handle's connection.
    #[doc(hidden)]
    pub fn codec(&self) -> Codec {
        self.reference.codec()
    }

    /// `handle`, deserialised, as a proxy of type `P`: the server is told this build's idea
    /// of `P::Target` (once per connection and typeid), and refuses this connection's
    /// calls on the object with [`RemoteError::SchemaMismatch`](crate::RemoteError::SchemaMismatch) if its type differs,
    /// instead of mis-decoding them. What generated proxies' `Deserialize` calls.
    #[doc(hidden)]
    pub fn into_adopted<P: Proxy>(self) -> P {
        self.reference.expect_schema(<P::Target as Shared>::METHODS);
        P::from_handle(self)
    }

    /// Call `method` by name with `args`, a tuple of its arguments (`()` for none, `(x,)`
    /// for one): Python's `proxy._callmethod(name, args)`. The [`Call`] is a future of the
    /// result; it can also be pushed onto a [`Pipeline`](crate::Pipeline).
    ///
    /// The server refuses a method that is not exposed with
    /// [`RemoteError::NotExposed`](crate::RemoteError::NotExposed), and arguments that do not decode as the method's
    /// parameters with [`RemoteError::BadArguments`](crate::RemoteError::BadArguments); the connection stays usable either
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
        Call::new(&self.reference, method, args)
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
        Call::new(&self.reference, method, args)
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
        let reference = self
            .reference
            .call_for_handle(method, args, <P::Target as Shared>::METHODS)
            .await?;
        Ok(P::from_handle(Self::from_reference(reference)))
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
            .map_err(|e| call::failure(e, &self.reference))
    }

    /// Call with arguments already encoded by the handle's codec; returns the encoded
    /// result.
    ///
    /// Cancel safety: as for [`call_method`](Self::call_method).
    #[doc(hidden)]
    pub async fn call_encoded(&self, method: &str, args: &[u8]) -> Result<Bytes> {
        self.reference.call_encoded(method, args).await
    }

    /// The referent's `Display` text (Python's `str(proxy)`); `<typeid object>` when the
    /// type does not implement `Display`.
    ///
    /// Cancel safe: it only reads, so dropping it only discards the answer.
    pub async fn referent_to_string(&self) -> Result<String> {
        self.reference.referent_to_string().await
    }

    /// Call `method` without waiting for its reply, which is discarded (for releases in
    /// `Drop`). On a client connection it is ordered after every call made before it; the
    /// result, including any error, is not reported.
    pub fn call_detached<A: Serialize>(&self, method: &str, args: A) {
        self.reference.call_detached(method, args)
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
        handle
            .reference
            .put_in_transit()
            .map_err(serde::ser::Error::custom)?
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
                adopt_wire(wire)
                    .map(ProxyHandle::from_reference)
                    .map_err(serde::de::Error::custom)
            }
        }
    }
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reference.fmt(f)
    }
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
