//! `managerd`: a standalone manager server serving the SyncManager types (Python's
//! `multiprocessing.Manager()` as a daemon).
//!
//! ```text
//! MANAGERS_AUTHKEY=secret managerd --address 127.0.0.1:50000
//! managerd --address /run/managers.sock --authkey-file /etc/managers/key
//! ```
//!
//! The key is read from `MANAGERS_AUTHKEY` or from `--authkey-file`, never from the command
//! line (where other users could read it in the process list). The bound address is printed
//! on stdout as `listening on ADDRESS`; logs go to stderr (`RUST_LOG` filters them, default
//! `info`; written from a thread of their own, dropped rather than waited for when stderr is
//! not read, and peer-caused warnings at most once a second per kind). SIGINT or SIGTERM
//! stops the server gracefully. `--max-connections`,
//! `--max-handshakes`, `--max-calls-in-flight`, `--max-frame-length`, `--handshake-timeout` and `--hold-timeout`
//! set the server's limits (see `docs/limits.md`).
//!
//! `--session-grace SECONDS` keeps a client's session (references, locks) that long after
//! its connection drops, for the client to reconnect and resume it.
//!
//! TLS: `--tls-cert PATH --tls-key PATH` require TLS on TCP connections (PEM files; the
//! authkey handshake runs inside TLS), `--tls-client-ca PATH` requires client certificates
//! signed by that CA (mutual TLS). `describe` connects with TLS when given `--tls-ca PATH`
//! (and `--tls-server-name`, `--tls-cert`/`--tls-key` for a client certificate).
//!
//! `managerd stats --address ADDR` (same key) prints its statistics (`--json`: as JSON);
//! `--metrics-address HOST:PORT` serves them in Prometheus's text format on
//! `GET /metrics` (cargo feature `metrics`, on by default).
//!
//! `managerd describe --address ADDR` (same key) asks a running manager to describe its
//! typeids and prints them as Markdown, one section per typeid with a table of its methods
//! and their docs; `--json` prints JSON instead.
//!
//! To serve your own `#[shared]` types next to the standard ones, build a binary of your
//! own: `managers::sync::register(ServerBuilder::new()).register(...)`.

#[cfg(feature = "metrics")]
mod metrics;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use managers::ServerBuilder;

