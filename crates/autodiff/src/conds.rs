//! Derivatives and batching of `if` on a computed condition (DESIGN §8), branch by branch.
//!
//! - **Forward** (`jvp`): one `if` on the same condition whose branches are the branches'
//!   JVPs. A result's tangent is a symbolic zero only when it is in both branches.
//! - **Linearized** (reverse mode's first half): the primal `if` as it was, and a linear
//!   `if` on the same condition whose branches are the tangent halves of the branches'
//!   JVPs. Each linear branch recomputes the primal values it needs from the operands
//!   rather than receiving them from the primal `if`, so no branch's intermediates cross
//!   into the other branch (JAX passes them as residuals, zero-filled for the branch not
//!   taken); only the chosen branch recomputes, and only what its derivative reads.
//! - **Transposed**: an `if` on the same condition whose branches are the VJPs of the
//!   linear branches with respect to their tangents.
//! - **Batched** (`vmap`): with a condition the same for every element, one `if` over
//!   batched branches; with a batched condition, both branches batched and each result
//!   chosen per element with `where` (as JAX turns `cond` into `select`).

use crate::emitter::{Emitter, Tan};
use crate::jvp::jvp;
use ad_ir::prim::Prim;
use ad_ir::region::{region_program, restrict, CondOp};
use ad_ir::{Atom, Builder, Program, Shape, Var};
use std::rc::Rc;

/// A branch's JVP with respect to its inputs `active`, and which outputs' tangents are
/// nonzero.
struct BranchJvp<'p> {
    p: &'p Program,
    j: crate::jvp::Jvp,
    nonzero: Vec<bool>,
}

impl BranchJvp<'_> {
    fn new<'a>(p: &'a Program, active: &[usize], nan_safe: bool) -> BranchJvp<'a> {
        let j = jvp(p, active, nan_safe);
        let nonzero = j.tangents.iter().map(Option::is_some).collect();
        BranchJvp { p, j, nonzero }
    }

    /// The branch as a program with the inputs `[inputs.., tangents of active..]`: the
    /// primal outputs when `values`, then the tangents of the outputs `tangents`
    /// (materialised zeros where this branch has none).
    fn program(self, values: bool, tangents: &[usize]) -> Program {
        let mut j = self.j;
        let mut outputs = if values { j.outputs.clone() } else { Vec::new() };
        for &k in tangents {
            let s = j.em.shape(j.outputs[k]);
            outputs.push(j.em.materialize(j.tangents[k], s));
        }
        let mut inputs = j.inputs;
        inputs.extend(&j.tangent_inputs);
        region_program(&self.p.name, j.em.b.vars, inputs, j.em.b.eqns, outputs, self.p.span)
    }
}

/// The JVP of an `if` equation with operands `x` (`[c, args..]`) and their tangents `t`:
/// the primal results and their tangents. With `split`, the primal `if` and a linear `if`
/// over the tangents are separate equations.
pub(crate) fn jvp_cond(
    em: &mut Emitter,
    op: &Rc<CondOp>,
    x: &[Atom],
    t: &[Tan],
    split: bool,
) -> (Vec<Atom>, Vec<Tan>) {
    let active: Vec<usize> = (0..x.len() - 1).filter(|j| t[1 + j].is_some()).collect();
    let n = op.then.outputs.len();
    let jt = BranchJvp::new(&op.then, &active, em.nan_safe);
    let je = BranchJvp::new(&op.els, &active, em.nan_safe);
    let nonzero: Vec<usize> = (0..n).filter(|k| jt.nonzero[*k] || je.nonzero[*k]).collect();
    if nonzero.is_empty() {
        let outs = emit_cond(em, op.clone(), x.to_vec(), false);
        return (outs.into_iter().map(Atom::Var).collect(), vec![None; n]);
    }
    let mut args = x.to_vec();
    for j in &active {
        let s = em.shape(x[1 + j]);
        args.push(em.materialize(t[1 + j], s));
    }
    let (values, tans) = if split {
        let values = emit_cond(em, op.clone(), x.to_vec(), false);
        let lin = CondOp::new(jt.program(false, &nonzero), je.program(false, &nonzero));
        (values, emit_cond(em, lin, args, true))
    } else {
        let both = CondOp::new(jt.program(true, &nonzero), je.program(true, &nonzero));
        let mut outs = emit_cond(em, both, args, false);
        let tans = outs.split_off(n);
        for o in &tans {
            em.mark(*o, true);
        }
        (outs, tans)
    };
    let mut result_tans = vec![None; n];
    for (k, v) in nonzero.iter().zip(tans) {
        result_tans[*k] = Some(Atom::Var(v));
    }
    (values.into_iter().map(Atom::Var).collect(), result_tans)
}

/// Emits an `if` equation, its results marked linear or not.
fn emit_cond(em: &mut Emitter, op: Rc<CondOp>, args: Vec<Atom>, linear: bool) -> Vec<Var> {
    let shapes = op.out_shapes();
    em.emit_multi(Prim::Cond(op), args, &shapes, linear)
}

