//! Loops inside functions (DESIGN §8): a `for` whose bounds are computed, or whose trip
//! count is too large to unroll, is lowered once into a loop equation holding its body as a
//! sub-program (`region.rs`); indexing at computed positions and indexed update.

use super::spec::Spec;
use super::value::{Arr, LVal, Name};
use super::{Lowerer, Result};
use crate::prim::Prim;
use crate::program::{Atom, Eqn, Var, VarInfo};
use crate::region::{region_program, CondOp, LoopOp};
use crate::shape::Shape;
use ad_syntax::ast::{Block, Expr, ExprKind, Pattern, Stmt, StmtKind};
use ad_syntax::{Diagnostic, Span};

/// A loop with constant bounds and at most this many iterations is unrolled (its derived
/// programs are then straight-line code, as short as a person would write them); longer
/// ones become loop equations.
const UNROLL_SHORT: i64 = 16;

/// A lowered branch of an `if`: its program, the values it reads, and the shapes of its
/// value's leaves with whether the value is a tuple.
type Branch = (crate::Program, Vec<Atom>, (Vec<Shape>, bool));

/// What lowering a loop body can be undone to, when a constant loop that cannot be a loop
/// equation (a carried value changes shape) is unrolled instead.
struct Mark {
    eqns: usize,
    frames: Vec<Vec<(Name, LVal)>>,
}

