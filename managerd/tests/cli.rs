//! `managerd` as users run it: a real process, real sockets, real signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use managers::sync::SyncManager;

#[path = "../../tests/support/certs.rs"]
mod certs;
#[path = "../../tests/support/relay.rs"]
mod relay;

struct Daemon {
    child: Child,
    address: String,
    /// The lines it prints after its address.
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Start managerd with `args` and `env`; wait (30 s at most) for its address line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(args, env, Stdio::null())
    }

    /// [`Daemon::start`] with its stderr going to `stderr`.
    fn start_with(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_managerd"));
        cmd.args(args)
            .env_remove("MANAGERS_AUTHKEY")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("managerd starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("managerd prints its address");
        let address = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Daemon {
            child,
            address,
            lines: rx,
        }
    }

    /// The next line it prints (30 s at most).
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("managerd prints another line")
    }

    /// SIGTERM, and the exit status (30 s at most).
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(ok.success());
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("poll") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("managerd did not stop on SIGTERM");
    }
}

#[tokio::test]
async fn serves_sync_types_with_the_key_from_the_environment() {
    let daemon = Daemon::start(
        &["--address", "127.0.0.1:0"],
        &[("MANAGERS_AUTHKEY", "s3cret")],
    );
    let manager = SyncManager::connect(daemon.address.as_str(), "s3cret")
        .await
        .unwrap();
    let lock = manager.lock().await.unwrap();
    assert!(lock.try_acquire().await.unwrap());
    assert!(lock.locked().await.unwrap());
    let event = manager.event().await.unwrap();
    event.set().await.unwrap();
    assert!(event.is_set().await.unwrap());
    // The wrong key is refused.
    assert!(SyncManager::connect(daemon.address.as_str(), "nope")
        .await
        .is_err());
    drop((lock, event, manager));
    assert!(daemon.terminate().success(), "graceful exit on SIGTERM");
}

#[tokio::test]
async fn reads_the_key_from_a_file_and_listens_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "from-a-file\n").unwrap();
    let socket = dir.path().join("managerd.sock");
    let daemon = Daemon::start(
        &[
            "--address",
            socket.to_str().unwrap(),
            "--authkey-file",
            key_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(daemon.address, format!("unix:{}", socket.display()));
    let manager = SyncManager::connect(socket.as_path(), "from-a-file")
        .await
        .unwrap();
    let sem = manager.semaphore(2).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 2);
    drop((sem, manager));
    assert!(daemon.terminate().success());
    assert!(!socket.exists(), "the socket file is removed on shutdown");
}

#[test]
fn refuses_to_start_without_a_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_managerd"))
        .args(["--address", "127.0.0.1:0"])
        .env_remove("MANAGERS_AUTHKEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MANAGERS_AUTHKEY"), "{stderr}");
}

#[test]
fn help_explains_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_managerd"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("MANAGERS_AUTHKEY") && help.contains("--authkey-file"),
        "{help}"
    );
}

#[tokio::test]
async fn the_waiting_call_limit_is_set_from_the_command_line() {
    let daemon = Daemon::start(
        &["--address", "127.0.0.1:0", "--max-calls-in-flight", "2"],
        &[("MANAGERS_AUTHKEY", "k")],
    );
    let manager = SyncManager::connect(daemon.address.as_str(), "k")
        .await
        .unwrap();
    let queue = manager.queue::<u8>(0).await.unwrap();
    let mut gets = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let queue = queue.clone();
        gets.spawn(async move { queue.get().await });
    }
    // Nothing was put: the first get to finish is the one refused, once two wait.
    let refused = gets.join_next().await.unwrap().unwrap().unwrap_err();
    assert!(refused.is_retryable(), "{refused:?}");
    assert!(refused.to_string().contains("limit 2"), "{refused}");
    queue.put(1).await.unwrap();
    queue.put(2).await.unwrap();
    let mut got = Vec::new();
    while let Some(get) = gets.join_next().await {
        got.push(get.unwrap().unwrap());
    }
    got.sort();
    assert_eq!(got, [1, 2]);
    drop((queue, manager));
    assert!(daemon.terminate().success());
}

