//! Plots, progress bars and NumPy files through the `ad` binary: nothing but data in
//! pipes; figures, colour and a progress bar (with printed lines above it) on a
//! pseudo-terminal, where Ctrl-C still stops a loop; NumPy errors with status 1 and a
//! location; and NumPy itself reading what AD writes, where it is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ad-data-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numpy").join(name).display().to_string()
}

/// Runs `ad ARGS` in `dir` with `script` written to `script.ad` there.
fn ad(dir: &Path, args: &[&str], script: &str) -> Output {
    std::fs::write(dir.join("script.ad"), script).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ad")).args(args).arg("script.ad").current_dir(dir).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A loop of `n` iterations of about `seconds` each, printing `line I` in each.
fn slow_loop(n: usize, seconds: f64) -> String {
    format!("for i in 0..{n} {{\n  let t = now()\n  while now() - t < {seconds} {{ }}\n  print(\"line\", i)\n}}\nprint(\"done\")\n")
}

const PLOTS: &str = "let x = linspace(0, 6.28, 50)\nplot(x, sin(x))\nscatter([1, 2], [0, 1])\ntitle(\"waves\")\nshow()\nhist(randn(200), 20)\nshow()\nprint(\"data\")\nimshow(eye(4))\n";

#[test]
fn plots_print_nothing_in_a_pipe() {
    let dir = scratch("pipe");
    let script = "let x = linspace(0, 6.28, 50)\nplot(x, sin(x))\nscatter([1, 2], [0, 1])\ntitle(\"waves\")\nshow()\nhist(randn(200), 20)\nsavefig(\"h.svg\")\nprint(\"data\")\nplot(x)\n";
    let o = ad(&dir, &["run"], script);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "data\n");
    assert_eq!(text(&o.stderr), "");
    assert!(dir.join("h.svg").is_file());
    // The same in the REPL with piped input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ad"))
        .arg("repl")
        .env("AD_HISTORY", "")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"plot([1, 2, 3])\nshow()\n1 + 1\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!((text(&o.stdout), text(&o.stderr)), ("2\n".to_string(), String::new()));
}

#[test]
fn no_progress_bar_in_a_pipe() {
    let dir = scratch("bar");
    let o = ad(&dir, &["run"], &slow_loop(30, 0.05));
    assert!(o.status.success());
    let expected: String = (0..30).map(|i| format!("line {i}\n")).collect::<String>() + "done\n";
    assert_eq!(text(&o.stdout), expected);
    assert_eq!(o.stderr, b"", "bar bytes on a pipe: {:?}", text(&o.stderr));
}

