//! Opcode bytes of the pickle format, named as in CPython's `pickletools`.
//!
//! All 68 opcodes of protocols 0-5 are listed so that errors can name any of them; the
//! decoder accepts the subset described in the module docs.

/// `MARK` (protocol 0): Push markobject onto the stack.
pub(super) const MARK: u8 = 0x28;
/// `EMPTY_TUPLE` (protocol 1): Push an empty tuple.
pub(super) const EMPTY_TUPLE: u8 = 0x29;
/// `STOP` (protocol 0): Stop the unpickling machine.
pub(super) const STOP: u8 = 0x2e;
/// `POP` (protocol 0): Discard the top stack item, shrinking the stack by one item.
pub(super) const POP: u8 = 0x30;
/// `POP_MARK` (protocol 1): Pop all the stack objects at and above the topmost markobject.
pub(super) const POP_MARK: u8 = 0x31;
/// `DUP` (protocol 0): Push the top stack item onto the stack again, duplicating it.
pub(super) const DUP: u8 = 0x32;
/// `BINBYTES` (protocol 3): Push a Python bytes object.
pub(super) const BINBYTES: u8 = 0x42;
/// `SHORT_BINBYTES` (protocol 3): Push a Python bytes object.
pub(super) const SHORT_BINBYTES: u8 = 0x43;
/// `FLOAT` (protocol 0): Newline-terminated decimal float literal.
pub(super) const FLOAT: u8 = 0x46;
/// `BINFLOAT` (protocol 1): Float stored in binary form, with 8 bytes of data.
pub(super) const BINFLOAT: u8 = 0x47;
/// `INT` (protocol 0): Push an integer or bool.
pub(super) const INT: u8 = 0x49;
/// `BININT` (protocol 1): Push a four-byte signed integer.
pub(super) const BININT: u8 = 0x4a;
/// `BININT1` (protocol 1): Push a one-byte unsigned integer.
pub(super) const BININT1: u8 = 0x4b;
/// `LONG` (protocol 0): Push a long integer.
pub(super) const LONG: u8 = 0x4c;
/// `BININT2` (protocol 1): Push a two-byte unsigned integer.
pub(super) const BININT2: u8 = 0x4d;
/// `NONE` (protocol 0): Push None on the stack.
pub(super) const NONE: u8 = 0x4e;
/// `PERSID` (protocol 0): Push an object identified by a persistent ID.
pub(super) const PERSID: u8 = 0x50;
/// `BINPERSID` (protocol 1): Push an object identified by a persistent ID.
pub(super) const BINPERSID: u8 = 0x51;
/// `REDUCE` (protocol 0): Push an object built from a callable and an argument tuple.
pub(super) const REDUCE: u8 = 0x52;
/// `STRING` (protocol 0): Push a Python string object.
pub(super) const STRING: u8 = 0x53;
/// `BINSTRING` (protocol 1): Push a Python string object.
pub(super) const BINSTRING: u8 = 0x54;
/// `SHORT_BINSTRING` (protocol 1): Push a Python string object.
pub(super) const SHORT_BINSTRING: u8 = 0x55;
/// `UNICODE` (protocol 0): Push a Python Unicode string object.
pub(super) const UNICODE: u8 = 0x56;
/// `BINUNICODE` (protocol 1): Push a Python Unicode string object.
pub(super) const BINUNICODE: u8 = 0x58;
/// `EMPTY_LIST` (protocol 1): Push an empty list.
pub(super) const EMPTY_LIST: u8 = 0x5d;
/// `APPEND` (protocol 0): Append an object to a list.
pub(super) const APPEND: u8 = 0x61;
/// `BUILD` (protocol 0): Finish building an object, via __setstate__ or dict update.
pub(super) const BUILD: u8 = 0x62;
/// `GLOBAL` (protocol 0): Push a global object (module.attr) on the stack.
pub(super) const GLOBAL: u8 = 0x63;
/// `DICT` (protocol 0): Build a dict out of the topmost stack slice, after markobject.
pub(super) const DICT: u8 = 0x64;
/// `APPENDS` (protocol 1): Extend a list by a slice of stack objects.
pub(super) const APPENDS: u8 = 0x65;
/// `GET` (protocol 0): Read an object from the memo and push it on the stack.
pub(super) const GET: u8 = 0x67;
/// `BINGET` (protocol 1): Read an object from the memo and push it on the stack.
pub(super) const BINGET: u8 = 0x68;
/// `INST` (protocol 0): Build a class instance.
pub(super) const INST: u8 = 0x69;
/// `LONG_BINGET` (protocol 1): Read an object from the memo and push it on the stack.
pub(super) const LONG_BINGET: u8 = 0x6a;
/// `LIST` (protocol 0): Build a list out of the topmost stack slice, after markobject.
pub(super) const LIST: u8 = 0x6c;
/// `OBJ` (protocol 1): Build a class instance.
pub(super) const OBJ: u8 = 0x6f;
/// `PUT` (protocol 0): Store the stack top into the memo.  The stack is not popped.
pub(super) const PUT: u8 = 0x70;
/// `BINPUT` (protocol 1): Store the stack top into the memo.  The stack is not popped.
pub(super) const BINPUT: u8 = 0x71;
/// `LONG_BINPUT` (protocol 1): Store the stack top into the memo.  The stack is not popped.
pub(super) const LONG_BINPUT: u8 = 0x72;
/// `SETITEM` (protocol 0): Add a key+value pair to an existing dict.
pub(super) const SETITEM: u8 = 0x73;
/// `TUPLE` (protocol 0): Build a tuple out of the topmost stack slice, after markobject.
pub(super) const TUPLE: u8 = 0x74;
/// `SETITEMS` (protocol 1): Add an arbitrary number of key+value pairs to an existing dict.
pub(super) const SETITEMS: u8 = 0x75;
/// `EMPTY_DICT` (protocol 1): Push an empty dict.
pub(super) const EMPTY_DICT: u8 = 0x7d;
/// `PROTO` (protocol 2): Protocol version indicator.
pub(super) const PROTO: u8 = 0x80;
/// `NEWOBJ` (protocol 2): Build an object instance.
pub(super) const NEWOBJ: u8 = 0x81;
/// `EXT1` (protocol 2): Extension code.
pub(super) const EXT1: u8 = 0x82;
/// `EXT2` (protocol 2): Extension code.
pub(super) const EXT2: u8 = 0x83;
/// `EXT4` (protocol 2): Extension code.
pub(super) const EXT4: u8 = 0x84;
/// `TUPLE1` (protocol 2): Build a one-tuple out of the topmost item on the stack.
pub(super) const TUPLE1: u8 = 0x85;
/// `TUPLE2` (protocol 2): Build a two-tuple out of the top two items on the stack.
pub(super) const TUPLE2: u8 = 0x86;
/// `TUPLE3` (protocol 2): Build a three-tuple out of the top three items on the stack.
pub(super) const TUPLE3: u8 = 0x87;
/// `NEWTRUE` (protocol 2): Push True onto the stack.
pub(super) const NEWTRUE: u8 = 0x88;
/// `NEWFALSE` (protocol 2): Push False onto the stack.
pub(super) const NEWFALSE: u8 = 0x89;
/// `LONG1` (protocol 2): Long integer using one-byte length.
pub(super) const LONG1: u8 = 0x8a;
/// `LONG4` (protocol 2): Long integer using found-byte length.
pub(super) const LONG4: u8 = 0x8b;
/// `SHORT_BINUNICODE` (protocol 4): Push a Python Unicode string object.
pub(super) const SHORT_BINUNICODE: u8 = 0x8c;
/// `BINUNICODE8` (protocol 4): Push a Python Unicode string object.
pub(super) const BINUNICODE8: u8 = 0x8d;
/// `BINBYTES8` (protocol 4): Push a Python bytes object.
pub(super) const BINBYTES8: u8 = 0x8e;
/// `EMPTY_SET` (protocol 4): Push an empty set.
pub(super) const EMPTY_SET: u8 = 0x8f;
/// `ADDITEMS` (protocol 4): Add an arbitrary number of items to an existing set.
pub(super) const ADDITEMS: u8 = 0x90;
/// `FROZENSET` (protocol 4): Build a frozenset out of the topmost slice, after markobject.
pub(super) const FROZENSET: u8 = 0x91;
/// `NEWOBJ_EX` (protocol 4): Build an object instance.
pub(super) const NEWOBJ_EX: u8 = 0x92;
/// `STACK_GLOBAL` (protocol 4): Push a global object (module.attr) on the stack.
pub(super) const STACK_GLOBAL: u8 = 0x93;
/// `MEMOIZE` (protocol 4): Store the stack top into the memo.  The stack is not popped.
pub(super) const MEMOIZE: u8 = 0x94;
/// `FRAME` (protocol 4): Indicate the beginning of a new frame.
pub(super) const FRAME: u8 = 0x95;
/// `BYTEARRAY8` (protocol 5): Push a Python bytearray object.
pub(super) const BYTEARRAY8: u8 = 0x96;
/// `NEXT_BUFFER` (protocol 5): Push an out-of-band buffer object.
pub(super) const NEXT_BUFFER: u8 = 0x97;
/// `READONLY_BUFFER` (protocol 5): Make an out-of-band buffer object read-only.
pub(super) const READONLY_BUFFER: u8 = 0x98;

