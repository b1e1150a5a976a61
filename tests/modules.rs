//! `import` through the command line, with files made for each test in a scratch
//! directory: paths relative to the importing file (not the current directory), `ad check`
//! checking what a script imports, `ad derive` and `ad test` on files that import, and
//! imports that must end in a located message and status 1 (syntax errors in the imported
//! file, bytes that are not UTF-8, directories, chains deeper than the limit).
//! The golden tests `tests/golden/lang/modules/` and `tests/golden/errors/import_*.ad`
//! cover the rest (values, files run once, no re-export, cycles, missing files).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ad(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ad")).args(args).current_dir(dir).output().expect("the ad binary runs")
}

/// A fresh scratch directory for one test, with `files` (path, contents) written into it.
fn scratch(test: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ad-modules-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, contents) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails unless the command ended with status 1 and a located report (`╭─[ file:line:col ]`)
/// whose text contains every one of `parts`; never a panic.
fn located_error(o: &Output, parts: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected status 1:\n{e}");
    assert!(!e.contains("panicked") && !e.contains("internal error"), "{e}");
    assert!(e.contains("╭─["), "the report has no location:\n{e}");
    for p in parts {
        assert!(e.contains(p), "the report lacks {p:?}:\n{e}");
    }
}

#[test]
fn paths_are_relative_to_the_importing_file() {
    let dir = scratch(
        "relative",
        &[
            ("app/main.ad", b"import \"lib/a.ad\"\nprint(a + b)\n"),
            ("app/lib/a.ad", b"import \"../shared/b.ad\"\nlet a = 2 * b\n"),
            ("app/shared/b.ad", b"let b = 20\n"),
        ],
    );
    // Run from elsewhere: the current directory plays no part.
    let o = ad(&dir, &["run", "app/main.ad"]);
    // `b` is lib/a.ad's import, not main.ad's.
    located_error(&o, &["unknown name `b`", "app/main.ad:2:"]);
    std::fs::write(dir.join("app/main.ad"), "import \"lib/a.ad\"\nimport \"shared/b.ad\"\nprint(a + b)\n")
        .unwrap();
    let o = ad(&dir.join("app/lib"), &["run", "../main.ad"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "60\n");
}

#[test]
fn check_checks_imported_files_without_running_them() {
    let dir = scratch(
        "check",
        &[
            ("main.ad", b"import \"lib.ad\"\nprint(f([1, 2]))\n"),
            ("lib.ad", b"print(\"lib runs\")\ndef f(x: [2]) = sum(x)\n"),
        ],
    );
    let o = ad(&dir, &["check", "main.ad"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "`ad check` ran the imported file");
    // A shape error in a definition of the imported file that the script never calls.
    std::fs::write(dir.join("lib.ad"), "def f(x: [2]) = sum(x)\ndef g(x: [3]) = x + [1, 2]\n").unwrap();
    let o = ad(&dir, &["check", "main.ad"]);
    located_error(&o, &["shape mismatch", "lib.ad:2:"]);
    // A shape error at the top level of the imported file, reported there and at the import.
    std::fs::write(dir.join("lib.ad"), "def f(x: [2]) = sum(x)\nlet bad = [1, 2] @ [1, 2, 3]\n").unwrap();
    let o = ad(&dir, &["check", "main.ad"]);
    located_error(&o, &["lib.ad:2:", "main.ad:1:1", "in the file imported here"]);
}

#[test]
fn derive_and_test_work_on_files_that_import() {
    let dir = scratch(
        "derive",
        &[
            ("main.ad", b"import \"nn/layer.ad\"\ndef loss(x: [2]) = sum(layer(x))\n"),
            ("nn/layer.ad", b"let W = [[1, 2], [3, 4]]\ndef layer(x) = tanh(x @ W)\n"),
            ("t.ad", b"#! run\nimport \"nn/layer.ad\"\nprint(layer([0, 0]))\n# expect:\n# [0, 0]\n"),
        ],
    );
    let o = ad(&dir, &["derive", "vjp", "main.ad", "loss"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(printed.contains("def loss_vjp(x: [2], y_bar: [])"), "{printed}");
    // The printed program reads `W`, which main.ad sees through its import: no import needed.
    assert!(!printed.contains("import"), "{printed}");
    // The derived function of the imported file reads `W` of nn/layer.ad, which main.ad
    // does not see under that name (it binds its own): the text imports the file.
    std::fs::write(
        dir.join("main.ad"),
        "import \"nn/layer.ad\"\nlet W = 0\ndef loss(x: [2]) = sum(layer(x))\n",
    )
    .unwrap();
    let o = ad(&dir, &["derive", "vjp", "main.ad", "loss"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("import \"nn/layer.ad\"\ndef loss_vjp"), "{}", stdout(&o));
    let o = ad(&dir, &["test", "t.ad"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("1 passed, 0 failed"), "{}", stdout(&o));
}

#[test]
fn syntax_errors_in_an_imported_file_are_located_there() {
    let dir = scratch(
        "syntax",
        &[
            ("main.ad", b"let x = 1\nimport \"bad.ad\"\n"),
            ("bad.ad", b"let y = (1 +\nlet z = )\nlet w = 3 3\n"),
        ],
    );
    let o = ad(&dir, &["run", "main.ad"]);
    located_error(&o, &["bad.ad:", "main.ad:2:1", "in the file imported here", "more syntax error"]);
}

#[test]
fn bytes_that_are_not_utf8_directories_and_odd_paths_are_located_errors() {
    let dir = scratch(
        "bytes",
        &[
            ("latin1.ad", b"let caf\xe9 = 1\n"),
            ("a.ad", b"import \"latin1.ad\"\n"),
            ("dir.ad", b"import \"sub\"\n"),
            ("sub/x.ad", b"let x = 1\n"),
            ("empty.ad", b"import \"\"\n"),
            ("device.ad", b"import \"/dev/null\"\n"),
            ("escape.ad", b"import \"no\\tsuch\\n.ad\"\n"),
            ("number.ad", b"import 3\n"),
        ],
    );
    located_error(&ad(&dir, &["run", "a.ad"]), &["latin1.ad:1:", "unexpected character"]);
    located_error(&ad(&dir, &["run", "dir.ad"]), &["cannot import `sub`: it is a directory"]);
    located_error(&ad(&dir, &["run", "empty.ad"]), &["cannot import a file without a name"]);
    located_error(&ad(&dir, &["run", "device.ad"]), &["cannot import `/dev/null`: it is not a file"]);
    located_error(&ad(&dir, &["run", "escape.ad"]), &["cannot import", "No such file"]);
    located_error(&ad(&dir, &["run", "number.ad"]), &["expected file name in quotes"]);
    located_error(&ad(&dir, &["check", "dir.ad"]), &["it is a directory"]);
}

#[test]
fn deep_chains_end_in_an_error_not_a_crash() {
    let n = 150;
    let files: Vec<(String, Vec<u8>)> = (0..=n)
        .map(|i| {
            let text = if i < n {
                format!("import \"f{}.ad\"\nlet v{i} = 1\n", i + 1)
            } else {
                "let last = 1\n".into()
            };
            (format!("f{i}.ad"), text.into_bytes())
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, t)| (p.as_str(), t.as_slice())).collect();
    let dir = scratch("deep", &refs);
    let o = ad(&dir, &["run", "f0.ad"]);
    located_error(&o, &["imports nest too deeply", "f0.ad:1:1", "more imports in between are not shown"]);
    located_error(&ad(&dir, &["check", "f0.ad"]), &["imports nest too deeply"]);
    // A chain within the limit runs.
    let o = ad(&dir, &["run", "f60.ad"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_cycle_through_the_script_itself_names_every_file() {
    let dir = scratch(
        "cycle",
        &[
            ("a.ad", b"import \"b.ad\"\n"),
            ("b.ad", b"import \"c.ad\"\n"),
            ("c.ad", b"print(\"c runs\")\nimport \"a.ad\"\n"),
            ("self.ad", b"import \"self.ad\"\n"),
        ],
    );
    let o = ad(&dir, &["run", "a.ad"]);
    located_error(&o, &["import cycle: a.ad → b.ad → c.ad → a.ad", "c.ad:2:1"]);
    assert_eq!(stdout(&o), "c runs\n");
    located_error(&ad(&dir, &["run", "self.ad"]), &["import cycle: self.ad → self.ad"]);
    // Imported from the REPL, the chain starts at the first file.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ad"))
        .arg("repl")
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"import \"b.ad\"\n1 + 1\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(stderr(&o).contains("import cycle: b.ad → c.ad → a.ad → b.ad"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "c runs\n2\n");
}