/// 600 failed logins while managerd's stderr is a pipe nobody reads: the server goes on
/// serving (it used to block writing its warnings once the pipe was full, about 240 lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_with_an_unread_stderr_never_stall_the_server() {
    let daemon = Daemon::start_with(
        &["--address", "127.0.0.1:0"],
        &[("MANAGERS_AUTHKEY", "right")],
        Stdio::piped(),
    );
    let address = daemon.address.clone();
    let served = tokio::time::timeout(Duration::from_secs(60), async {
        for _ in 0..600 {
            let refused = managers::Client::builder()
                .handshake_timeout(Duration::from_secs(5))
                .connect(address.as_str(), "wrong")
                .await;
            assert!(
                matches!(refused, Err(managers::Error::Auth(_))),
                "{refused:?}"
            );
        }
        let manager = SyncManager::connect(address.as_str(), "right")
            .await
            .unwrap();
        let lock = manager.lock().await.unwrap();
        assert!(lock.try_acquire().await.unwrap());
    })
    .await;
    assert!(served.is_ok(), "the server stalled");
    assert!(daemon.terminate().success());
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A burst of `clients` connections, each putting a hundred small items on a shared queue
/// and taking a hundred back; `at_peak` runs while all of them are still connected.
async fn burst(address: &str, clients: usize, at_peak: impl FnOnce()) {
    let manager = SyncManager::connect(address, "k").await.unwrap();
    let queue = manager.queue::<String>(0).await.unwrap();
    let all_done = std::sync::Arc::new(tokio::sync::Barrier::new(clients + 1));
    let leave = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (address, queue) = (address.to_owned(), queue.clone());
        let (all_done, leave) = (all_done.clone(), leave.clone());
        tasks.spawn(async move {
            // A connection of its own, as a separate worker process would have.
            let own = SyncManager::connect(address.as_str(), "k").await.unwrap();
            let mine = own.queue::<String>(0).await.unwrap();
            for i in 0..100 {
                let item = format!("{c}:{i}:{}", "x".repeat(1000));
                queue.put(item.clone()).await.unwrap();
                mine.put(item).await.unwrap();
            }
            for _ in 0..100 {
                queue.get().await.unwrap();
            }
            let left = leave.notified();
            all_done.wait().await;
            left.await;
            drop((mine, own));
        });
    }
    all_done.wait().await;
    at_peak();
    leave.notify_waiters();
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// After 200 clients leave, the server gives back most of the memory they made it use
/// (glibc's allocator kept all of it before: a server back to no live data stayed at its
/// peak). Linux only: memory is read from /proc.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_used_by_a_burst_of_clients_goes_back_to_the_system() {
    let daemon = Daemon::start(&["--address", "127.0.0.1:0"], &[("MANAGERS_AUTHKEY", "k")]);
    let pid = daemon.child.id();
    // Warm up: the server's first clients touch its code and thread stacks once for all.
    burst(&daemon.address, 4, || {}).await;
    let before = rss_kib(pid);
    let mut peak = 0;
    burst(&daemon.address, 200, || peak = rss_kib(pid)).await;
    assert!(
        peak > before + 8 * 1024,
        "the burst did not grow the server ({before} KiB -> {peak} KiB)"
    );
    // Memory goes back a second after the crowd left: wait for it (20 s at most).
    let target = before + (peak - before) / 4;
    let mut now = peak;
    for _ in 0..200 {
        now = rss_kib(pid);
        if now <= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        now <= target,
        "RSS {before} KiB before the burst, {peak} KiB at its peak, still {now} KiB after"
    );
    assert!(daemon.terminate().success());
}

#[path = "../../tests/support/python.rs"]
mod python_support;

