//! `ad fmt`: in place, as a filter, `--check`, files with syntax errors; and the repository's
//! own scripts (examples, golden sources) are formatted (CI runs this as `ad fmt --check`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn ad(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ad"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ad-fmt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const UGLY: &str = "# a comment\nlet x=1+2*3   # trailing\ndef f(x){\nx*x}\n#! run\n";
const PRETTY: &str = "# a comment\nlet x = 1 + 2 * 3 # trailing\ndef f(x) {\n  x * x\n}\n#! run\n";

#[test]
fn rewrites_files_in_place() {
    let dir = scratch("in-place");
    let (a, b) = (dir.join("a.ad"), dir.join("b.ad"));
    std::fs::write(&a, UGLY).unwrap();
    std::fs::write(&b, PRETTY).unwrap();
    let o = ad(&["fmt", a.to_str().unwrap(), b.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), PRETTY);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), PRETTY);
    // A directory stands for the .ad files under it.
    std::fs::write(&a, UGLY).unwrap();
    let o = ad(&["fmt", dir.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&a).unwrap(), PRETTY);
}

#[test]
fn filters_standard_input() {
    let o = ad(&["fmt", "-"], UGLY);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), PRETTY);
    let o = ad(&["fmt", "-"], PRETTY);
    assert_eq!(stdout(&o), PRETTY);
}

#[test]
fn check_changes_nothing_and_names_files() {
    let dir = scratch("check");
    let (a, b) = (dir.join("a.ad"), dir.join("b.ad"));
    std::fs::write(&a, UGLY).unwrap();
    std::fs::write(&b, PRETTY).unwrap();
    let o = ad(&["fmt", "--check", a.to_str().unwrap(), b.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), format!("{}\n", a.display()));
    assert!(stderr(&o).contains("1 file would be reformatted"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&a).unwrap(), UGLY);
    let o = ad(&["fmt", "--check", b.to_str().unwrap()], "");
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
    let o = ad(&["fmt", "--check", "-"], UGLY);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "<stdin>\n");
}

#[test]
fn syntax_errors_are_reported_and_the_file_left_alone() {
    let dir = scratch("errors");
    let (bad, good) = (dir.join("bad.ad"), dir.join("good.ad"));
    let broken = "let x = (1 +\nprint(x)\n";
    std::fs::write(&bad, broken).unwrap();
    std::fs::write(&good, UGLY).unwrap();
    let o = ad(&["fmt", bad.to_str().unwrap(), good.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.ad:"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), broken);
    // The other files are formatted all the same.
    assert_eq!(std::fs::read_to_string(&good).unwrap(), PRETTY);
    let o = ad(&["fmt", "-"], broken);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
}

#[test]
fn unreadable_files_are_bad_usage() {
    let dir = scratch("unreadable");
    let a = dir.join("a.ad");
    std::fs::write(&a, UGLY).unwrap();
    let missing = dir.join("missing.ad");
    let o = ad(&["fmt", a.to_str().unwrap(), missing.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
    // Nothing was formatted.
    assert_eq!(std::fs::read_to_string(&a).unwrap(), UGLY);
    let binary = dir.join("binary.ad");
    std::fs::write(&binary, b"let x = \xff\n").unwrap();
    let o = ad(&["fmt", binary.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not UTF-8"), "{}", stderr(&o));
    assert_eq!(ad(&["fmt"], "").status.code(), Some(2));
}

fn ad_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            ad_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ad") {
            out.push(p);
        }
    }
}

/// The examples, and the golden sources (files with `#!` directives) that parse (the others
/// test syntax errors). Derived programs beside them are printed by AD itself, which follows
/// the same conventions (`crates/syntax/tests/format.rs` checks that).
#[test]
fn the_repository_is_formatted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    ad_files(&root.join("examples"), &mut files);
    let mut golden = Vec::new();
    ad_files(&root.join("tests/golden"), &mut golden);
    for f in golden {
        let text = std::fs::read_to_string(&f).unwrap();
        let parses = ad_syntax::parser::parse(ad_syntax::FileId(0), &text).1.is_empty();
        if parses && text.lines().any(|l| l.starts_with("#!")) {
            files.push(f);
        }
    }
    files.sort();
    assert!(files.len() > 100, "found only {} files", files.len());
    let mut args = vec!["fmt".to_string(), "--check".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = ad(&args, "");
    assert!(
        o.status.success(),
        "these files are not formatted (run `ad fmt` on them):\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}
