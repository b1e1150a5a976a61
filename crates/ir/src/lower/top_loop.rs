//! Top-level loops whose bodies run as programs.
//!
//! Statement by statement, every iteration of a top-level loop pays for lowering and
//! dispatching each operation on its own, and a derivative it calls is a separate program.
//! Instead, the body is cut into parts: runs of statements without effects, each lowered
//! once as a function of the names it reads from the iteration (the loop's index, names an
//! earlier statement of the body declared, an enclosing loop's names) and of the names it
//! assigns; and the statements with effects (`print`, `randn`, `plot`, ...), which run as
//! before. Each iteration calls the parts' programs ([`super::Host::call_traced`]) and runs
//! the other statements in order: derivatives are inlined into the programs, and the
//! interpreter's fused chains, planned memory and compiled tier apply to them. The index
//! and the values read are inputs whose values a program does not depend on, so each part
//! is lowered once per loop, not per iteration.
//!
//! What a user sees does not change: the host is told of every iteration (progress, Ctrl-C),
//! the names a part assigns are assigned, and those it declares with `let` that later
//! statements read are declared, as soon as it has run. A part that does not lower (a
//! shape that depends on the index, a value that is a function, ...), whose carried values
//! change shape, or that fails as a program runs statement by statement from then on, which
//! reports anything wrong where it is written.

use super::control::{assigned_names, plain};
use super::scope::{free_in_stmts, pattern_names};
use super::spec::Spec;
use super::value::{Func, LVal, Name};
use super::{builtins, Lowerer, Result};
use ad_syntax::ast::{Block, Def, Expr, ExprKind, Ident, Param, Stmt, StmtKind};
use ad_syntax::{Diagnostic, Span};
use std::collections::HashSet;
use std::ops::Range;
use std::rc::Rc;

/// The functions made of parts of top-level loops' bodies (`Lowerer::bodies`): the loop's
/// span and the part's first statement, the names passed in, and the function.
pub(crate) type PartDefs = Vec<((Span, usize), Vec<Name>, Rc<Def>)>;

/// A run of statements of a loop's body as a function `(params...) -> (results...)`.
pub(crate) struct BodyFn {
    f: LVal,
    /// The names passed in: first those the statements assign (results, in this order),
    /// then local names they only read.
    params: Vec<Name>,
    carried: usize,
    /// Names the statements declare with `let` that later statements read: results after
    /// the carried ones, declared in the iteration's scope.
    exported: Vec<Name>,
    /// The top-level names the loop's body assigns (here or in another part).
    globals: Vec<Name>,
    span: Span,
    /// The host's memo of this part's calls (`Host::call_traced`).
    memo: Option<Box<dyn std::any::Any>>,
}

/// A part of a loop's body: statements (by position) and, while they run as one, their
/// program.
pub(crate) struct Part {
    stmts: Range<usize>,
    program: Option<BodyFn>,
}

/// Whether a statement must run at the top level: it performs an effect (names an effect
/// builtin, so a `print` inside an `if` counts), defines, or imports.
fn effectful(s: &Stmt) -> bool {
    if matches!(s.kind, StmtKind::Def(_) | StmtKind::Import { .. }) {
        return true;
    }
    let mut free = Vec::new();
    free_in_stmts(std::slice::from_ref(s), &mut Vec::new(), &mut free, &mut HashSet::new());
    free.iter().any(|n| builtins::is_effect(n))
}

/// The names the statements declare with `let` at their own level.
fn declared(stmts: &[Stmt]) -> Vec<Name> {
    let mut names = Vec::new();
    for st in stmts {
        if let StmtKind::Let { pat, .. } = &st.kind {
            pattern_names(pat, &mut names);
        }
    }
    names
}

