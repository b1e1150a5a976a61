//! Reverse mode by linearize + transpose: the JVP's equations are split into the primal
//! part (no tangent inputs) and the linear part, and the linear part is walked backwards
//! with the transpose rules. Cotangents that meet are summed.

use crate::emitter::{Emitter, Tan};
use crate::jvp::{jvp_with, Jvp};
use crate::transpose_rules::transpose_rule;
use ad_ir::{Atom, Eqn, Program, Var};
use std::rc::Rc;

/// A JVP split by partial evaluation: `jvp.em` holds only the primal equations (which also
/// compute every coefficient the linear part needs); `linear` holds the rest.
pub struct Linearized {
    pub jvp: Jvp,
    pub linear: Vec<Eqn>,
}

pub fn linearize(p: &Program, wrt: &[usize], nan_safe: bool) -> Result<Linearized, String> {
    let mut j = jvp_with(p, wrt, nan_safe, true)?;
    // The primal equations stay in the emitter's vector (closing up, in order); the linear
    // ones move, in order, to a vector of their own, sized once.
    let is_linear = |e: &Eqn| e.outs().any(|o| j.em.linear[o.index()]);
    let mut eqns = std::mem::take(&mut j.em.b.eqns);
    let mut linear = Vec::with_capacity(eqns.iter().filter(|e| is_linear(e)).count());
    linear.extend(eqns.extract_if(.., |e| is_linear(e)));
    j.em.b.eqns = eqns;
    Ok(Linearized { jvp: j, linear })
}

/// `name_bar` for the cotangent of a value named `name_dot` (or `name`).
pub fn bar_name(name: Option<&str>) -> Option<Rc<str>> {
    name.map(|n| format!("{}_bar", n.strip_suffix("_dot").unwrap_or(n)).into())
}

/// Appends to `l.jvp.em` the transpose of the linear part: the cotangents of `wanted` (linear
/// inputs) given cotangents `seeds` for linear results.
pub fn transpose(l: &mut Linearized, seeds: &[(Tan, Atom)], wanted: &[Var]) -> Result<Vec<Tan>, String> {
    let em: &mut Emitter = &mut l.jvp.em;
    let mut ct: Vec<Tan> = vec![None; em.b.vars.len()];
    for (t, c) in seeds {
        if let Some(Atom::Var(v)) = t {
            if em.is_linear(Atom::Var(*v)) {
                ct[v.index()] = Some(em.accumulate(ct[v.index()], *c));
            }
        }
    }
    for e in l.linear.iter().rev() {
        let linear = |em: &Emitter| -> Vec<bool> { e.args.iter().map(|a| em.is_linear(*a)).collect() };
        let contributions = if let ad_ir::Prim::Loop(_)
        | ad_ir::Prim::ReverseLoop(_)
        | ad_ir::Prim::Cond(_)
        | ad_ir::Prim::CustomLin(_) = &e.prim
        {
            // A loop, an `if` or a `custom_vjp` derivative has a cotangent per result and
            // is transposed as a whole.
            let cts: Vec<Tan> = e.outs().map(|o| ct[o.index()].take()).collect();
            if cts.iter().all(Option::is_none) {
                continue;
            }
            em.span = e.span;
            match &e.prim {
                ad_ir::Prim::Loop(op) => crate::loops::transpose_loop(em, op, &e.args, &linear(em), &cts)?,
                ad_ir::Prim::ReverseLoop(op) => {
                    crate::loops::transpose_reverse(em, op, &e.args, &linear(em), &cts)?
                }
                ad_ir::Prim::Cond(op) => crate::conds::transpose_cond(em, op, &e.args, &linear(em), &cts)?,
                ad_ir::Prim::CustomLin(op) => {
                    crate::custom::transpose_custom_lin(em, op, &e.args, &linear(em), &cts)?
                }
                _ => unreachable!("matched above"),
            }
        } else {
            let Some(c) = ct[e.out.index()].take() else { continue };
            name_cotangent(em, c, e.out);
            em.span = e.span;
            transpose_rule(em, &e.prim, &e.args, &linear(em), c)?
        };
        for (a, contribution) in e.args.iter().zip(contributions) {
            if let (Atom::Var(v), Some(c)) = (a, contribution) {
                if ct.len() < em.b.vars.len() {
                    ct.resize(em.b.vars.len(), None);
                }
                ct[v.index()] = Some(em.accumulate(ct[v.index()], c));
            }
        }
    }
    Ok(wanted
        .iter()
        .map(|v| {
            let c = ct.get(v.index()).copied().flatten();
            if let Some(c) = c {
                name_cotangent(em, c, *v);
            }
            c
        })
        .collect())
}

/// Names a cotangent after the value it belongs to, if it is a fresh unnamed variable.
fn name_cotangent(em: &mut Emitter, c: Atom, of: Var) {
    if let Atom::Var(cv) = c {
        if em.b.vars[cv.index()].name.is_none() {
            em.b.vars[cv.index()].name = bar_name(em.b.vars[of.index()].name.as_deref());
        }
    }
}