/// The `pickletools` name of an opcode byte, `None` for bytes that are no opcode.
pub(super) fn name(opcode: u8) -> Option<&'static str> {
    Some(match opcode {
        MARK => "MARK",
        EMPTY_TUPLE => "EMPTY_TUPLE",
        STOP => "STOP",
        POP => "POP",
        POP_MARK => "POP_MARK",
        DUP => "DUP",
        BINBYTES => "BINBYTES",
        SHORT_BINBYTES => "SHORT_BINBYTES",
        FLOAT => "FLOAT",
        BINFLOAT => "BINFLOAT",
        INT => "INT",
        BININT => "BININT",
        BININT1 => "BININT1",
        LONG => "LONG",
        BININT2 => "BININT2",
        NONE => "NONE",
        PERSID => "PERSID",
        BINPERSID => "BINPERSID",
        REDUCE => "REDUCE",
        STRING => "STRING",
        BINSTRING => "BINSTRING",
        SHORT_BINSTRING => "SHORT_BINSTRING",
        UNICODE => "UNICODE",
        BINUNICODE => "BINUNICODE",
        EMPTY_LIST => "EMPTY_LIST",
        APPEND => "APPEND",
        BUILD => "BUILD",
        GLOBAL => "GLOBAL",
        DICT => "DICT",
        APPENDS => "APPENDS",
        GET => "GET",
        BINGET => "BINGET",
        INST => "INST",
        LONG_BINGET => "LONG_BINGET",
        LIST => "LIST",
        OBJ => "OBJ",
        PUT => "PUT",
        BINPUT => "BINPUT",
        LONG_BINPUT => "LONG_BINPUT",
        SETITEM => "SETITEM",
        TUPLE => "TUPLE",
        SETITEMS => "SETITEMS",
        EMPTY_DICT => "EMPTY_DICT",
        PROTO => "PROTO",
        NEWOBJ => "NEWOBJ",
        EXT1 => "EXT1",
        EXT2 => "EXT2",
        EXT4 => "EXT4",
        TUPLE1 => "TUPLE1",
        TUPLE2 => "TUPLE2",
        TUPLE3 => "TUPLE3",
        NEWTRUE => "NEWTRUE",
        NEWFALSE => "NEWFALSE",
        LONG1 => "LONG1",
        LONG4 => "LONG4",
        SHORT_BINUNICODE => "SHORT_BINUNICODE",
        BINUNICODE8 => "BINUNICODE8",
        BINBYTES8 => "BINBYTES8",
        EMPTY_SET => "EMPTY_SET",
        ADDITEMS => "ADDITEMS",
        FROZENSET => "FROZENSET",
        NEWOBJ_EX => "NEWOBJ_EX",
        STACK_GLOBAL => "STACK_GLOBAL",
        MEMOIZE => "MEMOIZE",
        FRAME => "FRAME",
        BYTEARRAY8 => "BYTEARRAY8",
        NEXT_BUFFER => "NEXT_BUFFER",
        READONLY_BUFFER => "READONLY_BUFFER",
        _ => return None,
    })
}
