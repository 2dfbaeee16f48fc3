//! Every example runs as its own set of processes and exits 0 by itself.
//!
//! `cargo test` builds the examples next to this binary (`target/<profile>/examples/`); each
//! test runs one with no arguments, as CI and the README do, and checks what it printed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The built example binary `name`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds the examples",
        path.display()
    );
    path
}

/// Run example `name` (120 s at most); returns its stdout; fails unless it exits 0.
fn run(name: &str) -> String {
    let mut child = Command::new(example(name))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("poll example").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("example {name} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("example output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn assert_contains(output: &str, needles: &[&str]) {
    for needle in needles {
        assert!(output.contains(needle), "missing {needle:?} in:\n{output}");
    }
}

#[test]
fn quickstart() {
    let out = run("quickstart");
    assert_contains(
        &out,
        &[
            "[alice] posted",
            "[bob] posted",
            "[parent] the board now reads:",
        ],
    );
    assert_eq!(out.matches("[parent]   ").count(), 2, "{out}");
}

#[test]
fn shared_string() {
    let out = run("shared_string");
    assert_contains(
        &out,
        &[
            "repr(proxy) = SharedStringProxy { typeid: \"get_my_string\"",
            "str(proxy)  = hello World",
            "proxy.capitalize() = \"Hello world\"",
            "call_method(\"capitalize\", ()) = \"Hello world\"",
        ],
    );
}

#[test]
fn authkey() {
    let out = run("authkey");
    assert_contains(
        &out,
        &[
            "[client] connected",
            "[intruder] refused: authentication failed",
        ],
    );
}

#[test]
fn exposed() {
    let out = run("exposed");
    assert_contains(
        &out,
        &[
            "refused: method `set_x` of typeid `get_pair` is not exposed",
            "(unchanged)",
        ],
    );
}

#[test]
fn class_registration() {
    let out = run("class_registration");
    assert_contains(
        &out,
        &[
            "str(a) = Pair(1, 3), str(b) = Pair(2, 4)",
            "number_of_objects() = 2",
        ],
    );
}

#[test]
fn remote() {
    let out = run("remote");
    assert_contains(
        &out,
        &[
            "[get] counter = 42",
            "[bulk 1000] added 1 1000 times: counter is now 1042",
            "[get] counter = 1042",
            "[stats] number_of_objects = 5",
            "the server stopped gracefully",
        ],
    );
    assert!(
        out.matches("[stats] number_of_objects = 0").count() >= 2,
        "{out}"
    );
}

#[test]
fn method_to_typeid() {
    let out = run("method_to_typeid");
    assert_contains(
        &out,
        &[
            "[client] proxy1 = ItemWrapperProxy { typeid: \"ItemWrapper\"",
            "[client] proxy1 changes item from \"initialized\" to \"7\"",
            "[client] proxy2 sees item as \"7\"",
            "[client] proxy2 changes item from \"7\" to \"11\"",
            "[client] proxy1 sees item as \"11\"",
            "[client] pair.item_value() = \"11\"",
            "[server] after the changes in the client process, the server's pair sees item as \"11\"",
        ],
    );
}

#[test]
fn job_board() {
    let out = run("job_board");
    assert_contains(
        &out,
        &[
            "[parent] refused a job without a name: BoardError::EmptyName",
            "[parent] posted jobs [1, 2, 3, 4]",
            "[parent] job 1: square(3) = 9 by worker",
            "[parent] job 4: square(6) = 36 by worker",
            "[parent] total = 86",
            "[parent] job 1 is taken: BoardError::Taken",
            "[parent] the server process exited: exit status: 0",
        ],
    );
    // Each worker's own log, created by the board (`method_to_typeid`): four jobs in all.
    let logged: usize = (1..=2)
        .map(|i| {
            let prefix = format!("[worker{i}] log of worker{i}: ");
            let line = out.lines().find(|l| l.starts_with(&prefix)).expect(&prefix);
            line[prefix.len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(logged, 4, "{out}");
}

#[test]
fn custom_proxy() {
    let out = run("custom_proxy");
    assert_contains(
        &out,
        &[
            "[client] mine = MyProxy { pair: PairProxy { typeid: \"get_pair\"",
            "mine.get_y() = 4",
            "get_x = 3 through PairProxy, 9 through MyProxy",
            "get_x = 5 through PairProxy, 25 through MyProxy",
            "client.create::<MyProxy, _>(\"get_pair\", (1, 2)).get_x() = 1",
        ],
    );
}

#[test]
fn proxy_handoff() {
    let out = run("proxy_handoff");
    // Object ids are random: take the counter's from A's first line.
    let id = out
        .split("[A] created CounterProxy")
        .nth(1)
        .and_then(|rest| rest.split(", id: ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("A prints the counter's id");
    assert_contains(
        &out,
        &[
            "[A] counter.incr() = 1",
            &format!("[A]   counter {id}: refcount 2, held by connection #2 x1, shared objects x1"),
            &format!("[parent]   counter {id}: refcount 1, held by shared objects x1"),
            "[parent] mailbox.count() = 1",
            "[B] counter.incr() = 2",
            &format!("[B]   counter {id}: refcount 1, held by connection #3 x1"),
            "[parent] B has exited; its reference was the last one, so the counter is freed",
            "[parent] mailbox.count() = 0",
        ],
    );
}

#[test]
fn lock_release_on_crash() {
    let out = run("lock_release_on_crash");
    assert_contains(
        &out,
        &[
            "[A] ACQUIRED the shared lock",
            "[B] WAITING: the lock is held",
            "[parent] killing A with SIGKILL while it holds the lock",
            "[B] acquired the lock after waiting ",
            "[B] released it",
            "[parent] all processes exited; B got the lock A died holding",
        ],
    );
}

#[test]
fn remote_queue() {
    let out = run("remote_queue");
    assert_contains(
        &out,
        &[
            "[get] waiting for an item (timeout: None)",
            "[put] put \"hello\"",
            "[get] got \"hello\"",
            "[late get] nothing to get: the queue is empty",
            "[parent] all processes exited 0",
        ],
    );
}

#[test]
fn worker_pool() {
    let out = run("worker_pool");
    assert_contains(
        &out,
        &[
            "[producer] queued 9 jobs; joining the queue",
            "[producer] every job is done; the results:",
            "[producer]   1^2 = 1 (worker ",
            "[producer]   9^2 = 81 (worker ",
            "[producer] sum of squares = 285",
            "[producer] all processes exited 0",
        ],
    );
    assert_eq!(out.matches("[producer]   ").count(), 9, "{out}");
    // Every job was done exactly once, by one of the three workers.
    let jobs: usize = out
        .lines()
        .filter_map(|line| line.split_once("] did ")?.1.strip_suffix(" job(s)"))
        .map(|n| n.parse::<usize>().expect("a job count"))
        .sum();
    assert_eq!(jobs, 9, "{out}");
    assert_eq!(out.matches("] did ").count(), 3, "{out}");
}

/// Two unchanged CPython workers and a Rust worker share a queue and a dict (the Python
/// workers only where a CPython 3.11+ is installed; the example says which).
#[test]
fn python_fleet() {
    let out = run("python_fleet");
    assert_contains(
        &out,
        &[
            "[producer] queued 30 jobs; joining the queue",
            "[producer] all 30 results are right: ",
            "[rust worker] did ",
            "[producer] all processes exited 0",
        ],
    );
    if out.contains("two Python workers") {
        assert_contains(&out, &["[python worker 1] did ", "[python worker 2] did "]);
    }
}

/// A program that starts its own server in a child process (`managers::process`).
#[test]
fn spawned_server() {
    let out = run("spawned_server");
    assert_contains(
        &out,
        &[
            "[parent] server process Some(",
            "[parent] results: [(\"2^2\", 4), (\"3^2\", 9), (\"4^2\", 16)]",
            "[parent] the server process exited: exit status: 0",
        ],
    );
}

#[test]
fn tls() {
    let out = run("tls");
    assert_contains(
        &out,
        &[
            "[worker] connected over TLS; counter = 5",
            "[anonymous] refused without a client certificate",
            "[plaintext] refused: the server requires TLS",
            "[parent] every process behaved as expected",
        ],
    );
}
