//! A client that dies holding a lock does not leave it locked.
//!
//! `cargo run --example lock_release_on_crash` starts:
//! - a **server** process serving the SyncManager types (`managers::sync::register`) plus one
//!   shared lock, registered as the instance `shared_lock`;
//! - client **A**, which acquires the shared lock and then hangs, holding it;
//! - client **B**, which finds the lock taken and waits for it (at most 5 s);
//! - and then this **parent** process kills A with SIGKILL: A releases nothing itself, but the
//!   server notices A's closed connection and releases what A held, so B gets the lock.
//!
//! Python's manager does not do this: there, a process killed while holding
//! `manager.Lock()` leaves it locked forever, and B's `acquire(timeout=5)` returns False.
//! ```python
//! lock = manager.Lock()          # shared with A and B
//! lock.acquire(); time.sleep(1e9)  # in A, killed with SIGKILL
//! lock.acquire(timeout=5)        # in B: False in Python, true here
//! ```

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use managers::sync::{Lock, LockProxy};
use managers::{process, Client, Registration, ServerBuilder};

/// How long B waits for the lock before giving up.
const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<()> {
    // The server process: started below by `process::start` (Python's `manager.start()`).
    process::serve_if_child(server).await?;
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => parent().await,
        ["holder", address, key] => holder(address, key).await,
        ["waiter", address, key] => waiter(address, key).await,
        _ => bail!("usage: lock_release_on_crash [holder|waiter ADDRESS KEY]"),
    }
}

/// Start the server and both clients, kill A while B waits, stop the server.
async fn parent() -> Result<()> {
    let key = support::random_key();
    let server = process::start("127.0.0.1:0", key.as_str()).await?;
    let address = server.address().to_string();

    let mut a = support::spawn("A", &["holder", &address, &key])?;
    a.expect("ACQUIRED").await?;
    let mut b = support::spawn("B", &["waiter", &address, &key])?;
    b.expect("WAITING").await?;

    println!("[parent] killing A with SIGKILL while it holds the lock");
    a.kill().await?;
    b.finish().await?;
    support::stop(server).await?;
    println!("[parent] all processes exited; B got the lock A died holding");
    Ok(())
}

/// The server process: the SyncManager types and one shared lock.
fn server() -> ServerBuilder {
    let builder = ServerBuilder::new().register(Registration::instance("shared_lock", Lock::new()));
    managers::sync::register(builder)
}

/// Client A: take the lock and hang, holding it, until killed.
async fn holder(address: &str, key: &str) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let lock: LockProxy = client.create("shared_lock", ()).await?;
    lock.acquire().await?;
    println!(
        "ACQUIRED the shared lock (pid {}); hanging on to it",
        std::process::id()
    );
    std::future::pending::<()>().await;
    unreachable!("A waits to be killed")
}

/// Client B: wait for the lock A holds.
async fn waiter(address: &str, key: &str) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let lock: LockProxy = client.create("shared_lock", ()).await?;
    ensure!(!lock.try_acquire().await?, "the lock should be held by A");
    println!("WAITING: the lock is held; waiting for it (at most {PATIENCE:?})");
    let started = Instant::now();
    let acquired = lock.acquire_timeout(PATIENCE).await?;
    ensure!(acquired, "the lock was not released within {PATIENCE:?}");
    println!(
        "acquired the lock after waiting {} ms",
        started.elapsed().as_millis()
    );
    lock.release().await?;
    println!("released it");
    Ok(())
}
