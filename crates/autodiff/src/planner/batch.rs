//! Batched tangents: a linear program applied to many directions at once. A linear value
//! of shape `s` becomes `[B, *s]`, its values for B directions stacked along a new leading
//! axis, so one pass computes what B separate JVPs (or VJPs) would. Coefficients (primal
//! values) broadcast against the batch as they are, aligned on the right; linear operands
//! of lower rank get size-1 axes after the batch axis so that they align too. Where a
//! batched value would pass the largest rank, `batch_linear` declines and the caller
//! unrolls one pass per direction.

use super::factor::identity;
use crate::emitter::Emitter;
use ad_ir::prim::{Axes, Binary, Prim, Sel, Unary};
use ad_ir::shape::MAX_RANK;
use ad_ir::{Atom, Eqn, Shape, Var};
use std::collections::HashMap;

/// The batched shape of a linear value of shape `s`: `[B, *s]`.
fn batched(b: usize, s: Shape) -> Option<Shape> {
    s.insert_axis(0, b)
}

/// The batch of all basis directions of shape `s`: the identity, `[n, *s]`.
pub fn seed(em: &mut Emitter, s: Shape) -> Option<Atom> {
    let n = s.size();
    let eye = identity(em, n);
    let shape = batched(n, s)?;
    Some(if em.shape(eye) == shape { eye } else { em.emit(Prim::Reshape(shape), [eye]) })
}

/// A batch `[B, *s]` as the matrix `[B, size(s)]`.
pub fn flat(em: &mut Emitter, r: Atom) -> Atom {
    let s = em.shape(r);
    let rows = Shape::matrix(s.dim(0), s.size() / s.dim(0).max(1));
    if s == rows {
        r
    } else {
        em.emit(Prim::Reshape(rows), [r])
    }
}

/// Applies the linear equations `eqns` to a batch: `seeds` gives the batched value of each
/// linear input, `[B, *shape]`. Returns the batched values of `outputs` (`None` entries are
/// zero), or `None` where a batched value would pass the largest rank.
pub fn batch_linear(
    em: &mut Emitter,
    eqns: &[Eqn],
    seeds: &[(Var, Atom)],
    b: usize,
    outputs: &[Var],
) -> Option<Vec<Option<Atom>>> {
    let mut map: HashMap<Var, Atom> = seeds.iter().copied().collect();
    for (n, e) in eqns.iter().enumerate() {
        let lin: Vec<Option<Atom>> =
            e.args.iter().map(|a| a.var().and_then(|v| map.get(&v).copied())).collect();
        if matches!(e.prim, Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_))
            && lin.iter().any(Option::is_some)
        {
            // One loop (or reversal) over all directions, batched as `vmap` batches it. Its
            // results that do not depend on the directions (a primal value a replayed loop
            // recomputes) are not kept: if a later equation reads one, the caller unrolls
            // instead.
            // A linear operand that does not depend on the directions is zero (as the
            // per-primitive rules take it).
            let args: Vec<Atom> = e
                .args
                .iter()
                .zip(&lin)
                .map(|(a, l)| match l {
                    Some(l) => *l,
                    None if em.is_linear(*a) => {
                        let s = em.shape(*a);
                        em.zeros(s)
                    }
                    None => *a,
                })
                .collect();
            let flags: Vec<bool> = lin.iter().map(Option::is_some).collect();
            em.span = e.span;
            let batched_loop = match &e.prim {
                Prim::Loop(op) => crate::vmap_loops::vmap_loop(em, op, &args, &flags, b),
                Prim::ReverseLoop(rev) => crate::vmap_loops::vmap_reverse(em, rev, &args, &flags, b),
                Prim::Cond(op) => crate::conds::vmap_cond(em, op, &args, &flags, b),
                _ => return None,
            };
            let (outs, batched) = batched_loop.ok()?;
            for ((o, r), f) in e.outs().zip(outs).zip(batched) {
                if f {
                    map.insert(o, r);
                } else if reads(&eqns[n + 1..], outputs, o) {
                    return None;
                }
            }
            continue;
        }
        if lin.iter().all(Option::is_none) {
            // No linear operand: a coefficient computed on the way (`W'` in a transposed
            // program) or a constant zero. It is the same for every direction.
            em.b.eqns.push(e.clone());
            continue;
        }
        let out_shape = em.shape(Atom::Var(e.out));
        let target = batched(b, out_shape)?;
        em.span = e.span;
        let r = batch_eqn(em, &e.prim, &e.args, &lin, out_shape, b)?;
        let r = if em.shape(r) == target { r } else { em.broadcast_to(r, target) };
        debug_assert_eq!(em.shape(r), target, "batched `{}`", e.prim.name());
        map.insert(e.out, r);
    }
    Some(outputs.iter().map(|v| map.get(v).copied()).collect())
}