#[test]
fn numpy_errors_exit_with_status_1() {
    let dir = scratch("errors");
    std::fs::write(dir.join("junk.npy"), b"not numpy at all").unwrap();
    let good = std::fs::read(fixture("f64_matrix.npy")).unwrap();
    std::fs::write(dir.join("short.npy"), &good[..good.len() - 3]).unwrap();
    let cases = [
        (format!("let a = load({:?})", fixture("rank9.npy")), "arrays have rank at most"),
        ("let a = load(\"junk.npy\")".to_string(), "is not a NumPy file"),
        ("let a = load(\"short.npy\")".to_string(), "is truncated or damaged"),
        ("let a = load(\"missing.npy\")".to_string(), "cannot read `missing.npy`: No such file or directory"),
        (
            format!("let a = load({:?}, \"nope\")", fixture("two.npz")),
            "has no array named `nope`; it has `arr_0`, `arr_1`",
        ),
        ("save(\"/nonexistent/a.npz\", (1, 2))".to_string(), "cannot write `/nonexistent/a.npz`"),
        ("plot([1])\nsavefig(\"/nonexistent/a.svg\")".to_string(), "cannot write `/nonexistent/a.svg`"),
    ];
    for (script, message) in cases {
        let o = ad(&dir, &["run"], &script);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{script}: {err}");
        assert!(err.contains(message), "{script}: {err}");
        assert!(err.contains("script.ad:"), "{script}: no location in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn check_knows_the_shapes_of_loaded_files() {
    let dir = scratch("check");
    let ok = format!("let (W, b) = load({:?})\nprint(ones(2) @ W + b)\n", fixture("named.npz"));
    let o = ad(&dir, &["check"], &ok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(o.stdout, b"");
    let bad = format!("let W = load({:?}, \"weights\")\nprint(W @ ones(2))\n", fixture("named.npz"));
    let o = ad(&dir, &["check"], &bad);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("script.ad:2") && err.contains("[2, 3]"), "{err}");
    let o = ad(&dir, &["check"], &format!("let a = load({:?})", fixture("complex.npy")));
    assert_eq!(o.status.code(), Some(0), "checking reads headers only: {}", text(&o.stderr));
    let o = ad(&dir, &["check"], &format!("let a = load({:?})", fixture("rank9.npy")));
    assert!(text(&o.stderr).contains("not 9"), "{}", text(&o.stderr));
}

/// NumPy reads what AD writes, and AD reads what NumPy writes now (beyond the committed
/// fixtures). Needs a Python with NumPy: `$AD_PYTHON`, else `python3`; skipped, saying
/// so, without one.
#[test]
fn numpy_reads_our_files() {
    let python = std::env::var("AD_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_numpy =
        Command::new(&python).args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success());
    if !has_numpy {
        eprintln!("skipped: `{python}` cannot import numpy (set AD_PYTHON to a Python that can)");
        return;
    }
    let dir = scratch("python");
    let o = ad(
        &dir,
        &["run"],
        "save(\"a.npy\", [[1, 2], [3, 4]] / 3)\nsave(\"b.npz\", (ones(3), eye(2) * 0.1, 7))\nsave(\"s.npy\", -0.5)\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let check = "
import numpy as np
a = np.load('a.npy')
assert a.dtype == np.float64 and a.shape == (2, 2), a
assert (a == np.array([[1.0, 2.0], [3.0, 4.0]]) / 3).all(), a
b = np.load('b.npz')
assert b.files == ['arr_0', 'arr_1', 'arr_2'], b.files
assert (b['arr_0'] == np.ones(3)).all() and (b['arr_1'] == np.eye(2) * 0.1).all() and b['arr_2'] == 7
assert np.load('s.npy').shape == () and np.load('s.npy') == -0.5
np.save('c.npy', np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
print('ok')
";
    let o = Command::new(&python).args(["-c", check]).current_dir(&dir).output().unwrap();
    assert_eq!(text(&o.stdout), "ok\n", "{}", text(&o.stderr));
    let o = ad(&dir, &["run"], "print(load(\"c.npy\"))");
    assert_eq!(text(&o.stdout), "[[0,  1,  2],\n [3,  4,  5]]\n", "{}", text(&o.stderr));
}

mod terminal {
    use rexpect::session::{spawn_command, PtySession};
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    /// True if `s` holds a braille character. rexpect gives each byte of the output as
    /// one character, so the text is decoded again as UTF-8 first.
    fn has_braille(s: &str) -> bool {
        let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
        String::from_utf8_lossy(&bytes).chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c))
    }

    /// `ad ARGS` in a pseudo-terminal of 100 × 40 characters, in `dir`.
    fn spawn(dir: &Path, args: &str, color: bool) -> PtySession {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("stty cols 100 rows 40 && exec '{}' {args}", env!("CARGO_BIN_EXE_ad")));
        cmd.current_dir(dir).env("AD_HISTORY", "").env("TERM", "xterm");
        if color {
            cmd.env_remove("NO_COLOR");
        } else {
            cmd.env("NO_COLOR", "1");
        }
        spawn_command(cmd, Some(20_000)).expect("ad starts in a pseudo-terminal")
    }

    #[test]
    fn a_long_loop_shows_a_bar_below_its_output() {
        let dir = super::scratch("pty-bar");
        std::fs::write(dir.join("slow.ad"), super::slow_loop(40, 0.05)).unwrap();
        let mut p = spawn(&dir, "run slow.ad", false);
        p.exp_string("line 0").unwrap();
        // After a second the bar appears: `{bar} 21/40 [1s < 1s]`.
        let (before, bar) = p.exp_regex(r"\d+/40 \[\d+s < \d+s\]").unwrap();
        assert!(before.contains("line 10"), "the bar came before a second had passed: {before:?}");
        assert!(bar.starts_with(|c: char| c.is_ascii_digit()), "{bar:?}");
        // Lines printed while it is shown still arrive whole, and the script ends.
        p.exp_string("line 39").unwrap();
        p.exp_string("done").unwrap();
        p.exp_eof().unwrap();
    }

    #[test]
    fn ctrl_c_stops_a_loop_with_a_bar() {
        let dir = super::scratch("pty-ctrl-c");
        std::fs::write(dir.join("slow.ad"), super::slow_loop(1000, 0.05)).unwrap();
        let mut p = spawn(&dir, "run slow.ad", false);
        p.exp_regex(r"\d+/1000 \[").unwrap();
        p.send_control('c').unwrap();
        let started = std::time::Instant::now();
        p.exp_eof().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn figures_are_drawn_in_colour_on_a_terminal() {
        let dir = super::scratch("pty-plot");
        std::fs::write(dir.join("plot.ad"), super::PLOTS).unwrap();
        let mut p = spawn(&dir, "run plot.ad", true);
        p.exp_string("waves").unwrap();
        // Braille dots in colour (ANSI escapes around them), the y range at the right.
        let (drawn, _) = p.exp_regex(r" -0\.99\d+\r?\n").unwrap();
        assert!(drawn.contains("\x1b["), "no colour: {drawn:?}");
        assert!(has_braille(&drawn), "no braille: {drawn:?}");
        // The histogram, then the printed line, then the image, which was still pending
        // when the script ended.
        p.exp_string("data").unwrap();
        p.exp_string("values from 0 to 1").unwrap();
        p.exp_eof().unwrap();
    }

    #[test]
    fn the_repl_draws_a_figure_after_an_entry() {
        let dir = super::scratch("pty-repl");
        let mut p = spawn(&dir, "", false);
        p.exp_string("ad> ").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        p.send_line("plot([1, 4, 9]); ylabel(\"squares\")").unwrap();
        p.exp_string("squares").unwrap();
        let (drawn, _) = p.exp_string(" 9\r\n").map(|s| (s, ())).unwrap();
        assert!(has_braille(&drawn), "{drawn:?}");
        p.exp_string("ad> ").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        p.send_line("1 + 1").unwrap();
        p.exp_string("2").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        p.send_control('d').unwrap();
        p.exp_eof().unwrap();
    }
}
