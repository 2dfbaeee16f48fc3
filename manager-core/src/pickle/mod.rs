//! Python pickles as data: a decoder and an encoder with no I/O that never run a pickle.
//!
//! Stock CPython clients of `multiprocessing.managers` send and expect pickles. This module
//! turns the bytes of a pickle into an [`Object`] tree and back, for a server that must talk
//! to them without a Python interpreter:
//!
//! - [`decode`] is a **data decoder only**. It runs the pickle stack machine over the bytes but
//!   never imports, resolves or calls anything: `GLOBAL`/`STACK_GLOBAL` become
//!   [`Object::Global`] names, `REDUCE`, `NEWOBJ`, `NEWOBJ_EX` and `BUILD` become
//!   [`Object::Reduce`], [`Object::NewObj`], [`Object::NewObjEx`] and [`Object::Build`] nodes,
//!   and `APPEND(S)`/`SETITEM(S)` on anything other than a plain list or dict become
//!   [`Object::Appends`]/[`Object::SetItems`] nodes. User classes, `datetime`, `Decimal`,
//!   `OrderedDict`, exceptions, proxies (`RebuildProxy(...)`) and the like are therefore kept
//!   **opaque**: the tree says what Python would call, and [`encode`] writes it back so that
//!   Python rebuilds the same object.
//! - [`encode`] writes protocol 4 (`\x80\x04`, no `FRAME`, no memo) with the opcodes
//!   CPython's pickler chooses: for the objects [`decode`] returns, the bytes are CPython's
//!   own without their memo and frame (tested against 3.11 and 3.13). Every CPython from 3.4
//!   reads it.
//!
//! ```
//! use manager_core::pickle::{decode, encode, Limits, Object};
//!
//! // `('#ERROR', KeyError('missing'))` as a CPython 3.11 manager replies.
//! let reply = b"\x80\x04\x95\x32\x00\x00\x00\x00\x00\x00\x00\x8c\x06#ERROR\x94\
//!     \x8c\x08builtins\x94\x8c\x08KeyError\x94\x93\x94\x8c\x07missing\x94\x85\x94R\x94\x86\x94.";
//! let object = decode(reply, &Limits::default())?;
//! let error = Object::exception("builtins", "KeyError", vec![Object::Str("missing".into())]);
//! assert_eq!(object, Object::Tuple(vec![Object::Str("#ERROR".into()), error]));
//!
//! // Our reply: a protocol 4 pickle Python loads back into the same tuple.
//! let bytes = encode(&object);
//! assert!(bytes.starts_with(b"\x80\x04"));
//! assert_eq!(decode(&bytes, &Limits::default())?, object);
//! # Ok::<(), manager_core::pickle::DecodeError>(())
//! ```
//!
//! # What the decoder accepts
//! Protocols 2 to 5 as CPython 3 writes them (a pickle without `PROTO` is read too): `PROTO`,
//! `FRAME` (its length is skipped; any number of frames), `STOP`, `MARK`, `POP`, `POP_MARK`,
//! `DUP`, `NONE`, `NEWTRUE`, `NEWFALSE`, `BININT1`, `BININT2`, `BININT`, `LONG1`, `LONG4`,
//! `BINFLOAT`, `SHORT_BINUNICODE`, `BINUNICODE`, `BINUNICODE8`, `SHORT_BINBYTES`, `BINBYTES`,
//! `BINBYTES8`, `BYTEARRAY8`, `EMPTY_TUPLE`, `TUPLE1`-`TUPLE3`, `TUPLE`, `EMPTY_LIST`, `APPEND`,
//! `APPENDS`, `LIST`, `EMPTY_DICT`, `DICT`, `SETITEM`, `SETITEMS`, `EMPTY_SET`, `ADDITEMS`,
//! `FROZENSET`, `MEMOIZE`, `BINPUT`, `LONG_BINPUT`, `BINGET`, `LONG_BINGET`, `GLOBAL`,
//! `STACK_GLOBAL`, `REDUCE`, `NEWOBJ`, `NEWOBJ_EX` and `BUILD`. Any other opcode (the protocol
//! 0/1 text opcodes except `GLOBAL`, `PERSID`, `BINPERSID`, `EXT1/2/4`, `INST`, `OBJ`,
//! `NEXT_BUFFER`, `READONLY_BUFFER`, Python 2 strings) is refused with
//! [`DecodeError::UnknownOpcode`], naming it and its offset.
//!
//! As in CPython, bytes after `STOP` are ignored, and so are stack items left under the
//! result. Three things are interpreted rather than kept verbatim, each as CPython would:
//! - in a pickle of protocol 2 or lower, Python 2 global names are mapped to Python 3 names
//!   (`exceptions.KeyError` → `builtins.KeyError`, `__builtin__.set` → `builtins.set`), the
//!   `fix_imports` tables of CPython's unpickler;
//! - `REDUCE(builtins.bytearray, ())` and `REDUCE(builtins.bytearray, (bytes,))`, the form of
//!   a `bytearray` before protocol 5 (and the one [`encode`] writes), decode as
//!   [`Object::ByteArray`];
//! - integers are normalised: [`Object::Int`] when the value fits an `i64`, else a minimal
//!   [`Object::BigInt`].
//!
//! Everything else a pickle builds with a call stays as the call: protocol 2 `bytes`
//! (`_codecs.encode(str, 'latin1')`), protocol 2-3 sets (`builtins.set([...])`), `complex`,
//! `slice` and so on are [`Object::Reduce`] nodes.
//!
//! # Shared references and cycles
//! A pickle names an object once and refers to it again through the memo (`[a, a]`). The
//! decoder keeps these references while it runs (a list memoized empty and filled later is
//! seen filled by every later reference), then expands the result into a tree in which each
//! reference is a copy. A container that contains itself (`l = []; l.append(l)`, an object
//! whose state refers back to it) cannot be a tree and is refused with
//! [`DecodeError::Recursive`] ([`DecodeError::TooDeep`] when the cycle is longer than
//! [`Limits::max_depth`]). [`encode`] writes no memo: shared parts are written once per use.
//!
//! # Limits
//! A peer controls every byte, so [`decode`] is bounded by [`Limits`]; the defaults suit
//! manager traffic:
//!
//! | limit | default | bounds |
//! |---|---|---|
//! | [`max_depth`](Limits::max_depth) | 200 | nesting of the result, so that comparing, cloning, encoding and dropping it cannot overflow a thread's stack |
//! | [`max_memo`](Limits::max_memo) | 2^20 | memo entries (`MEMOIZE`, `BINPUT`, `LONG_BINPUT`) |
//! | [`max_int_bytes`](Limits::max_int_bytes) | 4096 | the byte length of one `LONG1`/`LONG4` integer (about 9860 decimal digits) |
//! | [`size_ratio`](Limits::size_ratio), [`size_allowance`](Limits::size_allowance) | 16, 4096 | the size of the expanded tree, `nodes + payload bytes <= 16 * input length + 4096`, so that shared references cannot multiply memory (`a = [x, x]; b = [a, a]; ...`) |
//!
//! Lengths a pickle claims are checked against the bytes that remain before anything is
//! allocated, and no input makes the decoder panic. Without shared references a tree has at
//! most one node per input byte, so the size budget only refuses heavy sharing (a list of a
//! thousand references to one 100-item list, say). The decoder's own work and memory are
//! linear in the input length.
//!
//! # Depth and the stack
//! Decoding does not recurse: a deep pickle needs no more stack than a flat one. [`Object`]
//! itself is a plain recursive enum, so `Drop`, `Clone`, `PartialEq`, `Debug` and [`encode`]
//! recurse once per level. Trees from [`decode`] are at most [`Limits::max_depth`] deep; at
//! the default of 200, decoding, comparing, cloning, formatting, encoding and dropping the
//! deepest tree fits in a 512 KiB thread stack even in a debug build (tested), a quarter of
//! what a spawned thread or a tokio worker gets. Trees built by hand are the caller's
//! responsibility.

