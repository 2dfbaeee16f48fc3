//! Stock CPython 3.11, 3.12 and 3.13 clients (`multiprocessing.managers.SyncManager`,
//! unchanged) against a `managers` server, over TCP and Unix sockets: the scenarios of
//! `tests/python/driver.py`, each interpreter a real process (and its children).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use crate::python_support::{all_pythons, find_python, first_python};

/// A SyncManager server that serves Python clients too.
pub(crate) async fn start_python_server(transport: Transport) -> Running {
    let (builder, dir) = builder(transport);
    let builder = managers::sync::register(builder)
        .authkey("test-key")
        .python_clients(true)
        .shutdown_timeout(Duration::from_secs(2));
    Running {
        manager: builder.start().await.expect("server starts"),
        _dir: dir,
    }
}

/// The address as the driver takes it: HOST:PORT or a socket path.
pub(crate) fn driver_address(address: &managers::Address) -> String {
    match address {
        managers::Address::Unix(path) => path.display().to_string(),
        other => other.to_string(),
    }
}

/// Run the driver's `scenarios` (all if empty) with `python`; its output, or a panic with
/// its output and errors.
fn run_driver(python: &OsString, address: &str, scenarios: &[&str]) -> String {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/driver.py");
    let mut command = Command::new(python);
    command
        .arg(&driver)
        .args([address, "test-key"])
        .args(scenarios)
        .stdin(Stdio::null());
    let out = command.output().expect("the interpreter runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{python:?} against {address}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every scenario, from every CPython version found, over TCP and a Unix socket; the
/// objects the clients made are all gone at the end (the driver checks
/// `_number_of_objects()` against its baseline, and so does this test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_cpython_clients_use_every_supported_typeid() {
    let pythons = all_pythons();
    if pythons.is_empty() {
        return;
    }
    for transport in TRANSPORTS {
        let server = start_python_server(transport).await;
        let address = driver_address(server.address());
        for python in &pythons {
            let python = python.clone();
            let address = address.clone();
            let out = tokio::task::spawn_blocking(move || run_driver(&python, &address, &[]))
                .await
                .unwrap();
            assert!(out.contains("ok processes"), "{out}");
        }
        assert_eq!(server.number_of_objects().await.unwrap(), 0);
    }
}

/// A Python client with a wrong key is refused like any other client, and the server goes
/// on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_with_the_wrong_key_is_refused() {
    let Some(python) = find_python("python3.11") else {
        return;
    };
    let server = start_python_server(Transport::Tcp).await;
    let address = driver_address(server.address());
    let script = format!(
        "import multiprocessing, sys\n\
         from multiprocessing.managers import SyncManager\n\
         host, port = {address:?}.rsplit(':', 1)\n\
         m = SyncManager(address=(host, int(port)), authkey=b'wrong')\n\
         try:\n    m.connect()\nexcept multiprocessing.AuthenticationError:\n    print('refused')\n"
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).args(["-c", &script]).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused");
    let m = sync_client(&server).await;
    assert!(m.lock().await.unwrap().try_acquire().await.unwrap());
}

/// A server that does not serve Python clients refuses CPython 3.11's MD5 handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_are_refused_unless_enabled() {
    let Some(python) = find_python("python3.11") else {
        return;
    };
    let server = start_sync(Transport::Tcp).await;
    let address = driver_address(server.address());
    let script = format!(
        "import multiprocessing\n\
         from multiprocessing.managers import SyncManager\n\
         host, port = {address:?}.rsplit(':', 1)\n\
         m = SyncManager(address=(host, int(port)), authkey=b'test-key')\n\
         try:\n    m.connect()\nexcept (multiprocessing.AuthenticationError, EOFError, ConnectionError) as e:\n    print('refused', type(e).__name__)\n"
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).args(["-c", &script]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("refused"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `shutdown` from a Python client is refused by default; a server configured to allow it
/// stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_shutdown_is_refused_unless_allowed() {
    let Some(python) = first_python() else {
        return;
    };
    let script = |address: &str| {
        format!(
            "from multiprocessing.managers import SyncManager, dispatch, RemoteError\n\
             from multiprocessing.connection import Client\n\
             host, port = {address:?}.rsplit(':', 1)\n\
             c = Client((host, int(port)), authkey=b'test-key')\n\
             try:\n    dispatch(c, None, 'shutdown')\n    print('stopped')\n\
             except RemoteError:\n    print('refused')\n"
        )
    };
    let run = |python: OsString, script: String| {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(python).args(["-c", &script]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
    };
    let refused = start_python_server(Transport::Tcp).await;
    let address = driver_address(refused.address());
    assert_eq!(
        run(python.clone(), script(&address)).await.unwrap(),
        "refused"
    );
    assert!(sync_client(&refused).await.lock().await.is_ok());

    let (builder, _dir) = builder(Transport::Tcp);
    let allowed = managers::sync::register(builder)
        .authkey("test-key")
        .python_clients(true)
        .client_shutdown(true)
        .start()
        .await
        .unwrap();
    let address = driver_address(allowed.address());
    assert_eq!(run(python, script(&address)).await.unwrap(), "stopped");
    until("the server to stop", async || {
        managers::Client::connect(allowed.address(), "test-key")
            .await
            .is_err()
    })
    .await;
}
