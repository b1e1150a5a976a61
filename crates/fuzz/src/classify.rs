//! What counts as a finding.
//!
//! `ad` promises (ARCHITECTURE.md, "Invariants") that user input never panics and that
//! every error names a file, line and column; its exit status is 0, 1 (an error in the
//! program) or 2 (bad usage). A finding is a run that breaks one of those promises, or one
//! that does not end within the time limit or exceeds the memory limit.
//!
//! Errors are rendered by `ad_syntax::render`: an error with a location is an ariadne report
//! whose second line is `╭─[ FILE:LINE:COL ]`; an error without one is a single line
//! `Error: MESSAGE`, optionally followed by `  help:` and `  note:` lines. A few errors are
//! about the command rather than the program (a missing function for `ad derive`, an
//! unknown REPL command, a file that cannot be read) and rightly have no location; they
//! are listed in [`UNLOCATED_BY_DESIGN`].

use crate::run::{Outcome, Status};
use crate::target::Target;
use std::fmt;

/// Messages (substrings) of errors that are about the command, not a place in a program.
pub const UNLOCATED_BY_DESIGN: &[&str] = &[
    // `ad derive`: the function and its signature (crates/driver/src/derive.rs).
    "no function named `",
    "definitions (with ",
    "is not a `def`",
    ", not a function",
    "a dimension takes one number",
    "unknown derive mode",
    "has no parameters to differentiate",
    // Reading files: `ad run FILE` and `:load FILE`.
    "cannot read `",
    // REPL commands (crates/repl/src/commands.rs).
    "unknown command `:",
    "` is ambiguous: ",
    "` needs ",
    "precision is a number of significant digits",
    "unknown setting `",
    "expected a single expression",
];

/// The kinds of finding. [`Finding::signature`] adds what tells two findings of one kind
/// apart (where a panic happened, what an unlocated error said).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A Rust panic: its location (`crates/ir/src/builder.rs:99`) and first message line.
    Panic { location: String, message: String },
    /// The main thread's stack, or the worker's, overflowed.
    StackOverflow,
    /// An allocation failed under the memory limit (`memory allocation of N bytes failed`).
    OutOfMemory { bytes: String },
    /// Killed by a signal other than an abort explained above (SIGSEGV, SIGABRT, ...).
    Signal(i32),
    /// Still running when the time limit passed.
    Timeout,
    /// An "internal error" message without a panic.
    InternalError { message: String },
    /// An exit status other than 0, 1 and 2.
    ExitStatus(i32),
    /// An error report without a location.
    Unlocated { message: String },
    /// An error report whose primary location is in the prelude: errors inside library
    /// functions are to be reported at the user's call.
    InPrelude { message: String },
    /// `run`, `check` or `derive` failed (status 1) and said nothing on stderr.
    SilentFailure,
    /// `run`, `check` or `derive` reported an error but exited with status 0.
    ErrorButSuccess { message: String },
}

impl Finding {
    /// The finding's kind as one word, for summaries and file names.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Panic { .. } => "panic",
            Finding::StackOverflow => "stack-overflow",
            Finding::OutOfMemory { .. } => "out-of-memory",
            Finding::Signal(_) => "signal",
            Finding::Timeout => "timeout",
            Finding::InternalError { .. } => "internal-error",
            Finding::ExitStatus(_) => "exit-status",
            Finding::Unlocated { .. } => "unlocated-error",
            Finding::InPrelude { .. } => "error-in-prelude",
            Finding::SilentFailure => "silent-failure",
            Finding::ErrorButSuccess { .. } => "error-but-success",
        }
    }

    /// What identifies "the same bug": two runs with equal signatures are one finding, and
    /// minimisation keeps the signature. Numbers and quoted names in messages are blanked,
    /// so that `[3]` and `[4]` in an unlocated shape error are the same finding. Kinds that
    /// say nothing about where they happened (a hang, an abort) are told apart by the
    /// command, so that a hang in `ad check` does not hide one in `ad derive hessian`.
    pub fn signature(&self, target: &Target) -> String {
        match self {
            Finding::Panic { location, .. } => format!("panic at {location}"),
            Finding::InternalError { message }
            | Finding::Unlocated { message }
            | Finding::InPrelude { message }
            | Finding::ErrorButSuccess { message } => format!("{}: {}", self.kind(), normalize(message)),
            Finding::Signal(s) => format!("signal {s} in {}", target.kind()),
            Finding::ExitStatus(c) => format!("exit status {c} in {}", target.kind()),
            _ => format!("{} in {}", self.kind(), target.kind()),
        }
    }
}

impl Finding {
    /// Whether the signature pins the bug down (a panic's location, an error's message).
    /// A hang or an abort in some command may have any number of causes, so a campaign
    /// does not count it as known just because a known file shows the same kind.
    pub fn is_specific(&self) -> bool {
        matches!(
            self,
            Finding::Panic { .. }
                | Finding::InternalError { .. }
                | Finding::Unlocated { .. }
                | Finding::InPrelude { .. }
                | Finding::ErrorButSuccess { .. }
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Panic { location, message } => write!(f, "panic at {location}: {message}"),
            Finding::StackOverflow => write!(f, "stack overflow"),
            Finding::OutOfMemory { bytes } => write!(f, "memory allocation of {bytes} bytes failed (abort)"),
            Finding::Signal(s) => write!(f, "killed by signal {s} ({})", signal_name(*s)),
            Finding::Timeout => write!(f, "did not finish within the time limit"),
            Finding::InternalError { message } => write!(f, "internal error: {message}"),
            Finding::ExitStatus(c) => write!(f, "exit status {c}"),
            Finding::Unlocated { message } => write!(f, "error without a location: {message}"),
            Finding::InPrelude { message } => write!(f, "error located in the prelude: {message}"),
            Finding::SilentFailure => write!(f, "exit status 1 without an error message"),
            Finding::ErrorButSuccess { message } => write!(f, "error reported with exit status 0: {message}"),
        }
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        _ => "?",
    }
}

