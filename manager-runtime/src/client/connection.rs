//! The client side of one authenticated connection.
//!
//! Callers queue their own requests; a reader task delivers each reply to the slot of
//! the call that waits for it; a writer task writes what callers leave to it.
//!
//! Writes are batched so that pipelined calls share system calls, without a caller ever
//! holding a duty to write for others that it might not carry out (a future can be kept
//! and never polled again). Who writes is decided by [`WriteSchedule`] (`core.rs`):
//! - a call made inside a tokio task leaves its frame to the writer task, which runs when
//!   the caller's task yields (or at once on another worker), so the frames the task
//!   queued meanwhile go out in one write; the writer task always runs, so nothing it was
//!   woken for is stranded;
//! - a call made outside a task (`block_on`) yields once and then writes whatever is
//!   queued, so the other futures polled by the same `block_on` queue their frames first
//!   (for 64 calls in a `FuturesUnordered`: one write for all). It never writes for others
//!   by duty: a call kept and never polled again leaves only its own frame unwritten, and
//!   any later write on the connection takes it along;
//! - a `Pipeline` stashes the calls pushed onto it, encoded, in the connection's
//!   [`Stash`] (a lock of its own, which the reader task never takes), and queues and
//!   writes them all at once when it is next polled. Any other request on the connection
//!   queues the stash first, so calls keep the order they were made in, across pipelines
//!   too; the pipeline still writes at its next poll, whoever queued its calls. A pipeline
//!   never polled again leaves its calls stashed until another request on the connection,
//!   or its own drop, queues them.
//!
//! No timer and no watch are involved. Designs tried and measured against this one:
//! `docs/design.md` and `docs/performance.md`.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use manager_core::wire::{self, ClientMessage, Request, RequestId, ServerMessage};
use manager_core::{Address, Codec, ObjectId, Token};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::core::{Delivered, Forgotten, Push, Requests, Taken, WriteSchedule};
use super::link::{ConnectionState, LostReason, SessionLink};
use super::options::ConnectOptions;
use super::ordered::{Level, Ordered, OrderedGuard};
use super::reply::OwnedReply;
use crate::auth::{self, AuthKey};
use crate::transport::{self, frame_codec, FrameError, FrameReader, SocketWriter};
use crate::{Error, Result, TransportError};

/// Each method's name and fingerprint, as the server compares them.
fn fingerprints(methods: &[manager_core::MethodInfo]) -> Vec<(String, u64)> {
    methods
        .iter()
        .map(|m| {
            (
                m.name.to_owned(),
                manager_core::describe::method_fingerprint(m),
            )
        })
        .collect()
}

/// The most replies the reader delivers in one batch.
const MAX_BATCH: usize = 256;

/// What the reader task and the callers share: the calls in flight ([`Requests`]). Lock
/// order ([`Level`], checked in debug builds): the stash, this, then [`Output`].
struct Pending {
    state: Ordered<Requests>,
}

impl Pending {
    fn new(requests: Requests) -> Self {
        Pending {
            state: Ordered::new(Level::Pending, requests),
        }
    }

