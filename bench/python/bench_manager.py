"""The Python contender of managers-bench: CPython's multiprocessing.managers.

Starts a BaseManager server (its own process), then measures from client processes:
  latency     sequential store.incr() calls: mean, p50 and p99 in seconds
  echo        the same with a 64 KiB bytes argument echoed back (store.echo())
  throughput  N client processes calling store.incr() back to back for D seconds, for
              each N of --clients: calls/s; for N = 16 also the server's CPU time per call
  create_drop create a Small proxy, call it once, drop it: per second
  memory      with --memory N: the server's resident memory per live Small object, with N
              proxies held (Linux)
Prints one `result NAME VALUE` line per figure. Over loopback TCP, or with `--unix PATH`
over a Unix socket at PATH (which must not exist yet).

Python's proxies wait for each reply before the next call can be made on their
connection, so there is no pipelined workload here.
"""

import argparse
import multiprocessing as mp
import os
import signal
import time
from multiprocessing.managers import BaseManager


class Store:
    def __init__(self):
        self.d = {}

    def incr(self, key):
        self.d[key] = self.d.get(key, 0) + 1
        return self.d[key]

    def echo(self, data):
        return data


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

# Seconds a client waits for its connection to be set up before trying again (see
# `setup`).
SETUP_TIMEOUT = 5
# Seconds a throughput run waits for its clients to be ready, or to report.
START_TIMEOUT = 120


def connect(address):
    m = BenchManager(address=address, authkey=AUTHKEY)
    m.connect()
    return m


def cpu_seconds(pid):
    """User + system CPU time of process `pid` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def report(name, value):
    print("result", name, value, flush=True)


def latencies(name, call, n):
    """`n` timed calls (after a tenth as many untimed): mean, p50, p99."""
    samples = []
    for i in range(n + n // 10):
        t = time.perf_counter()
        call(i)
        if i >= n // 10:
            samples.append(time.perf_counter() - t)
    samples.sort()
    report(f"{name}_mean", sum(samples) / len(samples))
    report(f"{name}_p50", samples[round((len(samples) - 1) * 0.5)])
    report(f"{name}_p99", samples[round((len(samples) - 1) * 0.99)])


def setup(address):
    """A connection and a store proxy. CPython's manager authenticates each connection
    inside its one accepting thread and listens with a backlog of 16: over TCP, where
    each handshake stalls for a delayed ACK, a burst of connections overflows it, and a
    connection can then wait for the server's challenge for good (its sockets have no
    timeout). So give each attempt a few seconds (an alarm interrupts the read), and try
    again."""

    def give_up(signum, frame):
        raise TimeoutError("no answer from the manager")

    signal.signal(signal.SIGALRM, give_up)
    for attempt in range(5):
        signal.alarm(SETUP_TIMEOUT)
        try:
            m = connect(address)
            store = m.store()
            # The proxy opens its own connection at its first call.
            store.incr("setup")
            return m, store
        except OSError:  # TimeoutError included
            if attempt == 4:
                raise
        finally:
            signal.alarm(0)


def client_loop(address, duration, connecting, start, results, key):
    with connecting:
        m, store = setup(address)
    start.wait(timeout=START_TIMEOUT)
    n = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        store.incr(key)
        n += 1
    results.put(n)
    results.close()
    results.join_thread()
    # Leave without the proxies' decrefs: each would open a connection at exit, all at
    # once (the same burst). The store is the server's own object; the server is shut
    # down at the end of the run.
    os._exit(0)


def throughput(address, clients, duration, server_pid):
    """Calls per second of `clients` processes, and the server's CPU seconds per call."""
    start = mp.Barrier(clients + 1)
    connecting = mp.Semaphore(8)
    results = mp.Queue()
    procs = [
        mp.Process(
            target=client_loop,
            args=(address, duration, connecting, start, results, f"k{c}"),
        )
        for c in range(clients)
    ]
    for proc in procs:
        proc.start()
    start.wait(timeout=START_TIMEOUT)
    cpu = cpu_seconds(server_pid)
    t = time.perf_counter()
    total = sum(results.get(timeout=duration + START_TIMEOUT) for _ in procs)
    elapsed = time.perf_counter() - t
    cpu = cpu_seconds(server_pid) - cpu
    for proc in procs:
        proc.join()
    return total / elapsed, cpu / max(total, 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--payload-calls", type=int, default=300)
    p.add_argument("--clients", default="16", help="comma-separated client counts")
    p.add_argument("--duration", type=float, default=0.5)
    p.add_argument("--creates", type=int, default=500)
    p.add_argument("--memory", type=int, default=0, help="objects for the memory figure")
    p.add_argument("--unix", help="serve on a Unix socket at this path instead of TCP")
    args = p.parse_args()

    address = args.unix if args.unix else ("127.0.0.1", 0)
    server = BenchManager(address=address, authkey=AUTHKEY)
    server.start()
    address = server.address
    server_pid = server._process.pid
    try:
        m, store = setup(address)
        latencies("latency", lambda i: store.incr(f"k{i % 100}"), args.calls)
        payload = bytes(64 * 1024)
        latencies("echo", lambda i: store.echo(payload), args.payload_calls)

        for clients in [int(c) for c in args.clients.split(",")]:
            rate, cpu = throughput(address, clients, args.duration, server_pid)
            report(f"throughput_{clients}", rate)
            if clients == 16:
                report("cpu_per_call_16", cpu)

        # Python's create + drop is slow (each create opens a new connection, and over
        # TCP each new connection stalls for a delayed ACK): stop after `creates` proxies
        # or two seconds, whichever comes first.
        t = time.perf_counter()
        done = 0
        while done < args.creates and time.perf_counter() - t < 2.0:
            small = m.Small(done)
            small.get()
            del small
            done += 1
        report("create_drop", done / (time.perf_counter() - t))

        if args.memory:
            # Warm up the server's allocator and tables, as the managers figure does.
            for i in range(args.memory // 10):
                m.Small(i).get()
            before = rss_bytes(server_pid)
            held = [m.Small(i) for i in range(args.memory)]
            after = rss_bytes(server_pid)
            report("memory_per_object", (after - before) / len(held))
            del held
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
