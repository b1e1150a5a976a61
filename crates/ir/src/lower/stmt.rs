//! Statements and blocks: `let`, rebinding, indexed update, `def`, `for` (iterated at the
//! top level; inside functions a loop equation, or unrolled when short and constant),
//! `while` (iterated at the top level; inside functions a loop equation).

use super::value::{Arr, LVal};
use super::{Lowerer, Mode, Result};
use ad_syntax::ast::{Block, Stmt, StmtKind};
use ad_syntax::{Diagnostic, Span};

/// An error from the statements of an imported file, reported with the import statements
/// that led to it: the innermost two and the outermost; those in between are counted.
fn imported_here(mut e: Diagnostic, span: Span) -> Diagnostic {
    const LABEL: &str = "in the file imported here";
    const SKIPPED: &str = " in between are not shown";
    if e.labels.iter().filter(|l| l.message == LABEL).count() >= 3 {
        if let Some(i) = e.labels.iter().rposition(|l| l.message == LABEL) {
            e.labels.remove(i);
        }
        let skipped = e.notes.iter().position(|n| n.ends_with(SKIPPED));
        let n = skipped
            .and_then(|i| e.notes[i].split(' ').next().and_then(|k| k.parse::<usize>().ok()))
            .unwrap_or(0);
        let note = format!("{}{SKIPPED}", crate::words::count(n + 1, "more import"));
        match skipped {
            Some(i) => e.notes[i] = note,
            None => e.notes.push(note),
        }
    }
    e.with_label(span, LABEL)
}

/// Inside a function, a `for` loop unrolls to at most this many iterations.
const MAX_UNROLL: i64 = 100_000;

