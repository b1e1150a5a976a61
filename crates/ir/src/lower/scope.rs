//! Names: lookup through local scopes, top-level names and builtins; binding and
//! rebinding; the free names of a lambda; and "did you mean" suggestions.

use super::value::{Func, LVal, Name};
use super::{builtins, Lowerer, Result};
use ad_syntax::ast::{Block, Expr, ExprKind, IndexArg, Pattern, Stmt, StmtKind};
use ad_syntax::{Diagnostic, Span};
use std::collections::HashSet;
use std::rc::Rc;

impl Lowerer<'_> {
    pub(crate) fn lookup(&mut self, name: &str, span: Span) -> Result<LVal> {
        if let Some(v) = self.local(name) {
            return Ok(v);
        }
        if let Some(v) = self.global(self.scope_at(span), name) {
            return Ok(v);
        }
        if let Some(b) = builtins::lookup(name) {
            return Ok(LVal::Func(Rc::new(Func::Builtin(b))));
        }
        Err(self.unknown_name(name, span))
    }

    /// Whether `name`, written at `span`, means nothing there.
    pub(crate) fn is_unknown(&self, name: &str, span: Span) -> bool {
        self.local(name).is_none()
            && self.host.global(self.scope_at(span), name).is_none()
            && builtins::lookup(name).is_none()
    }

    /// `name(..)` called where no function has that name: the suggestion is a function.
    pub(crate) fn unknown_function(&self, name: &str, span: Span) -> Diagnostic {
        let is_function = |v: &LVal| matches!(v, LVal::Func(_));
        let mut candidates: Vec<String> = self
            .frames
            .iter()
            .flat_map(|f| f.iter().filter(|(_, v)| is_function(v)).map(|(n, _)| n.to_string()))
            .collect();
        let scope = self.scope_at(span);
        for n in self.host.global_names(scope) {
            if self.host.global(scope, &n).is_some_and(|v| is_function(&v)) {
                candidates.push(n.to_string());
            }
        }
        candidates.extend(builtins::names().iter().map(|s| s.to_string()));
        let d = Diagnostic::at(span, format!("unknown function `{name}`"));
        match suggest(name, candidates.iter().map(|s| s.as_str())) {
            Some(s) => d.with_hint(format!("did you mean `{s}`?")),
            None => d,
        }
    }

    pub(crate) fn unknown_name(&self, name: &str, span: Span) -> Diagnostic {
        let mut candidates: Vec<String> =
            self.frames.iter().flat_map(|f| f.iter().map(|(n, _)| n.to_string())).collect();
        candidates.extend(self.host.global_names(self.scope_at(span)).iter().map(|n| n.to_string()));
        candidates.extend(builtins::names().iter().map(|s| s.to_string()));
        let d = Diagnostic::at(span, format!("unknown name `{name}`"));
        match suggest(name, candidates.iter().map(|s| s.as_str())) {
            Some(s) => d.with_hint(format!("did you mean `{s}`?")),
            None => d,
        }
    }

    /// `let` binding (declare = true) or rebinding of existing names (declare = false).
    pub(crate) fn bind(&mut self, pat: &Pattern, v: LVal, declare: bool) -> Result<()> {
        match pat {
            Pattern::Name(id) => {
                self.name_value(&v, id);
                if declare {
                    self.declare(id, v);
                    Ok(())
                } else {
                    self.assign(&id.name, v, id.span)
                }
            }
            Pattern::Tuple(pats, span) => {
                let LVal::Tuple(items) = &v else {
                    return Err(Diagnostic::at(
                        *span,
                        format!("cannot destructure {} into {} names", v.describe(), pats.len()),
                    ));
                };
                if items.len() != pats.len() {
                    return Err(Diagnostic::at(
                        *span,
                        format!(
                            "cannot destructure a tuple of {} into {}",
                            crate::words::count(items.len(), "element"),
                            crate::words::count(pats.len(), "name")
                        ),
                    ));
                }
                for (p, x) in pats.iter().zip(items.iter()) {
                    self.bind(p, x.clone(), declare)?;
                }
                Ok(())
            }
        }
    }

    /// Gives a traced value the user's name, for printing, unless it already has one (an
    /// alias such as `let y = x` keeps the first name). Names inside the prelude are not the
    /// user's and are left out.
    fn name_value(&mut self, v: &LVal, id: &ad_syntax::ast::Ident) {
        if let LVal::Arr(super::value::Arr::Var { var, .. }) = v {
            let info = &mut self.b.vars[var.index()];
            if info.name.is_none() && id.span.file != super::PRELUDE_FILE {
                info.name = Some(id.name.clone());
            }
        }
    }

    /// Binds a name in the innermost local scope, or at the top level in the scope of the
    /// file the name is written in.
    pub(crate) fn declare(&mut self, id: &ad_syntax::ast::Ident, v: LVal) {
        match self.frames.last_mut() {
            Some(frame) => frame.push((id.name.clone(), v)),
            None => {
                let scope = self.scope_at(id.span);
                self.host.set_global(scope, id.name.clone(), v)
            }
        }
    }

    /// The value of a local (not top-level) name, innermost first.
    pub(crate) fn local(&self, name: &str) -> Option<LVal> {
        self.frames
            .iter()
            .rev()
            .find_map(|f| f.iter().rev().find(|(n, _)| &**n == name).map(|(_, v)| v.clone()))
    }

    /// Rebinds a local name; gives the value back if there is none.
    pub(crate) fn set_local(&mut self, name: &str, v: LVal) -> std::result::Result<(), LVal> {
        for frame in self.frames.iter_mut().rev() {
            if let Some(slot) = frame.iter_mut().rev().find(|(n, _)| &**n == name) {
                slot.1 = v;
                return Ok(());
            }
        }
        Err(v)
    }

    fn assign(&mut self, name: &str, v: LVal, span: Span) -> Result<()> {
        let Err(v) = self.set_local(name, v) else { return Ok(()) };
        let scope = self.scope_at(span);
        let exists = self.host.global(scope, name).is_some();
        if exists && !self.in_function {
            self.host.set_global(scope, name.into(), v);
            return Ok(());
        }
        if exists {
            return Err(Diagnostic::at(
                span,
                format!("cannot assign to the top-level name `{name}` inside a function"),
            )
            .with_hint("functions are pure: return the new value instead"));
        }
        Err(self.unknown_name(name, span).with_hint(format!("use `let {name} = ...` to define a new name")))
    }
}

