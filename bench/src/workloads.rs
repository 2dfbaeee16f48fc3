//! The workloads, the servers they run against, and the table.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use managers::{Client, ClientTls, Registration, ServerBuilder, ServerTls};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::floor::{self, FloorClient, Request};
use crate::store::{SmallProxy, Store, StoreProxy};
use crate::{procfs, python, Scale};

const KEY: &str = "bench-key";

/// The CA that signed the TLS server's certificate in this run (see [`tls_rows`]).
static TLS_CA: OnceLock<PathBuf> = OnceLock::new();

/// The prefix of a TLS server's address in this benchmark's own bookkeeping.
const TLS_PREFIX: &str = "tls+";

/// A socket of either kind.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

// ---------------------------------------------------------------------------------------
// Servers

/// The runtime of the `serve` and `load` roles: two workers, or the current thread with
/// `BENCH_CURRENT_THREAD=1`.
fn role_runtime() -> Result<tokio::runtime::Runtime> {
    let mut builder = if std::env::var_os("BENCH_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(2);
        multi
    };
    Ok(builder.enable_all().build()?)
}

/// The `serve` role: serve one contender until stdin closes.
pub(crate) fn serve(kind: &str, address: &str) -> Result<()> {
    let rt = role_runtime()?;
    rt.block_on(async move {
        let stop = async {
            // A blocking read on its own thread: EOF when the benchmark is done.
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                let _ = tx.send(());
            });
            let _ = rx.await;
        };
        match kind {
            "floor" => serve_floor(address, stop).await,
            "managers" => serve_managers(ServerBuilder::new(), address, stop).await,
            tls if tls.starts_with("managers-tls:") => {
                // `managers-tls:DIR`: DIR holds server.pem and server.key.
                let dir = Path::new(&tls["managers-tls:".len()..]);
                let tls =
                    ServerTls::from_pem_files(dir.join("server.pem"), dir.join("server.key"))?;
                serve_managers(ServerBuilder::new().tls(tls), address, stop).await
            }
            "sync" => {
                // managerd's configuration: the SyncManager types, stock CPython clients
                // served (`managerd` without `--no-python-clients`; its other settings are
                // the builder's defaults, as here). For the stock CPython client rows.
                let server = managers::sync::register(ServerBuilder::new())
                    .address(address)
                    .authkey(KEY)
                    .python_clients(true)
                    .bind()
                    .await?;
                println!("ADDRESS {}", server.address());
                server.serve_until(stop).await?;
                Ok(())
            }
            "soak" => crate::soak::serve(address, stop).await,
            other => bail!("unknown contender {other}"),
        }
    })
}

/// The `managers` contender: the benchmark's store and small objects.
async fn serve_managers(
    builder: ServerBuilder,
    address: &str,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let server = builder
        .address(address)
        .authkey(KEY)
        .register(Registration::instance("store", Store::default()))
        .register(Registration::constructor("small", |(n,)| {
            crate::store::Small(n)
        }))
        .bind()
        .await?;
    println!("ADDRESS {}", server.address());
    server.serve_until(stop).await?;
    Ok(())
}

async fn serve_floor(address: &str, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let store = Arc::new(Mutex::new(HashMap::new()));
    tokio::pin!(stop);
    if address.contains('/') {
        let listener = UnixListener::bind(address)?;
        println!("ADDRESS {address}");
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    let (s, _) = accepted?;
                    tokio::spawn(floor::serve_connection(s, store.clone()));
                }
            }
        }
        let _ = std::fs::remove_file(address);
    } else {
        let listener = TcpListener::bind(address).await?;
        println!("ADDRESS {}", listener.local_addr()?);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    let (s, _) = accepted?;
                    s.set_nodelay(true)?;
                    tokio::spawn(floor::serve_connection(s, store.clone()));
                }
            }
        }
    }
    Ok(())
}

/// A directory of this process's own for its Unix sockets (`kind`: which role made it).
pub(crate) fn scratch_dir(kind: &str) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("managers-bench-{kind}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A server process of this benchmark.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) address: String,
}

impl ServerProcess {
    pub(crate) fn start(kind: &str, address: &str) -> Result<Self> {
        Self::start_with(&std::env::current_exe()?, kind, address)
    }

