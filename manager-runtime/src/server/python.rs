//! One CPython client connection: CPython's manager protocol, lock-step.
//!
//! A stock `multiprocessing.managers` client opens a connection per server function
//! (`dummy`, `create`, `incref`, `decref`, ...), sends one request and reads one reply; the
//! first method call of each client thread opens a connection, sends `accept_connection`,
//! and then calls methods on it, one at a time (`../shared/python/PROTOCOL.md` §5). Each
//! request is a pickled `(ident, methodname, args, kwds)`, each reply a pickled
//! `(kind, result)`. A call that blocks (`Queue.get`, `Lock.acquire`) waits on this
//! connection's task only, and is dropped (its effect undone) if the client goes away.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use manager_core::ledger::Owner;
use manager_core::pickle::{self, Object};
use manager_core::{Codec, ObjectId, Returned};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use super::caller::{Caller, ConnId};
use super::effects::{self, Undo};
use super::objects::{Args, Dispatch};
use super::state::ServerState;
use crate::client::handoff::{with_context, AdoptContext};
use crate::python::{from_object, to_object, Proxies, PyArgs, PyCall, PyException, PythonFace};
use crate::transport::{self, FrameReader, SocketWriter};
use crate::TransportError;

/// The pickle opcode every CPython request starts with.
pub(crate) const PROTO: u8 = 0x80;

/// CPython's server functions (`Server.public`).
const PUBLIC: [&str; 9] = [
    "shutdown",
    "create",
    "accept_connection",
    "get_methods",
    "debug_info",
    "number_of_objects",
    "dummy",
    "incref",
    "decref",
];

/// How a request ends the exchange.
enum Next {
    /// Read the next request.
    Continue,
    /// Close the connection (after a server function, as CPython does).
    Close,
}

/// A reply: `('#RETURN', value)`, `('#PROXY', (exposed, token))`, `('#ERROR',
/// exception)` or `('#TRACEBACK', text)`.
enum Reply {
    Return(Object),
    Proxy(Object),
    Error(PyException),
    Traceback(String),
}

/// Serve one CPython connection until it closes.
pub(crate) async fn serve(
    state: Arc<ServerState>,
    mut reader: FrameReader,
    writer: SocketWriter,
    peer: String,
) {
    let id = state.next_connection_id();
    state.hooks.opened(id);
    state.objects.open_connection(id);
    debug!(%peer, "CPython client");
    let mut session = Session {
        caller: Caller {
            connection: Some(id),
            hooks: Arc::downgrade(&state.hooks),
        },
        context: state.adopt_context(),
        state,
        id,
        writer,
        methods: false,
        stash: VecDeque::new(),
        target: std::sync::Mutex::new(None),
    };
    // Until the client leaves or the server shuts down (a call waiting then is dropped
    // where it waits, taking nothing).
    let cancel = session.state.cancel.clone();
    let outcome = tokio::select! {
        outcome = session.run(&mut reader) => outcome,
        () = cancel.cancelled() => Ok(()),
    };
    if let Err(e) = outcome {
        if !matches!(e, TransportError::Closed) {
            if let Some(suppressed) = session.state.warnings.bad_input.check() {
                warn!(%peer, error = %e, suppressed, "closing CPython connection");
            }
        }
    }
}

struct Session {
    state: Arc<ServerState>,
    id: ConnId,
    writer: SocketWriter,
    caller: Caller,
    context: AdoptContext,
    /// `accept_connection` was called: requests are method calls from now on.
    methods: bool,
    /// Frames that arrived while a call was running (CPython never pipelines, but a peer
    /// may).
    stash: VecDeque<Bytes>,
    /// The object the request being read calls: a proxy to itself in its arguments (a list
    /// appended to itself) is kept without a reference, or it could never be freed.
    target: std::sync::Mutex<Option<ObjectId>>,
}

impl Drop for Session {
    /// Whatever the connection held (locks, permits, waits) is released when it closes,
    /// however it closes.
    fn drop(&mut self) {
        self.state.hooks.closed(self.id);
        let released = self.state.objects.release_connection(self.id);
        drop(released);
    }
}

