//! Dead-code elimination and renumbering: keeps the equations the outputs need, and gives
//! variables dense numbers (inputs first, then results in order). It takes the program by
//! value and moves the equations it keeps: the programs it cleans are large and used once.
//! A program numbered as a rewriting pass numbers it (inputs, then results in order: what
//! `dce` is given after every pass) is cleaned in place, without a copy: its variables
//! only move to lower numbers.

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
    if canonical(&p) {
        dce_in_place(p, &keep)
    } else {
        dce_copy(p, &keep)
    }
}

/// `dce` of any program: the kept equations move to new vectors, numbered afresh.
fn dce_copy(p: Program, keep: &[bool]) -> Program {
    let (mut kept, mut kept_vars) = (0, p.inputs.len());
    for (e, _) in p.eqns.iter().zip(keep).filter(|(_, k)| **k) {
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
    for (e, _) in p.eqns.into_iter().zip(keep).filter(|(_, k)| **k) {
        let args = ad_ir::args_of(e.args.iter().map(|a| map(a, &renum)));
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

/// Whether `p`'s variables are numbered densely in order: its inputs first, then the
/// results of its equations in order (every variable is one or the other).
fn canonical(p: &Program) -> bool {
    let k = p.inputs.len();
    if p.inputs.iter().enumerate().any(|(i, v)| v.index() != i) {
        return false;
    }
    let mut next = k;
    for e in &p.eqns {
        for o in e.outs() {
            if o.index() != next {
                return false;
            }
            next += 1;
        }
    }
    next == p.vars.len()
}

/// `dce` of a program whose numbering is canonical. A kept variable's new number is the
/// count of kept variables before it, never more than its old one, so the variables and
/// equations are compacted front to back in their own vectors.
fn dce_in_place(mut p: Program, keep: &[bool]) -> Program {
    if keep.iter().all(|k| *k) {
        // Nothing is dead and the numbering is already the one `dce` gives.
        return p;
    }
    const DEAD: u32 = u32::MAX;
    let mut renum = vec![DEAD; p.vars.len()];
    let mut next = 0u32;
    for v in &p.inputs {
        renum[v.index()] = next;
        next += 1;
    }
    for (e, _) in p.eqns.iter().zip(keep).filter(|(_, k)| **k) {
        for o in e.outs() {
            renum[o.index()] = next;
            next += 1;
        }
    }
    let mut w = 0;
    for (i, n) in renum.iter().enumerate() {
        if *n != DEAD {
            p.vars.swap(w, i);
            w += 1;
        }
    }
    p.vars.truncate(w);
    let map = |a: &mut Atom| {
        if let Atom::Var(v) = a {
            let n = renum[v.index()];
            assert!(n != DEAD, "internal error: dead {v:?} is used");
            *v = Var(n);
        }
    };
    let mut i = 0;
    p.eqns.retain_mut(|e| {
        let kept = keep[i];
        i += 1;
        if kept {
            e.args.iter_mut().for_each(map);
            e.out = Var(renum[e.out.index()]);
            for o in e.extra.iter_mut() {
                *o = Var(renum[o.index()]);
            }
        }
        kept
    });
    for v in &mut p.inputs {
        *v = Var(renum[v.index()]);
    }
    p.outputs.iter_mut().for_each(map);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use ad_ir::prim::{Binary, Prim, Unary};
    use ad_ir::program::ParamDecl;
    use ad_ir::{Builder, Shape, Tree};

    /// A program of two inputs whose equations alternate between live and dead ones (and
    /// a dead equation that reads another dead one), numbered as a rewriting pass numbers
    /// its result; `scramble` numbers it otherwise (an input last), so that only the
    /// copying form applies.
    fn program(scramble: bool) -> Program {
        let s = Shape::from_dims(&[3]).unwrap_or_default();
        let mut b = Builder::new();
        let (x, y) = if scramble {
            let y = b.new_var(s, Some("y".into()));
            (b.new_var(s, Some("x".into())), y)
        } else {
            let x = b.new_var(s, Some("x".into()));
            (x, b.new_var(s, Some("y".into())))
        };
        let sp = ad_syntax::Span::DUMMY;
        let dead1 = b.push(Prim::Unary(Unary::Sin), [Atom::Var(x)], s, sp);
        let live1 = b.push(Prim::Binary(Binary::Mul), [Atom::Var(x), Atom::Var(y)], s, sp);
        b.push(Prim::Unary(Unary::Cos), [Atom::Var(dead1)], s, sp);
        let live2 = b.push(Prim::Binary(Binary::Add), [Atom::Var(live1), Atom::Lit(2.0)], s, sp);
        b.set_name(live2, "z".into());
        b.push(Prim::Unary(Unary::Exp), [Atom::Var(live2)], s, sp);
        let decl = |n: &str| ParamDecl { name: n.into(), tree: Tree::Leaf };
        Program {
            name: "f".into(),
            vars: b.vars,
            inputs: vec![x, y],
            params: vec![decl("x"), decl("y")],
            captures: Vec::new(),
            eqns: b.eqns,
            outputs: vec![Atom::Var(live2), Atom::Var(x), Atom::Lit(1.0)],
            out_tree: Tree::Tuple(vec![Tree::Leaf, Tree::Leaf, Tree::Leaf]),
            span: ad_syntax::Span::DUMMY,
        }
    }

    #[test]
    fn cleaning_in_place_gives_what_the_copy_gives() {
        let p = program(false);
        assert!(canonical(&p));
        let keep = live_eqns(&p);
        assert_eq!(keep, [false, true, false, true, false]);
        let copied = dce_copy(p.clone(), &keep);
        let cleaned = dce(p);
        assert_eq!(ad_ir::print_program(&cleaned), ad_ir::print_program(&copied));
        assert_eq!(cleaned.eqns.len(), 2);
        assert_eq!(cleaned.vars.len(), 4);
        assert!(canonical(&cleaned), "dense numbering after cleaning");
        assert_eq!(cleaned.outputs[0], Atom::Var(Var(3)));
        assert_eq!(cleaned.vars[3].name.as_deref(), Some("z"));
        assert_eq!(cleaned.eqns[1].args[0], Atom::Var(Var(2)));
        // Nothing left to remove: the program comes back as it is.
        let again = dce(cleaned.clone());
        assert_eq!(ad_ir::print_program(&again), ad_ir::print_program(&cleaned));
    }

    #[test]
    fn programs_numbered_otherwise_are_copied() {
        let p = program(true);
        assert!(!canonical(&p));
        let cleaned = dce(p);
        assert!(canonical(&cleaned));
        assert_eq!(cleaned.eqns.len(), 2);
        assert_eq!(cleaned.inputs, [Var(0), Var(1)]);
        assert_eq!(cleaned.vars[0].name.as_deref(), Some("x"));
    }
}