/// The closest candidate to a misspelt name, if one is close enough to be a likely typo.
/// Among equally close ones, a candidate of the name's length wins (swapped or mistyped
/// letters are likelier than a missing one: `tahn` is `tanh`, not `tan`).
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let len = name.chars().count();
    let limit = (len / 3).clamp(1, 3);
    candidates
        .filter(|c| *c != name && !c.starts_with('_'))
        .map(|c| (edit_distance(name, c), c.chars().count().abs_diff(len), c))
        .filter(|(d, _, _)| *d <= limit)
        .min()
        .map(|(_, _, c)| c.to_string())
}

/// Edit distance where swapping two neighbouring letters counts as one edit (the most
/// common typo: `tahn` for `tanh`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[n][m]
}

/// The names an expression reads that it does not bind itself, in order of first use.
pub(crate) fn free_names(e: &Expr, bound: &mut Vec<Name>, out: &mut Vec<Name>, seen: &mut HashSet<Name>) {
    match &e.kind {
        ExprKind::Var(n) => {
            if !bound.contains(n) && seen.insert(n.clone()) {
                out.push(n.clone());
            }
        }
        ExprKind::Num(_) | ExprKind::Str(_) | ExprKind::None | ExprKind::Error => {}
        ExprKind::Tuple(es) | ExprKind::Array(es) => es.iter().for_each(|x| free_names(x, bound, out, seen)),
        ExprKind::Unary(_, x) | ExprKind::Transpose(x) => free_names(x, bound, out, seen),
        ExprKind::Binary(_, a, b) => {
            free_names(a, bound, out, seen);
            free_names(b, bound, out, seen);
        }
        ExprKind::Call(f, args) => {
            free_names(f, bound, out, seen);
            args.iter().for_each(|x| free_names(x, bound, out, seen));
        }
        ExprKind::Index(x, idx) => {
            free_names(x, bound, out, seen);
            for x in idx.iter().flat_map(IndexArg::parts) {
                free_names(x, bound, out, seen);
            }
        }
        ExprKind::Lambda(l) => {
            let n = bound.len();
            bound.extend(l.params.iter().map(|p| p.name.clone()));
            free_names(&l.body, bound, out, seen);
            bound.truncate(n);
        }
        ExprKind::If(c, t, f) => {
            free_names(c, bound, out, seen);
            free_in_block(t, bound, out, seen);
            if let Some(f) = f {
                free_in_block(f, bound, out, seen);
            }
        }
    }
}

