//! Proxies held inside the server (by its objects, or as arguments of a call): the
//! server's side of [`LocalServer`], the one way a handle held here reaches the server.
//! A call through such a handle goes through the same dispatch as a call from the network
//! ([`ErasedObject::call`](super::objects::ErasedObject::call)), with its panics mapped in
//! the same place (`server/panics.rs`).

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use manager_core::ledger::Owner;
use manager_core::wire::HoldId;
use manager_core::{Address, Codec, ObjectId, RemoteError, Returned, Shared, Token};

use super::caller::Caller;
use super::effects;
use super::objects::{
    display_text, Args, Dispatch, Erased, ErasedObject, ObjectLock, Typeid, Unlocked,
};
use super::state::ServerState;
use crate::client::handoff::AdoptContext;
use crate::client::local::{LocalAdopted, LocalReturn, LocalServer};
use crate::{ProxyHandle, Result};

impl ServerState {
    /// The object `id` and its typeid, or `UnknownObject`.
    fn object(&self, id: ObjectId) -> Result<(Arc<dyn ErasedObject>, Typeid<'_>)> {
        Ok(self
            .objects
            .get(id)
            .ok_or(RemoteError::UnknownObject { id })?)
    }

    /// Where proxies decoded for a call on this server are adopted: as handles held here.
    pub(crate) fn adopt_context(self: &Arc<Self>) -> AdoptContext {
        let link: crate::client::local::LocalLink = Arc::downgrade(self) as _;
        AdoptContext::Server(link)
    }
}

impl LocalServer for ServerState {
    fn address(&self) -> &Address {
        &self.address
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn call<'a>(
        self: Arc<Self>,
        object: ObjectId,
        method: &'a str,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<LocalReturn>> {
        Box::pin(async move {
            let (target, typeid) = self.object(object)?;
            let context = self.adopt_context();
            let caller = Caller {
                connection: None,
                hooks: Arc::downgrade(&self.hooks),
            };
            let frame = Bytes::from(args);
            let args = Args {
                frame: &frame,
                bytes: &frame,
            };
            // A call from inside the server is its own: its effects stand (nothing undoes
            // them for the caller of the method making it).
            let (dispatch, _stands) = effects::collect(|| {
                target.call(typeid, method, args, Codec::Postcard, &context, &caller)
            });
            let returned = match dispatch {
                Dispatch::Ready(result) => result,
                Dispatch::Spawn(task) => effects::collect_async(task).await.0,
            }?;
            Ok(match returned {
                Returned::Value(bytes) => LocalReturn::Value(bytes),
                Returned::Object { typeid, object } => {
                    let Ok(erased) = object.downcast::<Erased>() else {
                        return Err(RemoteError::Protocol("foreign object".into()).into());
                    };
                    let owner = self.proxy_owner();
                    let id = self.objects.insert(typeid, erased.0, owner);
                    LocalReturn::Object {
                        id,
                        typeid: typeid.to_owned(),
                        owner,
                    }
                }
            })
        })
    }

    fn display(self: Arc<Self>, object: ObjectId) -> BoxFuture<'static, Result<String>> {
        Box::pin(async move {
            let (target, typeid) = self.object(object)?;
            let typeid = typeid.name();
            Ok(display_text(target, &typeid).await?)
        })
    }

    fn clone_reference(&self, object: ObjectId, from: Owner) -> Owner {
        let new = self.proxy_owner();
        // Refused (the clone then holds nothing, like the handle it clones) when `from`
        // holds no reference: its object is gone, or the hand-off that gave it one never
        // came.
        let _ = self.objects.incref_from(object, from, new);
        new
    }

    fn release(&self, object: ObjectId, owner: Owner) {
        // Dropped here, outside the table's lock.
        drop(self.objects.decref(object, owner));
    }

    fn put_in_transit(
        &self,
        object: ObjectId,
        hold: HoldId,
        owner: Owner,
    ) -> std::result::Result<(), String> {
        let expires = Instant::now() + self.limits.hold_timeout;
        // Counted against the connection whose call this is, if any.
        let on_behalf = Caller::current().and_then(|c| c.connection);
        self.objects
            .hold(object, hold, expires, owner, on_behalf)
            .map_err(|refused| format!("the proxy cannot be sent: {refused}"))
    }

    fn adopt(
        &self,
        token: &Token,
        hold: HoldId,
    ) -> Option<std::result::Result<LocalAdopted, String>> {
        if self.address != token.address {
            return None;
        }
        if token.epoch != self.epoch {
            // From an earlier instance of this manager: its id means nothing here.
            return Some(Ok(LocalAdopted::Restarted));
        }
        let expires = Instant::now() + self.limits.hold_timeout;
        let owner = self.proxy_owner();
        // Counted against the connection whose call carries the proxy.
        let on_behalf = Caller::current().and_then(|c| c.connection);
        Some(
            self.objects
                .adopt(token.id, hold, owner, expires, on_behalf)
                .map(|()| LocalAdopted::Held(owner))
                .map_err(|refused| format!("a proxy argument was refused: {refused}")),
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl ProxyHandle {
    /// For a proxy held inside the server itself (an argument of a constructor or method,
    /// or a field of a shared object): run `f` on the object it refers to, if it is a `T`
    /// and not locked by a `&mut self` call right now. `None` for a client's proxy, another
    /// type, a gone object or a busy one.
    ///
    /// This lets one shared type build on another's state, for example a condition
    /// variable that shares the lock it was given.
    pub fn with_local<T: Shared, R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let (server, _) = self.local_server()?;
        let state = server.as_any().downcast_ref::<ServerState>()?;
        let (object, _) = state.objects.get(self.id())?;
        let object = object.as_any();
        if let Some(plain) = object.downcast_ref::<Unlocked<T>>() {
            return Some(f(&plain.0));
        }
        let lock = object.downcast_ref::<ObjectLock<T>>()?;
        let guard = lock.try_read()?;
        Some(f(&guard))
    }
}
