//! Derivatives of loops (DESIGN §8), as loops: never unrolled.
//!
//! - **Forward** (`jvp`): one loop over the carried values and their tangents, whose body is
//!   the body's JVP. A carried tangent stays a symbolic zero only when it is zero on entry
//!   and the body keeps it zero; the set of nonzero tangents is iterated to a fixed point.
//! - **Linearized** (reverse mode's first half): a primal loop that also records each
//!   iteration's carried values in a tape (an ordinary array of the trip count's length,
//!   written at the iteration's position), and a linear loop over the tangents that reads
//!   the carried values back from the tape and recomputes the body's intermediates.
//! - **Transposed** (reverse mode's second half): the linear loop run backwards, its body
//!   the VJP of the linear body; cotangents of the constants it reads are summed in carried
//!   accumulators.
//!
//! Bodies are programs, so their derivatives come from the same transformations
//! (`jvp`, `first_order::vjp_program`), recursively for nested loops.

use crate::emitter::{Emitter, Tan};
use crate::jvp::jvp;
use ad_ir::prim::{Binary, Prim};
use ad_ir::region::{region_program, LoopOp};
use ad_ir::{Atom, Builder, Program, Shape, Var};

/// The JVP of a loop body with respect to the carried values `wrt_c` and constants `wrt_k`
/// (indices among the carries and constants): a program with the inputs
/// `[i, carries.., carry tangents.., consts.., const tangents..]` (a loop body's order:
/// everything carried, then everything read) and outputs `[new carries.., tangents of the
/// carries in wrt_c]`, and which carries' tangents are nonzero after one iteration. It is
/// simplified with the program it ends up in.
fn body_jvp(op: &LoopOp, wrt_c: &[usize], wrt_k: &[usize], nan_safe: bool) -> (Program, Vec<bool>) {
    let body = &op.body;
    let mut leaves: Vec<usize> = wrt_c.iter().map(|k| 1 + k).collect();
    leaves.extend(wrt_k.iter().map(|j| 1 + op.carries + j));
    let mut j = jvp(body, &leaves, nan_safe);
    let nonzero: Vec<bool> = j.tangents.iter().map(Option::is_some).collect();
    let mut outputs = j.outputs.clone();
    for &k in wrt_c {
        let s = j.em.shape(j.outputs[k]);
        outputs.push(j.em.materialize(j.tangents[k], s));
    }
    let (carried, read) = j.inputs.split_at(1 + op.carries);
    let (carried_tangents, read_tangents) = j.tangent_inputs.split_at(wrt_c.len());
    let inputs = [carried, carried_tangents, read, read_tangents].concat();
    (region_program(&body.name, j.em.b.vars, inputs, j.em.b.eqns, outputs, body.span), nonzero)
}

/// The carried values whose tangents can be nonzero: those nonzero on entry, and those the
/// body makes nonzero from them or from the constants' tangents, to a fixed point.
fn active_carries(op: &LoopOp, init: &[bool], wrt_k: &[usize], nan_safe: bool) -> (Program, Vec<usize>) {
    let mut active: Vec<usize> = (0..op.carries).filter(|k| init[*k]).collect();
    loop {
        let (p, nonzero) = body_jvp(op, &active, wrt_k, nan_safe);
        let grown: Vec<usize> = (0..op.carries).filter(|k| active.contains(k) || nonzero[*k]).collect();
        if grown == active {
            return (p, active);
        }
        active = grown;
    }
}

/// Emits a loop with several results, marking them linear or not.
fn emit_loop(em: &mut Emitter, body: Program, carries: usize, args: Vec<Atom>, linear: bool) -> Vec<Var> {
    let shapes: Vec<Shape> = body.outputs.iter().map(|a| body.shape(*a)).collect();
    let outs = em.b.push_multi(Prim::Loop(LoopOp::new(body, carries)), args, &shapes, em.span);
    for o in &outs {
        em.mark(*o, linear);
    }
    outs
}

