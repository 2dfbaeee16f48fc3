//! The decoder: the pickle stack machine over an arena of nodes.
//!
//! Objects are built as [`Node`]s in an arena and addressed by index; the stack and the memo
//! hold indices. That keeps Python's reference semantics while the pickle runs: a list is
//! memoized as soon as it is created empty and filled afterwards (`] \x94 ( ... e`), and a
//! later `BINGET` must see it filled. `APPENDS` and friends therefore change the arena node in
//! place. At `STOP` the root is expanded into an [`Object`] tree (the `expand` module).

use std::collections::HashMap;

use super::compat::fix_import;
use super::expand::expand;
use super::opcodes::*;
use super::{DecodeError, Limits, Object};

/// Index of a node in the arena.
pub(super) type Id = usize;

/// An object under construction: leaves are finished, containers refer to other nodes.
#[derive(Debug)]
pub(super) enum Node {
    /// A scalar, string, bytes or global: a finished object without children.
    Leaf(Object),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    FrozenSet(Vec<Id>),
    Reduce(Id, Id),
    NewObj(Id, Id),
    NewObjEx(Id, Id, Id),
    Build(Id, Id),
    Appends(Id, Vec<Id>),
    SetItems(Id, Vec<(Id, Id)>),
}

/// Decodes one pickle into an [`Object`], without importing or calling anything.
///
/// Reads up to the first `STOP`; bytes after it are ignored, as CPython ignores them. See the
/// [module docs](super) for the opcodes accepted, what stays opaque and the limits.
///
/// # Errors
/// A [`DecodeError`] for malformed input, opcodes outside the supported subset, an object
/// that contains itself, or input beyond `limits`. No input makes it panic.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Object, DecodeError> {
    let mut machine = Machine {
        input: bytes,
        pos: 0,
        offset: 0,
        limits,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        proto: 0,
    };
    let root = machine.run()?;
    let budget = limits
        .size_ratio
        .saturating_mul(bytes.len())
        .saturating_add(limits.size_allowance);
    expand(&machine.nodes, root, budget, limits.max_depth)
}

/// The stack machine's state.
struct Machine<'a> {
    /// The whole pickle.
    input: &'a [u8],
    /// Where the next read starts; never beyond `input.len()`.
    pos: usize,
    /// Offset of the opcode being run, for errors.
    offset: usize,
    limits: &'a Limits,
    /// Every object created so far.
    nodes: Vec<Node>,
    /// The pickle stack, all marks included.
    stack: Vec<Id>,
    /// The stack length at each `MARK` still open; the last one is the fence below which
    /// nothing may be popped (CPython keeps the same split).
    marks: Vec<usize>,
    /// `BINPUT` index -> node. A map: `LONG_BINPUT` may use any `u32`.
    memo: HashMap<u32, Id>,
    /// The last `PROTO` seen, 0 if none: below 3, Python 2 global names are mapped.
    proto: u8,
}