/// Serve the SyncManager types (Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event,
/// Barrier, Queue, JoinableQueue, Value, Array, dict, list, Namespace) to `managers` clients.
///
/// Stock CPython clients connect to the same address, unchanged except for the address and
/// key: `SyncManager(address=(host, port), authkey=b'...').connect()`, then `m.dict()`,
/// `m.Queue()`, `m.Lock()`, ... (CPython 3.11 and later; see --no-python-clients).
///
/// The authentication key comes from the MANAGERS_AUTHKEY environment variable or from
/// --authkey-file, never from the command line.
#[derive(Debug, Parser)]
#[command(name = "managerd", version, about, long_about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Where to listen (or, for `describe`, the server to ask): HOST:PORT (port 0 picks a
    /// free one), unix:PATH, or a socket path.
    #[arg(long, global = true, default_value = "127.0.0.1:50000")]
    address: String,

    /// Read the authentication key from this file (its bytes, minus one trailing newline).
    #[arg(long, global = true, value_name = "PATH")]
    authkey_file: Option<PathBuf>,

    /// How long shutdown waits for running calls, in seconds.
    #[arg(long, default_value_t = 1.0)]
    shutdown_timeout: f64,

    /// Connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_connections: usize,

    /// Calls one connection may keep waiting on the server (blocked gets, contended locks);
    /// one more is refused at once with a retryable Busy error.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_calls_in_flight: usize,

    /// The largest frame accepted from a client, in bytes; a larger one closes its
    /// connection.
    #[arg(long, default_value_t = managers::DEFAULT_MAX_FRAME, value_name = "BYTES")]
    max_frame_length: usize,

    /// How long a new connection may take to authenticate, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    handshake_timeout: f64,

    /// Connections in the handshake at once; when all are taken, the oldest makes way for
    /// a new one once it has had a fiftieth of the handshake timeout.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_handshakes: usize,

    /// How long a client may send nothing in the middle of a frame before its connection is
    /// closed, in seconds (0: never).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    stalled_frame_timeout: f64,

    /// How long a client may send nothing at all before its connection is closed, in seconds
    /// (0, the default: never; clients that hold proxies and stay quiet are normal).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    idle_timeout: f64,

    /// How long a proxy may travel between processes before the reference it carries is
    /// released, in seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    hold_timeout: f64,

    /// Keep memory freed after a burst of clients instead of giving it back to the system
    /// (by default, once the open connections fall to half their peak, glibc's allocator is
    /// asked to return its free pages).
    #[arg(long)]
    keep_freed_memory: bool,

    /// Refuse CPython `multiprocessing.managers` clients (served by default; their
    /// handshake needs HMAC-MD5 for CPython 3.11).
    #[arg(long)]
    no_python_clients: bool,

    /// Let a client's shutdown request (Rust's `Client::request_shutdown`, Python's
    /// `shutdown`) stop the server (refused by default).
    #[arg(long)]
    allow_client_shutdown: bool,

    /// Keep a client's session this many seconds after its connection drops (0, the
    /// default: release everything at once). A client that reconnects within it finds its
    /// proxies working and its locks still held; a client that vanished keeps its locks
    /// that long.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    session_grace: f64,

    /// Require TLS on TCP connections, with this certificate chain (PEM, leaf first); needs
    /// --tls-key. For `describe`: the client certificate to present (mutual TLS).
    #[arg(long, global = true, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Mutual TLS: admit only clients presenting a certificate signed by a CA in this PEM
    /// file (needs --tls-cert).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,

    /// Serve the statistics in Prometheus's text format on `GET /metrics` at this address
    /// (HOST:PORT; port 0 picks a free one, printed as `metrics on ADDRESS`).
    #[cfg(feature = "metrics")]
    #[arg(long, value_name = "HOST:PORT")]
    metrics_address: Option<String>,

    /// For `describe`: connect with TLS, trusting the CA certificates in this PEM file.
    #[arg(long, global = true, value_name = "PATH")]
    tls_ca: Option<PathBuf>,

    /// For `describe`: the name the server's certificate must carry (default: the host of
    /// --address).
    #[arg(long, global = true, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
}

/// The server's TLS set-up from the options, if any.
fn server_tls(args: &Args) -> Result<Option<managers::ServerTls>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let mut tls = managers::ServerTls::from_pem_files(cert, key)?;
    if let Some(ca) = &args.tls_client_ca {
        tls = tls.client_ca_pem_file(ca)?;
    }
    Ok(Some(tls))
}

/// A client connecting as the options say: TLS when --tls-ca is given.
fn client_builder(args: &Args) -> managers::ClientBuilder {
    let builder = managers::Client::builder();
    let Some(ca) = &args.tls_ca else {
        return builder;
    };
    let mut tls = managers::ClientTls::new().ca_pem_file(ca);
    if let Some(name) = &args.tls_server_name {
        tls = tls.server_name(name.as_str());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        tls = tls.identity_pem_files(cert, key);
    }
    builder.tls(tls)
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Describe the typeids a running manager serves (at --address, with the same key):
    /// one Markdown section per typeid with a table of its methods and their docs.
    Describe {
        /// Print JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
    /// Print a running manager's statistics (at --address, with the same key):
    /// connections, waiting calls, objects per typeid, calls and failures per method.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A client of the manager at `--address`, connected as the options say.
async fn connected(args: &Args, key: Vec<u8>) -> Result<managers::Client> {
    let address = args.address.as_str();
    client_builder(args)
        .connect(address, key)
        .await
        .with_context(|| format!("cannot connect to {address}"))
}

/// `managerd stats`: ask the manager at `address` for its statistics and print them.
async fn stats(args: &Args, key: Vec<u8>, json: bool) -> Result<()> {
    let stats = connected(args, key).await?.stats().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    println!("connections        {}", stats.connections);
    println!("connections total  {}", stats.connections_total);
    println!("sessions parked    {}", stats.sessions_parked);
    println!("calls waiting      {}", stats.calls_waiting);
    println!("\n| typeid | objects |\n|---|---|");
    for o in &stats.objects {
        println!("| {} | {} |", o.typeid, o.objects);
    }
    println!("\n| typeid | method | calls | errors |\n|---|---|---|---|");
    for c in &stats.calls {
        println!(
            "| {} | {} | {} | {} |",
            c.typeid, c.method, c.calls, c.errors
        );
    }
    Ok(())
}

/// `managerd describe`: ask the manager at `address` to describe itself and print it.
async fn describe(args: &Args, key: Vec<u8>, json: bool) -> Result<()> {
    let address = args.address.as_str();
    let types = connected(args, key).await?.describe().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&types)?);
    } else {
        println!("# The manager at {address}\n");
        for ty in &types {
            println!("{}", ty.to_markdown());
        }
    }
    Ok(())
}

