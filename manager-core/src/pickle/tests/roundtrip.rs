//! The encoder's choice of opcodes, and `decode(encode(x)) == x` for arbitrary objects.

use proptest::prelude::*;

use super::*;

fn body(object: &Object) -> Vec<u8> {
    let bytes = encode(object);
    assert_eq!(&bytes[..2], b"\x80\x04");
    assert_eq!(bytes.last(), Some(&b'.'));
    bytes[2..bytes.len() - 1].to_vec()
}

#[test]
fn integers_take_the_smallest_opcode() {
    let cases: &[(i64, &str)] = &[
        (0, "4b00"),
        (255, "4bff"),
        (256, "4d0001"),
        (65535, "4dffff"),
        (65536, "4a00000100"),
        (-1, "4affffffff"),
        (i32::MAX as i64, "4affffff7f"),
        (i32::MIN as i64, "4a00000080"),
        (1 << 31, "8a050000008000"),
        (-(1 << 31) - 1, "8a05ffffff7fff"),
        (i64::MAX, "8a08ffffffffffffff7f"),
        (i64::MIN, "8a080000000000000080"),
    ];
    for &(value, expected) in cases {
        assert_eq!(body(&int(value)), hex(expected), "{value}");
    }
    let two63 = Object::BigInt([0, 0, 0, 0, 0, 0, 0, 0x80, 0].into());
    assert_eq!(body(&two63), hex("8a09 000000000000008000"));
    // A BigInt not in normal form is written as its value.
    assert_eq!(body(&Object::BigInt([5, 0, 0].into())), hex("4b05"));
    assert_eq!(body(&Object::BigInt([].into())), hex("4b00"));
    // 255 bytes is the longest LONG1; 256 takes LONG4.
    let mut long1 = vec![0; 254];
    long1.push(0x40);
    assert_eq!(
        body(&Object::BigInt(long1.clone().into()))[..2],
        [0x8a, 255]
    );
    long1.push(0x40);
    assert_eq!(
        body(&Object::BigInt(long1.into()))[..5],
        [0x8b, 0x00, 0x01, 0, 0]
    );
}

#[test]
fn strings_and_bytes_by_length() {
    let short = "x".repeat(255);
    let long = "x".repeat(256);
    assert_eq!(body(&s(&short))[..2], [0x8c, 255]);
    assert_eq!(body(&s(&long))[..5], [b'X', 0, 1, 0, 0]);
    assert_eq!(
        body(&Object::StrBytes([0xed, 0xa0, 0x80].into())),
        hex("8c03eda080")
    );
    assert_eq!(body(&Object::Bytes(vec![1; 255]))[..2], [b'C', 255]);
    assert_eq!(body(&Object::Bytes(vec![1; 256]))[..5], [b'B', 0, 1, 0, 0]);
    // A bytearray as protocol 4 writes it: builtins.bytearray(bytes), or () when empty.
    assert_eq!(
        body(&Object::ByteArray(b"ab".to_vec())),
        hex("8c086275696c74696e73 8c09627974656172726179 93 43026162 85 52")
    );
    assert_eq!(
        body(&Object::ByteArray(vec![])),
        hex("8c086275696c74696e73 8c09627974656172726179 93 29 52")
    );
    assert_eq!(body(&Object::Float(-0.0)), hex("47 8000000000000000"));
}

#[test]
fn containers_in_batches_of_1000() {
    assert_eq!(body(&tuple([])), hex("29"));
    assert_eq!(
        body(&tuple([int(1), int(2), int(3)])),
        hex("4b01 4b02 4b03 87")
    );
    assert_eq!(
        body(&tuple([int(1), int(2), int(3), int(4)])),
        hex("28 4b01 4b02 4b03 4b04 74")
    );
    assert_eq!(body(&list([])), hex("5d"));
    assert_eq!(body(&list([int(1)])), hex("5d 4b01 61"));
    assert_eq!(body(&list([int(1), int(2)])), hex("5d 28 4b01 4b02 65"));
    assert_eq!(body(&dict([])), hex("7d"));
    assert_eq!(body(&dict([(int(1), int(2))])), hex("7d 4b01 4b02 73"));
    assert_eq!(body(&Object::Set(vec![])), hex("8f"));
    assert_eq!(body(&Object::Set(vec![int(1)])), hex("8f 28 4b01 90"));
    assert_eq!(body(&Object::FrozenSet(vec![])), hex("28 91"));

    let count = |bytes: &[u8], opcode: u8| bytes.iter().filter(|&&b| b == opcode).count();
    // 1001 items: MARK + 1000 + APPENDS, then MARK + the last one + APPENDS, as CPython's
    // C pickler (its pure-Python pickler would use APPEND for the last one).
    let items: Vec<Object> = (0..1001).map(|i| int(i % 7)).collect();
    let bytes = body(&Object::List(items.clone()));
    assert_eq!((count(&bytes, b'('), count(&bytes, b'e')), (2, 2));
    assert_eq!(
        &bytes[bytes.len() - 4..],
        hex("28 4b06 65"),
        "1000 % 7 == 6"
    );
    // On an opaque object (an iterator in CPython) a batch of one is APPEND.
    let deque = Object::Appends {
        object: Box::new(Object::global("m", "D")),
        items: items.clone(),
    };
    let bytes = body(&deque);
    assert_eq!((count(&bytes, b'('), count(&bytes, b'e')), (1, 1));
    assert_eq!(&bytes[bytes.len() - 3..], hex("4b06 61"));
    let pairs: Vec<(Object, Object)> = (0..1500).map(|i| (int(i % 9), Object::None)).collect();
    let bytes = body(&Object::Dict(pairs));
    assert_eq!((count(&bytes, b'('), count(&bytes, b'u')), (2, 2));
    let pairs: Vec<(Object, Object)> = (0..1001).map(|i| (int(i % 9), Object::None)).collect();
    let bytes = body(&Object::Dict(pairs.clone()));
    assert_eq!((count(&bytes, b'('), count(&bytes, b'u')), (2, 2));
    let ordered = Object::SetItems {
        object: Box::new(Object::global("m", "O")),
        items: pairs,
    };
    let bytes = body(&ordered);
    assert_eq!(
        &bytes[bytes.len() - 4..],
        hex("4b01 4e 73"),
        "1000 % 9 == 1"
    );
    let set: Vec<Object> = (0..2500).map(|i| int(i % 5)).collect();
    let bytes = body(&Object::Set(set.clone()));
    assert_eq!((count(&bytes, b'('), count(&bytes, 0x90)), (3, 3));
    for object in [
        Object::List(items),
        Object::Set(set.clone()),
        Object::FrozenSet(set),
    ] {
        assert_eq!(load(&encode(&object)).unwrap(), object);
    }
}

