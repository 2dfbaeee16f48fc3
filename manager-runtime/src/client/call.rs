//! Calls as values: [`Call`], the future of one method call, and [`Pipeline`], many calls
//! in flight with their results taken in order.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::connection::{Connection, Started};
use super::handle::Reference;
use super::reply::{OwnedReply, Payload};
use crate::{CallError, Error, RemoteError, Result, TypedError};

/// A `Pipeline` that took a batch of at least this many replies also writes the calls
/// pushed meanwhile when it has taken half of them, so that the server works on those while
/// the rest are taken.
const SPLIT_BATCH: usize = 32;

/// One method call on a shared object, and the future of its result: what generated proxy
/// methods (except `method_to_typeid` ones, which return a proxy for the new object) and
/// [`ProxyHandle::call_method`](crate::ProxyHandle::call_method) return.
///
/// Like any future it does nothing until it is polled: the request is queued on the first
/// poll. Pushed onto a [`Pipeline`], it goes out when the pipeline is next polled (see
/// there). Dropping it before that sends nothing; dropping it after cancels the call (see
/// [`ProxyHandle::call_method`](crate::ProxyHandle::call_method)).
///
/// When the queued request is written to the socket: inside a tokio task, by the
/// connection's writer task, which runs as soon as the calling task yields (so the calls
/// a task starts in one poll share one write). Outside any task (in `block_on`), by the
/// call itself: at its first poll when no other call is in flight on its connection,
/// otherwise at its second poll (it yields once, so that the futures polled with it, in a
/// `join` or a `FuturesUnordered`, queue theirs and one write takes them all). A call
/// polled once and then kept without being polled again, outside a task while other calls
/// were in flight, is written with the next write on its connection; it never holds up
/// anyone else's request.
///
/// A `Call` is small (it holds the proxy, the method name, the arguments and the request
/// id), so keeping many in flight, in a `FuturesUnordered` or a [`Pipeline`], is cheap.
#[must_use = "a call does nothing unless it is awaited or pushed onto a Pipeline"]
pub struct Call<'a, A, R, E = Error> {
    handle: &'a Reference,
    method: &'a str,
    state: CallState<'a, A>,
    /// The call's deadline, from the first poll.
    timeout: Option<Duration>,
    /// Started at the first poll when there is a deadline.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The call's span on this side (target `managers::client`, level `debug`), made at
    /// the first poll when that level is on.
    span: Option<Box<tracing::Span>>,
    result: PhantomData<fn() -> (R, E)>,
}

/// The error type of a [`Call`] and a [`Pipeline`]: [`Error`] for methods whose errors
/// travel as text, [`CallError<E>`] for methods with typed errors (`#[shared(errors =
/// typed)]`).
pub trait CallFailure: Sized + sealed::Sealed {}

mod sealed {
    use super::Reference;
    use crate::Error;

    /// Only [`Error`](crate::Error) and [`CallError`](crate::CallError) are call failures.
    pub trait Sealed: Sized {
        /// The failure `error` of a call through `handle`.
        fn from_error(error: Error, handle: &Reference) -> Self;
    }
}

/// The failure `error` of a call through `handle`, as `E`.
pub(super) fn failure<E: CallFailure>(error: Error, handle: &Reference) -> E {
    E::from_error(error, handle)
}

impl CallFailure for Error {}

impl sealed::Sealed for Error {
    fn from_error(error: Error, _: &Reference) -> Self {
        error
    }
}

impl<E: TypedError> CallFailure for CallError<E> {}

impl<E: TypedError> sealed::Sealed for CallError<E> {
    /// [`RemoteError::TypedMethod`] becomes `CallError::Method` when its error decodes as
    /// `E`; anything else (and an error that does not decode) is `CallError::Rpc`.
    fn from_error(error: Error, handle: &Reference) -> Self {
        let Error::Remote(RemoteError::TypedMethod {
            method,
            message,
            encoded,
        }) = &error
        else {
            return CallError::Rpc(error);
        };
        match handle.decode::<E>(encoded) {
            Ok(e) => CallError::Method(e),
            // A client built with another version of the error type than the server.
            Err(e) => CallError::Rpc(Error::Codec(manager_core::CodecError::new(format!(
                "`{method}` returned an error that does not decode as `{}` ({e}); its text: \
                 {message}",
                std::any::type_name::<E>()
            )))),
        }
    }
}

