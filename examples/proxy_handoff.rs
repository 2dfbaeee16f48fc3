//! Handing a proxy from one process to another through a shared object.
//!
//! Proxies are `Serialize + Deserialize`, so they can be arguments and results of methods
//! and live inside shared objects. `cargo run --example proxy_handoff` starts:
//! - a **server** that shares one `Mailbox` (a queue of counter proxies) and creates
//!   `Counter`s;
//! - process **A**, which creates a counter, puts a clone of its proxy into the mailbox,
//!   drops its own proxy and exits: the mailbox's copy keeps the counter alive;
//! - process **B**, which takes the proxy out of the mailbox, uses it, drops it and exits:
//!   that was the last reference, so the server frees the counter.
//!
//! Between the steps this **parent** process prints the server's `debug_info()`: who holds
//! each object (a client connection, the server's own objects, or a reference in transit).
//! Serialising a proxy puts a new reference *in transit*; the process that deserialises it
//! adopts it, so the object never goes unheld on the way. Frees after a process exits are
//! asynchronous on the server, so the parent polls, for a bounded time.
//!
//! Python equivalent (proxies are picklable; a proxy stored in a shared object stays live):
//! ```python
//! # A
//! counter = manager.Counter(0); counter.incr()
//! manager.mailbox().put(counter); del counter
//! # B
//! counter = manager.mailbox().take(); counter.incr(); del counter
//! ```

#[path = "support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use managers::{process, shared, Client, Holder, ObjectInfo, Registration, ServerBuilder};

/// A number that processes increment.
#[derive(Debug, Default)]
pub struct Counter {
    n: i64,
}

#[shared]
impl Counter {
    /// Add one; returns the new value.
    pub fn incr(&mut self) -> i64 {
        self.n += 1;
        self.n
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.n
    }
}

/// A shared queue of counter proxies: what one process puts in, another takes out.
#[derive(Debug, Default)]
pub struct Mailbox {
    /// Proxies held by the server itself while they wait here.
    counters: VecDeque<CounterProxy>,
}

#[shared]
impl Mailbox {
    /// Leave a counter proxy for someone else.
    pub fn put(&mut self, counter: CounterProxy) {
        self.counters.push_back(counter);
    }

    /// The oldest counter proxy waiting, if any.
    pub fn take(&mut self) -> Option<CounterProxy> {
        self.counters.pop_front()
    }

    /// How many proxies are waiting.
    pub fn count(&self) -> usize {
        self.counters.len()
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // The server process: started below by `process::start` (Python's `manager.start()`).
    process::serve_if_child(server).await?;
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => parent().await,
        ["sender", address, key] => sender(address, key).await,
        ["receiver", address, key] => receiver(address, key).await,
        _ => bail!("usage: proxy_handoff [sender ADDRESS KEY | receiver ADDRESS KEY]"),
    }
}

/// Start the server, run A then B, and show the server's table after each.
async fn parent() -> Result<()> {
    let key = support::random_key();
    let server = process::start("127.0.0.1:0", key.as_str()).await?;
    let address = server.address().to_string();

    // The server's first connection: #1.
    let client = Client::connect(address.as_str(), key.as_str()).await?;
    let mailbox: MailboxProxy = client.create("mailbox", ()).await?;
    let base = client.number_of_objects().await?;
    println!("[parent] connection #1 holds the mailbox; the server holds {base} object(s):");
    print_table("[parent] ", &client.debug_info().await?);

    println!("[parent] running A");
    support::spawn("A", &["sender", &address, &key])?
        .finish()
        .await?;
    // A's own references are released when its decref or its closed connection reaches
    // the server: wait until only the mailbox holds the counter.
    let rows = poll(&client, "only the mailbox holds the counter", |rows| {
        counter_row(rows).is_some_and(|row| row.holders == [(Holder::Objects, 1)])
    })
    .await?;
    println!("[parent] A has exited; the counter lives on, held only by the mailbox:");
    print_table("[parent] ", &rows);
    println!("[parent] mailbox.count() = {}", mailbox.count().await?);

    println!("[parent] running B");
    support::spawn("B", &["receiver", &address, &key])?
        .finish()
        .await?;
    let rows = poll(&client, "the counter is freed", |rows| {
        rows.len() as u64 == base && counter_row(rows).is_none()
    })
    .await?;
    println!(
        "[parent] B has exited; its reference was the last one, so the counter is freed \
         ({} object(s) again):",
        rows.len()
    );
    print_table("[parent] ", &rows);
    let waiting = mailbox.count().await?;
    println!("[parent] mailbox.count() = {waiting}");
    ensure!(waiting == 0, "the mailbox still holds {waiting} proxies");
    ensure!(
        client.number_of_objects().await? == base,
        "the server should hold {base} object(s) again"
    );

    drop(mailbox);
    support::stop(server).await?;
    println!("[parent] all processes exited 0");
    Ok(())
}

