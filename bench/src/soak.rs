//! `managers-bench soak`: many clients doing mixed work on one server for a while, worker
//! processes SIGKILLed and restarted at random, attackers flooding it all along; then the
//! server's books are checked.
//!
//! ```text
//! managers-bench soak --seconds 600 --clients 1000     # the run recorded in the README
//! managers-bench soak --seconds 10 --clients 50        # the smoke run CI makes
//! ```
//!
//! Work items are taken through `Work::take`, which records who took each item on the
//! server, in the same call, and registers an undo: an item whose taker dies before it
//! received it goes back. So at the end every item put is either recorded as taken (once)
//! or still in the queue, whatever was killed when.

// `#[shared]` exposes `pub` methods; in this binary nothing is reachable from outside.
#![allow(unreachable_pub)]

use std::collections::VecDeque;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use managers::sync::{DictProxy, LockProxy, QueueProxy};
use managers::{shared, Caller, Client, Registration, ServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procfs;
use crate::workloads::{stop_child, ServerProcess};

const KEY: &str = "soak-key";

/// The work queue whose takes are recorded on the server.
#[derive(Debug, Default)]
pub struct Work {
    state: Arc<Mutex<WorkState>>,
}

#[derive(Debug, Default)]
struct WorkState {
    items: VecDeque<u64>,
    /// Which items were taken, one bit each (items are numbered from 1): a few hundred
    /// kilobytes for millions of items, so that the server's memory is the server's.
    taken: Vec<u64>,
    taken_count: u64,
    put: u64,
    /// Items taken a second time (must stay 0).
    duplicates: u64,
}

impl WorkState {
    /// Mark `item` taken (true) or not; whether it was taken before.
    fn mark(&mut self, item: u64, taken: bool) -> bool {
        let (word, bit) = ((item / 64) as usize, 1u64 << (item % 64));
        if self.taken.len() <= word {
            self.taken.resize(word + 1, 0);
        }
        let was = self.taken[word] & bit != 0;
        if taken {
            self.taken[word] |= bit;
        } else {
            self.taken[word] &= !bit;
        }
        match (was, taken) {
            (false, true) => self.taken_count += 1,
            (true, false) => self.taken_count -= 1,
            _ => {}
        }
        was
    }
}

#[shared]
impl Work {
    /// Add an item.
    pub fn put(&self, item: u64) {
        let mut state = self.state.lock().unwrap();
        state.items.push_back(item);
        state.put += 1;
    }

    /// Take the oldest item (it is recorded as taken); given back if the caller never
    /// receives it.
    pub fn take(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap();
        let item = state.items.pop_front()?;
        if state.mark(item, true) {
            state.duplicates += 1;
        }
        drop(state);
        let shared = self.state.clone();
        Caller::undo_unless_taken(move || {
            let mut state = shared.lock().unwrap();
            state.mark(item, false);
            state.items.push_front(item);
        });
        Some(item)
    }

    /// Items put, taken, left, and taken twice.
    pub fn report(&self) -> (u64, u64, u64, u64) {
        let state = self.state.lock().unwrap();
        (
            state.put,
            state.taken_count,
            state.items.len() as u64,
            state.duplicates,
        )
    }
}

/// The soak server: the SyncManager types, plus one shared `Work`, `Lock`, dict and
/// scratch queue every client uses.
pub(crate) async fn serve(
    address: &str,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let server = managers::sync::register(ServerBuilder::new())
        .address(address)
        .authkey(KEY)
        .register(Registration::instance("work", Work::default()))
        .register(Registration::instance(
            "the_lock",
            managers::sync::Lock::new(),
        ))
        .register(Registration::instance(
            "the_dict",
            managers::sync::Dict::new(Vec::new()),
        ))
        .register(Registration::instance(
            "scratch",
            managers::sync::Queue::new(0),
        ))
        .bind()
        .await?;
    println!("ADDRESS {}", server.address());
    server.serve_until(stop).await?;
    Ok(())
}

/// The shared objects, as one client sees them.
struct Objects {
    work: WorkProxy,
    lock: LockProxy,
    dict: DictProxy<u32, u64>,
    scratch: QueueProxy<u64>,
}

impl Objects {
    async fn open(client: &Client) -> Result<Self> {
        Ok(Objects {
            work: client.create("work", ()).await?,
            lock: client.create("the_lock", ()).await?,
            dict: client.create("the_dict", ()).await?,
            scratch: client.create("scratch", ()).await?,
        })
    }
}

/// The `soak-worker` role: `connections` clients doing mixed work until stdin closes.
pub(crate) fn worker(address: &str, connections: usize, tag: u32) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let watch = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            watch.store(true, Ordering::SeqCst);
        });
        let mut tasks = Vec::new();
        for c in 0..connections {
            let (address, stop) = (address.to_owned(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(client) = Client::connect(address.as_str(), KEY).await else {
                    return;
                };
                let Ok(objects) = Objects::open(&client).await else {
                    return;
                };
                let mut n = tag.wrapping_mul(7919).wrapping_add(c as u32);
                while !stop.load(Ordering::SeqCst) {
                    n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let _ = one_op(&objects, n).await;
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    Ok(())
}

/// One random operation.
async fn one_op(o: &Objects, n: u32) -> Result<()> {
    match (n >> 8) % 10 {
        0..=3 => {
            if o.work.take().await?.is_none() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        4 | 5 => o.dict.set(&(n % 512), &u64::from(n)).await?,
        6 => {
            o.dict.get(&(n % 512)).await?;
        }
        7 => {
            let guard = o.lock.lock().await?;
            tokio::task::yield_now().await;
            guard.unlock().await?;
        }
        8 => o.scratch.put(u64::from(n)).await?,
        _ => {
            let _ = o
                .scratch
                .get_with(true, Some(Duration::from_millis(5)))
                .await;
        }
    }
    Ok(())
}

/// How to run the soak.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Soak {
    pub(crate) seconds: u64,
    pub(crate) clients: usize,
    pub(crate) workers: usize,
    /// Runs one after another against the same server (to tell memory the allocator
    /// keeps from memory that grows).
    pub(crate) rounds: usize,
}

/// A worker process.
struct Worker {
    child: Child,
}

impl Worker {
    fn start(address: &str, connections: usize, tag: u32) -> Result<Worker> {
        let child = Command::new(std::env::current_exe()?)
            .args([
                "soak-worker",
                address,
                &connections.to_string(),
                &tag.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Worker { child })
    }

    /// SIGKILL.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ask it to stop and wait (10 s at most, then SIGKILL).
    fn stop(mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

/// Run the soak and print its report; an error if a check failed.
pub(crate) fn run(soak: Soak) -> Result<()> {
    let server = ServerProcess::start("soak", "127.0.0.1:0")?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut failures = Vec::new();
    for _ in 0..soak.rounds.max(1) {
        let report = rt.block_on(drive(&server, soak))?;
        println!("{}\n", report.table);
        std::io::stdout().flush()?;
        failures.extend(report.failures);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("soak checks failed: {}", failures.join("; "))
    }
}

struct Report {
    table: String,
    failures: Vec<String>,
}

async fn drive(server: &ServerProcess, soak: Soak) -> Result<Report> {
    let address = server.address.clone();
    let client = Client::connect(address.as_str(), KEY).await?;
    let objects = Objects::open(&client).await?;
    let baseline = client.number_of_objects().await?;
    let rss_start = procfs::rss_bytes(server.pid()).unwrap_or(0);
    let rss_peak = Arc::new(AtomicU64::new(rss_start));
    let done = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(soak.seconds);

    // The producer: items 1, 2, 3, ... as fast as the workers take them.
    let producer = {
        let (work, done) = (objects.work.clone(), done.clone());
        tokio::spawn(async move {
            // Numbered after the items of earlier rounds.
            let mut next = work.report().await.map_or(0, |(put, ..)| put);
            while !done.load(Ordering::SeqCst) {
                let (_, _, left, _) = work.report().await.unwrap_or((0, 0, 0, 0));
                if left < 1_000 {
                    for _ in 0..100 {
                        next += 1;
                        if work.put(next).await.is_err() {
                            return;
                        }
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };

    // Workers, some SIGKILLed and restarted all along.
    let per_worker = soak.clients.div_ceil(soak.workers).max(1);
    let mut workers: Vec<Option<Worker>> = (0..soak.workers)
        .map(|i| Worker::start(&address, per_worker, i as u32).map(Some))
        .collect::<Result<_>>()?;
    let mut kills = 0u32;

    let flooded = Arc::new(AtomicU64::new(0));
    // Attackers: silent connections, wrong keys, garbage, and a logged-in client
    // flooding increfs, holds and adoptions of objects it does not hold.
    let attackers: Vec<_> = vec![
        tokio::spawn(silent_flood(address.clone(), done.clone())),
        tokio::spawn(wrong_keys(address.clone(), done.clone())),
        tokio::spawn(garbage(address.clone(), done.clone())),
        tokio::spawn(handoff_flood(
            address.clone(),
            objects.work.handle().id(),
            done.clone(),
            flooded.clone(),
        )),
    ];

    // A legitimate client's latency, probed all along.
    let probe = {
        let (dict, done) = (objects.dict.clone(), done.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let start = Instant::now();
                if dict.get(&0).await.is_ok() {
                    latencies.push(start.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    };

    let mut tick = 0u64;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_peak.fetch_max(
            procfs::rss_bytes(server.pid()).unwrap_or(0),
            Ordering::Relaxed,
        );
        tick += 1;
        if tick % 2 == 0 {
            // SIGKILL a worker (round robin) and start another in its place.
            let i = (tick / 2) as usize % workers.len();
            if let Some(w) = workers[i].take() {
                w.kill();
                kills += 1;
            }
            workers[i] = Some(Worker::start(&address, per_worker, (1000 + tick) as u32)?);
        }
    }
    done.store(true, Ordering::SeqCst);
    for w in workers.into_iter().flatten() {
        w.stop();
    }
    let _ = producer.await;
    for a in attackers {
        let _ = a.await;
    }
    let mut latencies = probe.await.unwrap_or_default();

    // The books.
    let mut failures = Vec::new();
    let (put, taken, left, duplicates) = objects.work.report().await?;
    if put != taken + left {
        failures.push(format!("{put} put, {taken} taken + {left} left"));
    }
    if duplicates > 0 {
        failures.push(format!("{duplicates} items taken twice"));
    }
    // Dead clients' locks are released and their objects freed once the server has seen
    // them go: give it a moment.
    let settle = Instant::now() + Duration::from_secs(10);
    let (mut locked, mut objects_now);
    loop {
        locked = objects.lock.locked().await?;
        objects_now = client.number_of_objects().await?;
        if (!locked && objects_now == baseline) || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if locked {
        failures.push("the lock is still held".into());
    }
    if objects_now != baseline {
        failures.push(format!("{objects_now} objects, {baseline} before"));
    }
    // The server gives memory back a second after a crowd of clients left: read its RSS
    // until it is within the target or 5 s have passed.
    let rss_target = rss_start + rss_start / 5;
    let settle = Instant::now() + Duration::from_secs(5);
    let mut rss_end = procfs::rss_bytes(server.pid()).unwrap_or(0);
    while rss_end > rss_target && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss_end = procfs::rss_bytes(server.pid()).unwrap_or(0);
    }
    latencies.sort();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let table = format!(
        "| soak | value |\n|---|---|\n\
         | duration | {} s |\n\
         | clients (worker processes) | {} ({}) |\n\
         | workers SIGKILLed and restarted | {kills} |\n\
         | incref/hold/adopt frames flooded by a logged-in attacker | {} |\n\
         | items put / taken / left / taken twice | {put} / {taken} / {left} / {duplicates} |\n\
         | items lost | {} |\n\
         | lock held at the end | {locked} |\n\
         | objects at the end / before | {objects_now} / {baseline} |\n\
         | legitimate call p99 during the floods | {:.1} ms ({} calls) |\n\
         | server RSS start / peak / end | {:.1} / {:.1} / {:.1} MiB |\n\
         | result | {} |",
        soak.seconds,
        soak.clients,
        soak.workers,
        flooded.load(Ordering::Relaxed),
        put.saturating_sub(taken + left),
        p99.as_secs_f64() * 1e3,
        latencies.len(),
        mib(rss_start),
        mib(rss_peak.load(Ordering::Relaxed)),
        mib(rss_end),
        if failures.is_empty() { "pass" } else { "FAIL" },
    );
    Ok(Report { table, failures })
}

/// Connections that never say a word, 200 open at a time, renewed all along.
async fn silent_flood(address: String, done: Arc<AtomicBool>) {
    let mut open = VecDeque::new();
    while !done.load(Ordering::SeqCst) {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(address.as_str()),
        )
        .await
        {
            open.push_back(s);
        }
        if open.len() > 200 {
            open.pop_front();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Logins with the wrong key.
async fn wrong_keys(address: String, done: Arc<AtomicBool>) {
    while !done.load(Ordering::SeqCst) {
        let _ = Client::builder()
            .handshake_timeout(Duration::from_secs(1))
            .connect(address.as_str(), "wrong")
            .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connections that send garbage: a huge length, random bytes, a truncated frame.
async fn garbage(address: String, done: Arc<AtomicBool>) {
    let mut n = 1u32;
    while !done.load(Ordering::SeqCst) {
        if let Ok(mut s) = tokio::net::TcpStream::connect(address.as_str()).await {
            let mut challenge = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut challenge)).await;
            n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let junk: Vec<u8> = match n % 3 {
                0 => u32::MAX.to_be_bytes().to_vec(),
                1 => (0..1024).map(|i| (n >> (i % 24)) as u8).collect(),
                _ => vec![0, 0, 0, 100, 1, 2, 3],
            };
            let _ = s.write_all(&junk).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A frame: its length (4 bytes, big-endian), then the body.
async fn write_frame(s: &mut tokio::net::TcpStream, body: &[u8]) -> std::io::Result<()> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    s.write_all(&frame).await
}

async fn read_frame(s: &mut tokio::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// Log in with the right key, speaking the protocol by hand.
async fn raw_login(address: &str) -> Result<tokio::net::TcpStream> {
    use manager_core::handshake::{ClientHandshake, Step};
    let mut s = tokio::net::TcpStream::connect(address).await?;
    let mut handshake = ClientHandshake::new(KEY.as_bytes(), [5; 32]);
    loop {
        let message = read_frame(&mut s).await?;
        match handshake.receive(&message)? {
            Step::Send(reply) => write_frame(&mut s, &reply).await?,
            Step::SendAndFinish(reply) => {
                write_frame(&mut s, &reply).await?;
                return Ok(s);
            }
            Step::Finished => return Ok(s),
        }
    }
}

/// A logged-in client flooding increfs, holds and adoptions for an object it does not
/// hold (`target`, whose id it learned) and for random ids, reconnecting when the server
/// closes it.
async fn handoff_flood(
    address: String,
    target: managers::ObjectId,
    done: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    use manager_core::wire::{self, ClientMessage, Request};
    let mut n = 7u64;
    while !done.load(Ordering::SeqCst) {
        let Ok(mut s) = raw_login(&address).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        for _ in 0..2_000 {
            if done.load(Ordering::SeqCst) {
                return;
            }
            n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let object = if n % 2 == 0 {
                target
            } else {
                managers::ObjectId(n)
            };
            let hold = n.to_le_bytes().repeat(2).try_into().unwrap_or([0; 16]);
            let request = match n % 3 {
                0 => Request::Incref { object },
                1 => Request::Hold { object, hold },
                _ => Request::Adopt { object, hold },
            };
            let Ok(body) = wire::encode(&ClientMessage::V1(request)) else {
                break;
            };
            if write_frame(&mut s, &body).await.is_err() {
                break;
            }
            sent.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
