//! Regression and finding files: `.ad` files that start with `# fuzz: TARGET` lines (one
//! per command to run the file with), then a comment describing the symptom, then the case.
//!
//! `tests/fuzz/regressions/` holds fixed bugs: every file there must run without a finding.
//! `tests/fuzz/findings/` holds open ones, found and minimised by the fuzzer; a file moves
//! to `regressions/` when its bug is fixed.

use crate::classify::{classify, Finding};
use crate::run::Runner;
use crate::target::{file_targets, Case, Target};
use std::path::{Path, PathBuf};

/// The `.ad` files of a directory, sorted (a missing directory has none).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "ad")).collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs a file with each of its targets; what each run found.
pub fn run_file(runner: &Runner, path: &Path) -> Result<Vec<(Target, Option<Finding>)>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let targets = file_targets(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for target in targets {
        let case = Case::new(target.clone(), text.clone());
        let outcome = runner.run(&case).map_err(|e| format!("{}: cannot run `ad`: {e}", path.display()))?;
        out.push((target, classify(&case.target, &outcome)));
    }
    Ok(out)
}

/// The signatures the files of `dir` show today, each with its file name: the findings a
/// campaign need not report again.
pub fn known_signatures(runner: &Runner, dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files_in(dir) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Ok(results) = run_file(runner, &path) {
            for (target, finding) in results {
                if let Some(f) = finding {
                    out.push((f.signature(&target), name.clone()));
                }
            }
        }
    }
    out
}
