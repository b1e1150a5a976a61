//! Carried values a loop never changes become constants of its body.
//!
//! A carried value whose new value is the value it came in with (the body returns its
//! input unchanged) equals its initial value on every iteration and after the loop. Such
//! values appear in derived loops (a cotangent that the body passes through, a tangent of
//! a counter); as constants they are not copied from iteration to iteration, not recorded
//! in tapes, and a printed program reads as a person would write it (a name the loop does
//! not assign is not carried).

use ad_ir::region::LoopOp;
use ad_ir::{Atom, Prim, Program};
use std::rc::Rc;

pub(crate) fn constant_carries(p: &Program) -> Option<Program> {
    let has = p
        .eqns
        .iter()
        .any(|e| matches!(&e.prim, Prim::Loop(op) if op.replay.is_none() && !invariant(op).is_empty()));
    if !has {
        return None;
    }
    let mut q = p.clone();
    // What each replaced result stands for (everything else stands for itself).
    let mut map: Vec<Option<Atom>> = vec![None; p.vars.len()];
    let get = |map: &[Option<Atom>], a: Atom| match a {
        Atom::Var(v) => map[v.index()].unwrap_or(a),
        lit => lit,
    };
    let mut eqns = Vec::with_capacity(p.eqns.len());
    for e in &p.eqns {
        let mut e = e.clone();
        e.args = e.args.iter().map(|a| get(&map, *a)).collect();
        if let Prim::Loop(op) = &e.prim {
            let fixed = invariant(op);
            if op.replay.is_none() && !fixed.is_empty() {
                let outs: Vec<_> = e.outs().collect();
                let c = op.carries;
                // The results of fixed carries are their initial values.
                for &j in &fixed {
                    map[outs[j].index()] = Some(e.args[2 + j]);
                }
                let kept: Vec<usize> = (0..c).filter(|j| !fixed.contains(j)).collect();
                let reorder = |body: &Program, outputs: bool| {
                    let mut b = body.clone();
                    let carried = &body.inputs[1..1 + c];
                    let mut inputs = vec![body.inputs[0]];
                    inputs.extend(kept.iter().map(|j| carried[*j]));
                    inputs.extend_from_slice(&body.inputs[1 + c..]);
                    inputs.extend(fixed.iter().map(|j| carried[*j]));
                    let params: Vec<_> = std::iter::once(body.params[0].clone())
                        .chain(kept.iter().map(|j| body.params[1 + j].clone()))
                        .chain(body.params[1 + c..].iter().cloned())
                        .chain(fixed.iter().map(|j| body.params[1 + j].clone()))
                        .collect();
                    b.inputs = inputs;
                    b.params = params;
                    if outputs {
                        b.outputs = kept.iter().map(|j| body.outputs[*j]).collect();
                        b.out_tree = ad_ir::Tree::Tuple(vec![ad_ir::Tree::Leaf; kept.len()]);
                        if kept.len() == 1 {
                            b.out_tree = ad_ir::Tree::Leaf;
                        }
                    }
                    b
                };
                let body = reorder(&op.body, true);
                let cond = op.cond.as_ref().map(|c| reorder(c, false));
                let new = LoopOp { body, carries: kept.len(), cond, replay: None };
                let mut args: Vec<Atom> = e.args[..2].to_vec();
                args.extend(kept.iter().map(|j| e.args[2 + j]));
                args.extend_from_slice(&e.args[2 + c..]);
                args.extend(fixed.iter().map(|j| e.args[2 + j]));
                if kept.is_empty() {
                    // Nothing changes: the loop computes nothing the program reads.
                    continue;
                }
                let kept_outs: Vec<_> = kept.iter().map(|j| outs[*j]).collect();
                e.prim = Prim::Loop(Rc::new(new));
                e.args = args.into_iter().collect();
                e.out = kept_outs[0];
                e.extra = kept_outs[1..].into();
            }
        }
        eqns.push(e);
    }
    q.eqns = eqns;
    q.outputs = p.outputs.iter().map(|a| get(&map, *a)).collect();
    Some(q)
}

/// The carried values (positions) that the body returns unchanged.
fn invariant(op: &LoopOp) -> Vec<usize> {
    let b = &op.body;
    (0..op.carries).filter(|j| b.outputs[*j] == Atom::Var(b.inputs[1 + j])).collect()
}
