//! `if` equations, simplified as a whole before the rounds (which keep them as they are):
//!
//! - an `if` on a number is its chosen branch, inlined;
//! - a result nobody reads is dropped from both branches, and a result that both branches
//!   pass through from the same operand is that operand;
//! - operands that are numbers become numbers in the branches (so that `x * 1` folds there),
//!   and operands neither branch reads are dropped;
//! - the branches themselves are simplified.
//!
//! Derived programs need all of these: a JVP branch whose tangent is zero in one branch
//! passes zeros through, and a linear branch recomputes only the primal values its
//! derivative reads.

use ad_ir::region::CondOp;
use ad_ir::{Atom, Builder, Eqn, Prim, Program, Var};

pub(crate) fn simplify_conds(p: &Program) -> Option<Program> {
    if !p.eqns.iter().any(|e| matches!(e.prim, Prim::Cond(_))) {
        return None;
    }
    let mut read = vec![false; p.vars.len()];
    for a in p.eqns.iter().flat_map(|e| e.args.iter()).chain(&p.outputs) {
        if let Atom::Var(v) = a {
            read[v.index()] = true;
        }
    }
    let mut b = Builder::new();
    b.vars = p.vars.clone();
    // What stands for a variable: itself, unless an `if` it came from was inlined or
    // passes an operand through.
    let mut map: Vec<Option<Atom>> = vec![None; p.vars.len()];
    let get = |map: &[Option<Atom>], a: Atom| match a {
        Atom::Var(v) => map[v.index()].unwrap_or(a),
        lit => lit,
    };
    for e in &p.eqns {
        let args: Vec<Atom> = e.args.iter().map(|a| get(&map, *a)).collect();
        let Prim::Cond(op) = &e.prim else {
            b.eqns.push(Eqn { args: args.into_iter().collect(), ..e.clone() });
            continue;
        };
        if let Atom::Lit(c) = args[0] {
            let branch = if c != 0.0 { &op.then } else { &op.els };
            let outs = b.inline(&super::simplify(branch.clone()), &args[1..]);
            for (v, o) in e.outs().zip(outs) {
                map[v.index()] = Some(o);
            }
            continue;
        }
        // The results kept: read somewhere, and not the same operand passed through.
        let mut kept: Vec<(usize, Var)> = Vec::new();
        for (k, v) in e.outs().enumerate() {
            let passed = |q: &Program| q.inputs.iter().position(|i| q.outputs[k] == Atom::Var(*i));
            match (passed(&op.then), passed(&op.els)) {
                (Some(i), Some(j)) if i == j => map[v.index()] = Some(args[1 + i]),
                _ if !read[v.index()] => {}
                _ => kept.push((k, v)),
            }
        }
        if kept.is_empty() {
            continue;
        }
        let outs: Vec<usize> = kept.iter().map(|(k, _)| *k).collect();
        let [then, els] = op.branches().map(|q| branch(q, &outs, &args[1..]));
        // Operands neither branch reads are dropped from both.
        let reads = |q: &Program, i: usize| {
            let v = Atom::Var(q.inputs[i]);
            q.outputs.contains(&v) || q.eqns.iter().any(|e| e.args.contains(&v))
        };
        let used: Vec<bool> = (0..then.inputs.len()).map(|i| reads(&then, i) || reads(&els, i)).collect();
        let [then, els] = [then, els].map(|q| keep_inputs(q, &used));
        let mut new_args: Vec<Atom> = vec![args[0]];
        let operands = args[1..].iter().filter(|a| !matches!(a, Atom::Lit(_)));
        new_args.extend(operands.zip(&used).filter(|(_, u)| **u).map(|(a, _)| *a));
        let vars: Vec<Var> = kept.iter().map(|(_, v)| *v).collect();
        b.eqns.push(Eqn {
            out: vars[0],
            prim: Prim::Cond(CondOp::new(then, els)),
            args: new_args.into_iter().collect(),
            span: e.span,
            extra: vars[1..].into(),
        });
    }
    let outputs = p.outputs.iter().map(|a| get(&map, *a)).collect();
    Some(p.rebuilt(b.vars, p.inputs.clone(), b.eqns, outputs))
}

/// A branch with only the outputs `outs`, the operands that are numbers written into it
/// (and dropped from its inputs), simplified.
fn branch(q: &Program, outs: &[usize], args: &[Atom]) -> Program {
    let mut q = q.clone();
    q.outputs = outs.iter().map(|k| q.outputs[*k]).collect();
    let numbers: Vec<(Var, Atom)> =
        q.inputs.iter().zip(args).filter(|(_, a)| matches!(a, Atom::Lit(_))).map(|(v, a)| (*v, *a)).collect();
    let mut q = super::literals::numbers_into(&q, &numbers);
    q.out_tree = ad_ir::region::flat_tree(q.outputs.len());
    super::simplify(q)
}

/// `q` with only the inputs `keep` (the others are read nowhere in it).
fn keep_inputs(mut q: Program, keep: &[bool]) -> Program {
    q.inputs = q.inputs.iter().zip(keep).filter(|(_, k)| **k).map(|(v, _)| *v).collect();
    q.params = q.params.iter().zip(keep).filter(|(_, k)| **k).map(|(d, _)| d.clone()).collect();
    q
}
