//! The two front ends: an interactive terminal (rustyline: editing, completion, colour,
//! history, Ctrl-C) and plain line-by-line reading for pipes and dumb terminals.

use crate::editor::{is_incomplete, AdHelper};
use crate::repl::{Flow, Repl};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};
use std::cell::RefCell;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::rc::Rc;

pub const PROMPT: &str = "ad> ";
pub const CONTINUE: &str = "... ";

/// Where the history lives: `$AD_HISTORY` (empty disables it), else
/// `$XDG_DATA_HOME/ad/history`, else `~/.local/share/ad/history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AD_HISTORY") {
        return if p.is_empty() { None } else { Some(PathBuf::from(p)) };
    }
    let data = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(data.join("ad").join("history"))
}

pub fn banner() -> String {
    format!(
        "AD {} — a differentiable array language. Type :help for help, Ctrl-D to quit.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Reads entries line by line (an entry continues while the parser says it is
/// incomplete) and runs them. Prompts go to `out` only when `prompts` is set.
pub fn run_lines(
    repl: &mut Repl,
    input: impl BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
    prompts: bool,
) {
    // When the reader of the output goes away (`ad repl < script | head -1`), stop reading
    // input: nobody will see the results.
    let mut watched = Watched { inner: out, failed: false };
    let out: &mut dyn Write = &mut watched;
    let mut entry = String::new();
    let mut lines = input.lines();
    loop {
        if prompts {
            let _ = write!(out, "{}", if entry.is_empty() { PROMPT } else { CONTINUE });
            let _ = out.flush();
        }
        let Some(Ok(line)) = lines.next() else { break };
        entry.push_str(&line);
        entry.push('\n');
        if is_incomplete(&entry) {
            continue;
        }
        let text = std::mem::take(&mut entry);
        if repl.entry(&text, out, err) == Flow::Quit || repl.session.output_closed() {
            return;
        }
        if out.flush().is_err() {
            return;
        }
    }
    // Input ended inside an entry: run it, so that its error (unexpected end) is reported.
    if !entry.trim().is_empty() {
        repl.entry(&entry, out, err);
    }
}

/// An output that remembers whether a write failed.
struct Watched<'a> {
    inner: &'a mut dyn Write,
    failed: bool,
}

impl Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        }
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

/// The interactive loop.
pub fn run_terminal(repl: &mut Repl, color: bool) -> rustyline::Result<()> {
    // Ctrl-C while an entry runs asks it to stop; while editing, rustyline sees the key.
    let _ = ctrlc::set_handler(|| ad_eval::INTERRUPT.store(true, std::sync::atomic::Ordering::Relaxed));
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(5000)?
        .build();
    let mut rl: Editor<AdHelper, FileHistory> = Editor::with_config(config)?;
    let names = Rc::new(RefCell::new(Vec::new()));
    rl.set_helper(Some(AdHelper::new(names.clone(), color)));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    print!("{}", banner());
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    loop {
        *names.borrow_mut() = repl.session.top_level_names().iter().map(|n| n.to_string()).collect();
        match rl.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                    if let Some(h) = &history {
                        if let Some(dir) = h.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        let _ = rl.save_history(h);
                    }
                }
                if repl.entry(&line, &mut out, &mut err) == Flow::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
