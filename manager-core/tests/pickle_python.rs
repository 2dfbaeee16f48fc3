//! `manager_core::pickle` against real CPython pickles and a real CPython unpickler.
//!
//! - `tests/data/pickle_fixtures.txt` holds what CPython 3.11 and 3.13 write for the cases of
//!   `tests/data/pickle_cases.py` at protocols 2 to 5 (regenerate with the command in that
//!   script's docstring). They must decode into the trees of [`expected`].
//! - Where `python3.11` and `python3.13` are on `PATH`, the interpreters check our side:
//!   every fixture decoded and re-encoded, and every expected tree encoded, must `pickle.loads`
//!   to a value equal to the original; and our encoding of a protocol 4 fixture must be the
//!   bytes CPython writes without memo and frame. A missing interpreter skips its part with a
//!   message. (With pyenv, `PYENV_VERSION=3.11.7:3.13.0` puts both on `PATH`.)
//! - The fuzz corpus of the `pickle` target (`fuzz/corpus/pickle/`) and the fixtures replay
//!   through the target's entry point; `WRITE_FUZZ_SEEDS=1` writes the small fixtures there
//!   as seeds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use manager_core::pickle::{self, decode, encode, DecodeError, Limits, Object};

/// One pickle CPython wrote.
struct Fixture {
    protocol: u8,
    name: String,
    /// The Python versions that wrote these bytes, such as `3.11,3.13`.
    versions: String,
    bytes: Vec<u8>,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fixtures() -> Vec<Fixture> {
    include_str!("data/pickle_fixtures.txt")
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [protocol, name, versions, data] = fields[..] else {
                panic!("bad fixture line {line:?}");
            };
            Fixture {
                protocol: protocol.parse().unwrap(),
                name: name.into(),
                versions: versions.into(),
                bytes: hex(data),
            }
        })
        .collect()
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

// ---- expected trees ----

fn s(text: &str) -> Object {
    Object::Str(text.into())
}

fn int(value: i64) -> Object {
    Object::Int(value)
}

fn int128(value: i128) -> Object {
    Object::int_from_le_bytes(&value.to_le_bytes())
}

/// `2**exponent`.
fn pow2(exponent: usize) -> Object {
    let mut bytes = vec![0_u8; exponent / 8 + 2];
    bytes[exponent / 8] = 1 << (exponent % 8);
    Object::int_from_le_bytes(&bytes)
}

fn float(value: f64) -> Object {
    Object::Float(value)
}

