//! Batched tangents: a linear program applied to many directions at once. A linear value
//! of shape `[n]` (or `[]`) becomes a matrix `[B, n]` (or `[B, 1]`) whose rows are its
//! values for B directions, so one pass computes what B separate JVPs (or VJPs) would.
//! Arrays have rank at most 2, so this works where every linear value is a scalar or a
//! vector; otherwise `batch_linear` declines and the caller unrolls one pass per direction.

use crate::emitter::Emitter;
use ad_ir::prim::{Axes, Binary, Prim, Sel, Unary};
use ad_ir::{Atom, Eqn, Shape, Var};
use std::collections::HashMap;

/// The batched shape of a linear value of shape `s`: `[B, size(s)]`.
fn batched(b: usize, s: Shape) -> Option<Shape> {
    (s.rank() <= 1).then(|| Shape::matrix(b, s.size()))
}

/// Applies the linear equations `eqns` to a batch: `seeds` gives the batched value of each
/// linear input, `[B, size]`. Returns the batched values of `outputs` (`None` entries are
/// zero), or `None` if some linear value has rank 2.
pub fn batch_linear(
    em: &mut Emitter,
    eqns: &[Eqn],
    seeds: &[(Var, Atom)],
    b: usize,
    outputs: &[Var],
) -> Option<Vec<Option<Atom>>> {
    let mut map: HashMap<Var, Atom> = seeds.iter().copied().collect();
    for e in eqns {
        let lin: Vec<Option<Atom>> =
            e.args.iter().map(|a| a.var().and_then(|v| map.get(&v).copied())).collect();
        if lin.iter().all(Option::is_none) {
            // No linear operand: a coefficient computed on the way (`W'` in a transposed
            // program) or a constant zero. It is the same for every direction.
            em.b.eqns.push(e.clone());
            continue;
        }
        let out_shape = em.shape(Atom::Var(e.out));
        let target = batched(b, out_shape)?;
        em.span = e.span;
        let r = batch_eqn(em, &e.prim, &e.args, &lin, target, b)?;
        debug_assert_eq!(em.shape(r), target, "batched `{}`", e.prim.name());
        map.insert(e.out, r);
    }
    Some(outputs.iter().map(|v| map.get(v).copied()).collect())
}

/// The batched value of a constant operand of a linear equation, when it stands for a
/// tangent (zeros the rules materialised): zeros of the batched shape.
fn zero_batch(em: &mut Emitter, a: Atom, b: usize) -> Option<Atom> {
    let s = batched(b, em.shape(a))?;
    Some(em.zeros(s))
}

