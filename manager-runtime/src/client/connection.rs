//! The client side of one authenticated connection: callers write their own requests, a
//! reader task hands each reply to its caller through the table of calls waiting for
//! one, and a writer task finishes what the socket did not take at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use manager_core::wire::{
    self, ClientMessage, ObjectInfo, Reply, Request, RequestId, ServerMessage,
};
use manager_core::{Address, Codec, Token};
use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::auth::{self, AuthKey, Reader};
use crate::transport::{self, frame_codec, SocketWriter};
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
/// the writer task then writes what is still queued (decrefs included) and closes the
/// socket.
pub(crate) struct Connection {
    address: Address,
    /// The address the server names itself by in tokens, learned from the first token.
    server_address: OnceLock<Address>,
    codec: Codec,
    /// Where requests are written. Callers write their own frames, without a task hop;
    /// proxy `Clone` and `Drop` enqueue their incref/decref synchronously and in order with
    /// calls. Every call waits for its reply, so frames cannot pile up faster than the
    /// callers' own concurrency.
    output: Arc<Output>,
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
        // The writer task writes what the socket did not take yet, then closes it.
        self.output.shutdown();
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
        let pending = Arc::new(Pending::default());
        let output = Arc::new(Output {
            state: Mutex::new(Outgoing::default()),
            socket: writer.into_inner(),
            wake: Notify::new(),
            max_frame: options.max_frame,
        });
        tokio::spawn(write_task(output.clone(), pending.clone()));
        let reader =
            tokio::spawn(read_loop(reader, pending.clone(), output.clone())).abort_handle();
        Ok(Self {
            address,
            server_address: OnceLock::new(),
            codec: Codec::Postcard,
            output,
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

    /// Whether the server's own address is known (from a token it sent).
    pub(crate) fn knows_server_address(&self) -> bool {
        self.server_address.get().is_some()
    }

    /// Whether this connection leads to the manager known as `address`.
    pub(crate) fn serves(&self, address: &Address) -> bool {
        self.address == *address || self.server_address.get() == Some(address)
    }

    /// Whether the connection still works.
    pub(crate) fn is_open(&self) -> bool {
        self.pending.lock().closed.is_none()
    }

    /// Add a request to the output; `Ok(true)` when this caller must now write it
    /// ([`Connection::write`]), because nobody else is about to.
    fn enqueue(&self, request: Request<'_>) -> Result<bool> {
        if let Some(e) = &self.pending.lock().closed {
            return Err(e.clone());
        }
        self.output.push(&ClientMessage::V1(request))
    }

    /// Write what is queued, as far as the socket takes it now; the writer task does the
    /// rest. A failed socket fails every pending call.
    fn write(&self) {
        if let Err(e) = self.output.write_now() {
            self.pending.close(Error::Transport(e.into()));
        }
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
        if let Ok(true) = self.enqueue(request) {
            self.write();
        }
    }

    /// A request id never used before on this connection.
    pub(crate) fn fresh_id(&self) -> RequestId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
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
        let id = self.fresh_id();
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.pending.lock();
            if let Some(e) = &state.closed {
                return Err(e.clone());
            }
            state.calls.insert(id, tx);
        }
        let guard = WaiterGuard { conn: self, id };
        match self.enqueue(build(id)) {
            // This call writes. While other calls are in flight (pipelining), it first lets
            // the caller's other futures queue their frames (one system call for all). The
            // writer task is woken too, so a future kept but not polled after the yield
            // never stalls the connection: whoever comes first writes everything.
            Ok(true) if self.pending.lock().calls.len() > 1 => {
                self.output.wake.notify_one();
                tokio::task::yield_now().await;
                self.write();
            }
            Ok(true) => self.write(),
            Ok(false) => {}
            Err(e) => {
                // Never sent: nothing to cancel on the server.
                self.pending.lock().calls.remove(&id);
                std::mem::forget(guard);
                return Err(e);
            }
        }
        let reply = rx.await;
        std::mem::forget(guard);
        reply.unwrap_or_else(|_| Err(self.closed_error()))
    }
}