    fn lock(&self) -> OrderedGuard<'_, Requests> {
        self.state.lock()
    }

    /// Fail every waiting call, and all later ones, with `error`.
    fn close(&self, error: Error) {
        let wakers = {
            let mut state = self.lock();
            state.close(error)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A request queued on a connection, its reply not taken yet. Dropped before the reply
/// is taken, it forgets the call and, unless the reply already came, tells the server to
/// stop it.
pub(crate) struct Started<'a> {
    conn: &'a Connection,
    id: RequestId,
    /// What this call must still do for the write of its frame (see [`Push`]).
    duty: Push,
    /// The reply was taken.
    done: bool,
    /// The waker of the poll that queued the call is in its slot: that poll need not look
    /// for the reply.
    registered: bool,
}

impl<'a> Started<'a> {
    /// A call just queued (or stashed) on `conn` under `id`; `duty`: what it must do for
    /// the write of its frame; `registered`: its slot holds the waker of the poll that
    /// queued it.
    fn new(conn: &'a Connection, id: RequestId, duty: Push, registered: bool) -> Self {
        Started {
            conn,
            id,
            duty,
            done: false,
            registered,
        }
    }
}

impl Started<'_> {
    /// Wait for the reply. Cancel safety: see [`Connection::request`].
    pub(crate) async fn reply(mut self) -> Result<OwnedReply> {
        poll_fn(|cx| self.poll_reply(cx)).await
    }

    /// Poll for the reply, seeing first to the write of what is queued if this call must.
    /// After `Ready` it must not be polled again.
    pub(crate) fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<OwnedReply>> {
        let conn = self.conn;
        match self.duty {
            Push::Nothing => {}
            Push::YieldThenWrite => {
                // Outside a task (`block_on`): let the other futures polled with this one
                // queue their frames first; the next poll (or the drop) writes.
                self.duty = Push::WriteNow;
                // The next poll may come with another waker: it looks for the reply.
                self.registered = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            duty => {
                self.duty = Push::Nothing;
                conn.discharge(duty);
            }
        }
        if std::mem::take(&mut self.registered) {
            return Poll::Pending;
        }
        let reply = ready!(conn.poll_reply(self.id, cx));
        self.done = true;
        Poll::Ready(reply)
    }

    /// For a caller that queues more calls before it waits for any: true when this call
    /// must write its frame itself ([`Push::WriteNow`], [`Push::YieldThenWrite`]); the
    /// caller must then call [`Connection::write`] before it waits. A frame that is the
    /// writer task's has it woken now.
    pub(crate) fn defer_write(&mut self) -> bool {
        match std::mem::replace(&mut self.duty, Push::Nothing) {
            Push::Nothing => false,
            Push::WakeWriter => {
                self.conn.output.wake_writer();
                false
            }
            Push::WriteNow | Push::YieldThenWrite => true,
        }
    }
}

impl<'a> Started<'a> {
    /// For calls whose write was deferred (see [`Started::defer_write`]), all queued on
    /// one connection: take the replies of `calls`, in order, as long as they are
    /// delivered, under one lock. Taken replies are pushed onto `out`; with none taken,
    /// the first call waits for its reply with `cx`'s waker.
    pub(crate) fn take_replies<'s>(
        calls: impl Iterator<Item = &'s mut Started<'a>>,
        cx: &mut Context<'_>,
        out: &mut std::collections::VecDeque<Result<OwnedReply>>,
    ) where
        'a: 's,
    {
        let mut calls = calls.peekable();
        let Some(conn) = calls.peek().map(|c| c.conn) else {
            return;
        };
        let mut state = conn.pending.lock();
        for call in calls {
            debug_assert!(call.duty == Push::Nothing && std::ptr::eq(call.conn, conn));
            call.registered = false;
            match conn.take_reply(&mut state, call.id, out.is_empty().then_some(&mut *cx)) {
                Some(reply) => {
                    call.done = true;
                    out.push_back(reply);
                }
                None => break,
            }
        }
        let room = if out.is_empty() {
            Vec::new()
        } else {
            conn.room_made(&mut state)
        };
        drop(state);
        room.into_iter().for_each(Waker::wake);
    }

    /// The connection this call was queued on.
    pub(crate) fn connection(&self) -> &'a Connection {
        self.conn
    }

    /// The reply taken for this call (by [`Started::take_replies`]) is handed to its
    /// caller: an effect it carries stands.
    pub(crate) fn handed_out(&self, reply: OwnedReply) -> OwnedReply {
        match reply {
            OwnedReply::Effect(value) => {
                self.conn.acknowledge(self.id);
                OwnedReply::Value(value)
            }
            other => other,
        }
    }

    /// The reply taken for this call is dropped unseen: an effect it carries is undone.
    pub(crate) fn never_handed_out(&self, reply: &OwnedReply) {
        if let OwnedReply::Effect(_) = reply {
            self.conn.send_oneway(Request::Cancel { id: self.id });
        }
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let conn = self.conn;
        // Its frame goes out now (it is about to be cancelled, or was answered).
        conn.discharge(self.duty);
        let mut state = conn.pending.lock();
        let forgotten = state.forget(self.id);
        let room = conn.room_made(&mut state);
        match forgotten {
            Forgotten::Delivered(reply) => {
                drop(state);
                room.into_iter().for_each(Waker::wake);
                match reply {
                    // A new object nobody takes: release the reference its reply carried.
                    Ok(OwnedReply::Created(token)) => {
                        // Counted as taken, then released.
                        conn.count_adopted(token.id);
                        conn.send_ref(token.id, -1);
                    }
                    // An effect nobody takes (a lock granted, an item taken): undone.
                    Ok(OwnedReply::Effect(_)) => conn.send_oneway(Request::Cancel { id: self.id }),
                    _ => {}
                }
            }
            Forgotten::Cancel => {
                drop(state);
                room.into_iter().for_each(Waker::wake);
                conn.send_oneway(Request::Cancel { id: self.id });
            }
        }
    }
}

/// What [`Connection::enqueue`] did.
enum Queued {
    /// Queued under this id; what the caller must do for the write of its frame.
    Started(RequestId, Push),
    /// Not queued: the connection has no room for another call now (the caller's waker,
    /// if any, waits for room).
    NoRoom,
}

/// After the queue drained: wake the callers waiting for room.
fn wake_room(pending: &Pending, output: &Output) {
    if !output.room_wanted.load(Ordering::Acquire) {
        return;
    }
    let wakers = {
        let mut state = pending.lock();
        let wakers = state.room_made();
        if !state.room_wanted() {
            output.room_wanted.store(false, Ordering::Release);
        }
        wakers
    };
    wakers.into_iter().for_each(Waker::wake);
}

