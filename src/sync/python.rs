//! The `SyncManager` typeids as stock CPython clients see them: CPython's `exposed` method
//! names, arguments and exceptions, mapped onto the Rust types' methods.
//!
//! [`register`](super::register) gives each typeid its face. Give one to your own
//! registrations of these types too, to serve them to Python clients, for example a queue
//! every client shares by name:
//!
//! ```
//! use managers::sync::{python, Queue};
//! use managers::{Registration, ServerBuilder};
//!
//! let server = managers::sync::register(ServerBuilder::new())
//!     .python_clients(true)
//!     .register(Registration::instance("jobs", Queue::new(0)).python(python::QUEUE));
//! # let _ = server;
//! ```
//!
//! A Python client then reaches it with `SyncManager.register('jobs')` and `m.jobs()`.

use std::time::Duration;

use manager_runtime::python::{decode_result, PyArgs, PyCall, PyException, PythonFace};

use super::error::SyncError;
use crate::Value;

type Reply = Result<Value, PyException>;

/// Encode a constructor's arguments (the tuple the registration's constructor takes).
fn ctor<A: serde::Serialize>(args: &A) -> Result<Vec<u8>, PyException> {
    manager_core::Codec::Postcard
        .encode(args)
        .map_err(|e| PyException::type_error(e.to_string()))
}

/// The exception CPython raises for `e`, from the method that returned it.
fn exception(e: SyncError) -> PyException {
    match e {
        SyncError::Empty => PyException::new("_queue", "Empty", vec![]),
        SyncError::Full => PyException::new("queue", "Full", vec![]),
        SyncError::NotOwner => PyException::runtime_error("cannot release un-acquired lock"),
        SyncError::NotLocked => PyException::runtime_error("release unlocked lock"),
        SyncError::TooManyReleases => PyException::value_error("Semaphore released too many times"),
        SyncError::BrokenBarrier => PyException::new("threading", "BrokenBarrierError", vec![]),
        SyncError::TooManyTaskDone => PyException::value_error("task_done() called too many times"),
        SyncError::NotFound(what) => PyException::builtin("KeyError", what),
        SyncError::OutOfRange(what) => PyException::builtin("IndexError", what),
        SyncError::Invalid(what) => PyException::value_error(what),
        SyncError::Manager(e) => PyException::runtime_error(e.to_string()),
    }
}

// Replies: the Rust method's encoded result as a Python value.

fn none(bytes: &[u8]) -> Reply {
    decode_result::<()>(bytes).map(|()| Value::None)
}

fn boolean(bytes: &[u8]) -> Reply {
    decode_result::<bool>(bytes).map(Value::Bool)
}