fn bytes(data: &[u8]) -> Object {
    Object::Bytes(data.to_vec())
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

fn global(module: &str, name: &str) -> Object {
    Object::global(module, name)
}

fn reduce(callable: Object, args: Object) -> Object {
    Object::Reduce {
        callable: Box::new(callable),
        args: Box::new(args),
    }
}

fn newobj(class: Object, args: Object) -> Object {
    Object::NewObj {
        class: Box::new(class),
        args: Box::new(args),
    }
}

fn build(object: Object, state: Object) -> Object {
    Object::Build {
        object: Box::new(object),
        state: Box::new(state),
    }
}

/// The tree a case decodes to at `protocol`, where the test knows it (protocols 2 and 3
/// write bytes and sets as calls, and some cases are only checked through Python).
fn expected(name: &str, protocol: u8) -> Option<Object> {
    let modern = protocol >= 4;
    let has_bytes = protocol >= 3;
    let object = match name {
        "none" => Object::None,
        "true" => Object::Bool(true),
        "false" => Object::Bool(false),
        "int_0" => int(0),
        "int_255" => int(255),
        "int_256" => int(256),
        "int_65535" => int(65535),
        "int_65536" => int(65536),
        "int_m1" => int(-1),
        "int_m256" => int(-256),
        "int_2p31m1" => int((1 << 31) - 1),
        "int_2p31" => int(1 << 31),
        "int_m2p31" => int(-(1 << 31)),
        "int_m2p31m1" => int(-(1 << 31) - 1),
        "int_2p63m1" => int(i64::MAX),
        "int_2p63" => int128(1 << 63),
        "int_m2p63" => int(i64::MIN),
        "int_m2p63m1" => int128(-(1 << 63) - 1),
        "int_2p64" => int128(1 << 64),
        "int_2p70" => int128(1 << 70),
        "int_m2p70" => int128(-(1 << 70)),
        "int_long1_max" => pow2(2031),
        "int_long4_min" => pow2(2039),
        "float_0" => float(0.0),
        "float_m0" => float(-0.0),
        "float_1_5" => float(1.5),
        "float_max" => float(f64::MAX),
        "float_min_sub" => float(f64::from_bits(1)),
        "float_inf" => float(f64::INFINITY),
        "float_minf" => float(f64::NEG_INFINITY),
        "float_nan" => float(f64::from_bits(0x7ff8_0000_0000_0000)),
        "float_mnan" => float(f64::from_bits(0xfff8_0000_0000_0000)),
        "str_empty" => s(""),
        "str_a" => s("a"),
        "str_255" => s(&"x".repeat(255)),
        "str_256" => s(&"x".repeat(256)),
        "str_unicode" => s("h\u{e9}llo w\u{f6}rld \u{2713} \u{1d11e}"),
        "str_surrogate" => Object::StrBytes([0xed, 0xa0, 0x80].into()),
        "str_surrogate_mid" => Object::StrBytes(b"a\xed\xbf\xbfb"[..].into()),
        "str_surrogate_pair" => Object::StrBytes([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80].into()),
        "str_newline" => s("line\nbreak"),
        "bytes_empty" if has_bytes => bytes(b""),
        "bytes_small" if has_bytes => bytes(b"\x00\x01bytes"),
        "bytes_256" if has_bytes => bytes(&[b'x'; 256]),
        // Protocol 2's empty bytearray is `__builtin__.bytearray()`: mapped and recognised.
        "bytearray_empty" => Object::ByteArray(vec![]),
        "bytearray_small" if has_bytes => Object::ByteArray(b"abc".to_vec()),
        "tuple_0" => tuple([]),
        "tuple_1" => tuple([int(1)]),
        "tuple_2" => tuple([int(1), int(2)]),
        "tuple_3" => tuple([int(1), int(2), int(3)]),
        "tuple_4" => tuple([int(1), int(2), int(3), int(4)]),
        "list_0" => list([]),
        "list_1" => list([int(1)]),
        "list_3" => list([int(1), s("two"), float(3.0)]),
        "list_1001" => Object::List((0..1001).map(int).collect()),
        "list_2500" => Object::List((0..2500).map(|i| int(i % 7)).collect()),
        "dict_0" => dict([]),
        "dict_1" => dict([(s("a"), int(1))]),
        "dict_2" => dict([(s("a"), int(1)), (s("b"), list([int(1), int(2)]))]),
        "dict_int_keys" => dict([
            (int(1), s("one")),
            (float(2.5), s("float")),
            (Object::None, s("none")),
            (tuple([int(1), int(2)]), s("tuple")),
        ]),
        "dict_1500" => Object::Dict((0..1500).map(|i| (s(&format!("k{i}")), int(i))).collect()),
        "set_0" if modern => Object::Set(vec![]),
        "set_3" if modern => Object::Set(vec![int(1), int(2), int(3)]),
        "set_1500" => Object::Set((0..1500).map(int).collect()),
        "frozenset_0" if modern => Object::FrozenSet(vec![]),
        "frozenset_2" if modern => Object::FrozenSet(vec![int(1), int(2)]),
        "nested" if modern => dict([
            (
                s("k"),
                list([
                    tuple([int(1), s("a")]),
                    dict([(s("x"), Object::Set(vec![float(1.5)]))]),
                    Object::FrozenSet(vec![s("z")]),
                ]),
            ),
            (s("n"), Object::None),
            (
                s("t"),
                tuple([Object::Bool(true), Object::Bool(false), bytes(b"b")]),
            ),
        ]),
        "deep_list" => (0..9).fold(list([int(1)]), |inner, _| list([inner])),
        "shared_list" => list([list([int(1)]), list([int(1)])]),
        "shared_dict" => {
            let d = dict([(s("k"), s("v"))]);
            dict([
                (s("x"), d.clone()),
                (s("y"), d.clone()),
                (s("z"), list([d])),
            ])
        }
        "shared_str" => list([s("dup"), s("dup"), tuple([s("dup")])]),
        "complex" => reduce(
            global("builtins", "complex"),
            tuple([float(1.0), float(2.0)]),
        ),
        "slice" => reduce(
            global("builtins", "slice"),
            tuple([int(1), int(3), Object::None]),
        ),
        "range" => reduce(
            global("builtins", "range"),
            tuple([int(0), int(10), int(2)]),
        ),
        "ordered_dict" => Object::SetItems {
            object: Box::new(reduce(global("collections", "OrderedDict"), tuple([]))),
            items: vec![(s("a"), int(1)), (s("b"), int(2))],
        },
        "ordered_dict_empty" => reduce(global("collections", "OrderedDict"), tuple([])),
        "defaultdict" => Object::SetItems {
            object: Box::new(reduce(
                global("collections", "defaultdict"),
                tuple([global("builtins", "list")]),
            )),
            items: vec![(s("a"), list([int(1)]))],
        },
        "counter" => reduce(
            global("collections", "Counter"),
            tuple([dict([(s("a"), int(2))])]),
        ),
        "deque" => Object::Appends {
            object: Box::new(reduce(
                global("collections", "deque"),
                tuple([tuple([]), int(5)]),
            )),
            items: vec![int(1), int(2)],
        },
        "namedtuple" => newobj(global("__main__", "Pair"), tuple([int(1), s("b")])),
        "datetime" if has_bytes => reduce(
            global("datetime", "datetime"),
            tuple([bytes(b"\x07\xe8\x01\x02\x03\x04\x05\x00\x00\x06")]),
        ),
        "date" if has_bytes => reduce(
            global("datetime", "date"),
            tuple([bytes(b"\x07\xe8\x01\x02")]),
        ),
        "timedelta" => reduce(
            global("datetime", "timedelta"),
            tuple([int(1), int(2), int(0)]),
        ),
        "decimal" => reduce(global("decimal", "Decimal"), tuple([s("1.10")])),
        "point" => build(
            newobj(global("__main__", "Point"), tuple([])),
            dict([(s("x"), int(1)), (s("y"), list([int(2), int(3)]))]),
        ),
        "slotted" => build(
            newobj(global("__main__", "Slotted"), tuple([])),
            tuple([Object::None, dict([(s("a"), int(1)), (s("b"), s("b"))])]),
        ),
        "kwonly" if modern => build(
            Object::NewObjEx {
                class: Box::new(global("__main__", "KwOnly")),
                args: Box::new(tuple([])),
                kwargs: Box::new(dict([(s("k"), int(1))])),
            },
            dict([(s("k"), int(1))]),
        ),
        "token" => build(
            newobj(global("multiprocessing.managers", "Token"), tuple([])),
            tuple([
                s("dict"),
                tuple([s("127.0.0.1"), int(5000)]),
                s("7f0934278e00"),
            ]),
        ),
        "keyerror" => Object::exception("builtins", "KeyError", vec![s("missing")]),
        "keyerror_note" => build(
            Object::exception("builtins", "KeyError", vec![s("k")]),
            dict([(s("note"), int(1))]),
        ),
        "valueerror_2" => Object::exception("builtins", "ValueError", vec![s("bad"), int(2)]),
        "queue_empty" => Object::exception("_queue", "Empty", vec![]),
        "queue_full" => Object::exception("queue", "Full", vec![]),
        "request" => tuple([
            s("7f0934278e00"),
            s("__setitem__"),
            tuple([s("k"), int(1)]),
            dict([]),
        ]),
        "reply_error" => tuple([
            s("#ERROR"),
            Object::exception("builtins", "KeyError", vec![s("missing")]),
        ]),
        _ => return None,
    };
    Some(object)
}

/// Equality with floats compared bit for bit, through the encoding (see `Object`'s normal
/// form: the encoding is one to one on decoded objects).
fn same(a: &Object, b: &Object) -> bool {
    encode(a) == encode(b)
}

#[test]
fn fixtures_decode_to_the_expected_trees() {
    let limits = Limits::default();
    let mut checked = 0;
    for fixture in fixtures() {
        let what = format!(
            "{} at protocol {} ({})",
            fixture.name, fixture.protocol, fixture.versions
        );
        let result = decode(&fixture.bytes, &limits);
        if fixture.name.starts_with("self_") {
            assert_eq!(result, Err(DecodeError::Recursive), "{what}");
            continue;
        }
        let object = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Some(expected) = expected(&fixture.name, fixture.protocol) {
            assert!(
                same(&object, &expected),
                "{what}:\n{object:?}\n!=\n{expected:?}"
            );
            checked += 1;
        }
        let again = decode(&encode(&object), &limits).unwrap();
        assert!(same(&again, &object), "{what} after encoding");
    }
    assert!(checked > 300, "only {checked} fixtures checked");
}

#[test]
fn big_and_opaque_fixtures_have_the_expected_shape() {
    let limits = Limits::default();
    for fixture in fixtures() {
        let object = || decode(&fixture.bytes, &limits).unwrap();
        match fixture.name.as_str() {
            "int_huge" | "int_huge_neg" => {
                // 7**5000 takes 1755 bytes.
                let Object::BigInt(bytes) = object() else {
                    panic!("not a BigInt");
                };
                assert_eq!(bytes.len(), 1755);
                assert_eq!(bytes[1754] & 0x80 != 0, fixture.name == "int_huge_neg");
            }
            "uuid" => {
                let Object::Build { object, .. } = object() else {
                    panic!("not a Build");
                };
                assert_eq!(
                    *object,
                    newobj(global("uuid", "UUID"), tuple([])),
                    "at protocol {}",
                    fixture.protocol
                );
            }
            "bytes_small" if fixture.protocol == 2 => {
                // Protocol 2 has no bytes: `_codecs.encode('\x00\x01bytes', 'latin1')`.
                assert_eq!(
                    object(),
                    reduce(
                        global("_codecs", "encode"),
                        tuple([s("\u{0}\u{1}bytes"), s("latin1")])
                    )
                );
            }
            "set_3" if fixture.protocol < 4 => {
                assert_eq!(
                    object(),
                    reduce(
                        global("builtins", "set"),
                        tuple([list([int(1), int(2), int(3)])])
                    )
                );
            }
            _ => {}
        }
    }
}

#[path = "../../tests/support/python.rs"]
mod support;
use support::{find_python, PYTHONS};

/// The interpreter `name`, ready to run the fixtures' scripts, or `None` (skipped).
fn python(name: &str) -> Option<Command> {
    let mut command = Command::new(find_python(name)?);
    command.env("PYTHONHASHSEED", "0");
    Some(command)
}

/// Runs `pickle_cases.py MODE` with `input` on stdin; returns its stdout, or panics with
/// its output if it fails.
fn run_cases(mut python: Command, mode: &str, input: &str) -> String {
    let mut child = python
        .arg(data_dir().join("pickle_cases.py"))
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        output.status.success(),
        "pickle_cases.py {mode} failed:\n{}\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn python_loads_what_we_encode() {
    let limits = Limits::default();
    let mut input = String::new();
    let mut lines = 0;
    for fixture in fixtures() {
        let Ok(object) = decode(&fixture.bytes, &limits) else {
            continue;
        };
        // Decoded and re-encoded: opaque objects come back equal to the original.
        input += &format!("{} {}\n", fixture.name, to_hex(&encode(&object)));
        // Built by hand.
        if let Some(expected) = expected(&fixture.name, 4) {
            input += &format!("{} {}\n", fixture.name, to_hex(&encode(&expected)));
        }
        lines += 1;
    }
    assert!(lines > 350);
    for name in PYTHONS {
        let Some(python) = python(name) else { continue };
        let out = run_cases(python, "check", &input);
        let ok = out.lines().filter(|l| l.starts_with("ok ")).count();
        assert_eq!(ok, input.lines().count(), "{out}");
        println!("{name}: {ok} pickles loaded and equal");
    }
}

#[test]
fn our_encoding_is_cpythons_without_memo_and_frame() {
    let limits = Limits::default();
    let ours: Vec<(String, String)> = fixtures()
        .into_iter()
        .filter(|f| f.protocol == 4 && !f.name.starts_with("self_"))
        .map(|f| {
            let object = decode(&f.bytes, &limits).unwrap();
            (f.name, to_hex(&encode(&object)))
        })
        .collect();
    for name in PYTHONS {
        let Some(python) = python(name) else { continue };
        let out = run_cases(python, "plain", "");
        let theirs: Vec<(&str, &str)> = out
            .lines()
            .map(|line| line.split_once(' ').unwrap())
            .collect();
        assert_eq!(theirs.len(), ours.len(), "{name}: case lists differ");
        for ((case, ours), (their_case, theirs)) in ours.iter().zip(&theirs) {
            assert_eq!(case, their_case);
            assert_eq!(ours, theirs, "{name}: {case}");
        }
        println!("{name}: {} encodings identical", ours.len());
    }
}

/// The fixtures that seed the fuzzer: every opcode CPython writes, small.
const SEEDS: [(u8, &str); 46] = [
    (4, "none"),
    (4, "true"),
    (4, "int_255"),
    (4, "int_256"),
    (4, "int_65536"),
    (4, "int_m1"),
    (4, "int_2p63"),
    (4, "float_nan"),
    (4, "str_unicode"),
    (4, "str_surrogate"),
    (4, "bytes_small"),
    (4, "bytearray_small"),
    (4, "tuple_3"),
    (4, "tuple_4"),
    (4, "list_3"),
    (4, "dict_2"),
    (4, "dict_int_keys"),
    (4, "set_3"),
    (4, "frozenset_2"),
    (4, "nested"),
    (4, "shared_list"),
    (4, "shared_dict"),
    (4, "self_list"),
    (4, "self_dict"),
    (4, "complex"),
    (4, "slice"),
    (4, "ordered_dict"),
    (4, "defaultdict"),
    (4, "deque"),
    (4, "namedtuple"),
    (4, "datetime"),
    (4, "decimal"),
    (4, "point"),
    (4, "slotted"),
    (4, "kwonly"),
    (4, "token"),
    (4, "keyerror_note"),
    (4, "queue_empty"),
    (4, "request"),
    (4, "reply_error"),
    (2, "keyerror"),
    (2, "bytes_small"),
    (2, "set_3"),
    (2, "point"),
    (3, "datetime"),
    (5, "bytearray_small"),
];

#[test]
fn fuzz_corpus_replays() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pickle");
    let mut inputs: Vec<Vec<u8>> = match std::fs::read_dir(&corpus) {
        Ok(entries) => entries
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    let seeds: Vec<Vec<u8>> = fixtures()
        .into_iter()
        .filter(|f| f.versions.contains("3.11") && SEEDS.contains(&(f.protocol, f.name.as_str())))
        .map(|f| f.bytes)
        .collect();
    assert_eq!(seeds.len(), SEEDS.len());
    if std::env::var_os("WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&corpus).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(corpus.join(format!("seed-{i}")), seed).unwrap();
        }
    }
    inputs.extend(fixtures().into_iter().map(|f| f.bytes));
    for input in &inputs {
        pickle::fuzz(input);
    }
}
