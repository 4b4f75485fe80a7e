//! Guards the layering of the crate (DESIGN.md §6): which module may name which.
//!
//! Every `src/**/*.rs` file of the library is scanned for the paths it names: `crate::…` and
//! `super::…` paths (resolved against the file's module, `use` groups `{…}` expanded) and the
//! `actix::` crate (the actor framework; `actix_web`, `actix_http` and friends are the HTTP
//! server and are not concerned). Comments are skipped, and so is test code: modules declared
//! under `#[cfg(test)]` and a trailing inline `#[cfg(test)] mod tests { … }`. `main.rs` is the
//! binary and names the library as `director::`, so it is left out. The rules:
//!
//! 1. `proto` names nothing of the crate outside `proto`.
//! 2. `config` names nothing outside `config` and `proto`.
//! 3. `stats` (counters, histograms) names nothing outside `stats`.
//! 4. `transport` names nothing outside `transport`, `config` and `proto`.
//! 5. `cache` names nothing outside `cache`, `config`, `proto` and `stats`.
//! 6. The data-plane modules of `cluster` — [`CLUSTER_DATA_PLANE`], what a request reads and
//!    takes capacity from — name nothing outside themselves, `config`, `proto`, `stats`,
//!    `transport` and `cache`, and never the `actix` crate: no snapshot holds an actor address.
//! 7. `proxy` names no module of `cluster` outside [`CLUSTER_DATA_PLANE`] (so never the
//!    `*_actor` modules, the health monitor or the arbiters), nothing of `admin`, `app`,
//!    `listener` or `demo`, and never the `actix` crate: the request path never awaits an actor.
//! 8. `clock` (the per-poll clock) names nothing of the crate; every layer may name it.
//! 9. The root of `cluster` (`cluster/mod.rs`) re-exports only from [`CLUSTER_DATA_PLANE`], so
//!    `crate::cluster::X` in `proxy` is data plane too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The modules of `cluster` the data plane reads: admission state, backends and their
/// published status, the bucket tree, classification, health state, schedulers, topology.
const CLUSTER_DATA_PLANE: &[&str] = &[
    "admission",
    "backend",
    "backend_status",
    "buckets",
    "classify",
    "health",
    "scheduler",
    "topology",
];

/// One path a file names, from the crate root (`["cluster", "admission", "Admit"]`), or the
/// `actix` crate (`["::actix", …]`).
#[derive(Debug)]
struct Named {
    path: Vec<String>,
    line: usize,
}

/// One library file: its module path and what it names.
struct Scanned {
    file: PathBuf,
    module: Vec<String>,
    named: Vec<Named>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` -> `[a, b]`, `src/a/mod.rs` -> `[a]`, `src/lib.rs` -> `[]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of a file: comments blanked, a trailing inline test module cut off.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Child modules declared under `#[cfg(test)]` in `code` (`#[cfg(test)] mod props;`).
fn test_children(code: &str) -> Vec<String> {
    let mut children = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item = rest.trim_start();
        let item = item
            .strip_prefix("pub(crate) ")
            .or_else(|| item.strip_prefix("pub "))
            .unwrap_or(item);
        if let Some(decl) = item.strip_prefix("mod ") {
            let name: String = decl.chars().take_while(|c| is_ident(*c)).collect();
            if decl[name.len()..].trim_start().starts_with(';') {
                children.push(name);
            }
        }
    }
    children
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parses a path tree at `s[i..]` (`a::b::{c, d::e as f, *}`); returns every path it names
/// and where it ends.
fn path_tree(s: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    loop {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        match s.get(i) {
            Some('{') => {
                i += 1;
                let mut paths = Vec::new();
                loop {
                    while i < s.len() && (s[i].is_whitespace() || s[i] == ',') {
                        i += 1;
                    }
                    if i >= s.len() || s[i] == '}' {
                        return (paths, i + 1);
                    }
                    let (inner, end) = path_tree(s, i);
                    paths.extend(inner.into_iter().map(|p| {
                        let mut full = segments.clone();
                        full.extend(p.into_iter().filter(|seg| seg != "self"));
                        full
                    }));
                    i = end;
                    // Skip a rename (`as name`) up to the next item.
                    while i < s.len() && s[i] != ',' && s[i] != '}' {
                        i += 1;
                    }
                }
            }
            Some('*') => {
                segments.push("*".to_owned());
                return (vec![segments], i + 1);
            }
            Some(c) if is_ident(*c) => {
                let start = i;
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                segments.push(s[start..i].iter().collect());
                if s.get(i) == Some(&':') && s.get(i + 1) == Some(&':') {
                    i += 2;
                } else {
                    return (vec![segments], i);
                }
            }
            _ => return (vec![segments], i),
        }
    }
}

/// Every `crate::`, `super::` and `actix::` path in `code`, resolved against `module`.
fn named_paths(code: &str, module: &[String]) -> Vec<Named> {
    let chars: Vec<char> = code.chars().collect();
    let mut named = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':';
        let rest: String = chars[i..chars.len().min(i + 8)].iter().collect();
        if !boundary
            || !(rest.starts_with("crate::") || rest.starts_with("super::") || rest.starts_with("actix::"))
        {
            i += 1;
            continue;
        }
        let line = chars[..i].iter().filter(|c| **c == '\n').count() + 1;
        let (paths, end) = path_tree(&chars, i);
        for path in paths {
            let resolved = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("actix") => std::iter::once("::actix".to_owned())
                    .chain(path[1..].iter().cloned())
                    .collect(),
                _ => {
                    let ups = path.iter().take_while(|s| *s == "super").count();
                    let mut base = module[..module.len().saturating_sub(ups)].to_vec();
                    base.extend(path[ups..].iter().cloned());
                    base
                }
            };
            named.push(Named { path: resolved, line });
        }
        i = end.max(i + 1);
    }
    named
}