/// Appends encoded bytes to a buffer it borrows (so a failed encode loses nothing else).
struct Append<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<'a> Extend<&'a u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = &'a u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Frames waiting to be written.
#[derive(Default)]
struct Outgoing {
    /// Length-prefixed frames, in order.
    buf: Vec<u8>,
    /// Someone (a caller, or the writer task) has undertaken to write `buf`.
    scheduled: bool,
    /// The connection was dropped: the writer task writes what is left and stops.
    shutdown: bool,
}

/// The write side of a connection, shared by callers and the writer task.
struct Output {
    state: Mutex<Outgoing>,
    socket: SocketWriter,
    /// Wakes the writer task: the socket was full, or the connection was dropped.
    wake: Notify,
    max_frame: usize,
}

/// What [`Output::write_now`] achieved.
enum Written {
    /// Everything queued was written.
    All,
    /// The socket is full; the rest waits for the writer task.
    Blocked,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, Outgoing> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append one frame; true when the caller must now write, because nobody else is about to.
    fn push(&self, message: &ClientMessage<'_>) -> Result<bool> {
        let mut state = self.lock();
        let start = state.buf.len();
        state.buf.extend_from_slice(&[0; 4]);
        if let Err(e) = wire::encode_into(message, Append(&mut state.buf)) {
            state.buf.truncate(start);
            return Err(Error::Codec(manager_core::CodecError::new(e.to_string())));
        }
        let buf = &mut state.buf;
        let len = buf.len() - start - 4;
        if len > self.max_frame {
            buf.truncate(start);
            // The connection is fine: only this request is refused.
            return Err(Error::Codec(manager_core::CodecError::new(format!(
                "a request of {len} bytes exceeds the maximum frame length of {} bytes",
                self.max_frame
            ))));
        }
        buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(!std::mem::replace(&mut state.scheduled, true))
    }

    /// Write as much as the socket takes right now, without waiting.
    fn try_flush(&self) -> std::io::Result<Written> {
        let mut state = self.lock();
        while !state.buf.is_empty() {
            match self.socket.try_write(&state.buf) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    state.buf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok(Written::Blocked)
                }
                Err(e) => return Err(e),
            }
        }
        state.scheduled = false;
        Ok(Written::All)
    }

    /// A caller's write: what the socket does not take now goes to the writer task.
    fn write_now(&self) -> std::io::Result<()> {
        if let Written::Blocked = self.try_flush()? {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_one();
    }
}

/// Writes what callers could not (the socket was full), and what is left when the
/// connection is dropped; then closes the socket by dropping it.
async fn write_task(output: Arc<Output>, pending: Arc<Pending>) {
    loop {
        output.wake.notified().await;
        // Give a pipelining caller, which is about to write the same frames with its
        // siblings', the first chance; this task is the fallback.
        tokio::task::yield_now().await;
        loop {
            match output.try_flush() {
                Ok(Written::All) => break,
                Ok(Written::Blocked) => {
                    if let Err(e) = output.socket.writable().await {
                        pending.close(Error::Transport(e.into()));
                        return;
                    }
                }
                Err(e) => {
                    pending.close(Error::Transport(e.into()));
                    return;
                }
            }
        }
        if output.lock().shutdown {
            return;
        }
    }
}

async fn read_loop(mut reader: Reader, pending: Arc<Pending>, output: Arc<Output>) {
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
        match (waiter, result) {
            (Some(waiter), result) => {
                let _ = waiter.send(result);
            }
            // A new object for a call nobody waits for any more (a dropped future, a
            // detached call): release the reference it carries.
            (None, Ok(OwnedReply::Created(token))) => {
                let decref = ClientMessage::V1(Request::Decref { object: token.id });
                if let Ok(true) = output.push(&decref) {
                    let _ = output.write_now();
                }
            }
            (None, _) => {}
        }
    };
    pending.close(Error::Transport(error));
}
