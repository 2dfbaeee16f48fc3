//! Proxy handles: one counted reference to a remote object.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use manager_core::wire::Request;
use manager_core::{Address, ObjectId, Shared, Token};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::connection::{Connection, OwnedReply};
use crate::Result;

/// One reference to a shared object, over a client's connection: the base of every proxy
/// (Python's `BaseProxy`).
///
/// Each live handle is one reference on the server. `Clone` takes another (an incref) and
/// `Drop` releases it (a decref); both travel on the connection in order with the calls,
/// so a reference is never released before a call made through it. When the connection
/// closes, or the client process dies, the server releases every reference it held.
pub struct ProxyHandle {
    conn: Arc<Connection>,
    token: Arc<Token>,
}

impl ProxyHandle {
    /// Take ownership of the reference a create reply carried.
    pub(crate) fn adopt(conn: Arc<Connection>, token: Token) -> Self {
        Self {
            conn,
            token: Arc::new(token),
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

    /// Call `method` by name with `args`, a tuple of its arguments (`()` for none, `(x,)`
    /// for one): Python's `proxy._callmethod(name, args)`.
    ///
    /// The server refuses a method that is not exposed with
    /// [`RemoteError::NotExposed`](crate::RemoteError::NotExposed), and arguments of the
    /// wrong types with [`RemoteError::BadArguments`](crate::RemoteError::BadArguments); the
    /// connection stays usable either way.
    ///
    /// Cancel safety: dropping the future abandons the reply, not the call: the method
    /// may still run on the server.
    pub async fn call_method<A: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        args: A,
    ) -> Result<R> {
        let codec = self.conn.codec();
        let args = codec.encode(&args)?;
        let value = self.call_encoded(method, &args).await?;
        Ok(codec.decode(&value)?)
    }

    /// Call with arguments already encoded by the connection's codec; returns the encoded
    /// result. Used by generated proxies.
    #[doc(hidden)]
    pub async fn call_encoded(&self, method: &str, args: &[u8]) -> Result<Bytes> {
        let object = self.token.id;
        let reply = self
            .conn
            .request(|id| Request::Call {
                id,
                object,
                method,
                args,
            })
            .await?;
        match reply {
            OwnedReply::Value(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }

    /// The codec of this handle's connection.
    #[doc(hidden)]
    pub fn codec(&self) -> manager_core::Codec {
        self.conn.codec()
    }

    /// The referent's `Display` text (Python's `str(proxy)`); `<typeid object>` when the
    /// type does not implement `Display`.
    pub async fn referent_to_string(&self) -> Result<String> {
        let object = self.token.id;
        match self
            .conn
            .request(|id| Request::Display { id, object })
            .await?
        {
            OwnedReply::Text(t) => Ok(t),
            other => Err(other.unexpected()),
        }
    }
}

impl Clone for ProxyHandle {
    fn clone(&self) -> Self {
        self.conn.send_oneway(Request::Incref {
            object: self.token.id,
        });
        Self {
            conn: self.conn.clone(),
            token: self.token.clone(),
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.conn.send_oneway(Request::Decref {
            object: self.token.id,
        });
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

/// A typed proxy for objects of [`Proxy::Target`]: what `#[shared]` generates (Python's
/// `AutoProxy`), or a hand-written proxy type.
pub trait Proxy: Clone + Send + Sync + Sized + 'static {
    /// The shared type this proxy calls.
    type Target: Shared;

    /// Wrap a handle. The handle's object must be a `Target`; [`crate::Client::create`]
    /// checks that with the server.
    fn from_handle(handle: ProxyHandle) -> Self;

    /// The underlying handle, for raw calls ([`ProxyHandle::call_method`]) and the token.
    fn handle(&self) -> &ProxyHandle;
}
