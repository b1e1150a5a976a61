//! Runs every golden test under `tests/golden` with the same runner as `ad test`.
//! `UPDATE_EXPECT=1 cargo test --test golden` rewrites the expected files.

use ad_driver::golden;
use std::path::PathBuf;

#[test]
fn golden_files() {
    // Paths stay relative so that rendered errors name files the same way on every machine.
    let files = golden::collect(&[PathBuf::from("tests/golden")]);
    assert!(files.len() >= 30, "expected the golden suite, found {} files", files.len());
    let bless = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    let mut passed = 0;
    for f in &files {
        for o in golden::run_file(f, bless) {
            if o.passed {
                passed += 1;
            } else {
                failures.push(format!("{} ({}):\n{}", f.display(), o.directive, o.detail));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden directives failed ({passed} passed):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
