//! Process orchestration shared by the examples.
//!
//! Every example is one binary that plays several roles: run with no arguments it is the
//! *parent*, which re-executes itself (`std::env::current_exe()`) once per role, so the
//! server and each client are separate OS processes, as with Python's `Process(target=...)`.
//!
//! Parent side: [`spawn`] starts a role and relays its stdout prefixed with `[role]`;
//! [`Child::expect`] waits for a line the child prints (the server's `ADDRESS <addr>`);
//! [`Child::finish`] closes the child's stdin (which stops a server) and checks that it
//! exits 0; [`Child::terminate`] sends SIGTERM instead; [`Child::kill`] sends SIGKILL.
//! Every wait is bounded by [`TIMEOUT`], and a child dropped on an error path is killed,
//! so a failing example never hangs and never leaves processes behind.
//!
//! Servers: most examples start theirs with `managers::process` (the crate's own
//! `BaseManager.start()`), through [`server_and_client`] or directly, and [`stop`] it. A
//! server role of an example's own (one that does more than serve): [`serve`] prints
//! `ADDRESS <addr>` and serves until stdin reaches EOF or the process gets SIGTERM/Ctrl-C;
//! [`serve_until_signal`] ignores stdin.
//!
//! Included by each example with `#[path = "support/mod.rs"] mod support;`; cargo does not
//! build it as an example of its own (a subdirectory without `main.rs`).

// Each example uses a different part of this module.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use managers::{AuthKey, Server, ServerBuilder};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The longest any child may take to print an awaited line or to exit.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// Log to stderr, filtered by `RUST_LOG` (default: warnings and errors).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The command-line arguments after the program name: the role and its parameters.
pub(crate) fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// A fresh random key for one run, as hex text to pass on the children's command lines.
pub(crate) fn random_key() -> String {
    AuthKey::random()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes as hex text (a serialised proxy on a child's command line).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex text written by [`hex`].
pub(crate) fn unhex(text: &str) -> Result<Vec<u8>> {
    ensure!(text.len() % 2 == 0, "odd-length hex");
    (0..text.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&text[i..i + 2], 16)?))
        .collect()
}

/// The shape most examples share. With no arguments: the parent, which starts the server
/// built by `server` in a child process with `managers::process::start` (Python's
/// `BaseManager(address, authkey).start()`), runs one `client` role against it and stops the
/// server. With `client ADDRESS KEY`: play that role. In the server process started by
/// the parent, this serves and exits.
pub(crate) async fn server_and_client<C>(
    server: fn() -> ServerBuilder,
    client: impl FnOnce(String, String) -> C,
) -> Result<()>
where
    C: std::future::Future<Output = Result<()>>,
{
    managers::process::serve_if_child(server).await?;
    init_tracing();
    let args = args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => {
            let key = random_key();
            let server = managers::process::start("127.0.0.1:0", key.as_str()).await?;
            let address = server.address().to_string();
            println!("[parent] server listens on {address}");
            spawn("client", &["client", &address, &key])?
                .finish()
                .await?;
            stop(server).await?;
            println!("[parent] all processes exited 0");
            Ok(())
        }
        ["client", address, key] => client(address.to_owned(), key.to_owned()).await,
        _ => bail!("usage: [client ADDRESS KEY]"),
    }
}

/// Like [`server_and_client`], for an example whose server role does more than serve (it
/// prints what it sees after the client ran): the server is a role of the example, started
/// with [`spawn`], which prints `ADDRESS <addr>` and serves until its stdin closes.
pub(crate) async fn server_role_and_client<S, C>(
    server: impl FnOnce(String) -> S,
    client: impl FnOnce(String, String) -> C,
) -> Result<()>
where
    S: std::future::Future<Output = Result<()>>,
    C: std::future::Future<Output = Result<()>>,
{
    init_tracing();
    let args = args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => {
            let key = random_key();
            let mut server = spawn("server", &["server", &key])?;
            let address = server.expect("ADDRESS ").await?;
            println!("[parent] server listens on {address}");
            spawn("client", &["client", &address, &key])?
                .finish()
                .await?;
            server.finish().await?;
            println!("[parent] all processes exited 0");
            Ok(())
        }
        ["server", key] => server(key.to_owned()).await,
        ["client", address, key] => client(address.to_owned(), key.to_owned()).await,
        _ => bail!("usage: [server KEY | client ADDRESS KEY]"),
    }
}

