//! Top-level loops whose bodies run as programs.
//!
//! Statement by statement, every iteration of a top-level loop pays for lowering and
//! dispatching each operation on its own, and a derivative it calls is a separate program.
//! A body that is a function of the names it reads (no effects, no definitions, arrays and
//! numbers only) is instead lowered once, as a function of the loop's index and the names
//! it assigns, and each iteration calls that program ([`super::Host::call_traced`]): derivatives
//! are inlined into it, and the interpreter's fused chains, planned memory and compiled tier
//! apply to the whole body. The index and the carried values are inputs whose values the
//! program does not depend on, so the body is lowered once per loop, not per iteration.
//!
//! What a user sees does not change: the host is told of every iteration (progress, Ctrl-C),
//! and the names the body assigns are assigned after each iteration. A body that does not
//! lower (a `print`, a shape that depends on the index, ...) runs statement by statement, as
//! before, which reports anything wrong where it is written.

use super::control::{assigned_names, plain};
use super::scope::free_in_block;
use super::spec::Spec;
use super::value::{Func, LVal, Name};
use super::{Lowerer, Result};
use ad_syntax::ast::{Block, Def, Expr, ExprKind, Ident, Param, Stmt, StmtKind};
use ad_syntax::{Diagnostic, Span};
use std::collections::HashSet;
use std::rc::Rc;

/// A loop body as a function `(index, params...) -> (carried...)`.
pub(crate) struct BodyFn {
    f: LVal,
    /// The names passed in after the index: first the names the body assigns (its result,
    /// in this order), then local names of enclosing loops that it only reads.
    params: Vec<Name>,
    carried: usize,
    /// The carried names that are top-level names (not an enclosing loop's).
    globals: Vec<Name>,
    span: Span,
    /// The host's memo of this loop's calls (`Host::call_traced`).
    memo: Option<Box<dyn std::any::Any>>,
}

impl Lowerer<'_> {
    /// The body of the top-level loop `s` as a function, when the names it reads and
    /// assigns allow one (`None`: run it statement by statement). `var` is a `for` loop's
    /// index.
    pub(crate) fn body_fn(&mut self, s: &Stmt, var: Option<&Ident>, body: &Block) -> Option<BodyFn> {
        let mut bound: Vec<Name> = var.iter().map(|v| v.name.clone()).collect();
        let mut free = Vec::new();
        free_in_block(body, &mut bound, &mut free, &mut HashSet::new());
        let mut assigned = Vec::new();
        assigned_names(body, &mut assigned);
        // The program returns the carried names from the end of the body, where a `let` at
        // its top would shadow them.
        let shadowed = |n: &Name| {
            body.stmts.iter().any(|st| match &st.kind {
                StmtKind::Let { pat, .. } => {
                    let mut names = Vec::new();
                    super::scope::pattern_names(pat, &mut names);
                    names.contains(n)
                }
                _ => false,
            })
        };
        let scope = self.scope_at(body.span);
        let (mut carried, mut read, mut globals) = (Vec::new(), Vec::new(), Vec::new());
        for n in free {
            let local = self.local(&n);
            if assigned.contains(&n) {
                if local.is_none() {
                    globals.push(n.clone());
                }
                let v = local.or_else(|| self.host.global(scope, &n))?;
                if !plain(&v) || shadowed(&n) {
                    return None;
                }
                carried.push(n);
            } else if let Some(v) = local {
                if !plain(&v) {
                    return None;
                }
                read.push(n);
            }
        }
        let n_carried = carried.len();
        let mut params = carried;
        params.extend(read);
        let def = match self.bodies.iter().find(|(sp, p, _)| *sp == s.span && *p == params) {
            Some((_, _, d)) => d.clone(),
            None => {
                let d = Rc::new(body_def(s, var, body, &params, n_carried));
                self.bodies.push((s.span, params.clone(), d.clone()));
                d
            }
        };
        Some(BodyFn {
            f: LVal::Func(Rc::new(Func::Def(def))),
            params,
            carried: n_carried,
            globals,
            span: s.span,
            memo: None,
        })
    }

    /// Runs one iteration (`index` for a `for` loop) through the body's program and assigns
    /// what it carries. `Ok(None)`: the body does not lower, nothing ran. `Ok(Some(same))`:
    /// it ran; `same` is false when a carried value changed structure (the next iteration
    /// would need another program: the caller goes on statement by statement).
    pub(crate) fn run_body(&mut self, bf: &mut BodyFn, index: Option<i64>) -> Result<Option<bool>> {
        let scope = self.scope_at(bf.span);
        let mut args: Vec<LVal> = index.map(|i| LVal::Num(i as f64)).into_iter().collect();
        for n in &bf.params {
            match self.local(n).or_else(|| self.host.global(scope, n)) {
                Some(v) => args.push(v),
                None => return Ok(None),
            }
        }
        let first = usize::from(index.is_some());
        let before: Vec<Spec> = args[first..first + bf.carried].iter().map(Spec::of).collect();
        let Some(out) = self.host.call_traced(&bf.f, args, &bf.globals, bf.span, &mut bf.memo) else {
            return Ok(None);
        };
        let LVal::Tuple(values) = out? else {
            return Err(Diagnostic::at(bf.span, "internal error: a loop body's program gave no tuple"));
        };
        let mut same = true;
        for ((n, v), spec) in bf.params.iter().zip(values.iter()).zip(before) {
            same &= Spec::of(v) == spec;
            if let Err(v) = self.set_local(n, v.clone()) {
                self.host.set_global(scope, n.clone(), v);
            }
        }
        Ok(Some(same))
    }
}

/// `def (index, params...) { body; (carried...) }`, written at the loop's spans so that
/// what it reads is looked up in the loop's scope and errors point into the loop.
fn body_def(s: &Stmt, var: Option<&Ident>, body: &Block, params: &[Name], carried: usize) -> Def {
    let at = |kind| Expr { kind, span: body.span };
    let ident = |name: &Name| Ident { name: name.clone(), span: s.span };
    let mut decl: Vec<Param> = var.iter().map(|v| Param { name: (*v).clone(), annot: None }).collect();
    decl.extend(params.iter().map(|n| Param { name: ident(n), annot: None }));
    let result =
        at(ExprKind::Tuple(params[..carried].iter().map(|n| at(ExprKind::Var(n.clone()))).collect()));
    let mut stmts = body.stmts.clone();
    stmts.push(Stmt { kind: StmtKind::Expr(result), span: body.span });
    Def {
        name: Ident { name: "loop body".into(), span: s.span },
        params: decl,
        body: Block { stmts, span: body.span },
        span: s.span,
    }
}
