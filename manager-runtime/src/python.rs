//! Serving stock CPython clients: how a typeid answers `multiprocessing.managers` proxies.
//!
//! A server made with [`ServerBuilder::python_clients`](crate::ServerBuilder::python_clients)
//! also accepts unchanged CPython 3.11+ clients (`BaseManager(address, authkey).connect()`)
//! on the same address as Rust clients: after the handshake, a first frame that is a pickle
//! (it starts with the `PROTO` opcode, `0x80`) makes the connection a Python one. Pickles are
//! read as data by [`manager_core::pickle`], never run.
//!
//! A typeid is available to Python clients when its [`Registration`](crate::Registration)
//! has a [`PythonFace`]: the `exposed` method names CPython's proxies expect, and two
//! functions that turn a Python call (positional and keyword arguments as [`Value`]s) into a
//! call of the object's Rust methods, and its result back into a Python value or exception.
//! `managers::sync` gives one to each `SyncManager` typeid.
//!
//! # Values
//! Arguments and results cross as [`Value`]s: `None`, `bool`, `int` (from -2^63 to
//! 2^64-1), `float`, `str`, `bytes`, `list`, `tuple` and `dict` become the [`Value`] of the
//! same kind, and back (a `bytearray` becomes bytes). Numbers compare and hash as Python's
//! do, so `1`, `1.0` and `True` are one dict key. Anything else (sets, user classes,
//! `datetime`, `Decimal`, larger integers) is kept as an [`Opaque`](crate::Opaque) object:
//! its pickle, stored as data and written back unchanged, so Python code gets it back and
//! Rust code sees that it is there but cannot read it.

use std::time::Duration;

use manager_core::pickle::{self, Object};

use manager_core::ObjectId;

use crate::Value;

/// A Python exception the client raises (`('#ERROR', exception)`): its class by module and
/// name (`builtins.KeyError`, `_queue.Empty`) and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct PyException {
    /// The class's module, as pickled (`builtins`, `_queue`, `queue`, `threading`).
    pub module: &'static str,
    /// The class's name.
    pub name: &'static str,
    /// The exception's arguments.
    pub args: Vec<Value>,
}

impl PyException {
    /// `module.name(*args)`.
    pub fn new(module: &'static str, name: &'static str, args: Vec<Value>) -> Self {
        PyException { module, name, args }
    }

    /// A built-in exception with one message (`TypeError('...')`).
    pub fn builtin(name: &'static str, message: impl Into<String>) -> Self {
        Self::new("builtins", name, vec![Value::Str(message.into())])
    }

    /// `TypeError(message)`.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::builtin("TypeError", message)
    }

    /// `ValueError(message)`.
    pub fn value_error(message: impl Into<String>) -> Self {
        Self::builtin("ValueError", message)
    }

    /// `RuntimeError(message)`.
    pub fn runtime_error(message: impl Into<String>) -> Self {
        Self::builtin("RuntimeError", message)
    }

    /// The exception as a pickle tree: `REDUCE(module.name, args)`.
    pub(crate) fn to_object(&self) -> Result<Object, PyException> {
        let args = self
            .args
            .iter()
            .map(|a| to_object(a, &NoProxies))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Object::exception(self.module, self.name, args))
    }
}

/// The arguments of a Python call: `args` and `kwds`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PyArgs {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments, in the order given.
    pub kwargs: Vec<(String, Value)>,
    /// The calling connection's number: the holder of a re-entrant lock, as CPython's
    /// server thread per client connection is.
    pub connection: u64,
}

impl PyArgs {
    /// Take argument `name`, at position `index` or by keyword (`None` if absent). A
    /// keyword given twice, or both ways, is a `TypeError`.
    pub fn take(&mut self, index: usize, name: &str) -> Result<Option<Value>, PyException> {
        let keyword = self.kwargs.iter().position(|(k, _)| k == name);
        let positional = self
            .args
            .get_mut(index)
            .map(|v| std::mem::replace(v, Value::None));
        match (positional, keyword) {
            (Some(_), Some(_)) => Err(PyException::type_error(format!(
                "got multiple values for argument '{name}'"
            ))),
            (Some(v), None) => Ok(Some(v)),
            (None, Some(k)) => Ok(Some(self.kwargs.remove(k).1)),
            (None, None) => Ok(None),
        }
    }