#[test]
fn opaque_nodes() {
    let deque = Object::global("collections", "deque");
    let empty = Object::Appends {
        object: Box::new(deque.clone()),
        items: vec![],
    };
    assert_eq!(
        body(&empty),
        hex("8c0b636f6c6c656374696f6e73 8c056465717565 93 28 65")
    );
    let one = Object::SetItems {
        object: Box::new(deque.clone()),
        items: vec![(int(1), int(2))],
    };
    assert_eq!(body(&one)[21..], hex("4b01 4b02 73"));
    let empty = Object::SetItems {
        object: Box::new(deque),
        items: vec![],
    };
    assert_eq!(body(&empty)[21..], hex("28 75"));
    for object in [empty, one] {
        assert_eq!(load(&encode(&object)).unwrap(), object);
    }
}

/// Any object in normal form (see [`Object`]).
fn object() -> impl Strategy<Value = Object> {
    let name = "[A-Za-z_][A-Za-z0-9_.]{0,12}";
    let leaf = prop_oneof![
        Just(Object::None),
        any::<bool>().prop_map(Object::Bool),
        any::<i64>().prop_map(Object::Int),
        prop_oneof![Just(0_i64), Just(-1), Just(255), Just(256), Just(65536)].prop_map(Object::Int),
        prop::collection::vec(any::<u8>(), 9..300)
            .prop_map(|bytes| Object::int_from_le_bytes(&bytes))
            .prop_filter("outside i64", |int| matches!(int, Object::BigInt(_))),
        any::<u64>().prop_map(|bits| Object::Float(f64::from_bits(bits))),
        prop::collection::vec(any::<char>(), 0..300)
            .prop_map(|c| Object::Str(c.into_iter().collect())),
        (any::<String>(), 0xd800_u32..=0xdfff, any::<String>()).prop_map(|(a, surrogate, b)| {
            let mut bytes = a.into_bytes();
            bytes.extend([
                0xe0 | (surrogate >> 12) as u8,
                0x80 | ((surrogate >> 6) & 0x3f) as u8,
                0x80 | (surrogate & 0x3f) as u8,
            ]);
            bytes.extend(b.into_bytes());
            Object::StrBytes(bytes.into())
        }),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Object::Bytes),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Object::ByteArray),
        (name, name).prop_map(|(module, name)| Object::Global { module, name }),
    ];
    leaf.prop_recursive(6, 96, 6, |inner| {
        let items = prop::collection::vec(inner.clone(), 0..6);
        let pairs = prop::collection::vec((inner.clone(), inner.clone()), 0..4);
        let boxed = inner.clone().prop_map(Box::new);
        // What Appends/SetItems wrap is never what they would merge into.
        let not_list = inner
            .clone()
            .prop_filter("not a list", |o| {
                !matches!(o, Object::List(_) | Object::Appends { .. })
            })
            .prop_map(Box::new);
        let not_dict = inner
            .clone()
            .prop_filter("not a dict", |o| {
                !matches!(o, Object::Dict(_) | Object::SetItems { .. })
            })
            .prop_map(Box::new);
        prop_oneof![
            items.clone().prop_map(Object::Tuple),
            items.clone().prop_map(Object::List),
            items.clone().prop_map(Object::Set),
            items.clone().prop_map(Object::FrozenSet),
            pairs.clone().prop_map(Object::Dict),
            (boxed.clone(), boxed.clone())
                .prop_map(|(callable, args)| Object::Reduce { callable, args }),
            (boxed.clone(), boxed.clone()).prop_map(|(class, args)| Object::NewObj { class, args }),
            (boxed.clone(), boxed.clone(), boxed.clone()).prop_map(|(class, args, kwargs)| {
                Object::NewObjEx {
                    class,
                    args,
                    kwargs,
                }
            }),
            (boxed.clone(), boxed).prop_map(|(object, state)| Object::Build { object, state }),
            (not_list, items).prop_map(|(object, items)| Object::Appends { object, items }),
            (not_dict, pairs).prop_map(|(object, items)| Object::SetItems { object, items }),
        ]
    })
}

proptest! {
    #[test]
    fn decode_inverts_encode(object in object()) {
        let bytes = encode(&object);
        let back = load(&bytes).unwrap();
        prop_assert!(same(&back, &object), "{back:?} != {object:?}");
        // Our output is also our fuzz target's idea of a fixed point.
        super::super::fuzz(&bytes);
    }
}