mod compat;
mod decode;
mod encode;
mod expand;
mod opcodes;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use encode::{encode, encode_into};

/// A Python object as a pickle describes it.
///
/// Plain data: nothing here refers to a Python interpreter. Containers keep their items in
/// pickle order; a [`Dict`](Object::Dict) keeps its pairs in insertion order, duplicates
/// included (no hashing is done here).
///
/// # Normal form
/// [`decode`] returns objects in a normal form, and `decode(&encode(&x)) == x` holds for
/// every `x` in it (floats compared bit for bit; `NaN != NaN` under `PartialEq`):
/// - an integer that fits an `i64` is [`Int`](Object::Int); [`BigInt`](Object::BigInt) holds
///   only others, in minimal form (see [`Object::int_from_le_bytes`]);
/// - [`StrBytes`](Object::StrBytes) holds only bytes that are not valid UTF-8 (but are valid
///   UTF-8 with lone surrogates, what Python's `surrogatepass` writes);
/// - an [`Appends`](Object::Appends) never wraps a [`List`](Object::List) or another
///   `Appends`, and a [`SetItems`](Object::SetItems) never wraps a [`Dict`](Object::Dict) or
///   another `SetItems` (those merge into the inner object);
/// - `Reduce(builtins.bytearray, ())` and `Reduce(builtins.bytearray, (bytes,))` do not
///   occur: they are [`ByteArray`](Object::ByteArray).
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits an `i64`.
    Int(i64),
    /// An `int` outside `i64`: little-endian two's complement, minimal length.
    BigInt(Box<[u8]>),
    /// A `float`; the bits are kept as they are (NaN payloads and `-0.0` included).
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `str` with lone surrogates (`'\ud800'`): the UTF-8 bytes Python writes with
    /// `surrogatepass`, which are not valid UTF-8. Written back unchanged.
    StrBytes(Box<[u8]>),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A `bytearray`.
    ByteArray(Vec<u8>),
    /// A `tuple`.
    Tuple(Vec<Object>),
    /// A `list`.
    List(Vec<Object>),
    /// A `dict`: key-value pairs in insertion order.
    Dict(Vec<(Object, Object)>),
    /// A `set`.
    Set(Vec<Object>),
    /// A `frozenset`.
    FrozenSet(Vec<Object>),
    /// A module attribute named by `GLOBAL`/`STACK_GLOBAL` (a class, a function), never
    /// imported here.
    Global {
        /// The module, `builtins` for `KeyError`.
        module: String,
        /// The attribute's qualified name.
        name: String,
    },
    /// `callable(*args)` (`REDUCE`): exceptions, `datetime`, `OrderedDict`, proxies, ...
    Reduce {
        /// What Python calls, usually a [`Global`](Object::Global).
        callable: Box<Object>,
        /// The arguments, usually a [`Tuple`](Object::Tuple).
        args: Box<Object>,
    },
    /// `class.__new__(class, *args)` (`NEWOBJ`): instances of user classes, `Token`.
    NewObj {
        /// The class, usually a [`Global`](Object::Global).
        class: Box<Object>,
        /// The arguments, usually a [`Tuple`](Object::Tuple).
        args: Box<Object>,
    },
    /// `class.__new__(class, *args, **kwargs)` (`NEWOBJ_EX`), for keyword-only arguments.
    NewObjEx {
        /// The class, usually a [`Global`](Object::Global).
        class: Box<Object>,
        /// The positional arguments, usually a [`Tuple`](Object::Tuple).
        args: Box<Object>,
        /// The keyword arguments, usually a [`Dict`](Object::Dict).
        kwargs: Box<Object>,
    },
    /// `object.__setstate__(state)` or an update of its `__dict__` (`BUILD`).
    Build {
        /// The object whose state is set.
        object: Box<Object>,
        /// The state, often a [`Dict`](Object::Dict) of attributes.
        state: Box<Object>,
    },
    /// `object.extend(items)` (`APPEND`/`APPENDS`) on something that is not a plain list,
    /// such as a `deque`.
    Appends {
        /// The object appended to.
        object: Box<Object>,
        /// The items, in order.
        items: Vec<Object>,
    },
    /// `object[key] = value` for each pair (`SETITEM`/`SETITEMS`) on something that is not a
    /// plain dict, such as an `OrderedDict` or a `defaultdict`.
    SetItems {
        /// The object the items are set on.
        object: Box<Object>,
        /// The key-value pairs, in order.
        items: Vec<(Object, Object)>,
    },
}