impl Session {
    fn set_target(&self, target: Option<ObjectId>) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    async fn run(&mut self, reader: &mut FrameReader) -> Result<(), TransportError> {
        // The client writes its last handshake message and its first request back to
        // back: acknowledge at once until that request is in. After it, each reply
        // carries the acknowledgement of its request, and a request is one write.
        self.writer.quickack();
        loop {
            let batch = match self.stash.pop_front() {
                Some(batch) => batch,
                None => match reader.next_batch().await? {
                    Some(batch) => batch,
                    None => return Ok(()),
                },
            };
            let mut pos = 0;
            while let Some(frame) = transport::next_frame(&batch, &mut pos) {
                let frame = batch.slice_ref(frame);
                if let Next::Close = self.request(&frame, reader).await? {
                    return Ok(());
                }
            }
        }
    }

    /// Answer one request.
    async fn request(
        &mut self,
        frame: &Bytes,
        reader: &mut FrameReader,
    ) -> Result<Next, TransportError> {
        let request = match pickle::decode(frame, &pickle::Limits::default()) {
            Ok(object) => object,
            Err(e) => {
                // An unreadable request leaves nothing to go on: answer and close.
                let text = format!("the request is not a readable pickle: {e}");
                self.send(Reply::Traceback(text)).await?;
                return Ok(Next::Close);
            }
        };
        let Some((ident, method, args, kwargs)) = parse_request(request) else {
            let text = "a request must be (ident, methodname, args, kwds)".to_owned();
            self.send(Reply::Traceback(text)).await?;
            return Ok(Next::Close);
        };
        if self.methods {
            let reply = self
                .method_call(ident, &method, args, kwargs, reader)
                .await?;
            self.send_or_undo(reply).await?;
            return Ok(Next::Continue);
        }
        let reply = self.function(&method, args, kwargs);
        if method == "accept_connection" && matches!(reply, Reply::Return(_)) {
            self.methods = true;
            self.send(reply).await?;
            return Ok(Next::Continue);
        }
        self.send(reply).await?;
        Ok(Next::Close)
    }

    /// A server function (`Server.public`).
    fn function(&self, name: &str, args: Vec<Object>, kwargs: Vec<(Object, Object)>) -> Reply {
        if !PUBLIC.contains(&name) {
            return Reply::Traceback(format!("AssertionError: '{name}' unrecognized"));
        }
        let objects = &self.state.objects;
        match name {
            "dummy" | "accept_connection" => Reply::Return(Object::None),
            "number_of_objects" => Reply::Return(Object::Int(
                i64::try_from(objects.len()).unwrap_or(i64::MAX),
            )),
            "debug_info" => Reply::Return(Object::Str(debug_info(&self.state))),
            "shutdown" if self.state.limits.client_shutdown => {
                info!("shutdown requested by a CPython client");
                self.state.cancel.cancel();
                Reply::Return(Object::None)
            }
            "shutdown" => Reply::Traceback(
                "shutdown is refused: this server is stopped by its operator, not by clients"
                    .to_owned(),
            ),
            "create" => self.create(args, kwargs),
            "incref" | "decref" => {
                let Some(id) = args.first().and_then(parse_ident) else {
                    return Reply::Traceback(format!("KeyError: {:?}", args.first()));
                };
                let done = match name {
                    "incref" => objects.incref_python(id).is_ok(),
                    _ => objects.decref(id, Owner::Python).is_ok(),
                };
                match done {
                    true => Reply::Return(Object::None),
                    false => Reply::Traceback(format!("KeyError: '{}'", ident(id))),
                }
            }
            "get_methods" => {
                let face = args
                    .first()
                    .and_then(token_ident)
                    .and_then(|id| objects.get(id))
                    .and_then(|(_, typeid)| self.face(&typeid.name()));
                match face {
                    Some(face) => Reply::Return(exposed(face)),
                    None => Reply::Traceback("KeyError: unknown token".to_owned()),
                }
            }
            _ => Reply::Traceback(format!("AssertionError: '{name}' unrecognized")),
        }
    }

