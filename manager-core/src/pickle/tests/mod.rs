//! Unit tests of the pickle codec: helpers and small cases here, the rest by theme.

mod frames;
mod hostile;
mod roundtrip;
mod semantics;

use super::*;

/// Bytes from hex, whitespace ignored.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn load(bytes: &[u8]) -> Result<Object, DecodeError> {
    decode(bytes, &Limits::default())
}

fn s(text: &str) -> Object {
    Object::Str(text.into())
}

fn int(value: i64) -> Object {
    Object::Int(value)
}

fn tuple<const N: usize>(items: [Object; N]) -> Object {
    Object::Tuple(items.into())
}

fn list<const N: usize>(items: [Object; N]) -> Object {
    Object::List(items.into())
}

fn dict<const N: usize>(pairs: [(Object, Object); N]) -> Object {
    Object::Dict(pairs.into())
}

/// `multiprocessing.managers.Token(typeid, (host, port), id)` as CPython pickles it.
fn token(typeid: &str, host: &str, port: i64, id: &str) -> Object {
    Object::Build {
        object: Box::new(Object::NewObj {
            class: Box::new(Object::global("multiprocessing.managers", "Token")),
            args: Box::new(tuple([])),
        }),
        state: Box::new(tuple([s(typeid), tuple([s(host), int(port)]), s(id)])),
    }
}

/// Equality with floats compared bit for bit (so NaN equals the same NaN).
fn same(a: &Object, b: &Object) -> bool {
    use Object as O;
    let all =
        |a: &[Object], b: &[Object]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b));
    let pairs = |a: &[(Object, Object)], b: &[(Object, Object)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
    };
    match (a, b) {
        (O::Float(a), O::Float(b)) => a.to_bits() == b.to_bits(),
        (O::Tuple(a), O::Tuple(b))
        | (O::List(a), O::List(b))
        | (O::Set(a), O::Set(b))
        | (O::FrozenSet(a), O::FrozenSet(b)) => all(a, b),
        (O::Dict(a), O::Dict(b)) => pairs(a, b),
        (
            O::Reduce {
                callable: f,
                args: x,
            },
            O::Reduce {
                callable: g,
                args: y,
            },
        )
        | (O::NewObj { class: f, args: x }, O::NewObj { class: g, args: y })
        | (
            O::Build {
                object: f,
                state: x,
            },
            O::Build {
                object: g,
                state: y,
            },
        ) => same(f, g) && same(x, y),
        (
            O::NewObjEx {
                class: f,
                args: x,
                kwargs: k,
            },
            O::NewObjEx {
                class: g,
                args: y,
                kwargs: l,
            },
        ) => same(f, g) && same(x, y) && same(k, l),
        (
            O::Appends {
                object: f,
                items: x,
            },
            O::Appends {
                object: g,
                items: y,
            },
        ) => same(f, g) && all(x, y),
        (
            O::SetItems {
                object: f,
                items: x,
            },
            O::SetItems {
                object: g,
                items: y,
            },
        ) => same(f, g) && pairs(x, y),
        _ => a == b,
    }
}

#[test]
fn int_from_le_bytes_normalises() {
    assert_eq!(Object::int_from_le_bytes(&[]), int(0));
    assert_eq!(Object::int_from_le_bytes(&[0, 0, 0]), int(0));
    assert_eq!(Object::int_from_le_bytes(&[0xff]), int(-1));
    assert_eq!(Object::int_from_le_bytes(&[0xff; 20]), int(-1));
    assert_eq!(Object::int_from_le_bytes(&[0x80]), int(-128));
    assert_eq!(Object::int_from_le_bytes(&[0x80, 0x00]), int(128));
    assert_eq!(Object::int_from_le_bytes(&[0x7f, 0xff]), int(-129));
    assert_eq!(
        Object::int_from_le_bytes(&[0xff, 0xff, 0xff, 0x7f, 0, 0]),
        int(i32::MAX.into())
    );
    let max = i64::MAX.to_le_bytes();
    assert_eq!(Object::int_from_le_bytes(&max), int(i64::MAX));
    assert_eq!(
        Object::int_from_le_bytes(&i64::MIN.to_le_bytes()),
        int(i64::MIN)
    );
    // 2**63 needs a ninth byte for the sign; -2**63 - 1 too.
    let two63 = [0, 0, 0, 0, 0, 0, 0, 0x80, 0];
    assert_eq!(
        Object::int_from_le_bytes(&two63),
        Object::BigInt(two63.into())
    );
    let mut padded = two63.to_vec();
    padded.extend([0, 0, 0]);
    assert_eq!(
        Object::int_from_le_bytes(&padded),
        Object::BigInt(two63.into())
    );
    let below = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff];
    assert_eq!(
        Object::int_from_le_bytes(&below),
        Object::BigInt(below.into())
    );
    let mut padded = below.to_vec();
    padded.push(0xff);
    assert_eq!(
        Object::int_from_le_bytes(&padded),
        Object::BigInt(below.into())
    );
}

#[test]
fn helpers() {
    let error = Object::exception("builtins", "KeyError", vec![s("k")]);
    match &error {
        Object::Reduce { callable, args } => {
            assert_eq!(callable.as_global(), Some(("builtins", "KeyError")));
            assert_eq!(args.as_tuple(), Some(&[s("k")][..]));
        }
        other => panic!("not a Reduce: {other:?}"),
    }
    assert_eq!(s("x").as_str(), Some("x"));
    assert_eq!(int(3).as_str(), None);
    assert_eq!(int(3).as_int(), Some(3));
    assert_eq!(Object::None.as_tuple(), None);
    assert_eq!(Object::None.as_global(), None);
}

#[test]
fn errors_read_well() {
    let unknown = DecodeError::UnknownOpcode {
        opcode: b'P',
        offset: 2,
    };
    assert_eq!(
        unknown.to_string(),
        "unsupported pickle opcode PERSID (0x50) at offset 2"
    );
    let byte = DecodeError::UnknownOpcode {
        opcode: 0xff,
        offset: 9,
    };
    assert_eq!(
        byte.to_string(),
        "unsupported pickle opcode 0xff at offset 9"
    );
    assert_eq!(
        DecodeError::MemoMissing(5).to_string(),
        "pickle memo has no entry 5"
    );
}

#[test]
fn errors_are_send_sync_and_static() {
    fn check<T: Send + Sync + 'static + std::error::Error>() {}
    check::<DecodeError>();
    fn data<T: Send + Sync + 'static>() {}
    data::<Object>();
    data::<Limits>();
}
