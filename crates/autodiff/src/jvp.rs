//! Forward mode: the JVP transformation of a program, IR to IR.

use crate::emitter::{Emitter, Tan};
use crate::jvp_rules::jvp_rule;
use ad_ir::{Atom, Program, Subst, Var};
use std::rc::Rc;

/// A program's JVP, as equations in an emitter: the primal computation interleaved with the
/// tangent one.
pub struct Jvp {
    pub em: Emitter,
    /// The primal inputs, in the program's input order.
    pub inputs: Vec<Var>,
    /// One tangent input per differentiated input leaf.
    pub tangent_inputs: Vec<Var>,
    pub outputs: Vec<Atom>,
    pub tangents: Vec<Tan>,
}

/// `name_dot` for a value named `name`.
pub fn dot_name(name: Option<&str>) -> Option<Rc<str>> {
    name.map(|n| format!("{n}_dot").into())
}

/// `name_dot` for names that repeat (a long program assigns the same few names again and
/// again): the last name's tangent name is kept and shared, instead of being formatted
/// and allocated for every equation.
#[derive(Default)]
struct DotNames {
    last: Option<(Rc<str>, Option<Rc<str>>)>,
}

impl DotNames {
    fn of(&mut self, name: Option<Rc<str>>) -> Option<Rc<str>> {
        let name = name?;
        match &self.last {
            Some((n, dot)) if Rc::ptr_eq(n, &name) || **n == *name => dot.clone(),
            _ => {
                let dot = dot_name(Some(&name));
                self.last = Some((name, dot.clone()));
                dot
            }
        }
    }
}

/// Differentiates `p` forward with respect to the input leaves `wrt` (indices into
/// `p.inputs`).
pub fn jvp(p: &Program, wrt: &[usize], nan_safe: bool) -> Jvp {
    // Only linearizing a loop can fail (its trip count must be known).
    jvp_with(p, wrt, nan_safe, false).unwrap_or_else(|e| panic!("internal error: {e}"))
}

/// The JVP, with loops linearized (`split`: a recording primal loop and a linear loop over
/// the tangents, as reverse mode needs) or not (one loop over values and tangents).
pub fn jvp_with(p: &Program, wrt: &[usize], nan_safe: bool, split: bool) -> Result<Jvp, String> {
    let mut em = Emitter::new(nan_safe);
    // A JVP has about twice the equations of its program, and reverse mode appends the
    // transpose to the same emitter: room for that up front, so that a large program's
    // equations are not copied each time the vectors would grow (capacity never written
    // is never touched, so it costs address space only).
    em.reserve(4 * p.vars.len(), 4 * p.eqns.len());
    let mut map = Subst::new(p);
    let mut tan: Vec<Tan> = vec![None; p.vars.len()];
    let mut inputs = Vec::new();
    for v in &p.inputs {
        let info = &p.vars[v.index()];
        let nv = em.new_var(info.shape, info.name.clone(), false);
        map.set(*v, Atom::Var(nv));
        inputs.push(nv);
    }
    let mut tangent_inputs = Vec::new();
    for &i in wrt {
        let v = p.inputs[i];
        let info = &p.vars[v.index()];
        let t = em.new_var(info.shape, dot_name(info.name.as_deref()), true);
        // An array without elements carries no derivative: its tangent is a symbolic zero,
        // so that a reduction over it (`sum` of nothing is the constant 0) has none either,
        // in forward mode as in reverse mode, where its cotangent has nothing to hold.
        if info.shape.size() > 0 {
            tan[v.index()] = Some(Atom::Var(t));
        }
        tangent_inputs.push(t);
    }
    let mut dots = DotNames::default();
    for e in &p.eqns {
        em.span = e.span;
        let args = ad_ir::args_of(e.args.iter().map(|a| map.get(*a)));
        if matches!(
            e.prim,
            ad_ir::Prim::Loop(_)
                | ad_ir::Prim::ReverseLoop(_)
                | ad_ir::Prim::Cond(_)
                | ad_ir::Prim::Custom(_)
                | ad_ir::Prim::CustomLin(_)
        ) {
            let ts: Vec<Tan> = e.args.iter().map(|a| a.var().and_then(|v| tan[v.index()])).collect();
            let (outs, tans) = match &e.prim {
                ad_ir::Prim::Loop(op) => crate::loops::jvp_loop(&mut em, op, &args, &ts, split)?,
                ad_ir::Prim::ReverseLoop(op) => crate::loops::jvp_reverse(&mut em, op, &args, &ts, split)?,
                ad_ir::Prim::Cond(op) => crate::conds::jvp_cond(&mut em, op, &args, &ts, split),
                ad_ir::Prim::Custom(op) => crate::custom::jvp_custom(&mut em, op, &args, &ts, split)?,
                ad_ir::Prim::CustomLin(op) => crate::custom::jvp_custom_lin(&mut em, op, &args, &ts)?,
                _ => unreachable!("matched above"),
            };
            for ((v, o), t) in e.outs().zip(outs).zip(tans) {
                let name = p.vars[v.index()].name.clone();
                if let Atom::Var(ov) = o {
                    em.b.vars[ov.index()].name = name.clone();
                }
                if let Some(Atom::Var(tv)) = t {
                    em.b.vars[tv.index()].name = dot_name(name.as_deref());
                }
                map.set(v, o);
                tan[v.index()] = t;
            }
            continue;
        }
        let out = em.emit(e.prim.clone(), args.iter().copied());
        let name = p.vars[e.out.index()].name.clone();
        if let Atom::Var(o) = out {
            em.b.vars[o.index()].name = name.clone();
        }
        map.set(e.out, out);
        let ts: smallvec::SmallVec<[Tan; 3]> =
            e.args.iter().map(|a| a.var().and_then(|v| tan[v.index()])).collect();
        // A primitive of class zero has no derivative: its result's tangent stays symbolic.
        if ts.iter().any(Option::is_some) && e.prim.class() != ad_ir::prim::Class::Zero {
            let before = em.b.vars.len();
            let t = jvp_rule(&mut em, &e.prim, &args, out, &ts);
            if let Some(Atom::Var(tv)) = t {
                if tv.index() >= before && em.b.vars[tv.index()].name.is_none() {
                    em.b.vars[tv.index()].name = dots.of(name);
                }
            }
            tan[e.out.index()] = t.filter(|_| em.shape(out).size() > 0);
        }
    }
    let outputs = p.outputs.iter().map(|a| map.get(*a)).collect();
    let tangents = p.outputs.iter().map(|a| a.var().and_then(|v| tan[v.index()])).collect();
    Ok(Jvp { em, inputs, tangent_inputs, outputs, tangents })
}