    /// The face of `typeid`, if it serves Python clients.
    fn face(&self, typeid: &str) -> Option<PythonFace> {
        self.state.registry.get(typeid).and_then(|r| r.python)
    }

    /// `create(typeid, *args, **kwds)`: a new object with one reference for Python
    /// clients; replies `(ident, exposed)`.
    fn create(&self, args: Vec<Object>, kwargs: Vec<(Object, Object)>) -> Reply {
        let mut args = args.into_iter();
        let Some(Object::Str(typeid)) = args.next() else {
            return Reply::Traceback("TypeError: create() needs a typeid".to_owned());
        };
        let Some(face) = self.face(&typeid) else {
            return Reply::Traceback(format!(
                "KeyError: '{typeid}' (no such typeid for Python clients)"
            ));
        };
        let py = match py_args(args.collect(), kwargs, self.id, self) {
            Ok(py) => py,
            Err(e) => return Reply::Traceback(traceback(&e)),
        };
        // A shared instance (`m.jobs()` for a queue every client shares) takes no
        // arguments, whatever its type's constructor would take.
        let encoded = if self.state.is_instance(&typeid) {
            if !py.args.is_empty() || !py.kwargs.is_empty() {
                return Reply::Traceback(format!(
                    "TypeError: '{typeid}' is a shared instance: it takes no arguments"
                ));
            }
            Vec::new()
        } else {
            match (face.create)(py) {
                Ok(encoded) => encoded,
                Err(e) => return Reply::Traceback(traceback(&e)),
            }
        };
        match self.state.create(
            &typeid,
            &encoded,
            Codec::Postcard,
            None,
            Owner::Python,
            &self.context,
        ) {
            Ok(id) => Reply::Return(Object::Tuple(vec![Object::Str(ident(id)), exposed(face)])),
            Err(e) => Reply::Traceback(e.to_string()),
        }
    }

