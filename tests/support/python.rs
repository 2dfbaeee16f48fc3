//! Finding a CPython interpreter for the tests that run stock Python clients (shared by the
//! workspace's test crates through `#[path]`).

// Each crate that includes this file uses a part of it.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The CPython versions the project serves.
pub(crate) const PYTHONS: [&str; 3] = ["python3.11", "python3.12", "python3.13"];

/// The interpreter `name` (`python3.12`): on `PATH` if it runs there, else the same
/// interpreter among pyenv's installed versions (pyenv's shim on `PATH` runs only the
/// selected versions). `None`, with a line saying the tests for it are skipped, if it is
/// nowhere.
pub(crate) fn find_python(name: &str) -> Option<OsString> {
    let works = |program: &OsString| {
        Command::new(program)
            .args(["-c", "import multiprocessing.managers, pickle"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let versions = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")))
        .map(|root| root.join("versions"));
    let mut candidates = vec![OsString::from(name)];
    if let Some(Ok(dir)) = versions.map(std::fs::read_dir) {
        let mut found: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin").join(name))
            .filter(|path| path.is_file())
            .collect();
        found.sort();
        candidates.extend(found.into_iter().rev().map(PathBuf::into_os_string));
    }
    let found = candidates.into_iter().find(works);
    if found.is_none() {
        println!("skipped: {name} not found (neither on PATH nor among pyenv's versions)");
    }
    found
}

/// Every CPython of [`PYTHONS`] found (none: the tests that need one are skipped).
pub(crate) fn all_pythons() -> Vec<OsString> {
    PYTHONS
        .iter()
        .filter_map(|name| find_python(name))
        .collect()
}

/// The first CPython of [`PYTHONS`] found.
pub(crate) fn first_python() -> Option<OsString> {
    PYTHONS.iter().find_map(|name| find_python(name))
}