    /// A server of another build of this benchmark (`binary`), for `managers-bench ab`.
    pub(crate) fn start_with(binary: &std::path::Path, kind: &str, address: &str) -> Result<Self> {
        let mut child = Command::new(binary)
            .args(["serve", kind, address])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line
            .trim()
            .strip_prefix("ADDRESS ")
            .ok_or_else(|| anyhow!("server said {line:?}"))?
            .to_owned();
        Ok(ServerProcess { child, address })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu(&self) -> f64 {
        procfs::cpu_seconds(self.pid()).unwrap_or(0.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

/// Close `child`'s stdin (the roles of this binary stop on EOF) and wait `grace` for it to
/// exit, then SIGKILL it.
pub(crate) fn stop_child(child: &mut Child, grace: Duration) {
    drop(child.stdin.take());
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn connect_floor(address: &str) -> Result<FloorClient<BoxStream>> {
    let stream: BoxStream = if address.contains('/') {
        Box::new(UnixStream::connect(address.trim_start_matches("unix:")).await?)
    } else {
        let s = TcpStream::connect(address).await?;
        s.set_nodelay(true)?;
        Box::new(s)
    };
    Ok(FloorClient::new(stream))
}

async fn connect_managers(address: &str) -> Result<(Client, StoreProxy)> {
    let client = match address.strip_prefix(TLS_PREFIX) {
        Some(address) => {
            let ca = TLS_CA.get().context("no TLS CA in this run")?;
            Client::builder()
                .tls(ClientTls::new().ca_pem_file(ca))
                .connect(address, KEY)
                .await?
        }
        None => Client::connect(address, KEY).await?,
    };
    let store: StoreProxy = client.create("store", ()).await?;
    Ok((client, store))
}

fn key(i: usize) -> String {
    format!("k{}", i % 100)
}

// ---------------------------------------------------------------------------------------
// Workloads: each returns one number for one contender

/// Per-call latencies of `n` sequential calls (payload: `size` bytes echoed, or an incr).
async fn latency(contender: &str, address: &str, n: usize, size: usize) -> Result<Vec<f64>> {
    let payload = vec![7u8; size];
    let mut samples = Vec::with_capacity(n);
    if contender == "floor" {
        let mut c = connect_floor(address).await?;
        for i in 0..n + n / 10 {
            let request = if size > 0 {
                Request::Echo(payload.clone())
            } else {
                Request::Incr(key(i))
            };
            let t = Instant::now();
            c.call(&request).await?;
            if i >= n / 10 {
                samples.push(t.elapsed().as_secs_f64());
            }
        }
    } else {
        let (_client, store) = connect_managers(address).await?;
        for i in 0..n + n / 10 {
            let t = Instant::now();
            if size > 0 {
                store.echo(ByteBuf::from(payload.clone())).await?;
            } else {
                store.incr(key(i)).await?;
            }
            if i >= n / 10 {
                samples.push(t.elapsed().as_secs_f64());
            }
        }
    }
    Ok(samples)
}

/// Calls per second with `clients` connections calling back to back for `duration`.
async fn throughput(
    contender: &str,
    address: &str,
    clients: usize,
    duration: Duration,
) -> Result<(f64, u64)> {
    let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let start = start.clone();
        let address = address.to_owned();
        let contender = contender.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut calls = 0u64;
            if contender == "floor" {
                let mut conn = connect_floor(&address).await?;
                start.wait().await;
                let end = Instant::now() + duration;
                while Instant::now() < end {
                    conn.call(&Request::Incr(key(c))).await?;
                    calls += 1;
                }
            } else {
                let (_client, store) = connect_managers(&address).await?;
                start.wait().await;
                let end = Instant::now() + duration;
                while Instant::now() < end {
                    store.incr(key(c)).await?;
                    calls += 1;
                }
            }
            anyhow::Ok(calls)
        }));
    }
    start.wait().await;
    let t = Instant::now();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok((total as f64 / t.elapsed().as_secs_f64(), total))
}

/// Calls in flight at once in the pipelined workload.
const DEPTH: usize = 64;

/// Calls per second with [`DEPTH`] calls in flight on one connection, in steady state:
/// each contender first makes a tenth of the calls (at most 10,000) on the same connection
/// unmeasured, so that buffers, tables and caches have grown for both.
async fn pipelined(contender: &str, address: &str, total: usize) -> Result<f64> {
    let warm_up = (total / 10).min(10_000);
    let elapsed = match contender {
        "floor" => {
            let mut c = connect_floor(address).await?;
            floor_pipelined(&mut c, warm_up).await?;
            let t = Instant::now();
            floor_pipelined(&mut c, total).await?;
            t.elapsed()
        }
        "pipeline" => {
            let (_client, store) = connect_managers(address).await?;
            through_pipeline(&store, warm_up).await?;
            let t = Instant::now();
            through_pipeline(&store, total).await?;
            t.elapsed()
        }
        _ => {
            let (_client, store) = connect_managers(address).await?;
            if std::env::var_os("BENCH_SIZES").is_some() {
                eprintln!(
                    "incr future: {} bytes",
                    std::mem::size_of_val(&store.incr(key(0)))
                );
            }
            separate_futures(&store, warm_up).await?;
            let t = Instant::now();
            separate_futures(&store, total).await?;
            t.elapsed()
        }
    };
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// `total` floor calls, [`DEPTH`] in flight.
async fn floor_pipelined(c: &mut FloorClient<BoxStream>, total: usize) -> Result<()> {
    let mut sent = 0;
    while sent < DEPTH.min(total) {
        c.send(&Request::Incr(key(sent))).await?;
        sent += 1;
    }
    c.flush().await?;
    for _ in 0..total {
        c.recv().await?;
        if sent < total {
            c.send(&Request::Incr(key(sent))).await?;
            sent += 1;
        }
        if !c.has_buffered_reply() {
            c.flush().await?;
        }
    }
    Ok(())
}

/// `total` calls through a `Pipeline`, [`DEPTH`] in flight: results in order, no future
/// per call.
async fn through_pipeline(store: &StoreProxy, total: usize) -> Result<()> {
    let mut pipeline = managers::Pipeline::new();
    keep_in_flight(&mut pipeline, |p, i| p.push(store.incr(key(i))), total).await
}

/// `total` calls as separate futures in a `FuturesUnordered`, [`DEPTH`] in flight.
async fn separate_futures(store: &StoreProxy, total: usize) -> Result<()> {
    let mut in_flight = FuturesUnordered::new();
    keep_in_flight(&mut in_flight, |f, i| f.push(store.incr(key(i))), total).await
}

/// `total` calls with [`DEPTH`] in flight in `in_flight`: `push(in_flight, i)` adds call
/// `i`, and each result taken makes room for the next.
async fn keep_in_flight<S, T>(
    in_flight: &mut S,
    mut push: impl FnMut(&mut S, usize),
    total: usize,
) -> Result<()>
where
    S: futures_util::Stream<Item = managers::Result<T>> + Unpin,
{
    let mut sent = 0;
    while sent < DEPTH.min(total) {
        push(in_flight, sent);
        sent += 1;
    }
    while let Some(r) = in_flight.next().await {
        r?;
        if sent < total {
            push(in_flight, sent);
            sent += 1;
        }
    }
    Ok(())
}

/// The pipelined workload on a spawned task instead of the thread in `block_on`: how a
/// service usually runs (the client's I/O tasks then share its worker thread).
async fn in_task(contender: &str, address: &str, total: usize) -> Result<f64> {
    let (contender, address) = (contender.to_owned(), address.to_owned());
    tokio::spawn(async move { pipelined(&contender, &address, total).await }).await?
}

/// [`pipelined`], on a spawned task if `spawned` (see [`in_task`]).
async fn pipelined_on(spawned: bool, contender: &str, address: &str, total: usize) -> Result<f64> {
    if spawned {
        in_task(contender, address, total).await
    } else {
        pipelined(contender, address, total).await
    }
}

/// The `load` role: one workload alone, for profiling (see `Role::Load` for the kinds).
pub(crate) fn load(kind: &str, address: &str, calls: usize) -> Result<f64> {
    let rt = role_runtime()?;
    if let Some(rest) = kind.strip_prefix("clients-") {
        // `clients-N-KIND`: N clients, each on its own connection, for `calls` milliseconds.
        let (n, contender) = rest.split_once('-').context("clients-N-KIND")?;
        let duration = Duration::from_millis(calls as u64);
        let (rate, _) = rt.block_on(throughput(contender, address, n.parse()?, duration))?;
        return Ok(rate);
    }
    if let Some(contender) = kind.strip_prefix("latency-") {
        // `BENCH_PAYLOAD=N`: echo N bytes instead of an incr.
        let size = std::env::var("BENCH_PAYLOAD").map_or(Ok(0), |s| s.parse())?;
        let mut samples = if std::env::var_os("BENCH_SPAWN").is_some() {
            let (contender, address) = (contender.to_owned(), address.to_owned());
            rt.block_on(async move {
                tokio::spawn(async move { latency(&contender, &address, calls, size).await })
                    .await?
            })?
        } else {
            rt.block_on(latency(contender, address, calls, size))?
        };
        return Ok(percentile(&mut samples, 0.5) * 1e6);
    }
    if kind == "memory" {
        let pid: u32 = std::env::var("BENCH_SERVER_PID")?.parse()?;
        return rt.block_on(memory(address, pid, calls));
    }
    if std::env::var_os("BENCH_SPAWN").is_some() {
        return rt.block_on(in_task(kind, address, calls));
    }
    rt.block_on(pipelined(kind, address, calls))
}

/// Proxies created, called once and dropped, per second.
async fn create_drop(address: &str, n: usize) -> Result<f64> {
    let client = Client::connect(address, KEY).await?;
    let t = Instant::now();
    for i in 0..n {
        let small: SmallProxy = client.create("small", (i as u64,)).await?;
        small.get().await?;
    }
    client.number_of_objects().await?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Server memory per live small object: the server's resident memory grown while `n`
/// objects were created and held, divided by the objects live.
async fn memory(address: &str, pid: u32, n: usize) -> Result<f64> {
    let client = Client::connect(address, KEY).await?;
    // Warm up the allocator and the table.
    for i in 0..1000u64 {
        let _: SmallProxy = client.create("small", (i,)).await?;
    }
    client.number_of_objects().await?;
    let before = procfs::rss_bytes(pid).context("rss")?;
    let mut held = Vec::with_capacity(n);
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0u64;
    while (sent as usize) < n.min(64) {
        in_flight.push(client.create::<SmallProxy, _>("small", (sent,)));
        sent += 1;
    }
    while let Some(r) = in_flight.next().await {
        held.push(r?);
        if (sent as usize) < n {
            in_flight.push(client.create::<SmallProxy, _>("small", (sent,)));
            sent += 1;
        }
    }
    let live = client.number_of_objects().await?;
    let after = procfs::rss_bytes(pid).context("rss")?;
    drop(held);
    Ok((after.saturating_sub(before)) as f64 / live.max(1) as f64)
}

// ---------------------------------------------------------------------------------------
// Statistics and the table

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Objects Python's manager creates and holds for its memory figure (it makes 500-850
/// a second over a Unix socket).
const PY_MEMORY_OBJECTS: usize = 1_000;

/// Python's figures against ours, per round: each `Row` holds Python's in its `floor`
/// column.
struct PythonRows {
    /// Sequential latency: mean, p50, p99.
    seq: [Row; 3],
    /// The same with a 64 KiB payload.
    big: [Row; 3],
    /// Throughput, by client count.
    tput: Vec<Row>,
    /// Server CPU per call, 16 clients.
    cpu: Row,
    create: Row,
    /// Python's memory per live object, measured once.
    memory: Option<f64>,
}

impl PythonRows {
    fn new(client_counts: usize) -> Self {
        PythonRows {
            seq: Default::default(),
            big: Default::default(),
            tput: (0..client_counts).map(|_| Row::default()).collect(),
            cpu: Row::default(),
            create: Row::default(),
            memory: None,
        }
    }
}

/// Stock CPython clients (`python/bench_sync.py`), per round: CPython's SyncManager
/// server's figures in each `Row`'s `floor` column, our server's in its `managers` column.
#[derive(Default)]
struct SyncRows {
    /// Sequential latency of `d[k] = i`: mean, p50, p99.
    seq: [Row; 3],
    /// Throughput of [`python::SYNC_CLIENTS`] client processes.
    tput: Row,
    /// Server CPU per call in that workload.
    cpu: Row,
    /// The client processes' CPU per call in that workload (all together).
    client_cpu: Row,
    /// `d = m.dict(); d["a"] = 1; del d` per second.
    create: Row,
    /// Objects left on the server by the create + drop workload, over all rounds: on
    /// CPython's server, on ours.
    leaked: (f64, f64),
}

impl SyncRows {
    /// One round: the same client script against CPython's server (started by the script,
    /// on loopback TCP or at `unix`) and against ours (`serve sync`), in the order given.
    fn round(
        &mut self,
        scale: &Scale,
        ours: &ServerProcess,
        unix: Option<&std::path::Path>,
        ours_first: bool,
    ) -> Result<()> {
        let run_ours = || {
            python::run_sync(
                scale,
                python::SyncServer::Ours {
                    address: &ours.address,
                    pid: ours.pid(),
                },
            )
            .context("stock CPython clients against our server")
        };
        let run_theirs = || {
            if let Some(path) = unix {
                let _ = std::fs::remove_file(path);
            }
            python::run_sync(scale, python::SyncServer::CPython { unix })
                .context("stock CPython clients against CPython's server")
        };
        let (o, t) = if ours_first {
            let o = run_ours()?;
            (o, run_theirs()?)
        } else {
            let t = run_theirs()?;
            (run_ours()?, t)
        };
        let n = python::SYNC_CLIENTS;
        let names = [
            "latency_mean".to_owned(),
            "latency_p50".to_owned(),
            "latency_p99".to_owned(),
            format!("throughput_{n}"),
            format!("cpu_per_call_{n}"),
            format!("client_cpu_per_call_{n}"),
            "create_drop".to_owned(),
            "leaked".to_owned(),
        ];
        // Every figure first, so that a missing one adds none of this round's.
        let figures = |p: &python::PythonResults| -> Result<Vec<f64>> {
            names.iter().map(|name| p.get(name)).collect()
        };
        let (o, t) = (
            figures(&o).context("our server")?,
            figures(&t).context("CPython's server")?,
        );
        for (i, row) in self.seq.iter_mut().enumerate() {
            row.push(t[i], o[i]);
        }
        self.tput.push(t[3], o[3]);
        self.cpu.push(t[4], o[4]);
        self.client_cpu.push(t[5], o[5]);
        self.create.push(t[6], o[6]);
        self.leaked.0 += t[7];
        self.leaked.1 += o[7];
        Ok(())
    }

    /// The table lines of `transport`.
    fn lines(&self, transport: &str) -> String {
        let mut out = String::new();
        for (stat, row) in ["mean", "p50", "p99"].iter().zip(&self.seq) {
            let target = if *stat == "p50" { "<= 1.00x" } else { "" };
            let name = format!("sequential latency, `d[k] = i`, {stat}");
            out.push_str(&row.line(&name, transport, target, true, 2));
        }
        let n = python::SYNC_CLIENTS;
        out.push_str(&self.tput.line(
            &format!("throughput, {n} client processes, `d[k] = i` on one shared dict"),
            transport,
            ">= 3x",
            false,
            1,
        ));
        out.push_str(&self.cpu.line(
            &format!("server CPU per call ({n} client processes)"),
            transport,
            "",
            true,
            2,
        ));
        out.push_str(&self.client_cpu.line(
            &format!("client CPU per call ({n} client processes, all together)"),
            transport,
            "",
            true,
            2,
        ));
        out.push_str(&self.create.line(
            "create + call + drop, `d = m.dict(); d['a'] = 1; del d`",
            transport,
            if transport == "tcp" { ">= 50x" } else { "" },
            false,
            1,
        ));
        out
    }
}

/// One row: per-round values of both contenders.
#[derive(Default)]
struct Row {
    floor: Vec<f64>,
    managers: Vec<f64>,
}

impl Row {
    fn push(&mut self, floor: f64, managers: f64) {
        self.floor.push(floor);
        self.managers.push(managers);
    }

    /// One table line: both medians (times for a latency, rates otherwise) and the median
    /// ratio with `digits` decimals.
    fn line(
        &self,
        name: &str,
        transport: &str,
        target: &str,
        is_latency: bool,
        digits: usize,
    ) -> String {
        let (base, m, ratio) = self.summary();
        let fmt = |x: f64| if is_latency { us(x) } else { per_s(x) };
        format!(
            "| {name} | {transport} | {} | {} | {ratio:.digits$}x | {target} |\n",
            fmt(base),
            fmt(m)
        )
    }

    /// Medians and the median of per-round ratios.
    fn summary(&self) -> (f64, f64, f64) {
        let mut ratios: Vec<f64> = self
            .floor
            .iter()
            .zip(&self.managers)
            .map(|(f, m)| m / f)
            .collect();
        (
            median(&mut self.floor.clone()),
            median(&mut self.managers.clone()),
            median(&mut ratios),
        )
    }
}

fn us(s: f64) -> String {
    format!("{:.1} µs", s * 1e6)
}

fn per_s(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M/s", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0} k/s", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.1} k/s", x / 1e3)
    } else {
        format!("{x:.1} /s")
    }
}

pub(crate) fn run(scale: Scale, with_python: bool) -> Result<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = scratch_dir("run")?;
    let mut table = String::new();
    writeln!(
        table,
        "| workload | transport | floor | managers | managers / floor | target |"
    )?;
    writeln!(table, "|---|---|---|---|---|---|")?;
    let mut extra = String::new();
    // Python's rows, both transports, and why it was skipped (once it failed to run).
    let mut python_rows = String::new();
    let mut python_skipped: Option<String> = None;
    // The stock CPython client rows (our SyncManager server against CPython's), both
    // transports; why they were skipped (on a transport, once a run failed there); objects
    // the create + drop workload left behind, if any.
    let mut sync_rows = String::new();
    let mut sync_skipped = String::new();
    let mut sync_leaks = String::new();
    // The throughput workload (16 clients, else the largest) whose server CPU is reported
    // and whose figure is compared with Python's 16 clients.
    let idx16 = scale
        .client_counts
        .iter()
        .position(|&c| c == 16)
        .unwrap_or(scale.client_counts.len().saturating_sub(1));
    for transport in ["tcp", "unix"] {
        let (floor_addr, managers_addr) = match transport {
            "tcp" => ("127.0.0.1:0".to_owned(), "127.0.0.1:0".to_owned()),
            _ => (
                dir.join("floor.sock").display().to_string(),
                dir.join("managers.sock").display().to_string(),
            ),
        };
        let floor_server = ServerProcess::start("floor", &floor_addr)?;
        let managers_server = ServerProcess::start("managers", &managers_addr)?;
        // Where our SyncManager server for stock CPython clients listens (a fresh one each
        // round, as CPython's is).
        let sync_addr = match transport {
            "tcp" => "127.0.0.1:0".to_owned(),
            _ => dir.join("sync.sock").display().to_string(),
        };
        let mut sync = SyncRows::default();
        let mut sync_failed = false;
        let (fa, ma) = (
            floor_server.address.clone(),
            managers_server.address.clone(),
        );
        let mut rows: Vec<(String, String, Row, bool)> = Vec::new();
        let mut seq_mean = Row::default();
        let mut seq_p50 = Row::default();
        let mut seq_p99 = Row::default();
        let mut big_mean = Row::default();
        let mut big_p50 = Row::default();
        let mut big_p99 = Row::default();
        let mut tput: Vec<Row> = scale.client_counts.iter().map(|_| Row::default()).collect();
        let mut cpu = Row::default();
        let mut pipe = Row::default();
        let mut pipe_task = Row::default();
        let mut pipe_ordered = Row::default();
        let mut pipe_task_ordered = Row::default();
        let mut creates = Vec::new();
        // Python's figures (in a `Row`'s `floor` column) and ours from the same round.
        let mut py = PythonRows::new(scale.client_counts.len());
        for round in 0..scale.rounds {
            rt.block_on(async {
                let mut f = latency("floor", &fa, scale.latency_calls, 0).await?;
                let mut m = latency("managers", &ma, scale.latency_calls, 0).await?;
                seq_mean.push(mean(&f), mean(&m));
                seq_p50.push(percentile(&mut f, 0.5), percentile(&mut m, 0.5));
                seq_p99.push(percentile(&mut f, 0.99), percentile(&mut m, 0.99));
                let mut f = latency("floor", &fa, scale.payload_calls, 64 * 1024).await?;
                let mut m = latency("managers", &ma, scale.payload_calls, 64 * 1024).await?;
                big_mean.push(mean(&f), mean(&m));
                big_p50.push(percentile(&mut f, 0.5), percentile(&mut m, 0.5));
                big_p99.push(percentile(&mut f, 0.99), percentile(&mut m, 0.99));
                for (i, &clients) in scale.client_counts.iter().enumerate() {
                    let c0 = floor_server.cpu();
                    let (f, fcalls) = throughput("floor", &fa, clients, scale.duration).await?;
                    let c1 = floor_server.cpu();
                    let m0 = managers_server.cpu();
                    let (m, mcalls) = throughput("managers", &ma, clients, scale.duration).await?;
                    let m1 = managers_server.cpu();
                    tput[i].push(f, m);
                    if i == idx16 {
                        cpu.push(
                            (c1 - c0) / fcalls.max(1) as f64,
                            (m1 - m0) / mcalls.max(1) as f64,
                        );
                    }
                }
                // Each pipelined figure against a floor run just before it (A B A B):
                // the floor's own figure drifts by more than the gaps between them.
                for (spawned, contender, row) in [
                    (false, "managers", &mut pipe),
                    (false, "pipeline", &mut pipe_ordered),
                    (true, "managers", &mut pipe_task),
                    (true, "pipeline", &mut pipe_task_ordered),
                ] {
                    let n = scale.pipelined_calls;
                    let f = pipelined_on(spawned, "floor", &fa, n).await?;
                    let m = pipelined_on(spawned, contender, &ma, n).await?;
                    row.push(f, m);
                }
                anyhow::Ok(())
            })?;
            let made = rt.block_on(create_drop(&ma, scale.create_drops))?;
            creates.push(made);
            if with_python && python_skipped.is_none() {
                // Python's manager on the same transport, in the same round. Its memory
                // figure once, over Unix sockets: over TCP each of its creates takes
                // about 130 ms (see the README).
                let unix = (transport == "unix").then(|| dir.join("python.sock"));
                let memory = (unix.is_some() && py.memory.is_none()).then_some(PY_MEMORY_OBJECTS);
                let ours = |row: &Row| row.managers.last().copied().unwrap_or(f64::NAN);
                let result = python::run(&scale, unix.as_deref(), memory).and_then(|p| {
                    // Every figure first, so that a missing one adds none of this round's.
                    let get3 = |name: &str| -> Result<[f64; 3]> {
                        Ok([
                            p.get(&format!("{name}_mean"))?,
                            p.get(&format!("{name}_p50"))?,
                            p.get(&format!("{name}_p99"))?,
                        ])
                    };
                    let (seq, big) = (get3("latency")?, get3("echo")?);
                    let tputs = scale
                        .client_counts
                        .iter()
                        .map(|c| p.get(&format!("throughput_{c}")))
                        .collect::<Result<Vec<_>>>()?;
                    let (cpu_16, create) = (p.get("cpu_per_call_16")?, p.get("create_drop")?);
                    let memory = memory.map(|_| p.get("memory_per_object")).transpose()?;
                    for (i, ours_row) in [&seq_mean, &seq_p50, &seq_p99].into_iter().enumerate() {
                        py.seq[i].push(seq[i], ours(ours_row));
                    }
                    for (i, ours_row) in [&big_mean, &big_p50, &big_p99].into_iter().enumerate() {
                        py.big[i].push(big[i], ours(ours_row));
                    }
                    for (i, theirs) in tputs.into_iter().enumerate() {
                        py.tput[i].push(theirs, ours(&tput[i]));
                    }
                    py.cpu.push(cpu_16, ours(&cpu));
                    py.create.push(create, made);
                    py.memory = py.memory.or(memory);
                    Ok(())
                });
                if let Err(e) = result {
                    python_skipped = Some(e.to_string());
                }
            }
            if with_python && !sync_failed {
                // CPython's server and ours by turns, each first in every other round. Both
                // are fresh processes each round, so that where the scheduler puts their
                // threads (which moves the sequential latency over TCP between about 20 and
                // 60 µs here; see `latencies` in bench_sync.py) is drawn again each round.
                let unix = (transport == "unix").then(|| dir.join("cpython-sync.sock"));
                if unix.is_some() {
                    // Left behind if the last round's server had to be killed.
                    let _ = std::fs::remove_file(&sync_addr);
                }
                let result = ServerProcess::start("sync", &sync_addr)
                    .context("our SyncManager server did not start")
                    .and_then(|ours| sync.round(&scale, &ours, unix.as_deref(), round % 2 == 1));
                if let Err(e) = result {
                    sync_failed = true;
                    writeln!(
                        sync_skipped,
                        "Stock CPython client rows over {transport} skipped from round {}: {e:#}",
                        round + 1
                    )?;
                }
            }
        }
        if !sync.create.managers.is_empty() {
            sync_rows.push_str(&sync.lines(transport));
            if sync.leaked != (0.0, 0.0) {
                writeln!(
                    sync_leaks,
                    "Objects left by create + call + drop over {transport}: {} on CPython's \
                     server, {} on ours.",
                    sync.leaked.0, sync.leaked.1
                )?;
            }
        }
        if !py.create.managers.is_empty() {
            for (workload, rows) in [("sequential", &py.seq), ("64 KiB echo", &py.big)] {
                for (stat, row) in ["mean", "p50", "p99"].iter().zip(rows) {
                    let name = format!("{workload} latency, {stat}");
                    python_rows.push_str(&row.line(&name, transport, "", true, 2));
                }
            }
            for (&clients, row) in scale.client_counts.iter().zip(&py.tput) {
                let target = if clients == 16 { ">= 3x" } else { "" };
                let name = format!("throughput, {clients} client(s)");
                python_rows.push_str(&row.line(&name, transport, target, false, 1));
            }
            python_rows.push_str(&py.cpu.line(
                "server CPU per call (16 clients)",
                transport,
                "",
                true,
                2,
            ));
            python_rows.push_str(&py.create.line(
                "proxy create + call + drop",
                transport,
                ">= 50x",
                false,
                1,
            ));
        }
        rows.push(("sequential latency, mean".into(), "".into(), seq_mean, true));
        rows.push((
            "sequential latency, p50".into(),
            "<= 1.10x".into(),
            seq_p50,
            true,
        ));
        rows.push(("sequential latency, p99".into(), "".into(), seq_p99, true));
        rows.push((
            "64 KiB echo latency, mean".into(),
            "".into(),
            big_mean,
            true,
        ));
        rows.push(("64 KiB echo latency, p50".into(), "".into(), big_p50, true));
        rows.push(("64 KiB echo latency, p99".into(), "".into(), big_p99, true));
        for (i, &clients) in scale.client_counts.iter().enumerate() {
            let target = if clients >= 16 { ">= 0.85x" } else { "" };
            let row = std::mem::take(&mut tput[i]);
            rows.push((
                format!("throughput, {clients} client(s)"),
                target.into(),
                row,
                false,
            ));
        }
        rows.push((
            "pipelined throughput, 64 in flight".into(),
            ">= 0.80x".into(),
            pipe,
            false,
        ));
        rows.push((
            "the same through a `Pipeline` (results in order)".into(),
            ">= 0.80x".into(),
            pipe_ordered,
            false,
        ));
        rows.push((
            "the same, driven from a spawned task".into(),
            "".into(),
            pipe_task,
            false,
        ));
        rows.push((
            "a `Pipeline` driven from a spawned task".into(),
            "".into(),
            pipe_task_ordered,
            false,
        ));
        for (name, target, row, is_latency) in &rows {
            table.push_str(&row.line(name, transport, target, *is_latency, 2));
        }
        let (f, m, ratio) = cpu.summary();
        writeln!(
            table,
            "| server CPU per call (16 clients) | {transport} | {} | {} | {ratio:.2}x | <= 1.5x |",
            us(f),
            us(m)
        )?;
        writeln!(
            extra,
            "| proxy create + call + drop | {transport} | {} | |",
            per_s(median(&mut creates))
        )?;
        drop(managers_server);
        drop(floor_server);
        // Memory on a fresh server, so earlier workloads do not blur the delta.
        let fresh = ServerProcess::start("managers", &managers_addr)?;
        let per_object = rt.block_on(memory(&fresh.address, fresh.pid(), scale.memory_objects))?;
        let own = std::mem::size_of::<crate::store::Small>() as f64;
        writeln!(
            extra,
            "| server memory per live small object beyond its own size ({} objects) | {transport} | {:.0} bytes | <= 150 bytes |",
            scale.memory_objects,
            per_object - own
        )?;
        if let Some(theirs) = py.memory.filter(|_| transport == "unix") {
            writeln!(
                python_rows,
                "| server memory per live small object (RSS; {PY_MEMORY_OBJECTS} objects for Python, {} for managers) | {transport} | {theirs:.0} bytes | {per_object:.0} bytes | {:.2}x | |",
                scale.memory_objects,
                per_object / theirs
            )?;
        }
    }
    let tls = tls_rows(&rt, &scale, &dir, scale.client_counts[idx16])?;
    let _ = std::fs::remove_dir_all(&dir);
    writeln!(table)?;
    table.push_str(&tls);
    writeln!(table)?;
    writeln!(table, "| managers only | transport | value | target |")?;
    writeln!(table, "|---|---|---|---|")?;
    table.push_str(&extra);
    if with_python {
        writeln!(table)?;
        if !python_rows.is_empty() {
            writeln!(
                table,
                "| vs Python's manager | transport | python | managers | managers / python | target |"
            )?;
            writeln!(table, "|---|---|---|---|---|---|")?;
            table.push_str(&python_rows);
            writeln!(
                table,
                "\nPython's manager has no pipelined row: its proxies wait for each reply before \
                 the next call on their connection. Its memory is measured over a Unix socket \
                 only (over TCP each create takes about 130 ms)."
            )?;
        }
        if let Some(e) = python_skipped {
            writeln!(table, "Python contender skipped: {e}")?;
        }
        writeln!(table)?;
        if !sync_rows.is_empty() {
            writeln!(
                table,
                "| stock CPython client | transport | CPython's server | our server | ours / CPython's | target |"
            )?;
            writeln!(table, "|---|---|---|---|---|---|")?;
            table.push_str(&sync_rows);
            let version = python::version().unwrap_or_else(|| "?".into());
            writeln!(
                table,
                "\nThe same stock CPython {version} client code (`bench/python/bench_sync.py`: \
                 `SyncManager(address, authkey).connect()`, unchanged) against CPython's own \
                 SyncManager server and against ours (`serve sync`: the SyncManager types with \
                 `python_clients(true)`, as managerd runs), in the same round. Ratios are ours / \
                 CPython's: lower is better for latency and CPU, higher for throughput and \
                 create + drop. Latency after a 0.5 s warm-up on the same connection. The {} \
                 throughput clients are separate processes (forked), each with its own \
                 connection.",
                python::SYNC_CLIENTS
            )?;
            table.push_str(&sync_leaks);
        }
        table.push_str(&sync_skipped);
    }
    Ok(table)
}

