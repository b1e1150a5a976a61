//! `vmap` as a program transformation: the program applied to a batch of inputs at once.
//!
//! Batched parameters get a leading axis of size `B` (`[B, *s]`); every value computed
//! from one is batched the same way, through one batching rule per primitive
//! (`vmap_rules.rs`, and `vmap_loops.rs` for loops); values that depend on no batched input
//! are computed once, as in the original. Outputs that do not depend on a batched input
//! are broadcast along the batch, as JAX does for `out_axes=0`. Moving the mapped axes to
//! the front and back is the caller's business (lowering), so this pass only knows leading
//! batch axes.

use crate::assemble::finish;
use crate::emitter::Emitter;
use crate::vmap_rules::{batch_rule, too_deep};
use ad_ir::region::region_program;
use ad_ir::transform::{Mode, Request};
use ad_ir::{Atom, Prim, Program, Shape, Subst, Var};

/// The program `p` batched along a new leading axis of size `b` in the parameters `wrt`.
pub(crate) fn vmap_program(p: &Program, req: &Request, b: usize) -> Result<Program, String> {
    let ranges = p.param_ranges();
    let leaves: Vec<usize> = req.wrt.iter().flat_map(|&i| ranges[i].clone()).collect();
    let flags: Vec<bool> = (0..p.inputs.len()).map(|k| leaves.contains(&k)).collect();
    let mut em = Emitter::new(false);
    let inputs = batched_inputs(&mut em, p, &flags, b)?;
    let atoms: Vec<Atom> = inputs.iter().map(|v| Atom::Var(*v)).collect();
    let (outs, batched) = batch_program(&mut em, p, &atoms, &flags, b)?;
    let outputs = broadcast_outputs(&mut em, p, outs, &batched, &vec![true; batched.len()], b)?;
    let asm = crate::assemble::Assembly::from(p, &inputs);
    let out = asm.finish(p, em.b, outputs, p.out_tree.clone());
    finish(p, &Request { mode: Mode::Vmap(b), wrt: req.wrt.clone() }, out)
}

/// A loop's body (or condition) batched in the inputs `flags`: a region program with the
/// same inputs (those batched gain the batch axis), and which outputs are batched. Outputs
/// in `want` are batched in any case (broadcast if they do not depend on the batch).
pub(crate) fn vmap_body(
    p: &Program,
    flags: &[bool],
    b: usize,
    want: Option<&[bool]>,
) -> Result<(Program, Vec<bool>), String> {
    let mut em = Emitter::new(false);
    let inputs = batched_inputs(&mut em, p, flags, b)?;
    let atoms: Vec<Atom> = inputs.iter().map(|v| Atom::Var(*v)).collect();
    let (outs, batched) = batch_program(&mut em, p, &atoms, flags, b)?;
    let (outs, batched) = match want {
        Some(w) => {
            let outs = broadcast_outputs(&mut em, p, outs, &batched, w, b)?;
            (outs, batched.iter().zip(w).map(|(x, y)| *x || *y).collect())
        }
        None => (outs, batched),
    };
    Ok((region_program(&p.name, em.b.vars, inputs, em.b.eqns, outs, p.span), batched))
}

/// The batched shape of `s`: `[b, *s]`.
pub(crate) fn with_batch(s: Shape, b: usize) -> Result<Shape, String> {
    s.insert_axis(0, b).ok_or_else(|| too_deep(s.rank()))
}

fn batched_inputs(em: &mut Emitter, p: &Program, flags: &[bool], b: usize) -> Result<Vec<Var>, String> {
    p.inputs
        .iter()
        .zip(flags)
        .map(|(v, f)| {
            let info = &p.vars[v.index()];
            let shape = if *f { with_batch(info.shape, b)? } else { info.shape };
            Ok(em.new_var(shape, info.name.clone(), false))
        })
        .collect()
}

