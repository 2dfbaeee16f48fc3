"""Pickle test cases for `manager_core::pickle`, shared by the fixture file and the Rust tests.

Three modes:

    generate   print one line per (case, protocol): `<protocol> <name> <versions> <hex>`,
               the pickle CPython writes with `pickle.dumps(value, protocol)`.
    plain      print `<name> <hex>` for each protocol 4 case: the pickle CPython writes
               without memo (`Pickler.fast`) and without its FRAME, which is what the Rust
               encoder must write byte for byte.
    check      read lines `<name> <hex>` from stdin, `pickle.loads` each and compare it with
               the case's value (same types, same items, floats bit for bit); print one
               `ok <name>` or `FAIL <name>: ...` line each.

The fixture file is regenerated from the crate folder with

    PYTHONHASHSEED=0 python3 tests/data/pickle_cases.py generate \\
        python3.11 python3.13 > tests/data/pickle_fixtures.txt

(`generate` runs each interpreter named after it, `PYENV_VERSION=3.11.7:3.13.0` makes pyenv
shims of both work, and merges lines that are byte-identical across versions.)
"""

import collections
import datetime
import io
import decimal
import fractions
import math
import multiprocessing.managers
import pickle
import queue
import struct
import subprocess
import sys
import uuid


class Point:
    """A plain user class: NEWOBJ + BUILD with a dict state."""

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r})"


class Slotted:
    """A class with __slots__: BUILD with a (None, slots) state."""

    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b

    def __eq__(self, other):
        return type(other) is Slotted and (self.a, self.b) == (other.a, other.b)

    def __repr__(self):
        return f"Slotted({self.a!r}, {self.b!r})"


class KwOnly:
    """Keyword-only constructor arguments: NEWOBJ_EX at protocol 4+."""

    def __new__(cls, *, k):
        self = super().__new__(cls)
        self.k = k
        return self

    def __getnewargs_ex__(self):
        return (), {"k": self.k}

    def __eq__(self, other):
        return type(other) is KwOnly and self.k == other.k

    def __repr__(self):
        return f"KwOnly(k={self.k!r})"


Pair = collections.namedtuple("Pair", "a b")


def shared_list():
    a = [1]
    return [a, a]


def shared_dict():
    d = {"k": "v"}
    return {"x": d, "y": d, "z": [d]}


def self_list():
    x = []
    x.append(x)
    return x


def self_dict():
    d = {}
    d["me"] = d
    return d


def keyerror_with_note():
    e = KeyError("k")
    e.note = 1
    return e


ALL = (2, 3, 4, 5)
MODERN = (4, 5)

