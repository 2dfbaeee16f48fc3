//! A mixed fleet: a Rust manager server, two **unchanged CPython** worker processes and one
//! Rust worker, sharing a `JoinableQueue` of jobs and a dict of results.
//!
//! `cargo run --example python_fleet` starts:
//! - a **server** process: the SyncManager types with Python clients allowed (what
//!   `managerd` serves), plus two objects every client reaches by name, `jobs` and
//!   `results`;
//! - two **Python workers**, plain `multiprocessing.managers` code (`SyncManager.register`,
//!   `connect()`, `jobs.get()`, `results[n] = ...`, `jobs.task_done()`), run by CPython 3.11
//!   or later if one is installed (without one, the Rust worker does every job);
//! - one **Rust worker** on the same queue and dict;
//! - this **parent**, the producer: it queues the jobs, `join`s the queue, and checks that
//!   every result came back, whoever computed it.
//!
//! The Python worker, as it would run against CPython's own manager:
//! ```python
//! from multiprocessing.managers import SyncManager, DictProxy
//! class Fleet(SyncManager): pass
//! Fleet.register('jobs')
//! Fleet.register('results', proxytype=DictProxy)
//! m = Fleet(address=(host, port), authkey=key)
//! m.connect()
//! jobs, results = m.jobs(), m.results()
//! while (n := jobs.get()) is not None:
//!     results[n] = (n * n, name)
//!     jobs.task_done()
//! jobs.task_done()
//! ```

#[path = "support/mod.rs"]
mod support;

#[path = "../tests/support/python.rs"]
mod python_support;

use anyhow::{bail, ensure, Result};
use managers::sync::{self, python, Dict, DictProxy, Queue, QueueProxy};
use managers::{process, Client, Registration, ServerBuilder};

/// How many jobs.
const JOBS: i64 = 30;

/// The Python worker (`-c`): arguments host, port, key, name.
const PYTHON_WORKER: &str = r#"
import sys, time
from multiprocessing.managers import SyncManager, DictProxy
host, port, key, name = sys.argv[1:5]
class Fleet(SyncManager): pass
Fleet.register('jobs')
Fleet.register('results', proxytype=DictProxy)
m = Fleet(address=(host, int(port)), authkey=key.encode())
m.connect()
jobs, results = m.jobs(), m.results()
print("READY", flush=True)
done = 0
while (n := jobs.get()) is not None:
    time.sleep(0.005)  # a job takes a moment: the three workers share them
    results[n] = (n * n, name)
    jobs.task_done()
    done += 1
jobs.task_done()
print(f"did {done} job(s)", flush=True)
"#;

#[tokio::main]
async fn main() -> Result<()> {
    // The server process: started below by `process::start` (Python's `manager.start()`).
    process::serve_if_child(server).await?;
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => producer().await,
        ["worker", address, key] => rust_worker(address, key).await,
        ["python", interpreter, address, key, name] => {
            python_worker(interpreter, address, key, name)
        }
        _ => bail!("usage: python_fleet [worker ADDRESS KEY | python EXE ADDRESS KEY NAME]"),
    }
}

/// The server: managerd's configuration, plus the fleet's two shared objects.
fn server() -> ServerBuilder {
    sync::register(ServerBuilder::new())
        .python_clients(true)
        .register(Registration::instance("jobs", Queue::new(0)).python(python::QUEUE))
        .register(Registration::instance("results", Dict::new(Vec::new())).python(python::DICT))
}

/// The parent: start everyone, queue the jobs, join, check the results, stop everyone.
async fn producer() -> Result<()> {
    let key = support::random_key();
    let server = process::start("127.0.0.1:0", key.as_str()).await?;
    let address = server.address().to_string();
    let client = Client::connect(address.as_str(), key.as_str()).await?;
    let jobs: QueueProxy<Option<i64>> = client.create("jobs", ()).await?;
    let results: DictProxy<i64, (i64, String)> = client.create("results", ()).await?;

    let mut workers = vec![support::spawn("rust worker", &["worker", &address, &key])?];
    let interpreter = python_support::first_python();
    match &interpreter {
        Some(exe) => {
            let exe = exe.to_string_lossy().into_owned();
            for name in ["python-1", "python-2"] {
                let role = format!("python worker {}", &name[7..]);
                workers.push(support::spawn(
                    &role,
                    &["python", &exe, &address, &key, name],
                )?);
            }
            println!("[producer] two Python workers ({exe}) and one Rust worker");
        }
        None => println!("[producer] no CPython 3.11+ found: the Rust worker does every job"),
    }
    // Every worker is connected before the first job goes out.
    for worker in &mut workers {
        worker.expect("READY").await?;
    }

    for n in 1..=JOBS {
        jobs.put(Some(n)).await?;
    }
    println!("[producer] queued {JOBS} jobs; joining the queue");
    tokio::time::timeout(support::TIMEOUT, jobs.join()).await??;
    let mut by_python = 0;
    for n in 1..=JOBS {
        let Some((square, by)) = results.get(&n).await? else {
            bail!("no result for job {n}");
        };
        ensure!(square == n * n, "job {n}: {square} from {by}");
        by_python += usize::from(by.starts_with("python"));
    }
    println!(
        "[producer] all {JOBS} results are right: {by_python} computed by Python, {} by Rust",
        JOBS as usize - by_python
    );

    for _ in 0..workers.len() {
        jobs.put(None).await?;
    }
    tokio::time::timeout(support::TIMEOUT, jobs.join()).await??;
    for worker in workers {
        worker.finish().await?;
    }
    drop((jobs, results, client));
    support::stop(server).await?;
    println!("[producer] all processes exited 0");
    Ok(())
}

/// The Rust worker: the same loop as the Python one.
async fn rust_worker(address: &str, key: &str) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let jobs: QueueProxy<Option<i64>> = client.create("jobs", ()).await?;
    let results: DictProxy<i64, (i64, String)> = client.create("results", ()).await?;
    println!("READY");
    let mut done = 0;
    while let Some(n) = jobs.get().await? {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        results.set(&n, &(n * n, "rust".to_owned())).await?;
        jobs.task_done().await?;
        done += 1;
    }
    jobs.task_done().await?;
    println!("did {done} job(s)");
    Ok(())
}

/// A Python worker: run the interpreter on [`PYTHON_WORKER`]; its exit status is ours.
fn python_worker(interpreter: &str, address: &str, key: &str, name: &str) -> Result<()> {
    let Some((host, port)) = address.rsplit_once(':') else {
        bail!("the fleet's server listens on TCP: {address}");
    };
    let status = std::process::Command::new(interpreter)
        .args(["-c", PYTHON_WORKER, host, port, key, name])
        .status()?;
    ensure!(status.success(), "the Python worker failed: {status}");
    Ok(())
}
