//! Derivatives and batching of functions with their own derivative rules (DESIGN §10).
//!
//! `custom_jvp(f, rule)`: forward mode inlines the rule on the primals and their tangents.
//! Reverse mode does the same and then transposes what the rule computes from the
//! tangents, so the rule must be linear in them: each equation computed from a tangent is
//! checked (by its primitive's class) when reverse mode splits the rule, and one that is
//! not linear is a located error naming the operation, instead of a wrong derivative.
//!
//! `custom_vjp(f, fwd, bwd)`: every JVP inlines `fwd` (the result and the residuals) and
//! gives the tangents as one `CustomLin` equation, a linear map whose transpose is `bwd`
//! (so reverse mode runs `bwd` itself, even one that is not linear, such as a gradient
//! clip: JAX's meaning). Forward mode, where that map is run as it is, uses the transpose
//! of `bwd` in its cotangent instead, which exists when `bwd` is linear in it (JAX has no
//! forward mode through `custom_vjp` at all); when it is not, a derived program that would
//! run the map is refused ([`check_derived`]).

use crate::emitter::{Emitter, Tan};
use ad_ir::prim::{Class, Prim};
use ad_ir::region::{CustomOp, CustomRule, LoopOp};
use ad_ir::{Atom, Program, Subst};
use std::rc::Rc;

/// The JVP of a custom-derivative equation with operands `x` (`[args.., consts..]`) and
/// their tangents `t`: its results and their tangents. With `split` (reverse mode), a
/// `custom_jvp` rule must be linear in the tangents.
pub(crate) fn jvp_custom(
    em: &mut Emitter,
    op: &Rc<CustomOp>,
    x: &[Atom],
    t: &[Tan],
    split: bool,
) -> Result<(Vec<Atom>, Vec<Tan>), String> {
    let n = op.args;
    let n_out = op.primal.outputs.len();
    if t[n..].iter().any(Option::is_some) {
        return Err(format!(
            "a function with a `{}` rule reads a value being differentiated that is not one of its arguments; pass \
             that value as an argument, so that the rule receives its derivative",
            op.keyword()
        ));
    }
    if t[..n].iter().all(Option::is_none) {
        let shapes = op.out_shapes();
        let outs = em.emit_multi(Prim::Custom(op.clone()), x.iter().copied(), &shapes, false);
        return Ok((outs.into_iter().map(Atom::Var).collect(), vec![None; n_out]));
    }
    let tangents: Vec<Atom> = x[..n]
        .iter()
        .zip(&t[..n])
        .map(|(a, ta)| {
            let s = em.shape(*a);
            em.materialize(*ta, s)
        })
        .collect();
    let outs = match &op.rule {
        CustomRule::Jvp(rule) => {
            let ins = [&x[..n], &tangents, &x[n..]].concat();
            let check = split
                .then_some("reverse mode needs a `custom_jvp` rule linear in its tangents, but this rule");
            inline(em, rule, &ins, check)?
        }
        CustomRule::Vjp { fwd, .. } => {
            let computed = inline(em, fwd, x, None)?;
            let (values, res) = computed.split_at(n_out);
            let ins = [res, &tangents, &x[n..]].concat();
            // Reverse mode transposes the linear map (into `bwd`), so only forward mode
            // derives its forward form.
            let forward = if split { None } else { forward_map(op).ok() };
            let dots = match forward {
                Some(map) => inline(em, map, &ins, None)?,
                None => {
                    let shapes = op.out_shapes();
                    let outs = em.emit_multi(Prim::CustomLin(op.clone()), ins, &shapes, true);
                    outs.into_iter().map(Atom::Var).collect()
                }
            };
            [values, &dots].concat()
        }
    };
    let (values, dots) = outs.split_at(n_out);
    let mut tans = Vec::with_capacity(n_out);
    for d in dots {
        if split && !em.is_linear(*d) && *d != Atom::Lit(0.0) {
            return Err(format!(
                "reverse mode needs a `{}` rule linear in its tangents, but this rule's `out_dot` is not computed \
                 from them",
                op.keyword()
            ));
        }
        tans.push(Some(*d).filter(|_| em.is_linear(*d)));
    }
    Ok((values.to_vec(), tans))
}