    /// A method call on an object (after `accept_connection`). The effect of a call whose
    /// reply cannot be sent is undone ([`Session::send_or_undo`]).
    async fn method_call(
        &mut self,
        ident_obj: Object,
        method: &str,
        args: Vec<Object>,
        kwargs: Vec<(Object, Object)>,
        reader: &mut FrameReader,
    ) -> Result<(Reply, Option<Undo>), TransportError> {
        let Some(id) = parse_ident(&ident_obj) else {
            return Ok((Reply::Traceback(format!("KeyError: {ident_obj:?}")), None));
        };
        let state = self.state.clone();
        let Some((object, typeid_ref)) = state.objects.get(id) else {
            return Ok((Reply::Traceback(format!("KeyError: '{}'", ident(id))), None));
        };
        let typeid = typeid_ref.name();
        let typeid_name = typeid.clone();
        let Some(face) = self.face(&typeid) else {
            let text = format!("'{typeid}' objects are not available to Python clients");
            return Ok((Reply::Traceback(text), None));
        };
        // `#GETVALUE` (a copy by value) bypasses `exposed`, as in CPython; the face says how.
        if !face.exposed.contains(&method) && method != "#GETVALUE" {
            return Ok((self.fallback(&object, &typeid, face, method).await, None));
        }
        self.set_target(Some(id));
        let call = py_args(args, kwargs, self.id, &*self).and_then(|py| (face.call)(method, py));
        self.set_target(None);
        let (rust_method, encoded, then) = match call {
            Ok(PyCall::Return(value)) => return Ok((returned(&value, &*self), None)),
            Ok(PyCall::Method {
                method,
                args,
                reply,
            }) => (method, Bytes::from(args), Then::Reply(reply)),
            Ok(PyCall::Proxy {
                method,
                args,
                typeid,
                make,
            }) => (method, Bytes::from(args), Then::Share(typeid, make)),
            Err(e) => return Ok((Reply::Error(e), None)),
        };
        debug!(typeid = %typeid, id = %id, method, "Python call");
        let call_args = Args {
            frame: &encoded,
            bytes: &encoded,
        };
        let (dispatch, undo) = effects::collect(|| {
            object.clone().call(
                typeid_ref,
                rust_method,
                call_args,
                Codec::Postcard,
                &self.context,
                &self.caller,
            )
        });
        let (result, undo) = match dispatch {
            Dispatch::Ready(result) => (result, undo),
            Dispatch::Spawn(task) => {
                // Wait for the call, and notice meanwhile if the client goes away (it then
                // is dropped where it waits, taking nothing).
                reader.set_idle(None);
                let call = effects::collect_async(task);
                tokio::pin!(call);
                let outcome = loop {
                    tokio::select! {
                        // The call first: one that finished as the client left has its
                        // effect undone when its reply cannot be sent, not lost.
                        biased;
                        outcome = &mut call => break outcome,
                        more = reader.next_batch() => match more? {
                            Some(batch) => self.stash.push_back(batch),
                            None => return Err(TransportError::Closed),
                        },
                    }
                };
                reader.set_idle(self.state.limits.idle_timeout);
                outcome
            }
        };
        let reply = match result {
            // Decoded where the proxies a result carries are adopted by the server.
            Ok(Returned::Value(bytes)) => match then {
                Then::Reply(reply) => match with_context(&self.context, || reply(&bytes)) {
                    Ok(value) => returned(&value, &*self),
                    Err(e) => Reply::Error(e),
                },
                Then::Share(typeid, make) => {
                    let called = self.local_proxy(id, &typeid_name);
                    let args = with_context(&self.context, || match called {
                        Some(called) => make(&bytes, called),
                        None => Err(PyException::runtime_error("the object is gone")),
                    });
                    self.share(typeid, args)
                }
            },
            Ok(Returned::Object { .. }) => Reply::Traceback(
                "returning new shared objects to Python is not supported yet".into(),
            ),
            Err(e) => Reply::Traceback(e.to_string()),
        };
        let undo = match reply {
            Reply::Return(_) | Reply::Proxy(_) => undo,
            _ => {
                if let Some(undo) = undo {
                    effects::run(undo);
                }
                None
            }
        };
        Ok((reply, undo))
    }

    /// Share a new object of `typeid` built from `args`, with one reference for Python
    /// clients (the proxy the client makes increfs it, then the client releases this one,
    /// as with CPython's server): `('#PROXY', (exposed, token))`.
    fn share(&self, typeid: &str, args: Result<Vec<u8>, PyException>) -> Reply {
        let Some(face) = self.face(typeid) else {
            return Reply::Traceback(format!("KeyError: '{typeid}'"));
        };
        let args = match args {
            Ok(args) => args,
            Err(e) => return Reply::Error(e),
        };
        match self.state.construct(
            typeid,
            &args,
            Codec::Postcard,
            None,
            Owner::Python,
            &self.context,
        ) {
            Ok(id) => Reply::Proxy(Object::Tuple(vec![
                exposed(face),
                token(typeid, &self.state.address, id),
            ])),
            Err(e) => Reply::Traceback(e.to_string()),
        }
    }

    /// A method outside `exposed`: `__str__` and `__repr__` (the object's `Display` text)
    /// work regardless, as in CPython.
    async fn fallback(
        &self,
        object: &Arc<dyn super::objects::ErasedObject>,
        typeid: &str,
        face: PythonFace,
        method: &str,
    ) -> Reply {
        match method {
            "__str__" | "__repr__" => {
                let text = super::panics::UserCode(object.clone().display()).await;
                Reply::Return(Object::Str(
                    text.unwrap_or_else(|| format!("<{typeid} object>")),
                ))
            }
            _ => Reply::Traceback(format!(
                "AttributeError: method '{method}' of {typeid} object is not in exposed={:?}",
                face.exposed
            )),
        }
    }