/// SIGTERM while a CPython client waits in `Queue.get()`: its call is dropped and the
/// server stops at once, instead of waiting out the shutdown timeout for it ("calls still
/// running after the shutdown timeout were abandoned").
#[test]
fn sigterm_does_not_wait_for_a_python_client_blocked_in_a_call() {
    let Some(python) = python_support::first_python() else {
        return;
    };
    let mut daemon = Daemon::start_with(
        &["--address", "127.0.0.1:0", "--shutdown-timeout", "30"],
        &[("MANAGERS_AUTHKEY", "k")],
        Stdio::piped(),
    );
    let (host, port) = daemon.address.rsplit_once(':').unwrap();
    let script = format!(
        "from multiprocessing.managers import SyncManager\n\
         m = SyncManager(address=({host:?}, {port}), authkey=b'k')\n\
         m.connect()\n\
         q = m.Queue()\n\
         print('WAITING', flush=True)\n\
         try:\n    q.get()\nexcept Exception as e:\n    print('ENDED', type(e).__name__, flush=True)\n"
    );
    let mut client = Command::new(python)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "WAITING");
    let mut stderr = daemon.child.stderr.take();
    let status = daemon.terminate();
    assert!(status.success());
    let mut log = String::new();
    std::io::Read::read_to_string(stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(!log.contains("abandoned"), "{log}");
    // The client's connection was closed under its waiting call.
    assert!(lines.next().unwrap().unwrap().starts_with("ENDED"));
    client.wait().unwrap();
}

/// `managerd describe --address ADDRESS EXTRA...` with the key `k`: its stdout, after
/// checking that it succeeded.
fn describe(address: &str, extra: &[&str]) -> String {
    let mut args = vec!["describe", "--address", address];
    args.extend_from_slice(extra);
    run_with_key(&args)
}

/// `managerd describe` against a running `managerd`: Markdown (checked against the golden
/// file `tests/golden/describe.md`; `UPDATE_GOLDEN=1` rewrites it) and JSON.
#[test]
fn describe_prints_the_served_types_as_markdown_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("m.sock");
    let address = socket.to_str().unwrap();
    let daemon = Daemon::start(&["--address", address], &[("MANAGERS_AUTHKEY", "k")]);
    let run = |extra: &[&str]| describe(&daemon.address, extra);
    let markdown = run(&[]).replace(&daemon.address, "ADDRESS");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/describe.md");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &markdown).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).expect("the golden file (UPDATE_GOLDEN=1)");
    assert_eq!(
        markdown, expected,
        "managerd describe changed: review, then UPDATE_GOLDEN=1"
    );
    assert!(markdown.contains("## `Queue`"));
    let json: serde_json::Value = serde_json::from_str(&run(&["--json"])).expect("JSON");
    let typeids: Vec<&str> = json
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["typeid"].as_str().expect("a typeid"))
        .collect();
    assert!(
        typeids.contains(&"dict") && typeids.contains(&"JoinableQueue"),
        "{typeids:?}"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn describe_without_a_server_says_which_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_managerd"))
        .args(["describe", "--address", "127.0.0.1:1"])
        .env("MANAGERS_AUTHKEY", "k")
        .output()
        .expect("managerd describe runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

/// `managerd --tls-cert --tls-key --tls-client-ca`: a mutual-TLS server process; a client
/// with a certificate from the clients' CA uses it, one without is refused with a typed
/// error, a plaintext one too, and `managerd describe --tls-ca` connects through TLS.
#[tokio::test]
async fn serves_over_mutual_tls_from_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::TestCa::new("managerd CA");
    let clients_ca = certs::TestCa::new("clients CA");
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let worker = clients_ca.client("worker");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ca_pem, clients_ca_pem) = (
        file("ca.pem", &ca.pem()),
        file("clients.pem", &clients_ca.pem()),
    );
    let (cert, key) = (
        file("server.pem", &server.cert_pem),
        file("server.key", &server.key_pem),
    );
    let (worker_cert, worker_key) = (
        file("worker.pem", &worker.cert_pem),
        file("worker.key", &worker.key_pem),
    );
    let daemon = Daemon::start(
        &[
            "--address",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &clients_ca_pem,
        ],
        &[("MANAGERS_AUTHKEY", "k")],
    );
    let tls = managers::ClientTls::new().ca_pem_file(&ca_pem);
    let client = managers::Client::builder()
        .tls(tls.clone().identity_pem_files(&worker_cert, &worker_key))
        .connect(daemon.address.as_str(), "k")
        .await
        .expect("a client with a certificate from the clients' CA");
    let manager = SyncManager::from_client(client);
    let queue = manager.queue(0).await.unwrap();
    queue.put(managers::Value::from("over TLS")).await.unwrap();
    assert_eq!(
        queue.get().await.unwrap(),
        managers::Value::from("over TLS")
    );
    let refused = managers::Client::builder()
        .tls(tls)
        .connect(daemon.address.as_str(), "k")
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            managers::Error::Transport(managers::TransportError::Tls(
                managers::TlsError::RefusedByPeer(_)
            ))
        ),
        "{refused:?}"
    );
    let plaintext = managers::Client::connect(daemon.address.as_str(), "k")
        .await
        .unwrap_err();
    assert!(
        matches!(
            plaintext,
            managers::Error::Transport(managers::TransportError::Tls(
                managers::TlsError::RequiredByServer
            ))
        ),
        "{plaintext:?}"
    );
    let json = describe(
        &daemon.address,
        &[
            "--json",
            "--tls-ca",
            &ca_pem,
            "--tls-cert",
            &worker_cert,
            "--tls-key",
            &worker_key,
        ],
    );
    assert!(json.contains("JoinableQueue"));
    drop((queue, manager));
    assert!(daemon.terminate().success());
}

