//! Dead-code elimination and renumbering: keeps the equations the outputs need, and gives
//! variables dense numbers (inputs first, then results in order).

use ad_ir::{Atom, Program, Var, VarInfo};

pub fn dce(p: &Program) -> Program {
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
    let mut renum: Vec<Option<Var>> = vec![None; p.vars.len()];
    let mut vars: Vec<VarInfo> = Vec::new();
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
    let mut eqns = Vec::new();
    for (i, e) in p.eqns.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let args = e.args.iter().map(|a| map(a, &renum)).collect();
        let outs: Vec<Var> = e.outs().map(|o| fresh(o, &mut vars, &mut renum)).collect();
        // A loop is kept whole while any result is read: its body's outputs are fixed.
        eqns.push(ad_ir::Eqn {
            out: outs[0],
            prim: e.prim.clone(),
            args,
            span: e.span,
            extra: outs[1..].to_vec(),
        });
    }
    let outputs = p.outputs.iter().map(|a| map(a, &renum)).collect();
    Program {
        name: p.name.clone(),
        vars,
        inputs,
        params: p.params.clone(),
        captures: p.captures.clone(),
        eqns,
        outputs,
        out_tree: p.out_tree.clone(),
        span: p.span,
    }
}
