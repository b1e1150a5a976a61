//! How a case is run: which `ad` command, with which arguments, and what goes to its stdin.
//!
//! A target is written in regression files as the rest of a `# fuzz:` line, in the same
//! words as the command line after the file name is taken out: `run`, `check`, `repl`,
//! `derive hessian f --shape x=[400]`.

use std::fmt;

/// The derive modes of `ad derive`, all of which the fuzzer exercises.
pub const DERIVE_MODES: &[&str] = &["ir", "jvp", "jvp2", "vjp", "grad", "hvp", "hessian", "jacobian"];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `ad run FILE`.
    Run,
    /// `ad check FILE`.
    Check,
    /// `ad derive MODE FILE FUNCTION --shape NAME=SHAPE...`; each shape option is kept as
    /// the text after `--shape` (without spaces, so that the target is one line of words).
    Derive { mode: String, function: String, shapes: Vec<String> },
    /// `ad repl` with the case's text piped to its standard input.
    Repl,
}

impl Target {
    /// The arguments of `ad` for a case whose text was written to `file` (the REPL reads
    /// its text from stdin instead and takes no file).
    pub fn args(&self, file: &str) -> Vec<String> {
        match self {
            Target::Run => vec!["run".into(), file.into()],
            Target::Check => vec!["check".into(), file.into()],
            Target::Repl => vec!["repl".into()],
            Target::Derive { mode, function, shapes } => {
                let mut a = vec!["derive".into(), mode.clone(), file.into(), function.clone()];
                for s in shapes {
                    a.push("--shape".into());
                    a.push(s.clone());
                }
                a
            }
        }
    }

    /// Whether the case's text is piped to stdin rather than written to a file.
    pub fn reads_stdin(&self) -> bool {
        matches!(self, Target::Repl)
    }

    /// Parses the words of a `# fuzz:` line.
    pub fn parse(text: &str) -> Result<Target, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["run"] => Ok(Target::Run),
            ["check"] => Ok(Target::Check),
            ["repl"] => Ok(Target::Repl),
            ["derive", mode, function, rest @ ..] => {
                if !DERIVE_MODES.contains(mode) {
                    return Err(format!("unknown derive mode `{mode}`"));
                }
                let mut shapes = Vec::new();
                let mut it = rest.iter();
                while let Some(w) = it.next() {
                    match (*w, it.next()) {
                        ("--shape", Some(s)) => shapes.push(s.to_string()),
                        _ => return Err(format!("expected `--shape NAME=SHAPE`, found `{w}`")),
                    }
                }
                Ok(Target::Derive { mode: mode.to_string(), function: function.to_string(), shapes })
            }
            _ => Err(format!(
                "`{text}` is not a target: expected run, check, repl or derive MODE FN [--shape S]..."
            )),
        }
    }

    /// A short name for statistics: the command, and the mode for `derive`.
    pub fn kind(&self) -> String {
        match self {
            Target::Run => "run".into(),
            Target::Check => "check".into(),
            Target::Repl => "repl".into(),
            Target::Derive { mode, .. } => format!("derive {mode}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Run => write!(f, "run"),
            Target::Check => write!(f, "check"),
            Target::Repl => write!(f, "repl"),
            Target::Derive { mode, function, shapes } => {
                write!(f, "derive {mode} {function}")?;
                for s in shapes {
                    write!(f, " --shape {s}")?;
                }
                Ok(())
            }
        }
    }
}

/// One input to the `ad` binary: a target and the program text (bytes, since byte noise
/// need not be UTF-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub target: Target,
    pub text: Vec<u8>,
}

impl Case {
    pub fn new(target: Target, text: impl Into<Vec<u8>>) -> Case {
        Case { target, text: text.into() }
    }

    /// The text, lossily decoded, for printing.
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// The `# fuzz:` lines at the start of a regression or finding file: every target the
/// file is run with. Other comment lines (a description of the symptom) may follow them.
pub fn file_targets(text: &[u8]) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        match line.trim().strip_prefix("# fuzz:") {
            Some(rest) => targets.push(Target::parse(rest)?),
            None => break,
        }
    }
    if targets.is_empty() {
        return Err("the file does not start with a `# fuzz: TARGET` line".into());
    }
    Ok(targets)
}
