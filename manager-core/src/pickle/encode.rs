//! The encoder: protocol 4, the opcodes CPython's pickler would choose, no frame, no memo.

use super::opcodes::*;
use super::{minimal_le, Object};

/// How many items CPython writes per `APPENDS`/`SETITEMS`/`ADDITEMS`.
const BATCH: usize = 1000;

/// Encodes `object` as a protocol 4 pickle.
///
/// The output is `PROTO 4`, the object, `STOP`: no `FRAME` (optional in protocol 4) and no
/// memo, so a part that occurs twice in the tree is written twice. The opcodes are those
/// CPython's C pickler chooses (`BININT1` for 0..=255, `SHORT_BINUNICODE` for short strings,
/// `TUPLE2` for pairs, batches of 1000 items, ...); a `bytearray` is written as protocol 4
/// does, `builtins.bytearray(bytes)`. See [`Object`] for the objects that decode back
/// unchanged.
///
/// The encoder recurses once per level of the tree: trees from [`decode`](super::decode())
/// are bounded by [`Limits::max_depth`](super::Limits::max_depth); the depth of a tree built
/// by hand is the caller's responsibility.
///
/// # Panics
/// If an integer is 2 GiB long or more, which protocol 4 cannot express.
pub fn encode(object: &Object) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(object, &mut out);
    out
}

/// Like [`encode`], appending the pickle to `out`.
///
/// # Panics
/// As [`encode`].
pub fn encode_into(object: &Object, out: &mut Vec<u8>) {
    out.extend_from_slice(&[PROTO, 4]);
    write(object, out);
    out.push(STOP);
}

fn write(object: &Object, out: &mut Vec<u8>) {
    match object {
        Object::None => out.push(NONE),
        Object::Bool(true) => out.push(NEWTRUE),
        Object::Bool(false) => out.push(NEWFALSE),
        Object::Int(value) => write_int(*value, out),
        Object::BigInt(bytes) => write_big_int(bytes, out),
        Object::Float(value) => {
            out.push(BINFLOAT);
            out.extend_from_slice(&value.to_be_bytes());
        }
        Object::Str(text) => write_unicode(text.as_bytes(), out),
        Object::StrBytes(bytes) => write_unicode(bytes, out),
        Object::Bytes(bytes) => write_bytes(bytes, out),
        Object::ByteArray(bytes) => {
            write_global("builtins", "bytearray", out);
            if bytes.is_empty() {
                out.push(EMPTY_TUPLE);
            } else {
                write_bytes(bytes, out);
                out.push(TUPLE1);
            }
            out.push(REDUCE);
        }
        Object::Tuple(items) => write_tuple(items, out),
        Object::List(items) => {
            out.push(EMPTY_LIST);
            write_appends(items, Batches::Exact, out);
        }
        Object::Dict(pairs) => {
            out.push(EMPTY_DICT);
            write_set_items(pairs, Batches::Exact, out);
        }
        Object::Set(items) => {
            out.push(EMPTY_SET);
            for batch in items.chunks(BATCH) {
                out.push(MARK);
                batch.iter().for_each(|item| write(item, out));
                out.push(ADDITEMS);
            }
        }
        Object::FrozenSet(items) => {
            out.push(MARK);
            items.iter().for_each(|item| write(item, out));
            out.push(FROZENSET);
        }
        Object::Global { module, name } => write_global(module, name, out),
        Object::Reduce { callable, args } => {
            write(callable, out);
            write(args, out);
            out.push(REDUCE);
        }
        Object::NewObj { class, args } => {
            write(class, out);
            write(args, out);
            out.push(NEWOBJ);
        }
        Object::NewObjEx {
            class,
            args,
            kwargs,
        } => {
            write(class, out);
            write(args, out);
            write(kwargs, out);
            out.push(NEWOBJ_EX);
        }
        Object::Build { object, state } => {
            write(object, out);
            write(state, out);
            out.push(BUILD);
        }
        Object::Appends { object, items } => {
            write(object, out);
            write_appends(items, Batches::Opaque, out);
        }
        Object::SetItems { object, items } => {
            write(object, out);
            write_set_items(items, Batches::Opaque, out);
        }
    }
}

/// `BININT1`, `BININT2`, `BININT` or `LONG1`, as CPython's `save_long`.
fn write_int(value: i64, out: &mut Vec<u8>) {
    if let Ok(small) = u8::try_from(value) {
        out.extend_from_slice(&[BININT1, small]);
    } else if let Ok(short) = u16::try_from(value) {
        out.push(BININT2);
        out.extend_from_slice(&short.to_le_bytes());
    } else if let Ok(int) = i32::try_from(value) {
        out.push(BININT);
        out.extend_from_slice(&int.to_le_bytes());
    } else {
        write_long(minimal_le(&value.to_le_bytes()), out);
    }
}

