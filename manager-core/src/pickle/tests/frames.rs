//! The client and server frames of PROTOCOL.md section 8 (CPython 3.11 on both ends, frame
//! bodies without their 4-byte length), decoded into the expected trees; and the replies we
//! encode, byte for byte.

use super::*;

/// Decodes a frame body, checks the tree and that it survives our encoding.
fn check(body: &str, expected: Object) {
    let bytes = hex(body);
    let object = load(&bytes).unwrap();
    assert_eq!(object, expected);
    assert_eq!(load(&encode(&object)).unwrap(), expected);
}

/// A request `(ident, method, args, kwds)`.
fn request(ident: Object, method: &str, args: Object, kwds: Object) -> Object {
    tuple([ident, s(method), args, kwds])
}

#[test]
fn dummy() {
    check(
        "8004951000000000000000284e8c0564756d6d7994297d9474942e",
        request(Object::None, "dummy", tuple([]), dict([])),
    );
}

#[test]
fn return_none() {
    check(
        "8004950e000000000000008c072352455455524e944e86942e",
        tuple([s("#RETURN"), Object::None]),
    );
}

#[test]
fn create() {
    check(
        "8004951900000000000000284e8c06637265617465948c04646963749485947d9474942e",
        request(Object::None, "create", tuple([s("dict")]), dict([])),
    );
}

#[test]
fn accept_connection_then_setitem() {
    check(
        "8004952b00000000000000284e8c116163636570745f636f6e6e656374696f6e948c0b4d61696e50726f6365
         73739485947d9474942e",
        request(
            Object::None,
            "accept_connection",
            tuple([s("MainProcess")]),
            dict([]),
        ),
    );
    check(
        "8004952b00000000000000288c0c376630393334323738653030948c0b5f5f7365746974656d5f5f948c016b
         944b0186947d9474942e",
        request(
            s("7f0934278e00"),
            "__setitem__",
            tuple([s("k"), int(1)]),
            dict([]),
        ),
    );
}

#[test]
fn integers() {
    let two70 = Object::BigInt([0, 0, 0, 0, 0, 0, 0, 0, 0x40].into());
    check(
        "8004955600000000000000288c0c376630393334323738653030948c0b5f5f7365746974656d5f5f948c0469
         6e7473945d94284b004bff4d00014dffff4a000001004affffffff8a0500000080008a09000000000000000040
         6586947d9474942e",
        request(
            s("7f0934278e00"),
            "__setitem__",
            tuple([
                s("ints"),
                list([
                    int(0),
                    int(255),
                    int(256),
                    int(65535),
                    int(65536),
                    int(-1),
                    int(1 << 31),
                    two70,
                ]),
            ]),
            dict([]),
        ),
    );
}

#[test]
fn key_error_reply() {
    check(
        "80049532000000000000008c06234552524f52948c086275696c74696e73948c084b65794572726f72949394
         8c076d697373696e67948594529486942e",
        tuple([
            s("#ERROR"),
            Object::exception("builtins", "KeyError", vec![s("missing")]),
        ]),
    );
}

#[test]
fn queue_empty_reply() {
    check(
        "80049522000000000000008c06234552524f52948c065f7175657565948c05456d7074799493942952948694
         2e",
        tuple([s("#ERROR"), Object::exception("_queue", "Empty", vec![])]),
    );
}

#[test]
fn proxy_reply_with_token() {
    check(
        "80049589000000000000008c062350524f585994288c085f5f6e6578745f5f948c0473656e64948c05746872
         6f77948c05636c6f73659474948c186d756c746970726f63657373696e672e6d616e6167657273948c05546f
         6b656e9493942981948c084974657261746f72948c093132372e302e302e31944d479686948c0c3766303933
         34323636666330948794628694 86942e",
        tuple([
            s("#PROXY"),
            tuple([
                tuple([s("__next__"), s("send"), s("throw"), s("close")]),
                token("Iterator", "127.0.0.1", 38471, "7f0934266fc0"),
            ]),
        ]),
    );
}