/// `managerd --session-grace`: a client whose connection to the daemon process is cut
/// (through a relay) reconnects and resumes its session: its lock is still held, its
/// queue proxy works and no item is lost; a client of a daemon without sessions loses its
/// lock at once, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_resumes_its_session_with_its_lock() {
    let daemon = Daemon::start(
        &["--address", "127.0.0.1:0", "--session-grace", "60"],
        &[("MANAGERS_AUTHKEY", "k")],
    );
    let relay = relay::Relay::start(&daemon.address).await;
    let client = managers::Client::connect(relay.address.as_str(), "k")
        .await
        .unwrap();
    let manager = SyncManager::from_client(client.clone());
    let other = SyncManager::connect(daemon.address.as_str(), "k")
        .await
        .unwrap();
    let lock = manager.lock().await.unwrap();
    lock.acquire().await.unwrap();
    let queue = manager.queue::<u32>(0).await.unwrap();
    queue.put(7).await.unwrap();
    // Other clients reach the same objects through a hand-off.
    let bytes = postcard::to_stdvec(&lock).unwrap();
    let their_lock: managers::sync::LockProxy = other
        .client()
        .adopting(|| postcard::from_bytes(&bytes))
        .unwrap();

    let mut state = client.connection_state();
    state.mark_unchanged();
    relay.cut();
    tokio::time::timeout(Duration::from_secs(20), state.changed())
        .await
        .expect("the client sees the cut")
        .unwrap();
    // Held across the cut, and still this client's to release.
    assert!(!their_lock.try_acquire().await.unwrap());
    assert_eq!(queue.get().await.unwrap(), 7);
    lock.release().await.unwrap();
    assert!(their_lock.try_acquire().await.unwrap());
    assert_eq!(
        *client.connection_state().borrow(),
        managers::ConnectionState::Connected
    );
    drop((lock, queue, manager, client, their_lock, other));
    assert!(daemon.terminate().success());
}

/// Deadlines against a daemon process: a blocked `get` withdrawn at its deadline takes
/// nothing, and a lock acquire withdrawn at its deadline holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_withdraw_blocked_calls_in_the_daemon() {
    use managers::Proxy;
    let daemon = Daemon::start(&["--address", "127.0.0.1:0"], &[("MANAGERS_AUTHKEY", "k")]);
    let manager = SyncManager::connect(daemon.address.as_str(), "k")
        .await
        .unwrap();
    let queue = manager.queue::<String>(0).await.unwrap();
    let short = Duration::from_millis(50);
    let err = queue.with_timeout(short).get().await.unwrap_err();
    assert!(
        matches!(&err, managers::sync::SyncError::Manager(e) if e.is_deadline_exceeded()),
        "{err:?}"
    );
    queue.put("kept".to_owned()).await.unwrap();
    assert_eq!(queue.qsize().await.unwrap(), 1);
    assert_eq!(queue.get().await.unwrap(), "kept");
    let lock = manager.lock().await.unwrap();
    lock.acquire().await.unwrap();
    let other = SyncManager::connect(daemon.address.as_str(), "k")
        .await
        .unwrap();
    let bytes = postcard::to_stdvec(&lock).unwrap();
    let theirs: managers::sync::LockProxy = other
        .client()
        .adopting(|| postcard::from_bytes(&bytes))
        .unwrap();
    assert!(theirs.with_timeout(short).acquire().await.is_err());
    lock.release().await.unwrap();
    assert!(
        theirs.try_acquire().await.unwrap(),
        "the withdrawn acquire holds nothing"
    );
    drop((queue, lock, theirs, manager, other));
    assert!(daemon.terminate().success());
}

