//! A program that starts its own manager server in a child process, as Python's
//! `multiprocessing.Manager()` / `BaseManager.start()` does, with `managers::process`.
//!
//! `cargo run --example spawned_server`: this program runs again as the server (the
//! `serve_if_child` call at the top of `main` makes that copy serve and exit), connects to
//! it, shares a dict and a queue with a thread of its own through two connections, and
//! stops the server.
//!
//! Python equivalent:
//! ```python
//! with Manager() as manager:
//!     d, q = manager.dict(), manager.Queue()
//!     ...
//! ```

use anyhow::Result;
use managers::sync::SyncManager;
use managers::{process, ServerBuilder};

/// The server this program runs in its child process.
fn server() -> ServerBuilder {
    managers::sync::register(ServerBuilder::new())
}

#[tokio::main]
async fn main() -> Result<()> {
    // In the child started by `spawn`, this serves and exits; here it returns at once.
    process::serve_if_child(server).await?;

    let server = process::spawn().await?;
    println!(
        "[parent] server process {:?} listens on {}",
        server.id(),
        server.address()
    );
    let manager = SyncManager::connect(server.address(), server.authkey().clone()).await?;
    let results = manager.dict::<String, u64>().await?;
    let jobs = manager.queue::<u64>(0).await?;

    // A second connection (another worker would be another process; any client with the
    // address and key can connect).
    let worker = SyncManager::connect(server.address(), server.authkey().clone()).await?;
    let (their_jobs, their_results) = (jobs.clone(), results.clone());
    let work = tokio::spawn(async move {
        let _worker = worker;
        for _ in 0..3 {
            let n = their_jobs.get().await?;
            their_results.set(&format!("{n}^2"), &(n * n)).await?;
        }
        Ok::<_, managers::sync::SyncError>(())
    });
    for n in [2, 3, 4] {
        jobs.put(n).await?;
    }
    work.await??;
    let mut items = results.items().await?;
    items.sort();
    println!("[parent] results: {items:?}");
    drop((jobs, results, manager));
    let status = server.shutdown().await?;
    println!("[parent] the server process exited: {status}");
    Ok(())
}
