//! The REPL through the real binary: piped input (no prompts, line by line), `ad repl FILE`,
//! and a pseudo-terminal session with editing keys, completion, history and Ctrl-C.

use std::io::Write;
use std::process::{Command, Stdio};

fn piped(args: &[&str], input: &str, env: &[(&str, &str)]) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ad"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).env("AD_HISTORY", "");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn piped_input_prints_only_results() {
    let input = "def f(x) = x^3\n:grad f(2)\n";
    assert_eq!(piped(&["repl"], input, &[]).0, "12\n");
    assert_eq!(piped(&[], input, &[]).0, "12\n");
    assert_eq!(piped(&["repl"], input, &[("TERM", "dumb")]).0, "12\n");
}

#[test]
fn piped_errors_go_to_stderr_and_the_session_continues() {
    let (out, err) = piped(&["repl"], "let a = [1, 2\n, 3]\nb\na + 1\n", &[]);
    assert_eq!(out, "[2, 3, 4]\n");
    assert!(err.contains("unknown name `b`"), "{err}");
    // An entry left open at the end of input is reported, not lost.
    let (_, err) = piped(&["repl"], "def f(x) {\n", &[]);
    assert!(err.contains("expected"), "{err}");
}

#[test]
fn repl_loads_a_file_first() {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-repl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("defs.ad");
    std::fs::write(&file, "def sq(x) = x * x\nlet k = 3\n").unwrap();
    let (out, _) = piped(&["repl", file.to_str().unwrap()], "sq(k)\n:grad sq(k)\n", &[]);
    assert_eq!(out, "9\n6\n");
    // Loading it again after an edit replaces its definitions.
    let input = format!(":load {0}\nk\n", file.display());
    std::fs::write(&file, "def sq(x) = x * x * x\n").unwrap();
    let (out, err) = piped(&["repl"], &format!("{input}sq(2)\n"), &[]);
    assert!(out.contains("8\n"), "{out}");
    assert!(out.starts_with("Loaded"), "{out}");
    assert!(err.contains("unknown name `k`") || !out.contains("\n3\n"), "{err}");
}

mod terminal {
    use rexpect::session::{spawn_command, PtySession};
    use std::process::Command;
    use std::time::Duration;

    /// Sends a line once the REPL is waiting for one (keys typed while it is busy may be
    /// discarded when the terminal switches modes, as on a real terminal).
    fn line(p: &mut PtySession, text: &str) {
        std::thread::sleep(Duration::from_millis(150));
        p.send_line(text).unwrap();
    }

    fn keys(p: &mut PtySession, text: &str) {
        std::thread::sleep(Duration::from_millis(150));
        p.send(text).unwrap();
        p.flush().unwrap();
    }

    fn start(history: &std::path::Path) -> PtySession {
        // A pseudo-terminal starts with zero columns; give it a real size, as a terminal has.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("stty cols 100 rows 40 && exec '{}'", env!("CARGO_BIN_EXE_ad")));
        cmd.env("AD_HISTORY", history).env("TERM", "xterm").env("NO_COLOR", "1");
        let mut p = spawn_command(cmd, Some(10_000)).expect("the REPL starts in a pseudo-terminal");
        p.exp_string("Type :help for help").unwrap();
        p.exp_string("ad> ").unwrap();
        p
    }

    fn history_file(name: &str) -> std::path::PathBuf {
        let dir =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ad-pty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(name);
        let _ = std::fs::remove_file(&f);
        f
    }

    #[test]
    fn multi_line_definition_completion_and_ctrl_c() {
        let mut p = start(&history_file("a"));
        // A three-line def: Enter continues while the definition is open.
        line(&mut p, "def twice(x) {");
        line(&mut p, "  x * 2");
        line(&mut p, "}");
        p.exp_string("ad> ").unwrap();
        // Tab completes a user-defined name.
        keys(&mut p, "twi");
        keys(&mut p, "\t");
        line(&mut p, "(21)");
        p.exp_string("42").unwrap();
        // Ctrl-C clears a half-typed line.
        keys(&mut p, "1 + 1000");
        std::thread::sleep(Duration::from_millis(150));
        p.send_control('c').unwrap();
        line(&mut p, "7 * 6");
        p.exp_string("42").unwrap();
        // Ctrl-C interrupts a long evaluation and keeps the session.
        line(&mut p, "let n = 0");
        line(&mut p, "for i in 0..100000000 { n = n + 1 }");
        std::thread::sleep(Duration::from_millis(700));
        std::thread::sleep(Duration::from_millis(150));
        p.send_control('c').unwrap();
        p.exp_string("interrupted").unwrap();
        line(&mut p, "n > 0");
        p.exp_string("1").unwrap();
        // Ctrl-C stops a `while` inside a function that never ends.
        line(&mut p, "def spin(x) {");
        line(&mut p, "  while x > 0 { x = x + 1 }");
        line(&mut p, "  x");
        line(&mut p, "}");
        line(&mut p, "spin(1)");
        std::thread::sleep(Duration::from_millis(700));
        p.send_control('c').unwrap();
        p.exp_string("interrupted").unwrap();
        line(&mut p, "twice(5)");
        p.exp_string("10").unwrap();
        // Ctrl-D quits.
        std::thread::sleep(Duration::from_millis(150));
        p.send_control('d').unwrap();
        p.exp_eof().unwrap();
    }

    #[test]
    fn history_recalls_multi_line_entries() {
        let h = history_file("b");
        let mut p = start(&h);
        line(&mut p, "def inc(x) {");
        line(&mut p, "  x + 1");
        line(&mut p, "}");
        p.exp_string("ad> ").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        p.send_control('d').unwrap();
        p.exp_eof().unwrap();
        let saved = std::fs::read_to_string(&h).unwrap();
        assert!(saved.contains("def inc(x) {"), "{saved:?}");
        // A new session recalls the whole entry with Up and runs it with Enter.
        let mut p = start(&h);
        keys(&mut p, "\x1b[A");
        p.exp_string("x + 1").unwrap_or_else(|e| panic!("history: {saved:?}: {e:?}"));
        keys(&mut p, "\r");
        p.exp_string("ad> ").unwrap();
        line(&mut p, "inc(41)");
        p.exp_string("42").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        p.send_control('d').unwrap();
        p.exp_eof().unwrap();
    }
}
