//! The client side of one authenticated connection: a reader task, a writer task, and the
//! table of calls waiting for their reply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use manager_core::wire::{
    self, ClientMessage, ObjectInfo, Reply, Request, RequestId, ServerMessage,
};
use manager_core::{Address, Codec, Token};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::auth::{self, AuthKey, Reader, Writer};
use crate::transport::{self, frame_codec};
use crate::{Error, Result, TransportError};

/// A reply, detached from the frame it came in (values stay zero-copy slices of it).
#[derive(Debug)]
pub(crate) enum OwnedReply {
    Value(Bytes),
    Created(Token),
    Text(String),
    Count(u64),
    DebugInfo(Vec<ObjectInfo>),
}

impl OwnedReply {
    fn from_frame(reply: Reply<'_>, frame: &Bytes) -> Self {
        match reply {
            Reply::Value(v) => OwnedReply::Value(frame.slice_ref(v)),
            Reply::Created(t) => OwnedReply::Created(t),
            Reply::Text(t) => OwnedReply::Text(t),
            Reply::Count(n) => OwnedReply::Count(n),
            Reply::DebugInfo(rows) => OwnedReply::DebugInfo(rows),
        }
    }

    /// A reply of a kind the request cannot get is a protocol violation.
    pub(crate) fn unexpected(&self) -> Error {
        Error::Transport(TransportError::Protocol(format!(
            "unexpected reply kind: {self:?}"
        )))
    }
}

type Waiter = oneshot::Sender<Result<OwnedReply>>;

#[derive(Default)]
struct Waiting {
    calls: HashMap<RequestId, Waiter>,
    /// Set once the connection failed; every later call gets this error at once.
    closed: Option<Error>,
}

/// What the reader task and the callers share.
#[derive(Default)]
struct Pending {
    state: Mutex<Waiting>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail every waiting call, and all later ones, with `error`.
    fn close(&self, error: Error) {
        let calls = {
            let mut state = self.lock();
            state.closed.get_or_insert(error.clone());
            std::mem::take(&mut state.calls)
        };
        for (_, waiter) in calls {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}

/// If the caller gives up before the reply (its future is dropped), forgets the call and
/// tells the server to stop it.
struct WaiterGuard<'a> {
    conn: &'a Connection,
    id: RequestId,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.conn.pending.lock().calls.remove(&self.id);
        self.conn.send_oneway(Request::Cancel { id: self.id });
    }
}

/// Options for a client connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    pub(crate) max_frame: usize,
    pub(crate) handshake_timeout: Duration,
}

/// One authenticated connection. Dropped when the last client and proxy using it are gone:
/// the writer then flushes what is queued (decrefs included) and closes the socket.
pub(crate) struct Connection {
    address: Address,
    /// The address the server names itself by in tokens, learned from the first token.
    server_address: OnceLock<Address>,
    codec: Codec,
    /// Frames for the writer task. Unbounded because proxy `Clone` and `Drop` must enqueue
    /// their incref/decref synchronously and in order with calls; every call waits for its
    /// reply, so calls cannot pile up faster than the caller's own concurrency.
    outbox: mpsc::UnboundedSender<Bytes>,
    pending: Arc<Pending>,
    next_id: AtomicU64,
    reader: AbortHandle,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.pending
            .close(Error::Transport(TransportError::ClosedLocally));
    }
}

impl Connection {
    pub(crate) async fn open(
        address: Address,
        key: &AuthKey,
        options: &ConnectOptions,
    ) -> Result<Self> {
        let (read, write) = transport::connect(&address).await?;
        let mut reader = FramedRead::new(read, frame_codec(options.max_frame));
        let mut writer = FramedWrite::new(write, frame_codec(options.max_frame));
        let handshake = auth::connect(&mut reader, &mut writer, key, options.max_frame);
        tokio::time::timeout(options.handshake_timeout, handshake)
            .await
            .map_err(|_| Error::Transport(TransportError::HandshakeTimeout))??;
        let (outbox, frames) = mpsc::unbounded_channel();
        let pending = Arc::new(Pending::default());
        tokio::spawn(write_loop(writer, frames, pending.clone()));
        let reader = tokio::spawn(read_loop(reader, pending.clone())).abort_handle();
        Ok(Self {
            address,
            server_address: OnceLock::new(),
            codec: Codec::Postcard,
            outbox,
            pending,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// Remember the address the server gives in its tokens, so that proxies for it that
    /// arrive by any route find this connection.
    pub(crate) fn learn_server_address(self: &Arc<Self>, address: &Address) {
        if self.server_address.set(address.clone()).is_ok() && *address != self.address {
            crate::handoff::register(address, self);
        }
    }

    /// Whether this connection leads to the manager known as `address`.
    pub(crate) fn serves(&self, address: &Address) -> bool {
        self.address == *address || self.server_address.get() == Some(address)
    }

    /// Whether the connection still works.
    pub(crate) fn is_open(&self) -> bool {
        self.pending.lock().closed.is_none()
    }

    fn enqueue(&self, request: Request<'_>) -> Result<()> {
        let frame = wire::encode(&ClientMessage::V1(request))
            .map_err(|e| Error::Codec(manager_core::CodecError::new(e.to_string())))?;
        self.outbox
            .send(Bytes::from(frame))
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> Error {
        self.pending
            .lock()
            .closed
            .clone()
            .unwrap_or(Error::Transport(TransportError::Closed))
    }

    /// Send a message that has no reply (incref, decref). Errors are ignored: a closed
    /// connection has released everything on the server already.
    pub(crate) fn send_oneway(&self, request: Request<'_>) {
        let _ = self.enqueue(request);
    }

    /// Send a request built around a fresh id and wait for its reply.
    ///
    /// Cancel safety: dropping the future forgets the call and sends the server a `Cancel`:
    /// a call still running there (an `async` method, for example a blocked `get`) is
    /// stopped. One that already finished is not undone, and its reply is discarded.
    pub(crate) async fn request<'b>(
        &self,
        build: impl FnOnce(RequestId) -> Request<'b>,
    ) -> Result<OwnedReply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.pending.lock();
            if let Some(e) = &state.closed {
                return Err(e.clone());
            }
            state.calls.insert(id, tx);
        }
        let guard = WaiterGuard { conn: self, id };
        self.enqueue(build(id))?;
        let reply = rx.await;
        std::mem::forget(guard);
        reply.unwrap_or_else(|_| Err(self.closed_error()))
    }
}

async fn write_loop(
    mut writer: Writer,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    pending: Arc<Pending>,
) {
    while let Some(frame) = frames.recv().await {
        let mut result = writer.feed(frame).await;
        while result.is_ok() {
            match frames.try_recv() {
                Ok(frame) => result = writer.feed(frame).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(SinkExt::<Bytes>::flush(&mut writer).await) {
            pending.close(Error::Transport(e.into()));
            return;
        }
    }
}

async fn read_loop(mut reader: Reader, pending: Arc<Pending>) {
    let error = loop {
        let frame = match reader.next().await {
            Some(Ok(frame)) => frame.freeze(),
            Some(Err(e)) => break TransportError::from(e),
            None => break TransportError::Closed,
        };
        let ServerMessage::V1(response) = match wire::decode::<ServerMessage<'_>>(&frame) {
            Ok(m) => m,
            Err(e) => break TransportError::Protocol(format!("undecodable reply: {e}")),
        };
        let result = response
            .result
            .map(|r| OwnedReply::from_frame(r, &frame))
            .map_err(Error::Remote);
        let waiter = pending.lock().calls.remove(&response.id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(result);
        }
    };
    pending.close(Error::Transport(error));
}
