//! One authenticated client connection on the server: read requests, dispatch, reply.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use manager_core::ledger::Owner;
use manager_core::wire::{
    self, ClientMessage, Reply, Request, RequestId, Response, Resume, ServerMessage, Session,
    SessionId,
};
use manager_core::{CallResult, Codec, ObjectId, RemoteError, Returned, Token};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::caller::{Caller, ConnId};
use super::effects::{self, Calls, Undo};
use super::objects::{Args, Dispatch, Erased, ObjectCache, Refused};
use super::sessions;
use super::state::ServerState;
use crate::auth;
use crate::client::handoff::AdoptContext;
use crate::transport::{self, frame_codec, FrameBuf, FrameError, FrameReader, SocketWriter};
use crate::TransportError;

/// Replies queued beyond which the read loop writes them before going on.
const FLUSH_AT: usize = 64 * 1024;

/// Requests served back to back between two checks for cancellation.
const CANCEL_CHECK_EVERY: u32 = 64;

/// How long a connection ended by bad input may take to write the replies before it.
const LAST_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// Serve one accepted connection until it closes or the server shuts down.
pub(crate) async fn run(
    state: Arc<ServerState>,
    stream: transport::Stream,
    peer: String,
    slot: super::admission::Slot,
) {
    let max = state.limits.max_frame;
    let python = state.limits.python_clients;
    // TLS first, if required, then the authkey handshake: both within the handshake
    // timeout.
    let handshake = async {
        let (read, write) = stream.accept_tls(state.tls.as_ref()).await?;
        let mut reader = FramedRead::new(read, frame_codec(max));
        let mut writer = FramedWrite::new(write, frame_codec(max));
        auth::accept(&mut reader, &mut writer, &state.authkey, max, python).await?;
        Ok::<_, crate::Error>((reader, writer))
    };
    let handshake = tokio::time::timeout(state.limits.handshake_timeout, handshake);
    let outcome = tokio::select! {
        outcome = handshake => outcome,
        // A newer connection took this slot over (logged where it did).
        () = slot.evicted.cancelled() => return,
    };
    drop(slot);
    let (reader, writer) = match outcome {
        Err(_) => {
            if let Some(suppressed) = state.warnings.handshake.check() {
                warn!(%peer, suppressed, "handshake timed out; closing connection");
            }
            return;
        }
        Ok(Err(e)) => {
            if let Some(suppressed) = state.warnings.handshake.check() {
                match e {
                    crate::Error::Transport(TransportError::Tls(e)) => {
                        warn!(%peer, error = %e, suppressed, "TLS handshake failed; closing connection")
                    }
                    e => {
                        warn!(%peer, error = %e, suppressed, "authentication failed; closing connection")
                    }
                }
            }
            return;
        }
        Ok(Ok(framed)) => {
            debug!(%peer, "client authenticated");
            framed
        }
    };

    let _open = state.stats.opened();
    let mut reader = FrameReader::new(reader, max).with_timeouts(
        state.limits.stalled_frame_timeout,
        state.limits.idle_timeout,
    );
    if python {
        // A CPython client's first frame is a pickle: it starts with PROTO.
        writer.get_ref().quickack();
        match reader.peek_payload_byte().await {
            Ok(Some(super::python::PROTO)) => {
                super::python::serve(state, reader, writer.into_inner(), peer).await;
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    let id = state.next_connection_id();
    state.hooks.opened(id);
    state.objects.open_connection(id);
    let mut conn = Connection {
        id,
        state: state.clone(),
        out: Arc::new(Outbox {
            buf: std::sync::Mutex::new(Vec::new()),
            socket: writer.into_inner(),
        }),
        codec: Codec::Postcard,
        cancel: state.cancel.child_token(),
        in_flight: Arc::new(Semaphore::new(state.limits.max_calls_in_flight)),
        running: Arc::default(),
        context: state.adopt_context(),
        caller: Caller {
            connection: Some(id),
            hooks: Arc::downgrade(&state.hooks),
        },
        replies: Vec::new(),
        cache: ObjectCache::default(),
        untaken_overflow: false,
        session: None,
        served: false,
        released_elsewhere: false,
        counts: Default::default(),
        refused_types: Default::default(),
    };
    let outcome = conn.read_loop(&mut reader).await;
    match &outcome {
        Ok(()) => debug!(%peer, "client disconnected"),
        Err(TransportError::Closed) => debug!(%peer, "client closed the connection"),
        Err(e) => {
            if let Some(suppressed) = state.warnings.bad_input.check() {
                warn!(%peer, error = %e, suppressed, "closing connection");
            }
        }
    }
    // `conn` is closed when dropped here, and also if `read_loop` panicked.
    drop(conn);
}

fn lock_running(running: &std::sync::Mutex<Calls>) -> std::sync::MutexGuard<'_, Calls> {
    running.lock().unwrap_or_else(|e| e.into_inner())
}

/// Append one reply frame to `buf`, at most `max` bytes: a larger result is replaced by an
/// error for that one request (the client could not read the frame; the connection is
/// fine).
fn push_reply(
    buf: &mut impl FrameBuf,
    id: RequestId,
    result: Result<Reply<'_>, RemoteError>,
    max: usize,
) -> bool {
    let message = ServerMessage::V1(Response { id, result });
    let error = match transport::push_frame(buf, &message, max) {
        Ok(()) => return true,
        Err(FrameError::TooLarge(len)) => RemoteError::Encode {
            method: "<reply>".into(),
            reason: format!(
                "the reply of {len} bytes exceeds the maximum frame length of {max} bytes"
            ),
        },
        Err(FrameError::Encode(e)) => {
            // Only a bug can get here; tell the caller rather than leave it waiting.
            warn!(error = %e, "could not encode a reply");
            RemoteError::Protocol("reply could not be encoded".into())
        }
    };
    let message = ServerMessage::V1(Response {
        id,
        result: Err(error),
    });
    if let Err(e) = transport::push_frame(buf, &message, max) {
        warn!(error = ?e, "could not encode an error reply");
    }
    false
}

/// Reply frames waiting to be written, shared by the read loop and the connection's spawned
/// calls. Whoever queues a frame writes it (without a task hop: a non-blocking write,
/// then waiting for the socket only if it is full). Frames go in whole, under the lock,
/// so they never interleave.
struct Outbox {
    buf: std::sync::Mutex<Vec<u8>>,
    socket: SocketWriter,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append with `f`; returns how much is queued now.
    fn append(&self, f: impl FnOnce(&mut Vec<u8>)) -> usize {
        let mut buf = self.lock();
        f(&mut buf);
        buf.len()
    }

    /// Write everything queued (including what others queue meanwhile).
    async fn flush(&self) -> std::io::Result<()> {
        loop {
            {
                let mut buf = self.lock();
                while !buf.is_empty() {
                    match self.socket.try_write(&buf) {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            buf.drain(..n);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                if buf.is_empty() && !self.socket.backlogged() {
                    return Ok(());
                }
            }
            self.socket.writable().await?;
        }
    }
}

/// A request that may wait (see `Connection::start`): its task makes the reply frame, and
/// returns the undo of the call's effect, if it has one.
struct Spawned {
    id: RequestId,
    task: Pin<Box<dyn Future<Output = Finished> + Send>>,
    /// When the caller stops waiting (`Request::CallWithin`), and its timeout in ms.
    deadline: Option<(tokio::time::Instant, u64)>,
    /// The typeid (its index) and method a failure is counted against, for a call.
    counted: Option<(usize, Box<str>)>,
}

/// A finished call: its reply frame, and the undo of its effect if it has one.
type Finished = (Vec<u8>, Option<Undo>);

/// The undo of a call that succeeded, to keep; that of one that failed runs at once.
fn keep_if_ok(result: &CallResult, undo: Option<Undo>) -> Option<Undo> {
    match (result, undo) {
        (Ok(_), undo) => undo,
        (Err(_), Some(undo)) => {
            effects::run(undo);
            None
        }
        (Err(_), None) => None,
    }
}

/// `undo` if its reply went out as an effect, to keep; else (the reply could not be
/// written whole, so the caller gets an error) it runs at once.
fn kept_if_sent(undo: Option<Undo>, sent: bool) -> Option<Undo> {
    match (undo, sent) {
        (Some(undo), false) => {
            effects::run(undo);
            None
        }
        (undo, _) => undo,
    }
}

struct Connection {
    state: Arc<ServerState>,
    /// This connection's number: it holds references as `Owner::Connection(id)`.
    id: ConnId,
    /// Where replies go to be written. The read loop queues the replies of plain calls in
    /// `replies` and moves them here once it has served every request read, so pipelined
    /// replies share system calls; spawned calls queue and write their own. A client that
    /// stops reading stalls its own connection only.
    out: Arc<Outbox>,
    /// The payload format of this connection.
    codec: Codec,
    /// Cancelled when the connection closes or the server shuts down: stops its calls.
    cancel: CancellationToken,
    /// Bounds the calls of this connection waiting on their own tasks; a call that would
    /// wait beyond it is refused with `Busy` (the read loop never waits for a slot).
    in_flight: Arc<Semaphore>,
    /// The calls running on their own tasks, so a `Cancel` can stop one, and the effects
    /// of finished calls the client has not taken yet, so a `Cancel` (or the connection
    /// closing) can undo them.
    running: Arc<std::sync::Mutex<Calls>>,
    /// Where proxies in this connection's arguments are adopted: the server's objects.
    context: AdoptContext,
    /// This connection, as the caller of the methods it calls.
    caller: Caller,
    /// Replies of the requests read so far, not in the outbox yet (queued without a lock;
    /// moved to the outbox when the read loop flushes).
    replies: Vec<u8>,
    /// The object last called.
    cache: ObjectCache,
    /// Set when the client leaves more effects untaken than it may (see `keep`).
    untaken_overflow: bool,
    /// The session this connection has (`Request::Hello`), and which of its connections
    /// this is, when sessions can be resumed (`ServerBuilder::session_grace`).
    session: Option<(SessionId, u64)>,
    /// Whether a request other than `Hello` was served: a session is started or resumed
    /// only by the first request.
    served: bool,
    /// Set when this connection's session was taken over by another before its `Goodbye`.
    released_elsewhere: bool,
    /// Calls counted since they were added to the server's statistics.
    counts: super::stats::Counts,
    /// Typeids (by index) whose calls this connection's client would mis-encode: it
    /// declared them otherwise (`Request::ExpectSchema`).
    refused_types: rustc_hash::FxHashMap<usize, RemoteError>,
}

/// `spawned` with a deadline `timeout_ms` from now, if it waits (a call that does not is
/// answered before its deadline could pass).
fn with_deadline(spawned: Option<Spawned>, timeout_ms: Option<u64>) -> Option<Spawned> {
    let Some(timeout_ms) = timeout_ms else {
        return spawned;
    };
    let deadline =
        tokio::time::Instant::now().checked_add(std::time::Duration::from_millis(timeout_ms));
    spawned.map(|s| Spawned {
        deadline: deadline.map(|d| (d, timeout_ms)),
        ..s
    })
}

/// Turn a call's result into a reply frame appended to `buf`: a value, or a new object
/// held by `holder`.
/// A call's span (target `managers::call`, level `debug`: typeid, object, method,
/// connection), with its start, when that level is enabled; its end is an event in the
/// span with the outcome and the duration. Nothing is measured otherwise.
struct Traced {
    span: tracing::Span,
    start: std::time::Instant,
}

impl Traced {
    fn start(
        typeid: &dyn std::fmt::Display,
        object: ObjectId,
        method: &str,
        connection: ConnId,
    ) -> Option<Self> {
        let span = tracing::debug_span!(
            target: "managers::call",
            "call",
            typeid = %typeid,
            object = %object,
            method,
            connection,
        );
        (!span.is_disabled()).then(|| Traced {
            span,
            start: std::time::Instant::now(),
        })
    }

    fn finish(traced: Option<Self>, result: &CallResult) {
        let Some(traced) = traced else { return };
        let _entered = traced.span.enter();
        let micros = u64::try_from(traced.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        match result {
            Ok(_) => debug!(target: "managers::call", micros, outcome = "ok", "call done"),
            Err(e) => debug!(
                target: "managers::call",
                micros,
                outcome = "error",
                error = %e,
                "call done"
            ),
        }
    }
}

fn reply_to(
    state: &ServerState,
    holder: Owner,
    id: RequestId,
    result: CallResult,
    effect: bool,
    buf: &mut impl FrameBuf,
) -> bool {
    let max = state.limits.max_frame;
    match result {
        Ok(Returned::Value(bytes)) if effect => {
            return push_reply(buf, id, Ok(Reply::Effect(&bytes)), max);
        }
        Ok(Returned::Value(bytes)) => {
            push_reply(buf, id, Ok(Reply::Value(&bytes)), max);
        }
        Ok(Returned::Object { typeid, object }) => match object.downcast::<Erased>() {
            Ok(erased) => {
                let object_id = state.objects.insert(typeid, erased.0, holder);
                let token = Token {
                    typeid: typeid.to_owned(),
                    address: state.address.clone(),
                    id: object_id,
                    epoch: state.epoch,
                };
                push_reply(buf, id, Ok(Reply::Created(token)), max);
            }
            Err(_) => {
                let foreign = RemoteError::Protocol("a method returned a foreign object".into());
                push_reply(buf, id, Err(foreign), max);
            }
        },
        Err(e) => {
            push_reply(buf, id, Err(e), max);
        }
    }
    false
}

impl Connection {
    fn holder(&self) -> Owner {
        Owner::Connection(self.id)
    }

    async fn read_loop(&mut self, reader: &mut FrameReader) -> Result<(), TransportError> {
        let outcome = self.serve(reader).await;
        if let Err(TransportError::FrameTooLarge | TransportError::Protocol(_)) = &outcome {
            // Bad input ends the connection, but the replies of the requests before it
            // still go out (best effort: the client may not be reading).
            let _ = tokio::time::timeout(LAST_FLUSH, self.flush()).await;
        }
        outcome
    }

    async fn serve(&mut self, reader: &mut FrameReader) -> Result<(), TransportError> {
        // One registration for the whole connection, polled only when no request is
        // buffered (`biased`): requests already read are served first.
        let cancel = self.cancel.clone();
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        let mut served = 0u32;
        loop {
            if let Some(idle) = self.state.limits.idle_timeout {
                // A client waiting for its calls is not idle.
                let waiting = lock_running(&self.running).any_running();
                reader.set_idle((!waiting).then_some(idle));
            }
            let batch = tokio::select! {
                biased;
                batch = reader.next_batch() => batch?,
                () = &mut cancelled => return Ok(()),
            };
            let Some(batch) = batch else {
                return Ok(());
            };
            for frame in transport::frames(&batch) {
                if let Some(spawned) = self.handle(&batch, frame)? {
                    self.start(spawned);
                }
                if self.untaken_overflow {
                    return Err(TransportError::Protocol(
                        "too many results not acknowledged".into(),
                    ));
                }
                if self.replies.len() >= FLUSH_AT {
                    // A large backlog is written before the loop goes on (backpressure on
                    // a client that does not read).
                    self.flush().await?;
                }
                // A client that never lets the socket run dry still sees cancellation
                // (checked every so often: the check takes a lock).
                served = served.wrapping_add(1);
                if served % CANCEL_CHECK_EVERY == 0 && cancel.is_cancelled() {
                    return Ok(());
                }
            }
            // Every request read is served: the replies go out together.
            self.flush().await?;
        }
    }

    /// Write what is queued, waiting for the socket as needed (but not past the end of the
    /// connection: a client that does not read cannot hold up the server's shutdown).
    async fn flush(&mut self) -> Result<(), TransportError> {
        // The calls answered are counted before their replies go out.
        self.state.stats.merge(&mut self.counts);
        if !self.replies.is_empty() {
            let mut out = self.out.lock();
            if out.is_empty() {
                // The usual case: hand the buffer over (and take back the empty one).
                std::mem::swap(&mut *out, &mut self.replies);
            } else {
                out.extend_from_slice(&self.replies);
                self.replies.clear();
            }
        }
        tokio::select! {
            biased;
            written = self.out.flush() => Ok(written?),
            () = self.cancel.cancelled() => Err(TransportError::Closed),
        }
    }

    /// Keep the undo of call `id`'s effect until its client takes the result. A client
    /// with more effects untaken than it may have hand-offs in flight is not taking its
    /// results: its connection is closed after this request (which undoes them all).
    fn keep(&mut self, id: RequestId, undo: Option<Undo>) {
        let Some(undo) = undo else { return };
        let mut calls = lock_running(&self.running);
        self.untaken_overflow |= calls.untaken() >= self.state.limits.max_pending_handoffs;
        let undo = calls.keep(id, undo);
        drop(calls);
        if let Some(undo) = undo {
            effects::run(undo);
        }
    }

    /// Queue the reply to request `id`.
    fn reply(&mut self, id: RequestId, result: Result<Reply<'_>, RemoteError>) {
        push_reply(&mut self.replies, id, result, self.state.limits.max_frame);
    }

    /// Serve one request, `frame`, a part of `batch`: at once, or by returning the task
    /// that will.
    fn handle(&mut self, batch: &Bytes, frame: &[u8]) -> Result<Option<Spawned>, TransportError> {
        let ClientMessage::V1(request) = wire::decode::<ClientMessage<'_>>(frame)
            .map_err(|e| TransportError::Protocol(format!("undecodable request: {e}")))?;
        let first = !std::mem::replace(&mut self.served, true);
        match request {
            Request::Stats { id } => {
                self.state.stats.merge(&mut self.counts);
                let stats = self.state.stats();
                self.reply(id, Ok(Reply::Stats(stats)));
            }
            Request::Goodbye => {
                // Released as the connection closes, at once.
                if let Some((session, generation)) = self.session.take() {
                    if !self.state.sessions.end(&session, generation) {
                        // Another connection took the session over: not ours to release.
                        self.released_elsewhere = true;
                    }
                }
            }
            Request::Hello { id, resume } => {
                if !first {
                    return Err(TransportError::Protocol(
                        "Hello after the first request".into(),
                    ));
                }
                let session = self.hello(resume);
                self.reply(id, Ok(Reply::Session(session)));
            }
            Request::Call {
                id,
                object,
                method,
                args,
            } => return Ok(self.call(id, object, method, batch, args, None)),
            Request::CallWithin {
                id,
                object,
                method,
                args,
                timeout_ms,
            } => {
                let spawned = self.call(id, object, method, batch, args, None);
                return Ok(with_deadline(spawned, Some(timeout_ms)));
            }
            Request::CallTraced {
                id,
                object,
                method,
                args,
                timeout_ms,
                trace,
            } => {
                let spawned = self.call(id, object, method, batch, args, Some(&trace));
                return Ok(with_deadline(spawned, timeout_ms));
            }
            Request::Create {
                id,
                typeid,
                args,
                expected,
            } => {
                let result = self.create(typeid, args, expected);
                self.reply(id, result.map(Reply::Created));
            }
            Request::Incref { object } => {
                if let Err(refused) = self.state.objects.incref(object, self.holder()) {
                    if let Some(suppressed) = self.state.warnings.refcount.check() {
                        warn!(id = %object, %refused, suppressed, "incref ignored");
                    }
                }
            }
            Request::Decref { object } => match self.state.objects.decref(object, self.holder()) {
                Ok(released) => drop(released),
                Err(e) => {
                    if let Some(suppressed) = self.state.warnings.refcount.check() {
                        warn!(error = %e, suppressed, "decref refused");
                    }
                }
            },
            Request::Hold { object, hold } => {
                let expires = Instant::now() + self.state.limits.hold_timeout;
                let (owner, from) = (self.holder(), Some(self.id));
                let held = self.state.objects.hold(object, hold, expires, owner, from);
                if let Err(refused) = held {
                    if let Some(suppressed) = self.state.warnings.refcount.check() {
                        warn!(id = %object, %refused, suppressed, "hold ignored");
                    }
                }
            }
            Request::Adopt { object, hold } => {
                let expires = Instant::now() + self.state.limits.hold_timeout;
                let adopted =
                    self.state
                        .objects
                        .adopt(object, hold, self.holder(), expires, Some(self.id));
                match adopted {
                    Ok(()) => {}
                    // A hold id names one hand-off of one object, and a client adopts what
                    // it receives: anything else is forged, or a flood.
                    Err(refused @ (Refused::Mismatch | Refused::TooMany)) => {
                        return Err(TransportError::Protocol(format!(
                            "adoption of object {object} refused: {refused}"
                        )));
                    }
                    Err(refused) => {
                        if let Some(suppressed) = self.state.warnings.refcount.check() {
                            warn!(id = %object, %refused, suppressed, "adoption ignored");
                        }
                    }
                }
            }
            Request::Display { id, object } => return Ok(self.display(id, object)),
            Request::Cancel { id } => {
                debug!(id, "call cancelled by the client");
                // Stops it if it runs; undoes its effect if it finished with one untaken.
                let undo = lock_running(&self.running).cancel(id);
                if let Some(undo) = undo {
                    effects::run(undo);
                }
            }
            Request::Ack { id } => {
                let taken = lock_running(&self.running).taken(id);
                drop(taken);
            }
            Request::NumberOfObjects { id } => {
                let n = self.state.objects.len() as u64;
                self.reply(id, Ok(Reply::Count(n)));
            }
            Request::DebugInfo { id } => {
                let rows = self.state.objects.debug_info();
                self.reply(id, Ok(Reply::DebugInfo(rows)));
            }
            Request::Describe { id } => {
                let mut described: Vec<_> =
                    self.state.registry.values().map(|r| r.describe()).collect();
                described.sort_by(|a, b| a.typeid.cmp(&b.typeid));
                self.reply(id, Ok(Reply::Description(described)));
            }
            Request::ExpectSchema { typeid, methods } => {
                // Calls on objects of `typeid` are refused from now on if it differs.
                if let Err(e) = self.state.schema_of(typeid, &methods) {
                    if let Some(index) = self.state.objects.typeid_index(typeid) {
                        self.refused_types.insert(index, e);
                    }
                }
            }
            Request::CheckSchema {
                id,
                typeid,
                methods,
            } => {
                let result = self.state.schema_of(typeid, &methods);
                self.reply(id, result.map(|()| Reply::Value(&[])));
            }
            Request::Shutdown { id } => {
                if self.state.limits.client_shutdown {
                    info!("shutdown requested by a client");
                    self.reply(id, Ok(Reply::Value(&[])));
                    self.state.cancel.cancel();
                } else {
                    self.reply(id, Err(RemoteError::ShutdownNotAllowed));
                }
            }
        }
        Ok(None)
    }

    /// Call `method` with `args` (a part of `batch`): a plain method runs here and its
    /// reply is queued; anything else is returned to be started (see `start`).
    fn call(
        &mut self,
        id: RequestId,
        object: ObjectId,
        method: &str,
        batch: &Bytes,
        args: &[u8],
        trace: Option<&wire::TraceParent>,
    ) -> Option<Spawned> {
        let Some((obj, typeid)) = self.cache.get(&self.state.objects, object) else {
            debug!(id = %object, method, "call on unknown object");
            self.reply(id, Err(RemoteError::UnknownObject { id: object }));
            return None;
        };
        if !self.refused_types.is_empty() {
            if let Some(mismatch) = self.refused_types.get(&typeid.index()) {
                self.reply(id, Err(mismatch.clone()));
                return None;
            }
        }
        let traced = Traced::start(&typeid, object, method, self.id);
        // The caller's span, in its process, is this call's parent.
        #[cfg(feature = "otel")]
        if let (Some(traced), Some(parent)) = (&traced, trace) {
            crate::otel::set_parent(&traced.span, parent);
        }
        #[cfg(not(feature = "otel"))]
        let _ = trace;
        let typeid_index = typeid.index();
        let args = Args {
            frame: batch,
            bytes: args,
        };
        let (dispatch, undo) = effects::collect(|| {
            let _entered = traced.as_ref().map(|t| t.span.enter());
            obj.call(
                typeid,
                method,
                args,
                self.codec,
                &self.context,
                &self.caller,
            )
        });
        match dispatch {
            Dispatch::Ready(result) => {
                Traced::finish(traced, &result);
                self.counts.add(typeid_index, method, 1, result.is_err());
                let undo = keep_if_ok(&result, undo);
                let holder = self.holder();
                let effect = undo.is_some();
                let sent = reply_to(&self.state, holder, id, result, effect, &mut self.replies);
                self.keep(id, kept_if_sent(undo, sent));
                None
            }
            Dispatch::Spawn(task) => {
                self.counts.add(typeid_index, method, 1, false);
                let state = self.state.clone();
                let holder = self.holder();
                let span = traced.as_ref().map(|t| t.span.clone());
                let task = async move {
                    let (result, undo) = effects::collect_async(task).await;
                    Traced::finish(traced, &result);
                    (result, undo)
                };
                let task =
                    tracing::Instrument::instrument(task, span.unwrap_or_else(tracing::Span::none));
                let counted: Box<str> = method.into();
                let failed = (typeid_index, counted.clone());
                let stats_state = self.state.clone();
                Some(Spawned {
                    id,
                    deadline: None,
                    counted: Some((typeid_index, counted)),
                    task: Box::pin(async move {
                        let (result, undo) = task.await;
                        if result.is_err() {
                            stats_state.stats.failed(failed.0, &failed.1);
                        }
                        let undo = keep_if_ok(&result, undo);
                        let mut frame = Vec::new();
                        let sent = reply_to(&state, holder, id, result, undo.is_some(), &mut frame);
                        (frame, kept_if_sent(undo, sent))
                    }),
                })
            }
        }
    }

    fn display(&mut self, id: RequestId, object: ObjectId) -> Option<Spawned> {
        let Some((obj, typeid)) = self.state.objects.get(object) else {
            self.reply(id, Err(RemoteError::UnknownObject { id: object }));
            return None;
        };
        let max = self.state.limits.max_frame;
        let typeid = typeid.name();
        Some(Spawned {
            id,
            deadline: None,
            counted: None,
            task: Box::pin(async move {
                let result = super::objects::display_text(obj, &typeid)
                    .await
                    .map(Reply::Text);
                let mut frame = Vec::new();
                push_reply(&mut frame, id, result, max);
                (frame, None)
            }),
        })
    }

    /// Start a call that may have to wait: poll it once here, as its request is read (a
    /// call that does not wait is answered like a plain one, with no task), and drive it
    /// on its own tokio task only if it waits. The task writes the reply frame it makes;
    /// it is dropped (releasing any lock or wait it holds) if the client cancels the
    /// request or the connection closes first.
    ///
    /// A call that waits while the connection already has `max_calls_in_flight` calls
    /// waiting is dropped at once and answered `Busy`. The read loop never waits for a
    /// slot, so the requests that would finish the waiting calls (a `put` for a blocked
    /// `get`, a `Cancel`, a `Decref`) are always read.
    fn start(&mut self, spawned: Spawned) {
        let Spawned {
            id,
            mut task,
            deadline,
            counted,
        } = spawned;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // Outside this task's cooperative budget, which the socket's reads spend: a call
        // that would not wait must not look as if it did once the budget runs out.
        let mut first = tokio::task::unconstrained(task.as_mut());
        if let std::task::Poll::Ready((frame, undo)) = Pin::new(&mut first).poll(&mut cx) {
            self.keep(id, undo);
            self.replies.extend_from_slice(&frame);
            return;
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            // Dropped where it waits: as if the client had cancelled it there.
            drop(task);
            if let Some((typeid, method)) = &counted {
                self.counts.add(*typeid, method, 0, true);
            }
            let limit = self.state.limits.max_calls_in_flight as u64;
            debug!(
                id,
                limit, "call refused: too many calls waiting on this connection"
            );
            self.reply(id, Err(RemoteError::Busy { limit }));
            return;
        };
        let out = self.out.clone();
        let cancel = self.cancel.child_token();
        lock_running(&self.running).start(id, cancel.clone());
        let running = self.running.clone();
        let max = self.state.limits.max_frame;
        let waiting = self.state.stats.waiting();
        self.state.tracker.spawn(async move {
            let passed = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let finished = tokio::select! {
                // Checked first: a call whose client is gone must not complete (a `get`
                // would take an item nobody receives).
                biased;
                _ = cancel.cancelled() => None,
                finished = task => Some(finished),
                // Withdrawn where it waits, as a `Cancel` would: nothing to undo.
                () = passed => {
                    let timeout_ms = deadline.map_or(0, |(_, ms)| ms);
                    debug!(id, timeout_ms, "call withdrawn at its deadline");
                    if let Some((typeid, method)) = &counted {
                        waiting.0.failed(*typeid, method);
                    }
                    let mut frame = Vec::new();
                    let error = RemoteError::DeadlineExceeded { timeout_ms };
                    push_reply(&mut frame, id, Err(error), max);
                    Some((frame, None))
                }
            };
            let (frame, undo) = finished.unzip();
            // The call no longer waits: its slot is free before its reply goes out (a
            // client that sees the reply may send the next call at once).
            drop(permit);
            drop(waiting);
            // Cancelled as it finished: its effect is undone, and nobody wants the reply.
            let cancelled = lock_running(&running).finish(id, undo.flatten());
            if let Some(undo) = cancelled {
                effects::run(undo);
            } else if let Some(frame) = frame {
                out.append(|buf| buf.extend_from_slice(&frame));
                // A failed write means the client is gone: the read loop will see it. A
                // client that does not read holds this task only until the connection ends.
                tokio::select! {
                    biased;
                    _ = out.flush() => {}
                    () = cancel.cancelled() => {}
                }
            }
        });
    }

    fn create(
        &mut self,
        typeid: &str,
        args: &[u8],
        expected: Option<&str>,
    ) -> Result<Token, RemoteError> {
        let state = &self.state;
        // As called by this connection: proxies among the arguments count against it.
        let id = Caller::scope_sync(&self.caller, || {
            state.create(
                typeid,
                args,
                self.codec,
                expected,
                self.holder(),
                &self.context,
            )
        })?;
        debug!(typeid, %id, "created");
        Ok(Token {
            typeid: typeid.to_owned(),
            address: state.address.clone(),
            id,
            epoch: state.epoch,
        })
    }

    /// Start this connection's session, or resume the one `resume` names (see
    /// `ServerBuilder::session_grace`).
    fn hello(&mut self, resume: Option<Resume>) -> Session {
        let state = self.state.clone();
        let grace = state.limits.session_grace;
        let grace_ms = grace.map_or(0, |g| u64::try_from(g.as_millis()).unwrap_or(u64::MAX));
        let resumable = resume.filter(|r| grace.is_some() && r.epoch == state.epoch);
        if let Some(resume) = resumable {
            if let Some(resumed) = state.sessions.resume(&resume.session, self.cancel.clone()) {
                // This connection acts as the session's from now on: its references,
                // holds and locks are held under that id. Its own fresh id held nothing.
                let fresh = std::mem::replace(&mut self.id, resumed.conn);
                state.release_connection(fresh);
                self.caller.connection = Some(resumed.conn);
                self.cache = ObjectCache::default();
                let released = state.objects.reconcile(resumed.conn, &resume.refs);
                drop(released);
                self.session = Some((resume.session, resumed.generation));
                info!(connection = resumed.conn, "a client resumed its session");
                return Session {
                    id: resume.session,
                    epoch: state.epoch,
                    grace_ms,
                    resumed: true,
                };
            }
        }
        let id = crate::client::handoff::new_hold();
        if grace.is_some() {
            let generation = state.sessions.open(id, self.id, self.cancel.clone());
            self.session = Some((id, generation));
        }
        Session {
            id,
            epoch: state.epoch,
            grace_ms,
            resumed: false,
        }
    }

    /// Stop the connection's calls, undo what its client asked to be undone on disconnect,
    /// and release every reference it still holds.
    /// Cancel what runs, undo what the client never took, release what it held.
    ///
    /// A session that can be resumed keeps what it holds for the grace period instead
    /// (its calls are still stopped, and effects its client never took undone: the client
    /// failed those calls).
    fn close(&mut self) {
        self.state.stats.merge(&mut self.counts);
        self.cancel.cancel();
        // Effects the client never took (a reply on its way when it died) are undone first.
        let untaken = lock_running(&self.running).close();
        untaken.into_iter().for_each(effects::run);
        if let Some((session, generation)) = self.session {
            let grace = self.state.limits.session_grace;
            let sessions = self.state.sessions.clone();
            let state = Arc::downgrade(&self.state);
            let release = move |conn| {
                if let Some(state) = state.upgrade() {
                    state.release_connection(conn);
                }
            };
            let (cancel, tracker) = (&self.state.cancel, &self.state.tracker);
            match sessions.close(&session, generation, grace, cancel, tracker, release) {
                sessions::OnClose::TakenOver | sessions::OnClose::Parked => return,
                sessions::OnClose::Release => {}
            }
        }
        if !self.released_elsewhere {
            self.state.release_connection(self.id);
        }
    }
}

impl Drop for Connection {
    /// A connection closes exactly once, when its task drops it: normally at the end of
    /// [`run`], and while unwinding if anything on its read path panicked, so that a bug
    /// never leaves a dead client's locks held or its objects alive.
    fn drop(&mut self) {
        self.close();
    }
}