enum CallState<'a, A> {
    /// Not queued yet.
    New(A),
    /// Queued on a client connection.
    Queued(Started<'a>),
    /// A call from inside the server, on one of its own objects.
    Local(BoxFuture<'a, Result<Bytes>>),
    /// The result was returned.
    Done,
}

// The arguments are only ever moved, never pinned, so a `Call` can move freely.
impl<A, R, E> Unpin for Call<'_, A, R, E> {}

impl<A, R, E> fmt::Debug for Call<'_, A, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            CallState::New(_) => "new",
            CallState::Queued(_) => "queued",
            CallState::Local(_) => "running locally",
            CallState::Done => "done",
        };
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("object", &self.handle.id())
            .field("state", &state)
            .finish()
    }
}

impl<'a, A: Serialize, R: DeserializeOwned, E: CallFailure> Call<'a, A, R, E> {
    pub(super) fn new(handle: &'a Reference, method: &'a str, args: A) -> Self {
        Call {
            handle,
            method,
            state: CallState::New(args),
            timeout: handle.timeout(),
            timer: None,
            span: None,
            result: PhantomData,
        }
    }

    /// Give this call a deadline of `timeout` from its first poll (overriding the proxy's
    /// and the connection's default): if its result has not come by then, it fails with
    /// [`Error::DeadlineExceeded`] (for a typed-error method, inside `CallError::Rpc`).
    ///
    /// The deadline travels with the request: the server stops waiting on the caller's
    /// behalf when it passes, even if this side's cancel never reaches it. A call blocked
    /// there (a `Queue.get`, a `Lock.acquire`, an `async fn` awaiting) is withdrawn with
    /// the same rule as a cancelled call: nothing is lost. An item taken or a lock granted
    /// just as the deadline passed is handed back; a plain `fn` that already ran is not
    /// undone (it never waits, so it is never the one at the deadline).
    ///
    /// In a [`Pipeline`], results come in order: a call's deadline is the server's to
    /// keep (its reply is then `DeadlineExceeded`), not a timer on this side.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(handle: manager_runtime::ProxyHandle) -> Result<(), manager_runtime::Error> {
    /// // With a generated proxy: `queue.get().timeout(Duration::from_secs(1)).await`.
    /// match handle.call_method::<_, String>("get", ()).timeout(Duration::from_secs(1)).await {
    ///     Ok(item) => println!("{item}"),
    ///     Err(manager_runtime::Error::DeadlineExceeded { .. }) => println!("nothing came"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout.min(crate::transport::MAX_TIMEOUT));
        self.timer = None;
        self
    }

    /// Queue the request (a remote call) or start the local call; `waker` is that of the
    /// poll doing it, if one is. False when the connection has no room for the call now:
    /// it stays new, and `waker` waits for room.
    fn start(&mut self, waker: Option<&Waker>) -> Result<bool> {
        if let CallState::New(_) = self.state {
            let CallState::New(args) = std::mem::replace(&mut self.state, CallState::Done) else {
                unreachable!("matched above")
            };
            self.state = match self.handle.remote() {
                Some(conn) => {
                    match self.handle.start_call(
                        conn,
                        self.method,
                        &args,
                        waker.cloned(),
                        false,
                        self.timeout,
                    ) {
                        Ok(Some(started)) => CallState::Queued(started),
                        Ok(None) => {
                            self.state = CallState::New(args);
                            return Ok(false);
                        }
                        // A connection that dropped: wait for the reconnect under way, or
                        // fail (with the proxy's own error if its session is gone).
                        Err(e) => {
                            conn.retry_later(e, waker, self.handle.token())?;
                            self.state = CallState::New(args);
                            return Ok(false);
                        }
                    }
                }
                None => {
                    let args = self.handle.codec().encode(&args)?;
                    let (handle, method) = (self.handle, self.method);
                    CallState::Local(Box::pin(
                        async move { handle.call_encoded(method, &args).await },
                    ))
                }
            };
        }
        Ok(true)
    }
}