    /// Send a method call's reply; undo its effect if the reply could not be sent.
    async fn send_or_undo(
        &mut self,
        (reply, undo): (Reply, Option<Undo>),
    ) -> Result<(), TransportError> {
        let sent = self.send(reply).await;
        if sent.is_err() {
            if let Some(undo) = undo {
                effects::run(undo);
            }
        }
        sent
    }

    async fn send(&mut self, reply: Reply) -> Result<(), TransportError> {
        let message = match reply {
            Reply::Return(value) => ("#RETURN", value),
            Reply::Proxy(value) => ("#PROXY", value),
            Reply::Error(e) => match e.to_object() {
                Ok(exception) => ("#ERROR", exception),
                Err(e) => ("#TRACEBACK", Object::Str(traceback(&e))),
            },
            Reply::Traceback(text) => ("#TRACEBACK", Object::Str(text)),
        };
        let payload = pickle::encode(&Object::Tuple(vec![
            Object::Str(message.0.into()),
            message.1,
        ]));
        let mut frame = Vec::with_capacity(4 + payload.len());
        let len = u32::try_from(payload.len()).map_err(|_| TransportError::Closed)?;
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&payload);
        self.writer.write_all(&frame).await?;
        Ok(())
    }
}

impl Session {
    /// A proxy to `id` held inside the server (a reference of its own), as a value.
    fn local_proxy(&self, id: ObjectId, typeid: &str) -> Option<crate::Value> {
        let owner = self.state.proxy_owner();
        self.state.objects.hold_for_python_value(id, owner).ok()?;
        Some(crate::Value::Proxy(crate::ProxyHandle::local(
            &self.state,
            id,
            typeid,
            owner,
        )))
    }
}

impl Proxies for Session {
    /// A proxy a Python client sent inside a value: a reference held inside the server
    /// (its own owner, as a Rust proxy stored in an object is), so the object lives while
    /// the value does.
    fn proxy_in(&self, id: ObjectId) -> Option<crate::Value> {
        if *self.target.lock().unwrap_or_else(|e| e.into_inner()) == Some(id) {
            return None;
        }
        let (_, typeid) = self.state.objects.get(id)?;
        let typeid = typeid.name();
        self.local_proxy(id, &typeid)
    }

    /// `RebuildProxy(ProxyClass, Token(...), 'pickle', kwds)`. The object is kept alive
    /// until the client's `incref` for it arrives (at most `hold_timeout`).
    fn proxy_out(&self, handle: &crate::ProxyHandle) -> Result<Object, PyException> {
        let ours = handle.address() == &self.state.address;
        if ours {
            let expires = std::time::Instant::now() + self.state.limits.hold_timeout;
            self.state
                .objects
                .send_to_python(handle.id(), expires)
                .map_err(|_| PyException::runtime_error("a proxy in this value is gone"))?;
        }
        let face = self.face(handle.typeid());
        let proxytype = face.map_or("AutoProxy", |f| f.proxytype);
        let kwds = match proxytype {
            "AutoProxy" => Object::Dict(vec![(
                Object::Str("exposed".into()),
                face.map_or(Object::Tuple(vec![]), exposed),
            )]),
            _ => Object::Dict(vec![]),
        };
        Ok(Object::Reduce {
            callable: Box::new(Object::global("multiprocessing.managers", "RebuildProxy")),
            args: Box::new(Object::Tuple(vec![
                Object::global("multiprocessing.managers", proxytype),
                token(handle.typeid(), handle.address(), handle.id()),
                Object::Str("pickle".into()),
                kwds,
            ])),
        })
    }
}

/// What becomes of a Python call's Rust result.
enum Then {
    /// The Python return value.
    Reply(crate::python::PyReply),
    /// The arguments of a new object of this typeid, shared with the client.
    Share(
        &'static str,
        fn(&[u8], crate::Value) -> Result<Vec<u8>, PyException>,
    ),
}

/// `(ident, methodname, args, kwds)`.
type Request = (Object, String, Vec<Object>, Vec<(Object, Object)>);