/// Stop a server started with `managers::process`, and check that its process exited 0.
pub(crate) async fn stop(server: managers::process::ServerProcess) -> Result<()> {
    let status = tokio::time::timeout(TIMEOUT, server.shutdown())
        .await
        .context("the server did not stop in time")??;
    ensure!(status.success(), "the server exited with {status}");
    Ok(())
}

/// A child process playing one role of the example.
pub(crate) struct Child {
    role: String,
    process: tokio::process::Child,
    /// Every stdout line, for [`Child::expect`]; the relay task also prints them.
    lines: mpsc::UnboundedReceiver<String>,
    /// Prints the child's stdout as `[role] line`; done when the child closes stdout.
    relay: JoinHandle<()>,
}

/// Run this executable again with `args`, as the process of `role`.
pub(crate) fn spawn(role: &str, args: &[&str]) -> Result<Child> {
    let mut process = tokio::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the {role} process"))?;
    let stdout = process.stdout.take().context("the child's stdout")?;
    let (tx, lines) = mpsc::unbounded_channel();
    let prefix = format!("[{role}]");
    let relay = tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            println!("{prefix} {line}");
            let _ = tx.send(line);
        }
    });
    Ok(Child {
        role: role.to_owned(),
        process,
        lines,
        relay,
    })
}

impl Child {
    /// Wait for a line starting with `prefix` and return the rest of it.
    pub(crate) async fn expect(&mut self, prefix: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_owned());
                    }
                }
                Ok(None) => bail!("{} exited without printing `{prefix}...`", self.role),
                Err(_) => bail!("{} printed no `{prefix}...` within {TIMEOUT:?}", self.role),
            }
        }
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> Result<u32> {
        self.process.id().context("the child has already exited")
    }

    /// Close the child's stdin (a server role stops on that) and wait for exit code 0.
    pub(crate) async fn finish(mut self) -> Result<()> {
        drop(self.process.stdin.take());
        self.wait_success().await
    }

    /// Send SIGTERM (a graceful stop request) and wait for exit code 0.
    pub(crate) async fn terminate(self) -> Result<()> {
        let status = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid()?.to_string())
            .status()
            .await
            .context("running kill -TERM")?;
        ensure!(status.success(), "kill -TERM failed: {status}");
        self.wait_success().await
    }

    /// Send SIGKILL (a crash: the child cleans nothing up) and reap it.
    pub(crate) async fn kill(mut self) -> Result<()> {
        self.process.kill().await?;
        let _ = self.relay.await;
        Ok(())
    }

    async fn wait_success(mut self) -> Result<()> {
        let status = match tokio::time::timeout(TIMEOUT, self.process.wait()).await {
            Ok(status) => status?,
            // Dropping `self` kills the child.
            Err(_) => bail!("{} did not exit within {TIMEOUT:?}", self.role),
        };
        // Print everything it wrote before reporting on it.
        let _ = self.relay.await;
        ensure!(status.success(), "{} exited with {status}", self.role);
        Ok(())
    }
}

/// The server role: print `ADDRESS <addr>` for the parent, then serve until stdin reaches
/// EOF (the parent closed it, or died) or SIGTERM/Ctrl-C arrives.
pub(crate) async fn serve(server: Server) -> Result<()> {
    serve_inner(server, true).await
}

/// Like [`serve`] but only a signal stops the server: for a long-running server started
/// from a shell, whose stdin may be a terminal or `/dev/null`.
pub(crate) async fn serve_until_signal(server: Server) -> Result<()> {
    serve_inner(server, false).await
}

async fn serve_inner(server: Server, stop_on_stdin_eof: bool) -> Result<()> {
    // The handlers are installed here, before the parent learns our address, so a SIGTERM
    // sent right after it does stops us gracefully.
    let signal = managers::shutdown_signal();
    println!("ADDRESS {}", server.address());
    let stop = async move {
        if stop_on_stdin_eof {
            tokio::select! {
                _ = signal => println!("got a stop signal"),
                _ = stdin_closed() => println!("stdin closed"),
            }
        } else {
            signal.await;
            println!("got a stop signal");
        }
    };
    server.serve_until(stop).await?;
    println!("stopped");
    Ok(())
}

/// Completes when stdin reaches EOF. Reads on a plain thread: a blocking read cannot be
/// cancelled, and a detached thread does not hold up the process exit.
async fn stdin_closed() {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}