/// The JVP of a `custom_vjp` derivative (operands `[residuals.., tangents.., consts..]`),
/// which reverse mode meets when it transposes a linear loop body holding one: the same
/// linear map of the tangents' tangents.
pub(crate) fn jvp_custom_lin(
    em: &mut Emitter,
    op: &Rc<CustomOp>,
    x: &[Atom],
    t: &[Tan],
) -> Result<(Vec<Atom>, Vec<Tan>), String> {
    let (r, n) = (op.residuals(), op.args);
    let shapes = op.out_shapes();
    let values = em.emit_multi(Prim::CustomLin(op.clone()), x.iter().copied(), &shapes, false);
    let values: Vec<Atom> = values.into_iter().map(Atom::Var).collect();
    if t[..r].iter().chain(&t[r + n..]).any(Option::is_some) {
        return Err(
            "a second derivative through a `custom_vjp` function whose `bwd` is not linear in its cotangent is not \
             defined: its `bwd` would be differentiated with respect to the residuals"
                .into(),
        );
    }
    if t[r..r + n].iter().all(Option::is_none) {
        return Ok((values, vec![None; shapes.len()]));
    }
    let mut ins = x[..r].to_vec();
    for (a, ta) in x[r..r + n].iter().zip(&t[r..r + n]) {
        let s = em.shape(*a);
        ins.push(em.materialize(*ta, s));
    }
    ins.extend_from_slice(&x[r + n..]);
    let dots = em.emit_multi(Prim::CustomLin(op.clone()), ins, &shapes, true);
    Ok((values, dots.into_iter().map(|d| Some(Atom::Var(d))).collect()))
}

/// The transpose of a `custom_vjp` derivative (operands `x`, of which `lin` are linear)
/// given the cotangents of its results: `bwd` on the residuals and those cotangents.
pub(crate) fn transpose_custom_lin(
    em: &mut Emitter,
    op: &CustomOp,
    x: &[Atom],
    lin: &[bool],
    cts: &[Tan],
) -> Result<Vec<Tan>, String> {
    let CustomRule::Vjp { bwd, .. } = &op.rule else {
        return Err("internal error: a `custom_jvp` transposed as a `custom_vjp` derivative".into());
    };
    let (r, n) = (op.residuals(), op.args);
    let mut ins = x[..r].to_vec();
    for (c, s) in cts.iter().zip(op.out_shapes()) {
        ins.push(em.materialize(*c, s));
    }
    ins.extend_from_slice(&x[r + n..]);
    let bars = inline(em, bwd, &ins, None)?;
    let mut contributions = vec![None; x.len()];
    for (k, bar) in bars.into_iter().enumerate() {
        if lin[r + k] {
            contributions[r + k] = Some(bar);
        }
    }
    Ok(contributions)
}

/// Copies `p`'s equations into `em` on the inputs `ins`, marking what is computed from
/// linear values as linear; with `check`, an equation not linear in the linear values it
/// reads is an error (`check` begins the message). Returns `p`'s outputs.
fn inline(em: &mut Emitter, p: &Program, ins: &[Atom], check: Option<&str>) -> Result<Vec<Atom>, String> {
    let mut map = Subst::new(p);
    for (v, a) in p.inputs.iter().zip(ins) {
        map.set(*v, *a);
    }
    for e in &p.eqns {
        let args: ad_ir::Args = e.args.iter().map(|a| map.get(*a)).collect();
        let linear: Vec<bool> = args.iter().map(|a| em.is_linear(*a)).collect();
        if let Some(what) = check {
            if linear.iter().any(|l| *l) && !linear_in(&e.prim, &linear) {
                return Err(format!("{what} applies `{}` to a tangent", e.prim.name()));
            }
        }
        let outs = em.b.copy_eqn(p, e, args);
        for (v, o) in e.outs().zip(outs) {
            em.mark(o, linear.iter().any(|l| *l));
            map.set(v, Atom::Var(o));
        }
    }
    Ok(p.outputs.iter().map(|a| map.get(*a)).collect())
}

/// Whether `prim` is linear in its operands marked `linear` (the others held fixed).
fn linear_in(prim: &Prim, linear: &[bool]) -> bool {
    match prim.class() {
        Class::Linear => true,
        Class::LinearIn(ks) => linear.iter().enumerate().all(|(k, l)| !l || ks.contains(&k)),
        Class::Bilinear => linear.iter().filter(|l| **l).count() == 1,
        Class::Zero | Class::Nonlinear => false,
    }
}

/// The linear map a `custom_vjp` derivative stands for, run forwards: the transpose of
/// `bwd` in the result's cotangents, with the inputs `[residuals.., tangents of args..,
/// consts..]`. Derived once per operation; an error when `bwd` is not linear in its
/// cotangents.
fn forward_map(op: &CustomOp) -> Result<&Program, String> {
    let CustomRule::Vjp { bwd, forward, .. } = &op.rule else {
        return Err("internal error: a `custom_jvp` has no forward map".into());
    };
    forward.get_or_init(|| transpose_bwd(op, bwd)).as_ref().map_err(Clone::clone)
}

