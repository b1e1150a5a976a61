//! Chains: when every linear value feeds exactly one linear step, the Jacobian is a product
//! of local Jacobians F_k ⋯ F_1, and the cheapest bracketing is found by the matrix-chain
//! dynamic programme.

use super::factor::{dense, factor, materialize, mul, product_cost, Factor, Kind, Val};
use crate::transpose::Linearized;
use ad_ir::{Atom, Var};
use std::collections::HashMap;

/// Chains with more factors than this are not bracketed by the dynamic programme, whose cost
/// grows as the cube of the length (2,000 factors take seconds); the planner accumulates
/// them by vertex elimination instead.
pub const MAX_FACTORS: usize = 300;

/// The linear part as a chain of local Jacobians, if it is one: every linear value feeds
/// exactly one linear step, from the tangent input to the tangent output. Steps that change
/// nothing are left out.
pub fn chain(l: &Linearized) -> Option<Vec<Factor>> {
    let em = &l.jvp.em;
    let input = *l.jvp.tangent_inputs.first()?;
    let output = l.jvp.tangents.first().copied().flatten()?.var()?;
    // How often each linear value is used, and by which step (the last one, which is the
    // only one when it is used once).
    let mut uses = HashMap::<Var, (usize, usize)>::new();
    for (i, e) in l.linear.iter().enumerate() {
        for a in &e.args {
            if let Atom::Var(v) = a {
                if em.is_linear(*a) {
                    let u = uses.entry(*v).or_default();
                    *u = (u.0 + 1, i);
                }
            }
        }
    }
    let mut cur = input;
    let mut factors = Vec::new();
    while cur != output {
        let (1, i) = uses.get(&cur).copied()? else { return None };
        let e = &l.linear[i];
        // A step with several results (a loop) is no factor of a chain.
        if !e.extra.is_empty() || e.args.iter().filter(|a| em.is_linear(**a)).count() != 1 {
            return None;
        }
        let (sin, sout) = (em.shape(Atom::Var(cur)), em.shape(Atom::Var(e.out)));
        if sin.rank() > 1 || sout.rank() > 1 {
            return None;
        }
        let k = e.args.iter().position(|a| *a == Atom::Var(cur))?;
        let f = factor(em, e, i, k, sin, sout);
        if !f.is_identity() {
            factors.push(f);
        }
        cur = e.out;
    }
    Some(factors)
}

/// The cheapest bracketing of `f[j] ⋯ f[0]`: its cost and the split table.
pub fn bracket(f: &[Factor]) -> (f64, Vec<Vec<usize>>) {
    let k = f.len();
    let mut cost = vec![vec![0.0f64; k]; k];
    let mut kind = vec![vec![Kind::Scalar; k]; k];
    let mut split = vec![vec![0usize; k]; k];
    for i in 0..k {
        kind[i][i] = f[i].kind;
        cost[i][i] = f[i].materialize_cost();
    }
    for len in 2..=k {
        for i in 0..=k - len {
            let j = i + len - 1;
            cost[i][j] = f64::INFINITY;
            // (f[j] ⋯ f[s+1]) × (f[s] ⋯ f[i])
            for s in i..j {
                let (c, kd) = product_cost(kind[s + 1][j], kind[i][s], f[j].rows, f[s].rows, f[i].cols);
                let total = cost[i][s] + cost[s + 1][j] + c;
                if total < cost[i][j] {
                    cost[i][j] = total;
                    kind[i][j] = kd;
                    split[i][j] = s;
                }
            }
        }
    }
    (cost[0][k - 1], split)
}

/// The bracketing as text, `F1` the factor nearest the input: `(F4 F3) (F2 F1)`.
pub fn describe(split: &[Vec<usize>], i: usize, j: usize) -> String {
    if i == j {
        return format!("F{}", i + 1);
    }
    let s = split[i][j];
    let wrap = |a: usize, b: usize| {
        let t = describe(split, a, b);
        if a == b {
            t
        } else {
            format!("({t})")
        }
    };
    format!("{} {}", wrap(s + 1, j), wrap(i, s))
}

/// Emits the chain's product in the bracketing `split` (from [`bracket`]); the result is
/// `[n_out, n_in]` (`None` when a factor cannot be made).
pub fn emit_chain(l: &mut Linearized, f: &[Factor], split: &[Vec<usize>]) -> Option<Atom> {
    let v = emit_range(l, f, split, 0, f.len() - 1)?;
    Some(dense(&mut l.jvp.em, v))
}

fn emit_range(l: &mut Linearized, f: &[Factor], split: &[Vec<usize>], i: usize, j: usize) -> Option<Val> {
    if i == j {
        return materialize(l, &f[i]);
    }
    let s = split[i][j];
    let left = emit_range(l, f, split, s + 1, j)?;
    let right = emit_range(l, f, split, i, s)?;
    let safe = f[i..=j].iter().any(|x| x.safe);
    Some(mul(&mut l.jvp.em, left, right, safe))
}