    /// Fail with a `TypeError` if arguments are left beyond the first `positional` or any
    /// keyword is left (call after taking every known argument).
    pub fn done(&self, method: &str, positional: usize) -> Result<(), PyException> {
        if self.args.len() > positional {
            return Err(PyException::type_error(format!(
                "{method}() takes at most {positional} positional arguments ({} given)",
                self.args.len()
            )));
        }
        if let Some((k, _)) = self.kwargs.first() {
            return Err(PyException::type_error(format!(
                "{method}() got an unexpected keyword argument '{k}'"
            )));
        }
        Ok(())
    }

    /// A required argument.
    pub fn required(
        &mut self,
        index: usize,
        name: &str,
        method: &str,
    ) -> Result<Value, PyException> {
        self.take(index, name)?.ok_or_else(|| {
            PyException::type_error(format!("{method}() missing required argument: '{name}'"))
        })
    }

    /// A boolean argument (Python truthiness of ints too), `default` if absent.
    pub fn bool(&mut self, index: usize, name: &str, default: bool) -> Result<bool, PyException> {
        Ok(match self.take(index, name)? {
            None => default,
            Some(v) => truthy(&v),
        })
    }

    /// A timeout in seconds: `None` (absent or `None`) waits for ever; a negative one is
    /// a `ValueError` unless `negative_is_forever` (as `threading.Lock.acquire(timeout=-1)`).
    pub fn timeout(
        &mut self,
        index: usize,
        name: &str,
        negative_is_forever: bool,
    ) -> Result<Option<Duration>, PyException> {
        let seconds = match self.take(index, name)? {
            None | Some(Value::None) => return Ok(None),
            Some(Value::Int(n)) => n as f64,
            Some(Value::UInt(n)) => n as f64,
            Some(Value::Float(f)) => f,
            Some(Value::Bool(b)) => f64::from(u8::from(b)),
            Some(other) => {
                return Err(PyException::type_error(format!(
                    "'{name}' must be a number, not {}",
                    other.type_name()
                )))
            }
        };
        if seconds.is_nan() {
            return Err(PyException::value_error(format!(
                "'{name}' must not be NaN"
            )));
        }
        if seconds < 0.0 {
            if negative_is_forever {
                return Ok(None);
            }
            return Err(PyException::value_error(format!(
                "'{name}' must be a non-negative number"
            )));
        }
        Ok(Some(
            Duration::try_from_secs_f64(seconds).unwrap_or(crate::transport::MAX_TIMEOUT),
        ))
    }

    /// An integer argument, `default` if absent.
    pub fn int(&mut self, index: usize, name: &str, default: i64) -> Result<i64, PyException> {
        match self.take(index, name)? {
            None => Ok(default),
            Some(Value::Int(n)) => Ok(n),
            Some(Value::Bool(b)) => Ok(i64::from(b)),
            Some(other) => Err(PyException::type_error(format!(
                "'{}' object cannot be interpreted as an integer",
                other.type_name()
            ))),
        }
    }
}

/// Python's truthiness of a value.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::None => false,
        Value::Bool(b) => *b,
        Value::Int(n) => *n != 0,
        Value::UInt(n) => *n != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        _ => true,
    }
}

/// Turns a Rust method's encoded result into the Python return value or exception.
pub type PyReply = Box<dyn FnOnce(&[u8]) -> Result<Value, PyException> + Send>;

/// What a Python method call becomes.
pub enum PyCall {
    /// Call the object's Rust method `method` with `args` (encoded with
    /// [`Codec::Postcard`](manager_core::Codec::Postcard), as a tuple of its parameters);
    /// `reply` turns the method's encoded result into the Python return value.
    Method {
        /// The Rust method's name.
        method: &'static str,
        /// Its arguments, encoded.
        args: Vec<u8>,
        /// The Python result from the encoded Rust result.
        reply: PyReply,
    },
    /// Answer at once, without calling the object.
    Return(Value),
    /// Call the object's Rust method `method` with `args`, then share a new object of
    /// `typeid` made from its result (CPython's `method_to_typeid`, as `dict.__iter__`
    /// gives an `Iterator`): `make` turns the method's encoded result into the encoded
    /// arguments of `typeid`'s constructor. The client gets a proxy (`#PROXY`).
    Proxy {
        /// The Rust method's name.
        method: &'static str,
        /// Its arguments, encoded.
        args: Vec<u8>,
        /// The typeid of the new object (registered with a [`PythonFace`]).
        typeid: &'static str,
        /// The new object's encoded constructor arguments from the method's result and
        /// the object called (a [`Value::Proxy`], for an iterator that watches its dict).
        make: fn(&[u8], Value) -> Result<Vec<u8>, PyException>,
    },
}