fn transpose_bwd(op: &CustomOp, bwd: &Program) -> Result<Program, String> {
    let (r, n_out) = (op.residuals(), op.primal.outputs.len());
    // Which values are computed from the cotangents, and whether each step is linear in them.
    let mut linear = vec![false; bwd.vars.len()];
    for v in &bwd.inputs[r..r + n_out] {
        linear[v.index()] = true;
    }
    let is_linear = |a: &Atom, linear: &[bool]| a.var().is_some_and(|v| linear[v.index()]);
    let refuse = |what: String| {
        format!(
            "forward mode through a `custom_vjp` function runs the transpose of its `bwd`, which needs `bwd` linear in \
             the result's cotangent, but {what}; use `custom_jvp` for a rule forward mode can use"
        )
    };
    for e in &bwd.eqns {
        let flags: Vec<bool> = e.args.iter().map(|a| is_linear(a, &linear)).collect();
        if flags.iter().any(|l| *l) {
            if !linear_in(&e.prim, &flags) {
                // A loop or `if` may well be linear, but no class says so.
                let what = match &e.prim {
                    Prim::Loop(op) if op.is_while() => "passes it through a `while` loop".to_string(),
                    Prim::Loop(_) | Prim::ReverseLoop(_) => "passes it through a `for` loop".to_string(),
                    Prim::Cond(_) => "passes it through an `if`".to_string(),
                    p => format!("applies `{}` to it", p.name()),
                };
                return Err(refuse(format!("this `bwd` {what}")));
            }
            for o in e.outs() {
                linear[o.index()] = true;
            }
        }
    }
    let zero = |a: &Atom| match a {
        Atom::Lit(x) => *x == 0.0,
        Atom::Var(v) => bwd
            .eqns
            .iter()
            .any(|e| e.out == *v && matches!(&e.prim, Prim::Full(_, c) if c.0 == 0.0) && e.extra.is_empty()),
    };
    if let Some(k) = bwd.outputs.iter().position(|a| !is_linear(a, &linear) && !zero(a)) {
        return Err(refuse(format!("the cotangent it gives argument {} does not depend on it", k + 1)));
    }
    let seeded: Vec<usize> = (0..bwd.outputs.len()).collect();
    let wrt: Vec<usize> = (r..r + n_out).collect();
    // Inputs `[residuals.., consts.., tangents..]`; put the tangents before the constants.
    let mut t = crate::conds::branch_transpose(bwd, &wrt, &seeded)?;
    let n = seeded.len();
    let k = t.inputs.len() - r - n;
    let order: Vec<usize> = (0..r).chain(r + k..r + k + n).chain(r..r + k).collect();
    t.inputs = order.iter().map(|&i| t.inputs[i]).collect();
    t.params = order.iter().map(|&i| t.params[i].clone()).collect();
    t.name = format!("{}_forward", op.primal.name);
    // Its values are tangents, not the cotangents `bwd`'s names would call them.
    let inputs: std::collections::HashSet<ad_ir::Var> = t.inputs.iter().copied().collect();
    for (k, info) in t.vars.iter_mut().enumerate() {
        if !inputs.contains(&ad_ir::Var(k as u32)) {
            info.name = None;
        }
    }
    Ok(t)
}

/// Refuses a derived program that would run a `custom_vjp` derivative forwards without a
/// forward map (its `bwd` is not linear in the cotangent): the message says why.
pub(crate) fn check_derived(p: &Program) -> Result<(), String> {
    for e in &p.eqns {
        if let Prim::CustomLin(op) = &e.prim {
            forward_map(op)?;
        }
        for q in e.prim.programs() {
            check_derived(q)?;
        }
    }
    Ok(())
}

