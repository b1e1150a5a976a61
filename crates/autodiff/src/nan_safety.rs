//! When derivatives need strong zeros: the analysis that turns on NaN-safe products
//! (`safe_mul`, `safe_matmul`, `safe_solve`) for a derivation.

use ad_ir::prim::{Binary, Class, Prim};
use ad_ir::{Atom, Program};

/// Derivatives use strong-zero products when some `where` selects between values that
/// depend on the inputs being differentiated: then the unselected branch must contribute
/// exactly zero even where its own derivative is infinite or NaN. (A `where` whose branches
/// carry no derivative, such as one under `stop_gradient`, does not count.)
pub fn needs_nan_safety(p: &Program, wrt_leaves: &[usize]) -> bool {
    // Values computed by primitives without a derivative carry none.
    let blocks = |prim: &Prim| prim.class() == Class::Zero;
    // Which values depend on the inputs being differentiated...
    let mut dep = vec![false; p.vars.len()];
    for &i in wrt_leaves {
        dep[p.inputs[i].index()] = true;
    }
    let depends = |dep: &Vec<bool>, a: &Atom| a.var().is_some_and(|v| dep[v.index()]);
    for e in &p.eqns {
        dep[e.out.index()] = !blocks(&e.prim) && e.args.iter().any(|a| depends(&dep, a));
    }
    // ... and which ones a derivative of the outputs flows back into.
    let mut reaches = vec![false; p.vars.len()];
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            reaches[v.index()] = true;
        }
    }
    for e in p.eqns.iter().rev() {
        if reaches[e.out.index()] && !blocks(&e.prim) {
            for a in &e.args {
                if let Atom::Var(v) = a {
                    reaches[v.index()] = true;
                }
            }
        }
    }
    // A `where` selecting between values that carry derivatives needs strong zeros; so does
    // a strong-zero product that carries derivatives (a first derivative of such a `where`
    // being differentiated again: its zeros must keep cancelling the unselected branch's
    // infinite or NaN coefficients at every order).
    p.eqns.iter().any(|e| {
        reaches[e.out.index()]
            && match e.prim {
                Prim::Where => e.args[1..].iter().any(|a| depends(&dep, a)),
                Prim::Binary(Binary::SafeMul) | Prim::SafeMatMul | Prim::SafeSolve => {
                    e.args.iter().any(|a| depends(&dep, a))
                }
                Prim::Conv2d(c) | Prim::Conv2dTransposeInput(c, _) | Prim::Conv2dTransposeKernel(c, _)
                    if c.strong =>
                {
                    e.args.iter().any(|a| depends(&dep, a))
                }
                _ => false,
            }
    })
}
