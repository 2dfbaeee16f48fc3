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
        .args(["--creates", &scale.create_drops.min(2_000).to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = unix {
        command.arg("--unix").arg(path);
    }
    if let Some(objects) = memory {
        command.args(["--memory", &objects.to_string()]);
    }
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