/// Every library file with what it names; test-only modules left out.
fn scan() -> Vec<Scanned> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let texts: Vec<(PathBuf, Vec<String>, String)> = files
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "main.rs"))
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read source");
            let module = module_of(&f);
            (f, module, code_of(&text))
        })
        .collect();
    let test_only: Vec<Vec<String>> = texts
        .iter()
        .flat_map(|(_, module, code)| {
            test_children(code).into_iter().map(move |child| {
                let mut path = module.clone();
                path.push(child);
                path
            })
        })
        .collect();
    texts
        .into_iter()
        .filter(|(_, module, _)| !test_only.iter().any(|t| module.starts_with(t)))
        .map(|(file, module, code)| Scanned {
            named: named_paths(&code, &module),
            file,
            module,
        })
        .collect()
}

/// The modules of `cluster`, by file.
fn cluster_modules(scanned: &[Scanned]) -> BTreeSet<String> {
    scanned
        .iter()
        .filter(|s| s.module.len() == 2 && s.module[0] == "cluster")
        .map(|s| s.module[1].clone())
        .collect()
}

/// Why `named` breaks a rule for a file of `module`, if it does.
fn violation(
    module: &[String],
    named: &[String],
    cluster_modules: &BTreeSet<String>,
) -> Option<&'static str> {
    let top = named.first().map(String::as_str).unwrap_or_default();
    let second = named.get(1).map(String::as_str).unwrap_or_default();
    let data_plane = |m: &str| CLUSTER_DATA_PLANE.contains(&m);
    let only = |allowed: &[&str]| (!allowed.contains(&top)).then_some("names a module above it");
    match module.first().map(String::as_str).unwrap_or_default() {
        "clock" => only(&["clock"]),
        _ if top == "clock" => None,
        "proto" => only(&["proto"]),
        "config" => only(&["config", "proto"]),
        "stats" => only(&["stats"]),
        "transport" => only(&["transport", "config", "proto"]),
        "cache" => only(&["cache", "config", "proto", "stats"]),
        "cluster" if module.get(1).is_some_and(|m| data_plane(m)) => match top {
            "::actix" => Some("a data-plane module of cluster names the actor framework"),
            "cluster" if cluster_modules.contains(second) && !data_plane(second) => {
                Some("a data-plane module of cluster names a control-plane one")
            }
            "cluster" => None,
            _ => only(&["config", "proto", "stats", "transport", "cache"]),
        },
        "proxy" => match top {
            "::actix" => Some("proxy names the actor framework"),
            "cluster" if cluster_modules.contains(second) && !data_plane(second) => {
                Some("proxy names a control-plane module of cluster")
            }
            "admin" | "app" | "listener" | "demo" => Some("proxy names a module above it"),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn the_layers_name_only_what_is_below_them() {
    let scanned = scan();
    let modules = cluster_modules(&scanned);
    let mut broken = Vec::new();
    for file in &scanned {
        for named in &file.named {
            if let Some(why) = violation(&file.module, &named.path, &modules) {
                broken.push(format!(
                    "{}:{}: {} ({why})",
                    file.file.display(),
                    named.line,
                    named.path.join("::")
                ));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_cluster_root_re_exports_only_the_data_plane() {
    let text = std::fs::read_to_string(src_dir().join("cluster/mod.rs")).expect("cluster/mod.rs");
    let code = code_of(&text);
    let re_exported: Vec<&str> = code
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub use "))
        .map(|rest| rest.split("::").next().unwrap_or_default())
        .collect();
    assert!(!re_exported.is_empty(), "cluster/mod.rs re-exports nothing?");
    for module in re_exported {
        assert!(
            CLUSTER_DATA_PLANE.contains(&module),
            "cluster re-exports from `{module}`, which is not a data-plane module"
        );
    }
}

/// The scanner itself: it sees `super::super::` paths, `use` groups and the actix crate, and
/// leaves test modules out — so the rules above are not vacuous.
#[test]
fn the_scanner_resolves_paths_and_groups() {
    let module = vec!["config".to_owned(), "load".to_owned(), "sections".to_owned()];
    let code = "use super::super::model::{A, b::C as D};\nuse crate::{stats::X, cluster};\n\
                // use crate::admin::Hidden;\nfn f() -> actix::Addr<T> { super::Loader }";
    let found: Vec<String> = named_paths(&code_of(code), &module)
        .into_iter()
        .map(|n| format!("{}@{}", n.path.join("::"), n.line))
        .collect();
    assert_eq!(
        found,
        [
            "config::model::A@1",
            "config::model::b::C@1",
            "stats::X@2",
            "cluster@2",
            "::actix::Addr@4",
            "config::load::Loader@4",
        ]
    );
    assert_eq!(test_children("#[cfg(test)]\nmod props;\nmod real;"), ["props"]);
    let scanned = scan();
    let handler = scanned
        .iter()
        .find(|s| s.module == ["proxy", "handler"])
        .expect("proxy::handler scanned");
    assert!(
        handler
            .named
            .iter()
            .any(|n| n.path.first().is_some_and(|t| t == "cluster")),
        "the scanner finds proxy::handler's use of cluster"
    );
    assert!(
        scanned
            .iter()
            .all(|s| s.module.last().is_none_or(|m| m != "tests")),
        "test modules are left out"
    );
}