/// One authenticated connection. Dropped when the last client and proxy using it are gone:
/// the writer task then writes what is still queued (decrefs included) and closes the
/// socket.
pub(crate) struct Connection {
    address: Address,
    /// The address the server names itself by in tokens, learned from the first token.
    server_address: OnceLock<Address>,
    codec: Codec,
    /// Where requests are queued, and written (see the module docs for by whom). Proxy
    /// `Clone` and `Drop` enqueue their incref/decref synchronously and in order with
    /// calls (coalesced while the queue is full). Calls wait for room beyond
    /// `max_calls_in_flight` calls or `max_queued_bytes` bytes.
    output: Arc<Output>,
    pending: Arc<Pending>,
    reader: AbortHandle,
    /// This connection, not counted.
    this: Weak<Connection>,
    /// The typeids whose schema this connection checked (`Client::check_schema`).
    schemas: Mutex<std::collections::HashSet<String>>,
    /// The deadline of calls that set none of their own.
    call_timeout: Option<Duration>,
    /// The session the server gave this connection (`Request::Hello`).
    session: OnceLock<manager_core::wire::Session>,
    /// What this connection shares with the others of its session.
    link: OnceLock<Arc<SessionLink<Connection>>>,
    /// The connection that resumed this one's session after it dropped.
    next: OnceLock<Arc<Connection>>,
    /// Set once `next` resumed the session: this connection's proxies go through it.
    handed_over: AtomicBool,
    /// Set when the connection failed.
    dropped: AtomicBool,
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
        // Done with the session on purpose: the server releases it at once, not after the
        // grace period it keeps for a connection that dropped.
        if self.link().is_some_and(|l| l.resumable()) && !self.has_dropped() {
            self.send_oneway(Request::Goodbye);
        }
        // The writer task writes what the socket did not take yet, then closes it.
        self.output.shutdown();
        self.reader.abort();
        self.pending
            .close(Error::Transport(TransportError::ClosedLocally));
    }
}

impl Connection {
    /// Connect to `address` and authenticate with `key`: a connection without a session
    /// yet (`session.rs` opens or resumes one).
    ///
    /// Cancel safe: dropping it closes the connection being opened.
    pub(crate) async fn connect(
        address: &Address,
        key: &AuthKey,
        options: &ConnectOptions,
    ) -> Result<Arc<Self>> {
        let stream = transport::connect(address).await.map_err(|source| {
            Error::Transport(TransportError::Connect {
                address: address.to_string(),
                source: Arc::new(source),
            })
        })?;
        let (read, write) = stream.connect_tls(options.tls.as_ref(), address).await?;
        let mut reader = FramedRead::new(read, frame_codec(options.max_frame));
        let mut writer = FramedWrite::new(write, frame_codec(options.max_frame));
        auth::connect(&mut reader, &mut writer, key, options.max_frame).await?;
        let pending = Arc::new(Pending::new(Requests::new(options.max_calls_in_flight)));
        let output = Arc::new(Output::new(
            writer.into_inner(),
            options.max_frame,
            options.max_queued_bytes,
            options.max_calls_in_flight,
        ));
        tokio::spawn(write_task(output.clone(), pending.clone()));
        let reader = FrameReader::new(reader, options.max_frame);
        let conn = Arc::new_cyclic(|this: &Weak<Self>| Self {
            reader: {
                let (pending, output, this) = (pending.clone(), output.clone(), this.clone());
                tokio::spawn(async move {
                    read_loop(reader, pending, output).await;
                    if let Some(conn) = this.upgrade() {
                        conn.on_dropped();
                    }
                })
                .abort_handle()
            },
            address: address.clone(),
            server_address: OnceLock::new(),
            codec: Codec::Postcard,
            output,
            pending,
            this: this.clone(),
            schemas: Mutex::default(),
            call_timeout: options.call_timeout,
            session: OnceLock::new(),
            link: OnceLock::new(),
            next: OnceLock::new(),
            handed_over: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
        });
        Ok(conn)
    }

    /// Take `session` on, with what the connections of the session share.
    pub(crate) fn join_session(
        &self,
        link: Arc<SessionLink<Connection>>,
        session: manager_core::wire::Session,
    ) {
        let _ = self.session.set(session);
        let _ = self.link.set(link);
    }

    /// `next` resumed this connection's session: its proxies go on through it.
    pub(crate) fn hand_over(&self, next: Arc<Connection>) {
        if self.next.set(next).is_ok() {
            self.handed_over.store(true, Ordering::Release);
        }
    }

    /// The connection failed (its reader stopped): reconnect to resume the session, if it
    /// can be resumed and this is still its connection.
    fn on_dropped(self: Arc<Self>) {
        self.dropped.store(true, Ordering::Release);
        if let Some(link) = self.link.get() {
            if *link.state().borrow() == ConnectionState::Connected {
                link.dropped(Arc::downgrade(&self));
            }
        }
    }

    /// This connection, counted.
    pub(crate) fn arc(&self) -> Result<Arc<Connection>> {
        self.this
            .upgrade()
            .ok_or(Error::Transport(TransportError::ClosedLocally))
    }

    /// What this connection shares with the others of its session.
    pub(crate) fn link(&self) -> Option<&Arc<SessionLink<Connection>>> {
        self.link.get()
    }

    /// Whether this connection failed.
    pub(crate) fn has_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// The connection this one's proxies use now: itself, or the one that resumed its
    /// session (one atomic load while it is the live one).
    pub(crate) fn current(&self) -> &Connection {
        let mut conn = self;
        while conn.handed_over.load(Ordering::Acquire) {
            match conn.next.get() {
                Some(next) => conn = next,
                None => break,
            }
        }
        conn
    }