fn parse_request(request: Object) -> Option<Request> {
    let Object::Tuple(items) = request else {
        return None;
    };
    let [ident, Object::Str(method), args, kwargs]: [Object; 4] = items.try_into().ok()? else {
        return None;
    };
    let args = match args {
        Object::Tuple(args) | Object::List(args) => args,
        _ => return None,
    };
    let kwargs = match kwargs {
        Object::Dict(kwargs) => kwargs,
        _ => return None,
    };
    Some((ident, method, args, kwargs))
}

/// Python arguments as [`PyArgs`], proxies in them as live handles.
fn py_args(
    args: Vec<Object>,
    kwargs: Vec<(Object, Object)>,
    connection: ConnId,
    proxies: &dyn Proxies,
) -> Result<PyArgs, PyException> {
    Ok(PyArgs {
        connection,
        args: args
            .into_iter()
            .map(|a| from_object(a, proxies))
            .collect::<Result<_, _>>()?,
        kwargs: kwargs
            .into_iter()
            .map(|(k, v)| match k {
                Object::Str(k) => Ok((k, from_object(v, proxies)?)),
                _ => Err(PyException::type_error("keywords must be strings")),
            })
            .collect::<Result<_, _>>()?,
    })
}

/// `('#RETURN', value)`, or the `TypeError` for a value Python cannot get yet.
fn returned(value: &crate::Value, proxies: &dyn Proxies) -> Reply {
    match to_object(value, proxies) {
        Ok(object) => Reply::Return(object),
        Err(e) => Reply::Error(e),
    }
}

/// An object id as CPython clients see it: a hex string.
fn ident(id: ObjectId) -> String {
    format!("{:x}", id.0)
}

fn parse_ident(object: &Object) -> Option<ObjectId> {
    let text = object.as_str()?;
    u64::from_str_radix(text, 16).ok().map(ObjectId)
}

/// The id inside a pickled `Token(typeid, address, id)`.
fn token_ident(token: &Object) -> Option<ObjectId> {
    let Object::Build { state, .. } = token else {
        return None;
    };
    parse_ident(state.as_tuple()?.get(2)?)
}

/// A pickled `multiprocessing.managers.Token(typeid, address, id)`, with the server's
/// address as CPython writes it: `(host, port)` or a socket path.
pub(crate) fn token(typeid: &str, address: &manager_core::Address, id: ObjectId) -> Object {
    let address = match address {
        manager_core::Address::Unix(path) => Object::Str(path.display().to_string()),
        other => {
            let text = other.to_string();
            match text.rsplit_once(':') {
                Some((host, port)) => Object::Tuple(vec![
                    Object::Str(host.trim_matches(|c| c == '[' || c == ']').to_owned()),
                    Object::Int(port.parse().unwrap_or(0)),
                ]),
                None => Object::Str(text),
            }
        }
    };
    Object::Build {
        object: Box::new(Object::NewObj {
            class: Box::new(Object::global("multiprocessing.managers", "Token")),
            args: Box::new(Object::Tuple(vec![])),
        }),
        state: Box::new(Object::Tuple(vec![
            Object::Str(typeid.to_owned()),
            address,
            Object::Str(ident(id)),
        ])),
    }
}

/// The `exposed` tuple of a face.
fn exposed(face: PythonFace) -> Object {
    Object::Tuple(
        face.exposed
            .iter()
            .map(|name| Object::Str((*name).to_owned()))
            .collect(),
    )
}

/// A `#TRACEBACK` text for an exception raised by a server function.
fn traceback(e: &PyException) -> String {
    let message: Vec<String> = e
        .args
        .iter()
        .map(|a| match a {
            crate::Value::Str(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    format!("{}: {}", e.name, message.join(", "))
}

/// CPython's `debug_info` text: a row per object.
fn debug_info(state: &ServerState) -> String {
    state
        .objects
        .debug_info()
        .iter()
        .map(|row| {
            format!(
                "  {}:       refcount={}\n    <{} object>",
                ident(row.id),
                row.refcount,
                row.typeid
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
