//! Run the Python contender (`python/bench_manager.py`) and read its results.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::Scale;

/// What Python's manager achieved.
pub(crate) struct PythonResults {
    pub(crate) latency_p50: f64,
    pub(crate) throughput_16: f64,
    pub(crate) create_drop: f64,
}

/// One run of the Python contender over loopback TCP, or over a Unix socket at `unix`
/// (a path that must not exist yet).
pub(crate) fn run(scale: &Scale, unix: Option<&Path>) -> Result<PythonResults> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench_manager.py");
    let duration = scale.duration.as_secs_f64().max(0.3);
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .args(["--calls", &scale.latency_calls.min(5_000).to_string()])
        .args(["--clients", "16"])
        .args(["--duration", &duration.to_string()])
        .args(["--creates", &scale.create_drops.min(2_000).to_string()]);
    if let Some(path) = unix {
        command.arg("--unix").arg(path);
    }
    let output = command.output().context("python3 is not available")?;
    if !output.status.success() {
        bail!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let get = |name: &str| -> Result<f64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("result "))
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .with_context(|| format!("python printed no {name}"))
    };
    Ok(PythonResults {
        latency_p50: get("latency_p50")?,
        throughput_16: get("throughput_16")?,
        create_drop: get("create_drop")?,
    })
}
