//! Signatures of the functions a script can call without defining them: builtins (read
//! from the language reference, which names every builtin) and the prelude's functions
//! (from the prelude's own definitions and the comments above them); and where the cursor
//! is in a call, found from the tokens so that it works while the call is being typed.

use crate::analysis::{doc_comment, signature};
use ad_syntax::ast::{Def, StmtKind};
use ad_syntax::trivia::Trivia;
use ad_syntax::FileId;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::OnceLock;

/// The pages of the book that write builtins' signatures as `name(params)`.
const REFERENCE: &[&str] =
    &[include_str!("../../../book/src/reference.md"), include_str!("../../../book/src/autodiff.md")];

/// A callable's signatures (one per number of parameters) and documentation.
#[derive(Clone, Debug, Default)]
pub struct Callable {
    /// `sum(x)`, `sum(x, axis)`.
    pub signatures: Vec<String>,
    pub doc: Option<String>,
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The parameters of a `name(params)` code span when they read as a signature (names,
/// `...`, and an optional tail in brackets), expanded into one list per arity.
fn signature_params(params: &str) -> Option<Vec<Vec<String>>> {
    let split = |s: &str| -> Option<Vec<String>> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| (is_ident(p) || p == "...").then(|| p.to_string()))
            .collect()
    };
    // Optional parameters nest: `a[, b[, c]]` is `a`, `a, b` and `a, b, c`.
    let Some(i) = params.find('[') else { return Some(vec![split(params)?]) };
    let inner = params.strip_suffix(']')?.get(i + 1..)?;
    let first = split(&params[..i])?;
    let mut out = vec![first.clone()];
    for more in signature_params(inner)? {
        out.push(first.iter().cloned().chain(more).collect());
    }
    Some(out)
}

/// Builtins' signatures from the reference: every code span `name(params)` whose
/// parameters are names, and names listed in the rows of elementwise operations.
fn from_reference() -> BTreeMap<String, Callable> {
    let builtins = ad_ir::lower::builtins::names();
    let mut out: BTreeMap<String, Callable> = BTreeMap::new();
    // The first signature the reference gives for each number of parameters.
    let mut add = |name: &str, params: Vec<String>| {
        let c = out.entry(name.to_string()).or_default();
        if !c.signatures.iter().any(|s| arity(s) == params.len()) {
            c.signatures.push(format!("{name}({})", params.join(", ")));
        }
    };
    for page in REFERENCE {
        for line in page.lines() {
            let row_params: Option<Vec<String>> = if line.starts_with("| elementwise unary") {
                Some(vec!["x".into()])
            } else if line.starts_with("| elementwise binary") {
                Some(vec!["a".into(), "b".into()])
            } else {
                None
            };
            for span in line.split('`').skip(1).step_by(2) {
                if let Some((name, rest)) = span.split_once('(') {
                    let Some(params) = rest.strip_suffix(')') else { continue };
                    if !builtins.contains(&name) {
                        continue;
                    }
                    for ps in signature_params(params).unwrap_or_default() {
                        add(name, ps);
                    }
                } else if let Some(ps) = &row_params {
                    for word in span.split_whitespace().filter(|w| builtins.contains(w)) {
                        add(word, ps.clone());
                    }
                }
            }
        }
    }
    for c in out.values_mut() {
        c.signatures.sort_by_key(|s| arity(s));
    }
    out
}

/// The number of parameters of a signature `name(a, b)`.
pub fn arity(sig: &str) -> usize {
    let inner = sig.split_once('(').map_or("", |(_, r)| r.trim_end_matches(')'));
    if inner.trim().is_empty() {
        0
    } else {
        inner.matches(',').count() + 1
    }
}

/// The signature of every builtin; `name(...)` for one the reference gives none.
pub fn builtins() -> &'static BTreeMap<String, Callable> {
    static B: OnceLock<BTreeMap<String, Callable>> = OnceLock::new();
    B.get_or_init(|| {
        let mut found = from_reference();
        for name in ad_ir::lower::builtins::names() {
            let c = found.entry(name.to_string()).or_default();
            if c.signatures.is_empty() {
                c.signatures.push(format!("{name}(...)"));
            }
            c.doc = Some(match ad_ir::lower::builtins::is_effect(name) {
                true => "builtin (top level only: it has an effect)".to_string(),
                false => "builtin".to_string(),
            });
        }
        found
    })
}

/// The prelude's public definitions (`_name`s are private) and constants.
pub struct Prelude {
    pub functions: BTreeMap<String, (Vec<Rc<Def>>, Callable)>,
    pub constants: Vec<String>,
}

thread_local! {
    static PRELUDE: Rc<Prelude> = Rc::new(load_prelude());
}

pub fn prelude() -> Rc<Prelude> {
    PRELUDE.with(Rc::clone)
}