/// `value` seconds from the option `--name`, 0 meaning never.
fn optional_seconds(name: &str, value: f64) -> Result<Option<Duration>> {
    Ok(Some(seconds(name, value)?).filter(|d| !d.is_zero()))
}

/// `value` seconds from the option `--name`.
fn seconds(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds"))
}

/// The environment variable holding the key.
const AUTHKEY_ENV: &str = "MANAGERS_AUTHKEY";

fn authkey(args: &Args) -> Result<Vec<u8>> {
    if let Some(path) = &args.authkey_file {
        let mut key = std::fs::read(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        if key.last() == Some(&b'\n') {
            key.pop();
        }
        if key.is_empty() {
            bail!("the key file {} is empty", path.display());
        }
        return Ok(key);
    }
    match std::env::var_os(AUTHKEY_ENV) {
        Some(key) if !key.is_empty() => Ok(key.into_encoded_bytes()),
        _ => bail!(
            "no authentication key: set {AUTHKEY_ENV} or pass --authkey-file PATH \
             (see managerd --help)"
        ),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Log lines go to stderr from a thread of their own, through a bounded queue that drops
    // lines when full: a stderr nobody reads (a full pipe) never stalls the server.
    let (stderr, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(stderr)
        .init();
    let key = authkey(&args)?;
    match args.command {
        Some(Command::Describe { json }) => return describe(&args, key, json).await,
        Some(Command::Stats { json }) => return stats(&args, key, json).await,
        None => {}
    }
    let mut builder = ServerBuilder::new();
    if let Some(tls) = server_tls(&args)? {
        builder = builder.tls(tls);
    }
    let server = managers::sync::register(builder)
        .address(args.address.as_str())
        .authkey(key)
        .shutdown_timeout(seconds("shutdown-timeout", args.shutdown_timeout)?)
        .handshake_timeout(seconds("handshake-timeout", args.handshake_timeout)?)
        .hold_timeout(seconds("hold-timeout", args.hold_timeout)?)
        .stalled_frame_timeout(optional_seconds(
            "stalled-frame-timeout",
            args.stalled_frame_timeout,
        )?)
        .idle_timeout(optional_seconds("idle-timeout", args.idle_timeout)?)
        .session_grace(optional_seconds("session-grace", args.session_grace)?)
        .release_memory_after_bursts(!args.keep_freed_memory)
        .python_clients(!args.no_python_clients)
        .client_shutdown(args.allow_client_shutdown)
        .max_connections(args.max_connections)
        .max_handshakes(args.max_handshakes)
        .max_calls_in_flight(args.max_calls_in_flight)
        .max_frame_length(args.max_frame_length)
        .bind()
        .await
        .with_context(|| format!("cannot listen on {}", args.address))?;
    // Install the signal handlers before announcing the address.
    let stop = managers::shutdown_signal();
    println!("listening on {}", server.address());
    #[cfg(feature = "metrics")]
    if let Some(address) = &args.metrics_address {
        let listener = tokio::net::TcpListener::bind(address.as_str())
            .await
            .with_context(|| format!("cannot listen for metrics on {address}"))?;
        println!("metrics on {}", listener.local_addr()?);
        tokio::spawn(metrics::serve(listener, server.stats_handle()));
    }
    server.serve_until(stop).await?;
    tracing::info!("managerd stopped");
    Ok(())
}
