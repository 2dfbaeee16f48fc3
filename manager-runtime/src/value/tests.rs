//! Unit tests of the value bridge (proxies need a server: see `tests/it/values.rs`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{from_value, to_value, Value, ValueError, MAX_DEPTH};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> Value {
    let v = to_value(value).unwrap();
    let back: T = from_value(v.clone()).unwrap();
    assert_eq!(&back, value, "through {v:?}");
    let bytes = postcard::to_stdvec(&v).unwrap();
    let again: Value = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(again, v, "through postcard");
    v
}

fn hash_of(value: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn variant(name: &str, payload: Value) -> Value {
    Value::Variant(name.to_owned(), Box::new(payload))
}

#[test]
fn integers_of_every_width() {
    assert_eq!(round_trip(&i8::MIN), Value::Int(-128));
    assert_eq!(round_trip(&i16::MAX), Value::Int(32767));
    assert_eq!(round_trip(&i32::MIN), Value::Int(i64::from(i32::MIN)));
    assert_eq!(round_trip(&i64::MIN), Value::Int(i64::MIN));
    assert_eq!(round_trip(&u8::MAX), Value::Int(255));
    assert_eq!(round_trip(&u16::MAX), Value::Int(65535));
    assert_eq!(round_trip(&u32::MAX), Value::Int(i64::from(u32::MAX)));
    assert_eq!(round_trip(&(i64::MAX as u64)), Value::Int(i64::MAX));
    assert_eq!(round_trip(&u64::MAX), Value::UInt(u64::MAX));
    assert_eq!(round_trip(&(1u64 << 63)), Value::UInt(1 << 63));
    // Any width reads back any integer that fits.
    assert_eq!(from_value::<i8>(Value::Int(-5)).unwrap(), -5);
    assert_eq!(
        from_value::<u128>(Value::UInt(u64::MAX)).unwrap(),
        u128::from(u64::MAX)
    );
    assert_eq!(from_value::<f64>(Value::Int(3)).unwrap(), 3.0);
}

#[test]
fn i128_and_u128_in_and_out_of_range() {
    assert_eq!(round_trip(&-5i128), Value::Int(-5));
    assert_eq!(round_trip(&i128::from(i64::MIN)), Value::Int(i64::MIN));
    assert_eq!(round_trip(&i128::from(u64::MAX)), Value::UInt(u64::MAX));
    assert_eq!(round_trip(&u128::from(u64::MAX)), Value::UInt(u64::MAX));
    assert_eq!(round_trip(&7u128), Value::Int(7));
    let err = to_value(&(i128::from(i64::MIN) - 1)).unwrap_err();
    assert!(matches!(err, ValueError::IntegerOutOfRange(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "integer -9223372036854775809 is out of range: a value holds integers from -2^63 to 2^64-1"
    );
    assert!(to_value(&(u128::from(u64::MAX) + 1)).is_err());
    assert!(to_value(&i128::MAX).is_err());
}

#[test]
fn floats_bools_chars_strings() {
    assert_eq!(round_trip(&1.5f32), Value::Float(1.5));
    assert_eq!(round_trip(&-2.25f64), Value::Float(-2.25));
    assert_eq!(round_trip(&f64::INFINITY), Value::Float(f64::INFINITY));
    assert_eq!(round_trip(&true), Value::Bool(true));
    assert_eq!(round_trip(&'é'), s("é"));
    assert_eq!(round_trip(&"text".to_owned()), s("text"));
    assert_eq!(to_value("borrowed").unwrap(), s("borrowed"));
    let nan: f64 = from_value(to_value(&f64::NAN).unwrap()).unwrap();
    assert!(nan.is_nan());
}

#[test]
fn nan_and_negative_zero_equal_and_hash_alike() {
    let pos = Value::Float(0.0);
    let neg = Value::Float(-0.0);
    assert_eq!(pos, neg);
    assert_eq!(hash_of(&pos), hash_of(&neg));
    let nan = Value::Float(f64::NAN);
    let other_nan = Value::Float(-f64::from_bits(f64::NAN.to_bits() | 1));
    assert_eq!(nan, other_nan);
    assert_eq!(hash_of(&nan), hash_of(&other_nan));
    assert!(Value::Float(f64::INFINITY) < nan);
    assert!(Value::Float(1.0) != Value::Float(1.5));
    // As in Python, 1, 1.0 and True are one value (one key), and hash alike.
    assert_eq!(Value::Int(1), Value::Float(1.0));
    assert_eq!(Value::Bool(true), Value::Int(1));
    assert_eq!(hash_of(&Value::Int(1)), hash_of(&Value::Float(1.0)));
    assert_eq!(hash_of(&Value::Bool(true)), hash_of(&Value::Float(1.0)));
    assert_eq!(hash_of(&Value::Float(-0.0)), hash_of(&Value::Int(0)));
    // Exactly, without rounding: 2^53 + 1 is no float.
    let big = (1i64 << 53) + 1;
    assert_ne!(Value::Int(big), Value::Float(big as f64));
    assert!(Value::Int(big) > Value::Float((1i64 << 53) as f64));
    assert!(Value::Int(2) < Value::Float(2.5) && Value::Float(2.5) < Value::Int(3));
    assert!(Value::Int(i64::MAX) < Value::Float(f64::INFINITY));
    assert!(Value::Float(f64::NEG_INFINITY) < Value::Int(i64::MIN));
    assert!(Value::UInt(u64::MAX) < nan);
}

#[test]
#[allow(clippy::mutable_key_type)] // a false positive: see the module documentation
fn keys_compare_by_value() {
    assert_eq!(to_value(&5u8).unwrap(), to_value(&5i64).unwrap());
    assert_eq!(hash_of(&to_value(&5u8).unwrap()), hash_of(&Value::Int(5)));
    // A hand-made `UInt` below `i64::MAX` still equals the `Int`.
    assert_eq!(Value::UInt(5), Value::Int(5));
    assert_eq!(hash_of(&Value::UInt(5)), hash_of(&Value::Int(5)));
    assert!(Value::Int(i64::MAX) < Value::UInt(u64::MAX));
    assert!(Value::Int(-1) < Value::UInt(0));
    let mut set = HashSet::new();
    set.insert(to_value(&(1u8, "a")).unwrap());
    assert!(set.contains(&to_value(&(1i64, "a".to_owned())).unwrap()));
    // Kinds order as documented.
    let ordered = [
        Value::None,
        Value::Float(-10.0),
        Value::Int(-3),
        Value::Bool(false),
        Value::Float(0.5),
        s(""),
        Value::Bytes(vec![]),
        Value::List(vec![]),
        Value::Tuple(vec![]),
        Value::Map(vec![]),
        variant("A", Value::None),
    ];
    assert!(ordered.windows(2).all(|w| w[0] < w[1]), "{ordered:?}");
}

#[test]
fn maps_are_equal_whatever_their_order() {
    let a = Value::Map(vec![(s("x"), Value::Int(1)), (s("y"), Value::Int(2))]);
    let b = Value::Map(vec![(s("y"), Value::Int(2)), (s("x"), Value::Int(1))]);
    let c = Value::Map(vec![(s("y"), Value::Int(2)), (s("x"), Value::Int(3))]);
    assert_eq!(a, b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);
    assert_eq!(hash_of(&a), hash_of(&b));
    assert_ne!(a, c);
    assert_eq!(a < c, b < c);
    // Two HashMaps with the same entries, whatever their iteration order.
    let first: HashMap<i32, i32> = (0..50).map(|i| (i, i * i)).collect();
    let second: HashMap<i32, i32> = (0..50).rev().map(|i| (i, i * i)).collect();
    assert_eq!(to_value(&first).unwrap(), to_value(&second).unwrap());
}

#[test]
fn bytes() {
    let buf = ByteBuf::from(vec![0u8, 1, 255]);
    assert_eq!(round_trip(&buf), Value::Bytes(vec![0, 1, 255]));
    // A plain Vec<u8> is a list of integers, and reads back from either form.
    assert_eq!(
        round_trip(&vec![1u8, 2]),
        Value::List(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(
        from_value::<Vec<u8>>(Value::Bytes(vec![3, 4])).unwrap(),
        [3, 4]
    );
    let from_list: ByteBuf = from_value(to_value(&vec![5u8, 6]).unwrap()).unwrap();
    assert_eq!(from_list.as_slice(), [5, 6]);
    assert!(from_value::<ByteBuf>(Value::List(vec![Value::Int(256)])).is_err());
}

#[test]
fn sequences_tuples_and_unit_things() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Unit;
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Meters(f64);
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Rgb(u8, u8, u8);

    assert_eq!(
        round_trip(&vec![1, 2, 3]),
        Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
    );
    assert_eq!(
        round_trip(&(1u8, "two".to_owned(), 3.0f64)),
        Value::Tuple(vec![Value::Int(1), s("two"), Value::Float(3.0)])
    );
    assert_eq!(round_trip(&Rgb(1, 2, 3)), to_value(&[1, 2, 3]).unwrap());
    assert_eq!(round_trip(&()), Value::None);
    assert_eq!(round_trip(&Unit), Value::None);
    assert_eq!(round_trip(&Meters(2.5)), Value::Float(2.5));
    round_trip(&Vec::<String>::new());
    let set: std::collections::BTreeSet<i32> = [3, 1, 2].into();
    round_trip(&set);
}

#[test]
fn maps_with_int_string_and_tuple_keys() {
    let by_int: HashMap<i32, String> = [(1, "one".to_owned()), (-2, "minus two".to_owned())].into();
    let v = round_trip(&by_int);
    let Value::Map(entries) = &v else {
        panic!("{v:?}")
    };
    assert!(entries.contains(&(Value::Int(-2), s("minus two"))));
    let by_str: BTreeMap<String, Vec<u8>> =
        [("a".to_owned(), vec![1]), ("b".to_owned(), vec![])].into();
    assert_eq!(
        round_trip(&by_str),
        Value::Map(vec![
            (s("a"), Value::List(vec![Value::Int(1)])),
            (s("b"), Value::List(vec![])),
        ])
    );
    let by_tuple: HashMap<(u8, String), bool> = [((1, "x".to_owned()), true)].into();
    assert_eq!(
        round_trip(&by_tuple),
        Value::Map(vec![(
            Value::Tuple(vec![Value::Int(1), s("x")]),
            Value::Bool(true)
        )])
    );
    // Keys of another width read back.
    let wider: BTreeMap<i64, String> = from_value(v).unwrap();
    assert_eq!(wider[&-2], "minus two");
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Inner {
    name: String,
    tags: Vec<String>,
    score: Option<f32>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Outer {
    id: u64,
    inner: Inner,
    children: Vec<Inner>,
    lookup: BTreeMap<u32, Inner>,
}

#[test]
fn nested_structs_are_maps_with_string_keys() {
    let inner = || Inner {
        name: "n".into(),
        tags: vec!["t".into()],
        score: Some(0.5),
    };
    let outer = Outer {
        id: u64::MAX,
        inner: inner(),
        children: vec![inner(), inner()],
        lookup: [(7, inner())].into(),
    };
    let v = round_trip(&outer);
    let Value::Map(entries) = &v else {
        panic!("{v:?}")
    };
    let keys: Vec<_> = entries.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, [s("id"), s("inner"), s("children"), s("lookup")]);
    assert_eq!(entries[0].1, Value::UInt(u64::MAX));
    // Struct fields in any order, unknown fields ignored.
    let reordered = Value::Map(vec![
        (s("unknown"), Value::Bytes(vec![1])),
        (s("tags"), Value::List(vec![])),
        (s("score"), Value::None),
        (s("name"), s("m")),
    ]);
    let read: Inner = from_value(reordered).unwrap();
    assert_eq!(read.name, "m");
    assert_eq!(read.score, None);
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Named { name: String, sides: u8 },
}

#[test]
fn every_enum_shape() {
    assert_eq!(round_trip(&Shape::Empty), variant("Empty", Value::None));
    assert_eq!(
        round_trip(&Shape::Circle(1.0)),
        variant("Circle", Value::Float(1.0))
    );
    assert_eq!(
        round_trip(&Shape::Rect(2, 3)),
        variant("Rect", Value::List(vec![Value::Int(2), Value::Int(3)]))
    );
    assert_eq!(
        round_trip(&Shape::Named {
            name: "tri".into(),
            sides: 3
        }),
        variant(
            "Named",
            Value::Map(vec![(s("name"), s("tri")), (s("sides"), Value::Int(3))])
        )
    );
    round_trip(&vec![Shape::Empty, Shape::Circle(2.0)]);
    round_trip(&Some(Shape::Rect(0, 0)));
    // Friendly forms: a unit variant by name, any variant as `{name: payload}`.
    assert_eq!(from_value::<Shape>(s("Empty")).unwrap(), Shape::Empty);
    assert_eq!(
        from_value::<Shape>(Value::Map(vec![(s("Circle"), Value::Float(4.0))])).unwrap(),
        Shape::Circle(4.0)
    );
    let err = from_value::<Shape>(s("Square")).unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `Square`"),
        "{err}"
    );
    let err = from_value::<Shape>(variant("Empty", Value::Int(1))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: integer `1`, expected a unit variant"
    );
}

#[test]
fn internally_tagged_and_untagged_enums() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "type")]
    enum Message {
        Ping { seq: u32 },
        Quit,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(untagged)]
    enum Either {
        Number(i64),
        Text(String),
        Shape(Shape),
    }
    assert_eq!(
        round_trip(&Message::Ping { seq: 3 }),
        Value::Map(vec![(s("type"), s("Ping")), (s("seq"), Value::Int(3))])
    );
    round_trip(&Message::Quit);
    assert_eq!(round_trip(&Either::Number(-1)), Value::Int(-1));
    round_trip(&Either::Text("t".into()));
    round_trip(&Either::Shape(Shape::Rect(1, 2)));
}

#[test]
fn options_flatten() {
    assert_eq!(round_trip(&Some(5u8)), Value::Int(5));
    assert_eq!(round_trip(&None::<u8>), Value::None);
    assert_eq!(
        round_trip(&vec![Some(1), None]),
        Value::List(vec![Value::Int(1), Value::None])
    );
    // Documented: `Some(None)` collapses to `None`.
    let nested: Option<Option<u8>> = Some(None);
    let v = to_value(&nested).unwrap();
    assert_eq!(v, Value::None);
    assert_eq!(from_value::<Option<Option<u8>>>(v).unwrap(), None);
    assert_eq!(
        from_value::<Option<Option<u8>>>(Value::Int(1)).unwrap(),
        Some(Some(1))
    );
    assert_eq!(Value::from(Some(3u8)), Value::Int(3));
    assert_eq!(Value::from(None::<u8>), Value::None);
}

#[test]
fn values_inside_values_are_themselves() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Entry {
        key: String,
        value: Value,
    }
    let inner = Value::Map(vec![(
        Value::Int(1),
        Value::List(vec![s("a"), Value::None]),
    )]);
    assert_eq!(to_value(&inner).unwrap(), inner);
    assert_eq!(from_value::<Value>(inner.clone()).unwrap(), inner);
    let entry = Entry {
        key: "k".into(),
        value: inner.clone(),
    };
    assert_eq!(
        round_trip(&entry),
        Value::Map(vec![(s("key"), s("k")), (s("value"), inner.clone())])
    );
    let bytes = postcard::to_stdvec(&entry).unwrap();
    assert_eq!(postcard::from_bytes::<Entry>(&bytes).unwrap(), entry);
}

