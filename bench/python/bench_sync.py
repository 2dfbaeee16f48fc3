"""Stock CPython clients against a SyncManager server: managers-bench's comparison of our
server with CPython's own, the client code the same for both.

    python3 bench_sync.py [--connect ADDRESS --server-pid PID] [options]

Without --connect, starts CPython's own server (`SyncManager(address, authkey).start()`,
its own process) on loopback TCP, or with `--unix PATH` on a Unix socket at PATH (which must
not exist yet). With --connect, uses the server already listening at ADDRESS (HOST:PORT,
`unix:PATH` or a path), which managers-bench starts as managerd does (the SyncManager
types, CPython clients served); --server-pid names its process for the CPU figure.

The clients are `multiprocessing.managers.SyncManager(address, authkey).connect()`,
unchanged, and measure:
  latency      sequential `d[f"k{i % 100}"] = i` on one shared dict (one round trip with
               a small argument, as bench_manager.py's store.incr), after --warm-up seconds
               of the same calls on the same connection: mean, p50 and p99 in seconds
  throughput   --clients processes (forked; each makes its own connections, as real Python
               workers do) doing `d[key] = i` on the same shared dict, each its own key, back
               to back for D seconds: calls/s, named throughput_N; the server's CPU time
               per call, cpu_per_call_N; and the client processes' CPU time per call (all
               of them together: user + system time of the timed loops),
               client_cpu_per_call_N
  create_drop  `d = m.dict(); d["a"] = 1; del d`: per second
  leaked       objects left on the server by create_drop (should be 0)
Prints one `result NAME VALUE` line per figure.
"""

import argparse
import multiprocessing as mp
import os
import signal
import time
from multiprocessing.managers import SyncManager

import bench_manager
from bench_manager import AUTHKEY, SETUP_TIMEOUT, START_TIMEOUT, cpu_seconds, report


def parse_address(text):
    if text.startswith("unix:"):
        return text[len("unix:"):]
    if text.startswith("/"):
        return text
    host, _, port = text.rpartition(":")
    return (host, int(port))


def connect(address):
    m = SyncManager(address=address, authkey=AUTHKEY)
    m.connect()
    return m


def first_call(d, key):
    """The proxy's first call, which opens its connection. As in bench_manager.py's `setup`:
    CPython's server can leave a connection made in a burst over TCP unaccepted for good
    (its sockets have no timeout), so each attempt gets a few seconds (an alarm interrupts
    the read) and a fresh connection."""

    def give_up(signum, frame):
        raise TimeoutError("no answer from the manager")

    signal.signal(signal.SIGALRM, give_up)
    for attempt in range(5):
        signal.alarm(SETUP_TIMEOUT)
        try:
            d[key] = 0
            return
        except OSError:  # TimeoutError included
            if attempt == 4:
                raise
            # A half-made connection would answer the next call with this one's reply.
            try:
                del d._tls.connection
            except AttributeError:
                pass
        finally:
            signal.alarm(0)


def latencies(name, call, n, warm_up):
    """bench_manager.py's `latencies` (`n` timed calls after a tenth as many untimed), after
    `warm_up` seconds of untimed calls. Over loopback TCP on this 2-CPU VM, a new connection
    answers in about 20 µs at first and in about 58 µs once the scheduler has spread client
    and server over both CPUs, which took up to 100 ms on CPython's server and 10-20 ms on
    ours: without the warm-up, the figure measures how long each server keeps that first
    placement."""
    end = time.perf_counter() + warm_up
    i = 0
    while time.perf_counter() < end:
        call(i)
        i += 1
    bench_manager.latencies(name, call, n)


def client_loop(d, duration, connecting, start, results, key):
    # `d` came with the fork: the proxy took its own reference (an incref on a connection of
    # its own) after the fork, and opens its own connection at its first call.
    with connecting:
        first_call(d, key)
    start.wait(timeout=START_TIMEOUT)
    cpu = time.process_time()
    n = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        d[key] = n
        n += 1
    results.put((n, time.process_time() - cpu))
    results.close()
    results.join_thread()
    # Leave without the proxy's decref (see bench_manager.py's `client_loop`): the dict is
    # left with this process's reference until the server stops.
    os._exit(0)


def throughput(d, clients, duration, server_pid):
    """Calls per second of `clients` processes, the server's CPU seconds per call and the
    clients' (all of them together, per call)."""
    start = mp.Barrier(clients + 1)
    connecting = mp.Semaphore(8)
    results = mp.Queue()
    procs = [
        mp.Process(
            target=client_loop,
            args=(d, duration, connecting, start, results, f"c{c}"),
        )
        for c in range(clients)
    ]
    for proc in procs:
        proc.start()
    start.wait(timeout=START_TIMEOUT)
    cpu = cpu_seconds(server_pid) if server_pid else 0.0
    t = time.perf_counter()
    counts = [results.get(timeout=duration + START_TIMEOUT) for _ in procs]
    elapsed = time.perf_counter() - t
    cpu = (cpu_seconds(server_pid) - cpu) if server_pid else 0.0
    for proc in procs:
        proc.join()
    total = sum(n for n, _ in counts)
    client_cpu = sum(c for _, c in counts)
    return total / elapsed, cpu / max(total, 1), client_cpu / max(total, 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--connect", help="use the server at this address instead of starting one")
    p.add_argument("--server-pid", type=int, default=0, help="that server's process id")
    p.add_argument("--unix", help="start CPython's server on a Unix socket at this path")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warm-up", type=float, default=0.5, help="seconds before the latency")
    p.add_argument("--clients", default="16", help="comma-separated client counts")
    p.add_argument("--duration", type=float, default=0.5)
    p.add_argument("--creates", type=int, default=500)
    p.add_argument("--create-seconds", type=float, default=2.0)
    args = p.parse_args()

    if mp.get_start_method() != "fork":
        raise SystemExit("the throughput clients inherit the dict's proxy: needs fork")
    server = None
    if args.connect:
        address = parse_address(args.connect)
        server_pid = args.server_pid
    else:
        server = SyncManager(address=args.unix or ("127.0.0.1", 0), authkey=AUTHKEY)
        server.start()
        address = server.address
        server_pid = server._process.pid
    try:
        m = connect(address)
        d = m.dict()
        first_call(d, "setup")

        def set_item(i):
            d[f"k{i % 100}"] = i

        latencies("latency", set_item, args.calls, args.warm_up)

        for clients in [int(c) for c in args.clients.split(",")]:
            rate, cpu, client_cpu = throughput(d, clients, args.duration, server_pid)
            report(f"throughput_{clients}", rate)
            if server_pid:
                report(f"cpu_per_call_{clients}", cpu)
            report(f"client_cpu_per_call_{clients}", client_cpu)

        # A create + call + drop opens five connections (create, the proxy's incref, the
        # creator's decref, the proxy's own at its first call, the decref on drop), and
        # over TCP CPython's server stalls each for a delayed ACK: stop after `creates`
        # rounds or `create_seconds`, whichever comes first.
        before = m._number_of_objects()
        t = time.perf_counter()
        done = 0
        while done < args.creates and time.perf_counter() - t < args.create_seconds:
            e = m.dict()
            e["a"] = 1
            del e
            done += 1
        report("create_drop", done / (time.perf_counter() - t))
        report("leaked", m._number_of_objects() - before)
    finally:
        if server is not None:
            server.shutdown()


if __name__ == "__main__":
    main()
