//! Proxies held inside a server: what a [`ProxyHandle`](super::ProxyHandle) held there needs
//! from the server holding it, as a trait, so that the client side knows nothing of the
//! server's internals. The server implements it (`server/local.rs`) and routes these calls
//! through the same dispatch, panic mapping and reference counting as its network path.

use std::any::Any;
use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;
use manager_core::ledger::Owner;
use manager_core::wire::HoldId;
use manager_core::{Address, ObjectId, Token};

use crate::Result;

/// What a call through a handle held inside the server returned.
pub(crate) enum LocalReturn {
    /// A value, encoded with postcard.
    Value(Vec<u8>),
    /// A new shared object (a `method_to_typeid` method) of `typeid`, its reference held
    /// by `owner` (the handle made for it is that owner).
    Object {
        id: ObjectId,
        typeid: String,
        owner: Owner,
    },
}

/// A reference in transit adopted inside the server ([`LocalServer::adopt`]).
pub(crate) enum LocalAdopted {
    /// Held by `owner`: the handle made for it is that owner.
    Held(Owner),
    /// The token is from an earlier instance of this server: its id means nothing here.
    Restarted,
}

/// The server side of handles held inside a server (see the module docs). Handles keep it
/// weakly: once the server is gone, their calls fail with `ClosedLocally` and their
/// releases do nothing.
pub(crate) trait LocalServer: Send + Sync + 'static {
    /// The server's address, as its tokens name it.
    fn address(&self) -> &Address;

    /// The server instance, as its tokens carry it.
    fn epoch(&self) -> u64;

    /// Call `method` of `object` with `args` (encoded with postcard), as a call from
    /// inside the server: its effects stand (no client takes them).
    fn call<'a>(
        self: Arc<Self>,
        object: ObjectId,
        method: &'a str,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<LocalReturn>>;

    /// The `Display` text of `object` (`<typeid object>` without one).
    fn display(self: Arc<Self>, object: ObjectId) -> BoxFuture<'static, Result<String>>;

    /// A new owner holding one more reference to `object`, taken from `from`'s (none when
    /// `from` holds none: the new owner then holds nothing either).
    fn clone_reference(&self, object: ObjectId, from: Owner) -> Owner;

    /// Release `owner`'s reference to `object`.
    fn release(&self, object: ObjectId, owner: Owner);

    /// Put a reference to `object`, taken from `owner`'s, in transit under `hold`, for
    /// whoever deserialises the proxy.
    fn put_in_transit(&self, object: ObjectId, hold: HoldId, owner: Owner) -> Result<(), String>;

    /// Adopt the reference in transit under `hold` as one held inside this server, if
    /// `token` names this server (`None` otherwise).
    fn adopt(&self, token: &Token, hold: HoldId) -> Option<Result<LocalAdopted, String>>;

    /// The server itself, for code of the server's own that knows its type.
    fn as_any(&self) -> &dyn Any;
}

/// A handle's link to the server holding it.
pub(crate) type LocalLink = Weak<dyn LocalServer>;
