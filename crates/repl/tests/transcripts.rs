//! Transcript tests: `tests/repl/*.txt` are REPL sessions as a terminal shows them, replayed
//! through the REPL (files they load or import are in `tests/repl/modules/`).
//! `UPDATE_EXPECT=1 cargo test -p ad-repl` rewrites them.

use std::path::Path;

#[test]
fn transcripts() {
    // Paths in transcripts (`:load`, `import`) are relative to the repository's root, as in
    // the book (this is the only test of this binary, so nothing else sees the change).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::set_current_dir(&root).unwrap();
    let dir = root.join("tests/repl");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 3);
    let bless = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        if let Err(got) = ad_repl::transcript::check(&text) {
            if bless {
                std::fs::write(&f, &got).unwrap();
            } else {
                failures.push(format!("{}:\n{}", f.display(), ad_driver::golden::diff(&text, &got)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
