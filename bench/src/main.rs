//! `managers-bench`: measures every call path of `managers` against a hand-written tokio
//! floor over the same socket, and against Python's `multiprocessing.managers`, in one run.
//!
//! ```text
//! cargo run --release -p managers-bench -- --quick          # about a minute
//! cargo run --release -p managers-bench                     # the full run, a few minutes
//! cargo run --release -p managers-bench -- --quick --out bench.md
//! ```
//!
//! Servers run in their own processes (this binary re-executed with `serve`), clients in
//! this one. Contenders run interleaved (floor, managers, floor, managers, ...) for several
//! rounds; each figure is the median over rounds, and each ratio the median of the
//! per-round ratios, so that a noisy neighbour hits both sides of a ratio alike. Latency
//! ratios are `managers / floor` (lower is better); throughput ratios `managers / floor`
//! (higher is better).
//!
//! With Python, two more sets of rows: CPython's manager (Python client and server) against
//! ours (Rust client and server), and stock CPython clients (`SyncManager.connect()`,
//! unchanged) against our SyncManager server (`serve sync`, managerd's configuration)
//! versus against CPython's own SyncManager server, the two in the same round.

mod ab;
#[path = "../../tests/support/certs.rs"]
mod certs;
mod floor;
mod procfs;
mod python;
mod soak;
mod store;
mod workloads;

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) rounds: usize,
    pub(crate) latency_calls: usize,
    pub(crate) payload_calls: usize,
    pub(crate) duration: Duration,
    pub(crate) client_counts: &'static [usize],
    pub(crate) pipelined_calls: usize,
    pub(crate) create_drops: usize,
    pub(crate) memory_objects: usize,
}

const SMOKE: Scale = Scale {
    rounds: 1,
    latency_calls: 50,
    payload_calls: 10,
    duration: Duration::from_millis(50),
    client_counts: &[1, 4],
    pipelined_calls: 256,
    create_drops: 50,
    memory_objects: 1_000,
};

const QUICK: Scale = Scale {
    rounds: 3,
    latency_calls: 2_000,
    payload_calls: 300,
    duration: Duration::from_millis(300),
    client_counts: &[1, 4, 16, 64],
    pipelined_calls: 100_000,
    create_drops: 2_000,
    memory_objects: 100_000,
};

const FULL: Scale = Scale {
    rounds: 7,
    latency_calls: 10_000,
    payload_calls: 1_000,
    duration: Duration::from_secs(1),
    client_counts: &[1, 4, 16, 64],
    pipelined_calls: 300_000,
    create_drops: 10_000,
    memory_objects: 100_000,
};

#[derive(Debug, Parser)]
#[command(about = "Benchmark managers against a tokio floor and Python's managers")]
struct Args {
    #[command(subcommand)]
    role: Option<Role>,
    /// A short run (under 2 minutes).
    #[arg(long)]
    quick: bool,
    /// The smallest run: proves the benchmark builds and runs (CI).
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// Skip the Python contender.
    #[arg(long)]
    no_python: bool,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Serve one contender until stdin closes (used by the benchmark itself). With
    /// `BENCH_CURRENT_THREAD=1` on a current-thread runtime (for profiling).
    Serve {
        /// `floor`, `managers`, `sync` (the SyncManager types with stock CPython clients
        /// served, as `managerd` runs) or `soak`.
        kind: String,
        /// Where to listen: `127.0.0.1:0` or a socket path.
        address: String,
    },
    /// Drive one workload against a running server, for profiling it: KIND `floor` or
    /// `managers` (pipelined, CALLS calls; `pipeline` through a `Pipeline`), `latency-KIND`
    /// (CALLS sequential calls, prints the p50 in µs; `BENCH_PAYLOAD=N` echoes N bytes
    /// instead), `clients-N-KIND` (N clients for CALLS milliseconds) or `memory`. With
    /// `BENCH_SPAWN=1` the pipelined and latency workloads run on a spawned task; with
    /// `BENCH_CURRENT_THREAD=1` on a current-thread runtime.
    Load {
        /// `floor` or `managers`.
        kind: String,
        /// The server's address.
        address: String,
        /// How many calls (64 in flight).
        calls: usize,
    },
    /// Compare two builds of this benchmark (the commit before a change and the one after):
    /// their `load` runs alternated round by round against servers of their own build,
    /// with the floor, on this machine; prints a Markdown table of medians, ratios and
    /// client CPU per call (before/after figures for commit messages and closing notes).
    Ab {
        /// The build before the change (a `managers-bench` binary).
        old: std::path::PathBuf,
        /// The build after it.
        new: std::path::PathBuf,
        /// Alternated rounds.
        #[arg(long, default_value_t = 8)]
        rounds: usize,
        /// Calls per run (for `latency-*` kinds: sequential calls).
        #[arg(long, default_value_t = 100_000)]
        calls: usize,
        /// Comma-separated `load` kinds of the managers side.
        #[arg(long, default_value = "managers,pipeline")]
        kinds: String,
        /// Comma-separated transports.
        #[arg(long, default_value = "tcp,unix")]
        transports: String,
        /// Drive the workloads from a spawned task (`BENCH_SPAWN=1`).
        #[arg(long)]
        spawn: bool,
    },
    /// Soak: CLIENTS clients in WORKERS processes doing mixed work on one server for
    /// SECONDS, workers SIGKILLed and restarted at random, attackers flooding the server;
    /// then check that no item was lost or taken twice, no lock is held by a dead client
    /// and no object leaked. Exits non-zero if a check fails.
    Soak {
        /// How long.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// How many client connections.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// How many worker processes they are spread over.
        #[arg(long, default_value_t = 10)]
        workers: usize,
        /// Soak runs one after another against the same server (its RSS after each tells
        /// memory the allocator keeps from memory that grows).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// One soak worker process (used by `soak`).
    #[command(hide = true)]
    SoakWorker {
        address: String,
        connections: usize,
        tag: u32,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.role {
        Some(Role::Serve { kind, address }) => return workloads::serve(&kind, &address),
        Some(Role::Soak {
            seconds,
            clients,
            workers,
            rounds,
        }) => {
            return soak::run(soak::Soak {
                seconds,
                clients,
                workers: workers.max(1),
                rounds,
            })
        }
        Some(Role::SoakWorker {
            address,
            connections,
            tag,
        }) => return soak::worker(&address, connections, tag),
        Some(Role::Load {
            kind,
            address,
            calls,
        }) => {
            let rate = workloads::load(&kind, &address, calls)?;
            println!("{rate:.0} calls/s");
            // This process's own CPU time, for `ab`.
            if let Some(cpu) = procfs::cpu_seconds(std::process::id()) {
                println!("cpu {cpu:.4}");
            }
            return Ok(());
        }
        Some(Role::Ab {
            old,
            new,
            rounds,
            calls,
            kinds,
            transports,
            spawn,
        }) => {
            let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
            print!(
                "{}",
                ab::run(&ab::Ab {
                    old,
                    new,
                    rounds,
                    calls,
                    kinds: list(&kinds),
                    transports: list(&transports),
                    spawn,
                })?
            );
            return Ok(());
        }
        None => {}
    }
    let scale = if args.smoke {
        SMOKE
    } else if args.quick {
        QUICK
    } else {
        FULL
    };
    let table = workloads::run(scale, !args.no_python && !args.smoke)?;
    println!("{table}");
    if let Some(path) = args.out {
        std::fs::write(&path, &table)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