/// A daemon restarted on the same address: a client that had a session with the first
/// process comes back to the second, which is another instance: it reports the restart
/// and its proxies fail with `ServerRestarted`, instead of reaching the new objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_is_reported_not_resumed() {
    let first = Daemon::start(
        &["--address", "127.0.0.1:0", "--session-grace", "60"],
        &[("MANAGERS_AUTHKEY", "k")],
    );
    let address = first.address.clone();
    let client = managers::Client::connect(address.as_str(), "k")
        .await
        .unwrap();
    let manager = SyncManager::from_client(client.clone());
    let list = manager.list::<u32>().await.unwrap();
    list.append(&1).await.unwrap();
    assert!(first.terminate().success());
    let second = Daemon::start(
        &["--address", &address, "--session-grace", "60"],
        &[("MANAGERS_AUTHKEY", "k")],
    );
    let mut state = client.connection_state();
    tokio::time::timeout(
        Duration::from_secs(30),
        state.wait_for(|s| {
            *s == managers::ConnectionState::Lost(managers::LostReason::ServerRestarted)
        }),
    )
    .await
    .expect("the restart is reported")
    .unwrap();
    let err = list.len().await.unwrap_err();
    assert!(
        matches!(
            &err,
            managers::sync::SyncError::Manager(managers::Error::ServerRestarted { .. })
        ),
        "{err:?}"
    );
    drop((list, manager, client));
    assert!(second.terminate().success());
}

/// `managerd stats` and `--metrics-address`: counts exact for a known sequence of calls,
/// as JSON, as a table, and in Prometheus's text format over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_metrics_count_a_known_sequence_of_calls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = Daemon::start(
        &[
            "--address",
            "127.0.0.1:0",
            "--metrics-address",
            "127.0.0.1:0",
        ],
        &[("MANAGERS_AUTHKEY", "k")],
    );
    let metrics = daemon
        .next_line()
        .strip_prefix("metrics on ")
        .expect("the metrics address")
        .to_owned();
    let manager = SyncManager::connect(daemon.address.as_str(), "k")
        .await
        .unwrap();
    let queue = manager.queue::<u32>(0).await.unwrap();
    for item in 0..3 {
        queue.put(item).await.unwrap();
    }
    assert_eq!(queue.get().await.unwrap(), 0);
    assert!(queue.get_nowait().await.is_ok());

    let json: serde_json::Value = serde_json::from_str(&run_with_key(&[
        "stats",
        "--json",
        "--address",
        &daemon.address,
    ]))
    .expect("JSON");
    let calls = |method: &str| {
        json["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["typeid"] == "Queue" && c["method"] == method)
            .map(|c| (c["calls"].as_u64().unwrap(), c["errors"].as_u64().unwrap()))
    };
    assert_eq!(calls("put"), Some((3, 0)));
    assert_eq!(calls("get"), Some((2, 0)));
    assert_eq!(
        json["connections"].as_u64(),
        Some(2),
        "this client and `stats`'s own"
    );
    let table = run_with_key(&["stats", "--address", &daemon.address]);
    assert!(table.contains("| Queue | put | 3 | 0 |"), "{table}");

    let mut http = tokio::net::TcpStream::connect(&metrics).await.unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(
        response.contains(r#"managers_calls_total{typeid="Queue",method="put"} 3"#),
        "{response}"
    );
    assert!(
        response.contains(r#"managers_objects{typeid="Queue"} 1"#),
        "{response}"
    );
    let mut http = tokio::net::TcpStream::connect(&metrics).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    drop((queue, manager));
    assert!(daemon.terminate().success());
}

/// `managerd ARGS...` with the key `k`: its stdout, after checking that it succeeded.
fn run_with_key(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_managerd"))
        .args(args)
        .env("MANAGERS_AUTHKEY", "k")
        .output()
        .expect("managerd runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}