impl<A: Serialize, R: DeserializeOwned, E: CallFailure> Future for Call<'_, A, R, E> {
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R, E>> {
        let this = self.get_mut();
        if let (Some(timeout), None) = (this.timeout, &this.timer) {
            // Outside a tokio runtime there is no timer here: the server keeps the deadline.
            if tokio::runtime::Handle::try_current().is_ok() {
                this.timer = Some(Box::pin(tokio::time::sleep(timeout)));
            }
        }
        if let (CallState::New(_), None) = (&this.state, &this.span) {
            if tracing::enabled!(target: "managers::client", tracing::Level::DEBUG) {
                this.span = Some(Box::new(tracing::debug_span!(
                    target: "managers::client",
                    "call",
                    typeid = this.handle.typeid(),
                    object = %this.handle.id(),
                    method = this.method,
                )));
            }
        }
        // Inside it: the request made now carries its context (feature `otel`), and the
        // call's end is recorded in it.
        let span = this.span.take();
        let entered = span.as_deref().map(tracing::Span::enter);
        let mut polled = this.poll_call(cx);
        if polled.is_pending() {
            if let Some(timer) = &mut this.timer {
                if timer.as_mut().poll(cx).is_ready() {
                    // Dropping the request cancels it on the server (and gives back an
                    // effect granted meanwhile).
                    this.state = CallState::Done;
                    let timeout = this.timeout.unwrap_or_default();
                    let error = Error::DeadlineExceeded { timeout };
                    trace_done(this.handle, this.method, Some(&error));
                    polled = Poll::Ready(Err(E::from_error(error, this.handle)));
                }
            }
        }
        drop(entered);
        if polled.is_pending() {
            this.span = span;
        }
        polled
    }
}

impl<A: Serialize, R: DeserializeOwned, E: CallFailure> Call<'_, A, R, E> {
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<Result<R, E>> {
        let this = self;
        match this.start(Some(cx.waker())) {
            Ok(true) => {}
            // No room on the connection yet: woken when there may be.
            Ok(false) => return Poll::Pending,
            Err(e) => {
                this.state = CallState::Done;
                return Poll::Ready(Err(E::from_error(e, this.handle)));
            }
        }
        let value = match &mut this.state {
            CallState::Queued(started) => {
                let reply = ready!(started.poll_reply(cx));
                reply.and_then(|r| this.handle.value_of(this.method, r))
            }
            CallState::Local(task) => ready!(task.as_mut().poll(cx)).map(Payload::from),
            CallState::New(_) | CallState::Done => panic!("`Call` polled after completion"),
        };
        this.state = CallState::Done;
        let value = value
            .and_then(|v| this.handle.decode(&v))
            .map_err(Error::deadline_mapped);
        trace_done(this.handle, this.method, value.as_ref().err());
        Poll::Ready(value.map_err(|e| E::from_error(e, this.handle)))
    }
}

/// The client's record of a finished call (target `managers::client`, level `debug`):
/// typeid, object, method and outcome. Costs one check of the level when it is off.
fn trace_done(handle: &Reference, method: &str, error: Option<&Error>) {
    if !tracing::enabled!(target: "managers::client", tracing::Level::DEBUG) {
        return;
    }
    match error {
        None => tracing::debug!(
            target: "managers::client",
            typeid = handle.typeid(),
            object = %handle.id(),
            method,
            outcome = "ok",
            "call done"
        ),
        Some(e) => tracing::debug!(
            target: "managers::client",
            typeid = handle.typeid(),
            object = %handle.id(),
            method,
            outcome = "error",
            error = %e,
            "call done"
        ),
    }
}

