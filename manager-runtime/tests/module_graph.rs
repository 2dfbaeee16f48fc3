//! The crate's top-level modules form layers: no module depends, directly or through
//! others, on a module that depends on it. Read from the sources: a `crate::x` path (or a
//! name the crate root re-exports from `x`) in a file of module `m` is an edge `m -> x`.
//!
//! The layers today, from the bottom: `error`, `transport`, `auth`, `client`, `value`,
//! `python`, `server`, `manager` (and `fuzz`, a harness over everything). See the crate
//! docs.
//!
//! The files inside each module form layers too: a file's `super::x` (or
//! `crate::<module>::x`) is an edge to the sibling file `x`, or to the file the module
//! re-exports `x` from, or to the module's own file (`mod.rs`) for an item defined there;
//! the module's own file has an edge to each child its items use. The order of the files
//! of `client/` and `server/` is in `docs/design.md`.

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

/// `text` without the contents of string and character literals (their braces would
/// confuse the reading of blocks).
fn without_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push('"');
            }
            // An escape: `'\''`, `'\n'`, `'\u{7b}'`.
            '\'' if chars.peek() == Some(&'\\') => {
                chars.next();
                chars.next();
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
                out.push_str("''");
            }
            // `'{'`, `'}'`, `'"'`; a lifetime (`'a`) has no closing quote after one character.
            '\'' if matches!(chars.clone().nth(1), Some('\'')) => {
                chars.next();
                chars.next();
                out.push_str("' '");
            }
            c => out.push(c),
        }
    }
    out
}

/// `code` with each inline module (`mod tests { .. }`) read as the file's own code: its
/// `super::` is the file itself (dropped), its `super::super::` the file's parent.
fn flatten_inline_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    loop {
        let Some(at) = find_inline_mod(rest) else {
            out.push_str(rest);
            return out;
        };
        let open = at + rest[at..].find('{').expect("a block");
        let mut depth = 0;
        let mut close = rest.len();
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str(&rest[..at]);
        let inner = flatten_inline_modules(&rest[open + 1..close]);
        out.push_str(
            &inner
                .replace("super::super::", "\u{1}")
                .replace("super::", "self::")
                .replace('\u{1}', "super::"),
        );
        rest = &rest[(close + 1).min(rest.len())..];
    }
}

/// Where the next `mod name {` starts in `code`.
fn find_inline_mod(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = code[from..].find("mod ") {
        let at = from + found;
        from = at + 4;
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let after = code[at + 4..].trim_start();
        let name = ident_at(after);
        if !name.is_empty() && after[name.len()..].trim_start().starts_with('{') {
            return Some(at);
        }
    }
    None
}