/// Whether an equation of `eqns` or `outputs` reads `v`.
fn reads(eqns: &[Eqn], outputs: &[Var], v: Var) -> bool {
    outputs.contains(&v) || eqns.iter().any(|e| e.args.contains(&Atom::Var(v)))
}

/// A batched value `[B, *s]` with size-1 axes inserted after the batch axis up to rank
/// `rank` (for `s`): it then broadcasts against values of that rank as `s` would.
pub(crate) fn lift(em: &mut Emitter, t: Atom, rank: usize) -> Option<Atom> {
    let s = em.shape(t);
    let inner = s.rank() - 1;
    if inner >= rank {
        return Some(t);
    }
    let dims: Vec<usize> = std::iter::once(s.dim(0))
        .chain(std::iter::repeat_n(1, rank - inner))
        .chain(s.dims()[1..].iter().copied())
        .collect();
    if dims.len() > MAX_RANK {
        return None;
    }
    let shape = Shape::from_dims(&dims)?;
    Some(em.emit(Prim::Reshape(shape), [t]))
}

/// `solve(a, t)` for a batch of right-hand sides `t` (`[B, .., n]` or `[B, .., n, k]`) and
/// one matrix or stack `a` (`[.., n, n]`): the batch moved beside each right-hand side's
/// columns, `[.., n, B * k]`, so that each matrix is factorised once.
pub(crate) fn solve_batch(em: &mut Emitter, prim: &Prim, a: Atom, t: Atom, b: usize) -> Option<Atom> {
    let (sa, ts) = (em.shape(a), em.shape(t));
    let stack = sa.rank() - 2;
    // Axes of `t`: 0 the batch, then the stack's, then `n`, then `k` for matrices.
    let vector = ad_ir::prim::rhs_is_vector(sa, ts.remove_axis(0));
    let n = ts.dim(stack + 1);
    let k = if vector { 1 } else { ts.dim(stack + 2) };
    let mut perm: Vec<usize> = (1..=stack + 1).collect();
    perm.push(0);
    if !vector {
        perm.push(stack + 2);
    }
    let moved_dims: Vec<usize> = perm.iter().map(|&p| ts.dim(p)).collect();
    let flat_dims: Vec<usize> = sa.dims()[..stack].iter().copied().chain([n, b * k]).collect();
    let moved = permute(em, t, perm.clone());
    let flat = reshape(em, moved, Shape::from_dims(&flat_dims)?);
    let solved = match prim {
        Prim::SolveTriangular(_) => em.emit(prim.clone(), [a, flat]),
        _ => em.solve(a, flat, *prim == Prim::SafeSolve),
    };
    let back = reshape(em, solved, Shape::from_dims(&moved_dims)?);
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Some(permute(em, back, inverse))
}

/// `transpose(t, perm)`, written `t'` when it swaps the two axes of a matrix.
fn permute(em: &mut Emitter, t: Atom, perm: Vec<usize>) -> Atom {
    if perm == [1, 0] {
        em.emit(Prim::Transpose, [t])
    } else {
        em.emit(Prim::Permute(perm), [t])
    }
}

/// `reshape(t, s)`, or `t` itself when it already has shape `s`.
fn reshape(em: &mut Emitter, t: Atom, s: Shape) -> Atom {
    if em.shape(t) == s {
        t
    } else {
        em.emit(Prim::Reshape(s), [t])
    }
}

