//! `vmap` as a program transformation: the program applied to a batch of inputs at once.
//!
//! Batched parameters get a leading axis of size `B` (`[B, *s]`); every value computed
//! from one is batched the same way, through one batching rule per primitive
//! (`vmap_rules.rs`); values that depend on no batched input are computed once, as in the
//! original. Outputs that do not depend on a batched input are broadcast along the batch,
//! as JAX does for `out_axes=0`. Moving the mapped axes to the front and back is the
//! caller's business (lowering), so this pass only knows leading batch axes.

use crate::assemble::finish;
use crate::emitter::Emitter;
use crate::vmap_rules::{batch_rule, too_deep};
use ad_ir::transform::{Mode, Request};
use ad_ir::{Atom, Program, Subst};

/// The program `p` batched along a new leading axis of size `b` in the parameters `wrt`.
pub(crate) fn vmap_program(p: &Program, req: &Request, b: usize) -> Result<Program, String> {
    let mut em = Emitter::new(false);
    let mut map = Subst::new(p);
    let mut batched = vec![false; p.vars.len()];
    let ranges = p.param_ranges();
    let leaves: Vec<usize> = req.wrt.iter().flat_map(|&i| ranges[i].clone()).collect();
    let mut inputs = Vec::new();
    for (k, v) in p.inputs.iter().enumerate() {
        let info = &p.vars[v.index()];
        let shape = if leaves.contains(&k) {
            batched[v.index()] = true;
            info.shape.insert_axis(0, b).ok_or_else(|| too_deep(info.shape.rank()))?
        } else {
            info.shape
        };
        let nv = em.new_var(shape, info.name.clone(), false);
        map.set(*v, Atom::Var(nv));
        inputs.push(nv);
    }
    for e in &p.eqns {
        em.span = e.span;
        let args: Vec<Atom> = e.args.iter().map(|a| map.get(*a)).collect();
        let flags: Vec<bool> = e.args.iter().map(|a| a.var().is_some_and(|v| batched[v.index()])).collect();
        let out = if flags.iter().any(|f| *f) {
            let shape = p.var_shape(e.out);
            let target = shape.insert_axis(0, b).ok_or_else(|| too_deep(shape.rank()))?;
            let r = batch_rule(&mut em, &e.prim, &args, &flags, shape, b)?;
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
    let mut outputs = Vec::with_capacity(p.outputs.len());
    for a in &p.outputs {
        let is_batched = a.var().is_some_and(|v| batched[v.index()]);
        let x = map.get(*a);
        outputs.push(if is_batched {
            x
        } else {
            let s = p.shape(*a);
            let target = s.insert_axis(0, b).ok_or_else(|| too_deep(s.rank()))?;
            em.broadcast_to(x, target)
        });
    }
    let asm = crate::assemble::Assembly::from(p, &inputs);
    let out = asm.finish(p, em.b, outputs, p.out_tree.clone());
    finish(p, &Request { mode: Mode::Vmap(b), wrt: req.wrt.clone() }, out)
}
