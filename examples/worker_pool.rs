//! A pool of worker processes fed by a `JoinableQueue`, writing results into a shared dict
//! under a shared lock: the SyncManager's bread and butter.
//!
//! `cargo run --example worker_pool` starts:
//! - a **server** process serving the SyncManager types (`managers::sync::register`), as
//!   Python's `multiprocessing.Manager()` starts one;
//! - this **parent** process, the *producer*: it creates a joinable queue of jobs, a dict
//!   of results and a lock through [`SyncManager`], hands their proxies to three **worker**
//!   processes (serialised onto their command lines, as Python pickles proxies into
//!   `Process(args=...)`), fills the queue, `join`s it and prints the results;
//! - three **workers** that take jobs until told to stop. Every result goes into one list
//!   stored under the key `"done"`; appending is a read-modify-write of that stored copy,
//!   so a worker holds the lock while it does it (without the lock, two workers could read
//!   the same list and one append would be lost).
//!
//! Python equivalent:
//! ```python
//! def worker(name, jobs, results, lock):
//!     while (job := jobs.get()) is not None:
//!         with lock:
//!             results['done'] = results.get('done', []) + [(job, job * job, name)]
//!         jobs.task_done()
//!     jobs.task_done()
//!
//! with Manager() as manager:
//!     jobs, results, lock = manager.JoinableQueue(), manager.dict(), manager.Lock()
//!     workers = [Process(target=worker, args=(f'w{i}', jobs, results, lock)) for i in range(3)]
//!     for w in workers: w.start()
//!     for n in range(1, 10): jobs.put(n)
//!     jobs.join()
//!     print(sorted(results['done']))
//!     for w in workers: jobs.put(None)
//!     jobs.join()
//! ```

#[path = "support/mod.rs"]
mod support;

use anyhow::{bail, ensure, Context, Result};
use managers::sync::{self, DictProxy, LockProxy, QueueProxy, SyncManager};
use managers::{process, Client, ServerBuilder};
use serde::{Deserialize, Serialize};

/// How many worker processes.
const WORKERS: usize = 3;
/// How many jobs.
const JOBS: u64 = 9;
/// The results key every worker appends to.
const DONE: &str = "done";

/// What goes through the queue.
#[derive(Debug, Serialize, Deserialize)]
enum Job {
    /// Square `n`.
    Square { n: u64 },
    /// No more jobs: the worker exits.
    Stop,
}

/// What a worker reports for one job.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    n: u64,
    square: u64,
    worker: String,
}

/// The shared objects a worker needs: serialised together onto its command line.
type Shared = (QueueProxy<Job>, DictProxy<String, Vec<Report>>, LockProxy);

#[tokio::main]
async fn main() -> Result<()> {
    // The server process: started below by `process::start` (Python's `manager.start()`).
    process::serve_if_child(server).await?;
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => producer().await,
        ["worker", name, address, key, shared] => worker(name, address, key, shared).await,
        _ => bail!("usage: worker_pool [worker NAME ADDRESS KEY SHARED]"),
    }
}

/// The server process: the standard SyncManager types, until the parent closes our stdin.
fn server() -> ServerBuilder {
    sync::register(ServerBuilder::new())
}

/// The parent: start the server and the workers, produce, join, print.
async fn producer() -> Result<()> {
    let key = support::random_key();
    let server = process::start("127.0.0.1:0", key.as_str()).await?;
    let address = server.address().to_string();
    let manager = SyncManager::connect(address.as_str(), key.as_str()).await?;
    let jobs = manager.joinable_queue::<Job>(0).await?;
    let results = manager.dict::<String, Vec<Report>>().await?;
    let lock = manager.lock().await?;

    let mut workers = Vec::new();
    for i in 1..=WORKERS {
        // One serialisation per worker: each is one reference, adopted by that worker.
        let shared = support::hex(&postcard::to_stdvec(&(&jobs, &results, &lock))?);
        let name = format!("worker {i}");
        workers.push(support::spawn(
            &name,
            &["worker", &name, &address, &key, &shared],
        )?);
    }

    for n in 1..=JOBS {
        jobs.put(Job::Square { n }).await?;
    }
    println!("[producer] queued {JOBS} jobs; joining the queue");
    bounded(jobs.join()).await?;
    let mut done = results.get(&DONE.to_owned()).await?.unwrap_or_default();
    done.sort_by_key(|r| r.n);
    println!("[producer] every job is done; the results:");
    for r in &done {
        println!("[producer]   {}^2 = {} ({})", r.n, r.square, r.worker);
    }
    ensure!(
        done.len() == JOBS as usize,
        "{} results for {JOBS} jobs: an append was lost",
        done.len()
    );
    let total: u64 = done.iter().map(|r| r.square).sum();
    println!("[producer] sum of squares = {total}");

    for _ in 0..WORKERS {
        jobs.put(Job::Stop).await?;
    }
    bounded(jobs.join()).await?;
    for worker in workers {
        worker.finish().await?;
    }
    drop((jobs, results, lock, manager));
    support::stop(server).await?;
    println!("[producer] all processes exited 0");
    Ok(())
}

/// A worker process: take jobs until `Stop`, append each result under the lock.
async fn worker(name: &str, address: &str, key: &str, shared: &str) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let bytes = support::unhex(shared)?;
    let (jobs, results, lock): Shared = client.adopting(|| postcard::from_bytes(&bytes))?;
    let done_key = DONE.to_owned();
    let mut count = 0;
    while let Job::Square { n } = jobs.get().await? {
        let report = Report {
            n,
            square: n * n,
            worker: name.to_owned(),
        };
        {
            // `results[DONE]` is a copy: change it and store it back, holding the lock.
            let guard = lock.lock().await?;
            let mut done = results.get(&done_key).await?.unwrap_or_default();
            done.push(report);
            results.set(&done_key, &done).await?;
            guard.unlock().await?;
        }
        jobs.task_done().await?;
        count += 1;
    }
    jobs.task_done().await?; // the Stop
    println!("did {count} job(s)");
    Ok(())
}

/// Wait for `future`, at most [`support::TIMEOUT`].
async fn bounded<T>(
    future: impl std::future::Future<Output = Result<T, sync::SyncError>>,
) -> Result<T> {
    Ok(tokio::time::timeout(support::TIMEOUT, future)
        .await
        .context("the workers did not finish in time")??)
}