/// `sum_to(t, s)` for a batch `t` of shape `[B, ..]`: the batch axis stays.
pub(crate) fn sum_to_batch(em: &mut Emitter, t: Atom, s: Shape, b: usize) -> Option<Atom> {
    let ts = em.shape(t);
    let lead = ts.rank() - 1 - s.rank();
    let reduced: Vec<usize> =
        (1..ts.rank()).filter(|&i| i <= lead || (s.dim(i - 1 - lead) == 1 && ts.dim(i) != 1)).collect();
    let summed = em.emit(Prim::Sum(Axes::of(&reduced)), [t]);
    Some(em.emit(Prim::Reshape(batched(b, s)?), [summed]))
}

/// `t` of shape `[.., k]` as the matrix `[rows, k]` of all its rows (the leading axes
/// flattened), so that a product by one matrix is a single product.
pub(crate) fn rows_of(em: &mut Emitter, t: Atom) -> Option<Atom> {
    let s = em.shape(t);
    let k = *s.dims().last()?;
    let rows: usize = s.dims()[..s.rank() - 1].iter().product();
    let m = Shape::matrix(rows, k);
    Some(if s == m { t } else { em.emit(Prim::Reshape(m), [t]) })
}

/// The batched value of a constant operand of a linear equation, when it stands for a
/// tangent (zeros the rules materialised): zeros of the batched shape.
fn zero_batch(em: &mut Emitter, a: Atom, b: usize) -> Option<Atom> {
    let s = batched(b, em.shape(a))?;
    Some(em.zeros(s))
}