/// The batched custom-derivative equation (operands `args`, `flags`: which are batched):
/// the function and its rules batched alike, every result batched.
pub(crate) fn vmap_custom(
    em: &mut Emitter,
    op: &CustomOp,
    args: &[Atom],
    flags: &[bool],
    b: usize,
) -> Result<(Vec<Atom>, Vec<bool>), String> {
    let n = op.args;
    let n_out = op.primal.outputs.len();
    let all = |k: usize| vec![true; k];
    let (primal, _) = crate::vmap::vmap_body(&op.primal, flags, b, Some(&all(n_out)))?;
    let rule = match &op.rule {
        CustomRule::Jvp(rule) => {
            let rule_flags = [&flags[..n], &flags[..n], &flags[n..]].concat();
            CustomRule::Jvp(crate::vmap::vmap_body(rule, &rule_flags, b, Some(&all(2 * n_out)))?.0)
        }
        CustomRule::Vjp { fwd, bwd, .. } => {
            let r = op.residuals();
            let (fwd, _) = crate::vmap::vmap_body(fwd, flags, b, Some(&all(n_out + r)))?;
            // Every residual and cotangent is batched, like every result.
            let bwd_flags = [&all(r + n_out), &flags[n..]].concat();
            let (mut bwd, _) = crate::vmap::vmap_body(bwd, &bwd_flags, b, Some(&all(n)))?;
            // An argument the batch shares (not batched) gets the sum of its elements'
            // cotangents.
            for (k, batched) in flags[..n].iter().enumerate() {
                if !batched {
                    let s = bwd.shape(bwd.outputs[k]);
                    let total = ad_ir::Var(bwd.vars.len() as u32);
                    let summed = ad_ir::prim::Axes::one(0).reduce(s);
                    bwd.vars.push(ad_ir::program::VarInfo { shape: summed, name: None });
                    bwd.eqns.push(ad_ir::Eqn {
                        out: total,
                        prim: Prim::Sum(ad_ir::prim::Axes::one(0)),
                        args: [bwd.outputs[k]].into_iter().collect(),
                        span: bwd.span,
                        extra: Box::default(),
                    });
                    bwd.outputs[k] = Atom::Var(total);
                }
            }
            CustomRule::Vjp { fwd, bwd, forward: Default::default() }
        }
    };
    let batched = Rc::new(CustomOp { primal, rule, args: n });
    let shapes = batched.out_shapes();
    let outs = em.emit_multi(Prim::Custom(batched), args.iter().copied(), &shapes, false);
    Ok((outs.into_iter().map(Atom::Var).collect(), vec![true; n_out]))
}

/// Whether `p` calls a `custom_vjp` function, at any depth.
fn calls_custom_vjp(p: &Program) -> bool {
    p.eqns.iter().any(|e| {
        matches!(&e.prim, Prim::Custom(op) if matches!(op.rule, CustomRule::Vjp { .. }))
            || e.prim.programs().into_iter().any(calls_custom_vjp)
    })
}

/// The loop `op` as the primal run of a reversal runs it: every `custom_vjp` call in it
/// replaced by its `fwd`'s code for the result (the residuals unused), also in the loops
/// and `if`s it holds; `op` itself when it calls none. The values are the same, and
/// differentiating them again (forward over reverse, for a Hessian) then differentiates
/// `fwd`'s code, as JAX does, where the call itself would need `bwd` run backwards, which a
/// `bwd` that is not linear in its cotangent cannot be.
pub(crate) fn primal_loop(op: &Rc<LoopOp>) -> Rc<LoopOp> {
    if calls_custom_vjp(&op.body) || op.cond.as_ref().is_some_and(calls_custom_vjp) {
        op.map(with_fwd_inlined)
    } else {
        op.clone()
    }
}

/// `p` with its `custom_vjp` calls replaced by their `fwd`'s code (see [`primal_loop`]).
fn with_fwd_inlined(p: &Program) -> Program {
    let mut b = ad_ir::Builder::new();
    let mut map = Subst::new(p);
    let inputs: Vec<ad_ir::Var> = p
        .inputs
        .iter()
        .map(|v| {
            let w = b.new_var(p.var_shape(*v), p.vars[v.index()].name.clone());
            map.set(*v, Atom::Var(w));
            w
        })
        .collect();
    for e in &p.eqns {
        let args: ad_ir::program::Args = e.args.iter().map(|a| map.get(*a)).collect();
        let replaced = match &e.prim {
            Prim::Custom(op) => match &op.rule {
                CustomRule::Vjp { fwd, .. } => {
                    let values = b.inline(&with_fwd_inlined(fwd), &args);
                    for (v, o) in e.outs().zip(values) {
                        map.set(v, o);
                    }
                    continue;
                }
                CustomRule::Jvp(_) => None,
            },
            Prim::Loop(op) => Some(Prim::Loop(primal_loop(op))),
            Prim::Cond(op) if op.branches().into_iter().any(calls_custom_vjp) => {
                Some(Prim::Cond(op.map(|q, _| with_fwd_inlined(q))))
            }
            _ => None,
        };
        let outs = match replaced {
            Some(prim) => b.copy_eqn(p, &ad_ir::program::Eqn { prim, ..e.clone() }, args),
            None => b.copy_eqn(p, e, args),
        };
        for (v, o) in e.outs().zip(outs) {
            map.set(v, Atom::Var(o));
        }
    }
    let outputs = p.outputs.iter().map(|a| map.get(*a)).collect();
    p.rebuilt(b.vars, inputs, b.eqns, outputs)
}
