//! The fuzzer inside `cargo test` (see `book/src/fuzzing.md`): a short seeded campaign
//! against the `ad` binary, every file of `tests/fuzz/regressions/`, and tests that the
//! classifier really flags crashes, hangs and unlocated errors (a test that cannot fail is
//! a defect).
//!
//! `AD_FUZZ_CASES`, `AD_FUZZ_SEED` and `AD_FUZZ_JOBS` change the campaign's size, seed and
//! parallelism; `cargo test --test fuzz -- --ignored` also reports which of the open
//! findings in `tests/fuzz/findings/` still reproduce.

use ad_fuzz::campaign::{self, Config};
use ad_fuzz::classify::{classify, Finding};
use ad_fuzz::corpus::Corpus;
use ad_fuzz::minimize::{minimize, Budget};
use ad_fuzz::regress;
use ad_fuzz::run::{Limits, Runner, Status};
use ad_fuzz::target::{file_targets, Case, Target};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const AD: &str = env!("CARGO_BIN_EXE_ad");

/// About half a minute in a debug build on two cores (the campaign grows with
/// `AD_FUZZ_CASES`).
const DEFAULT_CASES: u64 = 3000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The binary under test is a debug build: generous per-case time, the long run's memory.
fn limits() -> Limits {
    Limits { time: Duration::from_secs(20), memory_kib: 4 << 20 }
}

fn runner() -> Runner {
    Runner::new(AD, limits(), Some(&root().join("examples"))).expect("a scratch directory can be made")
}

#[test]
fn seeded_campaign_finds_nothing() {
    let runner = runner();
    // The open findings are left out of the corpus: mutating them would mostly find them
    // again, and this test is about everything else. So are the benchmarks, which are
    // sized for a release build.
    let corpus =
        Corpus::load(&root(), &["examples", "tests/golden", "tests/fuzz/regressions"]).without("bench/");
    let cfg = Config {
        seed: env_u64("AD_FUZZ_SEED", 1),
        cases: Some(env_u64("AD_FUZZ_CASES", DEFAULT_CASES)),
        duration: None,
        jobs: env_u64("AD_FUZZ_JOBS", 2) as usize,
        minimize: Budget { runs: 500, time: Duration::from_secs(30) },
        out_dir: Some(root().join("target/fuzz-findings/cargo-test")),
        known: Vec::new(),
        avoid: Vec::new(),
    };
    let summary = campaign::run(&runner, &corpus, &cfg, &|line| eprintln!("{line}"));
    let secs = summary.elapsed.as_secs_f64();
    eprintln!(
        "{} cases in {secs:.1} s ({:.1} cases/s)",
        summary.cases,
        summary.cases as f64 / secs.max(1e-9)
    );
    assert!(summary.errors.is_empty(), "cases could not be run: {:?}", summary.errors);
    assert_eq!(summary.cases, cfg.cases.unwrap_or_default(), "every case ran");
    if summary.findings.is_empty() {
        return;
    }
    // Say which findings are already open in tests/fuzz/findings/, to tell a regression
    // from a known bug.
    let known = regress::known_signatures(&runner, &root().join("tests/fuzz/findings"));
    let mut report = format!("the seeded fuzz run (seed {}) found {}:\n", cfg.seed, summary.findings.len());
    for f in &summary.findings {
        let status = match known.iter().find(|(s, _)| *s == f.signature) {
            Some((_, file)) => format!("known, tests/fuzz/findings/{file}"),
            None => "NEW".into(),
        };
        report.push_str(&format!(
            "\n{} [{status}] (x{}, first at case {}, {} {})\n{}",
            f.finding,
            f.hits,
            f.index,
            f.source.name(),
            f.origin,
            String::from_utf8_lossy(&campaign::finding_file(&f.minimized, &f.finding))
        ));
    }
    report.push_str("\nminimised cases are in target/fuzz-findings/cargo-test/\n");
    panic!("{report}");
}

