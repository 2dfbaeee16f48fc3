//! What each opcode builds: references through the memo, opaque mutation, the stack and its
//! marks, the natives recognised and the Python 2 names mapped.

use super::*;

/// Decodes `PROTO 4` + `body` (a byte string with opcodes spelled out).
fn run(body: &[u8]) -> Result<Object, DecodeError> {
    load(&[b"\x80\x04".as_slice(), body].concat())
}

fn global(module: &str, name: &str) -> Object {
    Object::global(module, name)
}

fn reduce(callable: Object, args: Object) -> Object {
    Object::Reduce {
        callable: Box::new(callable),
        args: Box::new(args),
    }
}

#[test]
fn a_reference_sees_the_container_filled_later() {
    // EMPTY_LIST MEMOIZE MARK 1 2 APPENDS BINGET 0 TUPLE2: ([1, 2], [1, 2]).
    let filled = list([int(1), int(2)]);
    assert_eq!(
        run(b"]\x94(K\x01K\x02eh\x00\x86.").unwrap(),
        tuple([filled.clone(), filled])
    );
    // The reference is taken before the list is filled: EMPTY_LIST MEMOIZE BINGET 0 1 APPEND.
    assert_eq!(
        run(b"]\x94h\x00K\x01a\x86.").unwrap(),
        tuple([list([int(1)]), list([int(1)])])
    );
    // The same for a dict and a set.
    assert_eq!(
        run(b"}\x94h\x00K\x01K\x02s\x86.").unwrap(),
        tuple([dict([(int(1), int(2))]), dict([(int(1), int(2))])])
    );
    assert_eq!(
        run(b"\x8f\x94h\x00(K\x01\x90\x86.").unwrap(),
        tuple([Object::Set(vec![int(1)]), Object::Set(vec![int(1)])])
    );
}

#[test]
fn build_changes_the_object_for_every_reference() {
    // GLOBAL __main__ P, EMPTY_TUPLE NEWOBJ MEMOIZE, {'x': 1} BUILD, BINGET 1 TUPLE2.
    let built = Object::Build {
        object: Box::new(Object::NewObj {
            class: Box::new(global("__main__", "P")),
            args: Box::new(tuple([])),
        }),
        state: Box::new(dict([(s("x"), int(1))])),
    };
    assert_eq!(
        run(b"c__main__\nP\n\x94)\x81\x94}\x8c\x01xK\x01sbh\x01\x86.").unwrap(),
        tuple([built.clone(), built])
    );
}

#[test]
fn appends_and_setitems_on_other_objects_stay_opaque() {
    // deque((), 5) then APPENDS [1, 2] and APPEND 3: one Appends node.
    let deque = reduce(global("collections", "deque"), tuple([tuple([]), int(5)]));
    assert_eq!(
        run(b"\x8c\x0bcollections\x8c\x05deque\x93)K\x05\x86R(K\x01K\x02eK\x03a.").unwrap(),
        Object::Appends {
            object: Box::new(deque.clone()),
            items: vec![int(1), int(2), int(3)],
        }
    );
    // An empty APPENDS still says "this was appended to".
    assert_eq!(
        run(b"\x8c\x0bcollections\x8c\x05deque\x93)K\x05\x86R(e.").unwrap(),
        Object::Appends {
            object: Box::new(deque),
            items: vec![],
        }
    );
    // OrderedDict() then SETITEMS and SETITEM, seen through the memo.
    let ordered = reduce(global("collections", "OrderedDict"), tuple([]));
    let filled = Object::SetItems {
        object: Box::new(ordered),
        items: vec![(s("a"), int(1)), (s("b"), int(2)), (s("c"), int(3))],
    };
    assert_eq!(
        run(b"ccollections\nOrderedDict\n)R\x94(\x8c\x01aK\x01\x8c\x01bK\x02u\x8c\x01cK\x03sh\x00\x86.")
            .unwrap(),
        tuple([filled.clone(), filled])
    );
    // Appends to a plain list, empty or not, stays a list.
    assert_eq!(run(b"](e(K\x01e.").unwrap(), list([int(1)]));
    // APPEND to the result of a BUILD wraps the Build.
    let appended = run(b"cm\nC\n)\x81Nb(K\x01e.").unwrap();
    assert!(
        matches!(&appended, Object::Appends { object, .. } if matches!(**object, Object::Build { .. })),
        "{appended:?}"
    );
}

#[test]
fn bytearray_before_protocol_5_is_recognised() {
    assert_eq!(
        run(b"\x8c\x08builtins\x8c\x09bytearray\x93C\x02ab\x85R.").unwrap(),
        Object::ByteArray(b"ab".to_vec())
    );
    assert_eq!(
        run(b"cbuiltins\nbytearray\n)R.").unwrap(),
        Object::ByteArray(vec![])
    );
    assert_eq!(
        run(b"\x96\x02\x00\x00\x00\x00\x00\x00\x00ab.").unwrap(),
        Object::ByteArray(b"ab".to_vec())
    );
    // bytearray('ab', 'latin-1') and bytearray of a list are calls like any other.
    let call = run(b"cbuiltins\nbytearray\n\x8c\x02ab\x8c\x07latin-1\x86R.").unwrap();
    assert!(matches!(call, Object::Reduce { .. }), "{call:?}");
    let call = run(b"cbuiltins\nbytearray\n]\x85R.").unwrap();
    assert!(matches!(call, Object::Reduce { .. }), "{call:?}");
}