pub(crate) fn free_in_block(b: &Block, bound: &mut Vec<Name>, out: &mut Vec<Name>, seen: &mut HashSet<Name>) {
    free_in_stmts(&b.stmts, bound, out, seen);
}

/// The free names of statements run in order in one scope (their `let`s end with it).
pub(crate) fn free_in_stmts(
    stmts: &[Stmt],
    bound: &mut Vec<Name>,
    out: &mut Vec<Name>,
    seen: &mut HashSet<Name>,
) {
    let n = bound.len();
    for s in stmts {
        free_in_stmt(s, bound, out, seen);
    }
    bound.truncate(n);
}

pub(crate) fn pattern_names(p: &Pattern, out: &mut Vec<Name>) {
    match p {
        Pattern::Name(id) => out.push(id.name.clone()),
        Pattern::Tuple(ps, _) => ps.iter().for_each(|p| pattern_names(p, out)),
    }
}

fn free_in_stmt(s: &Stmt, bound: &mut Vec<Name>, out: &mut Vec<Name>, seen: &mut HashSet<Name>) {
    match &s.kind {
        StmtKind::Let { pat, value } => {
            free_names(value, bound, out, seen);
            pattern_names(pat, bound);
        }
        StmtKind::Assign { pat, value } => {
            free_names(value, bound, out, seen);
            let mut names = Vec::new();
            pattern_names(pat, &mut names);
            for n in names {
                if !bound.contains(&n) && seen.insert(n.clone()) {
                    out.push(n);
                }
            }
        }
        StmtKind::For { var, start, end, body } => {
            free_names(start, bound, out, seen);
            free_names(end, bound, out, seen);
            let n = bound.len();
            bound.push(var.name.clone());
            free_in_block(body, bound, out, seen);
            bound.truncate(n);
        }
        StmtKind::While { cond, body } => {
            free_names(cond, bound, out, seen);
            free_in_block(body, bound, out, seen);
        }
        StmtKind::ForEach { var, iter, body } => {
            free_names(iter, bound, out, seen);
            let n = bound.len();
            bound.push(var.name.clone());
            free_in_block(body, bound, out, seen);
            bound.truncate(n);
        }
        StmtKind::Update { target, value, .. } => {
            free_names(target, bound, out, seen);
            free_names(value, bound, out, seen);
        }
        StmtKind::Expr(e) => free_names(e, bound, out, seen),
        StmtKind::Def(_) | StmtKind::Import { .. } | StmtKind::Error => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let names = ["tanh", "sigmoid", "softmax", "x_train"];
        assert_eq!(suggest("tahn", names.iter().copied()), Some("tanh".into()));
        assert_eq!(suggest("softmx", names.iter().copied()), Some("softmax".into()));
        assert_eq!(suggest("q", names.iter().copied()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("tahn", "tanh"), 1);
    }
}
