//! Transcripts: REPL sessions written as they appear on a terminal, used as tests (and in
//! the book). Lines starting with `ad> ` are entered, `... ` continues an entry, and the
//! lines after an entry are what it prints (output and errors, in order).
//!
//! ```text
//! ad> def f(x) = x ^ 3
//! ad> :grad f(2)
//! 12
//! ```

use crate::front::{CONTINUE, PROMPT};
use crate::repl::{Flow, Repl};
use ad_driver::SharedBuf;

struct Entry {
    input: Vec<String>,
}

fn entries(text: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for line in text.lines() {
        if let Some(input) = line.strip_prefix(PROMPT).or_else(|| (line == PROMPT.trim_end()).then_some("")) {
            out.push(Entry { input: vec![input.to_string()] });
        } else if let (Some(rest), Some(last)) = (line.strip_prefix(CONTINUE), out.last_mut()) {
            last.input.push(rest.to_string());
        }
    }
    out
}

/// Runs the entries of a transcript in a fresh REPL and returns the transcript as it
/// should read: the same entries, each followed by what it printed.
pub fn replay(text: &str) -> String {
    replay_in(&mut Repl::new(), text)
}

/// As [`replay`], continuing the session `repl` (a chapter's transcripts are one session).
pub fn replay_in(repl: &mut Repl, text: &str) -> String {
    let buf = SharedBuf::default();
    let mut result = String::new();
    for e in entries(text) {
        for (i, line) in e.input.iter().enumerate() {
            result.push_str(if i == 0 { PROMPT } else { CONTINUE });
            result.push_str(line);
            result.push('\n');
        }
        let (mut out, mut err) = (buf.clone(), buf.clone());
        let flow = repl.entry(&(e.input.join("\n") + "\n"), &mut out, &mut err);
        result.push_str(&buf.take());
        if flow == Flow::Quit {
            break;
        }
    }
    normal(&result)
}

/// Rendered reports keep trailing spaces; transcripts do not.
fn normal(s: &str) -> String {
    s.lines().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n") + "\n"
}

/// Compares a transcript with its replay; `Err` holds the replay.
pub fn check(text: &str) -> Result<(), String> {
    let got = replay(text);
    if normal(text) == got {
        Ok(())
    } else {
        Err(got)
    }
}
