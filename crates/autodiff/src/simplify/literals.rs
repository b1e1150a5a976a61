//! Constants of a loop that are numbers become numbers in its body.
//!
//! A loop reads the values it does not carry as constants, inputs of its body. When such a
//! value is a number (a carried value that never changes, made a constant by
//! `carries.rs`, often is: a seed of 1, a step size), the body's rewrites cannot see it
//! through the input and leave `safe_mul(1, 0.05)` unfolded. Substituting the number folds
//! it, and the printed body reads as a person would write it.

use ad_ir::region::LoopOp;
use ad_ir::{Atom, Prim, Program, Var};
use std::rc::Rc;

pub(crate) fn literal_consts(p: &Program) -> Option<Program> {
    let numbers = |args: &[Atom], op: &LoopOp| -> Vec<usize> {
        let first = 2 + op.carries;
        (0..op.consts()).filter(|k| matches!(args[first + k], Atom::Lit(_))).collect()
    };
    let any = p.eqns.iter().any(
        |e| matches!(&e.prim, Prim::Loop(op) if op.replay.is_none() && !numbers(&e.args, op).is_empty()),
    );
    if !any {
        return None;
    }
    let mut q = p.clone();
    for e in &mut q.eqns {
        let Prim::Loop(op) = &e.prim else { continue };
        let ks = numbers(&e.args, op);
        if op.replay.is_some() || ks.is_empty() {
            continue;
        }
        let first = 1 + op.carries;
        let subst: Vec<(Var, Atom)> =
            ks.iter().map(|k| (op.body.inputs[first + k], e.args[1 + first + k])).collect();
        let strip = |body: &Program| super::simplify(numbers_into(body, &subst));
        let body = strip(&op.body);
        let cond = op.cond.as_ref().map(&strip);
        e.prim = Prim::Loop(Rc::new(LoopOp { body, carries: op.carries, cond, replay: None }));
        let mut k = 0;
        e.args.retain(|_| {
            let drop = ks.iter().any(|j| 1 + first + j == k);
            k += 1;
            !drop
        });
    }
    Some(q)
}

/// `p` with the inputs of `subst` replaced by their numbers and removed from its inputs.
pub(crate) fn numbers_into(p: &Program, subst: &[(Var, Atom)]) -> Program {
    let mut q = p.clone();
    let get = |a: &mut Atom| {
        if let Atom::Var(v) = a {
            if let Some((_, n)) = subst.iter().find(|(w, _)| w == v) {
                *a = *n;
            }
        }
    };
    for eq in &mut q.eqns {
        eq.args.iter_mut().for_each(get);
    }
    q.outputs.iter_mut().for_each(get);
    let keep: Vec<bool> = q.inputs.iter().map(|v| !subst.iter().any(|(w, _)| w == v)).collect();
    q.inputs = q.inputs.iter().zip(&keep).filter(|(_, k)| **k).map(|(v, _)| *v).collect();
    q.params = q.params.iter().zip(&keep).filter(|(_, k)| **k).map(|(d, _)| d.clone()).collect();
    q
}