    /// The connection to send requests on, waiting for a reconnect under way (unless the
    /// client fails fast).
    pub(crate) async fn routed(&self) -> &Connection {
        loop {
            let conn = self.current();
            match conn.link() {
                Some(link) if conn.has_dropped() && link.reconnecting() && link.waits() => {
                    link.settled().await
                }
                _ => return conn,
            }
        }
    }

    /// A request of a proxy with `token` could not start here, with `error`: `Ok` when it
    /// must wait for a reconnect under way (`waker` is woken when it ends); else the error
    /// to give (the proxy's own if its session is gone).
    pub(crate) fn retry_later(
        &self,
        error: Error,
        waker: Option<&Waker>,
        token: &Token,
    ) -> Result<()> {
        let Some(link) = self.link().filter(|_| self.has_dropped()) else {
            return Err(error);
        };
        match link.lost() {
            // No session to resume: the connection's own error.
            Some(LostReason::Dropped) => return Err(error),
            Some(why) => return Err(why.error_for(token)),
            None => {}
        }
        match waker {
            Some(waker) if link.waits() => {
                if !link.wait(waker) {
                    // The reconnect ended (or is about to start) meanwhile: try again.
                    waker.wake_by_ref();
                }
                Ok(())
            }
            _ => Err(error),
        }
    }

    /// Whether requests on this connection wait for a reconnect under way.
    pub(crate) fn waits_for_reconnect(&self) -> bool {
        self.has_dropped()
            && self
                .link()
                .is_some_and(|link| link.reconnecting() && link.waits())
    }

    /// Count one more reference held through this session (a reply's, taken by a handle),
    /// where references are counted.
    pub(crate) fn count_adopted(&self, object: ObjectId) {
        if let Some(link) = self.link().filter(|l| l.resumable()) {
            drop(link.count(object, 1));
        }
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    /// The deadline of calls that set none of their own.
    pub(crate) fn call_timeout(&self) -> Option<Duration> {
        self.call_timeout
    }

    /// The server instance this connection leads to.
    pub(crate) fn epoch(&self) -> u64 {
        self.session.get().map_or(0, |s| s.epoch)
    }

    /// Check `methods` (this build's idea of the type) against the server's type behind
    /// `typeid`, once per connection and typeid (see `Client::check_schema`).
    pub(crate) async fn check_schema(
        &self,
        typeid: &str,
        methods: &'static [manager_core::MethodInfo],
    ) -> Result<()> {
        if self.schema_checked(typeid) {
            return Ok(());
        }
        let methods = fingerprints(methods);
        let reply = self
            .request(|id| Request::CheckSchema {
                id,
                typeid,
                methods: methods.clone(),
            })
            .await?;
        match reply {
            OwnedReply::Value(_) => {
                self.remember_schema(typeid);
                Ok(())
            }
            other => Err(other.unexpected()),
        }
    }

    /// Tell the server this build's idea of `typeid` (a proxy of it was adopted), once per
    /// connection and typeid: from then on it refuses this connection's calls on objects
    /// of `typeid` if the two differ, before anything is mis-decoded.
    pub(crate) fn expect_schema(&self, typeid: &str, methods: &'static [manager_core::MethodInfo]) {
        if self.schema_checked(typeid) {
            return;
        }
        let methods = fingerprints(methods);
        self.send_oneway(Request::ExpectSchema { typeid, methods });
        self.remember_schema(typeid);
    }

    /// Whether the schema of `typeid` was checked on this connection.
    pub(crate) fn schema_checked(&self, typeid: &str) -> bool {
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(typeid)
    }

    /// The schema of `typeid` was checked and matched.
    pub(crate) fn remember_schema(&self, typeid: &str) {
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(typeid.to_owned());
    }

    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// This connection, not counted (proxies in replies on it are adopted here:
    /// `AdoptContext::Client`).
    pub(crate) fn weak(&self) -> Weak<Connection> {
        self.this.clone()
    }

    /// Remember the address the server gives in its tokens; true if it was not known and
    /// differs from the address dialled (proxies for it that arrive by any route should
    /// then find this connection: `handoff::register`).
    pub(crate) fn learn_server_address(&self, address: &Address) -> bool {
        self.server_address.set(address.clone()).is_ok() && *address != self.address
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
        self.pending.lock().closed().is_none()
    }

    /// Queue a request; `build` gets the request's id. Returns that id and whether this
    /// caller must now see to the write.
    /// `waiter`: `None` for a request without a reply; otherwise its slot is made with
    /// that waker.
    fn enqueue<'b>(
        &self,
        build: impl FnOnce(RequestId) -> Request<'b>,
        waiter: Option<Option<Waker>>,
    ) -> Result<Queued> {
        // Calls stashed by pipelines go first: they were made before this one.
        let stashed = self.output.stashed.load(Ordering::Acquire) && self.queue_stash();
        let mut state = self.pending.lock();
        if let Some(e) = state.closed() {
            return Err(e.clone());
        }
        if let Some(waker) = &waiter {
            // A call: it waits while the connection has no room for it.
            if !state.has_room() || self.output.full() {
                if let Some(waker) = waker {
                    state.wait_for_room(waker);
                    self.output.room_wanted.store(true, Ordering::Release);
                }
                drop(state);
                if stashed {
                    self.write_soon();
                }
                return Ok(Queued::NoRoom);
            }
        }
        let id = self.output.next_id();
        let in_task = tokio::task::try_id().is_some();
        let in_flight = state.len() > 0;
        let duty = match self
            .output
            .push(&ClientMessage::V1(build(id)), in_task, in_flight)
        {
            Ok(duty) => duty,
            Err(e) => {
                drop(state);
                if stashed {
                    // The stashed calls were queued for this request to write.
                    self.write_soon();
                }
                return Err(e);
            }
        };
        if let Some(waker) = waiter {
            state.open(id, waker);
            self.output.in_flight.store(state.len(), Ordering::Relaxed);
        }
        Ok(Queued::Started(id, duty))
    }