impl std::fmt::Debug for PyCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PyCall::Method { method, args, .. } => f
                .debug_struct("Method")
                .field("method", method)
                .field("args", &args.len())
                .finish_non_exhaustive(),
            PyCall::Return(v) => f.debug_tuple("Return").field(v).finish(),
            PyCall::Proxy { method, typeid, .. } => f
                .debug_struct("Proxy")
                .field("method", method)
                .field("typeid", typeid)
                .finish_non_exhaustive(),
        }
    }
}

impl PyCall {
    /// Call `method` with `args` (a tuple of its parameters); `reply` makes the Python
    /// result of its encoded result.
    pub fn method<A: serde::Serialize>(
        method: &'static str,
        args: &A,
        reply: impl FnOnce(&[u8]) -> Result<Value, PyException> + Send + 'static,
    ) -> Result<Self, PyException> {
        let args = manager_core::Codec::Postcard
            .encode(args)
            .map_err(|e| PyException::type_error(e.to_string()))?;
        Ok(PyCall::Method {
            method,
            args,
            reply: Box::new(reply),
        })
    }
}

/// Decode a Rust method's encoded result as `T` (for a [`PyCall::Method`]'s `reply`).
pub fn decode_result<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PyException> {
    manager_core::Codec::Postcard
        .decode(bytes)
        .map_err(|e| PyException::runtime_error(format!("undecodable result: {e}")))
}

/// How a typeid serves CPython clients (see the [module documentation](self)).
#[derive(Debug, Clone, Copy)]
pub struct PythonFace {
    /// The method names CPython's proxy for this typeid calls (its `exposed` tuple, sent in
    /// the `create` reply): CPython's own list, in its order.
    pub exposed: &'static [&'static str],
    /// The class of `multiprocessing.managers` that a proxy to this typeid is rebuilt as
    /// when a value carries one to a Python client (`DictProxy`, `AcquirerProxy`, ...);
    /// `AutoProxy` builds its methods from `exposed`.
    pub proxytype: &'static str,
    /// The Rust constructor's arguments (encoded with
    /// [`Codec::Postcard`](manager_core::Codec::Postcard), as the tuple the
    /// [`Registration`](crate::Registration)'s constructor takes) from the Python ones.
    pub create: fn(PyArgs) -> Result<Vec<u8>, PyException>,
    /// The call of an exposed method (never called with a name outside `exposed`).
    pub call: fn(&str, PyArgs) -> Result<PyCall, PyException>,
}

/// How proxies inside values cross between the server's live handles and CPython's
/// pickled `RebuildProxy(...)` calls.
pub(crate) trait Proxies {
    /// The live handle for a proxy a client sent (`typeid` and `id` from its token);
    /// `None` keeps the call opaque (an object of another manager, or one gone).
    fn proxy_in(&self, id: ObjectId) -> Option<Value>;
    /// The `RebuildProxy(...)` call a client rebuilds `handle` from.
    fn proxy_out(&self, handle: &crate::ProxyHandle) -> Result<Object, PyException>;
}

/// Values without proxies in them: a proxy stays opaque, and cannot be sent.
pub(crate) struct NoProxies;

impl Proxies for NoProxies {
    fn proxy_in(&self, _: ObjectId) -> Option<Value> {
        None
    }

    fn proxy_out(&self, _: &crate::ProxyHandle) -> Result<Object, PyException> {
        Err(PyException::type_error("a proxy cannot be sent here"))
    }
}

/// The object id of a pickled `RebuildProxy(func, Token(typeid, address, id), ...)`.
fn rebuilt_proxy(object: &Object) -> Option<ObjectId> {
    let Object::Reduce { callable, args } = object else {
        return None;
    };
    if callable.as_global() != Some(("multiprocessing.managers", "RebuildProxy")) {
        return None;
    }
    let token = args.as_tuple()?.get(1)?;
    let Object::Build { state, .. } = token else {
        return None;
    };
    let id = state.as_tuple()?.get(2)?.as_str()?;
    u64::from_str_radix(id, 16).ok().map(ObjectId)
}