#[test]
fn postcard_round_trip_of_every_kind() {
    let value = Value::List(vec![
        Value::None,
        Value::Bool(true),
        Value::Int(-7),
        Value::UInt(u64::MAX),
        Value::Float(f64::MIN_POSITIVE),
        s("str"),
        Value::Bytes(vec![9; 40]),
        Value::Map(vec![(Value::List(vec![]), variant("V", Value::None))]),
        variant("W", Value::Map(vec![(s("f"), Value::Float(-0.0))])),
    ]);
    let bytes = postcard::to_stdvec(&value).unwrap();
    let back: Value = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, value);
    assert_eq!(format!("{back:?}"), format!("{value:?}"));
    // The tag is one varint: `Int(-7)` is tag 2, then zigzag 13.
    assert_eq!(postcard::to_stdvec(&Value::Int(-7)).unwrap(), [2, 13]);
    // Bytes go through serde_bytes: tag, length, the bytes.
    assert_eq!(
        postcard::to_stdvec(&Value::Bytes(vec![1, 2])).unwrap(),
        [6, 2, 1, 2]
    );
    // A small `UInt` on the wire is normalised when read.
    let small = postcard::from_bytes::<Value>(&[3, 5]).unwrap();
    assert!(matches!(small, Value::Int(5)), "{small:?}");
}

