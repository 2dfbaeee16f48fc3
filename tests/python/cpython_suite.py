"""CPython's own manager tests, from the interpreter's Lib/test/_test_multiprocessing.py,
against an external manager server (a `managers` server, or any server speaking
multiprocessing's protocol) instead of the one each test would start.

    python3 cpython_suite.py ADDRESS AUTHKEY [-k PATTERN]... [--timeout SECONDS]
                             [--total-timeout SECONDS] [--extras] [--list] [-q]

ADDRESS is HOST:PORT or a Unix socket path; AUTHKEY the server's key (as text). Standard
library only; needs the interpreter's `test` package (CPython 3.11 and later).

What runs: the WithManager* classes that `install_tests_in_module_dict(..., 'fork',
only_type='manager')` builds (as Lib/test/test_multiprocessing_fork does), and
TestSyncManagerTypes, with:

- `ManagerMixin.setUpClass` unchanged, except that its `multiprocessing.Manager()` gives a
  `SyncManager` CONNECTED to ADDRESS (`shutdown()` and `join()` do nothing): so
  `tearDownClass` still runs CPython's leak check (`_number_of_objects()` after
  `gc.collect()`), here against the external server. A leak fails the run (LEAK lines in the
  summary; CPython's own check only warns); the count is taken relative to the objects the server held when this script
  connected, so the server need not be fresh, but no one else should use it meanwhile.
- TestSyncManagerTypes' `manager_class` the same connected manager (its `start()` connects,
  its `shutdown()` does nothing), one connection per test as CPython's one server per test.
- the 'fork' start method, and `current_process().authkey` the server's key, so that
  children rebuild the proxies they receive.
- `--extras`: also TestManagerExceptions (CPython 3.13+; it uses `multiprocessing.Manager()`
  in its `setUp`), which the issue does not list.

EXCLUDED below are skipped with their reason (they need Python code executed in the server,
or start a manager of their own). Every test has a time limit (--timeout, default 60 s):
past it, the test errors with "TestTimeout" and the run goes on with fresh connections;
the whole run is limited too (--total-timeout, default 1800 s).

Prints unittest's report, then a summary (run / passed / failed / errors / skipped /
excluded, and for each failure or error the test and the key line of its traceback); the
exit code is 0 only if no test that ran failed or errored and nothing leaked.
"""

import argparse
import faulthandler
import gc
import multiprocessing
import multiprocessing.managers
import os
import signal
import sys
import tempfile
import time
import traceback
import types
import unittest
from multiprocessing.managers import BaseProxy, SyncManager

# Tests not run, each with its reason: a class name (all its tests) or CLASS.TEST.
EXCLUDED = {
    "WithManagerTestPool":
        "Pool: the pool's workers run Python functions in the server process",
    "TestSyncManagerTypes.test_pool":
        "Pool: the pool's workers run Python functions in the server process",
    "WithManagerTestBarrier.test_action":
        "Barrier(action=...): the action is a Python callable the server would run",
    "WithManagerTestMyManager":
        "starts its own MyManager server, with Python classes registered in it",
    "WithManagerTestRemoteManager":
        "starts its own QueueManager server (xmlrpclib serializer, a Python callable)",
    "WithManagerTestManagerRestart":
        "starts and restarts its own QueueManager server (a Python callable registered)",
}

MODULE_NAME = "cpython_manager_suite"


def parse_address(text):
    if text.startswith("/") or text.startswith("unix:"):
        return text[len("unix:"):] if text.startswith("unix:") else text
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


class TestTimeout(Exception):
    """A test ran past --timeout (raised in the main thread by SIGALRM)."""


def drop_connections():
    """Forget this thread's connections to managers: a call interrupted by a timeout leaves
    its reply unread, which would answer the next call on that connection."""
    for tls, _idset in list(BaseProxy._address_to_local.values()):
        tls.__dict__.pop("connection", None)


def make_external_manager(address, authkey):
    class ExternalManager(SyncManager):
        """A SyncManager connected to the external server: `start()` connects, `shutdown()`
        and `join()` leave the server running."""

        baseline = 0
        last_count = None

        def __init__(self, *args, **kwargs):
            kwargs.pop("address", None)
            kwargs.pop("authkey", None)
            kwargs.pop("shutdown_timeout", None)
            super().__init__(*args, address=address, authkey=authkey, **kwargs)

        def start(self, initializer=None, initargs=()):
            if initializer is not None:
                raise unittest.SkipTest("an initializer runs in the server process")
            self.connect()

        def shutdown(self):
            pass

        def join(self, timeout=None):
            pass

        def _number_of_objects(self):
            # Relative to what the server held when this script connected (the leak check
            # of CPython's tearDownClass compares with 0).
            count = super()._number_of_objects() - ExternalManager.baseline
            self.last_count = count
            return count

    return ExternalManager


def connected(manager_class):
    m = manager_class()
    m.connect()
    return m


