//! The runtime's module graph runs downhill: every module imports only from its own layer or
//! earlier ones (the numbered groups of `mod` items in `src/lib.rs`), and no two modules
//! import each other, directly or through others. Read from the sources, so that a new
//! import that runs back up fails here, naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules of `lib.rs`, each with its layer number.
fn layers() -> BTreeMap<String, u32> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read src/lib.rs");
    let mut layer = None;
    let mut modules = BTreeMap::new();
    for line in lib.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("// ") {
            if let Some((number, _)) = rest.split_once(". ") {
                if let Ok(n) = number.parse::<u32>() {
                    layer = Some(n);
                }
            }
            continue;
        }
        let declared = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = declared {
            let layer = layer.unwrap_or_else(|| panic!("`mod {name};` comes before any layer"));
            modules.insert(name.to_string(), layer);
        }
    }
    assert!(modules.len() > 10, "found the layered module list");
    modules
}

/// The files of a top-level module: `name.rs`, or everything under `name/`.
fn files(name: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut found = Vec::new();
    let mut dirs = vec![src().join(name)];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}")) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The top-level modules named after `crate::` in `source` (paths, `use` lists, doc links),
/// leaving out unit tests, which may reach anywhere.
fn references(source: &str, modules: &BTreeMap<String, u32>) -> BTreeSet<String> {
    let source = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or(source);
    let mut found = BTreeSet::new();
    for (i, _) in source.match_indices("crate::") {
        let rest = &source[i + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => top_level_items(group),
            None => vec![rest],
        };
        for name in names {
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains_key(&name) {
                found.insert(name);
            }
        }
    }
    found
}

/// The items of a `use` group (the text after its `{`), split at its own commas only.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(group[start..i].trim());
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(group[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(group[start..].trim());
    items
}

fn graph(modules: &BTreeMap<String, u32>) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut graph = BTreeMap::new();
    for name in modules.keys() {
        let mut edges = BTreeMap::new();
        for file in files(name) {
            let source = fs::read_to_string(&file).expect("read a source file");
            for target in references(&source, modules) {
                if &target != name {
                    edges.entry(target).or_insert_with(|| file.clone());
                }
            }
        }
        graph.insert(name.clone(), edges);
    }
    graph
}

#[test]
fn every_import_points_to_the_same_or_an_earlier_layer() {
    let modules = layers();
    let mut upward = Vec::new();
    for (from, edges) in graph(&modules) {
        for (to, file) in edges {
            if modules[&to] > modules[&from] {
                upward.push(format!(
                    "{} (`{from}`, layer {}) uses `{to}` (layer {})",
                    file.strip_prefix(src()).unwrap_or(&file).display(),
                    modules[&from],
                    modules[&to]
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run back up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_two_modules_depend_on_each_other() {
    let modules = layers();
    let graph = graph(&modules);
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph[node].keys() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("a module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The check itself must be able to fail: a lower module naming a higher one is found.
    let modules = layers();
    let found = references(
        "use crate::{cache::{Bump, Change}, context::Context};\nfn f() { crate::tx::ATTEMPTS; }",
        &modules,
    );
    let expected: BTreeSet<String> = ["cache", "context", "tx"].map(String::from).into();
    assert_eq!(found, expected);
    assert!(modules["context"] > modules["cache"]);
}