/// The JVP of a loop equation with operands `x` and their tangents `t`: the primal results
/// and their tangents. With `split`, the loop is linearized (a recording primal loop and a
/// linear loop over the tangents), which needs bounds known when deriving.
pub(crate) fn jvp_loop(
    em: &mut Emitter,
    op: &LoopOp,
    x: &[Atom],
    t: &[Tan],
    split: bool,
) -> Result<(Vec<Atom>, Vec<Tan>), String> {
    let c = op.carries;
    let consts = &x[2 + c..];
    let init: Vec<bool> = t[2..2 + c].iter().map(Option::is_some).collect();
    let wrt_k: Vec<usize> = (0..consts.len()).filter(|j| t[2 + c + j].is_some()).collect();
    let (jp, active) = active_carries(op, &init, &wrt_k, em.nan_safe);
    if active.is_empty() {
        // No derivative flows through the loop: the primal loop as it was.
        let outs = emit_loop(em, op.body.clone(), c, x.to_vec(), false);
        return Ok((outs.into_iter().map(Atom::Var).collect(), vec![None; c]));
    }
    let tangent_init: Vec<Atom> = active
        .iter()
        .map(|k| {
            let s = em.shape(x[2 + k]);
            em.materialize(t[2 + k], s)
        })
        .collect();
    let tangent_consts: Vec<Atom> = wrt_k.iter().filter_map(|j| t[2 + c + j]).collect();
    let a = active.len();
    if !split {
        // One loop over the values and their tangents, whose body is the body's JVP.
        let mut args: Vec<Atom> = x[..2 + c].to_vec();
        args.extend(tangent_init);
        args.extend_from_slice(consts);
        args.extend(tangent_consts);
        let outs = emit_loop(em, jp, c + a, args, false);
        let mut tans = vec![None; c];
        for (n, k) in active.iter().enumerate() {
            let o = outs[c + n];
            em.mark(o, true);
            tans[*k] = Some(Atom::Var(o));
        }
        return Ok((outs[..c].iter().map(|v| Atom::Var(*v)).collect(), tans));
    }
    let (lo, hi) = LoopOp::static_bounds(x).ok_or(
        "reverse mode through a `for` loop whose bounds are computed when the function runs is not supported yet; give the loop constant bounds",
    )?;
    let n = (hi - lo).max(0.0) as usize;
    // The recording primal loop: inputs [i, carries, tapes, consts].
    let body = &op.body;
    let shapes: Vec<Shape> = body.outputs.iter().map(|a| body.shape(*a)).collect();
    let tape_shapes: Vec<Shape> = shapes
        .iter()
        .map(|s| {
            s.insert_axis(0, n)
                .ok_or_else(|| format!("a loop carries an array of rank {}, too many to record", s.rank()))
        })
        .collect::<Result<_, _>>()?;
    let mut b = Builder::new();
    let i = b.new_var(Shape::scalar(), body.vars[body.inputs[0].index()].name.clone());
    let carried: Vec<Var> =
        (0..c).map(|k| b.new_var(shapes[k], body.vars[body.inputs[1 + k].index()].name.clone())).collect();
    let tapes: Vec<Var> = tape_shapes.iter().map(|s| b.new_var(*s, Some("tape".into()))).collect();
    let cvars: Vec<Var> = consts.iter().map(|a| b.new_var(em.shape(*a), None)).collect();
    for (v, a) in cvars.iter().zip(consts) {
        if let Atom::Var(w) = a {
            b.vars[v.index()].name = em.b.vars[w.index()].name.clone();
        }
    }
    let mut ins: Vec<Atom> = vec![Atom::Var(i)];
    ins.extend(carried.iter().map(|v| Atom::Var(*v)));
    ins.extend(cvars.iter().map(|v| Atom::Var(*v)));
    let new = b.inline(body, &ins);
    let pos = position(&mut b, i, lo, body.span);
    let mut outs = new;
    for (k, tape) in tapes.iter().enumerate() {
        let s = tape_shapes[k];
        let w = b.push(Prim::DynUpdate(1), [Atom::Var(*tape), Atom::Var(carried[k]), pos], s, body.span);
        outs.push(Atom::Var(w));
    }
    let mut inputs = vec![i];
    inputs.extend(&carried);
    inputs.extend(&tapes);
    inputs.extend(&cvars);
    let record = region_program(&body.name, b.vars, inputs, b.eqns, outs, body.span);
    let mut args: Vec<Atom> = x[..2 + c].to_vec();
    for s in &tape_shapes {
        args.push(em.zeros(*s));
    }
    args.extend_from_slice(consts);
    let outs = emit_loop(em, record, 2 * c, args, false);
    let (results, recorded) = outs.split_at(c);
    for (k, r) in recorded.iter().enumerate() {
        let name = body.vars[body.inputs[1 + k].index()].name.as_deref().unwrap_or("carry");
        em.b.vars[r.index()].name = Some(format!("{name}_tape").into());
    }
    // The linear loop: inputs [i, tangents, tapes, consts, const tangents].
    let mut b = Builder::new();
    let i = b.new_var(Shape::scalar(), body.vars[body.inputs[0].index()].name.clone());
    let tans: Vec<Var> = active.iter().map(|k| b.new_var(shapes[*k], None)).collect();
    let tapes: Vec<Var> = tape_shapes.iter().map(|s| b.new_var(*s, Some("tape".into()))).collect();
    let cvars: Vec<Var> = consts.iter().map(|a| b.new_var(em.shape(*a), None)).collect();
    let ctans: Vec<Var> = tangent_consts.iter().map(|a| b.new_var(em.shape(*a), None)).collect();
    let pos = position(&mut b, i, lo, body.span);
    let mut ins: Vec<Atom> = vec![Atom::Var(i)];
    for (k, tape) in tapes.iter().enumerate() {
        let v = b.push(Prim::DynIndex(1), [Atom::Var(*tape), pos], shapes[k], body.span);
        b.vars[v.index()].name = body.vars[body.inputs[1 + k].index()].name.clone();
        ins.push(Atom::Var(v));
    }
    ins.extend(tans.iter().map(|v| Atom::Var(*v)));
    ins.extend(cvars.iter().map(|v| Atom::Var(*v)));
    ins.extend(ctans.iter().map(|v| Atom::Var(*v)));
    let all = b.inline(&jp, &ins);
    let outs_t = all[c..].to_vec();
    let mut inputs = vec![i];
    inputs.extend(&tans);
    inputs.extend(&tapes);
    inputs.extend(&cvars);
    inputs.extend(&ctans);
    let linear_body = region_program(&body.name, b.vars, inputs, b.eqns, outs_t, body.span);
    let mut args: Vec<Atom> = x[..2].to_vec();
    args.extend(tangent_init);
    args.extend(recorded.iter().map(|v| Atom::Var(*v)));
    args.extend_from_slice(consts);
    args.extend(tangent_consts);
    let touts = emit_loop(em, linear_body, a, args, true);
    let mut result_tans = vec![None; c];
    for (n, k) in active.iter().enumerate() {
        result_tans[*k] = Some(Atom::Var(touts[n]));
    }
    Ok((results.iter().map(|v| Atom::Var(*v)).collect(), result_tans))
}