/// Calls kept in flight together, their results taken in the order the calls were
/// pushed: pipelining for bulk work, without a future per call.
///
/// [`push`](Pipeline::push) adds a call; [`next`](Pipeline::next) (or the [`Stream`]
/// implementation) waits for the oldest call's result, and sends the calls pushed meanwhile
/// before it waits (and halfway through a large batch of replies). Calls pushed together
/// are sent together, under one lock, and a batch of replies wakes the pipeline once, so
/// this is the cheapest way to keep many calls of one result type in flight. The calls may
/// be on different proxies and even different managers.
///
/// Like a buffered sink, a pipeline sends what was pushed when it needs a result (or is
/// dropped): a call pushed and never followed by `next` waits. Order is kept all the same:
/// any other request on the same connection (a call, a proxy's clone or drop, another
/// pipeline sending) sends the calls pushed before it first, so a call made after a push
/// sees the pushed call's effect. What is not covered: waiting, elsewhere, for an effect
/// of a pushed call without polling the pipeline (for example on another connection, or
/// in another process): poll or drop the pipeline first.
///
/// ```no_run
/// # use manager_runtime::{Pipeline, ProxyHandle};
/// # async fn demo(counter: ProxyHandle, keys: Vec<String>) -> Result<(), manager_runtime::Error> {
/// // With a generated proxy: `pipeline.push(store.incr(key))`.
/// let mut pipeline = Pipeline::new();
/// let mut keys = keys.iter();
/// for key in keys.by_ref().take(64) {
///     pipeline.push(counter.call_method::<_, u64>("incr", (key,)));
/// }
/// while let Some(count) = pipeline.next().await {
///     println!("{}", count?);
///     if let Some(key) = keys.next() {
///         pipeline.push(counter.call_method("incr", (key,)));
///     }
/// }
/// # Ok(()) }
/// ```
///
/// Dropping the pipeline cancels the calls whose results were not taken, as dropping
/// their [`Call`]s would (calls it had not sent yet are sent, then cancelled).
#[must_use = "a pipeline's results are taken with `next`"]
pub struct Pipeline<'a, R, E = Error> {
    calls: VecDeque<InFlight<'a>>,
    /// Connections where this pipeline must see to the write of queued requests before it
    /// waits.
    unwritten: Vec<&'a Connection>,
    /// Replies taken for the calls at the front of `calls`, in order.
    taken: VecDeque<Result<OwnedReply>>,
    /// How many replies `taken` held when it was filled.
    batch: usize,
    /// Connections where this pipeline stashed calls since it last queued them.
    stashed_on: Vec<&'a Connection>,
    /// How many calls it stashed since it last queued them.
    stashed: usize,
    /// How many of its calls wait for room (`InFlightState::Unstarted`).
    unstarted: usize,
    result: PhantomData<fn() -> (R, E)>,
}

/// One call of a pipeline.
struct InFlight<'a> {
    handle: &'a Reference,
    method: &'a str,
    state: InFlightState<'a>,
    /// Its deadline, kept by the server.
    timeout: Option<Duration>,
}

enum InFlightState<'a> {
    /// Pushed while its connection had no room: its arguments, encoded, until there is.
    Unstarted(Vec<u8>),
    Queued(Started<'a>),
    Local(BoxFuture<'a, Result<Bytes>>),
    Failed(Error),
}

impl<R, E> Default for Pipeline<'_, R, E> {
    fn default() -> Self {
        Pipeline {
            calls: VecDeque::new(),
            unwritten: Vec::new(),
            taken: VecDeque::new(),
            batch: 0,
            stashed_on: Vec::new(),
            stashed: 0,
            unstarted: 0,
            result: PhantomData,
        }
    }
}

impl<R, E> fmt::Debug for Pipeline<'_, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("in_flight", &self.calls.len())
            .finish()
    }
}