impl<'a> Machine<'a> {
    /// Runs opcodes up to `STOP` and returns the root.
    fn run(&mut self) -> Result<Id, DecodeError> {
        loop {
            self.offset = self.pos;
            let opcode = self.byte()?;
            match opcode {
                PROTO => {
                    let proto = self.byte()?;
                    if !(2..=5).contains(&proto) {
                        return Err(DecodeError::UnsupportedProtocol(proto));
                    }
                    self.proto = proto;
                }
                FRAME => {
                    self.take(8)?;
                }
                STOP => return self.pop(),
                MARK => self.marks.push(self.stack.len()),
                POP => {
                    if self.stack.len() > self.fence() {
                        self.stack.pop();
                    } else if self.marks.pop().is_none() {
                        return Err(self.underflow());
                    }
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                NONE => self.push_leaf(Object::None),
                NEWTRUE => self.push_leaf(Object::Bool(true)),
                NEWFALSE => self.push_leaf(Object::Bool(false)),
                BININT1 => {
                    let value = self.byte()?;
                    self.push_leaf(Object::Int(value.into()));
                }
                BININT2 => {
                    let value = u16::from_le_bytes(self.array()?);
                    self.push_leaf(Object::Int(value.into()));
                }
                BININT => {
                    let value = i32::from_le_bytes(self.array()?);
                    self.push_leaf(Object::Int(value.into()));
                }
                LONG1 => {
                    let len = self.byte()?;
                    self.long(len.into())?;
                }
                LONG4 => {
                    let len = i32::from_le_bytes(self.array()?);
                    let len =
                        usize::try_from(len).map_err(|_| self.bad("negative LONG4 byte count"))?;
                    self.long(len)?;
                }
                BINFLOAT => {
                    let value = f64::from_be_bytes(self.array()?);
                    self.push_leaf(Object::Float(value));
                }
                SHORT_BINUNICODE => {
                    let len = self.byte()?;
                    self.unicode(len.into())?;
                }
                BINUNICODE => {
                    let len = u32::from_le_bytes(self.array()?);
                    self.unicode(len.into())?;
                }
                BINUNICODE8 => {
                    let len = u64::from_le_bytes(self.array()?);
                    self.unicode(len)?;
                }
                SHORT_BINBYTES => {
                    let len = self.byte()?;
                    let data = self.take_u64(len.into())?;
                    self.push_leaf(Object::Bytes(data.to_vec()));
                }
                BINBYTES => {
                    let len = u32::from_le_bytes(self.array()?);
                    let data = self.take_u64(len.into())?;
                    self.push_leaf(Object::Bytes(data.to_vec()));
                }
                BINBYTES8 => {
                    let len = u64::from_le_bytes(self.array()?);
                    let data = self.take_u64(len)?;
                    self.push_leaf(Object::Bytes(data.to_vec()));
                }
                BYTEARRAY8 => {
                    let len = u64::from_le_bytes(self.array()?);
                    let data = self.take_u64(len)?;
                    self.push_leaf(Object::ByteArray(data.to_vec()));
                }
                EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(opcode - TUPLE1) + 1;
                    let items = self.pop_n(n)?;
                    self.push(Node::Tuple(items));
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                EMPTY_LIST => self.push(Node::List(Vec::new())),
                LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                APPEND => {
                    let item = self.pop()?;
                    self.append(vec![item])?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                DICT => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Node::Dict(pairs));
                }
                SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![(key, value)])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?;
                }
                EMPTY_SET => self.push(Node::Set(Vec::new())),
                ADDITEMS => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    match &mut self.nodes[target] {
                        Node::Set(set) => set.extend(items),
                        _ => return Err(self.bad("ADDITEMS on something that is not a set")),
                    }
                }
                FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Node::FrozenSet(items));
                }
                MEMOIZE => {
                    let top = self.top()?;
                    // The next index is `len(memo)`, as in CPython.
                    let index = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(index, top)?;
                }
                BINPUT => {
                    let index = self.byte()?;
                    let top = self.top()?;
                    self.memo_put(index.into(), top)?;
                }
                LONG_BINPUT => {
                    let index = u32::from_le_bytes(self.array()?);
                    let top = self.top()?;
                    self.memo_put(index, top)?;
                }
                BINGET => {
                    let index = self.byte()?;
                    self.memo_get(index.into())?;
                }
                LONG_BINGET => {
                    let index = u32::from_le_bytes(self.array()?);
                    self.memo_get(index)?;
                }
                GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name);
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.nodes[module], &self.nodes[name]) {
                        (Node::Leaf(Object::Str(module)), Node::Leaf(Object::Str(name))) => {
                            let (module, name) = (module.clone(), name.clone());
                            self.global(module, name);
                        }
                        _ => return Err(self.bad("STACK_GLOBAL of something that is not a str")),
                    }
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let node = match self.bytearray(callable, args) {
                        Some(bytes) => Node::Leaf(Object::ByteArray(bytes)),
                        None => Node::Reduce(callable, args),
                    };
                    self.push(node);
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.push(Node::NewObj(class, args));
                }
                NEWOBJ_EX => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.push(Node::NewObjEx(class, args, kwargs));
                }
                BUILD => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.wrap(target, |object| Node::Build(object, state));
                }
                _ => {
                    return Err(DecodeError::UnknownOpcode {
                        opcode,
                        offset: self.offset,
                    })
                }
            }
        }
    }

    // ---- reading the input ----

    /// The next `n` bytes; `Truncated` if fewer remain.
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let data = rest.get(..n).ok_or(DecodeError::Truncated)?;
        self.pos += n;
        Ok(data)
    }

    /// The next `n` bytes for a length the pickle claims: checked against what remains
    /// before anything is allocated.
    fn take_u64(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        self.take(n)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let data = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(data);
        Ok(array)
    }

    /// A newline-terminated UTF-8 line (`GLOBAL`'s arguments), without the newline.
    fn line(&mut self) -> Result<String, DecodeError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(DecodeError::Truncated)?;
        let line = self.take(len + 1)?;
        let text =
            std::str::from_utf8(&line[..len]).map_err(|_| self.bad("GLOBAL name is not UTF-8"))?;
        Ok(text.to_owned())
    }

    // ---- building values ----

    fn long(&mut self, len: usize) -> Result<(), DecodeError> {
        if len > self.limits.max_int_bytes {
            return Err(DecodeError::IntegerTooLarge);
        }
        let data = self.take(len)?;
        self.push_leaf(Object::int_from_le_bytes(data));
        Ok(())
    }

    /// A `str` of `len` bytes: UTF-8, or UTF-8 with lone surrogates (`surrogatepass`).
    fn unicode(&mut self, len: u64) -> Result<(), DecodeError> {
        let data = self.take_u64(len)?;
        let object = match std::str::from_utf8(data) {
            Ok(text) => Object::Str(text.to_owned()),
            Err(_) if is_surrogatepass_utf8(data) => Object::StrBytes(data.into()),
            Err(_) => return Err(self.bad("str is not UTF-8")),
        };
        self.push_leaf(object);
        Ok(())
    }

    fn global(&mut self, mut module: String, mut name: String) {
        if self.proto < 3 {
            fix_import(&mut module, &mut name);
        }
        self.push_leaf(Object::Global { module, name });
    }

    /// The contents of `bytearray(*args)` if `callable` is `builtins.bytearray` and `args` is
    /// `()` or `(bytes,)`: how protocols 3 and 4 write a `bytearray`.
    fn bytearray(&self, callable: Id, args: Id) -> Option<Vec<u8>> {
        match &self.nodes[callable] {
            Node::Leaf(Object::Global { module, name })
                if module == "builtins" && name == "bytearray" => {}
            _ => return None,
        }
        match &self.nodes[args] {
            Node::Tuple(items) => match items[..] {
                [] => Some(Vec::new()),
                [item] => match &self.nodes[item] {
                    Node::Leaf(Object::Bytes(bytes)) => Some(bytes.clone()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }

    /// `APPEND`/`APPENDS` to the object on top of the stack.
    fn append(&mut self, items: Vec<Id>) -> Result<(), DecodeError> {
        let target = self.top()?;
        match &mut self.nodes[target] {
            Node::List(list) | Node::Appends(_, list) => list.extend(items),
            _ => self.wrap(target, |object| Node::Appends(object, items)),
        }
        Ok(())
    }

    /// `SETITEM`/`SETITEMS` on the object on top of the stack.
    fn set_items(&mut self, pairs: Vec<(Id, Id)>) -> Result<(), DecodeError> {
        let target = self.top()?;
        match &mut self.nodes[target] {
            Node::Dict(dict) | Node::SetItems(_, dict) => dict.extend(pairs),
            _ => self.wrap(target, |object| Node::SetItems(object, pairs)),
        }
        Ok(())
    }

    /// Replaces node `target` by `outer(inner)`, where `inner` is a new node holding what
    /// `target` held: everything referring to `target` (the stack, the memo) now sees the
    /// wrapped object, as Python sees the mutated one.
    fn wrap(&mut self, target: Id, outer: impl FnOnce(Id) -> Node) {
        let inner = self.nodes.len();
        let old = std::mem::replace(&mut self.nodes[target], Node::Leaf(Object::None));
        self.nodes.push(old);
        self.nodes[target] = outer(inner);
    }

    /// Keys and values alternating, as `DICT` and `SETITEMS` find them.
    fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>, DecodeError> {
        if items.len() % 2 != 0 {
            return Err(self.bad("odd number of items for a dict"));
        }
        Ok(items
            .chunks_exact(2)
            .map(|pair| (pair[0], pair[1]))
            .collect())
    }

    // ---- the stack and the memo ----

    fn push(&mut self, node: Node) {
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
    }

    fn push_leaf(&mut self, object: Object) {
        self.push(Node::Leaf(object));
    }

    /// The stack length below which nothing may be popped: the last mark.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id, DecodeError> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn top(&self) -> Result<Id, DecodeError> {
        match self.stack.last() {
            Some(&top) if self.stack.len() > self.fence() => Ok(top),
            _ => Err(self.underflow()),
        }
    }

    /// The top `n` items, bottom first.
    fn pop_n(&mut self, n: usize) -> Result<Vec<Id>, DecodeError> {
        let from = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&from| from >= self.fence())
            .ok_or_else(|| self.underflow())?;
        Ok(self.stack.split_off(from))
    }

    /// The items above the last mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, DecodeError> {
        let mark = self.marks.pop().ok_or(DecodeError::NoMark {
            offset: self.offset,
        })?;
        // Marks never exceed the stack length: nothing below the fence is popped.
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn memo_put(&mut self, index: u32, id: Id) -> Result<(), DecodeError> {
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&index) {
            return Err(DecodeError::TooManyMemoEntries);
        }
        self.memo.insert(index, id);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), DecodeError> {
        let id = *self
            .memo
            .get(&index)
            .ok_or(DecodeError::MemoMissing(index))?;
        self.stack.push(id);
        Ok(())
    }

    fn underflow(&self) -> DecodeError {
        DecodeError::StackUnderflow {
            offset: self.offset,
        }
    }

    fn bad(&self, what: &'static str) -> DecodeError {
        DecodeError::BadValue {
            what,
            offset: self.offset,
        }
    }
}

/// Whether `bytes` is what Python's UTF-8 codec writes with `surrogatepass`: UTF-8 in which
/// the surrogates U+D800..U+DFFF may also appear (as `ED A0..BF 80..BF`).
fn is_surrogatepass_utf8(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some((&first, tail)) = rest.split_first() {
        if first < 0x80 {
            rest = tail;
            continue;
        }
        // (continuation bytes, range of the second byte): Unicode table 3-7, with `ED`
        // allowed up to `BF` for the surrogates.
        let (len, second) = match first {
            0xC2..=0xDF => (1, 0x80..=0xBF),
            0xE0 => (2, 0xA0..=0xBF),
            0xE1..=0xEF => (2, 0x80..=0xBF),
            0xF0 => (3, 0x90..=0xBF),
            0xF1..=0xF3 => (3, 0x80..=0xBF),
            0xF4 => (3, 0x80..=0x8F),
            _ => return false,
        };
        let Some(continuation) = tail.get(..len) else {
            return false;
        };
        if !second.contains(&continuation[0])
            || continuation[1..].iter().any(|b| !(0x80..=0xBF).contains(b))
        {
            return false;
        }
        rest = &tail[len..];
    }
    true
}
