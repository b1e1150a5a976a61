//! Every example script and every ```ad block of the book runs without error.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ad_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ad"))
        .collect();
    v.sort();
    v
}

/// Runs `ad run FILE` in a scratch directory (examples may write files there).
fn run(file: &Path) -> std::process::Output {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ad")).arg("run").arg(file).current_dir(&dir).output().unwrap()
}

#[test]
fn examples_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = ad_files(&root.join("examples"));
    assert!(files.len() >= 3, "examples are missing");
    for f in files {
        let o = run(&f);
        assert!(o.status.success(), "{} failed:\n{}", f.display(), String::from_utf8_lossy(&o.stderr));
        assert!(!o.stdout.is_empty(), "{} printed nothing", f.display());
    }
}

#[test]
fn examples_shape_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = ad_files(&root.join("examples"));
    files.extend(ad_files(&root.join("examples/bench")));
    for f in files {
        let o = Command::new(env!("CARGO_BIN_EXE_ad")).arg("check").arg(&f).output().unwrap();
        assert!(
            o.status.success(),
            "ad check {} failed:\n{}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.stdout.is_empty(), "ad check {} printed output: it ran something", f.display());
    }
}

/// The ```ad blocks of a Markdown file.
fn ad_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match &mut current {
            None if t.starts_with("```ad") && !t.contains("no-run") => current = Some((i + 1, String::new())),
            Some(_) if t.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            markdown_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "md") {
            out.push(p);
        }
    }
}

#[test]
fn book_snippets_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(&root.join("book/src"), &mut files);
    files.push(root.join("README.md"));
    files.sort();
    let mut count = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (line, code) in ad_blocks(&text) {
            count += 1;
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("ad-book-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("snippet.ad");
            std::fs::write(&path, &code).unwrap();
            let o = run(&path);
            assert!(
                o.status.success(),
                "{}:{line}: snippet failed:\n{code}\n{}",
                f.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            // A snippet that shows its output in an `# expect:` block must print exactly that.
            if let Some((_, expected)) = code.split_once("# expect:\n") {
                let expected: String = expected
                    .lines()
                    .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
                    .map(|l| format!("{l}\n"))
                    .collect();
                assert_eq!(
                    String::from_utf8_lossy(&o.stdout),
                    expected,
                    "{}:{line}: output differs",
                    f.display()
                );
            }
        }
    }
    assert!(count >= 10, "expected the book's snippets, found {count}");
}

#[test]
fn book_structure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("book");
    assert!(root.join("book.toml").is_file());
    let summary = std::fs::read_to_string(root.join("src/SUMMARY.md")).unwrap();
    // Every chapter the summary links to exists.
    for part in summary.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        assert!(root.join("src").join(target).is_file(), "SUMMARY.md links to missing {target}");
    }
}

/// The REPL transcripts of the book (```repl blocks) are replayed and must match; each
/// chapter is one session. `UPDATE_EXPECT=1` rewrites them.
#[test]
fn book_repl_transcripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut files = Vec::new();
    markdown_files(&root.join("book/src"), &mut files);
    files.sort();
    let normal = |s: &str| s.lines().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n") + "\n";
    let mut count = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut block: Option<String> = None;
        let mut rewritten = String::new();
        let mut repl = ad_repl::Repl::new();
        for line in text.lines() {
            match &mut block {
                None if line.trim() == "```repl" => block = Some(String::new()),
                Some(b) if line.starts_with("```") => {
                    let got = ad_repl::transcript::replay_in(&mut repl, b);
                    if normal(b) == got || bless {
                        rewritten.push_str(&got);
                    } else {
                        panic!(
                            "a transcript in {} does not replay:\n{}",
                            f.display(),
                            ad_driver::golden::diff(b, &got)
                        );
                    }
                    count += 1;
                    block = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                    continue;
                }
                None => {}
            }
            rewritten.push_str(line);
            rewritten.push('\n');
        }
        if bless && rewritten != text {
            std::fs::write(&f, rewritten).unwrap();
        }
    }
    assert!(count >= 6, "expected the book's transcripts, found {count}");
}

/// Derived programs quoted in the book are the golden files, verbatim: a block after
/// `<!-- golden: PATH -->` must equal the file at PATH.
#[test]
fn book_quotes_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(&root.join("book/src"), &mut files);
    let mut quoted = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(path) = line.trim().strip_prefix("<!-- golden: ").and_then(|r| r.strip_suffix(" -->"))
            else {
                continue;
            };
            let block: Vec<&str> =
                lines[i + 2..].iter().take_while(|l| !l.starts_with("```")).copied().collect();
            let expected = std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                block.join("\n") + "\n",
                expected,
                "{}:{}: the quote of {path} is out of date",
                f.display(),
                i + 1
            );
            quoted += 1;
        }
    }
    assert!(quoted >= 5, "expected quoted golden files, found {quoted}");
}
