//! Golden tests (DESIGN §6): an `.ad` file with directives in comments,
//!
//! ```text
//! #! run               -> stdout        (compare output with NAME.stdout)
//! #! run                                (compare output with the `# expect:` block)
//! #! error             -> stderr        (the file must fail; compare the rendered report)
//! #! check                              (the file must shape-check without errors)
//! #! derive ir f [--shape x=[3]] -> f.ir.ad
//! ```
//!
//! `->` names the expected file, relative to the test file; `stdout`/`stderr` alone mean
//! `NAME.stdout`/`NAME.stderr`. Without `->`, the expectation is the `# expect:` block:
//! the comment lines after a line `# expect:`, with their `# ` prefix removed. Blessing
//! rewrites expected files (not `# expect:` blocks).

use crate::derive::{self, Derivation, DeriveMode, ShapeOpt};
use crate::{Session, SharedBuf};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run,
    Error,
    Check,
    Derive { mode: DeriveMode, function: String, shapes: Vec<ShapeOpt> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub action: Action,
    /// The expected file, or `None` for the `# expect:` block.
    pub expected: Option<PathBuf>,
    pub line: usize,
}

#[derive(Debug)]
pub struct Outcome {
    pub directive: String,
    pub passed: bool,
    /// What went wrong: a diff or an error.
    pub detail: String,
}

pub fn parse_directives(path: &Path, text: &str) -> Result<Vec<Directive>, String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("test").to_string();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("#!") else { continue };
        let (cmd, target) = match rest.split_once("->") {
            Some((c, t)) => (c.trim(), Some(t.trim())),
            None => (rest.trim(), None),
        };
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let action = match words.as_slice() {
            ["run"] => Action::Run,
            ["error"] => Action::Error,
            ["check"] => Action::Check,
            ["derive", mode, function, opts @ ..] => {
                let mut shapes = Vec::new();
                let mut it = opts.iter();
                while let Some(o) = it.next() {
                    let spec = match o.strip_prefix("--shape=") {
                        Some(s) => s.to_string(),
                        None if *o == "--shape" => it.next().map(|s| s.to_string()).unwrap_or_default(),
                        None => return Err(format!("line {}: unknown option `{o}`", i + 1)),
                    };
                    shapes.push(spec.parse::<ShapeOpt>().map_err(|e| format!("line {}: {e}", i + 1))?);
                }
                let mode = mode.parse::<DeriveMode>().map_err(|e| format!("line {}: {e}", i + 1))?;
                Action::Derive { mode, function: function.to_string(), shapes }
            }
            _ => return Err(format!("line {}: unknown directive `#!{rest}`", i + 1)),
        };
        let expected = target.map(|t| match t {
            "stdout" | "stderr" => dir.join(format!("{stem}.{t}")),
            t => dir.join(t),
        });
        out.push(Directive { action, expected, line: i + 1 });
    }
    Ok(out)
}

/// The `# expect:` block of a test file.
pub fn expect_block(text: &str) -> Option<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != "# expect:");
    lines.next()?;
    let mut out = String::new();
    for l in lines {
        let Some(body) = l.strip_prefix('#') else { break };
        out.push_str(body.strip_prefix(' ').unwrap_or(body));
        out.push('\n');
    }
    Some(out)
}

/// `text` with its `# expect:` block replaced by (or extended with) `body`.
pub fn with_expect_block(text: &str, body: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "# expect:");
    let mut out: Vec<String> = match start {
        Some(i) => lines[..i].iter().map(|s| s.to_string()).collect(),
        None => lines.iter().map(|s| s.to_string()).collect(),
    };
    out.push("# expect:".into());
    for l in body.lines() {
        out.push(if l.is_empty() { "#".into() } else { format!("# {l}") });
    }
    if let Some(i) = start {
        let rest = lines[i + 1..].iter().skip_while(|l| l.starts_with('#'));
        out.extend(rest.map(|s| s.to_string()));
    }
    out.join("\n") + "\n"
}