    /// Wake the callers waiting for room, if there is room now.
    fn room_made(&self, state: &mut Requests) -> Vec<Waker> {
        self.output.in_flight.store(state.len(), Ordering::Relaxed);
        if !state.room_wanted() || self.output.full() {
            return Vec::new();
        }
        let wakers = state.room_made();
        if !state.room_wanted() {
            self.output.room_wanted.store(false, Ordering::Release);
        }
        wakers
    }

    /// Whether a pipeline may stash one more call: the connection has room for it (read
    /// without the lock of the calls in flight, so about: a pipeline may go a little over
    /// the bound, never far). `stashed`: calls the pipeline stashed and did not queue yet.
    pub(crate) fn has_room_for_stash(&self, stashed: usize) -> bool {
        !self.output.full()
            && self.output.in_flight.load(Ordering::Relaxed) + stashed < self.output.max_in_flight
    }

    /// Stash a request built around a fresh id in this connection's [`Stash`], taking no
    /// lock the reader task takes. It is queued by the next [`Connection::queue_stash`]:
    /// the pipeline's own when it is polled or dropped, or the one any other request on
    /// this connection makes first.
    pub(crate) fn start_stashed<'b>(
        &self,
        build: impl FnOnce(RequestId) -> Request<'b>,
    ) -> Result<Started<'_>> {
        let id = self.output.next_id();
        let mut stash = self.output.stash.lock();
        self.output
            .push_frame(&mut stash.frames, &ClientMessage::V1(build(id)))?;
        stash.ids.push(id);
        if stash.ids.len() == 1 {
            // Set while the stash is locked; cleared, also under its lock, only once the
            // stashed frames are queued.
            self.output.stashed.store(true, Ordering::Release);
        }
        Ok(Started::new(self, id, Push::Nothing, false))
    }

    /// Queue every call stashed on this connection (see [`Connection::start_stashed`]):
    /// their reply slots made and their frames appended, under one lock of each, in the
    /// order they were stashed. Returns whether there were any; the caller then sees to
    /// the write. On a closed connection they are dropped (taking their replies gives the
    /// connection's error).
    pub(crate) fn queue_stash(&self) -> bool {
        // Lock order (checked, see `ordered.rs`): the stash, then `pending`, then the output.
        let mut stash = self.output.stash.lock();
        if stash.ids.is_empty() {
            return false;
        }
        let mut state = self.pending.lock();
        if state.closed().is_none() {
            for &id in &stash.ids {
                state.open(id, None);
            }
            self.output.in_flight.store(state.len(), Ordering::Relaxed);
            let mut out = self.output.lock();
            self.output.queue_refs(&mut out);
            if out.buf.is_empty() {
                std::mem::swap(&mut out.buf, &mut stash.frames);
            } else {
                out.buf.extend_from_slice(&stash.frames);
            }
            self.output.queued.store(out.buf.len(), Ordering::Relaxed);
        }
        stash.ids.clear();
        stash.frames.clear();
        self.output.stashed.store(false, Ordering::Release);
        true
    }

    /// See to the write of what is queued without waiting: inside a tokio task, leave it to
    /// the writer task (it runs once this task yields, and writes everything the task
    /// queued meanwhile); elsewhere, write now.
    fn write_soon(&self) {
        if tokio::task::try_id().is_some() {
            self.output.wake_writer();
        } else {
            self.write();
        }
    }

    /// Carry out a caller's duty for the write of its frame, now, without the yield
    /// (`YieldThenWrite` writes at once).
    fn discharge(&self, duty: Push) {
        match duty {
            Push::Nothing => {}
            Push::WakeWriter => self.output.wake_writer(),
            Push::WriteNow | Push::YieldThenWrite => {
                // Written already if another caller wrote since.
                if self.output.queued.load(Ordering::Relaxed) > 0 {
                    self.write();
                }
            }
        }
    }

    /// Write what is queued, as far as the socket takes it now; the writer task does the
    /// rest. A failed socket fails every pending call.
    pub(crate) fn write(&self) {
        match self.output.write_now() {
            Ok(()) => wake_room(&self.pending, &self.output),
            Err(e) => self.pending.close(Error::Transport(e.into())),
        }
    }

    /// Send a message that has no reply (incref, decref). Errors are ignored: a closed
    /// connection has released everything on the server already.
    pub(crate) fn send_oneway(&self, request: Request<'_>) {
        self.send_unanswered(|_| request);
    }

    /// Send a request built around a fresh id, without waiting for its reply (which is
    /// dropped when it arrives). Errors are ignored, as for [`Connection::send_oneway`].
    pub(crate) fn send_unanswered<'b>(&self, build: impl FnOnce(RequestId) -> Request<'b>) {
        if let Ok(Queued::Started(_, duty)) = self.enqueue(build, None) {
            self.discharge(duty);
        }
    }

    /// Change this connection's references to `object` by one (`Incref`/`Decref` from a
    /// proxy's `Clone`/`Drop`, or a decref of a new object nobody takes). While the queue
    /// is full these are coalesced, per object, and queued once it drains: a proxy's drop
    /// never waits and never grows the queue without bound.
    pub(crate) fn send_ref(&self, object: ObjectId, delta: i8) {
        let Some(link) = self.link().filter(|l| l.resumable()) else {
            return self.send_ref_frame(object, delta);
        };
        // Counted, and queued under the count's lock (see `client/session.rs`).
        let _counted = link.count(object, i64::from(delta));
        let target = self.current();
        if !target.has_dropped() {
            return target.send_ref_frame(object, delta);
        }
        // Reconnecting: behind the resuming `Hello`, or carried by the next one's count.
        if let Some(trying) = link.trying() {
            trying.send_ref_frame(object, delta);
        }
    }

    fn send_ref_frame(&self, object: ObjectId, delta: i8) {
        if self.output.coalesce(object, delta) {
            return;
        }
        self.send_oneway(if delta > 0 {
            Request::Incref { object }
        } else {
            Request::Decref { object }
        });
    }

    /// Send a request built around a fresh id and wait for its reply.
    ///
    /// Cancel safety: dropping the future forgets the call and sends the server a `Cancel`:
    /// a call still running there (an `async` method, for example a blocked `get`) is
    /// stopped. One that already finished is not undone (unless it registered an undo, see
    /// `Caller::undo_unless_taken`), and its reply is discarded.
    pub(crate) async fn request<'b>(
        &self,
        build: impl Fn(RequestId) -> Request<'b>,
    ) -> Result<OwnedReply> {
        // Waits for room first (then the request is queued with this task's waker).
        let started = poll_fn(|cx| match self.start(&build, Some(cx.waker().clone())) {
            Ok(Some(started)) => Poll::Ready(Ok(started)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        })
        .await?;
        started.reply().await
    }

    /// Queue a request built around a fresh id, now; [`Started::reply`] waits for the
    /// reply. The request is queued even if the reply is never awaited (dropping the
    /// [`Started`] cancels it).
    ///
    /// A caller that polls now passes its waker: the first [`Started::poll_reply`] then
    /// need not look for the reply (one that comes wakes it).
    ///
    /// `None` when the connection has no room for another call now (see
    /// `ClientBuilder::max_calls_in_flight`): nothing was queued, and `waker` is woken
    /// once there may be room.
    pub(crate) fn start<'b>(
        &self,
        build: impl FnOnce(RequestId) -> Request<'b>,
        waker: Option<Waker>,
    ) -> Result<Option<Started<'_>>> {
        let registered = waker.is_some();
        match self.enqueue(build, Some(waker))? {
            Queued::Started(id, duty) => Ok(Some(Started::new(self, id, duty, registered))),
            Queued::NoRoom => Ok(None),
        }
    }

    /// Tell the server the effect of call `id` was taken, before its caller can make
    /// another request, and written now if the socket takes it (not left to the writer
    /// task, which a runtime shutting down may never run again).
    pub(crate) fn acknowledge(&self, id: RequestId) {
        if let Ok(Queued::Started(_, duty)) = self.enqueue(|_| Request::Ack { id }, None) {
            if duty != Push::Nothing {
                self.write();
            }
        }
    }

    /// Take the reply of call `id` once it is delivered.
    fn poll_reply(
        &self,
        id: RequestId,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<OwnedReply>> {
        let mut state = self.pending.lock();
        let taken = self.take_reply(&mut state, id, Some(cx));
        let room = if taken.is_some() {
            self.room_made(&mut state)
        } else {
            Vec::new()
        };
        drop(state);
        room.into_iter().for_each(Waker::wake);
        match taken {
            Some(Ok(OwnedReply::Effect(value))) => {
                // Taken by its caller: the effect stands.
                self.acknowledge(id);
                Poll::Ready(Ok(OwnedReply::Value(value)))
            }
            Some(taken) => Poll::Ready(taken),
            None => Poll::Pending,
        }
    }

    /// Under the lock of `pending`: take the reply of call `id` if it is delivered; if
    /// not, leave `cx`'s waker in its slot, if given.
    fn take_reply(
        &self,
        state: &mut Requests,
        id: RequestId,
        cx: Option<&mut std::task::Context<'_>>,
    ) -> Option<Result<OwnedReply>> {
        match state.take(id, cx.map(|cx| cx.waker())) {
            Taken::Pending => None,
            Taken::Ready(reply) => Some(reply),
        }
    }
}