#[test]
fn python2_names_are_mapped_below_protocol_3() {
    let key_error = b"cexceptions\nKeyError\nX\x01\x00\x00\x00k\x85R.";
    let p2 = load(&[b"\x80\x02".as_slice(), key_error].concat()).unwrap();
    assert_eq!(p2, Object::exception("builtins", "KeyError", vec![s("k")]));
    // No PROTO at all is protocol 0 or 1: mapped too.
    assert_eq!(load(key_error).unwrap(), p2);
    // Protocol 3 and later: names are kept.
    let p3 = load(&[b"\x80\x03".as_slice(), key_error].concat()).unwrap();
    assert_eq!(
        p3,
        Object::exception("exceptions", "KeyError", vec![s("k")])
    );
    // Module renames keep the name; STACK_GLOBAL is mapped as GLOBAL is.
    assert_eq!(
        load(b"\x80\x02cQueue\nEmpty\n.").unwrap(),
        global("queue", "Empty")
    );
    assert_eq!(
        load(b"\x80\x02\x8c\x0b__builtin__\x8c\x06xrange\x93.").unwrap(),
        global("builtins", "range")
    );
    assert_eq!(
        load(b"\x80\x02cmymodule\nThing\n.").unwrap(),
        global("mymodule", "Thing")
    );
}

#[test]
fn the_stack_and_its_marks() {
    // POP, DUP, POP_MARK.
    assert_eq!(run(b"NK\x010.").unwrap(), Object::None);
    assert_eq!(run(b"K\x012\x86.").unwrap(), tuple([int(1), int(1)]));
    assert_eq!(run(b"K\x01(K\x02K\x031.").unwrap(), int(1));
    // POP with nothing above the mark pops the mark, as in CPython.
    assert_eq!(run(b"K\x01(0K\x02\x86.").unwrap(), tuple([int(1), int(2)]));
    // Nothing below the mark can be popped.
    assert_eq!(
        run(b"K\x01(\x85."),
        Err(DecodeError::StackUnderflow { offset: 5 })
    );
    // STOP takes the top; what is left under it is ignored, as in CPython.
    assert_eq!(run(b"K\x01K\x02.").unwrap(), int(2));
    assert_eq!(run(b"(K\x01.").unwrap(), int(1));
    assert_eq!(run(b"."), Err(DecodeError::StackUnderflow { offset: 2 }));
    assert_eq!(run(b"t."), Err(DecodeError::NoMark { offset: 2 }));
}

#[test]
fn container_opcodes() {
    assert_eq!(
        run(b"(K\x01K\x02K\x03K\x04t.").unwrap(),
        tuple([int(1), int(2), int(3), int(4)])
    );
    assert_eq!(run(b"(K\x01K\x02l.").unwrap(), list([int(1), int(2)]));
    assert_eq!(
        run(b"(K\x01K\x02K\x01K\x03d.").unwrap(),
        dict([(int(1), int(2)), (int(1), int(3))]),
        "duplicate keys are kept as the pickle has them"
    );
    assert_eq!(
        run(b"(K\x02K\x01\x91.").unwrap(),
        Object::FrozenSet(vec![int(2), int(1)])
    );
    assert_eq!(
        run(b"\x8f(K\x01\x90(K\x02\x90.").unwrap(),
        Object::Set(vec![int(1), int(2)])
    );
    let kw = run(b"cm\nK\n)}\x8c\x01kK\x01s\x92.").unwrap();
    assert_eq!(
        kw,
        Object::NewObjEx {
            class: Box::new(global("m", "K")),
            args: Box::new(tuple([])),
            kwargs: Box::new(dict([(s("k"), int(1))])),
        }
    );
}

#[test]
fn the_memo() {
    // BINPUT overwrites; MEMOIZE uses the number of entries, as CPython.
    assert_eq!(
        run(b"K\x01q\x07K\x02q\x07h\x07\x86.").unwrap(),
        tuple([int(2), int(2)])
    );
    assert_eq!(
        run(b"K\x01q\x05K\x02\x94h\x01h\x05\x86.").unwrap(),
        tuple([int(2), int(1)])
    );
    // Any u32 index, without allocating for it.
    assert_eq!(
        run(b"K\x09r\xff\xff\xff\xffj\xff\xff\xff\xff\x86.").unwrap(),
        tuple([int(9), int(9)])
    );
    assert_eq!(run(b"h\x05."), Err(DecodeError::MemoMissing(5)));
    assert_eq!(
        run(b"j\x00\x00\x00\x01."),
        Err(DecodeError::MemoMissing(1 << 24))
    );
    let tight = Limits {
        max_memo: 3,
        ..Limits::default()
    };
    let ok = b"\x80\x04N\x94\x94\x94q\x00.";
    assert_eq!(
        decode(ok, &tight),
        Ok(Object::None),
        "re-storing an index is free"
    );
    let over = b"\x80\x04N\x94\x94\x94\x94.";
    assert_eq!(decode(over, &tight), Err(DecodeError::TooManyMemoEntries));
}