impl Lowerer<'_> {
    /// The parts of the body of the top-level loop `s`, with a program for each run of
    /// statements without effects; `None` when no run can be one (the body then runs
    /// statement by statement). Called with the iteration's scope pushed (holding the
    /// loop's index, if any).
    pub(crate) fn body_parts(&mut self, s: &Stmt, body: &Block) -> Option<Vec<Part>> {
        let mut parts = Vec::new();
        let mut start = 0;
        let n = body.stmts.len();
        while start < n {
            let pure = !effectful(&body.stmts[start]);
            let mut end = start + 1;
            while end < n && effectful(&body.stmts[end]) != pure {
                end += 1;
            }
            let program = if pure { self.part_fn(s, body, start..end) } else { None };
            parts.push(Part { stmts: start..end, program });
            start = end;
        }
        parts.iter().any(|p| p.program.is_some()).then_some(parts)
    }

    /// The statements `range` of a loop's body as a function, when the names they read and
    /// assign allow one.
    fn part_fn(&mut self, s: &Stmt, body: &Block, range: Range<usize>) -> Option<BodyFn> {
        let stmts = &body.stmts[range.clone()];
        let mut free = Vec::new();
        free_in_stmts(stmts, &mut Vec::new(), &mut free, &mut HashSet::new());
        let mut assigned = Vec::new();
        assigned_names(stmts, &mut assigned);
        // Top-level names the body assigns anywhere (these statements, or ones with effects
        // between runs of its programs) are passed in, not captured: a program's captured
        // values are taken once for the loop's run.
        let mut assigned_anywhere = Vec::new();
        assigned_names(&body.stmts, &mut assigned_anywhere);
        // Names earlier statements of the body declare are locals of the iteration when
        // these statements run.
        let before = declared(&body.stmts[..range.start]);
        let own = declared(stmts);
        // The program returns its results from the end of the statements, where a `let`
        // among them would shadow a carried name.
        if assigned.iter().any(|n| free.contains(n) && own.contains(n)) {
            return None;
        }
        let scope = self.scope_at(body.span);
        let is_local = |lw: &Self, n: &Name| before.contains(n) || lw.local(n).is_some();
        // The top-level names the body assigns: a function the program calls must not read
        // them (it would see the value from before the iteration).
        let globals: Vec<Name> = assigned_anywhere
            .iter()
            .filter(|n| !is_local(self, n) && self.host.global(scope, n).is_some())
            .cloned()
            .collect();
        let (mut carried, mut read) = (Vec::new(), Vec::new());
        for n in free {
            let local = is_local(self, &n);
            if !local && builtins::lookup(&n).is_some() && self.host.global(scope, &n).is_none() {
                continue;
            }
            if assigned.contains(&n) {
                // A top-level name must exist, and hold arrays and numbers.
                if !local && !plain(&self.host.global(scope, &n)?) {
                    return None;
                }
                carried.push(n);
            } else if local || globals.contains(&n) {
                read.push(n);
            } else {
                // A top-level name read: a captured input of the program (lowering finds
                // it), or an unknown name, which statement by statement reports.
                self.host.global(scope, &n)?;
            }
        }
        // Declared names that later statements of the body read.
        let mut later = Vec::new();
        free_in_stmts(&body.stmts[range.end..], &mut Vec::new(), &mut later, &mut HashSet::new());
        let mut exported: Vec<Name> = Vec::new();
        for n in own {
            if later.contains(&n) && !exported.contains(&n) {
                exported.push(n);
            }
        }
        let n_carried = carried.len();
        let mut params = carried;
        params.extend(read);
        let key = (s.span, range.start);
        let def = match self.bodies.iter().find(|(k, p, _)| *k == key && *p == params) {
            Some((_, _, d)) => d.clone(),
            None => {
                let d = Rc::new(part_def(s, body, stmts, &params[..n_carried], &params, &exported));
                self.bodies.push((key, params.clone(), d.clone()));
                d
            }
        };
        Some(BodyFn {
            f: LVal::Func(Rc::new(Func::Def(def))),
            params,
            carried: n_carried,
            exported,
            globals,
            span: s.span,
            memo: None,
        })
    }

    /// Runs one iteration of a loop's body by its parts (the iteration's scope pushed).
    pub(crate) fn run_parts(&mut self, parts: &mut [Part], body: &Block) -> Result<()> {
        for part in parts.iter_mut() {
            if let Some(bf) = &mut part.program {
                match self.run_part(bf) {
                    Ok(Some(same)) => {
                        if !same {
                            part.program = None;
                        }
                        continue;
                    }
                    Ok(None) => part.program = None,
                    Err(_) => {
                        // Run the statements one by one instead (after the user's Ctrl-C,
                        // stop): they report the failure where the reference semantics
                        // do, after the assignments before it.
                        part.program = None;
                        self.check_interrupt(body.span)?;
                    }
                }
            }
            for st in &body.stmts[part.stmts.clone()] {
                self.stmt(st)?;
            }
        }
        Ok(())
    }

    /// Runs a part's program and assigns and declares what it gives. `Ok(None)`: it does not
    /// lower (or a value it reads is not an array, a number or a tuple of them), nothing
    /// ran. `Ok(Some(same))`: it ran; `same` is false when a carried value changed structure
    /// (the next iteration would need another program).
    fn run_part(&mut self, bf: &mut BodyFn) -> Result<Option<bool>> {
        let scope = self.scope_at(bf.span);
        let mut args = Vec::with_capacity(bf.params.len());
        for n in &bf.params {
            match self.local(n).or_else(|| self.host.global(scope, n)) {
                Some(v) if plain(&v) => args.push(v),
                _ => return Ok(None),
            }
        }
        let before: Vec<Spec> = args[..bf.carried].iter().map(Spec::of).collect();
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
        for (n, v) in bf.exported.iter().zip(values.iter().skip(bf.carried)) {
            if let Some(frame) = self.frames.last_mut() {
                frame.push((n.clone(), v.clone()));
            }
        }
        Ok(Some(same))
    }
}

/// `def (params...) { stmts; (carried..., exported...) }`, written at the loop's spans so
/// that what it reads is looked up in the loop's scope and errors point into the loop.
fn part_def(
    s: &Stmt,
    body: &Block,
    stmts: &[Stmt],
    carried: &[Name],
    params: &[Name],
    exported: &[Name],
) -> Def {
    let at = |kind| Expr { kind, span: body.span };
    let ident = |name: &Name| Ident { name: name.clone(), span: s.span };
    let decl: Vec<Param> = params.iter().map(|n| Param { name: ident(n), annot: None }).collect();
    let results = carried.iter().chain(exported).map(|n| at(ExprKind::Var(n.clone()))).collect();
    let mut stmts = stmts.to_vec();
    stmts.push(Stmt { kind: StmtKind::Expr(at(ExprKind::Tuple(results))), span: body.span });
    Def {
        name: Ident { name: "loop body".into(), span: s.span },
        params: decl,
        body: Block { stmts, span: body.span },
        span: s.span,
    }
}
