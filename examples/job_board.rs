//! A job board shared by worker processes: a `#[shared]` type with its own error type, an
//! `async` method that waits without blocking the others, a method that returns another
//! shared object, a SyncManager queue handed between processes, and a custom proxy.
//!
//! `cargo run --example job_board` starts:
//! - a **server** process (this program again, through `managers::process::start`, as
//!   Python's `BaseManager.start()`) serving a `Board` and the SyncManager types;
//! - this **parent** process: it posts jobs on the board (one of them refused, with the
//!   board's own `BoardError`, matched as a type), puts their ids on a SyncManager queue,
//!   hands the queue to two **worker** processes, and waits for each job with
//!   `wait_done`, an `async fn` that waits on the server;
//! - two **workers**: each takes ids from the queue, takes the job from the board, reports
//!   its result, and writes what it did in a `Log` of its own that the board creates for it
//!   (`method_to_typeid`).
//!
//! `Board` keeps its state behind a `Mutex` and takes `&self` everywhere, so `wait_done`
//! holds no lock while it waits and the workers' `take` and `report` run meanwhile
//! (`#[shared]` refuses an `async fn` that would hold the object's lock). Its errors travel
//! typed (`errors = typed`): the parent matches on `CallError::Method(BoardError::..)`.
//! The parent's proxy is `BoardClient`, a custom proxy wrapping the generated `BoardCalls`
//! (through `Deref`, every method stays typed) with one convenience method of its own.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use managers::sync::{self, QueueProxy, SyncManager};
use managers::{manager, process, shared, CallError, Registration, ServerBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// How many worker processes.
const WORKERS: usize = 2;

/// The board's own errors: they reach clients as this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum BoardError {
    /// A job needs a name.
    #[error("a job needs a name")]
    EmptyName,
    /// No job has this id.
    #[error("no job {0}")]
    NoSuchJob(u64),
    /// The job was taken by another worker.
    #[error("job {0} is taken")]
    Taken(u64),
}

/// One job on the board.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// What to do.
    pub name: String,
    /// The number to square.
    pub input: u64,
    /// Who took it.
    pub worker: Option<String>,
    /// The result, once reported.
    pub result: Option<u64>,
}

/// The shared board: interior mutability, every method `&self`.
#[derive(Debug, Default)]
pub struct Board {
    jobs: Mutex<HashMap<u64, Job>>,
    next: Mutex<u64>,
    reported: Notify,
}

#[shared(errors = typed, proxy = BoardCalls, custom_proxy = BoardClient, method_to_typeid = { worker_log: Log })]
impl Board {
    /// Post a job; its id.
    pub fn submit(&self, name: String, input: u64) -> Result<u64, BoardError> {
        if name.trim().is_empty() {
            return Err(BoardError::EmptyName);
        }
        let mut next = self.next.lock().unwrap();
        *next += 1;
        let job = Job {
            name,
            input,
            worker: None,
            result: None,
        };
        self.jobs.lock().unwrap().insert(*next, job);
        Ok(*next)
    }

    /// Take job `id` for `worker`.
    pub fn take(&self, id: u64, worker: String) -> Result<Job, BoardError> {
        let mut jobs = self.jobs.lock().unwrap();
        let job = jobs.get_mut(&id).ok_or(BoardError::NoSuchJob(id))?;
        if job.worker.is_some() {
            return Err(BoardError::Taken(id));
        }
        job.worker = Some(worker);
        Ok(job.clone())
    }

    /// Report the result of job `id`.
    pub fn report(&self, id: u64, result: u64) -> Result<(), BoardError> {
        let mut jobs = self.jobs.lock().unwrap();
        jobs.get_mut(&id).ok_or(BoardError::NoSuchJob(id))?.result = Some(result);
        self.reported.notify_waiters();
        Ok(())
    }

    /// Wait until job `id` has a result (at most `timeout`); the job, done or not. Holds no
    /// lock while it waits.
    pub async fn wait_done(&self, id: u64, timeout: Duration) -> Result<Job, BoardError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reported = self.reported.notified();
            let job = self.jobs.lock().unwrap().get(&id).cloned();
            match job {
                None => return Err(BoardError::NoSuchJob(id)),
                Some(job) if job.result.is_some() => return Ok(job),
                Some(job) => {
                    if tokio::time::timeout_at(deadline, reported).await.is_err() {
                        return Ok(job);
                    }
                }
            }
        }
    }

    /// A new log for `worker`, shared as its own object.
    pub fn worker_log(&self, worker: String) -> Result<String, BoardError> {
        Ok(format!("log of {worker}"))
    }
}

/// The proxy clients get for a `Board`: the generated `BoardCalls` (every method, typed,
/// through `Deref`) and one convenience method.
#[derive(Clone, Debug, managers::Proxy)]
#[proxy(target = Board, deref)]
pub struct BoardClient {
    #[proxy(inner)]
    calls: BoardCalls,
}