impl Lowerer<'_> {
    fn mark(&self) -> Mark {
        Mark { eqns: self.b.eqns.len(), frames: self.frames.clone() }
    }

    fn undo(&mut self, m: Mark) {
        self.b.eqns.truncate(m.eqns);
        self.frames = m.frames;
    }

    /// Lowers `for var in lo..hi { body }` inside a function as one loop equation when its
    /// bounds are computed, or constant and more than [`UNROLL_SHORT`] apart; false when the
    /// caller should unroll it (short, or a constant loop whose body cannot be one equation).
    pub(crate) fn loop_once(
        &mut self,
        s: &Stmt,
        var: &ad_syntax::ast::Ident,
        bounds: (&LVal, &LVal),
        spans: (Span, Span),
        body: &Block,
    ) -> Result<bool> {
        for (v, span) in [(bounds.0, spans.0), (bounds.1, spans.1)] {
            if let Some(sh) = self.shape_of(v).filter(|sh| !sh.is_scalar()) {
                return Err(Diagnostic::at(span, format!("a loop bound must be a scalar, found shape {sh}")));
            }
        }
        // A bound known while lowering: a number, or a scalar argument whose value the
        // caller showed (using it specialises the function to that value).
        let known = |v: &LVal| matches!(v, LVal::Num(_) | LVal::Arr(Arr::Var { known: Some(_), .. }));
        if !(known(bounds.0) && known(bounds.1)) {
            // Bounds known only when the function runs.
            self.loop_region(s.span, Some(var), bounds, spans, None, body)?;
            return Ok(true);
        }
        let a = self.static_int(bounds.0, "a loop bound", spans.0)?;
        let b = self.static_int(bounds.1, "a loop bound", spans.1)?;
        if b - a <= UNROLL_SHORT {
            return Ok(false);
        }
        // The bounds are known (the specialisation depends on them now), so the loop's trip
        // count is known to its derivatives. A body that cannot be one equation (a carried
        // value changes shape) is unrolled as before.
        let mark = self.mark();
        match self.loop_region(
            s.span,
            Some(var),
            (&LVal::Num(a as f64), &LVal::Num(b as f64)),
            spans,
            None,
            body,
        ) {
            Ok(()) => Ok(true),
            Err(_) => {
                self.undo(mark);
                Ok(false)
            }
        }
    }

    /// Lowers `while cond { body }` inside a function as one loop equation.
    pub(crate) fn while_once(&mut self, s: &Stmt, cond: &Expr, body: &Block) -> Result<()> {
        let (lo, hi) = (LVal::Num(0.0), LVal::Num(f64::INFINITY));
        self.loop_region(s.span, None, (&lo, &hi), (s.span, s.span), Some(cond), body)
    }

    /// Lowers `for var in lo..hi { body }` (or, with a condition and no variable,
    /// `while cond { body }`) as one loop equation.
    fn loop_region(
        &mut self,
        span: Span,
        var: Option<&ad_syntax::ast::Ident>,
        bounds: (&LVal, &LVal),
        bound_spans: (Span, Span),
        cond: Option<&Expr>,
        body: &Block,
    ) -> Result<()> {
        // The carried values: names the body assigns that exist before the loop.
        let carried = self.rebound(
            &[body],
            span,
            "loop",
            "a loop inside a function can carry only arrays, numbers and tuples of them",
        )?;
        let mark = self.b.eqns.len();
        // A `while` loop's counter is named `i` in printed programs that read it.
        // (So is the hidden counter of `for x in X`, whose name has a space.)
        let index_name =
            var.map(|v| v.name.clone()).filter(|n| !n.contains(' ')).unwrap_or_else(|| "i".into());
        let index = self.b.new_var(Shape::scalar(), Some(index_name));
        let init_shapes = self.leaf_shapes(&carried);
        let placeholders = self.placeholders(&carried, &init_shapes);
        let mut inputs = vec![index];
        inputs.extend(&placeholders);
        // A `while` loop's condition, evaluated on the carried values before each iteration.
        let mut test = None;
        if let Some(c) = cond {
            let v = self.expr(c)?;
            match self.shape_of(&v) {
                Some(sh) if sh.is_scalar() => {}
                Some(sh) => {
                    return Err(Diagnostic::at(
                        c.span,
                        format!("the condition of `while` must be a scalar, found shape {sh}"),
                    )
                    .with_hint("reduce it to one number, e.g. `amax(abs(d)) > tol`"))
                }
                None => {
                    return Err(Diagnostic::at(
                        c.span,
                        format!("the condition of `while` must be a number, found {}", v.describe()),
                    ))
                }
            }
            test = Some((self.atom(&v, c.span)?, self.b.eqns.split_off(mark)));
        }
        let frame = var.map(|var| {
            (var.name.clone(), LVal::Arr(Arr::Var { var: index, shape: Shape::scalar(), known: None }))
        });
        self.frames.push(frame.into_iter().collect());
        let r = self.block_stmts(body);
        self.frames.pop();
        r?;
        let hint = "a value carried from one iteration to the next keeps its shape";
        let finals = self.carried_values(&carried, &init_shapes, span, "the loop", hint)?;
        let body_eqns = self.b.eqns.split_off(mark);
        let name = match (var, cond) {
            (Some(v), _) => format!("{}_body", v.name),
            (None, _) => "while_body".into(),
        };
        // The condition and the body are closed together, so that they read the same
        // constants; each then keeps the equations it needs.
        let (n_test, mut eqns, mut outputs) = match test {
            Some((c, eqns)) => (eqns.len(), eqns, vec![c]),
            None => (0, Vec::new(), Vec::new()),
        };
        eqns.extend(body_eqns);
        outputs.extend(finals);
        let (program, consts) = self.close_region(&name, inputs, eqns, &outputs, span);
        let op = |carries| match cond {
            Some(_) => {
                let test =
                    crate::region::restrict(&program, n_test, program.outputs[..1].to_vec(), "while_cond");
                let body = crate::region::restrict(
                    &program,
                    program.eqns.len(),
                    program.outputs[1..].to_vec(),
                    &name,
                );
                LoopOp::new_while(test, body, carries)
            }
            None => LoopOp::new(program.clone(), carries),
        };
        let lo = self.atom(bounds.0, bound_spans.0)?;
        let hi = self.atom(bounds.1, bound_spans.1)?;
        let mut args = vec![lo, hi];
        args.extend(self.leaf_atoms(&carried, span)?);
        args.extend(consts);
        let n = init_shapes.len();
        if n == 0 {
            // A loop that carries nothing computes nothing a function can return.
            return Ok(());
        }
        let outs = self.b.push_multi(Prim::Loop(op(n)), args, &init_shapes, span);
        self.rebind_leaves(&carried, &outs, &init_shapes);
        Ok(())
    }

    /// `if c { then } else { els }` inside a function, with `c` computed when the function
    /// runs: one `if` equation (`region.rs`) whose branches are lowered once each, so only
    /// the chosen branch runs. Names a branch rebinds (that exist before the `if`) are
    /// results of both (a branch that does not rebind one passes it through); the
    /// branches' values (numbers, arrays, or tuples of them) must have the same shapes.
    pub(crate) fn if_region(
        &mut self,
        c: &Expr,
        cv: &LVal,
        then: &Block,
        els: Option<&Block>,
        span: Span,
    ) -> Result<LVal> {
        let blocks: Vec<&Block> = std::iter::once(then).chain(els).collect();
        let rule = "an `if` on a computed condition can rebind only arrays, numbers and tuples of them";
        let carried = self.rebound(&blocks, span, "`if`", rule)?;
        let init_shapes = self.leaf_shapes(&carried);
        let pred = self.atom(cv, c.span)?;
        let mut branches = Vec::new();
        for b in [Some(then), els] {
            let frames = self.frames.clone();
            let r = self.branch(b, &carried, &init_shapes, span);
            // The rebound names go back to their values before the `if` (for the other
            // branch, and then for the results).
            self.frames = frames;
            branches.push(r?);
        }
        let [(then_p, then_k, then_v), (else_p, else_k, else_v)]: [Branch; 2] = match branches.try_into() {
            Ok(b) => b,
            Err(_) => unreachable!("two branches were lowered"),
        };
        let describe = |(s, t): &(Vec<Shape>, bool)| match (s.as_slice(), t) {
            ([one], false) => format!("shape {one}"),
            _ => format!("({})", s.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")),
        };
        if then_v != else_v {
            let e = Diagnostic::at(
                span,
                format!(
                    "the branches of this `if` give values of different shapes: {} and {}",
                    describe(&then_v),
                    describe(&else_v)
                ),
            );
            let e = match els {
                Some(b) => e.with_label(then.span, "this branch").with_label(b.span, "and this one"),
                None => e.with_hint("without `else`, the value of `if` is `()`"),
            };
            return Err(e);
        }
        // Both branches read the values either reads.
        let mut consts: Vec<Atom> = then_k.clone();
        for k in &else_k {
            if !consts.contains(k) {
                consts.push(*k);
            }
        }
        let then_p = self.widen(then_p, init_shapes.len(), &then_k, &consts);
        let else_p = self.widen(else_p, init_shapes.len(), &else_k, &consts);
        let mut shapes = init_shapes.clone();
        shapes.extend(then_v.0.iter().copied());
        if shapes.is_empty() {
            return Ok(LVal::unit());
        }
        let mut args = vec![pred];
        args.extend(self.leaf_atoms(&carried, span)?);
        args.extend(consts);
        let outs = self.b.push_multi(Prim::Cond(CondOp::new(then_p, else_p)), args, &shapes, span);
        self.rebind_leaves(&carried, &outs, &init_shapes);
        let values: Vec<LVal> = outs[init_shapes.len()..]
            .iter()
            .zip(&then_v.0)
            .map(|(v, s)| LVal::Arr(Arr::Var { var: *v, shape: *s, known: None }))
            .collect();
        Ok(if then_v.1 {
            LVal::Tuple(values.into())
        } else {
            values.into_iter().next().unwrap_or(LVal::unit())
        })
    }

    /// One branch of an `if` on a computed condition, lowered as a closed program whose
    /// inputs are the rebound names `carried` and then the values it reads (returned), and
    /// whose outputs are the rebound names' new values and then the leaves of its value
    /// (whose shapes, and whether it is a tuple, are returned).
    fn branch(
        &mut self,
        b: Option<&Block>,
        carried: &[(Name, LVal)],
        init: &[Shape],
        span: Span,
    ) -> Result<Branch> {
        let mark = self.b.eqns.len();
        let inputs = self.placeholders(carried, init);
        let value = match b {
            Some(b) => self.block(b)?,
            None => LVal::unit(),
        };
        let hint = "inside a function, a name that an `if` on a computed condition rebinds keeps its shape";
        let mut outputs = self.carried_values(carried, init, span, "the `if`", hint)?;
        let mut leaves = Vec::new();
        super::spec::for_each_leaf(&value, &mut |x| leaves.push(x.clone()));
        let mut shapes = Vec::new();
        for x in &leaves {
            match self.shape_of(x) {
                Some(sh) => shapes.push(sh),
                None => {
                    return Err(Diagnostic::at(
                        b.map(|b| b.span).unwrap_or(span),
                        format!(
                            "an `if` on a computed condition gives numbers and arrays, not {}",
                            x.describe()
                        ),
                    ))
                }
            }
            outputs.push(self.atom(x, span)?);
        }
        let eqns = self.b.eqns.split_off(mark);
        let (program, consts) = self.close_region("if_branch", inputs, eqns, &outputs, span);
        Ok((program, consts, (shapes, matches!(value, LVal::Tuple(_)))))
    }

    /// The names `blocks` assign that exist before them, with their values: what a loop
    /// carries or an `if` rebinds. Each must hold an array or a number (`rule` says so).
    fn rebound(&self, blocks: &[&Block], span: Span, what: &str, rule: &str) -> Result<Vec<(Name, LVal)>> {
        let mut assigned = Vec::new();
        for b in blocks {
            assigned_names(&b.stmts, &mut assigned);
        }
        let mut carried: Vec<(Name, LVal)> = Vec::new();
        for name in assigned {
            if carried.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let Some(v) = self.local(&name) else { continue };
            match &v {
                v if plain(v) => carried.push((name, v.clone())),
                other => {
                    return Err(Diagnostic::at(
                        span,
                        format!("this {what} assigns `{name}`, which holds {}; {rule}", other.describe()),
                    ))
                }
            }
        }
        Ok(carried)
    }

    /// The leaves of the names `carried` now, each of the shape it had before (`init`, one
    /// shape per leaf): a name whose shape or structure changed is an error naming `what`
    /// changed it.
    fn carried_values(
        &mut self,
        carried: &[(Name, LVal)],
        init: &[Shape],
        span: Span,
        what: &str,
        hint: &str,
    ) -> Result<Vec<Atom>> {
        let mut values = Vec::with_capacity(init.len());
        let mut shapes = init.iter();
        for (name, before) in carried {
            let v = self.local(name).unwrap_or(LVal::unit());
            let mut leaves = Vec::new();
            super::spec::for_each_leaf(&v, &mut |x| leaves.push(x.clone()));
            let mut now = Vec::with_capacity(leaves.len());
            for x in &leaves {
                now.push(self.shape_of(x));
            }
            let before_spec = Spec::of(before);
            let was: Vec<Shape> = shapes.by_ref().take(before_spec.leaves()).copied().collect();
            let same_structure = plain(&v) && Spec::of(&v).tree() == before_spec.tree();
            if !same_structure || now.iter().zip(&was).any(|(a, b)| *a != Some(*b)) {
                let show = |v: &LVal, shapes: Vec<String>| match v {
                    LVal::Tuple(_) => format!("({})", shapes.join(", ")),
                    _ => shapes.into_iter().next().unwrap_or_else(|| v.describe()),
                };
                let found = if plain(&v) {
                    show(&v, now.iter().map(|s| s.map(|s| s.to_string()).unwrap_or_default()).collect())
                } else {
                    v.describe()
                };
                let init = show(before, was.iter().map(|s| s.to_string()).collect());
                return Err(Diagnostic::at(
                    span,
                    format!("{what} changes the shape of `{name}` from {init} to {found}"),
                )
                .with_hint(hint));
            }
            for x in &leaves {
                values.push(self.atom(x, span)?);
            }
        }
        Ok(values)
    }

    /// The shapes of the leaves of the rebound names' values, in order.
    fn leaf_shapes(&self, carried: &[(Name, LVal)]) -> Vec<Shape> {
        let mut shapes = Vec::new();
        for (_, v) in carried {
            super::spec::for_each_leaf(v, &mut |x| shapes.push(self.shape_of(x).unwrap_or_default()));
        }
        shapes
    }

    /// The atoms of the leaves of the rebound names' values, in order.
    fn leaf_atoms(&mut self, carried: &[(Name, LVal)], span: Span) -> Result<Vec<Atom>> {
        let mut leaves = Vec::new();
        for (_, v) in carried {
            super::spec::for_each_leaf(v, &mut |x| leaves.push(x.clone()));
        }
        leaves.iter().map(|x| self.atom(x, span)).collect()
    }

    /// One new variable per leaf of the rebound names (`shapes`), to which the names are
    /// rebound: a region's inputs.
    fn placeholders(&mut self, carried: &[(Name, LVal)], shapes: &[Shape]) -> Vec<Var> {
        let vars: Vec<Var> = shapes.iter().map(|sh| self.b.new_var(*sh, None)).collect();
        self.rebind_leaves(carried, &vars, shapes);
        vars
    }

    /// Rebinds each name of `carried` to its structure with `vars` as leaves, and names
    /// the variables after them (a tuple's leaves stay unnamed).
    fn rebind_leaves(&mut self, carried: &[(Name, LVal)], vars: &[Var], shapes: &[Shape]) {
        let mut k = 0;
        for (n, before) in carried {
            if !matches!(before, LVal::Tuple(_)) {
                if let Some(v) = vars.get(k) {
                    self.b.vars[v.index()].name = Some(n.clone());
                }
            }
            let v = rebuild(before, &mut || {
                let leaf = LVal::Arr(Arr::Var { var: vars[k], shape: shapes[k], known: None });
                k += 1;
                leaf
            });
            // The name is local (`rebound` found it among the locals), so this rebinds it.
            let _ = self.set_local(n, v);
        }
    }

    /// A branch program (inputs: `carried` rebound names, then the values `own`) taking the
    /// values `all` instead, of which it reads its own.
    pub(crate) fn widen(
        &self,
        p: crate::Program,
        carried: usize,
        own: &[Atom],
        all: &[Atom],
    ) -> crate::Program {
        let mut vars = p.vars;
        let mut inputs: Vec<Var> = p.inputs[..carried].to_vec();
        for a in all {
            match own.iter().position(|o| o == a) {
                Some(k) => inputs.push(p.inputs[carried + k]),
                None => {
                    let Atom::Var(v) = a else { continue };
                    inputs.push(Var(vars.len() as u32));
                    vars.push(self.b.vars[v.index()].clone());
                }
            }
        }
        region_program(&p.name, vars, inputs, p.eqns, p.outputs, p.span)
    }

    /// A closed program from equations cut out of the builder: `inputs` first, then every
    /// variable the equations read from outside (returned, in order of first use, as the
    /// operands the region needs), renumbered densely.
    pub(crate) fn close_region(
        &mut self,
        name: &str,
        inputs: Vec<Var>,
        eqns: Vec<Eqn>,
        outputs: &[Atom],
        span: Span,
    ) -> (crate::Program, Vec<Atom>) {
        let mut map: Vec<Option<Var>> = vec![None; self.b.vars.len()];
        let mut vars: Vec<VarInfo> = Vec::new();
        let fresh = |v: Var, vars: &mut Vec<VarInfo>, map: &mut Vec<Option<Var>>| {
            let nv = Var(vars.len() as u32);
            vars.push(self.b.vars[v.index()].clone());
            map[v.index()] = Some(nv);
            nv
        };
        let mut new_inputs: Vec<Var> = inputs.iter().map(|v| fresh(*v, &mut vars, &mut map)).collect();
        // Free variables, found in order.
        let mut consts = Vec::new();
        let mut defined = vec![false; self.b.vars.len()];
        for v in &inputs {
            defined[v.index()] = true;
        }
        let note = |a: &Atom, defined: &[bool], consts: &mut Vec<Var>| {
            if let Atom::Var(v) = a {
                if !defined[v.index()] && !consts.contains(v) {
                    consts.push(*v);
                }
            }
        };
        for e in &eqns {
            for a in &e.args {
                note(a, &defined, &mut consts);
            }
            for o in e.outs() {
                defined[o.index()] = true;
            }
        }
        for a in outputs {
            note(a, &defined, &mut consts);
        }
        for c in &consts {
            new_inputs.push(fresh(*c, &mut vars, &mut map));
        }
        let get = |a: &Atom, map: &Vec<Option<Var>>| match a {
            // Every operand is an input, a constant or defined earlier in the region.
            Atom::Var(v) => Atom::Var(
                map[v.index()].unwrap_or_else(|| panic!("internal error: {v:?} is not in the region")),
            ),
            lit => *lit,
        };
        let mut new_eqns = Vec::with_capacity(eqns.len());
        for e in &eqns {
            let args = e.args.iter().map(|a| get(a, &map)).collect();
            let outs: Vec<Var> = e.outs().map(|o| fresh(o, &mut vars, &mut map)).collect();
            new_eqns.push(Eqn {
                out: outs[0],
                prim: e.prim.clone(),
                args,
                span: e.span,
                extra: outs[1..].into(),
            });
        }
        let outs = outputs.iter().map(|a| get(a, &map)).collect();
        let p = region_program(name, vars, new_inputs, new_eqns, outs, span);
        (p, consts.into_iter().map(Atom::Var).collect())
    }

    /// `x[i, j] = v`: rebinds `x` to its array with that part replaced. With an operator,
    /// `t op= v` is `t = t op v` (for a name `t` too).
    pub(crate) fn update(
        &mut self,
        target: &Expr,
        op: Option<ad_syntax::ast::BinOp>,
        value: &Expr,
        span: Span,
    ) -> Result<()> {
        let combined;
        let value = match op {
            Some(op) => {
                combined = Expr {
                    kind: ExprKind::Binary(op, Box::new(target.clone()), Box::new(value.clone())),
                    span: value.span,
                };
                &combined
            }
            None => value,
        };
        if let ExprKind::Var(name) = &target.kind {
            let v = self.expr(value)?;
            let pat = Pattern::Name(ad_syntax::ast::Ident { name: name.clone(), span: target.span });
            return self.bind(&pat, v, false);
        }
        let ExprKind::Index(base, idx) = &target.kind else {
            return Err(Diagnostic::at(target.span, "cannot assign to this expression"));
        };
        let ExprKind::Var(name) = &base.kind else {
            return Err(Diagnostic::at(base.span, "only a part of a named array can be assigned"));
        };
        let Some(x) = self.local(name).or_else(|| {
            (!self.in_function).then(|| self.host.global(self.scope_at(base.span), name)).flatten()
        }) else {
            return Err(self.unknown_name(name, base.span));
        };
        let Some(shape) = self.shape_of(&x) else {
            return Err(Diagnostic::at(
                base.span,
                format!("cannot assign into `{name}`, which holds {}", x.describe()),
            ));
        };
        if idx.len() > shape.rank() {
            return Err(Diagnostic::at(
                target.span,
                format!("too many indices: an array of shape {shape} takes at most {}", shape.rank()),
            ));
        }
        // Every selection (positions and ranges, known or computed) becomes one
        // `dyn_update`, which writes in place when it holds the only reference.
        let mut sels = self.axis_sels(idx, shape, "the bound of an assigned range")?;
        use super::expr::AxisSel;
        let strided = sels.iter().any(|s| matches!(s, AxisSel::Strided { .. }));
        if strided && sels.iter().any(|s| matches!(s, AxisSel::Pick(_) | AxisSel::Window(..))) {
            return Err(Diagnostic::at(
                target.span,
                "a slice with a step cannot be assigned together with a computed position; assign in two steps",
            ));
        }
        let (part, sel, positions) = if strided {
            (Self::strided_part(&sels, shape, target.span)?, None, vec![])
        } else {
            let (sel, positions) = super::expr::dyn_sel(std::mem::take(&mut sels), shape);
            (sel.part(shape).map_err(|m| Diagnostic::at(target.span, m))?, Some(sel), positions)
        };
        let v = self.expr(value)?;
        let vs = self
            .shape_of(&v)
            .ok_or_else(|| Diagnostic::at(value.span, format!("cannot assign {}", v.describe())))?;
        let v = if vs == part {
            v
        } else if crate::shape::broadcasts_to(vs, part) {
            self.prim(Prim::BroadcastTo(part), &[v], value.span)?
        } else {
            return Err(Diagnostic::at(
                value.span,
                format!("cannot assign a value of shape {vs} to a part of shape {part}"),
            )
            .with_label(target.span, format!("this part of `{name}` has shape {part}")));
        };
        let name = Pattern::Name(ad_syntax::ast::Ident { name: name.clone(), span: base.span });
        let Some(sel) = sel else {
            let updated = self.strided_update(x, v, &sels, shape, span)?;
            return self.bind(&name, updated, false);
        };
        if sel.is_empty() {
            return self.bind(&name, v, false);
        }
        let mut args = vec![x, v];
        args.extend(positions);
        let updated = self.prim(Prim::DynUpdate(sel), &args, span)?;
        self.bind(&name, updated, false)
    }

    /// Checks that a computed position is a scalar.
    pub(crate) fn scalar_position(&self, p: &LVal, span: Span) -> Result<()> {
        match self.shape_of(p) {
            Some(s) if s.is_scalar() => Ok(()),
            Some(s) => Err(Diagnostic::at(span, format!("an index must be a scalar, found shape {s}"))),
            None => Err(Diagnostic::at(span, format!("an index must be a number, found {}", p.describe()))),
        }
    }
}

