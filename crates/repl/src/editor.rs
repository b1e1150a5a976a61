//! The rustyline helper: completion of commands, names in scope and file paths, syntax
//! colouring, and multi-line input decided by the real parser.

use crate::commands::{resolve, COMMANDS};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

const KEYWORDS: &[&str] = &["def", "let", "for", "in", "while", "if", "else", "true", "false", "import"];

pub struct AdHelper {
    /// Names in scope (the session's top-level names and the builtins), refreshed before
    /// each line is read.
    pub names: Rc<RefCell<Vec<String>>>,
    pub color: bool,
    files: FilenameCompleter,
}

impl AdHelper {
    pub fn new(names: Rc<RefCell<Vec<String>>>, color: bool) -> AdHelper {
        AdHelper { names, color, files: FilenameCompleter::new() }
    }
}

/// Completions of the word that ends at `pos`: (where the word starts, candidates).
pub fn complete_word(line: &str, pos: usize, names: &[String]) -> Option<(usize, Vec<String>)> {
    let before = &line[..pos];
    let trimmed = before.trim_start();
    if let Some(rest) = trimmed.strip_prefix(':') {
        if !rest.contains(char::is_whitespace) {
            let start = pos - rest.len();
            let cands =
                COMMANDS.iter().filter(|c| c.name.starts_with(rest)).map(|c| c.name.to_string()).collect();
            return Some((start, cands));
        }
        let word = rest.split_whitespace().next().unwrap_or("");
        if resolve(word).is_ok_and(|c| c.name == "load") {
            return None; // file names: the caller's filename completer
        }
    }
    let start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map(|i| i + 1).unwrap_or(0);
    let word = &before[start..];
    if word.is_empty() || word.starts_with(|c: char| c.is_ascii_digit()) {
        return Some((start, vec![]));
    }
    let mut cands: Vec<String> = names
        .iter()
        .map(|s| s.as_str())
        .chain(ad_ir::lower::builtins::names().iter().copied())
        .chain(KEYWORDS.iter().copied())
        .filter(|n| n.starts_with(word) && !n.starts_with('_'))
        .map(|s| s.to_string())
        .collect();
    cands.sort();
    cands.dedup();
    Some((start, cands))
}

impl Completer for AdHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        match complete_word(line, pos, &self.names.borrow()) {
            Some((start, cands)) => {
                Ok((start, cands.into_iter().map(|c| Pair { display: c.clone(), replacement: c }).collect()))
            }
            None => self.files.complete(line, pos, ctx),
        }
    }
}

impl Hinter for AdHelper {
    type Hint = String;
}

impl Highlighter for AdHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.color {
            Cow::Owned(crate::highlight::highlight(line))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, default: bool) -> Cow<'b, str> {
        if self.color && default {
            Cow::Owned(format!("\x1b[1;32m{prompt}\x1b[0m"))
        } else {
            Cow::Borrowed(prompt)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

impl Validator for AdHelper {
    /// Enter runs a complete entry and continues an incomplete one. Never `Invalid`: with
    /// piped input rustyline would then swallow every later line; a wrong entry runs and
    /// reports its error.
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for AdHelper {}

/// Whether an entry needs more lines (commands are always one line).
pub fn is_incomplete(text: &str) -> bool {
    !text.trim_start().starts_with(':') && ad_syntax::parser::is_incomplete(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_commands_names_and_keywords() {
        let names = vec!["my_loss".to_string(), "my_model".to_string(), "_private".to_string()];
        assert_eq!(complete_word(":he", 3, &names), Some((1, vec!["hessian".into(), "help".into()])));
        assert_eq!(complete_word("print(my_l", 10, &names), Some((6, vec!["my_loss".into()])));
        assert_eq!(complete_word("tanh", 4, &names), Some((0, vec!["tanh".into()])));
        assert_eq!(complete_word("ta", 2, &names), Some((0, vec!["tan".into(), "tanh".into()])));
        assert_eq!(complete_word("whi", 3, &names), Some((0, vec!["while".into()])));
        assert_eq!(complete_word("_pr", 3, &names), Some((0, vec![])));
        assert_eq!(complete_word(":load exa", 9, &names), None);
        assert_eq!(complete_word(":lo exa", 7, &names), None);
    }

    #[test]
    fn incomplete_entries_continue() {
        assert!(is_incomplete("def f(x) {"));
        assert!(is_incomplete("let a = [1,"));
        assert!(is_incomplete("1 +"));
        assert!(!is_incomplete("1 +* 2"));
        assert!(!is_incomplete(":grad f("));
        assert!(!is_incomplete("def f(x) = x"));
    }
}