impl Lowerer<'_> {
    /// Lowers one statement; an expression statement yields its value.
    pub(crate) fn stmt(&mut self, s: &Stmt) -> Result<Option<LVal>> {
        match &s.kind {
            StmtKind::Def(d) => {
                if self.in_function || !self.frames.is_empty() {
                    return Err(Diagnostic::at(d.name.span, "`def` is only allowed at the top level")
                        .with_hint("inside a function, bind a lambda: `let f = x => ...`"));
                }
                let scope = self.scope_at(d.name.span);
                let previous = self.host.global(scope, &d.name.name);
                self.host.set_global(
                    scope,
                    d.name.name.clone(),
                    super::value::define(previous.as_ref(), d.clone()),
                );
                Ok(None)
            }
            StmtKind::Import { path, .. } => self.import(path, s.span).map(|()| None),
            StmtKind::Let { pat, value } => {
                let v = self.expr(value)?;
                self.bind(pat, v, true)?;
                Ok(None)
            }
            StmtKind::Assign { pat, value } => {
                let v = self.expr(value)?;
                self.bind(pat, v, false)?;
                Ok(None)
            }
            StmtKind::Update { target, op, value } => {
                self.update(target, *op, value, s.span)?;
                Ok(None)
            }
            StmtKind::For { var, start, end, body } => {
                let av = self.expr(start)?;
                let bv = self.expr(end)?;
                let in_function = self.mode == Mode::Trace && self.in_function;
                if in_function && self.loop_once(s, var, (&av, &bv), (start.span, end.span), body)? {
                    return Ok(None);
                }
                let a = self.static_int(&av, "a loop bound", start.span)?;
                let b = self.static_int(&bv, "a loop bound", end.span)?;
                if in_function && b - a > MAX_UNROLL {
                    return Err(Diagnostic::at(
                        s.span,
                        format!(
                            "this loop would unroll into {} copies of its body; the limit is {MAX_UNROLL}",
                            b - a
                        ),
                    ));
                }
                // Checking the top level: one iteration shows the body's shapes.
                let last = if self.is_check() { b.min(a + 1) } else { b };
                // A loop that runs at the top level tells the host, which may show progress.
                let top = self.mode == Mode::Eager && !self.in_function;
                if top {
                    self.host.loop_started((last - a).max(0) as u64);
                }
                let mut r = Ok(LVal::unit());
                // Two iterations or more: runs of the body's statements become programs
                // where they can (`top_loop.rs`), decided at the first iteration.
                let mut parts = None;
                let mut decided = !(top && last - a >= 2);
                for i in a..last {
                    if top {
                        self.host.loop_step((i - a) as u64);
                    }
                    r = self.check_interrupt(s.span).map(|()| LVal::unit());
                    if r.is_ok() {
                        self.frames.push(vec![(var.name.clone(), LVal::Num(i as f64))]);
                        if !decided {
                            decided = true;
                            parts = self.body_parts(s, body);
                        }
                        r = match &mut parts {
                            Some(parts) => self.run_parts(parts, body).map(|()| LVal::unit()),
                            None => self.block_stmts(body),
                        };
                        self.frames.pop();
                    }
                    if r.is_err() {
                        break;
                    }
                }
                if top {
                    self.host.loop_ended();
                }
                r.map(|_| None)
            }
            StmtKind::ForEach { var, iter, body } => self.for_each(s, var, iter, body),
            StmtKind::While { cond, body } => {
                if self.in_function {
                    return self.while_once(s, cond, body).map(|()| None);
                }
                let mut parts = None;
                let mut decided = self.mode != Mode::Eager;
                loop {
                    self.check_interrupt(s.span)?;
                    let c = self.expr(cond)?;
                    if let Some(sh) = self.shape_of(&c) {
                        if !sh.is_scalar() {
                            return Err(Diagnostic::at(
                                cond.span,
                                format!("the condition of `while` must be a scalar, found shape {sh}"),
                            ));
                        }
                    }
                    if self.is_check() && matches!(c, LVal::Arr(Arr::Var { .. })) {
                        // Unknown condition while checking: check the body once.
                        self.block(body)?;
                        return Ok(None);
                    }
                    if self.static_num(&c, "the condition", cond.span)? == 0.0 {
                        return Ok(None);
                    }
                    self.frames.push(Vec::new());
                    if !decided {
                        decided = true;
                        parts = self.body_parts(s, body);
                    }
                    let r = match &mut parts {
                        Some(parts) => self.run_parts(parts, body),
                        None => self.block_stmts(body).map(|_| ()),
                    };
                    self.frames.pop();
                    r?;
                }
            }
            StmtKind::Expr(e) => Ok(Some(self.expr(e)?)),
            StmtKind::Error => Err(Diagnostic::at(s.span, "this statement could not be parsed")),
        }
    }

    /// `for x in X { body }` is `for i in 0..n { let x = X[i]; body }` over the first axis
    /// of `X` (evaluated once), with names no script can write for `X` and `i`.
    fn for_each(
        &mut self,
        s: &Stmt,
        var: &ad_syntax::ast::Ident,
        iter: &ad_syntax::ast::Expr,
        body: &Block,
    ) -> Result<Option<LVal>> {
        use ad_syntax::ast::{Expr, ExprKind, Ident, IndexArg, Pattern};
        let x = self.expr(iter)?;
        let n = match self.shape_of(&x) {
            Some(sh) if sh.rank() >= 1 => sh.dims()[0],
            Some(sh) => {
                return Err(Diagnostic::at(
                    iter.span,
                    format!(
                        "`for {} in ...` iterates over the first axis of an array, found shape {sh}",
                        var.name
                    ),
                ))
            }
            None => {
                return Err(Diagnostic::at(
                    iter.span,
                    format!("`for {} in ...` iterates over an array, found {}", var.name, x.describe()),
                ))
            }
        };
        let array: ad_syntax::ast::Name = "for each array".into();
        let index = Ident { name: "for each index".into(), span: var.span };
        let at = |kind| Expr { kind, span: iter.span };
        let element = at(ExprKind::Index(
            Box::new(at(ExprKind::Var(array.clone()))),
            vec![IndexArg::Index(at(ExprKind::Var(index.name.clone())))],
        ));
        let mut stmts = vec![Stmt {
            kind: StmtKind::Let { pat: Pattern::Name(var.clone()), value: element },
            span: var.span,
        }];
        stmts.extend(body.stmts.iter().cloned());
        let lowered = Stmt {
            kind: StmtKind::For {
                var: index,
                start: at(ExprKind::Num(0.0)),
                end: at(ExprKind::Num(n as f64)),
                body: Block { stmts, span: body.span },
            },
            span: s.span,
        };
        self.frames.push(vec![(array, x)]);
        let r = self.stmt(&lowered);
        self.frames.pop();
        r
    }

    /// `import "path"`: the host finds the file; if it has not run yet, its statements run
    /// here, in this lowerer (so that checking a script checks what it imports with the
    /// same abstract values), each in the scope of its own file.
    fn import(&mut self, path: &str, span: Span) -> Result<()> {
        if self.in_function || !self.frames.is_empty() {
            return Err(Diagnostic::at(span, "`import` is only allowed at the top level")
                .with_hint("import files at the start of a script"));
        }
        let Some(module) = self.host.import(path, span)? else { return Ok(()) };
        let mut r = Ok(());
        for s in &module.stmts {
            r = self.stmt(s).map(|_| ());
            if r.is_err() {
                break;
            }
        }
        self.host.import_done(span, r.is_ok());
        if self.is_check() {
            self.imported.push(module);
        }
        r.map_err(|e| imported_here(e, span))
    }

    /// A block in its own scope; its value is its last statement's if that is an expression.
    pub(crate) fn block(&mut self, b: &Block) -> Result<LVal> {
        self.frames.push(Vec::new());
        let r = self.block_stmts(b);
        self.frames.pop();
        r
    }

    /// The statements of a block in the current scope.
    pub(crate) fn block_stmts(&mut self, b: &Block) -> Result<LVal> {
        let mut last = LVal::unit();
        for (i, s) in b.stmts.iter().enumerate() {
            let v = self.stmt(s)?;
            if i + 1 == b.stmts.len() {
                if let Some(v) = v {
                    last = v;
                }
            }
        }
        Ok(last)
    }
}
