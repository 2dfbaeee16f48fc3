//! CPython's own manager tests (Lib/test/_test_multiprocessing.py: the WithManager*
//! classes and TestSyncManagerTypes) against a `managers` server instead of the
//! `multiprocessing.Manager()` each test starts: `tests/python/cpython_suite.py`, run by
//! every CPython 3.11-3.13 found, over TCP (and one of them over a Unix socket too).
//!
//! The tests that need Python code executed in the server (Pool, `Barrier(action=...)`) or
//! that start a manager of their own are excluded by the script, each with its reason.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::python::{driver_address as script_address, start_python_server};
use crate::python_support::all_pythons;

/// Run the suite with `python` against `address`: its summary (all of its output is
/// printed, shown with `--nocapture`), `Err` if a test failed.
fn run_suite(python: &OsString, address: &str) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cpython_suite.py");
    let out = Command::new(python)
        .arg(&script)
        .args([address, "test-key"])
        .stdin(Stdio::null())
        .output()
        .expect("the interpreter runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "===== {python:?} against {address}: {}\n{stdout}{stderr}",
        out.status
    );
    let summary = stdout.find("SUMMARY").map_or_else(
        || format!("(no summary; stderr:)\n{stderr}"),
        |at| stdout[at..].to_owned(),
    );
    if out.status.success() && stdout.contains("ALL OK") {
        Ok(summary)
    } else {
        Err(format!(
            "{python:?} against {address}: {}\n{summary}",
            out.status
        ))
    }
}

/// CPython's manager tests pass from every CPython found over TCP, and from the first of
/// them over a Unix socket; the server holds no object afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpython_manager_tests_pass() {
    let pythons = all_pythons();
    if pythons.is_empty() {
        return;
    }
    let mut failures = Vec::new();
    for transport in TRANSPORTS {
        let server = start_python_server(transport).await;
        let address = script_address(server.address());
        let these = match transport {
            Transport::Tcp => &pythons[..],
            Transport::Unix => &pythons[..1],
        };
        for python in these {
            let python = python.clone();
            let address = address.clone();
            let outcome = tokio::task::spawn_blocking(move || run_suite(&python, &address))
                .await
                .unwrap();
            if let Err(failure) = outcome {
                failures.push(failure);
            }
        }
        let left = server.number_of_objects().await.unwrap();
        if left != 0 {
            failures.push(format!("{address}: {left} object(s) left on the server"));
        }
    }
    assert!(
        failures.is_empty(),
        "CPython's manager tests failed:\n\n{}",
        failures.join("\n\n")
    );
}