#[test]
fn scalars() {
    assert_eq!(run(b"\x88.").unwrap(), Object::Bool(true));
    assert_eq!(run(b"\x89.").unwrap(), Object::Bool(false));
    assert_eq!(run(b"M\xff\xff.").unwrap(), int(65535));
    assert_eq!(run(b"J\x00\x00\x00\x80.").unwrap(), int(i32::MIN.into()));
    // LONG1 and LONG4 of any length are normalised.
    assert_eq!(run(b"\x8a\x00.").unwrap(), int(0));
    assert_eq!(run(b"\x8a\x03\x05\x00\x00.").unwrap(), int(5));
    assert_eq!(run(b"\x8b\x01\x00\x00\x00\xff.").unwrap(), int(-1));
    let mut long4 = b"\x8b\x00\x01\x00\x00".to_vec();
    long4.extend([0xab; 256]);
    long4.push(b'.');
    assert_eq!(run(&long4).unwrap(), Object::BigInt(vec![0xab; 256].into()));
    assert_eq!(
        run(b"G\x7f\xf8\x00\x00\x00\x00\x00\x01.")
            .unwrap()
            .as_float_bits(),
        Some(0x7ff8_0000_0000_0001),
        "NaN payloads are kept"
    );
    // Every string and bytes width.
    assert_eq!(run(b"X\x02\x00\x00\x00\xc3\xa9.").unwrap(), s("\u{e9}"));
    assert_eq!(
        run(b"\x8d\x01\x00\x00\x00\x00\x00\x00\x00a.").unwrap(),
        s("a")
    );
    assert_eq!(
        run(b"B\x01\x00\x00\x00a.").unwrap(),
        Object::Bytes(b"a".to_vec())
    );
    assert_eq!(
        run(b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00a.").unwrap(),
        Object::Bytes(b"a".to_vec())
    );
}

#[test]
fn strings_with_surrogates() {
    // '\ud800' and the pair '\ud83d\ude00' written as two code points (surrogatepass).
    assert_eq!(
        run(b"\x8c\x03\xed\xa0\x80.").unwrap(),
        Object::StrBytes([0xed, 0xa0, 0x80].into())
    );
    assert_eq!(
        run(b"\x8c\x06\xed\xa0\xbd\xed\xb8\x80.").unwrap(),
        Object::StrBytes([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80].into())
    );
    // What Python's decoder refuses is refused.
    for bad in [
        &b"\xff"[..],
        b"\xc0\x80",
        b"\xe0\x80\x80",
        b"\xf4\x90\x80\x80",
        b"\xed\xa0",
        b"\x80",
    ] {
        let mut pickle = vec![0x8c, bad.len() as u8];
        pickle.extend_from_slice(bad);
        pickle.push(b'.');
        assert_eq!(
            run(&pickle),
            Err(DecodeError::BadValue {
                what: "str is not UTF-8",
                offset: 2
            }),
            "{bad:x?}"
        );
    }
}

#[test]
fn frames_trailing_bytes_and_protocols() {
    // Two frames, then bytes after STOP.
    let pickle = b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00K\x01\x95\x02\x00\x00\x00\x00\x00\x00\x00\x85.garbage";
    assert_eq!(load(pickle).unwrap(), tuple([int(1)]));
    for proto in 2..=5 {
        assert_eq!(load(&[0x80, proto, b'N', b'.']).unwrap(), Object::None);
    }
    for proto in [0, 1, 6, 0xff] {
        assert_eq!(
            load(&[0x80, proto, b'N', b'.']),
            Err(DecodeError::UnsupportedProtocol(proto))
        );
    }
}

#[test]
fn operand_errors() {
    let bad = |what, offset| Err(DecodeError::BadValue { what, offset });
    assert_eq!(
        run(b"K\x01K\x02\x93."),
        bad("STACK_GLOBAL of something that is not a str", 6)
    );
    assert_eq!(
        run(b"\x8c\x01m\x8c\x03\xed\xa0\x80\x93."),
        bad("STACK_GLOBAL of something that is not a str", 10)
    );
    assert_eq!(run(b"}(K\x01u."), bad("odd number of items for a dict", 6));
    assert_eq!(run(b"(K\x01d."), bad("odd number of items for a dict", 5));
    assert_eq!(
        run(b"](K\x01\x90."),
        bad("ADDITEMS on something that is not a set", 6)
    );
    assert_eq!(
        run(b"\x8b\xff\xff\xff\xff."),
        bad("negative LONG4 byte count", 2)
    );
    assert_eq!(run(b"c\xff\nx\n."), bad("GLOBAL name is not UTF-8", 2));
}

impl Object {
    fn as_float_bits(&self) -> Option<u64> {
        match self {
            Object::Float(value) => Some(value.to_bits()),
            _ => None,
        }
    }
}