/// A [`Object::BigInt`]: one that is not in normal form is written as its value would be.
fn write_big_int(bytes: &[u8], out: &mut Vec<u8>) {
    let bytes = minimal_le(bytes);
    if bytes.len() <= 8 {
        if let Object::Int(value) = Object::int_from_le_bytes(bytes) {
            return write_int(value, out);
        }
    }
    write_long(bytes, out);
}

/// `LONG1` or `LONG4` with minimal little-endian two's-complement bytes.
fn write_long(bytes: &[u8], out: &mut Vec<u8>) {
    match u8::try_from(bytes.len()) {
        Ok(len) => out.extend_from_slice(&[LONG1, len]),
        Err(_) => {
            let len = i32::try_from(bytes.len()).expect("integers under 2 GiB can be pickled");
            out.push(LONG4);
            out.extend_from_slice(&len.to_le_bytes());
        }
    }
    out.extend_from_slice(bytes);
}

/// A `str` from its (surrogatepass) UTF-8 bytes.
fn write_unicode(bytes: &[u8], out: &mut Vec<u8>) {
    write_sized(bytes, [SHORT_BINUNICODE, BINUNICODE, BINUNICODE8], out);
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_sized(bytes, [SHORT_BINBYTES, BINBYTES, BINBYTES8], out);
}

/// `bytes` after the opcode for its length: one byte, four or eight.
fn write_sized(bytes: &[u8], [short, long, huge]: [u8; 3], out: &mut Vec<u8>) {
    if let Ok(len) = u8::try_from(bytes.len()) {
        out.extend_from_slice(&[short, len]);
    } else if let Ok(len) = u32::try_from(bytes.len()) {
        out.push(long);
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.push(huge);
        // usize is at most 64 bits on every supported target.
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(bytes);
}

fn write_tuple(items: &[Object], out: &mut Vec<u8>) {
    let opcode = match items.len() {
        0 => EMPTY_TUPLE,
        1 => TUPLE1,
        2 => TUPLE2,
        3 => TUPLE3,
        _ => {
            out.push(MARK);
            TUPLE
        }
    };
    items.iter().for_each(|item| write(item, out));
    out.push(opcode);
}

fn write_global(module: &str, name: &str, out: &mut Vec<u8>) {
    write_unicode(module.as_bytes(), out);
    write_unicode(name.as_bytes(), out);
    out.push(STACK_GLOBAL);
}

/// How items are batched after a list, a dict or an opaque object, as CPython's C pickler
/// (`_pickle.c`) does.
#[derive(Clone, Copy, PartialEq)]
enum Batches {
    /// A plain list or dict (`batch_list_exact`, `batch_dict_exact`): a single item is
    /// written with `APPEND`/`SETITEM`; otherwise every batch is `MARK ... APPENDS`, even a
    /// last batch of one.
    Exact,
    /// An [`Object::Appends`] or [`Object::SetItems`] (`batch_list`, `batch_dict`, on an
    /// iterator): any batch of one is `APPEND`/`SETITEM`. No items at all are written as an
    /// empty `MARK APPENDS`, so that the node still decodes as one.
    Opaque,
}

impl Batches {
    /// Whether `batch` of `all` items is written with the single-item opcode.
    fn single(self, batch: usize, all: usize) -> bool {
        match self {
            Batches::Exact => all == 1,
            Batches::Opaque => batch == 1,
        }
    }
}

/// Items appended to the object just written.
fn write_appends(items: &[Object], batches: Batches, out: &mut Vec<u8>) {
    if items.is_empty() && batches == Batches::Opaque {
        out.extend_from_slice(&[MARK, APPENDS]);
    }
    for batch in items.chunks(BATCH) {
        if batches.single(batch.len(), items.len()) {
            batch.iter().for_each(|item| write(item, out));
            out.push(APPEND);
        } else {
            out.push(MARK);
            batch.iter().for_each(|item| write(item, out));
            out.push(APPENDS);
        }
    }
}

/// Pairs set on the object just written, batched as [`write_appends`] does.
fn write_set_items(pairs: &[(Object, Object)], batches: Batches, out: &mut Vec<u8>) {
    if pairs.is_empty() && batches == Batches::Opaque {
        out.extend_from_slice(&[MARK, SETITEMS]);
    }
    for batch in pairs.chunks(BATCH) {
        let single = batches.single(batch.len(), pairs.len());
        if !single {
            out.push(MARK);
        }
        for (key, value) in batch {
            write(key, out);
            write(value, out);
        }
        out.push(if single { SETITEM } else { SETITEMS });
    }
}