/// Frames waiting to be written, and who writes them.
#[derive(Default)]
struct Outgoing {
    /// Length-prefixed frames, in order.
    buf: Vec<u8>,
    schedule: WriteSchedule,
    /// Reference changes coalesced while the queue was full, by object: queued (before
    /// any later frame) once it drains.
    refs: FxHashMap<ObjectId, i64>,
}

/// The write side of a connection, shared by callers and the writer task.
struct Output {
    state: Ordered<Outgoing>,
    socket: SocketWriter,
    /// Wakes the writer task: frames to write, the socket was full, or the connection was
    /// dropped.
    wake: Notify,
    max_frame: usize,
    /// The id of the next request.
    next_id: AtomicU64,
    /// Calls pipelines made and have not queued yet. Lock order ([`Level`], checked in
    /// debug builds): this, then [`Pending`], then [`Outgoing`].
    stash: Stash,
    /// Whether `stash` holds any calls: checked without its lock by every request.
    stashed: AtomicBool,
    /// About how many bytes `buf` holds (read without the lock).
    queued: AtomicUsize,
    /// The most bytes queued before calls wait for room.
    max_queued: usize,
    /// A caller waits for room: whoever drains the queue wakes it.
    room_wanted: AtomicBool,
    /// Reference changes are coalesced in `Outgoing::refs` (read without the lock).
    refs_pending: AtomicBool,
    /// About how many calls are in flight (read without the lock of [`Pending`]), and the
    /// bound: for pipelines, which stash their calls without that lock.
    in_flight: AtomicUsize,
    max_in_flight: usize,
}