impl<'a, R: DeserializeOwned, E: CallFailure> Pipeline<'a, R, E> {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `call`: it is sent when the pipeline next waits for a result (or before any
    /// later request on its connection), and its result comes out of [`next`](Pipeline::next)
    /// after the results of the calls pushed before it. A call that cannot be sent (a
    /// closed connection, arguments that do not encode) yields its error in its turn.
    pub fn push<A: Serialize>(&mut self, mut call: Call<'a, A, R, E>) {
        // A remote call waits in its connection's stash until this pipeline next waits.
        let state = if let (CallState::New(args), Some(conn)) = (&call.state, call.handle.remote())
        {
            let conn: &'a Connection = conn;
            let state = if self.unstarted > 0
                || !conn.has_room_for_stash(self.stashed)
                || conn.waits_for_reconnect()
            {
                // No room, or a reconnect under way: kept here, in order behind the calls
                // not sent yet, until there is (see `start_unstarted`).
                match call.handle.codec().encode(args) {
                    Ok(bytes) => {
                        self.unstarted += 1;
                        InFlightState::Unstarted(bytes)
                    }
                    Err(e) => InFlightState::Failed(e.into()),
                }
            } else {
                match call
                    .handle
                    .start_call(conn, call.method, args, None, true, call.timeout)
                {
                    Ok(Some(started)) => {
                        self.stashed += 1;
                        remember(&mut self.stashed_on, conn);
                        InFlightState::Queued(started)
                    }
                    Ok(None) => unreachable!("a stashed call always starts"),
                    // Its connection dropped and a reconnect is under way: kept until it
                    // ends, as a call waiting for room is.
                    Err(_) if conn.waits_for_reconnect() => {
                        match call.handle.codec().encode(args) {
                            Ok(bytes) => {
                                self.unstarted += 1;
                                InFlightState::Unstarted(bytes)
                            }
                            Err(e) => InFlightState::Failed(e.into()),
                        }
                    }
                    Err(e) => InFlightState::Failed(
                        conn.retry_later(e, None, call.handle.token())
                            .err()
                            .unwrap_or(Error::Transport(crate::TransportError::Closed)),
                    ),
                }
            };
            call.state = CallState::Done;
            state
        } else {
            // A local call, or one already queued by a poll.
            match call.start(None) {
                Err(e) => InFlightState::Failed(e),
                Ok(_) => match std::mem::replace(&mut call.state, CallState::Done) {
                    CallState::Queued(mut started) => {
                        if started.defer_write() {
                            remember(&mut self.unwritten, started.connection());
                        }
                        InFlightState::Queued(started)
                    }
                    CallState::Local(task) => InFlightState::Local(task),
                    CallState::New(_) | CallState::Done => {
                        panic!("`Call` pushed after completion")
                    }
                },
            }
        };
        self.calls.push_back(InFlight {
            handle: call.handle,
            method: call.method,
            state,
            timeout: call.timeout,
        });
    }

    /// How many calls have results not taken yet.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether every result was taken.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The result of the oldest call not taken yet; `None` when there is none.
    ///
    /// Cancel safe: dropping the future loses no result and cancels no call; the oldest
    /// call stays in the pipeline, and the next `next` returns its result.
    pub async fn next(&mut self) -> Option<Result<R, E>> {
        poll_fn(|cx| self.poll_result(cx)).await
    }

    fn poll_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<R, E>>> {
        // What was pushed meanwhile goes out together: when this is about to wait for
        // replies, and halfway through a large batch (the server then works on those
        // requests while the rest of the batch is taken).
        let half = self.batch / 2;
        if self.taken.is_empty() || (self.batch >= SPLIT_BATCH && self.taken.len() == half) {
            self.queue_stash();
            if self.unstarted > 0 {
                self.start_unstarted(cx);
            }
            for conn in self.unwritten.drain(..) {
                conn.write();
            }
        }
        let Some(front) = self.calls.front_mut() else {
            return Poll::Ready(None);
        };
        let value = match &mut front.state {
            // Waits for room on its connection (woken when there may be).
            InFlightState::Unstarted(_) => return Poll::Pending,
            InFlightState::Queued(started) => {
                if self.taken.is_empty() {
                    // The replies of this call and of the calls after it on the same
                    // connection, as far as they came: one lock for a batch.
                    let conn = started.connection();
                    let calls = self.calls.iter_mut().map_while(|c| match &mut c.state {
                        InFlightState::Queued(s) if std::ptr::eq(s.connection(), conn) => Some(s),
                        _ => None,
                    });
                    Started::take_replies(calls, cx, &mut self.taken);
                    self.batch = self.taken.len();
                }
                let Some(reply) = self.taken.pop_front() else {
                    return Poll::Pending;
                };
                reply
            }
            InFlightState::Local(task) => {
                ready!(task.as_mut().poll(cx)).map(|v| OwnedReply::Value(Payload::from(v)))
            }
            InFlightState::Failed(e) => Err(e.clone()),
        };
        let Some(call) = self.calls.pop_front() else {
            unreachable!("polled above")
        };
        let value = value.and_then(|reply| {
            let reply = match &call.state {
                InFlightState::Queued(started) => started.handed_out(reply),
                _ => reply,
            };
            match reply {
                OwnedReply::Value(v) => Ok(v),
                other => call.handle.value_of(call.method, other),
            }
        });
        let value = value
            .and_then(|v| call.handle.decode(&v))
            .map_err(Error::deadline_mapped);
        trace_done(call.handle, call.method, value.as_ref().err());
        Poll::Ready(Some(value.map_err(|e| E::from_error(e, call.handle))))
    }
}

impl<'a, R, E> Pipeline<'a, R, E> {
    /// Queue the calls this pipeline stashed (with any other pipeline's on the same
    /// connections, in the order they were made), to be written next.
    fn queue_stash(&mut self) {
        self.stashed = 0;
        for conn in self.stashed_on.drain(..) {
            // Queued now, or already by another request on the connection, whose caller
            // may never be polled again: written by this pipeline either way.
            conn.queue_stash();
            remember(&mut self.unwritten, conn);
        }
    }

