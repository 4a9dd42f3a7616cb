//! The runtime's module graph is one-way: a module names only modules of lower
//! layers (ARCHITECTURE.md, "Module graph"). This reads the sources and fails on an
//! import that points up or sideways, so the rule is kept by the build rather than
//! by review.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import any module of a lower layer.
const LAYERS: &[&[&str]] = &[
    // The rustls client configurations (feature `tls`), below the cache and the
    // database backends that both use them.
    &["tls"],
    &["codec", "settings", "statements", "model", "cache", "db", "near", "json", "enum_text"],
    &["error", "stats", "trace"],
    &["prepared", "outbox", "registry", "capture", "config"],
    &["engine", "ddl"],
    &["exec"],
    &["handle"],
    &["query"],
    &["store"],
    &["async_store", "__private"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn sources(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let file = if module == "__private" { src.join("private.rs") } else { src.join(format!("{module}.rs")) };
    let dir = src.join(module);
    let mut found: Vec<PathBuf> = file.is_file().then_some(file).into_iter().collect();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The top-level modules a file names as `crate::<module>`, comments left out.
fn imports(path: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `memdex_crate::…` or similar: not this crate's path
            }
            let name: String =
                line[at + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_import_points_down() {
    let mut upward = Vec::new();
    for (layer, modules) in LAYERS.iter().enumerate() {
        for module in *modules {
            let files = sources(module);
            assert!(!files.is_empty(), "module `{module}` has no source files: update LAYERS");
            for file in files {
                for name in imports(&file) {
                    if name == *module {
                        continue;
                    }
                    match layer_of(&name) {
                        Some(other) if other < layer => {}
                        Some(_) => upward.push(format!("{} imports `{name}`", file.display())),
                        None => upward.push(format!("{} imports `{name}`, which no layer lists", file.display())),
                    }
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports that do not point down:\n{}", upward.join("\n"));
}

#[test]
fn every_module_has_a_layer() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ").or_else(|| l.trim().strip_prefix("pub mod ")))
        .map(|rest| rest.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 10, "lib.rs lists its modules as `mod x;`: {declared:?}");
    for module in declared {
        assert!(layer_of(module).is_some(), "module `{module}` is in no layer of this test");
    }
}
