//! Quickstart: three processes share one message board.
//!
//! `cargo run --example quickstart` starts:
//! - a **server** process that owns a `Board` (a plain Rust struct made shareable by
//!   `#[shared]`) and serves it on a free local port: this same program, started by
//!   `managers::process::start` (Python's `BaseManager.start()`);
//! - two **client** processes, `alice` and `bob`, that connect with the same key and post
//!   to the board through a typed proxy, as if it were a local object (every call is `async`
//!   and returns a `Result`, because it crosses a process boundary);
//! - and then this **parent** process reads the board: it holds both clients' posts.
//!
//! Python equivalent: `BaseManager.register('board', callable=lambda: board)` and
//! `manager.start()` in the parent, `manager.connect()` and `manager.board().post(...)` in
//! each client.

#[path = "support/mod.rs"]
mod support;

use anyhow::{bail, Result};
use managers::{manager, process, shared, Registration, ServerBuilder};

/// The shared object: it lives in the server process only.
#[derive(Debug, Default)]
pub struct Board {
    posts: Vec<String>,
}

#[shared]
impl Board {
    /// Add a post; returns how many posts the board has now.
    pub fn post(&mut self, author: String, text: String) -> usize {
        self.posts.push(format!("{author}: {text}"));
        self.posts.len()
    }

    /// Every post so far.
    pub fn posts(&self) -> Vec<String> {
        self.posts.clone()
    }
}

// The client side: `BoardManager::connect(...)` and `manager.board()` returning a proxy.
manager! {
    /// A connection to the board's server.
    pub struct BoardManager {
        /// The one shared board.
        fn board() -> BoardProxy;
    }
}

/// The server: one shared board.
fn server() -> ServerBuilder {
    ServerBuilder::new().register(Registration::instance("board", Board::default()))
}

#[tokio::main]
async fn main() -> Result<()> {
    // Started by `process::start` below: serve the board, then exit.
    process::serve_if_child(server).await?;
    support::init_tracing();
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => parent().await,
        ["client", name, address, key] => client(name, address, key).await,
        _ => bail!("usage: quickstart [client NAME ADDRESS KEY]"),
    }
}

/// Start the server and the two clients, then show the board.
async fn parent() -> Result<()> {
    // Python: `manager = BaseManager(address, authkey); manager.start()`.
    let key = support::random_key();
    let server = process::start("127.0.0.1:0", key.as_str()).await?;
    let address = server.address().to_string();
    println!("[parent] the server process listens on {address}");

    let alice = support::spawn("alice", &["client", "alice", &address, &key])?;
    let bob = support::spawn("bob", &["client", "bob", &address, &key])?;
    alice.finish().await?;
    bob.finish().await?;

    let board = BoardManager::connect(address.as_str(), key.as_str())
        .await?
        .board()
        .await?;
    println!("[parent] the board now reads:");
    for post in board.posts().await? {
        println!("[parent]   {post}");
    }
    drop(board);
    let status = server.shutdown().await?;
    println!("[parent] the server process exited: {status}");
    Ok(())
}

/// A client process: post to the shared board.
async fn client(name: &str, address: &str, key: &str) -> Result<()> {
    let manager = BoardManager::connect(address, key).await?;
    let board = manager.board().await?;
    let text = format!("hello from process {}", std::process::id());
    let count = board.post(name.to_owned(), text.clone()).await?;
    println!("posted {text:?}; the board has {count} post(s)");
    Ok(())
}