    /// Queue, in order, the calls that waited for room, as far as there is room now; the
    /// first that finds none waits for it with `cx`'s waker.
    fn start_unstarted(&mut self, cx: &Context<'_>) {
        for call in self.calls.iter_mut() {
            if self.unstarted == 0 {
                break;
            }
            let InFlightState::Unstarted(args) = &call.state else {
                continue;
            };
            let Some(conn) = call.handle.remote() else {
                unreachable!("only remote calls wait for room")
            };
            let conn: &'a Connection = conn;
            let started = call.handle.start_encoded(
                conn,
                call.method,
                args,
                Some(cx.waker().clone()),
                call.timeout,
            );
            call.state = match started {
                Ok(Some(mut started)) => {
                    if started.defer_write() {
                        remember(&mut self.unwritten, conn);
                    }
                    InFlightState::Queued(started)
                }
                Ok(None) => return,
                // Waits for the reconnect under way, woken when it ends.
                Err(e) => match conn.retry_later(e, Some(cx.waker()), call.handle.token()) {
                    Ok(()) => return,
                    Err(e) => InFlightState::Failed(e),
                },
            };
            self.unstarted -= 1;
        }
    }
}

/// Add `conn` to `conns` (connections to queue or write before waiting), once.
fn remember<'a>(conns: &mut Vec<&'a Connection>, conn: &'a Connection) {
    if !conns.iter().any(|c| std::ptr::eq(*c, conn)) {
        conns.push(conn);
    }
}

impl<R, E> Drop for Pipeline<'_, R, E> {
    fn drop(&mut self) {
        // Stashed calls are queued (and written below), so that the calls' own drops
        // cancel them like the others.
        self.queue_stash();
        // Replies taken and not returned: one may carry a reference to release.
        for (call, reply) in self.calls.iter().zip(self.taken.drain(..)) {
            if let Ok(reply) = reply {
                if let InFlightState::Queued(started) = &call.state {
                    started.never_handed_out(&reply);
                }
                let _ = call.handle.value_of(call.method, reply);
            }
        }
        // Requests queued and not written yet go out (the calls' own drops cancel them).
        for conn in self.unwritten.drain(..) {
            conn.write();
        }
    }
}

impl<R: DeserializeOwned, E: CallFailure> Stream for Pipeline<'_, R, E> {
    type Item = Result<R, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<R, E>>> {
        self.get_mut().poll_result(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.calls.len(), Some(self.calls.len()))
    }
}