/// The transpose of a linear `if` equation (operands `x`, of which `lin` are linear) given
/// the cotangents of its results: the cotangent contributions of its linear operands.
pub(crate) fn transpose_cond(
    em: &mut Emitter,
    op: &CondOp,
    x: &[Atom],
    lin: &[bool],
    cts: &[Tan],
) -> Result<Vec<Tan>, String> {
    if lin[0] {
        return Err("internal error: an `if` is transposed in its condition".into());
    }
    let wrt: Vec<usize> = (0..x.len() - 1).filter(|j| lin[1 + j]).collect();
    let seeded: Vec<usize> = (0..cts.len()).filter(|k| cts[*k].is_some()).collect();
    let mut contributions: Vec<Tan> = vec![None; x.len()];
    if wrt.is_empty() || seeded.is_empty() {
        return Ok(contributions);
    }
    let then = branch_transpose(&op.then, &wrt, &seeded)?;
    let els = branch_transpose(&op.els, &wrt, &seeded)?;
    let mut args = vec![x[0]];
    args.extend((0..x.len() - 1).filter(|j| !lin[1 + j]).map(|j| x[1 + j]));
    args.extend(seeded.iter().filter_map(|k| cts[*k]));
    let outs = emit_cond(em, CondOp::new(then, els), args, false);
    for (j, o) in wrt.iter().zip(outs) {
        contributions[1 + j] = Some(Atom::Var(o));
    }
    Ok(contributions)
}

/// The transpose of a branch that is linear in its inputs `wrt`, for cotangents of its
/// outputs `seeded`: a program with the inputs `[other inputs.., cotangents..]` and the
/// cotangents of the inputs `wrt` as outputs.
pub(crate) fn branch_transpose(p: &Program, wrt: &[usize], seeded: &[usize]) -> Result<Program, String> {
    let outputs = seeded.iter().map(|k| p.outputs[*k]).collect();
    let q = restrict(p, p.eqns.len(), outputs, &p.name);
    let v = crate::first_order::vjp_program(&q, wrt, wrt)?;
    let mut b = Builder::new();
    let mut ins = Vec::with_capacity(v.inputs.len());
    let mut inputs = Vec::new();
    for (j, iv) in p.inputs.iter().enumerate() {
        let (shape, name) = (p.var_shape(*iv), p.vars[iv.index()].name.clone());
        if wrt.contains(&j) {
            // A linear map's transpose does not read the values it maps: zeros stand in.
            let z = b.push(Prim::Full(shape, ad_ir::prim::F64(0.0)), [], shape, p.span);
            ins.push(Atom::Var(z));
        } else {
            let nv = b.new_var(shape, name);
            inputs.push(nv);
            ins.push(Atom::Var(nv));
        }
    }
    for k in seeded {
        let s = p.shape(p.outputs[*k]);
        let nv = b.new_var(s, Some("ct".into()));
        inputs.push(nv);
        ins.push(Atom::Var(nv));
    }
    let outs = b.inline(&v, &ins);
    let bars = outs[outs.len() - wrt.len()..].to_vec();
    Ok(region_program(&format!("{}_bar", p.name), b.vars, inputs, b.eqns, bars, p.span))
}

/// The batched `if` for an `if` equation with operands `args` (`flags`: which are
/// batched): its results and which of them are batched.
pub(crate) fn vmap_cond(
    em: &mut Emitter,
    op: &CondOp,
    args: &[Atom],
    flags: &[bool],
    b: usize,
) -> Result<(Vec<Atom>, Vec<bool>), String> {
    let inner = &flags[1..];
    if !flags[0] {
        // Every element takes the same branch: one `if` whose branches agree on which
        // results are batched.
        let (_, ft) = crate::vmap::vmap_body(&op.then, inner, b, None)?;
        let (_, fe) = crate::vmap::vmap_body(&op.els, inner, b, None)?;
        let want: Vec<bool> = ft.iter().zip(&fe).map(|(x, y)| *x || *y).collect();
        let (then, _) = crate::vmap::vmap_body(&op.then, inner, b, Some(&want))?;
        let (els, _) = crate::vmap::vmap_body(&op.els, inner, b, Some(&want))?;
        let outs = emit_cond(em, CondOp::new(then, els), args.to_vec(), false);
        return Ok((outs.into_iter().map(Atom::Var).collect(), want));
    }
    // Elements take different branches: both run, and each element keeps its branch's.
    let (t, ft) = crate::vmap::batch_program(em, &op.then, &args[1..], inner, b)?;
    let (e, fe) = crate::vmap::batch_program(em, &op.els, &args[1..], inner, b)?;
    let mut outs = Vec::with_capacity(t.len());
    for k in 0..t.len() {
        let shape: Shape = op.then.shape(op.then.outputs[k]);
        let chosen = crate::vmap_rules::batch_rule(
            em,
            &Prim::Where,
            &[args[0], t[k], e[k]],
            &[true, ft[k], fe[k]],
            shape,
            b,
        )?;
        let target = crate::vmap::with_batch(shape, b)?;
        let chosen = if em.shape(chosen) == target { chosen } else { em.broadcast_to(chosen, target) };
        outs.push(chosen);
    }
    let n = outs.len();
    Ok((outs, vec![true; n]))
}