fn count(bytes: &[u8]) -> Reply {
    let n = decode_result::<usize>(bytes)?;
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn value(bytes: &[u8]) -> Reply {
    decode_result::<Value>(bytes)
}

fn values(bytes: &[u8]) -> Reply {
    decode_result::<Vec<Value>>(bytes).map(Value::List)
}

fn pairs(bytes: &[u8]) -> Reply {
    let items = decode_result::<Vec<(Value, Value)>>(bytes)?;
    Ok(Value::List(
        items
            .into_iter()
            .map(|(k, v)| Value::Tuple(vec![k, v]))
            .collect(),
    ))
}

fn mapping(bytes: &[u8]) -> Reply {
    decode_result::<Vec<(Value, Value)>>(bytes).map(|items| Value::Map(items.into_iter().collect()))
}

fn outcome_none(bytes: &[u8]) -> Reply {
    decode_result::<Result<(), SyncError>>(bytes)?
        .map(|()| Value::None)
        .map_err(exception)
}

fn outcome_value(bytes: &[u8]) -> Reply {
    decode_result::<Result<Value, SyncError>>(bytes)?.map_err(exception)
}

fn outcome_count(bytes: &[u8]) -> Reply {
    let n = decode_result::<Result<usize, SyncError>>(bytes)?.map_err(exception)?;
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn outcome_pair(bytes: &[u8]) -> Reply {
    let (k, v) = decode_result::<Result<(Value, Value), SyncError>>(bytes)?.map_err(exception)?;
    Ok(Value::Tuple(vec![k, v]))
}

/// `dict[key]`: `KeyError(key)` when absent.
fn item(key: Value) -> impl FnOnce(&[u8]) -> Reply + Send {
    move |bytes| match decode_result::<Option<Value>>(bytes)? {
        Some(v) => Ok(v),
        None => Err(PyException::new("builtins", "KeyError", vec![key])),
    }
}

/// `dict.pop(key)`, `del dict[key]`: `KeyError(key)` when absent.
fn keyed(key: Value, then: fn(&[u8]) -> Reply) -> impl FnOnce(&[u8]) -> Reply + Send {
    move |bytes| {
        then(bytes).map_err(|e| match e.name {
            "KeyError" => PyException::new("builtins", "KeyError", vec![key]),
            _ => e,
        })
    }
}

/// A method without arguments: the Rust method `rust`, its result through `reply`.
fn plain(
    py: &PyArgs,
    method: &str,
    rust: &'static str,
    reply: fn(&[u8]) -> Reply,
) -> Result<PyCall, PyException> {
    py.done(method, 0)?;
    PyCall::method(rust, &(), reply)
}

/// A method without arguments whose Rust method has the same name, one of `names`.
fn same_name(
    py: &PyArgs,
    method: &str,
    names: &[&'static str],
    reply: fn(&[u8]) -> Reply,
) -> Result<PyCall, PyException> {
    match names.iter().find(|&&name| name == method) {
        Some(name) => plain(py, method, name, reply),
        None => Err(PyException::builtin("AttributeError", method.to_owned())),
    }
}

/// `acquire(blocking=True, timeout=-1)` of `threading.Lock` and friends.
fn acquire_args(py: &mut PyArgs) -> Result<(bool, Option<Duration>), PyException> {
    let blocking = py.bool(0, "blocking", true)?;
    let timeout = py.timeout(1, "timeout", true)?;
    py.done("acquire", 2)?;
    if !blocking && timeout.is_some() {
        return Err(PyException::value_error(
            "can't specify a timeout for a non-blocking call",
        ));
    }
    Ok((blocking, timeout))
}

/// `threading.Lock`: `Lock()`; held by the client connection that acquired it.
pub const LOCK: PythonFace = PythonFace {
    exposed: &["acquire", "release"],
    proxytype: "AcquirerProxy",
    create: |py| {
        py.done("Lock", 0)?;
        ctor(&())
    },
    call: |method, mut py| match method {
        "acquire" => PyCall::method("acquire", &acquire_args(&mut py)?, boolean),
        _ => plain(&py, method, "release", outcome_none),
    },
};

/// `threading.Semaphore(value=1)` and `BoundedSemaphore(value=1)`.
pub const SEMAPHORE: PythonFace = PythonFace {
    exposed: &["acquire", "release"],
    proxytype: "AcquirerProxy",
    create: |mut py| {
        let value = py.int(0, "value", 1)?;
        py.done("Semaphore", 1)?;
        let value = usize::try_from(value)
            .map_err(|_| PyException::value_error("semaphore initial value must be >= 0"))?;
        ctor(&(value,))
    },
    call: |method, mut py| match method {
        "acquire" => PyCall::method("acquire", &acquire_args(&mut py)?, boolean),
        _ => plain(&py, method, "release", outcome_none),
    },
};

/// `threading.Event()`.
pub const EVENT: PythonFace = PythonFace {
    exposed: &["is_set", "set", "clear", "wait"],
    proxytype: "EventProxy",
    create: |py| {
        py.done("Event", 0)?;
        ctor(&())
    },
    call: |method, mut py| match method {
        "wait" => {
            let timeout = py.timeout(0, "timeout", true)?;
            py.done(method, 1)?;
            PyCall::method("wait", &(timeout,), boolean)
        }
        "is_set" => plain(&py, method, "is_set", boolean),
        "set" | "clear" => same_name(&py, method, &["set", "clear"], none),
        _ => Err(PyException::builtin("AttributeError", method.to_owned())),
    },
};

/// `queue.Queue(maxsize=0)` (also `JoinableQueue`): CPython's auto-exposed methods, as
/// CPython 3.11 and 3.12 list them (3.13's `shutdown` is left out, so that one list works
/// for every client).
pub const QUEUE: PythonFace = PythonFace {
    exposed: &[
        "empty",
        "full",
        "get",
        "get_nowait",
        "join",
        "put",
        "put_nowait",
        "qsize",
        "task_done",
    ],
    proxytype: "AutoProxy",
    create: |mut py| {
        let maxsize = py.int(0, "maxsize", 0)?;
        py.done("Queue", 1)?;
        // A maxsize of 0 or less is unbounded, as in CPython.
        ctor(&(usize::try_from(maxsize).unwrap_or(0),))
    },
    call: |method, mut py| match method {
        "put" | "put_nowait" => {
            let item = py.required(0, "item", method)?;
            let (block, timeout) = match method {
                "put" => (py.bool(1, "block", true)?, py.timeout(2, "timeout", false)?),
                _ => (false, None),
            };
            py.done(method, if method == "put" { 3 } else { 1 })?;
            PyCall::method("put", &(item, block, timeout), outcome_none)
        }
        "get" | "get_nowait" => {
            let (block, timeout) = match method {
                "get" => (py.bool(0, "block", true)?, py.timeout(1, "timeout", false)?),
                _ => (false, None),
            };
            py.done(method, if method == "get" { 2 } else { 0 })?;
            PyCall::method("get", &(block, timeout), outcome_value)
        }
        "qsize" => plain(&py, method, "qsize", count),
        "empty" | "full" => same_name(&py, method, &["empty", "full"], boolean),
        "task_done" => plain(&py, method, "task_done", outcome_none),
        _ => plain(&py, method, "join", none),
    },
};

/// `key`, if Python could hash it; else `TypeError: unhashable type`, as a dict raises.
fn hashable(key: Value) -> Result<Value, PyException> {
    fn check(key: &Value) -> Result<(), PyException> {
        match key {
            Value::List(_) | Value::Map(_) => Err(PyException::type_error(format!(
                "unhashable type: '{}'",
                key.type_name()
            ))),
            Value::Opaque(o) if o.type_name() == "set" => {
                Err(PyException::type_error("unhashable type: 'set'"))
            }
            Value::Tuple(items) => items.iter().try_for_each(check),
            _ => Ok(()),
        }
    }
    check(&key)?;
    Ok(key)
}

/// Entries for `dict(...)`/`update(...)`: a mapping or a list of pairs, then keywords.
fn entries(first: Option<Value>, py: PyArgs) -> Result<Vec<(Value, Value)>, PyException> {
    let mut out: Vec<(Value, Value)> = match first {
        None | Some(Value::None) => Vec::new(),
        Some(Value::Map(map)) => map.into_iter().collect(),
        Some(Value::List(items) | Value::Tuple(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::List(pair) | Value::Tuple(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    Ok((
                        pair.next().unwrap_or(Value::None),
                        pair.next().unwrap_or(Value::None),
                    ))
                }
                _ => Err(PyException::type_error(
                    "cannot convert dictionary update sequence element to a sequence of length 2",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(PyException::type_error(format!(
                "'{}' object is not iterable",
                other.type_name()
            )))
        }
    };
    out.extend(py.kwargs.into_iter().map(|(k, v)| (Value::Str(k), v)));
    out.into_iter()
        .map(|(k, v)| Ok((hashable(k)?, v)))
        .collect()
}

/// `dict(...)`: `DictProxy`'s methods (iteration, which needs a server-side iterator, is
/// not available yet).
pub const DICT: PythonFace = PythonFace {
    exposed: &[
        "__contains__",
        "__delitem__",
        "__getitem__",
        "__iter__",
        "__len__",
        "__setitem__",
        "clear",
        "copy",
        "get",
        "items",
        "keys",
        "pop",
        "popitem",
        "setdefault",
        "update",
        "values",
    ],
    proxytype: "DictProxy",
    create: |mut py| {
        if py.args.len() > 1 {
            return Err(PyException::type_error("dict expected at most 1 argument"));
        }
        let first = py.args.pop();
        ctor(&(entries(first, py)?,))
    },
    call: |method, mut py| match method {
        "__getitem__" => {
            let key = hashable(py.required(0, "key", method)?)?;
            py.done(method, 1)?;
            PyCall::method("get", &(key.clone(),), item(key))
        }
        "get" => {
            let key = hashable(py.required(0, "key", method)?)?;
            let default = py.take(1, "default")?;
            py.done(method, 2)?;
            // The default is applied here: the Rust method has none.
            let default = default.unwrap_or(Value::None);
            PyCall::method("get", &(key,), move |b| {
                Ok(decode_result::<Option<Value>>(b)?.unwrap_or(default))
            })
        }
        "__setitem__" => {
            let key = hashable(py.required(0, "key", method)?)?;
            let value = py.required(1, "value", method)?;
            py.done(method, 2)?;
            PyCall::method("set", &(key, value), none)
        }
        "__delitem__" => {
            let key = hashable(py.required(0, "key", method)?)?;
            py.done(method, 1)?;
            PyCall::method("delete", &(key.clone(),), keyed(key, outcome_none))
        }
        "__contains__" => {
            let key = hashable(py.required(0, "key", method)?)?;
            py.done(method, 1)?;
            PyCall::method("contains", &(key,), boolean)
        }
        "__len__" => plain(&py, method, "len", count),
        "keys" | "values" => same_name(&py, method, &["keys", "values"], values),
        "items" => plain(&py, method, "items", pairs),
        "copy" | "#GETVALUE" => plain(&py, method, "items", mapping),
        "update" => {
            let first = py.take(0, "other")?;
            if py.args.len() > 1 {
                return Err(PyException::type_error(
                    "update expected at most 1 argument",
                ));
            }
            py.args.clear();
            PyCall::method("update", &(entries(first, py)?,), none)
        }
        "pop" => {
            let key = hashable(py.required(0, "key", method)?)?;
            let default = py.take(1, "default")?;
            py.done(method, 2)?;
            PyCall::method("pop", &(key.clone(), default), keyed(key, outcome_value))
        }
        "popitem" => plain(&py, method, "popitem", outcome_pair),
        "setdefault" => {
            let key = hashable(py.required(0, "key", method)?)?;
            let default = py.take(1, "default")?.unwrap_or(Value::None);
            py.done(method, 2)?;
            PyCall::method("setdefault", &(key, default), value)
        }
        "clear" => plain(&py, method, "clear", none),
        "__iter__" => {
            py.done(method, 0)?;
            Ok(PyCall::Proxy {
                method: "keys",
                args: ctor(&())?,
                typeid: "Iterator",
                make: |b, dict| ctor(&(decode_result::<Vec<Value>>(b)?, Some(dict))),
            })
        }
        _ => Err(PyException::type_error(format!(
            "dict.{method} through a proxy is not supported yet"
        ))),
    },
};

/// A list index argument.
fn index(py: &mut PyArgs, position: usize, method: &str) -> Result<i64, PyException> {
    match py.required(position, "index", method)? {
        Value::Int(i) => Ok(i),
        Value::Bool(b) => Ok(i64::from(b)),
        other => Err(PyException::type_error(format!(
            "list indices must be integers, not {}",
            other.type_name()
        ))),
    }
}

/// `seq[i]` of a list or an array (`what`): `IndexError` out of range.
fn item_get(py: &mut PyArgs, method: &str, what: &'static str) -> Result<PyCall, PyException> {
    let i = index(py, 0, method)?;
    py.done(method, 1)?;
    PyCall::method("get", &(i,), move |b| {
        outcome_value(b)
            .map_err(|_| PyException::builtin("IndexError", format!("{what} index out of range")))
    })
}

/// `seq[i] = v` of a list or an array (`what`): `IndexError` out of range.
fn item_set(py: &mut PyArgs, method: &str, what: &'static str) -> Result<PyCall, PyException> {
    let i = index(py, 0, method)?;
    let v = py.required(1, "value", method)?;
    py.done(method, 2)?;
    PyCall::method("set", &(i, v), move |b| {
        outcome_none(b).map_err(|_| {
            PyException::builtin(
                "IndexError",
                format!("{what} assignment index out of range"),
            )
        })
    })
}

/// `list(...)`: `ListProxy`'s methods (slices, `+`, `*` are not available yet).
pub const LIST: PythonFace = PythonFace {
    exposed: &[
        "__add__",
        "__contains__",
        "__delitem__",
        "__getitem__",
        "__len__",
        "__mul__",
        "__reversed__",
        "__rmul__",
        "__setitem__",
        "append",
        "count",
        "extend",
        "index",
        "insert",
        "pop",
        "remove",
        "reverse",
        "sort",
        "__imul__",
    ],
    proxytype: "ListProxy",
    create: |mut py| {
        let items = iterable(py.take(0, "iterable")?.unwrap_or(Value::None), "list")?;
        py.done("list", 1)?;
        ctor(&(items,))
    },
    call: |method, mut py| match method {
        "__getitem__" => {
            if let Some(slice) = py.args.first().and_then(slice_of) {
                let slice = slice?;
                py.args.clear();
                py.done(method, 0)?;
                if slice.step.is_none() {
                    return PyCall::method("slice", &(slice.start, slice.stop), values);
                }
                return PyCall::method("to_vec", &(), move |b| {
                    let items = decode_result::<Vec<Value>>(b)?;
                    let picked = slice.indices(items.len());
                    Ok(Value::List(
                        picked
                            .into_iter()
                            .filter_map(|i| items.get(i).cloned())
                            .collect(),
                    ))
                });
            }
            item_get(&mut py, method, "list")
        }
        "__setitem__" => {
            if let Some(slice) = py.args.first().and_then(slice_of) {
                let slice = slice?;
                let items = iterable(py.required(1, "value", method)?, method)?;
                py.args.truncate(1);
                py.done(method, 1)?;
                return splice(slice, Some(items));
            }
            item_set(&mut py, method, "list")
        }
        "__delitem__" => {
            if let Some(slice) = py.args.first().and_then(slice_of) {
                let slice = slice?;
                py.args.clear();
                py.done(method, 0)?;
                return splice(slice, None);
            }
            let i = index(&mut py, 0, method)?;
            py.done(method, 1)?;
            PyCall::method("pop", &(Some(i),), |b| {
                outcome_value(b).map(|_| Value::None)
            })
        }
        "__len__" => plain(&py, method, "len", count),
        "__contains__" => {
            let item = py.required(0, "item", method)?;
            py.done(method, 1)?;
            PyCall::method("count", &(item,), |b| {
                Ok(Value::Bool(decode_result::<usize>(b)? > 0))
            })
        }
        "append" => {
            let item = py.required(0, "object", method)?;
            py.done(method, 1)?;
            PyCall::method("append", &(item,), none)
        }
        "extend" => {
            let items = iterable(py.required(0, "iterable", method)?, method)?;
            py.done(method, 1)?;
            PyCall::method("extend", &(items,), none)
        }
        "insert" => {
            let i = index(&mut py, 0, method)?;
            let item = py.required(1, "object", method)?;
            py.done(method, 2)?;
            PyCall::method("insert", &(i, item), none)
        }
        "pop" => {
            let i = match py.take(0, "index")? {
                None => None,
                Some(Value::Int(i)) => Some(i),
                Some(other) => {
                    return Err(PyException::type_error(format!(
                        "'{}' object cannot be interpreted as an integer",
                        other.type_name()
                    )))
                }
            };
            py.done(method, 1)?;
            PyCall::method("pop", &(i,), |b| {
                decode_result::<Result<Value, SyncError>>(b)?.map_err(|e| match e {
                    SyncError::OutOfRange(_) | SyncError::NotFound(_) => {
                        PyException::builtin("IndexError", "pop from empty list")
                    }
                    e => exception(e),
                })
            })
        }
        "index" => {
            let item = py.required(0, "value", method)?;
            py.done(method, 1)?;
            PyCall::method("index", &(item,), |b| {
                outcome_count(b).map_err(|_| PyException::value_error("value is not in list"))
            })
        }
        "count" => {
            let item = py.required(0, "value", method)?;
            py.done(method, 1)?;
            PyCall::method("count", &(item,), count)
        }
        "remove" => {
            let item = py.required(0, "value", method)?;
            py.done(method, 1)?;
            PyCall::method("remove", &(item,), |b| {
                outcome_none(b)
                    .map_err(|_| PyException::value_error("list.remove(x): x not in list"))
            })
        }
        "reverse" => plain(&py, method, "reverse", none),
        "sort" => {
            if py.take(0, "key")?.is_some_and(|k| k != Value::None) {
                return Err(PyException::type_error(
                    "sort(key=...) needs Python code on the server: not supported",
                ));
            }
            let reverse = py.bool(99, "reverse", false)?;
            py.done(method, 0)?;
            PyCall::method("sort", &(reverse,), none)
        }
        "#GETVALUE" => plain(&py, method, "to_vec", values),
        "__reversed__" => {
            py.done(method, 0)?;
            PyCall::method("to_vec", &(), |b| {
                let mut items = decode_result::<Vec<Value>>(b)?;
                items.reverse();
                Ok(Value::List(items))
            })
        }
        "__add__" => {
            let other = match py.required(0, "value", method)? {
                Value::List(items) => items,
                other => {
                    return Err(PyException::type_error(format!(
                        "can only concatenate list (not \"{}\") to list",
                        other.type_name()
                    )))
                }
            };
            py.done(method, 1)?;
            PyCall::method("to_vec", &(), move |b| {
                let mut items = decode_result::<Vec<Value>>(b)?;
                items.extend(other);
                Ok(Value::List(items))
            })
        }
        "__imul__" => {
            let n = py.int(0, "value", 1)?;
            py.done(method, 1)?;
            PyCall::method("repeat", &(n,), |b| {
                outcome_none(b).map_err(|_| PyException::builtin("MemoryError", "list too large"))
            })
        }
        "__mul__" | "__rmul__" => {
            let n = py.int(0, "value", 1)?;
            py.done(method, 1)?;
            PyCall::method("to_vec", &(), move |b| {
                let items = decode_result::<Vec<Value>>(b)?;
                let n = usize::try_from(n).unwrap_or(0);
                if items.len().saturating_mul(n) > 1 << 24 {
                    return Err(PyException::builtin("MemoryError", "list too large"));
                }
                Ok(Value::List(
                    (0..n).flat_map(|_| items.iter().cloned()).collect(),
                ))
            })
        }
        _ => Err(PyException::type_error(format!(
            "list.{method} through a proxy is not supported yet"
        ))),
    },
};

/// `Value(typecode, value, lock=True)`: the typecode and lock are ignored, as in CPython.
pub const VALUE: PythonFace = PythonFace {
    exposed: &["get", "set"],
    proxytype: "ValueProxy",
    create: |mut py| {
        let _typecode = py.required(0, "typecode", "Value")?;
        let value = py.required(1, "value", "Value")?;
        let _lock = py.take(2, "lock")?;
        py.done("Value", 3)?;
        ctor(&(value,))
    },
    call: |method, mut py| match method {
        "set" => {
            let v = py.required(0, "value", method)?;
            py.done(method, 1)?;
            PyCall::method("set", &(v,), none)
        }
        _ => plain(&py, method, "get", value),
    },
};

/// `Namespace(**kwds)`.
pub const NAMESPACE: PythonFace = PythonFace {
    exposed: &["__getattribute__", "__setattr__", "__delattr__"],
    proxytype: "NamespaceProxy",
    create: |py| {
        if !py.args.is_empty() || !py.kwargs.is_empty() {
            return Err(PyException::type_error(
                "Namespace(**kwds) with initial attributes is not supported yet",
            ));
        }
        ctor(&())
    },
    call: |method, mut py| {
        let name = match py.required(0, "name", method)? {
            Value::Str(name) => name,
            _ => return Err(PyException::type_error("attribute name must be a string")),
        };
        match method {
            "__setattr__" => {
                let v = py.required(1, "value", method)?;
                py.done(method, 2)?;
                PyCall::method("set", &(name, v), none)
            }
            "__delattr__" => {
                py.done(method, 1)?;
                PyCall::method("delete", &(name,), |b| {
                    outcome_none(b)
                        .map_err(|e| PyException::new("builtins", "AttributeError", e.args))
                })
            }
            _ => {
                py.done(method, 1)?;
                PyCall::method("get", &(name,), |b| {
                    outcome_value(b)
                        .map_err(|e| PyException::new("builtins", "AttributeError", e.args))
                })
            }
        }
    },
};

/// The items of a Python iterable sent by value: a list, a tuple, or a `range` (which a
/// client pickles as the call that rebuilds it; at most 2^24 items).
fn iterable(value: Value, what: &str) -> Result<Vec<Value>, PyException> {
    match value {
        Value::None => Ok(Vec::new()),
        Value::List(items) | Value::Tuple(items) => Ok(items),
        Value::Opaque(o) if o.type_name() == "builtins.range" => range_items(o.pickle())
            .ok_or_else(|| PyException::value_error(format!("{what}: range too large"))),
        other => Err(PyException::type_error(format!(
            "'{}' object is not iterable",
            other.type_name()
        ))),
    }
}

/// The integers of a pickled `range(start, stop, step)`.
fn range_items(pickle: &[u8]) -> Option<Vec<Value>> {
    let (start, stop, step) = match pickle_call(pickle, "builtins", "range")?.as_slice() {
        [Object::Int(a), Object::Int(b), Object::Int(c)] => (*a, *b, *c),
        _ => return None,
    };
    if step == 0 {
        return None;
    }
    let len = if step > 0 {
        (i128::from(stop) - i128::from(start) + i128::from(step) - 1) / i128::from(step)
    } else {
        (i128::from(start) - i128::from(stop) - i128::from(step) - 1) / -i128::from(step)
    };
    let len = usize::try_from(len.max(0)).ok().filter(|&n| n <= 1 << 24)?;
    Some(
        (0..len)
            .map(|i| Value::Int(start + step * i as i64))
            .collect(),
    )
}

/// The arguments of `module.name(*args)`, the form CPython pickles a `range` or a
/// `slice` in.
fn pickle_call(pickle: &[u8], module: &str, name: &str) -> Option<Vec<Object>> {
    match manager_core::pickle::decode(pickle, &manager_core::pickle::Limits::default()).ok()? {
        Object::Reduce { callable, args } if callable.as_global() == Some((module, name)) => {
            match *args {
                Object::Tuple(args) => Some(args),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A `slice(start, stop, step)` argument.
#[derive(Clone, Copy)]
struct Slice {
    start: Option<i64>,
    stop: Option<i64>,
    /// `None` for 1.
    step: Option<i64>,
}

impl Slice {
    /// The indices it selects in a sequence of `len` items.
    fn indices(self, len: usize) -> Vec<usize> {
        super::values::slice_indices(len, self.start, self.stop, self.step.unwrap_or(1))
    }
}

/// A `slice(start, stop, step)` argument, if `value` is one.
fn slice_of(value: &Value) -> Option<Result<Slice, PyException>> {
    let Value::Opaque(o) = value else {
        return None;
    };
    if o.type_name() != "builtins.slice" {
        return None;
    }
    let bound = |o: &Object| match o {
        Object::None => Ok(None),
        Object::Int(i) => Ok(Some(*i)),
        _ => Err(PyException::type_error(
            "slice indices must be integers or None",
        )),
    };
    Some(
        match pickle_call(o.pickle(), "builtins", "slice").as_deref() {
            Some([start, stop, step]) => (|| {
                let slice = Slice {
                    start: bound(start)?,
                    stop: bound(stop)?,
                    step: bound(step)?.filter(|&s| s != 1),
                };
                if slice.step == Some(0) {
                    return Err(PyException::value_error("slice step cannot be zero"));
                }
                Ok(slice)
            })(),
            _ => Err(PyException::type_error("malformed slice")),
        },
    )
}

/// `l[a:b:c] = items` (`Some`) or `del l[a:b:c]` (`None`).
fn splice(slice: Slice, items: Option<Vec<Value>>) -> Result<PyCall, PyException> {
    let step = slice.step.unwrap_or(1);
    let reply = |b: &[u8]| {
        decode_result::<Result<(), SyncError>>(b)?
            .map(|()| Value::None)
            .map_err(|e| match e {
                SyncError::Invalid(message) => PyException::value_error(message),
                e => exception(e),
            })
    };
    match items {
        Some(items) => PyCall::method(
            "assign_slice",
            &(slice.start, slice.stop, step, items),
            reply,
        ),
        None => PyCall::method("delete_slice", &(slice.start, slice.stop, step), reply),
    }
}

use manager_core::pickle::Object;

/// `Iterator`, what `iter(dict)` returns to a CPython client: `__next__` until
/// `StopIteration`.
pub const ITERATOR: PythonFace = PythonFace {
    exposed: &["__next__", "send", "throw", "close"],
    proxytype: "IteratorProxy",
    create: |_| {
        Err(PyException::type_error(
            "Iterator objects are made by the server",
        ))
    },
    call: |method, py| {
        py.done(method, usize::MAX)?;
        match method {
            "__next__" => PyCall::method("next", &(), |b| {
                decode_result::<Result<Option<Value>, SyncError>>(b)?
                    .map_err(|e| match e {
                        SyncError::Invalid(message) => PyException::runtime_error(message),
                        e => exception(e),
                    })?
                    .ok_or_else(|| PyException::new("builtins", "StopIteration", vec![]))
            }),
            "close" => PyCall::method("close", &(), none),
            _ => Err(PyException::builtin(
                "AttributeError",
                format!("'dict_keyiterator' object has no attribute '{method}'"),
            )),
        }
    },
};

/// `threading.RLock()`: held by the client connection (CPython's server thread of that
/// connection), re-entrant.
pub const RLOCK: PythonFace = PythonFace {
    exposed: &["acquire", "release"],
    proxytype: "AcquirerProxy",
    create: |py| {
        py.done("RLock", 0)?;
        ctor(&())
    },
    call: |method, mut py| {
        let owner = py.connection;
        match method {
            "acquire" => {
                let (blocking, timeout) = acquire_args(&mut py)?;
                PyCall::method("acquire", &(owner, blocking, timeout), boolean)
            }
            _ => {
                py.done(method, 0)?;
                PyCall::method("release", &(owner,), outcome_none)
            }
        }
    },
};

/// The exception of a condition used without its lock held.
fn unheld(action: &'static str) -> impl FnOnce(&[u8]) -> Reply + Send {
    move |b| {
        outcome_none(b).map_err(|e| match e.name {
            "RuntimeError" => {
                PyException::runtime_error(format!("cannot {action} un-acquired lock"))
            }
            _ => e,
        })
    }
}

/// `threading.Condition(lock=None)`: over its own re-entrant lock, or over a `Lock` or
/// `RLock` of this manager given as a proxy.
pub const CONDITION: PythonFace = PythonFace {
    exposed: &["acquire", "release", "wait", "notify", "notify_all"],
    proxytype: "ConditionProxy",
    create: |mut py| {
        use crate::Proxy as _;
        let lock = match py.take(0, "lock")? {
            None | Some(Value::None) => None,
            // `Condition(lock)` with a proxy to a `Lock` or `RLock` of this manager.
            Some(Value::Proxy(handle)) => Some(match handle.typeid() {
                "Lock" => super::ConditionLock::Lock(super::LockProxy::from_handle(handle)),
                "RLock" => super::ConditionLock::RLock(super::RLockProxy::from_handle(handle)),
                other => {
                    return Err(PyException::type_error(format!(
                        "a Condition's lock must be a Lock or an RLock, not {other}"
                    )))
                }
            }),
            Some(other) => {
                return Err(PyException::type_error(format!(
                    "a Condition's lock must be a lock proxy, not {}",
                    other.type_name()
                )))
            }
        };
        py.done("Condition", 1)?;
        ctor(&(lock,))
    },
    call: |method, mut py| {
        let owner = py.connection;
        match method {
            "acquire" => {
                let (blocking, timeout) = acquire_args(&mut py)?;
                PyCall::method("acquire", &(owner, blocking, timeout), boolean)
            }
            "release" => {
                py.done(method, 0)?;
                PyCall::method("release", &(owner,), outcome_none)
            }
            "wait" => {
                let timeout = py.timeout(0, "timeout", true)?;
                py.done(method, 1)?;
                PyCall::method("wait", &(owner, timeout), |b| {
                    decode_result::<Result<bool, SyncError>>(b)?
                        .map(Value::Bool)
                        .map_err(|e| match e {
                            SyncError::NotOwner => {
                                PyException::runtime_error("cannot wait on un-acquired lock")
                            }
                            e => exception(e),
                        })
                })
            }
            "notify" => {
                let n = py.int(0, "n", 1)?;
                py.done(method, 1)?;
                let n = usize::try_from(n).unwrap_or(0);
                PyCall::method("notify", &(owner, n), unheld("notify on"))
            }
            _ => {
                py.done(method, 0)?;
                PyCall::method("notify_all", &(owner,), unheld("notify on"))
            }
        }
    },
};

/// `threading.Barrier(parties, action=None, timeout=None)`; `action` would be Python code
/// run on the server, so it is refused.
pub const BARRIER: PythonFace = PythonFace {
    exposed: &["__getattribute__", "wait", "abort", "reset"],
    proxytype: "BarrierProxy",
    create: |mut py| {
        let parties = py.required(0, "parties", "Barrier")?;
        let parties = match parties {
            Value::Int(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Value::Int(_) => return Err(PyException::value_error("parties must be > 0")),
            other => {
                return Err(PyException::type_error(format!(
                    "parties must be an integer, not {}",
                    other.type_name()
                )))
            }
        };
        if py.take(1, "action")?.is_some_and(|a| a != Value::None) {
            return Err(PyException::type_error(
                "Barrier(action=...) needs Python code run on the server: not supported",
            ));
        }
        let timeout = py.timeout(2, "timeout", false)?;
        py.done("Barrier", 3)?;
        ctor(&(parties, timeout))
    },
    call: |method, mut py| match method {
        "wait" => {
            let timeout = py.timeout(0, "timeout", false)?;
            py.done(method, 1)?;
            PyCall::method("wait", &(timeout,), outcome_count)
        }
        "abort" | "reset" => same_name(&py, method, &["abort", "reset"], none),
        _ => {
            let name = py.required(0, "name", method)?;
            py.done(method, 1)?;
            match name {
                Value::Str(n) if n == "parties" => PyCall::method("parties", &(), count),
                Value::Str(n) if n == "n_waiting" => PyCall::method("n_waiting", &(), count),
                Value::Str(n) if n == "broken" => PyCall::method("broken", &(), boolean),
                other => Err(PyException::builtin(
                    "AttributeError",
                    format!("'Barrier' object has no attribute {other:?}"),
                )),
            }
        }
    },
};

/// `Array(typecode, sequence, lock=True)`: the typecode and lock are ignored, as in
/// CPython's manager (which keeps an `array.array`; this keeps the values).
pub const ARRAY: PythonFace = PythonFace {
    exposed: &["__len__", "__getitem__", "__setitem__"],
    proxytype: "ArrayProxy",
    create: |mut py| {
        let _typecode = py.required(0, "typecode", "Array")?;
        let items = iterable(py.required(1, "sequence", "Array")?, "Array")?;
        let _lock = py.take(2, "lock")?;
        py.done("Array", 3)?;
        ctor(&(items,))
    },
    call: |method, mut py| match method {
        "__len__" => plain(&py, method, "len", count),
        "__getitem__" => item_get(&mut py, method, "array"),
        "__setitem__" => item_set(&mut py, method, "array"),
        "#GETVALUE" => plain(&py, method, "to_vec", values),
        _ => Err(PyException::type_error(format!(
            "Array.{method} through a proxy is not supported yet"
        ))),
    },
};