# name -> (function building the value, protocols to dump it with)
CASES = {
    # scalars
    "none": (lambda: None, ALL),
    "true": (lambda: True, ALL),
    "false": (lambda: False, ALL),
    # ints around every opcode boundary
    "int_0": (lambda: 0, ALL),
    "int_255": (lambda: 255, ALL),
    "int_256": (lambda: 256, ALL),
    "int_65535": (lambda: 65535, ALL),
    "int_65536": (lambda: 65536, ALL),
    "int_m1": (lambda: -1, ALL),
    "int_m256": (lambda: -256, ALL),
    "int_2p31m1": (lambda: 2**31 - 1, ALL),
    "int_2p31": (lambda: 2**31, ALL),
    "int_m2p31": (lambda: -(2**31), ALL),
    "int_m2p31m1": (lambda: -(2**31) - 1, ALL),
    "int_2p63m1": (lambda: 2**63 - 1, ALL),
    "int_2p63": (lambda: 2**63, ALL),
    "int_m2p63": (lambda: -(2**63), ALL),
    "int_m2p63m1": (lambda: -(2**63) - 1, ALL),
    "int_2p64": (lambda: 2**64, ALL),
    "int_2p70": (lambda: 2**70, ALL),
    "int_m2p70": (lambda: -(2**70), ALL),
    "int_long1_max": (lambda: 2**2031, ALL),  # 255 bytes: the largest LONG1
    "int_long4_min": (lambda: 2**2039, ALL),  # 256 bytes: the smallest LONG4
    "int_huge": (lambda: 7**5000, MODERN),
    "int_huge_neg": (lambda: -(7**5000), MODERN),
    # floats
    "float_0": (lambda: 0.0, ALL),
    "float_m0": (lambda: -0.0, ALL),
    "float_1_5": (lambda: 1.5, ALL),
    "float_max": (lambda: 1.7976931348623157e308, ALL),
    "float_min_sub": (lambda: 5e-324, ALL),
    "float_inf": (lambda: math.inf, ALL),
    "float_minf": (lambda: -math.inf, ALL),
    "float_nan": (lambda: math.nan, ALL),
    "float_mnan": (lambda: -math.nan, ALL),
    # str
    "str_empty": (lambda: "", ALL),
    "str_a": (lambda: "a", ALL),
    "str_255": (lambda: "x" * 255, ALL),
    "str_256": (lambda: "x" * 256, ALL),
    "str_unicode": (lambda: "h\u00e9llo w\u00f6rld \u2713 \U0001d11e", ALL),
    "str_surrogate": (lambda: "\ud800", ALL),
    "str_surrogate_mid": (lambda: "a\udfffb", ALL),
    "str_surrogate_pair": (lambda: "\ud83d\ude00", ALL),
    "str_newline": (lambda: "line\nbreak", ALL),
    # bytes / bytearray
    "bytes_empty": (lambda: b"", ALL),
    "bytes_small": (lambda: b"\x00\x01bytes", ALL),
    "bytes_256": (lambda: b"x" * 256, ALL),
    "bytearray_empty": (lambda: bytearray(), ALL),
    "bytearray_small": (lambda: bytearray(b"abc"), ALL),
    # containers
    "tuple_0": (lambda: (), ALL),
    "tuple_1": (lambda: (1,), ALL),
    "tuple_2": (lambda: (1, 2), ALL),
    "tuple_3": (lambda: (1, 2, 3), ALL),
    "tuple_4": (lambda: (1, 2, 3, 4), ALL),
    "list_0": (lambda: [], ALL),
    "list_1": (lambda: [1], ALL),
    "list_3": (lambda: [1, "two", 3.0], ALL),
    "list_1001": (lambda: list(range(1001)), MODERN),
    "list_2500": (lambda: [i % 7 for i in range(2500)], (4,)),
    "dict_0": (lambda: {}, ALL),
    "dict_1": (lambda: {"a": 1}, ALL),
    "dict_2": (lambda: {"a": 1, "b": [1, 2]}, ALL),
    "dict_int_keys": (lambda: {1: "one", 2.5: "float", None: "none", (1, 2): "tuple"}, ALL),
    "dict_1500": (lambda: {f"k{i}": i for i in range(1500)}, (4,)),
    "set_0": (lambda: set(), ALL),
    "set_3": (lambda: {1, 2, 3}, ALL),
    "set_1500": (lambda: set(range(1500)), (4,)),
    "frozenset_0": (lambda: frozenset(), ALL),
    "frozenset_2": (lambda: frozenset({1, 2}), ALL),
    "nested": (
        lambda: {
            "k": [(1, "a"), {"x": {1.5}}, frozenset({"z"})],
            "n": None,
            "t": (True, False, b"b"),
        },
        ALL,
    ),
    "deep_list": (lambda: [[[[[[[[[[1]]]]]]]]]], ALL),
    # shared references (memo)
    "shared_list": (shared_list, ALL),
    "shared_dict": (shared_dict, ALL),
    "shared_str": (lambda: ["dup", "dup", ("dup",)], ALL),
    "self_list": (self_list, ALL),
    "self_dict": (self_dict, ALL),
    # natives kept opaque
    "complex": (lambda: 1 + 2j, ALL),
    "slice": (lambda: slice(1, 3, None), ALL),
    "range": (lambda: range(0, 10, 2), ALL),
    # library classes kept opaque
    "ordered_dict": (lambda: collections.OrderedDict([("a", 1), ("b", 2)]), ALL),
    "ordered_dict_empty": (lambda: collections.OrderedDict(), ALL),
    "defaultdict": (lambda: collections.defaultdict(list, {"a": [1]}), ALL),
    "counter": (lambda: collections.Counter({"a": 2}), ALL),
    "deque": (lambda: collections.deque([1, 2], maxlen=5), ALL),
    "namedtuple": (lambda: Pair(1, "b"), ALL),
    "datetime": (lambda: datetime.datetime(2024, 1, 2, 3, 4, 5, 6), ALL),
    "datetime_utc": (
        lambda: datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        ALL,
    ),
    "date": (lambda: datetime.date(2024, 1, 2), ALL),
    "timedelta": (lambda: datetime.timedelta(days=1, seconds=2), ALL),
    "decimal": (lambda: decimal.Decimal("1.10"), ALL),
    "fraction": (lambda: fractions.Fraction(1, 3), ALL),
    "uuid": (lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"), ALL),
    "point": (lambda: Point(1, [2, 3]), ALL),
    "slotted": (lambda: Slotted(1, "b"), ALL),
    "kwonly": (lambda: KwOnly(k=1), ALL),
    "token": (
        lambda: multiprocessing.managers.Token("dict", ("127.0.0.1", 5000), "7f0934278e00"),
        ALL,
    ),
    # exceptions
    "keyerror": (lambda: KeyError("missing"), ALL),
    "keyerror_note": (keyerror_with_note, ALL),
    "valueerror_2": (lambda: ValueError("bad", 2), ALL),
    "queue_empty": (lambda: queue.Empty(), ALL),
    "queue_full": (lambda: queue.Full(), ALL),
    # a request and a reply as the manager protocol sends them
    "request": (lambda: ("7f0934278e00", "__setitem__", ("k", 1), {}), ALL),
    "reply_error": (lambda: ("#ERROR", KeyError("missing")), ALL),
}


def same(a, b):
    """Equal values of the same types, floats compared bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, (list, tuple, collections.deque)):
        if isinstance(a, collections.deque) and a.maxlen != b.maxlen:
            return False
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if isinstance(a, collections.defaultdict) and a.default_factory is not b.default_factory:
            return False
        return len(a) == len(b) and all(
            same(k1, k2) and same(v1, v2) for (k1, v1), (k2, v2) in zip(a.items(), b.items())
        )
    if isinstance(a, BaseException):
        return same(a.args, b.args) and same(vars(a), vars(b))
    if a == b:
        return True
    # No equality of its own (like Token): compare the states.
    return type(a).__eq__ is object.__eq__ and same(a.__getstate__(), b.__getstate__())


def generate(interpreters):
    lines = {}  # (protocol, name, hex) -> versions, in first-seen order
    for python in interpreters:
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        out = subprocess.run(
            [python, __file__, "dump"], check=True, capture_output=True, text=True,
        ).stdout
        for line in out.splitlines():
            protocol, name, data = line.split(" ")
            lines.setdefault((protocol, name, data), []).append(version)
    for (protocol, name, data), versions in lines.items():
        print(protocol, name, ",".join(versions), data)


def dump():
    for name, (build, protocols) in CASES.items():
        for protocol in protocols:
            print(protocol, name, pickle.dumps(build(), protocol=protocol).hex())


def plain():
    for name, (build, protocols) in CASES.items():
        if 4 not in protocols or name.startswith("self_"):
            continue
        out = io.BytesIO()
        pickler = pickle.Pickler(out, 4)
        pickler.fast = True
        pickler.dump(build())
        data = out.getvalue()
        if data[2] == pickle.FRAME[0]:
            data = data[:2] + data[11:]
        print(name, data.hex())


def check():
    failed = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        name, data = line.split(" ")
        try:
            got = pickle.loads(bytes.fromhex(data))
            want = CASES[name][0]()
            if same(got, want):
                print("ok", name)
            else:
                failed += 1
                print(f"FAIL {name}: got {got!r}, want {want!r}")
        except Exception as e:  # report and go on with the next case
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "generate":
        generate(sys.argv[2:] or [sys.executable])
    elif mode == "dump":
        dump()
    elif mode == "plain":
        plain()
    elif mode == "check":
        check()
    else:
        sys.exit(f"unknown mode {mode!r}")
