//! The crate's top-level modules form layers: no module depends, directly or through
//! others, on a module that depends on it. Read from the sources: a `crate::x` path (or a
//! name the crate root re-exports from `x`) in a file of module `m` is an edge `m -> x`.
//!
//! The layers today, from the bottom: `error`, `transport`, `auth`, `client`, `value`,
//! `python`, `server`, `manager` (and `fuzz`, a harness over everything). See the crate
//! docs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (doc comments included: links are not dependencies).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal ("http://") is rare here; none names a module.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first path segment of everything named through `crate::`: `crate::a::b` gives `a`,
/// `crate::{a::b, C}` gives `a` and `C`.
fn crate_names(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // Not `some_crate::`.
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        if depth == 1 {
                            names.insert(ident_at(&group[i..]).to_owned());
                        }
                        item_start = false;
                    }
                    c if c.is_whitespace() => {}
                    _ => item_start = false,
                }
            }
        } else {
            names.insert(ident_at(rest).to_owned());
        }
    }
    names
}

/// Names the crate root re-exports, by the module they come from: `pub use m::{A, B};`.
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for statement in code(lib).split(';') {
        let Some(used) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = ident_at(used);
        if !modules.contains(module) {
            continue;
        }
        let tail = &used[module.len()..];
        for name in tail
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|s| !s.is_empty())
        {
            map.insert(name.to_owned(), module.to_owned());
        }
    }
    map
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let module_of = |path: &Path| {
        let relative = path.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a component");
        first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| module_of(p))
        .filter(|m| m != "lib")
        .collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexported = reexports(&lib, &modules);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        if from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source");
        for name in crate_names(&code(&text)) {
            let to = if modules.contains(&name) {
                Some(name)
            } else {
                reexported.get(&name).cloned()
            };
            if let Some(to) = to.filter(|to| *to != from) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// A path from `from` back to `to`, if there is one.
fn path_to(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![to.to_owned()]);
    }
    if !seen.insert(from.to_owned()) {
        return None;
    }
    for next in edges.get(from).into_iter().flatten() {
        if let Some(mut path) = path_to(edges, next, to, seen) {
            path.insert(0, from.to_owned());
            return Some(path);
        }
    }
    None
}

#[test]
fn the_top_level_modules_have_no_cycle() {
    let edges = graph();
    let mut cycles = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if let Some(back) = path_to(&edges, to, from, &mut BTreeSet::new()) {
                cycles.push(format!("{from} -> {}", back.join(" -> ")));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "module cycles:\n{}\nedges: {edges:#?}",
        cycles.join("\n")
    );
}

#[test]
fn the_reader_sees_the_edges_it_must() {
    // The check is only as good as its reading: these edges exist and must be seen.
    let edges = graph();
    for (from, to) in [
        ("server", "client"),
        ("client", "transport"),
        ("value", "client"),
        ("manager", "server"),
        ("auth", "transport"),
    ] {
        assert!(
            edges.get(from).is_some_and(|t| t.contains(to)),
            "{from} -> {to} not seen: {edges:#?}"
        );
    }
    assert_eq!(
        crate_names("use crate::{a::b, C, d::{e, f}}; crate::g::h; my_crate::x;"),
        ["C", "a", "d", "g"].map(String::from).into()
    );
}

/// The names a file reaches through `super::` (its siblings and its parent's items): the
/// first segment of each path, `super::{a, b::c}` giving `a` and `b`.
fn super_names(code: &str) -> BTreeSet<String> {
    crate_names(
        &code
            .replace("crate::", "krate::")
            .replace("super::", "crate::"),
    )
}

#[test]
fn the_client_core_is_io_free() {
    // `client/core.rs` (the calls in flight and who writes) and `client/reply.rs` (the
    // replies it holds) are plain state and data: they reach no socket, task or lock, and
    // no other client module (in particular not `connection.rs`, which uses them).
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/client");
    for (file, allowed_super, allowed_crate) in [
        (
            "core.rs",
            &["reply"][..],
            &["Error", "Result", "TransportError"][..],
        ),
        ("reply.rs", &[][..], &["Error", "TransportError"][..]),
    ] {
        let text = code(&std::fs::read_to_string(client.join(file)).expect("source"));
        // Its unit tests may use what they like (a counting waker needs an `Arc`).
        let text = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let supers = super_names(text);
        let crates = crate_names(text);
        // `use super::*` in a `tests` module is the file's own items.
        for name in supers.iter().filter(|n| !n.is_empty()) {
            assert!(
                allowed_super.contains(&name.as_str()),
                "{file} uses super::{name}"
            );
        }
        for name in &crates {
            assert!(
                allowed_crate.contains(&name.as_str()),
                "{file} uses crate::{name}"
            );
        }
        for io in [
            "tokio",
            "std::sync",
            "std::net",
            "std::io",
            "Instant",
            "socket",
        ] {
            assert!(!text.contains(io), "{file} mentions {io}");
        }
    }
    // The reading sees what it must.
    assert_eq!(
        super_names("use super::{reply::OwnedReply, core}; super::x::y"),
        ["core", "reply", "x"].map(String::from).into()
    );
}
