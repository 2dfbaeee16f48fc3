//! A manager server in a process of its own, started from your program (Python's
//! `BaseManager.start()`).
//!
//! [`spawn`] (or [`start`], with your address and key) runs the current executable again as
//! the server: call [`serve_if_child`]
//! first thing in `main`, with the function that builds your server. In the child it
//! serves until the parent stops it, then exits; in the parent it returns at once.
//!
//! ```no_run
//! use managers::{process, ServerBuilder};
//!
//! fn server() -> ServerBuilder {
//!     managers::sync::register(ServerBuilder::new())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), managers::Error> {
//!     process::serve_if_child(server).await?;
//!     let server = process::spawn().await?;
//!     let manager =
//!         managers::sync::SyncManager::connect(server.address(), server.authkey().clone()).await?;
//!     let queue = manager.queue::<u32>(0).await?;
//!     queue.put(7).await.map_err(|e| std::io::Error::other(e.to_string()))?;
//!     drop((queue, manager));
//!     server.shutdown().await?;
//!     Ok(())
//! }
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::{Address, AuthKey, Error, IntoAddress, ServerBuilder, TransportError};

/// Set in a child started by [`spawn`]: the key, as hex.
const KEY_ENV: &str = "MANAGERS_SPAWNED_SERVER_KEY";
/// Set in a child started by [`spawn`]: the address to bind.
const ADDRESS_ENV: &str = "MANAGERS_SPAWNED_SERVER_ADDRESS";
/// The line the child prints when it listens, followed by its address.
const READY: &str = "MANAGERS-SERVER-LISTENING ";
/// How long [`spawn`] waits for the child to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// If this process was started by [`spawn`], build the server with `make`, serve until the
/// parent stops it (or a SIGINT/SIGTERM), and exit the process; otherwise return `Ok(())`
/// at once. Call it first thing in `main`, before anything a server process should not do.
///
/// The address and key come from the parent ([`spawn_at`], a random key); those `make`
/// sets are replaced.
///
/// Cancel safety: in a child, it never returns (it exits the process); in a parent it
/// returns at once.
pub async fn serve_if_child(make: impl FnOnce() -> ServerBuilder) -> Result<(), Error> {
    let Some(key) = std::env::var_os(KEY_ENV) else {
        return Ok(());
    };
    let key = unhex(&key.to_string_lossy()).ok_or_else(|| io_error("a malformed server key"))?;
    let address = std::env::var(ADDRESS_ENV).unwrap_or_else(|_| "127.0.0.1:0".into());
    let server = make().address(address.as_str()).authkey(key).bind().await?;
    let signal = crate::shutdown_signal();
    println!("{READY}{}", server.address());
    let stop = async {
        tokio::select! {
            () = signal => {}
            () = stdin_closed() => {}
        }
    };
    let served = server.serve_until(stop).await;
    std::process::exit(i32::from(served.is_err()));
}

/// Until the parent closes our stdin (or goes away).
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// A manager server running in a child process (see the [module](self)). Dropping it
/// kills the child; [`ServerProcess::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    address: Address,
    authkey: AuthKey,
}

impl ServerProcess {
    /// The address the server listens on.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The server's key (random, unless given to [`start`]): give it to the processes that
    /// should connect.
    pub fn authkey(&self) -> &AuthKey {
        &self.authkey
    }

    /// The child's process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stop the server (its running calls get the server's shutdown timeout) and wait for
    /// its process to exit.
    ///
    /// Cancel safety: once polled, the server has been asked to stop; dropping the future
    /// then stops waiting (the child is not killed).
    pub async fn shutdown(mut self) -> Result<ExitStatus, Error> {
        let Some(mut child) = self.child.take() else {
            return Err(io_error("the server process is gone"));
        };
        drop(child.stdin.take());
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| io_error(&e.to_string()))?
            .map_err(|e| Error::Transport(TransportError::from(e)))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Start the server in a child process on a free local TCP port, with a random key:
/// [`spawn_at`] `127.0.0.1:0`.
///
/// Cancel safety: if dropped before it returns, the child is killed.
pub async fn spawn() -> Result<ServerProcess, Error> {
    spawn_at("127.0.0.1:0").await
}

/// Start the server in a child process (this executable again, which must call
/// [`serve_if_child`] first thing) listening on `address`, with a random key; returns
/// when it listens.
///
/// Cancel safety: if dropped before it returns, the child is killed.
pub async fn spawn_at(address: impl IntoAddress) -> Result<ServerProcess, Error> {
    start(address, AuthKey::random()).await
}

/// Start the server in a child process (this executable again, which must call
/// [`serve_if_child`] first thing) listening on `address` with `authkey`: Python's
/// `BaseManager(address, authkey).start()`. Use it when other processes, started
/// separately, must know the key in advance; returns when the server listens.
///
/// Cancel safety: if dropped before it returns, the child is killed.
pub async fn start(
    address: impl IntoAddress,
    authkey: impl Into<AuthKey>,
) -> Result<ServerProcess, Error> {
    let address = address.into_address()?;
    let authkey = authkey.into();
    let exe = std::env::current_exe().map_err(|e| Error::Transport(e.into()))?;
    let mut child = Command::new(exe)
        .env(KEY_ENV, hex(authkey.as_bytes()))
        .env(ADDRESS_ENV, address.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Transport(e.into()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    // Owned here until it listens: killed if this future is dropped or it fails to start.
    let mut started = ServerProcess {
        child: Some(child),
        address: address.clone(),
        authkey,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let found = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix(READY).map(str::to_owned));
        let _ = tx.send(found);
        // Keep draining what the server prints, so it never blocks on a full pipe.
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    let listening = tokio::time::timeout(START_TIMEOUT, rx)
        .await
        .map_err(|_| io_error("the server process did not start listening in time"))?
        .ok()
        .flatten()
        .ok_or_else(|| io_error("the server process exited before it listened"))?;
    started.address = listening.as_str().into_address()?;
    Ok(started)
}

fn io_error(message: &str) -> Error {
    Error::Transport(TransportError::from(std::io::Error::other(
        message.to_owned(),
    )))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