def build_module(t, manager_class, extras):
    """A module holding the test classes, as test_multiprocessing_fork's."""
    module = types.ModuleType(MODULE_NAME)
    sys.modules[MODULE_NAME] = module
    t.install_tests_in_module_dict(module.__dict__, "fork", only_type="manager")

    # ManagerMixin.setUpClass, with multiprocessing.Manager() connecting to the server.
    mixin = t.ManagerMixin
    original_setup = mixin.__dict__["setUpClass"].__func__
    original_teardown = mixin.__dict__["tearDownClass"].__func__

    def setUpClass(cls):
        saved = multiprocessing.Manager
        multiprocessing.Manager = lambda: connected(manager_class)
        try:
            original_setup(cls)
        finally:
            multiprocessing.Manager = saved

    def tearDownClass(cls):
        manager = cls.manager
        try:
            original_teardown(cls)
        finally:
            if manager is not None and manager.last_count:
                LEAKS.append(
                    f"{cls.__name__}: {manager.last_count} object(s) left on the server")

    mixin.setUpClass = classmethod(setUpClass)
    mixin.tearDownClass = classmethod(tearDownClass)

    # TestSyncManagerTypes: the connected manager, one per test.
    class TestSyncManagerTypes(t.TestSyncManagerTypes):
        pass

    TestSyncManagerTypes.manager_class = manager_class
    TestSyncManagerTypes.__name__ = TestSyncManagerTypes.__qualname__ = "TestSyncManagerTypes"
    TestSyncManagerTypes.__module__ = MODULE_NAME
    module.TestSyncManagerTypes = TestSyncManagerTypes

    if extras and hasattr(t, "TestManagerExceptions"):
        class TestManagerExceptions(t.TestManagerExceptions):
            def setUp(self):
                saved = multiprocessing.Manager
                multiprocessing.Manager = lambda: connected(manager_class)
                try:
                    super().setUp()
                finally:
                    multiprocessing.Manager = saved

        TestManagerExceptions.__name__ = TestManagerExceptions.__qualname__ = (
            "TestManagerExceptions")
        TestManagerExceptions.__module__ = MODULE_NAME
        module.TestManagerExceptions = TestManagerExceptions

    # Exclusions: skipped with their reason (a whole class skips its setUpClass too).
    for key, reason in EXCLUDED.items():
        cls_name, _, test_name = key.partition(".")
        cls = module.__dict__.get(cls_name)
        if cls is None:
            continue
        why = f"EXCLUDED: {reason}"
        if test_name:
            if hasattr(cls, test_name):
                setattr(cls, test_name, unittest.skip(why)(getattr(cls, test_name)))
        else:
            cls.__unittest_skip__ = True
            cls.__unittest_skip_why__ = why
    return module


def install_timeouts(module, seconds):
    """Every test's run (setUp, test, tearDown, cleanups) is limited to `seconds`; past
    it, SIGALRM raises TestTimeout in the main thread, then again every 10 s until the test
    is over (for cleanups that would hang too)."""

    def on_alarm(signum, frame):
        drop_connections()
        signal.setitimer(signal.ITIMER_REAL, 10.0)
        raise TestTimeout(f"test still running after {seconds} s (or a cleanup after 10 s more)")

    signal.signal(signal.SIGALRM, on_alarm)
    for value in list(module.__dict__.values()):
        if not (isinstance(value, type) and issubclass(value, unittest.TestCase)):
            continue
        original_run = value.run

        def run(self, result=None, _run=original_run):
            CURRENT["test"] = test_id(self)
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                return _run(self, result)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)

        value.run = run


LEAKS = []


def key_line(text):
    """What went wrong, from a unittest traceback: the final exception's line (with the
    server's message when it is a RemoteError) and the line of CPython's test it came
    from."""
    lines = text.rstrip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    after = lines[frames[-1] + 1:] if frames else lines
    rest = [i for i, line in enumerate(after) if line and not line.startswith(" ")]
    exception = after[rest[0]] if rest else (lines[-1] if lines else "")
    if rest and exception.rstrip().endswith(("RemoteError:", "RemoteError")):
        remote = [line.strip("-").strip() for line in after[rest[0] + 1:]]
        remote = [line for line in remote if line]
        if remote:
            exception = f"RemoteError: {remote[-1]}"
    where = ""
    for i in reversed(frames):
        if "_test_multiprocessing.py" in lines[i]:
            number = lines[i].split(", line ")[1].split(",")[0]
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            where = f"  [line {number}: {code}]"
            break
    return f"{exception.strip()}{where}"


# The test running now (children forked during it inherit it), and where children record
# what made them fail (CPython's worker functions report failures only by exit code).
CURRENT = {"test": None, "errors": None}


def record_child_failures():
    import multiprocessing.process as process
    original_run = process.BaseProcess.run

    def run(self):
        try:
            return original_run(self)
        except SystemExit as e:
            if e.code not in (None, 0):
                note_child_failure(e)
            raise
        except BaseException as e:
            note_child_failure(e)
            raise

    process.BaseProcess.run = run