/// The names a block assigns (`x = ..`, `(a, b) = ..`, `x[i] = ..`), at any depth, in order
/// of first assignment.
/// Arrays, numbers and tuples of them: what a region can carry or rebind.
pub(crate) fn plain(v: &LVal) -> bool {
    match v {
        LVal::Num(_) | LVal::Arr(_) => true,
        LVal::Tuple(t) => t.iter().all(plain),
        LVal::Func(_) | LVal::Str(_) | LVal::None => false,
    }
}

/// `template`'s structure with leaves from `leaf`, in order.
fn rebuild(template: &LVal, leaf: &mut impl FnMut() -> LVal) -> LVal {
    match template {
        LVal::Tuple(t) => LVal::Tuple(t.iter().map(|x| rebuild(x, leaf)).collect::<Vec<_>>().into()),
        _ => leaf(),
    }
}

pub(crate) fn assigned_names(stmts: &[Stmt], out: &mut Vec<Name>) {
    fn pattern(p: &Pattern, out: &mut Vec<Name>) {
        match p {
            Pattern::Name(id) => {
                if !out.contains(&id.name) {
                    out.push(id.name.clone())
                }
            }
            Pattern::Tuple(ps, _) => ps.iter().for_each(|p| pattern(p, out)),
        }
    }
    fn expr(e: &Expr, out: &mut Vec<Name>) {
        if let ExprKind::If(_, t, f) = &e.kind {
            assigned_names(&t.stmts, out);
            if let Some(f) = f {
                assigned_names(&f.stmts, out);
            }
        }
    }
    for s in stmts {
        match &s.kind {
            StmtKind::Assign { pat, .. } => pattern(pat, out),
            StmtKind::Update { target, .. } => {
                let base = match &target.kind {
                    ExprKind::Index(base, _) => base,
                    _ => target,
                };
                if let ExprKind::Var(n) = &base.kind {
                    if !out.contains(n) {
                        out.push(n.clone());
                    }
                }
            }
            StmtKind::For { body, .. } | StmtKind::While { body, .. } | StmtKind::ForEach { body, .. } => {
                assigned_names(&body.stmts, out)
            }
            StmtKind::Expr(e) => expr(e, out),
            StmtKind::Let { .. } | StmtKind::Def(_) | StmtKind::Import { .. } | StmtKind::Error => {}
        }
    }
}