impl BoardClient {
    /// Post every job; their ids in order, or the first refusal.
    pub async fn submit_all(
        &self,
        jobs: &[(&str, u64)],
    ) -> Result<Vec<u64>, CallError<BoardError>> {
        let mut ids = Vec::with_capacity(jobs.len());
        for (name, input) in jobs {
            ids.push(self.submit((*name).to_owned(), *input).await?);
        }
        Ok(ids)
    }
}

/// A worker's log: lines of text.
#[derive(Debug)]
pub struct Log {
    title: String,
    lines: Mutex<Vec<String>>,
}

impl From<String> for Log {
    fn from(title: String) -> Self {
        Log {
            title,
            lines: Mutex::default(),
        }
    }
}

#[shared]
impl Log {
    /// Add a line.
    pub fn write(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }

    /// The title and every line.
    pub fn read(&self) -> (String, Vec<String>) {
        (self.title.clone(), self.lines.lock().unwrap().clone())
    }
}

manager! {
    /// A connection to the board's server.
    pub struct BoardManager {
        /// The one shared board.
        fn board() -> BoardClient;
    }
}

/// The server: the board and the SyncManager types, on one server.
fn server() -> ServerBuilder {
    sync::register(ServerBuilder::new()).register(Registration::instance("board", Board::default()))
}

#[tokio::main]
async fn main() -> Result<()> {
    process::serve_if_child(server).await?;
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => parent().await,
        ["worker", name, address, key, queue] => worker(name, address, key, queue).await,
        _ => bail!("usage: job_board [worker NAME ADDRESS KEY QUEUE]"),
    }
}

/// Post the jobs, start the workers, wait for every job.
async fn parent() -> Result<()> {
    let key = support::random_key();
    let server = process::start("127.0.0.1:0", key.as_str()).await?;
    let address = server.address().to_string();
    // One connection for the board and the SyncManager types.
    let manager = BoardManager::connect(address.as_str(), key.as_str()).await?;
    let sync = SyncManager::from_client(manager.client().clone());
    let board = manager.board().await?;

    // The board's own error, matched as a type.
    match board.submit("  ".into(), 1).await {
        Err(CallError::Method(BoardError::EmptyName)) => {
            println!("[parent] refused a job without a name: BoardError::EmptyName")
        }
        other => bail!("expected BoardError::EmptyName, got {other:?}"),
    }
    let ids = board
        .submit_all(&[("square", 3), ("square", 4), ("square", 5), ("square", 6)])
        .await?;
    println!("[parent] posted jobs {ids:?}");

    let queue = sync.queue::<Option<u64>>(0).await?;
    let mut workers = Vec::new();
    for i in 1..=WORKERS {
        let handed = support::hex(&postcard::to_stdvec(&queue)?);
        let name = format!("worker{i}");
        workers.push(support::spawn(
            &name,
            &["worker", &name, &address, &key, &handed],
        )?);
    }
    for id in &ids {
        queue.put(Some(*id)).await?;
    }
    let mut total = 0;
    for id in &ids {
        // An async method waiting on the server: the workers' calls go on meanwhile.
        let job = board.wait_done(*id, support::TIMEOUT).await?;
        let result = job
            .result
            .with_context(|| format!("job {id} not done in time"))?;
        println!(
            "[parent] job {id}: {}({}) = {result} by {}",
            job.name,
            job.input,
            job.worker.as_deref().unwrap_or("?")
        );
        total += result;
    }
    ensure!(total == 9 + 16 + 25 + 36, "wrong total {total}");
    println!("[parent] total = {total}");
    match board.take(ids[0], "late".into()).await {
        Err(CallError::Method(BoardError::Taken(id))) => {
            println!("[parent] job {id} is taken: BoardError::Taken")
        }
        other => bail!("expected BoardError::Taken, got {other:?}"),
    }
    for _ in 0..WORKERS {
        queue.put(None).await?;
    }
    for worker in workers {
        worker.finish().await?;
    }
    drop((queue, board, sync, manager));
    let status = server.shutdown().await?;
    println!("[parent] the server process exited: {status}");
    Ok(())
}

/// A worker process: take jobs until `None`, report each, log it.
async fn worker(name: &str, address: &str, key: &str, queue: &str) -> Result<()> {
    let manager = BoardManager::connect(address, key).await?;
    let queue: QueueProxy<Option<u64>> = manager
        .client()
        .adopting(|| postcard::from_bytes(&support::unhex(queue)?).map_err(anyhow::Error::from))?;
    let board = manager.board().await?;
    let log = board.worker_log(name.to_owned()).await?;
    while let Some(id) = queue.get().await? {
        let job = board.take(id, name.to_owned()).await?;
        let result = job.input * job.input;
        board.report(id, result).await?;
        log.write(format!("job {id}: {}^2 = {result}", job.input))
            .await?;
    }
    let (title, lines) = log.read().await?;
    println!("{title}: {} job(s)", lines.len());
    Ok(())
}
