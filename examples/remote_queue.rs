//! The Python docs' remote manager: a server shares one queue; one process puts into it,
//! another gets from it.
//!
//! The server registers a single [`Queue`] instance under the typeid `get_queue` (Python's
//! `callable=lambda: queue`), so every client that asks for `get_queue` reaches the same
//! queue. Each subcommand is a separate program; run them from several shells or machines:
//!
//! ```text
//! cargo run --example remote_queue -- serve --address 127.0.0.1:50000 --authkey abracadabra
//! cargo run --example remote_queue -- get   --address 127.0.0.1:50000 --authkey abracadabra
//! cargo run --example remote_queue -- put   --address 127.0.0.1:50000 --authkey abracadabra hello
//! cargo run --example remote_queue -- get   --address 127.0.0.1:50000 --authkey abracadabra --timeout-ms 200
//! ```
//!
//! `get` waits on the server until an item arrives (the wait blocks no other client); with
//! `--timeout-ms` the server gives up after that long and the client gets
//! [`SyncError::Empty`].
//!
//! With no arguments it runs the whole scenario: a server; a `get` process that waits; a
//! `put` process that puts `hello`, which the waiting `get` receives; a `get` with a
//! timeout on the now empty queue, refused with `Empty`; and SIGTERM stops the server.
//!
//! Python equivalent (the docs' "Using a remote manager"):
//! ```python
//! from multiprocessing.managers import BaseManager
//! from queue import Queue
//! queue = Queue()
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_queue', callable=lambda: queue)
//! m = QueueManager(address=('', 50000), authkey=b'abracadabra')
//! m.get_server().serve_forever()
//!
//! # another process
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_queue')
//! m = QueueManager(address=('foo.bar.org', 50000), authkey=b'abracadabra')
//! m.connect()
//! queue = m.get_queue()
//! queue.put('hello')
//!
//! # and another
//! ...
//! queue = m.get_queue()
//! queue.get()  # 'hello'
//! ```

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use clap::{Args, Parser, Subcommand};
use managers::sync::{Queue, QueueProxy, SyncError};
use managers::{manager, Registration, ServerBuilder};

// The client side: Python's `QueueManager.register('get_queue')` and `m.get_queue()`.
manager! {
    /// A connection to the queue's server.
    pub struct QueueManager {
        /// The one shared queue (of strings).
        fn get_queue() -> QueueProxy<String>;
    }
}

/// A queue shared by a remote manager.
#[derive(Parser)]
struct Cli {
    /// Without a subcommand: run the whole scenario in child processes.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until Ctrl-C or SIGTERM; prints `ADDRESS <addr>` once bound.
    Serve(Conn),
    /// Put TEXT into the shared queue.
    Put {
        #[command(flatten)]
        conn: Conn,
        text: String,
    },
    /// Take the oldest item, waiting for one (at most `--timeout-ms`, if given).
    Get {
        #[command(flatten)]
        conn: Conn,
        /// Give up after this many milliseconds (enforced by the server).
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
}

#[derive(Args)]
struct Conn {
    /// `host:port` (port 0 to serve on a free port) or `unix:PATH`.
    #[arg(long)]
    address: String,
    /// The shared authentication key.
    #[arg(long)]
    authkey: String,
}

impl Conn {
    async fn queue(&self) -> Result<QueueProxy<String>> {
        let manager = QueueManager::connect(self.address.as_str(), self.authkey.as_str()).await?;
        Ok(manager.get_queue().await?)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    support::init_tracing();
    let Some(command) = Cli::parse().command else {
        return scenario().await;
    };
    match command {
        Command::Serve(c) => {
            let server = ServerBuilder::new()
                .address(c.address.as_str())
                .authkey(c.authkey)
                .register(Registration::instance("get_queue", Queue::new(0)))
                .bind()
                .await?;
            support::serve_until_signal(server).await?;
        }
        Command::Put { conn, text } => {
            let queue = conn.queue().await?;
            queue.put(text.clone()).await?;
            println!("put {text:?}");
        }
        Command::Get { conn, timeout_ms } => {
            let queue = conn.queue().await?;
            let timeout = timeout_ms.map(Duration::from_millis);
            println!("waiting for an item (timeout: {timeout:?})");
            match queue.get_with(true, timeout).await {
                Ok(text) => println!("got {text:?}"),
                Err(SyncError::Empty) => println!("nothing to get: {}", SyncError::Empty),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The whole story, each step a child process of this same binary.
async fn scenario() -> Result<()> {
    let key = support::random_key();
    let mut server = support::spawn(
        "serve",
        &["serve", "--address", "127.0.0.1:0", "--authkey", &key],
    )?;
    let address = server.expect("ADDRESS ").await?;
    println!("[parent] server listens on {address}");
    let conn = ["--address", address.as_str(), "--authkey", key.as_str()];
    let run = |role: &str, command: &str, extra: &[&str]| {
        support::spawn(role, &[&[command], &conn[..], extra].concat())
    };

    // The getter starts first and waits on the server; the putter's item wakes it.
    let mut get = run("get", "get", &[])?;
    get.expect("waiting for an item").await?;
    let put = run("put", "put", &["hello"])?;
    let got = get.expect("got ").await?;
    ensure!(got == "\"hello\"", "the getter got {got}");
    put.finish().await?;
    get.finish().await?;

    // The queue is empty again: a get with a timeout is refused by the server.
    let mut late = run("late get", "get", &["--timeout-ms", "200"])?;
    late.expect("nothing to get: ").await?;
    late.finish().await?;

    server.terminate().await?;
    println!("[parent] all processes exited 0");
    Ok(())
}