/// A Python value as a [`Value`]: the kinds Rust reads as themselves, proxies as live
/// handles (through `proxies`), and everything else as an [`Opaque`](crate::Opaque)
/// object kept as its pickle.
pub(crate) fn from_object(object: Object, proxies: &dyn Proxies) -> Result<Value, PyException> {
    if let Some(id) = rebuilt_proxy(&object) {
        if let Some(handle) = proxies.proxy_in(id) {
            return Ok(handle);
        }
    }
    let from_object = |o| from_object(o, proxies);
    let objects = |items: Vec<Object>| -> Result<Vec<Value>, PyException> {
        items
            .into_iter()
            .map(|o| from_object_with(o, proxies))
            .collect()
    };
    Ok(match object {
        Object::None => Value::None,
        Object::Bool(b) => Value::Bool(b),
        Object::Int(n) => Value::Int(n),
        Object::BigInt(bytes) => match big_to_u64(&bytes) {
            Some(n) => Value::UInt(n),
            None => opaque("int", Object::BigInt(bytes)),
        },
        Object::Float(f) => Value::Float(f),
        Object::Str(s) => Value::Str(s),
        Object::Bytes(b) | Object::ByteArray(b) => Value::Bytes(b),
        Object::List(items) => Value::List(objects(items)?),
        Object::Tuple(items) => Value::Tuple(objects(items)?),
        Object::Dict(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((from_object(k)?, from_object(v)?)))
                .collect::<Result<_, PyException>>()?,
        ),
        other => {
            let name = describe(&other);
            opaque(&name, other)
        }
    })
}

fn from_object_with(object: Object, proxies: &dyn Proxies) -> Result<Value, PyException> {
    from_object(object, proxies)
}

fn opaque(type_name: &str, object: Object) -> Value {
    Value::Opaque(crate::Opaque::new(type_name, pickle::encode(&object)))
}

/// A [`Value`] as a Python value; proxies as `RebuildProxy(...)` calls (through
/// `proxies`).
pub(crate) fn to_object(value: &Value, proxies: &dyn Proxies) -> Result<Object, PyException> {
    let to_object = |v| to_object(v, proxies);
    Ok(match value {
        Value::None => Object::None,
        Value::Bool(b) => Object::Bool(*b),
        Value::Int(n) => Object::Int(*n),
        Value::UInt(n) => match i64::try_from(*n) {
            Ok(n) => Object::Int(n),
            Err(_) => Object::int_from_le_bytes(&[&n.to_le_bytes()[..], &[0]].concat()),
        },
        Value::Float(f) => Object::Float(*f),
        Value::Str(s) => Object::Str(s.clone()),
        Value::Bytes(b) => Object::Bytes(b.clone()),
        Value::List(items) => Object::List(items.iter().map(to_object).collect::<Result<_, _>>()?),
        Value::Tuple(items) => {
            Object::Tuple(items.iter().map(to_object).collect::<Result<_, _>>()?)
        }
        Value::Map(entries) => Object::Dict(
            entries
                .iter()
                .map(|(k, v)| Ok((to_object(k)?, to_object(v)?)))
                .collect::<Result<_, PyException>>()?,
        ),
        Value::Variant(name, payload) => {
            Object::Dict(vec![(Object::Str(name.to_string()), to_object(payload)?)])
        }
        Value::Opaque(o) => {
            pickle::decode(o.pickle(), &pickle::Limits::default()).map_err(|e| {
                PyException::runtime_error(format!("a stored {} is unreadable: {e}", o.type_name()))
            })?
        }
        Value::Proxy(handle) => proxies.proxy_out(handle)?,
    })
}

/// A non-negative little-endian two's-complement integer below 2^64.
fn big_to_u64(bytes: &[u8]) -> Option<u64> {
    let (&sign, _) = bytes.split_last()?;
    if sign & 0x80 != 0 {
        return None;
    }
    let significant = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if significant > 8 {
        return None;
    }
    let mut le = [0u8; 8];
    le[..significant].copy_from_slice(&bytes[..significant]);
    Some(u64::from_le_bytes(le))
}

/// The Python type of an object kept opaque: `module.name` of what builds it.
fn describe(object: &Object) -> String {
    match object {
        Object::Set(_) => "set".into(),
        Object::FrozenSet(_) => "frozenset".into(),
        Object::StrBytes(_) => "str".into(),
        Object::Global { module, name } => format!("{module}.{name}"),
        Object::Reduce { callable, .. }
        | Object::NewObj {
            class: callable, ..
        }
        | Object::NewObjEx {
            class: callable, ..
        } => match callable.as_global() {
            Some((module, name)) => format!("{module}.{name}"),
            None => "object".into(),
        },
        Object::Build { object, .. }
        | Object::Appends { object, .. }
        | Object::SetItems { object, .. } => describe(object),
        _ => "object".into(),
    }
}