fn batch_eqn(
    em: &mut Emitter,
    prim: &Prim,
    x: &[Atom],
    lin: &[Option<Atom>],
    target: Shape,
    b: usize,
) -> Option<Atom> {
    // Coefficients (primal values of shape [n] or []) broadcast against the batch [B, n]
    // as they are.
    let fit = |em: &mut Emitter, a: Atom| -> Atom { em.broadcast_to(a, target) };
    Some(match prim {
        Prim::Unary(Unary::Neg) => em.un(Unary::Neg, lin[0]?),
        Prim::Binary(Binary::Add) | Prim::Binary(Binary::Sub) => {
            let bin = if let Prim::Binary(op) = prim { *op } else { Binary::Add };
            match (lin[0], lin[1]) {
                (Some(p), Some(q)) => {
                    let r = em.bin(bin, p, q);
                    fit(em, r)
                }
                // A sum with a constant is affine, not linear: the rules never make one.
                _ => return None,
            }
        }
        Prim::Binary(op @ (Binary::Mul | Binary::SafeMul | Binary::Div)) => {
            let (t, c, t_first) = match (lin[0], lin[1]) {
                (Some(t), None) => (t, x[1], true),
                (None, Some(t)) if *op != Binary::Div => (t, x[0], false),
                _ => return None,
            };
            if em.shape(c).rank() > 1 {
                return None;
            }
            let r = if t_first { em.bin(*op, t, c) } else { em.bin(*op, c, t) };
            fit(em, r)
        }
        Prim::Where => {
            if lin[0].is_some() || em.shape(x[0]).rank() > 1 {
                return None;
            }
            let zero = Atom::Lit(0.0);
            let r = em.emit(Prim::Where, [x[0], lin[1].unwrap_or(zero), lin[2].unwrap_or(zero)]);
            fit(em, r)
        }
        Prim::MatMul | Prim::SafeMatMul => {
            let strong = *prim == Prim::SafeMatMul;
            let (sa, sb) = (em.shape(x[0]), em.shape(x[1]));
            match (lin[0], lin[1], sa.rank(), sb.rank()) {
                // W [m,n] @ t [n]: rows of T become rows of T Wᵀ.
                (None, Some(t), 2, 1) => {
                    let wt = em.emit(Prim::Transpose, [x[0]]);
                    em.matmul(t, wt, strong)
                }
                // t [n] @ W [n,m]
                (Some(t), None, 1, 2) => em.matmul(t, x[1], strong),
                // t [n] @ w [n] or w @ t: a scalar per row.
                (Some(t), None, 1, 1) | (None, Some(t), 1, 1) => {
                    let w = if lin[0].is_some() { x[1] } else { x[0] };
                    let r = em.matmul(t, w, strong);
                    em.emit(Prim::Reshape(Shape::matrix(b, 1)), [r])
                }
                _ => return None,
            }
        }
        Prim::Solve | Prim::SafeSolve => {
            if lin[0].is_some() {
                return None;
            }
            let t = lin[1]?;
            let tt = em.emit(Prim::Transpose, [t]);
            let r = em.solve(x[0], tt, *prim == Prim::SafeSolve);
            em.emit(Prim::Transpose, [r])
        }
        Prim::Sum(_) | Prim::SumTo(_) => {
            let t = lin[0]?;
            if em.shape(t) == target {
                t
            } else {
                let r = em.emit(Prim::Sum(Axes::one(1)), [t]);
                em.emit(Prim::Reshape(target), [r])
            }
        }
        Prim::Permute(_) => return None,
        Prim::BroadcastTo(_) => {
            let t = lin[0]?;
            em.broadcast_to(t, target)
        }
        // Vectors and scalars of equal size share one batched shape.
        Prim::Reshape(_) | Prim::Transpose | Prim::StopGradient => lin[0]?,
        Prim::Index(sels) => {
            let t = lin[0]?;
            let sel = match sels.as_slice() {
                [Sel::At(i)] => Sel::Range(*i, i + 1),
                [s] => *s,
                _ => return None,
            };
            em.emit(Prim::Index(vec![Sel::Range(0, b), sel]), [t])
        }
        Prim::Pad(w) => {
            let t = lin[0]?;
            let (lo, hi) = *w.first()?;
            em.emit(Prim::Pad(vec![(0, 0), (lo, hi)]), [t])
        }
        Prim::Concat(_) | Prim::Stack => {
            let mut parts = Vec::new();
            for (a, l) in x.iter().zip(lin) {
                parts.push(match l {
                    Some(t) => *t,
                    None => zero_batch(em, *a, b)?,
                });
            }
            let mut acc = parts[0];
            for p in &parts[1..] {
                acc = em.emit(Prim::Concat(1), [acc, *p]);
            }
            acc
        }
        // Never linear (their class is zero or nonlinear), so never met here.
        Prim::Unary(
            Unary::Exp
            | Unary::Log
            | Unary::Sin
            | Unary::Cos
            | Unary::Tanh
            | Unary::Sqrt
            | Unary::Abs
            | Unary::Sigmoid
            | Unary::Relu
            | Unary::Sign
            | Unary::Not,
        )
        | Prim::Binary(
            Binary::Pow
            | Binary::Max
            | Binary::Min
            | Binary::Atan2
            | Binary::Lt
            | Binary::Le
            | Binary::Gt
            | Binary::Ge
            | Binary::Eq
            | Binary::Ne
            | Binary::And
            | Binary::Or,
        )
        | Prim::Amax(_)
        | Prim::Argmax(_)
        | Prim::Full(..)
        | Prim::Eye(_)
        | Prim::Arange(_)
        | Prim::Linspace(..)
        | Prim::OneHot(_)
        | Prim::Const(_) => return None,
    })
}