/// Blanks digits and backquoted text, and keeps the first 80 characters.
pub fn normalize(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                out.push('`');
            }
            _ if quoted => {
                if !out.ends_with('…') {
                    out.push('…');
                }
            }
            '0'..='9' => {
                if !out.ends_with('N') {
                    out.push('N');
                }
            }
            _ => out.push(c),
        }
    }
    out.chars().take(80).collect()
}

/// The finding a run amounts to, if any.
pub fn classify(target: &Target, outcome: &Outcome) -> Option<Finding> {
    let err = &outcome.stderr;
    // SIGXCPU: the CPU-time backstop of `Runner` fired before the wall-clock limit.
    if outcome.status == Status::TimedOut || outcome.status == Status::Signaled(24) {
        return Some(Finding::Timeout);
    }
    // The runtime's messages start a line; error reports quote the program's lines behind
    // a gutter (` 3 │ ...`), so a program that contains these words is not mistaken for
    // a crash (a mutated finding file once was).
    let lines: Vec<&str> = err.lines().collect();
    if let Some(line) = lines.iter().find(|l| l.starts_with("memory allocation of ") && l.contains(" failed"))
    {
        let bytes =
            line["memory allocation of ".len()..].chars().take_while(|c| c.is_ascii_digit()).collect();
        return Some(Finding::OutOfMemory { bytes });
    }
    let thread = |needle: &str| lines.iter().position(|l| l.starts_with("thread '") && l.contains(needle));
    if thread("has overflowed its stack").is_some() {
        return Some(Finding::StackOverflow);
    }
    if let Some(i) = thread(" panicked at ") {
        // `thread 'NAME' (ID) panicked at FILE:LINE:COL:` then the message on the next line.
        let head = lines[i].split(" panicked at ").nth(1).unwrap_or("").trim_end_matches(':');
        let location = match head.rsplit_once(':') {
            Some((file_line, col)) if col.chars().all(|c| c.is_ascii_digit()) => file_line.to_string(),
            _ => head.to_string(),
        };
        let message = lines.get(i + 1).unwrap_or(&"").trim().chars().take(200).collect();
        return Some(Finding::Panic { location, message });
    }
    match outcome.status {
        Status::Signaled(s) => return Some(Finding::Signal(s)),
        Status::Exited(c) if !(0..=2).contains(&c) => return Some(Finding::ExitStatus(c)),
        _ => {}
    }
    if let Some(line) =
        lines.iter().find(|l| l.starts_with("internal error") || l.starts_with("Error: internal error"))
    {
        return Some(Finding::InternalError { message: line.trim().chars().take(200).collect() });
    }
    let reports = reports(err);
    for r in &reports {
        match &r.location {
            None if !UNLOCATED_BY_DESIGN.iter().any(|m| r.message.contains(m)) => {
                return Some(Finding::Unlocated { message: r.message.clone() })
            }
            // `ad derive` of a library function reports errors in that function, which is
            // in the prelude; elsewhere the report belongs at the user's call.
            Some(loc) if loc.starts_with("<prelude>") && !derives_prelude_function(target) => {
                return Some(Finding::InPrelude { message: r.message.clone() })
            }
            _ => {}
        }
    }
    if *target != Target::Repl {
        match outcome.status {
            Status::Exited(1) if reports.is_empty() => return Some(Finding::SilentFailure),
            Status::Exited(0) => {
                if let Some(r) = reports.first() {
                    return Some(Finding::ErrorButSuccess { message: r.message.clone() });
                }
            }
            _ => {}
        }
    }
    None
}

/// The library functions of `crates/driver/src/prelude.ad`.
const PRELUDE_FUNCTIONS: &[&str] = &[
    "mean",
    "logsumexp",
    "log_softmax",
    "softmax",
    "mse",
    "cross_entropy",
    "inv",
    "norm",
    "dot",
    "outer",
    "_keepdims",
    "_shift",
];

fn derives_prelude_function(target: &Target) -> bool {
    matches!(target, Target::Derive { function, .. } if PRELUDE_FUNCTIONS.contains(&function.as_str()))
}

/// One error report on stderr: its message and, if it has one, its location (the text
/// inside `╭─[ ... ]`).
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub message: String,
    pub location: Option<String>,
}

/// The error reports in a stream of stderr text.
pub fn reports(stderr: &str) -> Vec<Report> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(message) = line.strip_prefix("Error: ") else { continue };
        let location = lines.get(i + 1).and_then(|next| {
            let start = next.find("╭─[")? + "╭─[".len();
            let end = next.rfind(']')?;
            (end > start).then(|| next[start..end].trim().to_string())
        });
        out.push(Report { message: message.to_string(), location });
    }
    out
}
