//! Runs every golden test under `tests/golden` with the same runner as `ad test`, one test
//! per file (datatest-stable): `cargo test --test golden -- check::ad/prims/sin.ad` runs
//! one. `UPDATE_EXPECT=1 cargo test --test golden` rewrites the expected files.

use ad_driver::golden;
use std::path::Path;

fn check(path: &Path, text: String) -> datatest_stable::Result<()> {
    ad_eval::set_compile(true);
    ad_eval::set_compile_eagerly(false);
    run(path, text)
}

/// Every golden program again with every planned program compiled to machine code at its
/// first run (DESIGN §11): compiled code must give the same results bit for bit.
fn compiled(path: &Path, text: String) -> datatest_stable::Result<()> {
    ad_eval::set_compile(true);
    ad_eval::set_compile_eagerly(true);
    run(path, text)
}

/// Every golden program again with the interpreter alone (`--no-compile`): planned loops
/// must give the same results bit for bit, so the same expected files hold.
fn interpreted(path: &Path, text: String) -> datatest_stable::Result<()> {
    ad_eval::set_compile(false);
    ad_eval::set_compile_eagerly(false);
    run(path, text)
}

fn run(path: &Path, text: String) -> datatest_stable::Result<()> {
    // Expected files beside the tests (`f.vjp.ad`) and files without directives are not
    // tests themselves.
    if !text.lines().any(|l| l.starts_with("#!")) {
        return Ok(());
    }
    let bless = std::env::var_os("UPDATE_EXPECT").is_some();
    let failures: Vec<String> = golden::run_file(path, bless)
        .into_iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{} ({}):\n{}", path.display(), o.directive, o.detail))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

// Paths stay relative (to the package root) so that rendered errors name files the same
// way on every machine. Test files have one dot in their name (`sin_mul.ad`); expected
// programs beside them have more (`sin_mul.vjp.ad`).
datatest_stable::harness! {
    { test = check, root = "tests/golden", pattern = r"(^|/)[^./]+\.ad$" },
    { test = compiled, root = "tests/golden", pattern = r"(^|/)[^./]+\.ad$" },
    { test = interpreted, root = "tests/golden", pattern = r"(^|/)[^./]+\.ad$" },
}