/// The server process: one shared mailbox, counters on demand.
fn server() -> ServerBuilder {
    ServerBuilder::new()
        .register(Registration::instance("mailbox", Mailbox::default()))
        .register(Registration::constructor("counter", |(n,)| Counter { n }))
}

/// Process A: create a counter, leave its proxy in the mailbox, drop ours and exit.
async fn sender(address: &str, key: &str) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let mailbox: MailboxProxy = client.create("mailbox", ()).await?;
    let counter: CounterProxy = client.create("counter", (0,)).await?;
    println!("created {counter:?}");
    println!("counter.incr() = {}", counter.incr().await?);

    // The argument is serialised (a reference in transit) and adopted by the server,
    // where the mailbox keeps it: a reference held by the server's objects.
    mailbox.put(counter.clone()).await?;
    println!("mailbox.put(counter.clone()) done; who holds what now:");
    print_table("", &client.debug_info().await?);

    drop(counter);
    println!("dropped my proxy; exiting");
    Ok(())
}

/// Process B: take the proxy out of the mailbox, use it, drop it and exit.
async fn receiver(address: &str, key: &str) -> Result<()> {
    let client = Client::connect(address, key).await?;
    let mailbox: MailboxProxy = client.create("mailbox", ()).await?;
    // The reply carries the proxy; deserialising it adopts the reference over our
    // connection, and the mailbox gives up its own.
    let counter = mailbox.take().await?.context("the mailbox is empty")?;
    println!("mailbox.take() = {counter:?}");
    let n = counter.incr().await?;
    println!("counter.incr() = {n} (A left it at 1)");
    ensure!(n == 2, "expected A's counter at 2, got {n}");
    println!("who holds what now:");
    print_table("", &client.debug_info().await?);

    drop(counter);
    println!("dropped the last proxy of the counter; exiting");
    Ok(())
}

/// The counter's row, if the server still holds one.
fn counter_row(rows: &[ObjectInfo]) -> Option<&ObjectInfo> {
    rows.iter().find(|row| row.typeid == "counter")
}

/// Print `debug_info()` rows: each object and who holds its references.
fn print_table(prefix: &str, rows: &[ObjectInfo]) {
    for row in rows {
        let holders: Vec<String> = row
            .holders
            .iter()
            .map(|(holder, n)| format!("{holder} x{n}"))
            .collect();
        println!(
            "{prefix}  {} {}: refcount {}, held by {}",
            row.typeid,
            row.id,
            row.refcount,
            holders.join(", ")
        );
    }
}

/// Poll `debug_info()` until `done` holds (10 s at most) and return those rows.
async fn poll(
    client: &Client,
    what: &str,
    done: impl Fn(&[ObjectInfo]) -> bool,
) -> Result<Vec<ObjectInfo>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = client.debug_info().await?;
        if done(&rows) {
            return Ok(rows);
        }
        if tokio::time::Instant::now() >= deadline {
            print_table("[parent] ", &rows);
            bail!("waited 10 s and still not: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