#[test]
fn get_methods_with_token() {
    check(
        "8004956a00000000000000284e8c0b6765745f6d6574686f6473948c186d756c746970726f63657373696e67
         2e6d616e6167657273948c05546f6b656e9493942981948c055468696e67948c093132372e302e302e31944d
         01b186948c0c3766303933343264386439309487946285947d9474942e",
        request(
            Object::None,
            "get_methods",
            tuple([token("Thing", "127.0.0.1", 45313, "7f09342d8d90")]),
            dict([]),
        ),
    );
}

#[test]
fn append_a_proxy_with_rebuild_proxy() {
    // `l.append(d)` with `d` a DictProxy: RebuildProxy(DictProxy, token, 'pickle', {}).
    // BINGET 2 reuses the memoized 'multiprocessing.managers' three times.
    let rebuild = Object::Reduce {
        callable: Box::new(Object::global("multiprocessing.managers", "RebuildProxy")),
        args: Box::new(tuple([
            Object::global("multiprocessing.managers", "DictProxy"),
            token("dict", "127.0.0.1", 45313, "7f0934278e00"),
            s("pickle"),
            dict([]),
        ])),
    };
    check(
        "800495a500000000000000288c0c376630393334326438306330948c06617070656e64948c186d756c746970
         726f63657373696e672e6d616e6167657273948c0c52656275696c6450726f78799493942868028c09446963
         7450726f787994939468028c05546f6b656e9493942981948c0464696374948c093132372e302e302e31944d
         01b186948c0c376630393334323738653030948794628c067069636b6c65947d947494529485947d9474942e",
        request(s("7f09342d80c0"), "append", tuple([rebuild]), dict([])),
    );
}

#[test]
fn fragments() {
    // `d['f'] = 1.5`, `d['b'] = b'\x00\x01bytes'`, `lk.acquire(True, 0.01)`: the argument
    // opcodes inside a hand-made frame.
    check("8004 47 3ff8000000000000 2e", Object::Float(1.5));
    check(
        "800443070001627974657394 2e",
        Object::Bytes(b"\x00\x01bytes".to_vec()),
    );
    check(
        "8004 88 47 3f 84 7a e1 47 ae 14 7b 86 2e",
        tuple([Object::Bool(true), Object::Float(0.01)]),
    );
    // `d.update(x=1)`: kwds `EMPTY_DICT 'x' 1 SETITEM`.
    check(
        "8004 29 7d 94 8c 01 78 94 4b 01 73 86 2e",
        tuple([tuple([]), dict([(s("x"), int(1))])]),
    );
    // `('#RETURN', False)`.
    check(
        "8004950e000000000000008c072352455455524e948986942e",
        tuple([s("#RETURN"), Object::Bool(false)]),
    );
}

#[test]
fn replies_encode_as_a_minimal_cpython_pickle() {
    // CPython's bytes without FRAME and MEMOIZE.
    let reply = tuple([s("#RETURN"), Object::None]);
    assert_eq!(encode(&reply), hex("8004 8c072352455455524e 4e 86 2e"));
    let error = tuple([
        s("#ERROR"),
        Object::exception("builtins", "KeyError", vec![s("missing")]),
    ]);
    assert_eq!(
        encode(&error),
        hex(
            "8004 8c06234552524f52 8c086275696c74696e73 8c084b65794572726f72 93
             8c076d697373696e67 85 52 86 2e"
        )
    );
    let empty = tuple([s("#ERROR"), Object::exception("_queue", "Empty", vec![])]);
    assert_eq!(
        encode(&empty),
        hex("8004 8c06234552524f52 8c065f7175657565 8c05456d707479 93 29 52 86 2e")
    );
    let proxy = token("Iterator", "127.0.0.1", 38471, "7f0934266fc0");
    assert_eq!(
        encode(&proxy),
        hex(
            "8004 8c186d756c746970726f63657373696e672e6d616e6167657273 8c05546f6b656e 93 29 81
             8c084974657261746f72 8c093132372e302e302e31 4d4796 86 8c0c376630393334323636666330
             87 62 2e"
        )
    );
    let mut out = b"prefix".to_vec();
    encode_into(&Object::None, &mut out);
    assert_eq!(out, b"prefix\x80\x04N.");
}