impl Object {
    /// A module attribute: `Object::global("builtins", "KeyError")`.
    pub fn global(module: &str, name: &str) -> Object {
        Object::Global {
            module: module.to_owned(),
            name: name.to_owned(),
        }
    }

    /// An exception as CPython pickles one: `Reduce(Global(module, name), Tuple(args))`.
    pub fn exception(module: &str, name: &str, args: Vec<Object>) -> Object {
        Object::Reduce {
            callable: Box::new(Object::global(module, name)),
            args: Box::new(Object::Tuple(args)),
        }
    }

    /// An `int` from its little-endian two's-complement bytes (any length; empty is 0), in
    /// normal form: [`Int`](Object::Int) if it fits, else a minimal
    /// [`BigInt`](Object::BigInt).
    pub fn int_from_le_bytes(bytes: &[u8]) -> Object {
        let bytes = minimal_le(bytes);
        if bytes.len() > 8 {
            return Object::BigInt(bytes.into());
        }
        let fill = match bytes.last() {
            Some(&last) if last & 0x80 != 0 => 0xff,
            _ => 0,
        };
        let mut wide = [fill; 8];
        wide[..bytes.len()].copy_from_slice(bytes);
        Object::Int(i64::from_le_bytes(wide))
    }

    /// The text of a [`Str`](Object::Str).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Object::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an [`Int`](Object::Int).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Object::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items of a [`Tuple`](Object::Tuple).
    pub fn as_tuple(&self) -> Option<&[Object]> {
        match self {
            Object::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The `(module, name)` of a [`Global`](Object::Global).
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            Object::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }
}

/// `bytes` without the sign-extension bytes that do not change its two's-complement value.
fn minimal_le(bytes: &[u8]) -> &[u8] {
    let mut len = bytes.len();
    while let [.., next, last] = bytes[..len] {
        let redundant = (last == 0 && next & 0x80 == 0) || (last == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        len -= 1;
    }
    match bytes[..len] {
        [0] => &[],
        _ => &bytes[..len],
    }
}

/// Bounds on what [`decode`] accepts; see the module docs for why each exists.
///
/// ```
/// use manager_core::pickle::Limits;
///
/// let strict = Limits { max_depth: 32, ..Limits::default() };
/// assert_eq!(strict.max_memo, Limits::default().max_memo);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The deepest result accepted, counting the outermost object as 1 (so `[[1]]` is 3
    /// deep; `Reduce`, `Build` and the like count one level each). Default 200.
    pub max_depth: usize,
    /// The most memo entries a pickle may create. Default 2^20 (1,048,576); CPython
    /// memoizes every `str`, container and instance it writes once.
    pub max_memo: usize,
    /// The longest integer (`LONG1`/`LONG4` payload) in bytes. Default 4096.
    pub max_int_bytes: usize,
    /// With [`size_allowance`](Limits::size_allowance), bounds the expanded tree:
    /// `nodes + bytes of str, bytes and int payloads and global names` may be at most
    /// `size_ratio * input length + size_allowance`. Default 16.
    pub size_ratio: usize,
    /// See [`size_ratio`](Limits::size_ratio). Default 4096.
    pub size_allowance: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 200,
            max_memo: 1 << 20,
            max_int_bytes: 4096,
            size_ratio: 16,
            size_allowance: 4096,
        }
    }
}

