//! Run the Python contender (`python/bench_manager.py`) and read its results.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::Scale;

/// How long one run of the Python contender may take before it is stopped (its figures
/// are then skipped with a note).
const TIME_LIMIT: Duration = Duration::from_secs(180);

/// What Python's manager achieved: the script's `result NAME VALUE` lines.
pub(crate) struct PythonResults {
    figures: HashMap<String, f64>,
}

impl PythonResults {
    /// The figure `name` (see the script's docstring for the names).
    pub(crate) fn get(&self, name: &str) -> Result<f64> {
        self.figures
            .get(name)
            .copied()
            .with_context(|| format!("python printed no {name}"))
    }
}

/// One run of the Python contender over loopback TCP, or over a Unix socket at `unix`
/// (a path that must not exist yet); with `memory`, also its memory per live object with
/// that many objects held.
pub(crate) fn run(
    scale: &Scale,
    unix: Option<&Path>,
    memory: Option<usize>,
) -> Result<PythonResults> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench_manager.py");
    let duration = scale.duration.as_secs_f64().max(0.3);
    let clients: Vec<String> = scale.client_counts.iter().map(usize::to_string).collect();
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["--calls", &scale.latency_calls.min(5_000).to_string()])
        .args(["--payload-calls", &scale.payload_calls.to_string()])
        .args(["--clients", &clients.join(",")])
        .args(["--duration", &duration.to_string()])
        .args(["--creates", &scale.create_drops.min(2_000).to_string()]);
    if let Some(path) = unix {
        command.arg("--unix").arg(path);
    }
    if let Some(objects) = memory {
        command.args(["--memory", &objects.to_string()]);
    }
    run_script(command)
}

/// Which SyncManager server the stock CPython clients of `python/bench_sync.py` use.
pub(crate) enum SyncServer<'a> {
    /// CPython's own, started by the script: on loopback TCP, or on a Unix socket at this
    /// path (which must not exist yet).
    CPython { unix: Option<&'a Path> },
    /// Ours, already listening at `address` (as `ADDRESS` from the `serve` role prints it)
    /// in process `pid`.
    Ours { address: &'a str, pid: u32 },
}

/// The stock CPython client workloads of `python/bench_sync.py` (sequential latency,
/// throughput of [`SYNC_CLIENTS`] processes, create + call + drop) against `server`.
pub(crate) fn run_sync(scale: &Scale, server: SyncServer<'_>) -> Result<PythonResults> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench_sync.py");
    let duration = scale.duration.as_secs_f64().max(0.3);
    // A create + call + drop takes about 200 ms on CPython's server over TCP: time-bound
    // (1 s quick, 2 s full), so that its few rounds do not hold up the run.
    let create_seconds = (scale.duration.as_secs_f64() * 2.0).clamp(1.0, 2.0);
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["--calls", &scale.latency_calls.min(5_000).to_string()])
        .args(["--clients", &SYNC_CLIENTS.to_string()])
        .args(["--duration", &duration.to_string()])
        .args(["--creates", &scale.create_drops.min(2_000).to_string()])
        .args(["--create-seconds", &create_seconds.to_string()]);
    match server {
        SyncServer::CPython { unix } => {
            if let Some(path) = unix {
                command.arg("--unix").arg(path);
            }
        }
        SyncServer::Ours { address, pid } => {
            command
                .args(["--connect", address])
                .args(["--server-pid", &pid.to_string()]);
        }
    }
    run_script(command)
}

/// Client processes of the stock CPython throughput workload.
pub(crate) const SYNC_CLIENTS: usize = 16;

/// The version of `python3` (`3.11.7`), if it runs.
pub(crate) fn version() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.version.split()[0])"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Run one of the scripts (`command`, its arguments given) under [`TIME_LIMIT`] and read
/// its `result NAME VALUE` lines; its standard error in the error if it fails.
fn run_script(mut command: Command) -> Result<PythonResults> {
    command
        // bench_sync.py imports bench_manager.py: no __pycache__ left in the checkout.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so that a run stopped at the time limit takes the manager's
    // server and client processes with it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().context("python3 is not available")?;
    let pid = child.id();
    // Both pipes are drained while we wait, so a chatty failure cannot block the script.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let group = format!("-{pid}");
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            bail!(
                "python3 took over {} s and was stopped",
                TIME_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = stdout.join().unwrap_or_default();
    if !status.success() {
        bail!("python3 failed: {}", stderr.join().unwrap_or_default());
    }
    let figures = text
        .lines()
        .filter_map(|l| l.strip_prefix("result "))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect();
    Ok(PythonResults { figures })
}
