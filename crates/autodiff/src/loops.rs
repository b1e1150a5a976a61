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
use ad_ir::prim::{Binary, DynSel, Prim};
use ad_ir::region::{region_program, LoopOp, ReverseOp};
use ad_ir::{Atom, Builder, Program, Shape, Var};
use std::rc::Rc;

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

/// A `while` loop's condition for a loop over its JVP body `jp` (inputs `[i, carries..,
/// a carried tangents.., consts.., ..]`): it reads the values only, at their places there.
fn jvp_cond(op: &LoopOp, jp: &Program, a: usize) -> Option<Program> {
    op.cond.as_ref().map(|cond| {
        let (c, k) = (op.carries, op.consts());
        let ins: Vec<usize> = (0..1 + c).chain(1 + c + a..1 + c + a + k).collect();
        widen(cond, jp, &ins)
    })
}

/// The loop over the values and tangents of everything `op` carries and reads: carried
/// `[values.., tangents..]`, constants `[values.., tangents..]`.
fn full_jvp_loop(op: &LoopOp, nan_safe: bool) -> LoopOp {
    let all_c: Vec<usize> = (0..op.carries).collect();
    let all_k: Vec<usize> = (0..op.consts()).collect();
    let (jp, _) = body_jvp(op, &all_c, &all_k, nan_safe);
    let cond = jvp_cond(op, &jp, op.carries);
    LoopOp { body: jp, carries: 2 * op.carries, cond, replay: None }
}

/// Emits a loop with several results (a `while` loop with a condition), marking them linear
/// or not.
pub(crate) fn emit_loop(
    em: &mut Emitter,
    body: Program,
    cond: Option<Program>,
    carries: usize,
    args: Vec<Atom>,
    linear: bool,
) -> Vec<Var> {
    let shapes: Vec<Shape> = body.outputs.iter().map(|a| body.shape(*a)).collect();
    let op = match cond {
        Some(c) => LoopOp::new_while(c, body, carries),
        None => LoopOp::new(body, carries),
    };
    em.emit_multi(Prim::Loop(op), args, &shapes, linear)
}