/// Why [`decode`] refused a pickle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside an opcode's argument or before `STOP`.
    #[error("truncated pickle: the input ends before STOP")]
    Truncated,
    /// An opcode this decoder does not accept (or a byte that is no opcode).
    #[error("unsupported pickle opcode {} at offset {offset}", OpcodeName(*.opcode))]
    UnknownOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Its offset in the input.
        offset: usize,
    },
    /// `PROTO` with a protocol other than 2 to 5.
    #[error("unsupported pickle protocol {0}")]
    UnsupportedProtocol(u8),
    /// An opcode needed more stack items than there are above the last mark.
    #[error("pickle stack underflow at offset {offset}")]
    StackUnderflow {
        /// The offset of the opcode.
        offset: usize,
    },
    /// An opcode that works back to a mark found none.
    #[error("pickle opcode at offset {offset} needs a MARK and there is none")]
    NoMark {
        /// The offset of the opcode.
        offset: usize,
    },
    /// `BINGET`/`LONG_BINGET` of an index that was never stored.
    #[error("pickle memo has no entry {0}")]
    MemoMissing(u32),
    /// More memo entries than [`Limits::max_memo`].
    #[error("pickle stores more memo entries than allowed")]
    TooManyMemoEntries,
    /// The result is deeper than [`Limits::max_depth`].
    #[error("pickled object is nested too deeply")]
    TooDeep,
    /// The expanded result exceeds the size budget of [`Limits::size_ratio`].
    #[error("pickled object expands beyond the size limit")]
    TooLarge,
    /// An integer longer than [`Limits::max_int_bytes`].
    #[error("pickled integer is too large")]
    IntegerTooLarge,
    /// The result contains itself, which a tree cannot represent.
    #[error("pickled object contains itself")]
    Recursive,
    /// An opcode's operands are of the wrong kind (`STACK_GLOBAL` of a non-str, `SETITEMS`
    /// with an odd item count, invalid UTF-8 in a str, a negative `LONG4` length...).
    #[error("bad pickle at offset {offset}: {what}")]
    BadValue {
        /// What is wrong.
        what: &'static str,
        /// The offset of the opcode.
        offset: usize,
    },
}

/// Formats an opcode byte with its `pickletools` name, for errors.
struct OpcodeName(u8);

impl std::fmt::Display for OpcodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match opcodes::name(self.0) {
            Some(name) => write!(f, "{name} (0x{:02x})", self.0),
            None => write!(f, "0x{:02x}", self.0),
        }
    }
}

/// Entry point of the `pickle` fuzz target (the `fuzz/` folder) and its corpus replay: decode
/// with the default limits; what decodes must encode and decode to the same object (compared
/// through its encoding, so that NaNs compare bit for bit). Not part of the API.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(first) = decode(data, &limits) {
        let bytes = encode(&first);
        let second = decode(&bytes, &limits).expect("an encoded object decodes");
        assert_eq!(encode(&second), bytes, "decode(encode(x)) differs from x");
    }
}
