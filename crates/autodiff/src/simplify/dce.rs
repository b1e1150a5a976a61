//! Dead-code elimination and renumbering: keeps the equations the outputs need, and gives
//! variables dense numbers (inputs first, then results in order). It takes the program by
//! value and moves the equations it keeps: the programs it cleans are large and used once.

use ad_ir::{Atom, Program, Var, VarInfo};

/// Which equations the outputs need (a backward scan; nothing is copied).
pub fn live_eqns(p: &Program) -> Vec<bool> {
    let mut live = vec![false; p.vars.len()];
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            live[v.index()] = true;
        }
    }
    let mut keep = vec![false; p.eqns.len()];
    for (i, e) in p.eqns.iter().enumerate().rev() {
        if e.outs().any(|o| live[o.index()]) {
            keep[i] = true;
            for a in &e.args {
                if let Atom::Var(v) = a {
                    live[v.index()] = true;
                }
            }
        }
    }
    keep
}

pub fn dce(p: Program) -> Program {
    let keep = live_eqns(&p);
    let (mut kept, mut kept_vars) = (0, p.inputs.len());
    for (e, _) in p.eqns.iter().zip(&keep).filter(|(_, k)| **k) {
        kept += 1;
        kept_vars += 1 + e.extra.len();
    }
    let mut renum: Vec<Option<Var>> = vec![None; p.vars.len()];
    let mut vars: Vec<VarInfo> = Vec::with_capacity(kept_vars);
    let fresh = |v: Var, vars: &mut Vec<VarInfo>, renum: &mut Vec<Option<Var>>| {
        let nv = Var(vars.len() as u32);
        vars.push(p.vars[v.index()].clone());
        renum[v.index()] = Some(nv);
        nv
    };
    let inputs: Vec<Var> = p.inputs.iter().map(|v| fresh(*v, &mut vars, &mut renum)).collect();
    let map = |a: &Atom, renum: &Vec<Option<Var>>| match a {
        Atom::Var(v) => {
            Atom::Var(renum[v.index()].unwrap_or_else(|| panic!("internal error: dead {v:?} is used")))
        }
        lit => *lit,
    };
    let mut eqns = Vec::with_capacity(kept);
    for (e, _) in p.eqns.into_iter().zip(keep).filter(|(_, k)| *k) {
        let args = e.args.iter().map(|a| map(a, &renum)).collect();
        let out = fresh(e.out, &mut vars, &mut renum);
        // A loop is kept whole while any result is read: its body's outputs are fixed.
        let extra = e.extra.iter().map(|o| fresh(*o, &mut vars, &mut renum)).collect();
        eqns.push(ad_ir::Eqn { out, prim: e.prim, args, span: e.span, extra });
    }
    let outputs = p.outputs.iter().map(|a| map(a, &renum)).collect();
    Program {
        name: p.name,
        vars,
        inputs,
        params: p.params,
        captures: p.captures,
        eqns,
        outputs,
        out_tree: p.out_tree,
        span: p.span,
    }
}
