"""Stock CPython clients against a `managers` server: every scenario named on the command
line, through `multiprocessing.managers.SyncManager` exactly as against CPython's server.

    python3 driver.py ADDRESS AUTHKEY SCENARIO...

ADDRESS is HOST:PORT or a Unix socket path. Prints "ok NAME" per scenario and "ALL OK" at
the end; any failure raises (non-zero exit, with its traceback). Standard library only.
"""

import gc
import multiprocessing
import pickle
import queue
import sys
import threading
import time
from multiprocessing.managers import SyncManager


def parse_address(text):
    if text.startswith("/"):
        return text
    host, _, port = text.rpartition(":")
    return (host, int(port))


def expect(exception, f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except exception as e:
        return e
    raise AssertionError(f"{f} did not raise {exception.__name__}")


def scenario_connect(m):
    assert m._number_of_objects() >= 0
    assert isinstance(m._debug_info(), str)


def scenario_dict(m):
    d = m.dict()
    d["a"] = 1
    d.update(b=2.5, c="x")
    d.update({"d": b"bytes"})
    d.update([("e", None)])
    assert d["a"] == 1 and d["b"] == 2.5 and d["c"] == "x" and d["d"] == b"bytes"
    assert d["e"] is None
    assert len(d) == 5 and "a" in d and "z" not in d
    assert d.get("z") is None and d.get("z", 7) == 7 and d.get("a", 7) == 1
    assert d.keys() == ["a", "b", "c", "d", "e"], d.keys()
    assert d.values() == [1, 2.5, "x", b"bytes", None]
    assert [tuple(i) for i in d.items()][0] == ("a", 1)
    assert d.copy() == {"a": 1, "b": 2.5, "c": "x", "d": b"bytes", "e": None}
    assert d._getvalue() == d.copy()
    e = expect(KeyError, d.__getitem__, "missing")
    assert e.args == ("missing",), e.args
    assert d.pop("a") == 1 and d.pop("a", "gone") == "gone"
    assert expect(KeyError, d.pop, "a").args == ("a",)
    del d["b"]
    assert expect(KeyError, d.__delitem__, "b").args == ("b",)
    assert d.setdefault("n", [1, 2]) == [1, 2] and d.setdefault("n", 0) == [1, 2]
    k, v = d.popitem()
    assert (k, v) == ("n", [1, 2]), (k, v)
    d[42] = {"nested": [1, {"x": -7}]}
    assert d[42] == {"nested": [1, {"x": -7}]}
    d.clear()
    assert len(d) == 0
    expect(KeyError, d.popitem)
    big = m.dict({"n": 2**63 + 5, "neg": -(2**63), "f": -0.5, "s": "ünï€ødé"})
    assert big["n"] == 2**63 + 5 and big["neg"] == -(2**63)
    assert big["s"] == "ünï€ødé"
    assert str(big) or True


def scenario_list(m):
    l = m.list([3, 1, 2])
    l.append(4)
    l.extend([5, 6])
    l.insert(0, 0)
    assert len(l) == 7 and l[0] == 0 and l[-1] == 6
    assert l.index(2) == 3 and l.count(1) == 1 and 5 in l and 99 not in l
    l.remove(5)
    assert expect(ValueError, l.remove, 99)
    assert expect(ValueError, l.index, 99)
    l.sort()
    assert l._getvalue() == [0, 1, 2, 3, 4, 6]
    l.sort(reverse=True)
    assert l._getvalue() == [6, 4, 3, 2, 1, 0]
    l.reverse()
    assert l.pop() == 6 and l.pop(0) == 0
    l[0] = "one"
    assert l[0] == "one"
    del l[0]
    assert l._getvalue() == [2, 3, 4]
    expect(IndexError, l.__getitem__, 10)
    empty = m.list()
    assert expect(IndexError, empty.pop)


def scenario_queue(m):
    q = m.Queue()
    q.put(1)
    q.put_nowait("two")
    q.put([3, {"four": 4}])
    assert q.qsize() == 3 and not q.empty() and not q.full()
    assert q.get() == 1 and q.get_nowait() == "two" and q.get(True, 1) == [3, {"four": 4}]
    assert q.empty()
    expect(queue.Empty, q.get_nowait)
    started = time.monotonic()
    expect(queue.Empty, q.get, True, 0.2)
    assert time.monotonic() - started >= 0.15
    small = m.Queue(2)
    small.put(1)
    small.put(2)
    assert small.full()
    expect(queue.Full, small.put_nowait, 3)
    expect(queue.Full, small.put, 3, True, 0.1)
    jq = m.JoinableQueue()
    jq.put("job")
    assert jq.get() == "job"
    jq.task_done()
    jq.join()
    expect(ValueError, jq.task_done)


def scenario_locks(m):
    lock = m.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(True, 0.05) is False
    lock.release()
    with lock:
        pass
    expect(RuntimeError, lock.release)
    sem = m.Semaphore(2)
    assert sem.acquire() and sem.acquire() and not sem.acquire(False)
    sem.release()
    sem.release()
    bounded = m.BoundedSemaphore(1)
    bounded.acquire()
    bounded.release()
    expect(ValueError, bounded.release)


def scenario_event(m):
    e = m.Event()
    assert not e.is_set() and e.wait(0.05) is False
    e.set()
    assert e.is_set() and e.wait() is True and e.wait(0.05) is True
    e.clear()
    assert not e.is_set()


def scenario_value_namespace(m):
    v = m.Value("i", 5)
    assert v.value == 5
    v.value = 7
    assert v.get() == 7
    v.set("anything")
    assert v.value == "anything"
    ns = m.Namespace()
    ns.name = "Bob"
    ns.age = 42
    assert ns.name == "Bob" and ns.age == 42
    del ns.age
    expect(AttributeError, getattr, ns, "age")


def _getter(q, out):
    # A child process: the proxies came pickled, and reconnect with the key.
    out.put(("got", q.get(timeout=20)))


def scenario_processes(m):
    q = m.Queue()
    out = m.Queue()
    children = [multiprocessing.Process(target=_getter, args=(q, out)) for _ in range(3)]
    for c in children:
        c.start()
    # The getters block on the server, each on its own connection, at once.
    time.sleep(0.2)
    for i in range(3):
        q.put(i)
    got = sorted(out.get(timeout=20)[1] for _ in range(3))
    for c in children:
        c.join(20)
        assert c.exitcode == 0, c.exitcode
    assert got == [0, 1, 2], got


def scenario_threads(m):
    # One connection per client thread; a blocked get on one does not block another.
    q = m.Queue()
    results = []

    def getter():
        results.append(q.get(timeout=20))

    threads = [threading.Thread(target=getter) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(4):
        q.put(i)
    for t in threads:
        t.join(20)
    assert sorted(results) == [0, 1, 2, 3], results


class UserThing:
    # Defined in the driver: the server never imports it, it keeps its pickle.
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, UserThing) and other.n == self.n


def scenario_python_values(m):
    import collections
    import datetime
    import decimal
    import fractions
    d = m.dict()
    # Tuples stay tuples, and are keys.
    d["t"] = (1, "two", (3.0, None))
    assert d["t"] == (1, "two", (3.0, None)) and isinstance(d["t"], tuple)
    d[(1, 2)] = "tuple key"
    assert d[(1, 2)] == "tuple key"
    # Python's key equality: 1 == 1.0 == True are one key, which keeps its first form.
    d[1] = "int"
    d[1.0] = "float"
    assert d[1] == "float" and d[True] == "float" and len(d) == 3
    assert [k for k in d.keys() if k == 1] == [1] and type([k for k in d.keys() if k == 1][0]) is int
    # Objects the server does not understand come back as they went.
    odd = {
        "set": {1, 2, 3},
        "frozenset": frozenset({"a"}),
        "when": datetime.datetime(2026, 12, 4, 23, 59, 1, 5),
        "day": datetime.date(2026, 12, 4),
        "price": decimal.Decimal("12.3400"),
        "ratio": fractions.Fraction(3, 7),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "counter": collections.Counter("hello"),
        "huge": 2**200,
        "neg_huge": -(2**100),
        "user": UserThing(7),
        "complex": 1 + 2j,
        "bytearray": bytearray(b"xy"),
        "nested": [{"s": {4}}, (datetime.timedelta(seconds=3),)],
    }
    for key, value in odd.items():
        d[key] = value
        back = d[key]
        if key == "bytearray":
            assert back == b"xy", back
            continue
        assert back == value and type(back) is type(value), (key, back, value)
    q = m.Queue()
    q.put(odd["when"])
    q.put((odd["user"], odd["set"]))
    assert q.get() == odd["when"]
    assert q.get() == (odd["user"], odd["set"])
    l = m.list([odd["price"], 5])
    assert l[0] == odd["price"] and l.count(odd["price"]) == 1
    ns = m.Namespace()
    ns.name = "Bob"
    assert str(ns) == "Namespace(name='Bob')", str(ns)
    ns.age = 3
    ns.tags = ("x", 1.5)
    assert str(ns) == "Namespace(age=3, name='Bob', tags=('x', 1.5))", str(ns)
    v = m.Value("d", 0.1)
    assert v.value == 0.1


def scenario_iteration_and_slices(m):
    d = m.dict({"a": 1, "b": 2, "c": 3})
    assert [k for k in d] == ["a", "b", "c"]
    assert sorted(iter(d)) == ["a", "b", "c"]
    assert list(d.items()) == [("a", 1), ("b", 2), ("c", 3)]
    l = m.list(range(6))
    assert l[1:3] == [1, 2] and l[:2] == [0, 1] and l[4:] == [4, 5] and l[-2:] == [4, 5]
    assert [x for x in l] == [0, 1, 2, 3, 4, 5]
    plain = list(range(6))
    for s in [slice(None, None, 2), slice(None, None, -1), slice(5, 1, -2), slice(-3, None),
              slice(1, -1, 3), slice(10, 20), slice(None, None, -4)]:
        assert l[s] == plain[s], (s, l[s], plain[s])
    expect(ValueError, l.__getitem__, slice(None, None, 0))
    l[1:3] = ["a", "b", "c"]
    plain[1:3] = ["a", "b", "c"]
    del l[-2:]
    del plain[-2:]
    assert l[:] == plain, (l[:], plain)
    l[:] = range(6)
    assert l[:] == [0, 1, 2, 3, 4, 5]
    plain = list(range(6))
    l[::2] = ["x", "y", "z"]
    plain[::2] = ["x", "y", "z"]
    del l[::-3]
    del plain[::-3]
    assert l[:] == plain, (l[:], plain)
    expect(ValueError, l.__setitem__, slice(None, None, 2), [1])
    l[:] = range(6)
    assert list(reversed(l)) == [5, 4, 3, 2, 1, 0]
    assert l + [6] == [0, 1, 2, 3, 4, 5, 6] and l * 2 == list(range(6)) * 2
    l += [6]
    assert len(l) == 7
    a = m.Array("i", range(4))
    assert len(a) == 4 and a[2] == 2 and list(a) == [0, 1, 2, 3]
    a[0] = 9
    assert a[0] == 9 and a._getvalue() == [9, 1, 2, 3]
    expect(IndexError, a.__getitem__, 4)


def scenario_rlock_condition_barrier(m):
    r = m.RLock()
    assert r.acquire() and r.acquire()
    r.release()
    r.release()
    expect(RuntimeError, r.release)
    c = m.Condition()
    expect(RuntimeError, c.wait, 0.01)
    expect(RuntimeError, c.notify)
    woken = []

    def waiter():
        with c:
            woken.append(c.wait(20))

    t = threading.Thread(target=waiter)
    t.start()
    # Wait for the waiter to be waiting: notify until it wakes.
    deadline = time.monotonic() + 20
    while not woken and time.monotonic() < deadline:
        with c:
            c.notify()
        time.sleep(0.01)
    t.join(20)
    assert woken == [True], woken
    with c:
        assert c.wait(0.01) is False
        c.notify_all()
    with c:
        assert c.wait_for(lambda: True, 0.1) is True
    # A condition over a lock of the manager: holding the lock lets it wait and notify.
    lock = m.Lock()
    over = m.Condition(lock)
    with lock:
        assert over.wait(0.01) is False
        over.notify()
    expect(RuntimeError, over.notify)
    rl = m.RLock()
    over_r = m.Condition(rl)
    with over_r:
        with over_r:
            assert over_r.wait(0.01) is False
    b = m.Barrier(2, timeout=20)
    assert b.parties == 2 and b.n_waiting == 0 and not b.broken
    results = []
    t = threading.Thread(target=lambda: results.append(b.wait()))
    t.start()
    results.append(b.wait())
    t.join(20)
    assert sorted(results) == [0, 1], results
    b.abort()
    assert b.broken
    expect(threading.BrokenBarrierError, b.wait)
    b.reset()
    assert not b.broken
    # An action is Python code to run on the server: refused (a server function's error
    # reaches the client as a RemoteError, as from CPython's server).
    from multiprocessing.managers import RemoteError
    e = expect(RemoteError, m.Barrier, 2, print)
    assert "action" in str(e), str(e)


def scenario_nested_proxies(m):
    # CPython's test_dict_proxy_nested: the inner dict lives while the outer holds it.
    pets = m.dict(ferrets=2, hamsters=4)
    supplies = m.dict(water=10, feed=3)
    d = m.dict(pets=pets, supplies=supplies)
    assert d["pets"]["ferrets"] == 2
    del pets, supplies
    gc.collect()
    assert d["pets"]["ferrets"] == 2 and d["supplies"]["water"] == 10
    d["pets"]["ferrets"] = 3
    assert d["pets"]["ferrets"] == 3
    # test_nested_queue: a queue kept alive only by the list holding it.
    a = m.list()
    a.append(m.Queue())
    gc.collect()
    a[0].put(123)
    assert a[0].get() == 123
    # test_list_proxy_in_list: lists of lists.
    outer = m.list([m.list(range(3)) for _ in range(3)])
    assert [inner[:] for inner in outer] == [[0, 1, 2]] * 3
    outer[0][-1] = 55
    assert outer[0][:] == [0, 1, 55] and outer[1][:] == [0, 1, 2]
    assert outer[1].pop() == 2 and len(outer[1]) == 2
    # A proxy taken out of a container stays usable after the container lets it go.
    q = m.Queue()
    q.put(m.dict(x=1))
    got = q.get()
    gc.collect()
    assert got["x"] == 1
    # A list that contains itself is freed with its last outside proxy.
    b = m.list()
    b.append(b)
    assert len(b) == 1
    del b
    # Proxies in a tuple in a dict, and a Lock among them.
    lk = m.Lock()
    d["tools"] = (lk, [m.Event()])
    tools = d["tools"]
    assert tools[0].acquire(False) and not lk.acquire(False)
    tools[0].release()
    tools[1][0].set()
    assert d["tools"][1][0].is_set()
    del tools, lk


def scenario_hostile_pickles(m):
    # Hostile frames on raw connections (after a real handshake): each is refused with a
    # '#TRACEBACK' reply or a closed connection, never a crash; the server serves on.
    from multiprocessing.connection import Client
    import struct
    evil = {
        "deep nesting": b"\x80\x04" + b"]" * 200_000 + b"." ,
        "deep marks": b"\x80\x04" + b"(" * 200_000 + b"." ,
        "huge unicode length": b"\x80\x04\x8d" + struct.pack("<Q", 2**63) + b"x.",
        "huge bytes length": b"\x80\x04B" + struct.pack("<I", 2**31) + b"x.",
        "huge long": b"\x80\x04\x8b" + struct.pack("<I", 2**31 - 1) + b"\x01.",
        "missing memo": b"\x80\x04h\x07.",
        "memo abuse": b"\x80\x04N" + b"r\xff\xff\xff\xff" + b".",
        "sharing bomb": b"\x80\x04]\x94" + b"h\x00h\x00\x86\x94" * 60 + b".",
        "truncated": pickle.dumps((None, "dummy", (), {}), protocol=4)[:-5],
        "unknown opcode": b"\x80\x04P0\n.",
        "not a pickle": b"GET / HTTP/1.1\r\n\r\n",
        "wrong shape": pickle.dumps(("just", "two"), protocol=4),
        "empty": b"",
    }
    address = m.address
    for name, payload in evil.items():
        c = Client(address, authkey=m._authkey)
        c.send_bytes(payload)
        try:
            kind, result = pickle.loads(c.recv_bytes())
            assert kind == "#TRACEBACK", (name, kind, result)
        except EOFError:
            pass
        c.close()
    d = m.dict()
    d["still"] = "serving"
    assert d["still"] == "serving"


def scenario_errors(m):
    d = m.dict()
    # A key Python cannot hash is refused as Python would.
    expect(TypeError, d.__setitem__, [1, 2], "list key")
    expect(TypeError, d.__setitem__, {3}, "set key")
    expect(TypeError, d.__getitem__, {"a": 1})
    expect(TypeError, d.get, ([1],))
    # A method outside exposed.
    from multiprocessing.managers import RemoteError
    expect(RemoteError, d._callmethod, "no_such_method")
    # The server keeps serving.
    d["ok"] = True
    assert d["ok"] is True


SCENARIOS = {
    name[len("scenario_"):]: f for name, f in globals().items() if name.startswith("scenario_")
}


def main():
    address, key, names = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
    # Child processes rebuild proxies with their own key: make it the manager's.
    multiprocessing.current_process().authkey = key
    m = SyncManager(address=parse_address(address), authkey=key)
    m.connect()
    baseline = m._number_of_objects()
    for name in names or list(SCENARIOS):
        SCENARIOS[name](m)
        gc.collect()
        print("ok", name, flush=True)
    # Every proxy is gone: so are the objects (decrefs are sent synchronously).
    gc.collect()
    after = m._number_of_objects()
    assert after == baseline, f"{after} objects, {baseline} before"
    print("ALL OK", flush=True)


if __name__ == "__main__":
    main()
