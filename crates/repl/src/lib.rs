//! The interactive front end (`ad`, `ad repl [FILE]`): definitions, expressions and
//! `:commands` such as `:grad f(2)`, with line editing, completion, colour and history on
//! a terminal, and plain line-by-line reading when input is piped.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod commands;
pub mod editor;
pub mod front;
pub mod highlight;
pub mod repl;
pub mod transcript;

use std::io::IsTerminal;
use std::process::ExitCode;

pub use repl::{Flow, Repl};

/// Runs the REPL, loading `file` first.
pub fn main(file: Option<String>) -> ExitCode {
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    let mut repl = Repl::new();
    repl.color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() && !dumb;
    let screen = std::io::stdout().is_terminal().then(ad_driver::plot::Screen::stdout);
    repl.set_terminal(screen, std::io::stderr().is_terminal());
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    if let Some(f) = &file {
        repl.load(f, &mut out, &mut err);
    }
    if terminal && !dumb {
        let color = repl.color;
        if let Err(e) = front::run_terminal(&mut repl, color) {
            eprintln!("Error: the terminal failed: {e}");
            return ExitCode::from(1);
        }
    } else {
        // Pipes and dumb terminals: read lines ourselves; prompts only on a terminal.
        if terminal {
            print!("{}", front::banner());
        }
        front::run_lines(&mut repl, std::io::stdin().lock(), &mut out, &mut err, terminal);
    }
    ExitCode::SUCCESS
}