/// Calls [`Pipeline`](crate::Pipeline)s made on one connection and have not queued yet:
/// their frames, encoded with their ids, in the order they were made, and the ids. See
/// [`Connection::start_stashed`] and [`Connection::queue_stash`].
///
/// Aligned to its own cache lines: a pipeline's thread writes it on every push, and the
/// fields next to it in [`Output`] are written by other threads.
#[repr(align(128))]
struct Stash {
    state: Ordered<Stashed>,
}

impl Default for Stash {
    fn default() -> Self {
        Stash {
            state: Ordered::new(Level::Stash, Stashed::default()),
        }
    }
}

#[derive(Default)]
struct Stashed {
    frames: Vec<u8>,
    ids: Vec<RequestId>,
}

impl Stash {
    fn lock(&self) -> OrderedGuard<'_, Stashed> {
        self.state.lock()
    }
}

/// What [`Output::write_now`] achieved.
enum Written {
    /// Everything queued was written.
    All,
    /// The socket is full; the rest waits for the writer task.
    Blocked,
}

impl Output {
    fn new(
        socket: SocketWriter,
        max_frame: usize,
        max_queued: usize,
        max_in_flight: usize,
    ) -> Self {
        Output {
            state: Ordered::new(Level::Output, Outgoing::default()),
            socket,
            wake: Notify::new(),
            max_frame,
            next_id: AtomicU64::new(1),
            stash: Stash::default(),
            stashed: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            max_queued: max_queued.max(1),
            room_wanted: AtomicBool::new(false),
            refs_pending: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Whether the queue is full: calls wait for room, reference changes are coalesced.
    fn full(&self) -> bool {
        self.queued.load(Ordering::Relaxed) >= self.max_queued
    }

    /// While the queue is full (or changes coalesced earlier are still waiting), coalesce
    /// a reference change instead of queueing it; false: queue it as usual.
    fn coalesce(&self, object: ObjectId, delta: i8) -> bool {
        // The common case, checked without the lock: nothing coalesced, room in the queue.
        if !self.refs_pending.load(Ordering::Acquire) && !self.full() {
            return false;
        }
        let mut state = self.lock();
        if state.refs.is_empty() && !self.full() {
            return false;
        }
        let net = state.refs.entry(object).or_insert(0);
        *net += i64::from(delta);
        if *net == 0 {
            state.refs.remove(&object);
        }
        self.refs_pending
            .store(!state.refs.is_empty(), Ordering::Release);
        true
    }

    /// Queue the coalesced reference changes: before any other frame (so that none is
    /// ever reordered after a later request), or once the queue drained.
    fn queue_refs(&self, state: &mut Outgoing) {
        if state.refs.is_empty() {
            return;
        }
        self.refs_pending.store(false, Ordering::Release);
        for (object, net) in std::mem::take(&mut state.refs) {
            let request = if net > 0 {
                Request::Incref { object }
            } else {
                Request::Decref { object }
            };
            for _ in 0..net.unsigned_abs() {
                // A reference change always encodes, and is far below any frame limit.
                let _ = self.push_frame(&mut state.buf, &ClientMessage::V1(request.clone()));
            }
        }
    }

    fn lock(&self) -> OrderedGuard<'_, Outgoing> {
        self.state.lock()
    }

    /// A fresh request id.
    fn next_id(&self) -> RequestId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Append one frame, queued by a caller inside a tokio task (`in_task`) or outside
    /// any, with other calls `in_flight` or none; what that caller must do for its write.
    fn push(&self, message: &ClientMessage<'_>, in_task: bool, in_flight: bool) -> Result<Push> {
        let mut state = self.lock();
        // Reference changes coalesced earlier go before this frame.
        self.queue_refs(&mut state);
        self.push_frame(&mut state.buf, message)?;
        self.queued.store(state.buf.len(), Ordering::Relaxed);
        Ok(state.schedule.push(in_task, in_flight))
    }

    /// Append one frame to `buf`. An error refuses only this request: the connection is
    /// fine.
    fn push_frame(&self, buf: &mut Vec<u8>, message: &ClientMessage<'_>) -> Result<()> {
        transport::push_frame(buf, message, self.max_frame).map_err(|e| {
            Error::Codec(manager_core::CodecError::new(match e {
                FrameError::Encode(e) => e.to_string(),
                FrameError::TooLarge(len) => format!(
                    "a request of {len} bytes exceeds the maximum frame length of {} bytes",
                    self.max_frame
                ),
            }))
        })
    }

    /// Write as much as the socket takes right now, without waiting.
    fn try_flush(&self) -> std::io::Result<Written> {
        let mut state = self.lock();
        loop {
            while !state.buf.is_empty() {
                match self.socket.try_write(&state.buf) {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        state.buf.drain(..n);
                        self.queued.store(state.buf.len(), Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        return Ok(Written::Blocked)
                    }
                    Err(e) => return Err(e),
                }
            }
            // Drained: the reference changes coalesced meanwhile go out too.
            if state.refs.is_empty() {
                break;
            }
            self.queue_refs(&mut state);
        }
        // TLS records the socket did not take yet: the writer task sees to them.
        if self.socket.backlogged() {
            return Ok(Written::Blocked);
        }
        state.schedule.flushed();
        Ok(Written::All)
    }

    /// A caller's write: what the socket does not take now goes to the writer task.
    fn write_now(&self) -> std::io::Result<()> {
        if let Written::Blocked = self.try_flush()? {
            self.wake_writer();
        }
        Ok(())
    }

    /// Have the writer task write what is queued, now.
    fn wake_writer(&self) {
        self.lock().schedule.want_write();
        self.wake.notify_one();
    }

    fn shutdown(&self) {
        self.lock().schedule.shut_down();
        self.wake.notify_one();
    }
}

/// Writes what callers leave to it: frames queued inside tokio tasks, frames the socket
/// did not take at once, and what is left when the connection is dropped; then closes the
/// socket by dropping it.
async fn write_task(output: Arc<Output>, pending: Arc<Pending>) {
    loop {
        output.wake.notified().await;
        let write = output.lock().schedule.take_wanted();
        if write {
            loop {
                match output.try_flush() {
                    Ok(Written::All) => {
                        wake_room(&pending, &output);
                        break;
                    }
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
        }
        if output.lock().schedule.is_shut_down() {
            return;
        }
    }
}

/// Reads replies and delivers them to their calls, a batch at a time: every reply that
/// has arrived, under one lock, then the wake-ups.
async fn read_loop(mut reader: FrameReader, pending: Arc<Pending>, output: Arc<Output>) {
    let mut replies = Vec::new();
    let mut delivered = Delivered::default();
    let mut batch = Bytes::new();
    let mut pos = 0;
    let error = loop {
        let mut ended = None;
        // Decode outside the lock, deliver under it, wake after it.
        while replies.len() < MAX_BATCH {
            let Some(frame) = transport::next_frame(&batch, &mut pos) else {
                break;
            };
            match wire::decode::<ServerMessage<'_>>(frame) {
                Ok(ServerMessage::V1(response)) => {
                    let result = response
                        .result
                        .map(|r| OwnedReply::from_frame(r, &batch))
                        .map_err(Error::Remote);
                    replies.push((response.id, result));
                }
                Err(e) => {
                    ended = Some(TransportError::Protocol(format!("undecodable reply: {e}")));
                    break;
                }
            }
        }
        if !replies.is_empty() {
            pending.lock().deliver(replies.drain(..), &mut delivered);
        }
        delivered.wakers.drain(..).for_each(Waker::wake);
        // A new object for a call nobody waits for any more (a dropped future, a detached
        // call): release the reference it carries.
        for reply in delivered.unwanted.drain(..) {
            if let Ok(OwnedReply::Created(token)) = reply {
                if output.coalesce(token.id, -1) {
                    continue;
                }
                let decref = ClientMessage::V1(Request::Decref { object: token.id });
                if let Ok(Push::WakeWriter) = output.push(&decref, true, true) {
                    match output.write_now() {
                        Ok(()) => wake_room(&pending, &output),
                        Err(e) => pending.close(Error::Transport(e.into())),
                    }
                }
            }
        }
        if let Some(e) = ended {
            break e;
        }
        if pos == batch.len() {
            // Every frame read is delivered: read the next batch.
            match reader.next_batch().await {
                Ok(Some(next)) => {
                    batch = next;
                    pos = 0;
                }
                Ok(None) => break TransportError::Closed,
                Err(e) => break e,
            }
        }
    };
    pending.close(Error::Transport(error));
}
