//! A remote manager: a long-running server that unrelated processes use by address and key.
//!
//! The server holds one shared counter (typeid `counter`, a single instance, so increments
//! from different processes add up) and can create private counters (typeid `new_counter`,
//! a constructor). Each subcommand is a separate client program; run them from several
//! shells or machines:
//!
//! ```text
//! cargo run --example remote -- serve --address 127.0.0.1:50000 --authkey abc
//! cargo run --example remote -- incr  --address 127.0.0.1:50000 --authkey abc 5
//! cargo run --example remote -- bulk  --address 127.0.0.1:50000 --authkey abc 1000
//! cargo run --example remote -- get   --address 127.0.0.1:50000 --authkey abc
//! cargo run --example remote -- hold  --address 127.0.0.1:50000 --authkey abc 3
//! cargo run --example remote -- stats --address 127.0.0.1:50000 --authkey abc
//! ```
//!
//! With no arguments it runs the whole scenario: a server, two `incr` processes, `get`
//! checks their sum, `bulk 1000` adds 1000 ones with up to 64 calls in flight (a
//! `Pipeline`), `hold 5` keeps five objects alive and is then killed with SIGKILL,
//! `stats` shows the server releasing what the dead process held, and SIGTERM stops the
//! server gracefully.
//!
//! Python equivalent (the docs' "Using a remote manager", with a counter for the queue):
//! ```python
//! QueueManager.register('get_queue', callable=lambda: queue)
//! QueueManager(address=('', 50000), authkey=b'abracadabra').get_server().serve_forever()
//! # elsewhere: QueueManager.register('get_queue')
//! m = QueueManager(address=('foo.bar.org', 50000), authkey=b'abracadabra'); m.connect()
//! m.get_queue().put('hello')
//! ```

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use clap::{Args, Parser, Subcommand};
use managers::{shared, Client, Pipeline, Registration, ServerBuilder};

/// A number that clients add to.
#[derive(Debug, Default)]
pub struct Counter(u64);

#[shared]
impl Counter {
    /// Add `n`; returns the new value.
    pub fn incr(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0
    }
}

/// A shared counter served by a remote manager.
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
    /// Add N to the shared counter.
    Incr {
        #[command(flatten)]
        conn: Conn,
        n: u64,
    },
    /// Add 1 to the shared counter N times, with up to 64 calls in flight.
    Bulk {
        #[command(flatten)]
        conn: Conn,
        n: u64,
    },
    /// Print the shared counter.
    Get(Conn),
    /// Create N new counters, print `HOLDING N` and wait until killed.
    Hold {
        #[command(flatten)]
        conn: Conn,
        n: usize,
    },
    /// Print the server's object table.
    Stats(Conn),
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
                .register(Registration::instance("counter", Counter::default()))
                .register(Registration::constructor("new_counter", |(start,)| {
                    Counter(start)
                }))
                .bind()
                .await?;
            support::serve_until_signal(server).await?;
        }
        Command::Incr { conn, n } => {
            let counter: CounterProxy = connect(&conn).await?.create("counter", ()).await?;
            println!("added {n}: counter is now {}", counter.incr(n).await?);
        }
        Command::Bulk { conn, n } => {
            let counter: CounterProxy = connect(&conn).await?.create("counter", ()).await?;
            // A pipeline keeps the calls in flight and returns their results in order.
            let mut pipeline = Pipeline::new();
            let mut sent = 0;
            while sent < n.min(64) {
                pipeline.push(counter.incr(1));
                sent += 1;
            }
            let mut last = 0;
            while let Some(value) = pipeline.next().await {
                let value = value?;
                ensure!(value > last, "results out of order: {value} after {last}");
                last = value;
                if sent < n {
                    pipeline.push(counter.incr(1));
                    sent += 1;
                }
            }
            println!("added 1 {n} times: counter is now {last}");
        }
        Command::Get(conn) => {
            let counter: CounterProxy = connect(&conn).await?.create("counter", ()).await?;
            println!("counter = {}", counter.get().await?);
        }
        Command::Hold { conn, n } => {
            let client = connect(&conn).await?;
            let mut held = Vec::with_capacity(n);
            for start in 0..n as u64 {
                held.push(
                    client
                        .create::<CounterProxy, _>("new_counter", (start,))
                        .await?,
                );
            }
            println!("HOLDING {}", held.len());
            std::future::pending::<()>().await;
        }
        Command::Stats(conn) => {
            let client = connect(&conn).await?;
            println!("number_of_objects = {}", client.number_of_objects().await?);
            for row in client.debug_info().await? {
                println!("  {:?} id {} refcount {}", row.typeid, row.id, row.refcount);
            }
        }
    }
    Ok(())
}

async fn connect(conn: &Conn) -> Result<Client> {
    Ok(Client::connect(conn.address.as_str(), conn.authkey.as_str()).await?)
}

/// The whole story, each step a child process of this same binary.
async fn scenario() -> Result<()> {
    let key = support::random_key();
    let mut server = support::spawn(
        "serve",
        &["serve", "--address", "127.0.0.1:0", "--authkey", &key],
    )?;
    let address = server.expect("ADDRESS ").await?;
    let conn = ["--address", address.as_str(), "--authkey", key.as_str()];
    let run = |role: &str, command: &str, extra: &[&str]| {
        support::spawn(role, &[&[command], &conn[..], extra].concat())
    };

    // Two processes increment the one shared counter at the same time.
    let first = run("incr 2", "incr", &["2"])?;
    let second = run("incr 40", "incr", &["40"])?;
    first.finish().await?;
    second.finish().await?;
    let mut get = run("get", "get", &[])?;
    let value: u64 = get.expect("counter = ").await?.parse()?;
    get.finish().await?;
    ensure!(value == 42, "the counter is {value}, expected 2 + 40");

    // A thousand increments, pipelined.
    run("bulk 1000", "bulk", &["1000"])?.finish().await?;
    let mut get = run("get", "get", &[])?;
    let value: u64 = get.expect("counter = ").await?.parse()?;
    get.finish().await?;
    ensure!(value == 1042, "the counter is {value}, expected 42 + 1000");

    let stats = || async {
        let mut stats = run("stats", "stats", &[])?;
        let n: u64 = stats.expect("number_of_objects = ").await?.parse()?;
        stats.finish().await?;
        anyhow::Ok(n)
    };
    let before = stats().await?;
    let mut hold = run("hold", "hold", &["5"])?;
    hold.expect("HOLDING ").await?;
    let during = stats().await?;
    ensure!(
        during == before + 5,
        "expected {before} + 5 objects, got {during}"
    );

    println!("[parent] killing hold with SIGKILL: it cannot release anything itself");
    hold.kill().await?;
    // The server notices the closed connection and releases its references
    // asynchronously: poll for that, for at most 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut after = stats().await?;
    while after != before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = stats().await?;
    }
    ensure!(
        after == before,
        "{after} objects remain after the client died"
    );
    println!("[parent] the dead client's objects are gone; sending SIGTERM to the server");
    server.terminate().await?;
    println!("[parent] the server stopped gracefully");
    Ok(())
}
