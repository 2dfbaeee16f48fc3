"""The Python contender of managers-bench: CPython's multiprocessing.managers.

Starts a BaseManager server (its own process), then measures from client processes:
  latency     sequential store.incr() calls: p50 in seconds
  throughput  N client processes calling store.incr() back to back for D seconds: calls/s
  create_drop create a Small proxy, call it once, drop it: per second
Prints one `result NAME VALUE` line per figure. Over loopback TCP, or with `--unix PATH`
over a Unix socket at PATH (which must not exist yet).
"""

import argparse
import multiprocessing as mp
import time
from multiprocessing.managers import BaseManager


class Store:
    def __init__(self):
        self.d = {}

    def incr(self, key):
        self.d[key] = self.d.get(key, 0) + 1
        return self.d[key]


class Small:
    def __init__(self, n):
        self.n = n

    def get(self):
        return self.n


STORE = Store()


def get_store():
    return STORE


class BenchManager(BaseManager):
    pass


BenchManager.register("store", callable=get_store)
BenchManager.register("Small", Small)

AUTHKEY = b"bench-key"


def connect(address):
    m = BenchManager(address=address, authkey=AUTHKEY)
    m.connect()
    return m


def client_loop(address, duration, start, results):
    m = connect(address)
    store = m.store()
    start.wait()
    n = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        store.incr("k")
        n += 1
    results.put(n)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=0.5)
    p.add_argument("--creates", type=int, default=500)
    p.add_argument("--unix", help="serve on a Unix socket at this path instead of TCP")
    args = p.parse_args()

    address = args.unix if args.unix else ("127.0.0.1", 0)
    server = BenchManager(address=address, authkey=AUTHKEY)
    server.start()
    address = server.address
    try:
        m = connect(address)
        store = m.store()
        samples = []
        for i in range(args.calls):
            t = time.perf_counter()
            store.incr("k")
            samples.append(time.perf_counter() - t)
        samples.sort()
        print("result latency_p50", samples[len(samples) // 2], flush=True)

        start = mp.Barrier(args.clients + 1)
        results = mp.Queue()
        procs = [
            mp.Process(target=client_loop, args=(address, args.duration, start, results))
            for _ in range(args.clients)
        ]
        for proc in procs:
            proc.start()
        start.wait()
        t = time.perf_counter()
        total = sum(results.get() for _ in procs)
        elapsed = time.perf_counter() - t
        for proc in procs:
            proc.join()
        print("result throughput_16", total / elapsed, flush=True)

        # Python's create + drop is slow (each create, first call and decref opens a new
        # connection, and over TCP each new connection stalls for a delayed ACK): stop
        # after `creates` proxies or two seconds, whichever comes first.
        t = time.perf_counter()
        done = 0
        while done < args.creates and time.perf_counter() - t < 2.0:
            small = m.Small(done)
            small.get()
            del small
            done += 1
        print("result create_drop", done / (time.perf_counter() - t), flush=True)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