/// Outputs of `p` that `want` batched and are not, broadcast along the batch.
fn broadcast_outputs(
    em: &mut Emitter,
    p: &Program,
    outs: Vec<Atom>,
    batched: &[bool],
    want: &[bool],
    b: usize,
) -> Result<Vec<Atom>, String> {
    outs.into_iter()
        .enumerate()
        .map(|(k, x)| {
            if batched[k] || !want[k] {
                return Ok(x);
            }
            let target = with_batch(p.shape(p.outputs[k]), b)?;
            Ok(em.broadcast_to(x, target))
        })
        .collect()
}

/// Copies `p`'s equations into `em` on the inputs `inputs` (those in `flags` batched),
/// batching each equation with a batched operand: the outputs and which are batched.
pub(crate) fn batch_program(
    em: &mut Emitter,
    p: &Program,
    inputs: &[Atom],
    flags: &[bool],
    b: usize,
) -> Result<(Vec<Atom>, Vec<bool>), String> {
    let mut map = Subst::new(p);
    let mut batched = vec![false; p.vars.len()];
    for ((v, a), f) in p.inputs.iter().zip(inputs).zip(flags) {
        map.set(*v, *a);
        batched[v.index()] = *f;
    }
    for e in &p.eqns {
        em.span = e.span;
        let args: Vec<Atom> = e.args.iter().map(|a| map.get(*a)).collect();
        let flags: Vec<bool> = e.args.iter().map(|a| a.var().is_some_and(|v| batched[v.index()])).collect();
        if let Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_) | Prim::Custom(_) | Prim::CustomLin(_) =
            &e.prim
        {
            let (outs, out_flags) = match &e.prim {
                Prim::Custom(op) if flags.iter().any(|f| *f) => {
                    crate::custom::vmap_custom(em, op, &args, &flags, b)?
                }
                Prim::CustomLin(_) if flags.iter().any(|f| *f) => {
                    return Err("a `custom_vjp` derivative is not batched".into());
                }
                Prim::Cond(op) if flags.iter().any(|f| *f) => {
                    crate::conds::vmap_cond(em, op, &args, &flags, b)?
                }
                Prim::Loop(op) if flags.iter().any(|f| *f) => {
                    crate::vmap_loops::vmap_loop(em, op, &args, &flags, b)?
                }
                Prim::ReverseLoop(rev) if flags.iter().any(|f| *f) => {
                    crate::vmap_loops::vmap_reverse(em, rev, &args, &flags, b)?
                }
                _ => {
                    let outs = em.b.copy_eqn(p, e, args.into_iter().collect());
                    let n = outs.len();
                    (outs.into_iter().map(Atom::Var).collect(), vec![false; n])
                }
            };
            for ((o, r), f) in e.outs().zip(outs).zip(out_flags) {
                map.set(o, r);
                batched[o.index()] = f;
            }
            continue;
        }
        let out = if flags.iter().any(|f| *f) {
            let shape = p.var_shape(e.out);
            let target = with_batch(shape, b)?;
            let r = batch_rule(em, &e.prim, &args, &flags, shape, b)?;
            let r = if em.shape(r) == target { r } else { em.broadcast_to(r, target) };
            if em.shape(r) != target {
                return Err(format!(
                    "internal error: the batching rule of `{}` made {} instead of {target}",
                    e.prim.name(),
                    em.shape(r)
                ));
            }
            batched[e.out.index()] = true;
            r
        } else {
            em.emit(e.prim.clone(), args)
        };
        if let Atom::Var(o) = out {
            if em.b.vars[o.index()].name.is_none() {
                em.b.vars[o.index()].name = p.vars[e.out.index()].name.clone();
            }
        }
        map.set(e.out, out);
    }
    let outs = p.outputs.iter().map(|a| map.get(*a)).collect();
    let flags = p.outputs.iter().map(|a| a.var().is_some_and(|v| batched[v.index()])).collect();
    Ok((outs, flags))
}