#[test]
fn regressions_pass() {
    let runner = runner();
    let files = regress::files_in(&root().join("tests/fuzz/regressions"));
    let mut failures = Vec::new();
    for path in &files {
        match regress::run_file(&runner, path) {
            Err(e) => failures.push(e),
            Ok(results) => {
                for (target, finding) in results {
                    if let Some(f) = finding {
                        failures.push(format!("{} ({target}): {f}", path.display()));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "regressions fail:\n{}", failures.join("\n"));
}

/// `tests/fuzz/findings/` holds open bugs only: a finding that no longer reproduces must
/// move to `tests/fuzz/regressions/` (where `regressions_stay_fixed` keeps it fixed), so
/// this fails for any file there that is fixed. Today the directory is empty.
#[test]
fn open_findings_still_reproduce() {
    let runner = runner();
    let mut fixed = Vec::new();
    for path in regress::files_in(&root().join("tests/fuzz/findings")) {
        let results = regress::run_file(&runner, &path).unwrap_or_else(|e| panic!("{e}"));
        let shown: Vec<String> =
            results.iter().filter_map(|(_, f)| f.as_ref().map(|f| f.to_string())).collect();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if shown.is_empty() {
            fixed.push(name);
        } else {
            eprintln!("open: {name}: {}", shown.join("; "));
        }
    }
    assert!(fixed.is_empty(), "fixed findings to move to tests/fuzz/regressions/: {}", fixed.join(", "));
}

#[test]
fn finding_and_regression_files_name_their_targets() {
    for dir in ["tests/fuzz/regressions", "tests/fuzz/findings"] {
        for path in regress::files_in(&root().join(dir)) {
            let text = std::fs::read(&path).expect("readable");
            if let Err(e) = file_targets(&text) {
                panic!("{}: {e}", path.display());
            }
        }
    }
}

// ------------------------------------------------------------------ the classifier

/// A stand-in for `ad`: a shell script that misbehaves in a chosen way, in a directory of
/// its own that goes away with it.
struct Fake(PathBuf);

impl std::ops::Deref for Fake {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn fake(name: &str, script: &str) -> Fake {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ad-fuzz-fake-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write fake");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Fake(path)
}

fn finding_of(binary: &Path, target: Target, limits: Limits) -> (Option<Finding>, Duration) {
    let runner = Runner::new(binary, limits, None).expect("scratch dir");
    let case = Case::new(target.clone(), "print(1)\n");
    let o = runner.run(&case).expect("the fake runs");
    (classify(&target, &o), o.elapsed)
}

fn quick() -> Limits {
    Limits { time: Duration::from_secs(5), memory_kib: 4 << 20 }
}

#[test]
fn classifier_flags_a_segfault() {
    let (f, _) = finding_of(&fake("segv", "kill -SEGV $$"), Target::Run, quick());
    assert_eq!(f, Some(Finding::Signal(11)));
}

#[test]
fn classifier_flags_a_hang_and_kills_it() {
    let limits = Limits { time: Duration::from_millis(500), memory_kib: 4 << 20 };
    let start = Instant::now();
    let (f, elapsed) = finding_of(&fake("hang", "exec sleep 30"), Target::Check, limits);
    assert_eq!(f, Some(Finding::Timeout));
    assert!(elapsed < Duration::from_secs(5) && start.elapsed() < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn classifier_flags_panics_overflows_and_aborts() {
    let panic =
        fake("panic", "printf \"\\nthread 'x' panicked at crates/ir/src/a.rs:3:4:\\nboom\\n\" >&2; exit 101");
    let (f, _) = finding_of(&panic, Target::Run, quick());
    assert_eq!(f, Some(Finding::Panic { location: "crates/ir/src/a.rs:3".into(), message: "boom".into() }));
    let overflow = fake("overflow", "echo \"thread 'w' has overflowed its stack\" >&2; kill -ABRT $$");
    assert_eq!(finding_of(&overflow, Target::Repl, quick()).0, Some(Finding::StackOverflow));
    let oom = fake("oom", "echo 'memory allocation of 1024 bytes failed' >&2; kill -ABRT $$");
    assert_eq!(finding_of(&oom, Target::Run, quick()).0, Some(Finding::OutOfMemory { bytes: "1024".into() }));
    let status = fake("status", "exit 3");
    assert_eq!(finding_of(&status, Target::Run, quick()).0, Some(Finding::ExitStatus(3)));
}

#[test]
fn classifier_flags_unlocated_errors_only() {
    let unlocated = fake("unlocated", "echo 'Error: shape mismatch somewhere' >&2; exit 1");
    let (f, _) = finding_of(&unlocated, Target::Run, quick());
    assert_eq!(f, Some(Finding::Unlocated { message: "shape mismatch somewhere".into() }));
    let located = fake("located", "printf 'Error: shape mismatch\\n   ╭─[ case.ad:1:7 ]\\n' >&2; exit 1");
    assert_eq!(finding_of(&located, Target::Run, quick()).0, None);
    let prelude = fake("prelude", "printf 'Error: bad axis\\n   ╭─[ <prelude>:12:7 ]\\n' >&2; exit 1");
    assert_eq!(
        finding_of(&prelude, Target::Run, quick()).0,
        Some(Finding::InPrelude { message: "bad axis".into() })
    );
    // Deriving a library function reports errors in it, and it is in the prelude.
    let derive_mean = Target::Derive { mode: "grad".into(), function: "mean".into(), shapes: vec![] };
    assert_eq!(finding_of(&prelude, derive_mean, quick()).0, None);
    let by_design = fake("design", "echo 'Error: unknown command `:gard`; did you mean `:grad`?' >&2");
    assert_eq!(finding_of(&by_design, Target::Repl, quick()).0, None);
    let silent = fake("silent", "exit 1");
    assert_eq!(finding_of(&silent, Target::Check, quick()).0, Some(Finding::SilentFailure));
}

#[test]
fn the_memory_limit_is_applied() {
    let limits = Limits { time: Duration::from_secs(5), memory_kib: 3 << 20 };
    let script = fake("ulimit", "ulimit -v");
    let runner = Runner::new(&*script, limits, None).expect("scratch dir");
    let o = runner.run(&Case::new(Target::Run, "")).expect("runs");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), (3u64 << 20).to_string());
    assert_eq!(o.status, Status::Exited(0));
}

#[test]
fn the_real_binary_passes_a_plain_program_and_a_session() {
    let runner = runner();
    for (target, text) in [
        (Target::Run, "print(grad(x => x ^ 2)(3))\n"),
        (Target::Check, "let a = [1, 2]\nprint(a @ a)\n"),
        (
            Target::Derive { mode: "hessian".into(), function: "f".into(), shapes: vec!["x=[3]".into()] },
            "def f(x) = sum(sin(x) * x)\n",
        ),
        (Target::Repl, "def f(x) = x ^ 3\n:grad f(2)\n:gard f(2)\nnope\n:load missing.ad\n:quit\n"),
        // Error reports quote the program: words of a crash in it are not a crash.
        (
            Target::Run,
            "thread 'x' panicked at a.rs:1:1: memory allocation of 8 bytes failed, internal error\n",
        ),
    ] {
        let o = runner.run(&Case::new(target.clone(), text)).expect("ad runs");
        assert_eq!(classify(&target, &o), None, "{target}: {:?}\n{}", o.status, o.stderr);
    }
}

// ------------------------------------------------------------------ generation and minimisation

#[test]
fn cases_depend_only_on_seed_and_index() {
    let corpus = Corpus::load(&root(), &["examples"]);
    for i in 0..50 {
        assert_eq!(campaign::make_case(7, i, &corpus).0, campaign::make_case(7, i, &corpus).0);
    }
    assert_ne!(campaign::make_case(7, 0, &corpus).0, campaign::make_case(8, 0, &corpus).0);
}

/// Generated programs must get past the parser and the shape checker, or they never reach
/// the transforms.
#[test]
fn generated_programs_mostly_check() {
    let runner = runner();
    let n = 40;
    let mut ok = 0;
    let mut failures = Vec::new();
    for i in 0..n {
        let p = ad_fuzz::gen::program(&mut ad_fuzz::rng::Rng::for_case(99, i));
        let o = runner.run(&Case::new(Target::Check, p.text.clone())).expect("ad runs");
        if o.status == Status::Exited(0) {
            ok += 1;
        } else {
            failures.push(o.stderr.lines().next().unwrap_or_default().to_string());
        }
    }
    assert!(ok * 10 >= n * 7, "only {ok} of {n} generated programs shape-check; first errors: {failures:#?}");
}

#[test]
fn minimisation_keeps_the_failure_and_drops_the_rest() {
    let text = b"let a = 1\nlet b = f(g(h(2), 3))\nprint(boom(a))\nlet c = 4\n";
    let small =
        minimize(text, Budget::default(), &mut |t: &[u8]| String::from_utf8_lossy(t).contains("boom("));
    assert_eq!(String::from_utf8_lossy(&small), "boom(");
}

#[test]
fn hangs_the_program_asks_for_are_not_findings() {
    use campaign::expected_hang;
    assert!(expected_hang(&Finding::Timeout, b"let c = 0\nwhile 3 {\n}\n"));
    assert!(expected_hang(&Finding::Timeout, b"for i in 0..33333 { print(i) }\n"));
    assert!(!expected_hang(&Finding::Timeout, b"print(size(jacrev(A => A)(ones((60, 60)))))\n"));
    assert!(!expected_hang(&Finding::StackOverflow, b"while 1 {}\n"));
}