/// The cost of TLS: managers over TLS against managers over plaintext TCP, the same
/// workloads interleaved in each round (a CA and a server certificate made for the run).
fn tls_rows(
    rt: &tokio::runtime::Runtime,
    scale: &Scale,
    dir: &Path,
    clients: usize,
) -> Result<String> {
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir)?;
    let ca = crate::certs::TestCa::new("bench CA");
    let leaf = ca.server(&["127.0.0.1"]);
    std::fs::write(tls_dir.join("ca.pem"), ca.pem())?;
    std::fs::write(tls_dir.join("server.pem"), leaf.cert_pem)?;
    std::fs::write(tls_dir.join("server.key"), leaf.key_pem)?;
    let _ = TLS_CA.set(tls_dir.join("ca.pem"));
    let plain = ServerProcess::start("managers", "127.0.0.1:0")?;
    let tls = ServerProcess::start(
        &format!("managers-tls:{}", tls_dir.display()),
        "127.0.0.1:0",
    )?;
    let (pa, ta) = (
        plain.address.clone(),
        format!("{TLS_PREFIX}{}", tls.address),
    );
    let (mut seq, mut big, mut tput, mut pipe) = (
        Row::default(),
        Row::default(),
        Row::default(),
        Row::default(),
    );
    for _ in 0..scale.rounds {
        rt.block_on(async {
            let mut p = latency("managers", &pa, scale.latency_calls, 0).await?;
            let mut t = latency("managers", &ta, scale.latency_calls, 0).await?;
            seq.push(percentile(&mut p, 0.5), percentile(&mut t, 0.5));
            let mut p = latency("managers", &pa, scale.payload_calls, 64 * 1024).await?;
            let mut t = latency("managers", &ta, scale.payload_calls, 64 * 1024).await?;
            big.push(percentile(&mut p, 0.5), percentile(&mut t, 0.5));
            let (p, _) = throughput("managers", &pa, clients, scale.duration).await?;
            let (t, _) = throughput("managers", &ta, clients, scale.duration).await?;
            tput.push(p, t);
            let p = pipelined("managers", &pa, scale.pipelined_calls).await?;
            let t = pipelined("managers", &ta, scale.pipelined_calls).await?;
            pipe.push(p, t);
            anyhow::Ok(())
        })?;
    }
    let mut out = String::new();
    writeln!(
        out,
        "| TLS cost | transport | plaintext | TLS | TLS / plaintext | target |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    out.push_str(&seq.line("sequential latency, p50", "tcp", "", true, 2));
    out.push_str(&big.line("64 KiB echo latency, p50", "tcp", "", true, 2));
    out.push_str(&tput.line(
        &format!("throughput, {clients} client(s)"),
        "tcp",
        "",
        false,
        2,
    ));
    out.push_str(&pipe.line("pipelined throughput, 64 in flight", "tcp", "", false, 2));
    Ok(out)
}
