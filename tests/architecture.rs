//! ARCHITECTURE.md names every source and test file, in the section of its crate (tests may
//! instead be named under "Tests"), so the code map stays current: a new file fails here
//! until it is described.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The sections of the document: heading line and text.
fn sections(doc: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in doc.lines() {
        if line.starts_with("### ") || line.starts_with("## ") {
            out.push((line.to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out
}

#[test]
fn architecture_names_every_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let sections = sections(&doc);
    let section = |key: &str| -> String {
        sections
            .iter()
            .filter(|(h, _)| h.contains(key))
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let tests = section("Tests");
    let mut files = Vec::new();
    for dir in ["crates", "src", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut missing = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        // A crate's or module's root is described by its section or its directory.
        if name == "lib.rs" || name == "mod.rs" || rel.contains("/common/") {
            continue;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        let home = match parts.as_slice() {
            ["crates", krate, ..] => section(&format!("crates/{krate}`")),
            ["src", ..] => section("src/main.rs"),
            _ => String::new(),
        };
        let is_test = parts.contains(&"tests");
        let named = |text: &str| text.contains(&format!("`{name}`")) || text.contains(&format!("{name}`"));
        if !(named(&home) || (is_test && named(&tests))) {
            missing.push(rel);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    assert!(missing.is_empty(), "ARCHITECTURE.md does not name these files:\n{}", missing.join("\n"));
}