/// What a directive produces: the text to compare and, for a derivation, what was derived
/// (so that checking it numerically does not derive it again).
pub fn produce(path: &Path, text: &str, action: &Action) -> Result<(String, Option<Derivation>), String> {
    let name = path.to_string_lossy().replace('\\', "/");
    let buf = SharedBuf::default();
    let mut session = Session::new(Box::new(buf.clone()));
    let render = |s: &Session, e: &[ad_syntax::Diagnostic]| ad_syntax::render(&s.sources, e, false);
    match action {
        Action::Run => match session.run_source(&name, text) {
            Ok(()) => Ok((buf.take(), None)),
            Err(errors) => Err(render(&session, &errors)),
        },
        Action::Error => match session.run_source(&name, text) {
            Ok(()) => Err(format!("expected an error, but the file ran; it printed:\n{}", buf.take())),
            Err(errors) => Ok((buf.take() + &render(&session, &errors), None)),
        },
        Action::Check => {
            let errors = session.check_source(&name, text);
            if errors.is_empty() {
                Ok((String::new(), None))
            } else {
                Err(render(&session, &errors))
            }
        }
        Action::Derive { mode, function, shapes } => {
            derive::load(&mut session, &name, text).map_err(|e| render(&session, &e))?;
            let d = derive::derive_named(&mut session, function, shapes, *mode, &derive::VmapOpts::default())
                .map_err(|e| render(&session, &[e]))?;
            let out = d.text(&session).map_err(|e| render(&session, &[e]))?;
            Ok((out, Some(d)))
        }
    }
}

/// Runs every directive of one test file.
pub fn run_file(path: &Path, bless: bool) -> Vec<Outcome> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![Outcome {
                directive: "read".into(),
                passed: false,
                detail: format!("cannot read: {e}"),
            }]
        }
    };
    let directives = match parse_directives(path, &text) {
        Ok(d) => d,
        Err(e) => return vec![Outcome { directive: "parse".into(), passed: false, detail: e }],
    };
    let mut outcomes = Vec::new();
    for d in directives {
        let label = format!("line {}", d.line);
        let (got, derivation) = match produce(path, &text, &d.action) {
            Ok(g) => g,
            Err(e) => {
                outcomes.push(Outcome { directive: label, passed: false, detail: e });
                continue;
            }
        };
        if d.action == Action::Check {
            outcomes.push(Outcome { directive: label, passed: true, detail: String::new() });
            continue;
        }
        if let Some(derivation) = derivation.filter(|d| d.request.is_some()) {
            {
                let file = path.to_string_lossy().replace('\\', "/");
                if let Err(e) = crate::check::verify_derivation(&file, &text, &derivation, &got) {
                    outcomes.push(Outcome {
                        directive: label,
                        passed: false,
                        detail: format!("numeric check: {e}"),
                    });
                    continue;
                }
            }
        }
        let expected = match &d.expected {
            Some(p) => {
                if bless {
                    let _ = std::fs::write(p, &got);
                }
                std::fs::read_to_string(p).unwrap_or_default()
            }
            None => {
                if bless {
                    let _ = std::fs::write(path, with_expect_block(&text, &got));
                }
                expect_block(&text).unwrap_or_default()
            }
        };
        if expected == got {
            outcomes.push(Outcome { directive: label, passed: true, detail: String::new() });
        } else {
            outcomes.push(Outcome { directive: label, passed: false, detail: diff(&expected, &got) });
        }
    }
    outcomes
}

/// The test files under the given paths: `.ad` files with at least one `#!` directive.
pub fn collect(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| e.path()).collect();
            entries.sort();
            out.extend(collect(&entries));
        } else if p.extension().is_some_and(|e| e == "ad") {
            let is_test = std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("#!")));
            if is_test {
                out.push(p.clone());
            }
        }
    }
    out
}

/// A line diff: `-` expected, `+` got.
pub fn diff(expected: &str, got: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let (n, m) = (e.len(), g.len());
    // Longest common subsequence table, then a walk from the start.
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if e[i] == g[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && e[i] == g[j] {
            out.push_str(&format!("  {}\n", e[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", g[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", e[i]));
            i += 1;
        }
    }
    if expected.ends_with('\n') != got.ends_with('\n') {
        out.push_str("(the two differ in the final newline)\n");
    }
    out
}