/// The batched form of one linear equation whose unbatched result has shape `out`; the
/// caller broadcasts it to `[B, *out]` if it is smaller.
fn batch_eqn(
    em: &mut Emitter,
    prim: &Prim,
    x: &[Atom],
    lin: &[Option<Atom>],
    out: Shape,
    b: usize,
) -> Option<Atom> {
    let r = out.rank();
    Some(match prim {
        Prim::Unary(Unary::Neg) => em.un(Unary::Neg, lin[0]?),
        Prim::Binary(op @ (Binary::Add | Binary::Sub)) => match (lin[0], lin[1]) {
            (Some(p), Some(q)) => {
                let (p, q) = (lift(em, p, r)?, lift(em, q, r)?);
                em.bin(*op, p, q)
            }
            // A sum with a constant is affine, not linear: the rules never make one.
            _ => return None,
        },
        Prim::Binary(op @ (Binary::Mul | Binary::SafeMul | Binary::Div)) => {
            let (t, c, t_first) = match (lin[0], lin[1]) {
                (Some(t), None) => (t, x[1], true),
                (None, Some(t)) if *op != Binary::Div => (t, x[0], false),
                _ => return None,
            };
            let t = lift(em, t, r)?;
            if t_first {
                em.bin(*op, t, c)
            } else {
                em.bin(*op, c, t)
            }
        }
        Prim::Where => {
            if lin[0].is_some() {
                return None;
            }
            let zero = Atom::Lit(0.0);
            let a = match lin[1] {
                Some(t) => lift(em, t, r)?,
                None => zero,
            };
            let c = match lin[2] {
                Some(t) => lift(em, t, r)?,
                None => zero,
            };
            em.emit(Prim::Where, [x[0], a, c])
        }
        Prim::MatMul | Prim::SafeMatMul => {
            let strong = *prim == Prim::SafeMatMul;
            let (sa, sb) = (em.shape(x[0]), em.shape(x[1]));
            let result = match (lin[0], lin[1]) {
                // A batch of rows (or of stacks of them) times one matrix is one product:
                // every leading axis becomes a row.
                (Some(t), None) if sb.rank() == 2 => {
                    let rows = rows_of(em, t)?;
                    em.matmul(rows, x[1], strong)
                }
                // One matrix times a batch of vectors: the vectors as rows, `T @ W'`.
                (None, Some(t)) if sb.rank() == 1 && sa.rank() == 2 => {
                    let wt = em.emit(Prim::Transpose, [x[0]]);
                    em.matmul(t, wt, strong)
                }
                // t @ W: a vector t is a batch of rows `[B, 1.., 1, k]`.
                (Some(t), None) if sa.rank() == 1 => {
                    let row = lift(em, t, sb.rank().max(2))?;
                    em.matmul(row, x[1], strong)
                }
                (Some(t), None) => {
                    let t = lift(em, t, r.max(2))?;
                    em.matmul(t, x[1], strong)
                }
                // W @ t: a vector t is a batch of columns `[B, 1.., k, 1]`.
                (None, Some(t)) if sb.rank() == 1 => {
                    if sa.rank() == 1 {
                        // w @ t: one number per direction.
                        em.matmul(t, x[0], strong)
                    } else {
                        let col = lift(em, t, sa.rank() - 1)?;
                        let cs = em.shape(col);
                        let column = cs.insert_axis(cs.rank(), 1)?;
                        let col = em.emit(Prim::Reshape(column), [col]);
                        em.matmul(x[0], col, strong)
                    }
                }
                (None, Some(t)) => {
                    let t = lift(em, t, r.max(2))?;
                    em.matmul(x[0], t, strong)
                }
                _ => return None,
            };
            // Vector operands leave size-1 axes where NumPy drops them: reshape to the
            // batched result.
            let target = batched(b, out)?;
            if em.shape(result) == target || em.shape(result).size() != target.size() {
                result
            } else {
                em.emit(Prim::Reshape(target), [result])
            }
        }
        Prim::Solve | Prim::SafeSolve | Prim::SolveTriangular(_) => {
            if lin[0].is_some() {
                return None;
            }
            solve_batch(em, prim, x[0], lin[1]?, b)?
        }
        Prim::Sum(axes) => em.emit(Prim::Sum(axes.shift(1)), [lin[0]?]),
        Prim::Cumsum(axis, reverse) => em.emit(Prim::Cumsum(axis + 1, *reverse), [lin[0]?]),
        Prim::Flip(axes) => em.emit(Prim::Flip(axes.shift(1)), [lin[0]?]),
        Prim::SumTo(s) => sum_to_batch(em, lin[0]?, *s, b)?,
        Prim::BroadcastTo(s) => {
            let t = lift(em, lin[0]?, s.rank())?;
            em.broadcast_to(t, batched(b, *s)?)
        }
        Prim::Reshape(s) => em.emit(Prim::Reshape(batched(b, *s)?), [lin[0]?]),
        // `x'` swaps the last two axes of a matrix and leaves vectors alone.
        Prim::Transpose => {
            let t = lin[0]?;
            if em.shape(x[0]).rank() < 2 {
                t
            } else {
                em.emit(Prim::Transpose, [t])
            }
        }
        Prim::Permute(p) => {
            let perm: Vec<usize> = std::iter::once(0).chain(p.iter().map(|a| a + 1)).collect();
            em.emit(Prim::Permute(perm), [lin[0]?])
        }
        Prim::StopGradient => lin[0]?,
        // Linear values never pass through a check (its JVP is the tangent itself).
        Prim::Check(_) => return None,
        Prim::Index(sels) => {
            let sels: Vec<Sel> = std::iter::once(Sel::Range(0, b)).chain(sels.iter().copied()).collect();
            em.emit(Prim::Index(sels), [lin[0]?])
        }
        Prim::Pad(w) => {
            let widths: Vec<(usize, usize)> = std::iter::once((0, 0)).chain(w.iter().copied()).collect();
            em.emit(Prim::Pad(widths), [lin[0]?])
        }
        Prim::Concat(axis) => {
            let mut parts = Vec::new();
            for (a, l) in x.iter().zip(lin) {
                parts.push(match l {
                    Some(t) => *t,
                    None => zero_batch(em, *a, b)?,
                });
            }
            em.emit(Prim::Concat(axis + 1), [parts[0], parts[1]])
        }
        // The parts `[B, *s]` become `[B, 1, *s]` and are joined along axis 1.
        Prim::Stack => {
            let mut acc: Option<Atom> = None;
            for (a, l) in x.iter().zip(lin) {
                let part = match l {
                    Some(t) => *t,
                    None => zero_batch(em, *a, b)?,
                };
                let ps = em.shape(part);
                let part = em.emit(Prim::Reshape(ps.insert_axis(1, 1)?), [part]);
                acc = Some(match acc {
                    None => part,
                    Some(prev) => em.emit(Prim::Concat(1), [prev, part]),
                });
            }
            acc?
        }
        // The directions and the images' own batch become one batch of images.
        Prim::Conv2d(_) | Prim::Conv2dTransposeInput(..) if lin[1].is_none() => {
            let t = crate::vmap_rules::merge_batch(em, lin[0]?).ok()?;
            let r = em.emit(crate::vmap_rules::merged_prim(prim, b), [t, x[1]]);
            em.emit(Prim::Reshape(batched(b, out)?), [r])
        }
        // A linear kernel, or the kernel's adjoint (which sums over images): one convolution
        // with a group of channels per direction, the constant operand shared.
        Prim::Conv2d(_) | Prim::Conv2dTransposeInput(..) | Prim::Conv2dTransposeKernel(..) => {
            let args = [lin[0].unwrap_or(x[0]), lin[1].unwrap_or(x[1])];
            crate::vmap_rules::in_groups(em, prim, args, [lin[0].is_some(), lin[1].is_some()], b, out).ok()?
        }
        Prim::AvgPool2d(_) | Prim::AvgPool2dTranspose(..) => {
            let t = crate::vmap_rules::merge_batch(em, lin[0]?).ok()?;
            let r = em.emit(crate::vmap_rules::merged_prim(prim, b), [t]);
            em.emit(Prim::Reshape(batched(b, out)?), [r])
        }
        Prim::MaxPool2dPick(_) | Prim::MaxPool2dScatter(_) => {
            let t = crate::vmap_rules::merge_batch(em, lin[1]?).ok()?;
            let xs = em.shape(x[0]);
            let xb = em.broadcast_to(x[0], batched(b, xs)?);
            let xm = crate::vmap_rules::merge_batch(em, xb).ok()?;
            let r = em.emit(prim.clone(), [xm, t]);
            em.emit(Prim::Reshape(batched(b, out)?), [r])
        }
        // Never linear (their class is zero or nonlinear), so never met here.
        // Every operation of one operand but `neg` is declared nonlinear or of class zero
        // (`elementwise.rs`).
        Prim::Unary(_)
        | Prim::Binary(
            Binary::Pow
            | Binary::Max
            | Binary::Min
            | Binary::Atan2
            | Binary::Hypot
            | Binary::Mod
            | Binary::Logaddexp
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
        | Prim::Prod(_)
        | Prim::Cholesky
        | Prim::Decomp(_)
        | Prim::LogAbsDet
        | Prim::SignDet
        | Prim::MaxPool2d(_)
        | Prim::Argmax(_)
        | Prim::Full(..)
        | Prim::Eye(_)
        | Prim::Arange(_)
        | Prim::Linspace(..)
        | Prim::OneHot(_)
        | Prim::Const(_) => return None,
        // The positions are the same for every direction: as in `vmap` with unbatched
        // positions, the batch axis moves behind the addressed axes and back.
        Prim::DynIndex(sel) => {
            let t = crate::vmap_rules::behind(em, lin[0]?, sel.len());
            let mut args = vec![t];
            args.extend_from_slice(&x[1..]);
            let r = em.emit(prim.clone(), args);
            crate::vmap_rules::to_front(em, r, sel.windows())
        }
        Prim::DynUpdate(sel) => {
            let tx = match lin[0] {
                Some(t) => t,
                None => zero_batch(em, x[0], b)?,
            };
            let tv = match lin[1] {
                Some(t) => t,
                None => zero_batch(em, x[1], b)?,
            };
            let mut args = vec![
                crate::vmap_rules::behind(em, tx, sel.len()),
                crate::vmap_rules::behind(em, tv, sel.windows()),
            ];
            args.extend_from_slice(&x[2..]);
            let r = em.emit(prim.clone(), args);
            crate::vmap_rules::to_front(em, r, sel.len())
        }
        // `batch_linear` batches loops and reversals as a whole.
        Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_) | Prim::Custom(_) | Prim::CustomLin(_) => {
            return None
        }
    })
}