/// `i - lo`: the iteration's position in the tape.
fn position(b: &mut Builder, i: Var, lo: f64, span: ad_syntax::Span) -> Atom {
    if lo == 0.0 {
        return Atom::Var(i);
    }
    Atom::Var(b.push(Prim::Binary(Binary::Sub), [Atom::Var(i), Atom::Lit(lo)], Shape::scalar(), span))
}

/// The transpose of a linear loop equation (operands `x`, of which `lin` are linear) given
/// the cotangents of its results: the cotangent contributions of its linear operands.
pub(crate) fn transpose_loop(
    em: &mut Emitter,
    op: &LoopOp,
    x: &[Atom],
    lin: &[bool],
    cts: &[Tan],
) -> Result<Vec<Tan>, String> {
    let c = op.carries;
    // Every carried value of a linear loop is a tangent; one that starts as a materialised
    // zero is not linear as an operand and receives no contribution.
    if lin[..2].iter().any(|l| *l) {
        return Err("internal error: a loop is transposed in its bounds".into());
    }
    let (lo, hi) = LoopOp::static_bounds(x).ok_or("internal error: a linear loop has computed bounds")?;
    let body = &op.body;
    let n_consts = x.len() - 2 - c;
    let lin_consts: Vec<usize> = (0..n_consts).filter(|j| lin[2 + c + j]).collect();
    let other_consts: Vec<usize> = (0..n_consts).filter(|j| !lin[2 + c + j]).collect();
    // The body's VJP with respect to its linear inputs: V(inputs.., seeds..) ->
    // (outputs.., bars of the carried values.., bars of the linear constants..).
    let wrt: Vec<usize> = (1..=c).chain(lin_consts.iter().map(|j| 1 + c + j)).collect();
    let v = crate::first_order::vjp_program(body, &wrt, &wrt)?;
    let shapes: Vec<Shape> = body.outputs.iter().map(|a| body.shape(*a)).collect();
    let const_shape = |j: usize| body.var_shape(body.inputs[1 + c + j]);
    // The reversed loop: inputs [j, carried cotangents, accumulators, other constants].
    let mut b = Builder::new();
    let jv = b.new_var(Shape::scalar(), Some("j".into()));
    let ct_vars: Vec<Var> = shapes.iter().map(|s| b.new_var(*s, None)).collect();
    let acc_vars: Vec<Var> = lin_consts.iter().map(|j| b.new_var(const_shape(*j), None)).collect();
    let other_vars: Vec<Var> = other_consts.iter().map(|j| b.new_var(const_shape(*j), None)).collect();
    let i = b.push(
        Prim::Binary(Binary::Sub),
        [Atom::Lit(lo + hi - 1.0), Atom::Var(jv)],
        Shape::scalar(),
        body.span,
    );
    b.vars[i.index()].name = body.vars[body.inputs[0].index()].name.clone();
    let mut ins: Vec<Atom> = vec![Atom::Var(i)];
    // The linear inputs' values do not matter to a linear map's transpose: the carried
    // cotangents stand in for the carried values, and the accumulators (of the same
    // shapes) for the linear constants.
    ins.extend(ct_vars.iter().map(|v| Atom::Var(*v)));
    let (mut acc, mut other) = (acc_vars.iter(), other_vars.iter());
    for j in 0..n_consts {
        let stand_in = if lin[2 + c + j] { acc.next() } else { other.next() };
        ins.extend(stand_in.map(|v| Atom::Var(*v)));
    }
    ins.extend(ct_vars.iter().map(|v| Atom::Var(*v)));
    let outs = b.inline(&v, &ins);
    let bars = &outs[outs.len() - wrt.len()..];
    let mut new: Vec<Atom> = bars[..c].to_vec();
    for (acc, bar) in acc_vars.iter().zip(&bars[c..]) {
        let s = b.vars[acc.index()].shape;
        new.push(Atom::Var(b.push(Prim::Binary(Binary::Add), [Atom::Var(*acc), *bar], s, body.span)));
    }
    let mut inputs = vec![jv];
    inputs.extend(&ct_vars);
    inputs.extend(&acc_vars);
    inputs.extend(&other_vars);
    let reversed = region_program(&format!("{}_bar", body.name), b.vars, inputs, b.eqns, new, body.span);
    let mut args = vec![Atom::Lit(lo), Atom::Lit(hi)];
    for (k, s) in shapes.iter().enumerate() {
        args.push(em.materialize(cts[k], *s));
    }
    for j in &lin_consts {
        args.push(em.zeros(const_shape(*j)));
    }
    args.extend(other_consts.iter().map(|j| x[2 + c + j]));
    let outs = emit_loop(em, reversed, c + lin_consts.len(), args, false);
    let mut contributions: Vec<Tan> = vec![None; x.len()];
    for k in (0..c).filter(|k| lin[2 + k]) {
        contributions[2 + k] = Some(Atom::Var(outs[k]));
    }
    for (n, j) in lin_consts.iter().enumerate() {
        contributions[2 + c + j] = Some(Atom::Var(outs[c + n]));
    }
    Ok(contributions)
}