def note_child_failure(e):
    if CURRENT["errors"] is None or CURRENT["test"] is None:
        return
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f.filename.endswith("_test_multiprocessing.py")]
    frame = (ours or frames or [None])[-1]
    here = f" [line {frame.lineno}: {frame.line}]" if frame else ""
    line = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    if len(line) > 160:
        line = line[:160] + "..."
    try:
        with open(CURRENT["errors"], "a") as f:
            f.write(f"{CURRENT['test']}\t{line}{here}\n")
    except OSError:
        pass


def child_failures():
    found = {}
    try:
        with open(CURRENT["errors"]) as f:
            for entry in f:
                test, _, line = entry.rstrip("\n").partition("\t")
                found.setdefault(test, []).append(line)
    except OSError:
        pass
    return found


class Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = []
        self.excluded = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if reason.startswith("EXCLUDED"):
            self.excluded.append((test, reason))


def test_id(test):
    name = test.id()
    return name[len(MODULE_NAME) + 1:] if name.startswith(MODULE_NAME + ".") else name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address")
    parser.add_argument("authkey")
    parser.add_argument("-k", dest="patterns", action="append", default=[],
                        help="only tests matching this pattern (unittest's -k)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds a test may run (default 60)")
    parser.add_argument("--total-timeout", type=float, default=1800.0,
                        help="seconds the whole run may take; past it, every thread's "
                             "traceback is printed and the run exits 1 (default 1800)")
    parser.add_argument("--extras", action="store_true")
    parser.add_argument("--list", action="store_true", help="list the tests and exit")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args()

    faulthandler.dump_traceback_later(args.total_timeout, exit=True)
    import test._test_multiprocessing as t

    address = parse_address(args.address)
    authkey = args.authkey.encode()
    multiprocessing.set_start_method("fork", force=True)
    multiprocessing.current_process().authkey = authkey

    manager_class = make_external_manager(address, authkey)
    probe = connected(manager_class)
    manager_class.baseline = SyncManager._number_of_objects(probe)
    del probe

    module = build_module(t, manager_class, args.extras)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in args.patterns]
    suite = loader.loadTestsFromModule(module)
    if args.list:
        def walk(s):
            for x in s:
                yield from (walk(x) if isinstance(x, unittest.TestSuite) else [x])
        for test in walk(suite):
            print(test_id(test))
        return 0

    record_child_failures()
    errors = tempfile.NamedTemporaryFile(prefix="cpython_suite_", suffix=".txt", delete=False)
    errors.close()
    CURRENT["errors"] = errors.name
    install_timeouts(module, args.timeout)
    print(f"CPython {sys.version.split()[0]} ({t.__file__}) against {args.address}, "
          f"{suite.countTestCases()} tests", flush=True)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=1 if args.quiet else 2,
                                     resultclass=Result)
    started = time.monotonic()
    result = runner.run(suite)

    gc.collect()
    time.sleep(0.2)
    final = connected(manager_class)
    left = final._number_of_objects()
    if left:
        LEAKS.append(f"end of run: {left} object(s) left on the server "
                     f"({final._debug_info().strip()!r})")
    del final
    children = child_failures()
    os.unlink(CURRENT["errors"])

    ran = len({test_id(test) for test in result.passed}
              | {test_id(test) for test, _ in result.failures + result.errors
                 + result.expectedFailures}
              | {test_id(test) for test in result.unexpectedSuccesses})
    print()
    print("=" * 70)
    print(f"SUMMARY  CPython {sys.version.split()[0]} against {args.address} "
          f"in {time.monotonic() - started:.1f} s")
    print(f"  run {ran}, passed {len(result.passed)}, failed {len(result.failures)}, "
          f"errors {len(result.errors)}, "
          f"skipped {len(result.skipped) - len(result.excluded)} (by CPython), "
          f"excluded {len(result.excluded)}, "
          f"unexpected successes {len(result.unexpectedSuccesses)}")
    for label, items in (("FAIL", result.failures), ("ERROR", result.errors)):
        seen = {}
        for test, text in items:
            seen.setdefault((test_id(test), key_line(text)), []).append(test)
        for (name, line), tests in seen.items():
            again = f" (x{len(tests)})" if len(tests) > 1 else ""
            print(f"  {label} {name}: {line}{again}")
            for child in dict.fromkeys(children.get(name, [])):
                print(f"      child process: {child}")
    for test, reason in result.skipped:
        if not reason.startswith("EXCLUDED"):
            print(f"  SKIP {test_id(test)}: {reason}")
    for leak in LEAKS:
        print(f"  LEAK {leak}")
    ok = (not result.failures and not result.errors and not LEAKS
          and not result.unexpectedSuccesses)
    print("ALL OK" if ok else "FAILED")
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
