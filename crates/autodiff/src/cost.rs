//! A cost model in multiply-adds: what a program's arithmetic costs, ignoring data movement
//! (reshapes, broadcasts, indexing) and constants. Used to compare ways of computing a
//! derivative.

use ad_ir::{Atom, Prim, Program};

/// Estimated multiply-adds of one run of `p`.
pub fn madds(p: &Program) -> f64 {
    p.eqns.iter().map(|e| eqn_madds(p, &e.prim, &e.args, e.out)).sum()
}

fn eqn_madds(p: &Program, prim: &Prim, args: &[Atom], out: ad_ir::Var) -> f64 {
    let size = |a: &Atom| p.shape(*a).size() as f64;
    let out_size = p.var_shape(out).size() as f64;
    match prim {
        Prim::Unary(_) | Prim::Binary(_) | Prim::Where => out_size,
        Prim::MatMul => {
            let (a, b) = (p.shape(args[0]), p.shape(args[1]));
            let (m, k) = if a.rank() == 1 { (1, a.dim(0)) } else { (a.dim(0), a.dim(1)) };
            let n = if b.rank() == 1 { 1 } else { b.dim(1) };
            (m * k * n) as f64
        }
        Prim::Solve => {
            let n = p.shape(args[0]).dim(0) as f64;
            let k = if p.shape(args[1]).rank() == 1 { 1.0 } else { p.shape(args[1]).dim(1) as f64 };
            n * n * n / 3.0 + n * n * k
        }
        Prim::Sum(_) | Prim::Amax(_) | Prim::Argmax(_) | Prim::SumTo(_) => size(&args[0]),
        _ => 0.0,
    }
}
