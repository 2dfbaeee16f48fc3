//! `managers-bench ab OLD NEW`: two builds of this benchmark (a commit before a change and
//! one after) measured against each other in the same minutes, round after round, on this
//! machine. Single runs move by 10-30% on the shared 2-core machines we use, far more than
//! most changes; alternating the two builds (and the floor) round by round and comparing
//! medians is how every before/after figure in `docs/performance.md` is taken.
//!
//! Each build's client drives a server of its own build (so a change of the wire format
//! is measured too); the floor's server and client come from NEW. A round runs the floor,
//! then OLD and NEW in an order that alternates from round to round. Each run is a `load`
//! process (`managers-bench load KIND ADDRESS CALLS`), which prints its rate and, since
//! December 2026, its own CPU time (older builds print only the rate).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::workloads::ServerProcess;

/// What to compare, and how long.
pub(crate) struct Ab {
    pub(crate) old: PathBuf,
    pub(crate) new: PathBuf,
    pub(crate) rounds: usize,
    pub(crate) calls: usize,
    /// `load` kinds of the managers side: `managers`, `pipeline`, `latency-managers`, ...
    pub(crate) kinds: Vec<String>,
    /// `tcp` and/or `unix`.
    pub(crate) transports: Vec<String>,
    /// Drive the workloads from a spawned task (`BENCH_SPAWN=1`).
    pub(crate) spawn: bool,
}

/// One `load` run: its figure (calls/s, or µs for latency kinds) and its CPU time.
struct Run {
    value: f64,
    cpu: Option<f64>,
}

/// The `load` kind of the floor that `kind` is compared with.
fn floor_kind(kind: &str) -> String {
    if let Some(rest) = kind.strip_prefix("clients-") {
        // `clients-N-KIND`
        let n = rest.split('-').next().unwrap_or("16");
        format!("clients-{n}-floor")
    } else if kind.starts_with("latency-") {
        "latency-floor".to_owned()
    } else {
        "floor".to_owned()
    }
}

/// Run `binary load kind address calls` and read what it printed.
fn load(binary: &Path, kind: &str, address: &str, calls: usize, spawn: bool) -> Result<Run> {
    let mut command = Command::new(binary);
    command
        .args(["load", kind, address, &calls.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if spawn {
        command.env("BENCH_SPAWN", "1");
    }
    let out = command
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    if !out.status.success() {
        bail!("{} load {kind} failed: {}", binary.display(), out.status);
    }
    parse_load(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("{} load {kind} printed nothing to read", binary.display()))
}

/// `123456 calls/s` (every build), then `cpu 0.1234` (builds since December 2026).
fn parse_load(text: &str) -> Option<Run> {
    let mut lines = text.lines();
    let value = lines.next()?.split_whitespace().next()?.parse().ok()?;
    let cpu = lines
        .find_map(|l| l.strip_prefix("cpu "))
        .and_then(|s| s.trim().parse().ok());
    Some(Run { value, cpu })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A server of `binary`'s build for `kind` on `transport` (for unix, a socket in `dir`
/// named by `role`: both builds are usually files named `managers-bench`).
fn server(
    binary: &Path,
    role: &str,
    kind: &str,
    transport: &str,
    dir: &Path,
) -> Result<ServerProcess> {
    let address = match transport {
        "tcp" => "127.0.0.1:0".to_owned(),
        "unix" => {
            let path = dir.join(format!("{role}.sock"));
            let _ = std::fs::remove_file(&path);
            path.to_string_lossy().into_owned()
        }
        other => bail!("unknown transport {other:?} (tcp or unix)"),
    };
    ServerProcess::start_with(binary, kind, &address)
}

/// Measure, and return the Markdown table.
pub(crate) fn run(ab: &Ab) -> Result<String> {
    if ab.rounds == 0 {
        bail!("at least one round");
    }
    let dir = crate::workloads::scratch_dir("ab")?;
    let mut table = String::new();
    writeln!(
        table,
        "| transport | workload | floor | old | new | new / old | old / floor | new / floor | client CPU per call, old / new |"
    )?;
    writeln!(table, "|---|---|---|---|---|---|---|---|---|")?;
    for transport in &ab.transports {
        let floor_server = server(&ab.new, "floor", "floor", transport, &dir)?;
        let old_server = server(&ab.old, "old", "managers", transport, &dir)?;
        let new_server = server(&ab.new, "new", "managers", transport, &dir)?;
        for kind in &ab.kinds {
            let floor = floor_kind(kind);
            let (mut f, mut o, mut n) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..ab.rounds {
                f.push(load(
                    &ab.new,
                    &floor,
                    &floor_server.address,
                    ab.calls,
                    ab.spawn,
                )?);
                let old_first = round % 2 == 0;
                for old in [old_first, !old_first] {
                    if old {
                        o.push(load(
                            &ab.old,
                            kind,
                            &old_server.address,
                            ab.calls,
                            ab.spawn,
                        )?);
                    } else {
                        n.push(load(
                            &ab.new,
                            kind,
                            &new_server.address,
                            ab.calls,
                            ab.spawn,
                        )?);
                    }
                }
                eprintln!("{transport} {kind}: round {} of {}", round + 1, ab.rounds);
            }
            let value = |runs: &[Run]| median(runs.iter().map(|r| r.value).collect());
            let cpu = |runs: &[Run]| -> Option<f64> {
                let cpus: Option<Vec<f64>> = runs.iter().map(|r| r.cpu).collect();
                cpus.map(|c| median(c) / ab.calls as f64 * 1e6)
            };
            let (fv, ov, nv) = (value(&f), value(&o), value(&n));
            let cpu_text = match (cpu(&o), cpu(&n)) {
                (Some(a), Some(b)) => format!("{a:.2} / {b:.2} µs"),
                (None, Some(b)) => format!("- / {b:.2} µs"),
                (Some(a), None) => format!("{a:.2} / - µs"),
                (None, None) => "-".to_owned(),
            };
            writeln!(
                table,
                "| {transport} | {kind}{} | {fv:.0} | {ov:.0} | {nv:.0} | {:.3} | {:.2}x | {:.2}x | {cpu_text} |",
                if ab.spawn { " (spawned)" } else { "" },
                nv / ov,
                ov / fv,
                nv / fv,
            )?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    writeln!(
        table,
        "\nMedians of {} alternated rounds of {} calls each: calls/s, or for `latency-*` kinds \
         the p50 in µs (lower is better). Client CPU per call: the `load` process's own user + \
         system time over its calls, warm-up included.",
        ab.rounds, ab.calls
    )?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_output_of_old_and_new_builds_is_read() {
        let new = parse_load("654321 calls/s\ncpu 0.1234\n").unwrap();
        assert_eq!(new.value, 654321.0);
        assert_eq!(new.cpu, Some(0.1234));
        let old = parse_load("654321 calls/s\n").unwrap();
        assert_eq!(old.cpu, None);
        assert!(parse_load("").is_none());
        assert!(parse_load("Error: refused\n").is_none());
    }

    #[test]
    fn each_kind_is_compared_with_the_floor_of_its_kind() {
        assert_eq!(floor_kind("managers"), "floor");
        assert_eq!(floor_kind("pipeline"), "floor");
        assert_eq!(floor_kind("latency-managers"), "latency-floor");
        assert_eq!(floor_kind("clients-16-managers"), "clients-16-floor");
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
