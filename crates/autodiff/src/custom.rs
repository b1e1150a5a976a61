//! Derivatives and batching of functions with their own derivative rules
//! (`custom_jvp(f, rule)`, DESIGN §10).
//!
//! Forward mode inlines the rule on the primals and their tangents. Reverse mode does the
//! same and then transposes what the rule computes from the tangents, so the rule must be
//! linear in them: each equation computed from a tangent is checked (by its primitive's
//! class) when reverse mode splits the rule, and one that is not linear is a located error
//! naming the operation, instead of a wrong derivative.

use crate::emitter::{Emitter, Tan};
use ad_ir::prim::{Class, Prim};
use ad_ir::region::CustomJvpOp;
use ad_ir::{Atom, Subst};
use std::rc::Rc;

/// The JVP of a `custom_jvp` equation with operands `x` (`[args.., consts..]`) and their
/// tangents `t`: its results and their tangents. With `split` (reverse mode), the rule
/// must be linear in the tangents.
pub(crate) fn jvp_custom(
    em: &mut Emitter,
    op: &Rc<CustomJvpOp>,
    x: &[Atom],
    t: &[Tan],
    split: bool,
) -> Result<(Vec<Atom>, Vec<Tan>), String> {
    let n = op.args;
    let n_out = op.primal.outputs.len();
    if t[n..].iter().any(Option::is_some) {
        return Err(
            "a function with a `custom_jvp` rule reads a value being differentiated that is not one of its \
                    arguments; pass that value as an argument, so that the rule receives its tangent"
                .into(),
        );
    }
    if t[..n].iter().all(Option::is_none) {
        let shapes = op.out_shapes();
        let outs = em.emit_multi(Prim::CustomJvp(op.clone()), x.iter().copied(), &shapes, false);
        return Ok((outs.into_iter().map(Atom::Var).collect(), vec![None; n_out]));
    }
    let mut ins: Vec<Atom> = x[..n].to_vec();
    for (a, ta) in x[..n].iter().zip(&t[..n]) {
        let s = em.shape(*a);
        ins.push(em.materialize(*ta, s));
    }
    ins.extend_from_slice(&x[n..]);
    let rule = &op.rule;
    let mut map = Subst::new(rule);
    for (v, a) in rule.inputs.iter().zip(&ins) {
        map.set(*v, *a);
    }
    for e in &rule.eqns {
        let args: ad_ir::Args = e.args.iter().map(|a| map.get(*a)).collect();
        let linear: Vec<bool> = args.iter().map(|a| em.is_linear(*a)).collect();
        if split && linear.iter().any(|l| *l) && !linear_in(&e.prim, &linear) {
            return Err(format!(
                "reverse mode needs a `custom_jvp` rule linear in its tangents, but this rule applies `{}` to a \
                 tangent",
                e.prim.name()
            ));
        }
        let outs = em.b.copy_eqn(rule, e, args);
        for (v, o) in e.outs().zip(outs) {
            em.mark(o, linear.iter().any(|l| *l));
            map.set(v, Atom::Var(o));
        }
    }
    let outs: Vec<Atom> = rule.outputs.iter().map(|a| map.get(*a)).collect();
    let (values, dots) = outs.split_at(n_out);
    let mut tans = Vec::with_capacity(n_out);
    for d in dots {
        if split && !em.is_linear(*d) && *d != Atom::Lit(0.0) {
            return Err(
                "reverse mode needs a `custom_jvp` rule linear in its tangents, but this rule's `out_dot` \
                        is not computed from them"
                    .into(),
            );
        }
        tans.push(Some(*d).filter(|_| em.is_linear(*d)));
    }
    Ok((values.to_vec(), tans))
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

/// The batched `custom_jvp` equation (operands `args`, `flags`: which are batched): the
/// function and its rule batched alike, every result batched.
pub(crate) fn vmap_custom(
    em: &mut Emitter,
    op: &CustomJvpOp,
    args: &[Atom],
    flags: &[bool],
    b: usize,
) -> Result<(Vec<Atom>, Vec<bool>), String> {
    let n = op.args;
    let n_out = op.primal.outputs.len();
    let (primal, _) = crate::vmap::vmap_body(&op.primal, flags, b, Some(&vec![true; n_out]))?;
    let mut rule_flags = flags[..n].to_vec();
    rule_flags.extend_from_slice(&flags[..n]);
    rule_flags.extend_from_slice(&flags[n..]);
    let (rule, _) = crate::vmap::vmap_body(&op.rule, &rule_flags, b, Some(&vec![true; 2 * n_out]))?;
    let batched = Rc::new(CustomJvpOp { primal, rule, args: n });
    let shapes = batched.out_shapes();
    let outs = em.emit_multi(Prim::CustomJvp(batched), args.iter().copied(), &shapes, false);
    Ok((outs.into_iter().map(Atom::Var).collect(), vec![true; n_out]))
}