/// The files of module `module` (a directory of `src`, with its `mod.rs` or with a file
/// `src/<module>.rs` beside it) as a graph: a node per file, `mod` for the module's own
/// file. A file's `super::x` (or `crate::<module>::x`) is an edge to `x` if `x` is a
/// sibling file, to the file `x` is re-exported from if the module's file re-exports it,
/// and to `mod` otherwise; the module's file has an edge to each child it uses (`c::`).
fn inner_graph(module: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let dir = src.join(module);
    let mut children = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("module directory") {
        let path = entry.expect("dir entry").path();
        assert!(
            path.is_file(),
            "nested directory {path:?}: extend the reading"
        );
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let read = || {
            flatten_inline_modules(&without_literals(&code(
                &std::fs::read_to_string(&path).unwrap(),
            )))
        };
        children.insert(if stem == "mod" { "mod".into() } else { stem }, read());
    }
    if !children.contains_key("mod") {
        let text = std::fs::read_to_string(src.join(format!("{module}.rs"))).expect("module file");
        children.insert(
            "mod".into(),
            flatten_inline_modules(&without_literals(&code(&text))),
        );
    }
    let names: BTreeSet<String> = children.keys().filter(|k| *k != "mod").cloned().collect();
    // Names the module's file re-exports (or imports) from a child: `use c::{A, B}`.
    let mut reexported = BTreeMap::new();
    for statement in children["mod"].split(';') {
        let statement = statement.trim();
        let Some(used) = ["pub use ", "pub(crate) use ", "use "]
            .iter()
            .find_map(|p| {
                statement
                    .rsplit_once('\n')
                    .map_or(statement, |(_, s)| s.trim())
                    .strip_prefix(p)
            })
        else {
            continue;
        };
        let child = ident_at(used);
        if !names.contains(child) {
            continue;
        }
        for name in used[child.len()..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|s| !s.is_empty() && *s != "self")
        {
            reexported.insert(name.to_owned(), child.to_owned());
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, text) in &children {
        let targets = edges.entry(from.clone()).or_default();
        if from == "mod" {
            // Re-exports are the module's face, not a use of the child by the module's
            // own items, unless those items use the name too.
            let text = &without_reexports(text);
            for (name, child) in &reexported {
                let used = text.match_indices(name.as_str()).any(|(at, _)| {
                    let before = text[..at].chars().last();
                    let after = text[at + name.len()..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if used {
                    targets.insert(child.clone());
                }
            }
            for child in &names {
                let pattern = format!("{child}::");
                let uses = text.match_indices(&pattern).any(|(at, _)| {
                    !text[..at]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if uses {
                    targets.insert(child.clone());
                }
            }
            continue;
        }
        let own = text.replace(&format!("crate::{module}::"), "super::");
        for name in super_names(&own) {
            let to = if names.contains(&name) {
                name
            } else {
                reexported
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| "mod".into())
            };
            if to != *from {
                targets.insert(to);
            }
        }
    }
    edges
}

/// `code` without its `pub use` and `pub(crate) use` statements.
fn without_reexports(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = ["pub use ", "pub(crate) use "]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&rest[..at]);
        rest = rest[at..].split_once(';').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

/// Every cycle through an edge of `edges`, as `a -> b -> a`.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in edges {
        for to in targets {
            if let Some(back) = path_to(edges, to, from, &mut BTreeSet::new()) {
                found.push(format!("{from} -> {}", back.join(" -> ")));
            }
        }
    }
    found
}

#[test]
fn the_files_inside_each_module_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            let module = path.file_name().unwrap().to_string_lossy().into_owned();
            let edges = inner_graph(&module);
            if std::env::var_os("SHOW_EDGES").is_some() {
                eprintln!("{module}: {edges:?}");
            }
            all.extend(cycles(&edges).into_iter().map(|c| format!("{module}: {c}")));
        }
    }
    assert!(all.is_empty(), "cycles inside modules:\n{}", all.join("\n"));
}

#[test]
fn the_inner_reader_sees_the_edges_it_must() {
    let client = inner_graph("client");
    let server = inner_graph("server");
    for (edges, from, to) in [
        (&client, "connection", "core"),
        (&client, "handle", "connection"),
        (&client, "session", "link"),
        (&client, "mod", "connection"),
        (&server, "connection", "objects"),
        (&server, "mod", "connection"),
        (&server, "state", "registry"),
    ] {
        assert!(
            edges.get(from).is_some_and(|t| t.contains(to)),
            "{from} -> {to} not seen: {edges:#?}"
        );
    }
    // Inline modules: their `super::` is the file, `super::super::` its parent.
    assert_eq!(
        flatten_inline_modules("a; mod tests { use super::*; super::super::b::c; } d"),
        "a;  use self::*; super::b::c;  d"
    );
    assert_eq!(
        without_reexports("pub use a::b;\nuse c::d;\npub(crate) use e::{f, g};\nh::i();"),
        "\nuse c::d;\n\nh::i();"
    );
    assert_eq!(
        without_literals(r#"x("{", '}', '\'', 'a) y"#),
        r#"x("", ' ', '', 'a) y"#
    );
}