#[test]
fn postcard_refuses_values_nested_too_deep() {
    let mut deep = Value::None;
    for _ in 0..MAX_DEPTH - 1 {
        deep = Value::List(vec![deep]);
    }
    let bytes = postcard::to_stdvec(&deep).unwrap();
    assert_eq!(postcard::from_bytes::<Value>(&bytes).unwrap(), deep);
    let deeper = Value::List(vec![deep]);
    let bytes = postcard::to_stdvec(&deeper).unwrap();
    assert!(postcard::from_bytes::<Value>(&bytes).is_err());
    // Hostile input: a long run of "list of one" tags.
    let mut hostile = Vec::new();
    for _ in 0..100_000 {
        hostile.extend_from_slice(&[7, 1]);
    }
    hostile.push(0);
    assert!(postcard::from_bytes::<Value>(&hostile).is_err());
}

#[test]
fn type_mismatches_say_what_was_found() {
    let err = from_value::<u8>(Value::Int(300)).unwrap_err();
    assert_eq!(err.to_string(), "invalid value: integer `300`, expected u8");
    let err = from_value::<u32>(Value::Int(-1)).unwrap_err();
    assert_eq!(err.to_string(), "invalid value: integer `-1`, expected u32");
    let err = from_value::<String>(Value::Int(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: integer `1`, expected a string"
    );
    let err = from_value::<i64>(Value::Float(1.0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: floating point `1.0`, expected i64"
    );
    let err = from_value::<(u8, u8)>(to_value(&[1, 2, 3]).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid length 3, expected a list of 2 elements"
    );
    let err = from_value::<Inner>(Value::Map(vec![(s("name"), s("x"))])).unwrap_err();
    assert_eq!(err.to_string(), "missing field `tags`");
    let err = from_value::<Vec<u8>>(s("no")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: string \"no\", expected a sequence"
    );
    let err = from_value::<()>(Value::Bool(true)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: boolean `true`, expected unit"
    );
    let err = from_value::<crate::ProxyHandle>(Value::Int(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: integer `1`, expected a proxy"
    );
}

#[test]
fn accessors() {
    assert_eq!(Value::Int(1).type_name(), "int");
    assert_eq!(Value::UInt(u64::MAX).type_name(), "int");
    assert_eq!(Value::Map(vec![]).type_name(), "dict");
    assert_eq!(Value::None.type_name(), "NoneType");
    assert!(Value::None.is_none());
    assert_eq!(Value::UInt(3).as_i64(), Some(3));
    assert_eq!(Value::UInt(u64::MAX).as_i64(), None);
    assert_eq!(s("x").as_str(), Some("x"));
    assert!(Value::Int(1).as_proxy().is_none());
    assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
    assert!(matches!(Value::from(5u64), Value::Int(5)));
    assert_eq!(Value::Int(2).deserialize_into::<u16>().unwrap(), 2);
}