fn load_prelude() -> Prelude {
    let text = ad_driver::session::PRELUDE;
    let (module, _) = ad_syntax::parser::parse(FileId(0), text);
    let mut functions: BTreeMap<String, (Vec<Rc<Def>>, Callable)> = BTreeMap::new();
    let mut constants = Vec::new();
    for s in &module.stmts {
        match &s.kind {
            StmtKind::Def(d) if !d.name.name.starts_with('_') => {
                let (defs, c) = functions.entry(d.name.name.to_string()).or_default();
                defs.push(d.clone());
                c.signatures.push(signature(d));
                if c.doc.is_none() {
                    c.doc = doc_comment(text, d.span.start as usize);
                }
            }
            StmtKind::Let { pat: ad_syntax::ast::Pattern::Name(i), .. } => constants.push(i.name.to_string()),
            _ => {}
        }
    }
    for (_, c) in functions.values_mut() {
        c.signatures.sort_by_key(|s| arity(s));
        let doc = c.doc.take().map_or(String::new(), |d| format!("{d}\n\n"));
        c.doc = Some(format!("{doc}library function (the prelude)"));
    }
    Prelude { functions, constants }
}

/// The prelude's or the builtins' entry for a name.
pub fn library(name: &str) -> Option<Callable> {
    if let Some((_, c)) = prelude().functions.get(name) {
        return Some(c.clone());
    }
    builtins().get(name).cloned()
}

/// The call the cursor at `offset` is in: the callee's name, where it starts, and the
/// number of the argument (counted from 0). Works on tokens, so on half-typed calls too.
pub fn call_at(text: &str, trivia: &Trivia, offset: usize) -> Option<(String, usize, usize)> {
    let end = trivia.tokens.partition_point(|t| t.end <= offset);
    let mut depth = 0usize;
    let mut commas = 0;
    for i in (0..end).rev().take(100_000) {
        let t = trivia.tokens[i].clone();
        match text.get(t.clone()).unwrap_or("") {
            ")" | "]" | "}" => depth += 1,
            "[" | "{" if depth == 0 => return None,
            "(" if depth == 0 => {
                let callee = trivia.tokens.get(i.checked_sub(1)?)?.clone();
                let name = text.get(callee.clone())?;
                let keyword = ["def", "let", "for", "in", "while", "if", "else", "true", "false", "import"];
                return (is_ident(name) && !keyword.contains(&name))
                    .then(|| (name.to_string(), callee.start, commas));
            }
            "(" | "[" | "{" => depth -= 1,
            // Only statements start with these: the call began before them, if anywhere.
            "def" | "let" | "for" | "while" | "import" if depth == 0 => return None,
            "," if depth == 0 => commas += 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_from_the_reference() {
        let b = builtins();
        assert_eq!(b["sum"].signatures, ["sum(x)", "sum(x, axes)"]);
        assert_eq!(b["exp"].signatures, ["exp(x)"]);
        assert_eq!(b["max"].signatures, ["max(a, b)"]);
        assert_eq!(b["where"].signatures, ["where(c, a, b)"]);
        assert_eq!(b["concat"].signatures, ["concat(xs, axis)", "concat(a, b, axis)"]);
        assert_eq!(b["zeros"].signatures, ["zeros(shape)"]);
        assert_eq!(b["now"].signatures, ["now()"]);
        // Nested optional parameters give one signature per arity.
        assert_eq!(
            b["conv2d"].signatures,
            [
                "conv2d(x, k)",
                "conv2d(x, k, stride)",
                "conv2d(x, k, stride, padding)",
                "conv2d(x, k, stride, padding, groups)"
            ]
        );
        assert!(b["grad"].signatures.contains(&"grad(f)".to_string()));
        assert!(b["print"].doc.as_deref().unwrap_or("").contains("top level"));
        // Every builtin the reference writes with its parameters has them here.
        let missing: Vec<&String> = b
            .iter()
            .filter(|(_, c)| c.signatures.iter().any(|s| s.ends_with("(...)")))
            .map(|(n, _)| n)
            .collect();
        assert!(missing.len() <= 2, "builtins without a signature in the reference: {missing:?}");
    }

    #[test]
    fn prelude_functions() {
        let p = prelude();
        let (defs, mean) = &p.functions["mean"];
        assert_eq!(defs.len(), 2);
        assert_eq!(mean.signatures, ["mean(x)", "mean(x, axis)"]);
        assert!(mean.doc.as_deref().unwrap_or("").starts_with("Mean of all elements"));
        assert!(!p.functions.contains_key("_shift"));
        assert!(p.constants.contains(&"pi".to_string()));
    }

    #[test]
    fn calls_while_typing() {
        let at = |src: &str| {
            let t = Trivia::scan(src);
            call_at(src, &t, src.len()).map(|(n, _, k)| (n, k))
        };
        assert_eq!(at("print(f(1, 2), sum(x, "), Some(("sum".into(), 1)));
        assert_eq!(at("print(f(1, 2), "), Some(("print".into(), 1)));
        assert_eq!(at("f(x)"), None);
        assert_eq!(at("let y = g(a[1, 2], (3, 4), "), Some(("g".into(), 2)));
        assert_eq!(at("x[f(1), "), None);
        assert_eq!(at("(1, "), None);
        assert_eq!(at("if ("), None);
        assert_eq!(at(""), None);
        assert_eq!(at(")))"), None);
    }
}