/// The JVP of a loop equation with operands `x` and their tangents `t`: the primal results
/// and their tangents. With `split`, the loop is linearized (a recording primal loop and a
/// linear loop over the tangents), which needs bounds known when deriving.
pub(crate) fn jvp_loop(
    em: &mut Emitter,
    op: &Rc<LoopOp>,
    x: &[Atom],
    t: &[Tan],
    split: bool,
) -> Result<(Vec<Atom>, Vec<Tan>), String> {
    let c = op.carries;
    let consts = &x[2 + c..];
    let init: Vec<bool> = t[2..2 + c].iter().map(Option::is_some).collect();
    let wrt_k: Vec<usize> = (0..consts.len()).filter(|j| t[2 + c + j].is_some()).collect();
    let (mut jp, mut active) = active_carries(op, &init, &wrt_k, em.nan_safe);
    if active.is_empty() {
        // No derivative flows through the loop: the primal loop as it was.
        let outs = emit_loop(em, op.body.clone(), op.cond.clone(), c, x.to_vec(), false);
        return Ok((outs.into_iter().map(Atom::Var).collect(), vec![None; c]));
    }
    // What reverse mode would record: of every iteration's carried values, those the
    // linear loop reads (or the parts of them it reads).
    let shapes: Vec<Shape> = op.out_shapes();
    let (lin, recs) = if split { tape_reads(&jp, c, &shapes) } else { (jp.clone(), vec![Rec::Whole; c]) };
    let record_bytes = LoopOp::static_trips(x).map(|n| {
        let state: usize = recs.iter().zip(&shapes).map(|(r, s)| r.shape(*s).map_or(0, |p| p.size())).sum();
        (n as f64) * (state as f64) * 8.0
    });
    let replay = split && record_bytes.is_none_or(|b| b > ad_ir::shape::tape_budget() as f64);
    if replay {
        // A reversal carries a cotangent for every carried value (see `transpose_replay`).
        active = (0..c).collect();
        jp = body_jvp(op, &active, &wrt_k, em.nan_safe).0;
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
    if !split || replay {
        // One loop over the values and their tangents, whose body is the body's JVP.
        let mut args: Vec<Atom> = x[..2 + c].to_vec();
        args.extend(tangent_init);
        args.extend_from_slice(consts);
        args.extend(tangent_consts);
        let cond = jvp_cond(op, &jp, a);
        if replay {
            // Reverse mode without a record in the program: the primal loop, and a linear
            // loop that recomputes it alongside the tangents, whose transpose keeps what it
            // needs when it runs (`ReverseLoop`).
            // A `custom_vjp` call in the primal loop runs its `fwd` (`primal_loop`).
            let primal = crate::custom::primal_loop(op);
            let results = emit_loop(em, primal.body.clone(), primal.cond.clone(), c, x.to_vec(), false);
            let shapes: Vec<Shape> = jp.outputs.iter().map(|o| jp.shape(*o)).collect();
            let replay = ad_ir::region::Replay { primal, wrt: wrt_k };
            let lin = LoopOp { body: jp, carries: c + a, cond, replay: Some(replay) };
            let outs = em.b.push_multi(Prim::Loop(Rc::new(lin)), args, &shapes, em.span);
            for (n, o) in outs.iter().enumerate() {
                em.mark(*o, n >= c);
            }
            let mut tans = vec![None; c];
            for (n, k) in active.iter().enumerate() {
                tans[*k] = Some(Atom::Var(outs[c + n]));
            }
            return Ok((results.into_iter().map(Atom::Var).collect(), tans));
        }
        let outs = emit_loop(em, jp, cond, c + a, args, false);
        let mut tans = vec![None; c];
        for (n, k) in active.iter().enumerate() {
            let o = outs[c + n];
            em.mark(o, true);
            tans[*k] = Some(Atom::Var(o));
        }
        return Ok((outs[..c].iter().map(|v| Atom::Var(*v)).collect(), tans));
    }
    let (lo, hi) = LoopOp::static_bounds(x).ok_or("internal error: a recorded loop has computed bounds")?;
    let n = (hi - lo).max(0.0) as usize;
    // The recording primal loop: inputs [i, carries, tapes, consts]. A `custom_vjp` call
    // in it runs its `fwd` (`primal_loop`).
    let primal = crate::custom::primal_loop(op);
    let body = &primal.body;
    // The carried values recorded (all of them, or a part), and the tapes' shapes.
    let recorded_k: Vec<usize> = (0..c).filter(|k| !matches!(recs[*k], Rec::Unread)).collect();
    let tape_shapes: Vec<Shape> = recorded_k
        .iter()
        .map(|k| {
            let s = recs[*k].shape(shapes[*k]).unwrap_or(shapes[*k]);
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
    for (n_tape, (tape, k)) in tapes.iter().zip(&recorded_k).enumerate() {
        let s = tape_shapes[n_tape];
        let value = match &recs[*k] {
            Rec::Part(sel, part) => {
                let mut args = vec![Atom::Var(carried[*k])];
                args.extend(std::iter::repeat_n(Atom::Var(i), sel.len()));
                Atom::Var(b.push(Prim::DynIndex(sel.clone()), args, *part, body.span))
            }
            _ => Atom::Var(carried[*k]),
        };
        let w = b.push(Prim::DynUpdate(DynSel::picks(1)), [Atom::Var(*tape), value, pos], s, body.span);
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
    let outs = emit_loop(em, record, None, c + recorded_k.len(), args, false);
    let (results, recorded) = outs.split_at(c);
    for (r, k) in recorded.iter().zip(&recorded_k) {
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
    // The linear body `lin` on the tapes' rows: a carried value recorded whole is its row;
    // the parts of one recorded in part are the row.
    let mut map = ad_ir::Subst::new(&lin);
    map.set(lin.inputs[0], Atom::Var(i));
    let mut rows: Vec<Option<Atom>> = vec![None; c];
    for (tape, k) in tapes.iter().zip(&recorded_k) {
        let s = recs[*k].shape(shapes[*k]).unwrap_or(shapes[*k]);
        let v = b.push(Prim::DynIndex(DynSel::picks(1)), [Atom::Var(*tape), pos], s, body.span);
        b.vars[v.index()].name = body.vars[body.inputs[1 + k].index()].name.clone();
        match recs[*k] {
            Rec::Whole => map.set(lin.inputs[1 + k], Atom::Var(v)),
            _ => rows[*k] = Some(Atom::Var(v)),
        }
    }
    let rest = tans.iter().chain(&cvars).chain(&ctans);
    for (input, v) in lin.inputs[1 + c..].iter().zip(rest) {
        map.set(*input, Atom::Var(*v));
    }
    for e in &lin.eqns {
        let row = match (&e.prim, e.args.first()) {
            (Prim::DynIndex(_), Some(Atom::Var(x))) => {
                lin.inputs[1..=c].iter().position(|v| v == x).and_then(|k| rows[k])
            }
            _ => None,
        };
        if let Some(row) = row {
            map.set(e.out, row);
            continue;
        }
        let args = e.args.iter().map(|a| map.get(*a)).collect();
        for (v, o) in e.outs().zip(b.copy_eqn(&lin, e, args)) {
            map.set(v, Atom::Var(o));
        }
    }
    let outs_t: Vec<Atom> = lin.outputs.iter().map(|a| map.get(*a)).collect();
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
    let touts = emit_loop(em, linear_body, None, a, args, true);
    let mut result_tans = vec![None; c];
    for (n, k) in active.iter().enumerate() {
        result_tans[*k] = Some(Atom::Var(touts[n]));
    }
    Ok((results.iter().map(|v| Atom::Var(*v)).collect(), result_tans))
}

/// What the linear loop reads of a carried value, and so what the primal loop records of
/// it each iteration.
#[derive(Clone, Debug)]
enum Rec {
    /// The whole value.
    Whole,
    /// Only the part at the loop's index (`ys[i]`, typically a row the loop writes), of
    /// this shape.
    Part(DynSel, Shape),
    /// Nothing (a value the derivative does not need, such as an array the loop only
    /// writes).
    Unread,
}

impl Rec {
    /// The shape recorded for a carried value of shape `s`, if any.
    fn shape(&self, s: Shape) -> Option<Shape> {
        match self {
            Rec::Whole => Some(s),
            Rec::Part(_, p) => Some(*p),
            Rec::Unread => None,
        }
    }
}

/// The tangent half of the JVP body `jp` (inputs `[i, carries (c).., tangents..,
/// consts.., const tangents..]`), simplified, and what it reads of each carried value.
fn tape_reads(jp: &Program, c: usize, shapes: &[Shape]) -> (Program, Vec<Rec>) {
    let tangents = jp.outputs[c..].to_vec();
    let lin = crate::simplify::simplify(ad_ir::region::restrict(jp, jp.eqns.len(), tangents, &jp.name));
    let index = Atom::Var(lin.inputs[0]);
    let recs = (0..c)
        .map(|k| {
            let v = Atom::Var(lin.inputs[1 + k]);
            let mut rec = Rec::Unread;
            if lin.outputs.contains(&v) {
                return Rec::Whole;
            }
            for e in lin.eqns.iter().filter(|e| e.args.contains(&v)) {
                let part = match &e.prim {
                    Prim::DynIndex(sel) if e.args[0] == v && e.args[1..].iter().all(|p| *p == index) => {
                        sel.part(shapes[k]).ok().map(|s| (sel.clone(), s))
                    }
                    _ => None,
                };
                rec = match (rec, part) {
                    (Rec::Unread, Some((sel, s))) => Rec::Part(sel, s),
                    (Rec::Part(a, s), Some((b, _))) if a == b => Rec::Part(a, s),
                    _ => return Rec::Whole,
                };
            }
            rec
        })
        .collect();
    (lin, recs)
}

/// `cond` as a program with the inputs of `like`, of which it reads those at `ins`.
fn widen(cond: &Program, like: &Program, ins: &[usize]) -> Program {
    let mut b = Builder::new();
    let inputs: Vec<Var> = like
        .inputs
        .iter()
        .map(|v| b.new_var(like.var_shape(*v), like.vars[v.index()].name.clone()))
        .collect();
    let picked: Vec<Atom> = ins.iter().map(|k| Atom::Var(inputs[*k])).collect();
    let outs = b.inline(cond, &picked);
    region_program(&cond.name, b.vars, inputs, b.eqns, outs, cond.span)
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
    if let Some(primal) = &op.replay {
        return transpose_replay(em, op, primal, x, lin, cts);
    }
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
    let outs = emit_loop(em, reversed, None, c + lin_consts.len(), args, false);
    let mut contributions: Vec<Tan> = vec![None; x.len()];
    for k in (0..c).filter(|k| lin[2 + k]) {
        contributions[2 + k] = Some(Atom::Var(outs[k]));
    }
    for (n, j) in lin_consts.iter().enumerate() {
        contributions[2 + c + j] = Some(Atom::Var(outs[c + n]));
    }
    Ok(contributions)
}

/// The transpose of a replaying linear loop (operands `[lo, hi, carries.., tangents..,
/// consts.., const tangents..]`, its body the JVP body of the primal loop with respect to
/// every carried value and the constants `wrt`): a `ReverseLoop` whose backward step is the
/// VJP of the JVP body with respect to the tangents.
fn transpose_replay(
    em: &mut Emitter,
    op: &LoopOp,
    replay: &ad_ir::region::Replay,
    x: &[Atom],
    lin: &[bool],
    cts: &[Tan],
) -> Result<Vec<Tan>, String> {
    let (primal, wrt) = (&replay.primal, &replay.wrt);
    let jp = &op.body;
    let (c, k, m) = (primal.carries, primal.consts(), replay.wrt.len());
    // The JVP body's inputs: [i, carries (c), tangents (c), consts (k), const tangents (m)].
    let tangents: Vec<usize> = (1 + c..1 + 2 * c).chain(1 + 2 * c + k..1 + 2 * c + k + m).collect();
    let own: Vec<usize> = (1..1 + c).chain(1 + 2 * c..1 + 2 * c + k).collect();
    let seeded: Vec<usize> = (c..2 * c).collect();
    let back = back_step(jp, c, &own, &seeded, &tangents, &format!("{}_bar", primal.body.name))?;
    let rev = ReverseOp { primal: primal.clone(), back, cotangents: c, wrt: wrt.clone(), tangent_of: None };
    let mut args: Vec<Atom> = x[..2 + c].to_vec();
    args.extend_from_slice(&x[2 + 2 * c..2 + 2 * c + k]);
    for j in 0..c {
        let s = em.shape(x[2 + c + j]);
        args.push(em.materialize(cts[c + j], s));
    }
    let outs = emit_reverse(em, rev, args);
    let mut contributions: Vec<Tan> = vec![None; x.len()];
    for j in 0..c {
        if lin[2 + c + j] {
            contributions[2 + c + j] = Some(Atom::Var(outs[j]));
        }
    }
    for j in 0..m {
        if lin[2 + 2 * c + k + j] {
            contributions[2 + 2 * c + k + j] = Some(Atom::Var(outs[c + j]));
        }
    }
    Ok(contributions)
}

/// The backward step of a reversal from a loop body `p` (inputs `[i, ..]`): the VJP of `p`
/// with respect to its inputs `wrt`, as a program with the inputs `[i, own.., cotangents of
/// the outputs seeded..]` and the outputs `[cotangents of the inputs wrt..]`. `own` are the
/// inputs the reversal passes in (carried values, then constants); the others are zeros
/// (tangents: a linear map's transpose does not read them), and so are the cotangents of
/// the outputs not seeded.
fn back_step(
    p: &Program,
    c: usize,
    own: &[usize],
    seeded: &[usize],
    wrt: &[usize],
    name: &str,
) -> Result<Program, String> {
    let v = crate::first_order::vjp_program(p, wrt, wrt)?;
    let mut b = Builder::new();
    let in_name = |j: usize| p.vars[p.inputs[j].index()].name.clone();
    let zeros = |b: &mut Builder, s: Shape| {
        if s.is_scalar() {
            Atom::Lit(0.0)
        } else {
            Atom::Var(b.push(Prim::Full(s, ad_ir::prim::F64(0.0)), [], s, p.span))
        }
    };
    let mut ins: Vec<Option<Atom>> = vec![None; p.inputs.len()];
    let i = b.new_var(Shape::scalar(), in_name(0));
    ins[0] = Some(Atom::Var(i));
    let mut inputs = vec![i];
    for &j in own {
        let v = b.new_var(p.var_shape(p.inputs[j]), in_name(j));
        ins[j] = Some(Atom::Var(v));
        inputs.push(v);
    }
    // Cotangents of the outputs, named after the carried values they belong to (the
    // outputs are the `c` carried values, then perhaps their tangents).
    let mut seeds: Vec<Option<Atom>> = vec![None; p.outputs.len()];
    for &j in seeded {
        let name = in_name(1 + j % c.max(1)).map(|n| format!("{n}_bar").into());
        let v = b.new_var(p.shape(p.outputs[j]), name);
        seeds[j] = Some(Atom::Var(v));
        inputs.push(v);
    }
    let mut all: Vec<Atom> = Vec::with_capacity(ins.len() + seeds.len());
    for (j, a) in ins.into_iter().enumerate() {
        let s = p.var_shape(p.inputs[j]);
        all.push(a.unwrap_or_else(|| zeros(&mut b, s)));
    }
    for (j, a) in seeds.into_iter().enumerate() {
        let s = p.shape(p.outputs[j]);
        all.push(a.unwrap_or_else(|| zeros(&mut b, s)));
    }
    let outs = b.inline(&v, &all);
    let bars = outs[p.outputs.len()..].to_vec();
    let back = region_program(name, b.vars, inputs, b.eqns, bars, p.span);
    Ok(crate::simplify::simplify(back))
}

/// Emits a reversal; its results are cotangents.
pub(crate) fn emit_reverse(em: &mut Emitter, rev: ReverseOp, args: Vec<Atom>) -> Vec<Var> {
    let shapes = rev.out_shapes();
    em.emit_multi(Prim::ReverseLoop(Rc::new(rev)), args, &shapes, false)
}

/// The JVP of a loop's reversal (forward over reverse, as in a Hessian-vector product): the
/// reversal of the loop's JVP, whose backward step is the JVP of the backward step. Every
/// tangent is materialised (a zero where there is none), so that the state, constants and
/// cotangents of the new reversal are those of the old one followed by their tangents.
pub(crate) fn jvp_reverse(
    em: &mut Emitter,
    op: &Rc<ReverseOp>,
    x: &[Atom],
    t: &[Tan],
    split: bool,
) -> Result<(Vec<Atom>, Vec<Tan>), String> {
    let primal = &op.primal;
    let (c, k, a) = (primal.carries, primal.consts(), op.cotangents);
    let shapes = op.out_shapes();
    let m = shapes.len() - a;
    // The values, by the reversal as it is: on their own when linearizing, so that the
    // linear part (the reversal of the JVP below) holds only tangents that are read.
    let mut values = None;
    if split || t.iter().all(Option::is_none) {
        let outs = emit_reverse(em, clone_reverse(op), x.to_vec());
        values = Some(outs.into_iter().map(Atom::Var).collect::<Vec<_>>());
    }
    if t.iter().all(Option::is_none) {
        return Ok((values.unwrap_or_default(), vec![None; a + m]));
    }
    // The primal loop's JVP with respect to everything it carries and reads.
    let looped = Rc::new(full_jvp_loop(primal, em.nan_safe));
    // The backward step's JVP, its inputs and outputs interleaved as the reversal needs.
    let back = &op.back;
    let leaves: Vec<usize> = (1..back.inputs.len()).collect();
    let j = jvp(back, &leaves, em.nan_safe);
    let mut em2 = j.em;
    let mut tans: Vec<Atom> = Vec::new();
    for (n, o) in j.outputs.iter().enumerate() {
        let s = em2.shape(*o);
        tans.push(em2.materialize(j.tangents[n], s));
    }
    let (ti, pi) = (&j.tangent_inputs, &j.inputs);
    let inputs: Vec<Var> =
        [&pi[..1 + c], &ti[..c], &pi[1 + c..1 + c + k], &ti[c..c + k], &pi[1 + c + k..], &ti[c + k..]]
            .concat();
    let outputs: Vec<Atom> = [&j.outputs[..a], &tans[..a], &j.outputs[a..], &tans[a..]].concat();
    let back2 = region_program(&back.name, em2.b.vars, inputs, em2.b.eqns, outputs, back.span);
    let wrt: Vec<usize> = op.wrt.iter().copied().chain(op.wrt.iter().map(|j| k + j)).collect();
    let rev = ReverseOp {
        primal: looped,
        back: crate::simplify::simplify(back2),
        cotangents: 2 * a,
        wrt,
        tangent_of: Some(op.clone()),
    };
    let tangent = |em: &mut Emitter, n: usize| {
        let s = em.shape(x[n]);
        em.materialize(t[n], s)
    };
    let mut args: Vec<Atom> = x[..2 + c].to_vec();
    for n in 2..2 + c {
        args.push(tangent(em, n));
    }
    args.extend_from_slice(&x[2 + c..2 + c + k]);
    for n in 2 + c..2 + c + k {
        args.push(tangent(em, n));
    }
    args.extend_from_slice(&x[2 + c + k..]);
    for n in 2 + c + k..x.len() {
        args.push(tangent(em, n));
    }
    let outs = emit_reverse(em, rev, args);
    let v = |k: usize| Atom::Var(outs[k]);
    let values: Vec<Atom> =
        values.unwrap_or_else(|| (0..a).map(v).chain((2 * a..2 * a + m).map(v)).collect());
    let tangents: Vec<Tan> = (a..2 * a).chain(2 * a + m..2 * a + 2 * m).map(|k| Some(v(k))).collect();
    for t in &tangents {
        if let Some(Atom::Var(o)) = t {
            em.mark(*o, true);
        }
    }
    Ok((values, tangents))
}

/// A reversal as a new operation (equations are identified by their operation's address).
fn clone_reverse(op: &ReverseOp) -> ReverseOp {
    ReverseOp {
        primal: op.primal.clone(),
        back: op.back.clone(),
        cotangents: op.cotangents,
        wrt: op.wrt.clone(),
        tangent_of: op.tangent_of.clone(),
    }
}

/// The transpose of the JVP of a reversal (reverse over reverse), by the symmetry of second
/// derivatives. The reversal `R(s0, k, λ)` is the gradient, with respect to the initial
/// carried values and the constants `wrt`, of `λ · L(s0, k)` where `L` is the loop. Its JVP
/// is linear in the tangents `(ṡ0, k̇, λ̇)`; given cotangents `μ` of its results, the
/// cotangent of `λ̇` is `J_L μ` (the loop's JVP in the direction `μ`), and that of `(ṡ0, k̇)`
/// is the gradient of `λ · J_L μ` with respect to `(s0, k)`: a reversal of the loop's JVP.
pub(crate) fn transpose_reverse(
    em: &mut Emitter,
    op: &ReverseOp,
    x: &[Atom],
    lin: &[bool],
    cts: &[Tan],
) -> Result<Vec<Tan>, String> {
    let Some(r) = &op.tangent_of else {
        return Err("internal error: a loop's reversal is transposed but is not the derivative of one".into());
    };
    let primal = &r.primal;
    let (c, k, m) = (primal.carries, primal.consts(), r.wrt.len());
    // A plain reversal `r` is the VJP of its primal loop: its cotangent `j` belongs to the
    // carried value `j`, and its result `j` is that value's cotangent. A reversal that is
    // itself a JVP (`r.tangent_of` set) is the VJP of its primal loop (a JVP loop, carrying
    // values then tangents) with the halves exchanged: `λ` belongs to the tangents and `λ̇`
    // to the values, and likewise for its results and for the constants it differentiates.
    // `carry(i)` and `konst(j)` give the position in `r`'s own order of the natural one;
    // one level of this is followed, deeper ones are refused rather than given wrong.
    let swapped = r.tangent_of.is_some();
    if r.tangent_of.as_ref().is_some_and(|q| q.tangent_of.is_some()) {
        return Err("reverse mode over a loop reversal differentiated twice in forward mode (`grad` of \
             `jvp` of `jvp` of `grad` through a `while` loop or a loop with computed bounds) is not \
             supported yet"
            .into());
    }
    let carry = |i: usize| if swapped { (i + c / 2) % c } else { i };
    let konst = |j: usize| if swapped { (j + k / 2) % k } else { j };
    // Operands: [lo, hi, s0 (c), ṡ0 (c), k (K), k̇ (K), λ (c), λ̇ (c)]; results:
    // [λ0 (c), λ̇0 (c), acc (m), acċ (m)], of which the tangents have cotangents.
    let at_s0 = 2;
    let at_k = 2 + 2 * c;
    let at_l = 2 + 2 * c + 2 * k;
    let mut mu: Vec<Atom> = Vec::with_capacity(c + k);
    for i in 0..c {
        let s = em.shape(x[at_s0 + i]);
        mu.push(em.materialize(cts[c + carry(i)], s));
    }
    for j in 0..k {
        let s = em.shape(x[at_k + j]);
        let t = r.wrt.iter().position(|w| *w == konst(j)).and_then(|q| cts[2 * c + m + q]);
        mu.push(em.materialize(t, s));
    }
    // The loop's JVP with respect to everything, in the direction μ.
    let looped = full_jvp_loop(primal, em.nan_safe);
    let mut args: Vec<Atom> = x[..2 + c].to_vec();
    args.extend_from_slice(&mu[..c]);
    args.extend_from_slice(&x[at_k..at_k + k]);
    args.extend_from_slice(&mu[c..]);
    let jvp_outs = emit_loop(em, looped.body.clone(), looped.cond.clone(), 2 * c, args.clone(), false);
    // The gradient of λ · ṡ_n with respect to (s0, k): the reversal of the JVP loop, seeded
    // with λ on the tangents.
    let own: Vec<usize> = (1..1 + 2 * c + 2 * k).collect();
    let seeded: Vec<usize> = (0..2 * c).collect();
    let wrt_in: Vec<usize> = (1..1 + 2 * c + k).collect();
    let back = back_step(&looped.body, c, &own, &seeded, &wrt_in, &format!("{}_bar", primal.body.name))?;
    let all_k: Vec<usize> = (0..k).collect();
    let rev = ReverseOp { primal: Rc::new(looped), back, cotangents: 2 * c, wrt: all_k, tangent_of: None };
    for j in 0..c {
        let s = em.shape(x[at_l + j]);
        args.push(em.zeros(s));
    }
    args.extend((0..c).map(|i| x[at_l + carry(i)]));
    let outs = emit_reverse(em, rev, args);
    let mut contributions: Vec<Tan> = vec![None; x.len()];
    for i in 0..c {
        if lin[at_s0 + c + i] {
            contributions[at_s0 + c + i] = Some(Atom::Var(outs[i]));
        }
        if lin[at_l + c + carry(i)] {
            contributions[at_l + c + carry(i)] = Some(Atom::Var(jvp_outs[c + i]));
        }
    }
    for j in 0..k {
        if lin[at_k + k + j] {
            contributions[at_k + k + j] = Some(Atom::Var(outs[2 * c + j]));
        }
    }
    Ok(contributions)
}
