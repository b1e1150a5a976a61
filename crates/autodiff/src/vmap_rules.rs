//! One batching rule per primitive (`vmap`): how a primitive applies to operands of which
//! some carry a leading batch axis `[B, *s]`. The match is exhaustive, so a new primitive
//! does not compile until it has a rule.
//!
//! Unbatched operands are used as they are: broadcasting aligns shapes on the right, so
//! a batched operand only needs size-1 axes after its batch axis to line up with them
//! (`lift`). Rules return `[B, *out]` or something that broadcasts to it.

use crate::emitter::Emitter;
use crate::planner::{lift, solve_batch, sum_to_batch};
use ad_ir::prim::{Prim, Sel};
use ad_ir::shape::MAX_RANK;
use ad_ir::{Atom, Shape};

type Rule = Result<Atom, String>;

/// The batched result of `prim(args)`, where `batched[i]` says whether `args[i]` has the
/// batch axis; `out` is the unbatched result's shape and `b` the batch size.
pub(crate) fn batch_rule(
    em: &mut Emitter,
    prim: &Prim,
    args: &[Atom],
    batched: &[bool],
    out: Shape,
    b: usize,
) -> Rule {
    let r = out.rank();
    // The unbatched shape of operand `i`.
    let inner = |em: &Emitter, i: usize| -> Shape {
        let s = em.shape(args[i]);
        if batched[i] {
            drop_batch(s)
        } else {
            s
        }
    };
    // Operand `i` with the batch axis on it, whether or not it had one.
    let with_batch = |em: &mut Emitter, i: usize| -> Rule {
        if batched[i] {
            Ok(args[i])
        } else {
            let s = em.shape(args[i]);
            let target = s.insert_axis(0, b).ok_or_else(|| too_deep(s.rank()))?;
            Ok(em.broadcast_to(args[i], target))
        }
    };
    Ok(match prim {
        Prim::Unary(u) => em.un(*u, args[0]),
        Prim::Binary(op) => {
            let x = lift_if(em, args[0], batched[0], r)?;
            let y = lift_if(em, args[1], batched[1], r)?;
            em.bin(*op, x, y)
        }
        Prim::Where => {
            let mut xs = Vec::with_capacity(3);
            for i in 0..3 {
                xs.push(lift_if(em, args[i], batched[i], r)?);
            }
            em.emit(Prim::Where, xs)
        }
        // A batch of rows times one matrix is one product, all leading axes as rows; one
        // matrix times a batch of vectors is the vectors as rows times its transpose.
        Prim::MatMul | Prim::SafeMatMul if !batched[1] && em.shape(args[1]).rank() == 2 => {
            let rows = crate::planner::rows_of(em, args[0]).ok_or("internal error: a scalar in `@`")?;
            let product = em.emit(prim.clone(), [rows, args[1]]);
            em.emit(Prim::Reshape(batched_shape(out, b)?), [product])
        }
        Prim::MatMul | Prim::SafeMatMul
            if !batched[0] && em.shape(args[0]).rank() == 2 && inner(em, 1).rank() == 1 =>
        {
            let wt = em.emit(Prim::Transpose, [args[0]]);
            em.emit(prim.clone(), [args[1], wt])
        }
        Prim::MatMul | Prim::SafeMatMul => {
            let (sa, sb) = (inner(em, 0), inner(em, 1));
            // Vectors as a single row (left) or column (right), as NumPy reads them.
            let core_a = if sa.rank() == 1 { Shape::matrix(1, sa.dim(0)) } else { sa };
            let core_b = if sb.rank() == 1 { Shape::matrix(sb.dim(0), 1) } else { sb };
            // The batched operands get size-1 axes so that their own batch axes (those of
            // a stack of matrices) line up with the other operand's.
            let stack = core_a.rank().max(core_b.rank()) - 2;
            let a = as_stack(em, args[0], batched[0], core_a, stack, b)?;
            let bb = as_stack(em, args[1], batched[1], core_b, stack, b)?;
            let product = em.emit(prim.clone(), [a, bb]);
            let target = out.insert_axis(0, b).ok_or_else(|| too_deep(out.rank()))?;
            em.emit(Prim::Reshape(target), [product])
        }
        // The factorisations take stacks of matrices: the batch is one more leading axis.
        Prim::Cholesky | Prim::LogAbsDet | Prim::SignDet | Prim::Decomp(_) => {
            let a = with_batch(em, 0)?;
            em.emit(prim.clone(), [a])
        }
        Prim::Solve | Prim::SafeSolve | Prim::SolveTriangular(_) => {
            if batched[0] {
                // One system per batch element (each its own factorisation), a stack.
                let rhs = with_batch(em, 1)?;
                em.emit(prim.clone(), [args[0], rhs])
            } else {
                solve_batch(em, prim, args[0], args[1], b).ok_or_else(|| too_deep(out.rank()))?
            }
        }
        Prim::Sum(axes) => em.emit(Prim::Sum(axes.shift(1)), [args[0]]),
        Prim::Amax(axes) => em.emit(Prim::Amax(axes.shift(1)), [args[0]]),
        Prim::Prod(axes) => em.emit(Prim::Prod(axes.shift(1)), [args[0]]),
        Prim::Cumsum(axis, reverse) => em.emit(Prim::Cumsum(axis + 1, *reverse), [args[0]]),
        Prim::Flip(axes) => {
            let x = with_batch(em, 0)?;
            em.emit(Prim::Flip(axes.shift(1)), [x])
        }
        Prim::Argmax(Some(axis)) => em.emit(Prim::Argmax(Some(axis + 1)), [args[0]]),
        Prim::Argmax(None) => {
            // The flat index within each batch element.
            let s = inner(em, 0);
            let rows = em.emit(Prim::Reshape(Shape::matrix(b, s.size())), [args[0]]);
            em.emit(Prim::Argmax(Some(1)), [rows])
        }
        Prim::Reshape(s) => em.emit(Prim::Reshape(batched_shape(*s, b)?), [args[0]]),
        Prim::BroadcastTo(s) => {
            let x = lift_if(em, args[0], true, s.rank())?;
            em.broadcast_to(x, batched_shape(*s, b)?)
        }
        Prim::SumTo(s) => sum_to_batch(em, args[0], *s, b).ok_or_else(|| too_deep(s.rank()))?,
        // `x'` swaps the last two axes of a matrix and leaves vectors alone.
        Prim::Transpose => {
            if inner(em, 0).rank() < 2 {
                args[0]
            } else {
                em.emit(Prim::Transpose, [args[0]])
            }
        }
        Prim::Permute(p) => {
            let perm: Vec<usize> = std::iter::once(0).chain(p.iter().map(|a| a + 1)).collect();
            em.emit(Prim::Permute(perm), [args[0]])
        }
        Prim::StopGradient => em.emit(Prim::StopGradient, [args[0]]),
        // Checked over every element of the batch.
        Prim::Check(m) => {
            let x = with_batch(em, 0)?;
            em.emit(Prim::Check(m.clone()), [x, args[1], args[2]])
        }
        Prim::Index(sels) => {
            let sels: Vec<Sel> = std::iter::once(Sel::Range(0, b)).chain(sels.iter().copied()).collect();
            em.emit(Prim::Index(sels), [args[0]])
        }
        Prim::Pad(w) => {
            let widths: Vec<(usize, usize)> = std::iter::once((0, 0)).chain(w.iter().copied()).collect();
            em.emit(Prim::Pad(widths), [args[0]])
        }
        Prim::Concat(axis) => {
            let (x, y) = (with_batch(em, 0)?, with_batch(em, 1)?);
            em.emit(Prim::Concat(axis + 1), [x, y])
        }
        // The parts `[B, *s]` become `[B, 1, *s]` and are joined along axis 1.
        Prim::Stack => {
            let mut acc: Option<Atom> = None;
            for i in 0..args.len() {
                let part = with_batch(em, i)?;
                let ps = em.shape(part);
                let part =
                    em.emit(Prim::Reshape(ps.insert_axis(1, 1).ok_or_else(|| too_deep(ps.rank()))?), [part]);
                acc = Some(match acc {
                    None => part,
                    Some(prev) => em.emit(Prim::Concat(1), [prev, part]),
                });
            }
            acc.ok_or("internal error: an empty stack is batched")?
        }
        Prim::OneHot(k) => em.emit(Prim::OneHot(*k), [args[0]]),
        // Images: the vmapped batch and the images' own batch become one batch of images.
        Prim::Conv2d(_) | Prim::Conv2dTransposeInput(..) if !batched[1] => {
            let x = merge_batch(em, args[0])?;
            let r = em.emit(merged_prim(prim, b), [x, args[1]]);
            em.emit(Prim::Reshape(batched_shape(out, b)?), [r])
        }
        // A batched kernel (or the kernel's adjoint, which sums over images): one
        // convolution with a group of channels per batch element.
        Prim::Conv2d(_) | Prim::Conv2dTransposeInput(..) | Prim::Conv2dTransposeKernel(..) => {
            in_groups(em, prim, [args[0], args[1]], [batched[0], batched[1]], b, out)?
        }
        Prim::MaxPool2d(_) | Prim::AvgPool2d(_) | Prim::AvgPool2dTranspose(..) => {
            let x = merge_batch(em, args[0])?;
            let r = em.emit(merged_prim(prim, b), [x]);
            em.emit(Prim::Reshape(batched_shape(out, b)?), [r])
        }
        // Positions shared by the batch: the batch axis moves behind the addressed axes, which
        // are then selected for every batch element at once; the batch axis comes back to
        // the front from behind the windows the part keeps.
        Prim::DynIndex(sel) if !batched[1..].iter().any(|b| *b) => {
            let x = behind(em, args[0], sel.len());
            let mut xs = vec![x];
            xs.extend_from_slice(&args[1..]);
            let r = em.emit(prim.clone(), xs);
            to_front(em, r, sel.windows())
        }
        Prim::DynUpdate(sel) if !batched[2..].iter().any(|b| *b) => {
            let x = with_batch(em, 0)?;
            let v = with_batch(em, 1)?;
            let x = behind(em, x, sel.len());
            let v = behind(em, v, sel.windows());
            let mut xs = vec![x, v];
            xs.extend_from_slice(&args[2..]);
            let r = em.emit(prim.clone(), xs);
            to_front(em, r, sel.len())
        }
        Prim::DynIndex(_) | Prim::DynUpdate(_) => per_element(em, prim, args, batched, b, out)?,
        // `vmap.rs` batches loops and reversals as a whole (`vmap_loops.rs`).
        Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_) | Prim::Custom(_) | Prim::CustomLin(_) => {
            return Err("internal error: a loop or `if` reached the per-primitive batching rules".into())
        }
        Prim::MaxPool2dPick(_) | Prim::MaxPool2dScatter(_) => {
            let (x, t) = (with_batch(em, 0)?, with_batch(em, 1)?);
            let (x, t) = (merge_batch(em, x)?, merge_batch(em, t)?);
            let r = em.emit(prim.clone(), [x, t]);
            em.emit(Prim::Reshape(batched_shape(out, b)?), [r])
        }
        // Without operands nothing is batched, so these never reach a rule.
        Prim::Full(..) | Prim::Eye(_) | Prim::Arange(_) | Prim::Linspace(..) | Prim::Const(_) => {
            return Err(format!("internal error: `{}` has no operand to batch", prim.name()))
        }
    })
}

/// A batch `[B, n, *rest]` of image batches as one batch of images `[B * n, *rest]`.
pub(crate) fn merge_batch(em: &mut Emitter, a: Atom) -> Rule {
    let s = em.shape(a);
    let dims: Vec<usize> =
        std::iter::once(s.dim(0) * s.dim(1)).chain(s.dims()[2..].iter().copied()).collect();
    Ok(em.emit(Prim::Reshape(shape(&dims)?), [a]))
}

/// `prim(x, y)` for a convolution or one of its adjoints, with a leading batch axis of size
/// `b` on the operands `batched` says, as one convolution in `b` times as many groups: each
/// operand's batch axis moves into its channels (`[B, n, h, w, c]` becomes
/// `[n, h, w, B·c]`, batch element by batch element; an unbatched operand is broadcast
/// first), so group `(i, j)` is group `j` of batch element `i`; the result's channels are
/// split back the same way. When the image is shared by the whole batch and the convolution
/// has one group, the batch needs no groups: the kernels (or the cotangents) of the batch
/// are the output channels of one convolution of the image, which reads the image once.
/// Returns the batched result, `[B, *out]`.
pub(crate) fn in_groups(
    em: &mut Emitter,
    prim: &Prim,
    args: [Atom; 2],
    batched: [bool; 2],
    b: usize,
    out: Shape,
) -> Rule {
    if b == 0 {
        return Ok(em.zeros(batched_shape(out, 0)?));
    }
    let into_channels = |em: &mut Emitter, a: Atom, is_batched: bool| -> Rule {
        let a = if is_batched {
            a
        } else {
            let s = em.shape(a);
            let target = batched_shape(s, b)?;
            em.broadcast_to(a, target)
        };
        let d = em.shape(a).dims().to_vec();
        if d.len() != 5 {
            return Err(format!("internal error: a batched convolution operand has shape {d:?}"));
        }
        let moved = em.emit(Prim::Permute(vec![1, 2, 3, 0, 4]), [a]);
        Ok(em.emit(Prim::Reshape(shape(&[d[1], d[2], d[3], b * d[4]])?), [moved]))
    };
    let wider = |s: &Shape| -> Result<Shape, String> {
        let d = s.dims();
        shape(&[d[0], d[1], d[2], b * d[3]])
    };
    let (c, shared) = match prim {
        Prim::Conv2d(c) | Prim::Conv2dTransposeKernel(c, _) => (*c, !batched[0] && c.groups == 1),
        Prim::Conv2dTransposeInput(c, _) => (*c, false),
        other => return Err(format!("internal error: `{}` is not a convolution", other.name())),
    };
    let c = if shared {
        c
    } else {
        // The groups multiply the channels, which a shape holds, so a count that does not
        // fit in 32 bits belongs to an array too large to run.
        let groups = u32::try_from(c.groups() * b)
            .map_err(|_| format!("a batched convolution in {} groups is too large", c.groups() * b))?;
        ad_ir::prim::Conv { groups, ..c }
    };
    let x = if shared { args[0] } else { into_channels(em, args[0], batched[0])? };
    let y = into_channels(em, args[1], batched[1])?;
    let grouped = match prim {
        Prim::Conv2dTransposeInput(_, s) => Prim::Conv2dTransposeInput(c, wider(s)?),
        Prim::Conv2dTransposeKernel(_, s) => Prim::Conv2dTransposeKernel(c, wider(s)?),
        _ => Prim::Conv2d(c),
    };
    let r = em.emit(grouped, [x, y]);
    let d = out.dims();
    let split = em.emit(Prim::Reshape(shape(&[d[0], d[1], d[2], b, d[3]])?), [r]);
    Ok(em.emit(Prim::Permute(vec![3, 0, 1, 2, 4]), [split]))
}

/// A window primitive whose static shape (of the images it produces) counts `b` times as
/// many images, for operands merged by [`merge_batch`].
pub(crate) fn merged_prim(prim: &Prim, b: usize) -> Prim {
    let more = |s: &Shape| {
        let mut dims = s.dims().to_vec();
        dims[0] *= b;
        // Same rank, so still a supported shape.
        Shape::from_dims(&dims).unwrap_or(*s)
    };
    match prim {
        Prim::Conv2dTransposeInput(c, s) => Prim::Conv2dTransposeInput(*c, more(s)),
        Prim::AvgPool2dTranspose(p, s) => Prim::AvgPool2dTranspose(*p, more(s)),
        other => other.clone(),
    }
}

/// The shape without its leading batch axis.
fn drop_batch(s: Shape) -> Shape {
    // Removing an axis keeps the rank supported.
    Shape::from_dims(&s.dims()[1..]).unwrap_or_default()
}

fn shape(dims: &[usize]) -> Result<Shape, String> {
    Shape::from_dims(dims).ok_or_else(|| too_deep(dims.len() - 1))
}

fn batched_shape(s: Shape, b: usize) -> Result<Shape, String> {
    s.insert_axis(0, b).ok_or_else(|| too_deep(s.rank()))
}

pub(crate) fn too_deep(rank: usize) -> String {
    format!("`vmap` would make an array of rank {}, but arrays have rank at most {MAX_RANK}", rank + 1)
}

/// A batched operand lifted to `rank` axes after its batch axis (`planner::lift`); an
/// unbatched one as it is.
fn lift_if(em: &mut Emitter, t: Atom, batched: bool, rank: usize) -> Rule {
    if !batched {
        return Ok(t);
    }
    lift(em, t, rank).ok_or_else(|| too_deep(rank))
}

/// A matrix-product operand as a stack of matrices `core` (a vector made a row or a
/// column): when batched, `[B, 1.., *core]` with `stack` axes between the batch axis and
/// the matrix axes.
fn as_stack(em: &mut Emitter, a: Atom, batched: bool, core: Shape, stack: usize, b: usize) -> Rule {
    let target = if batched {
        let ones = stack - (core.rank() - 2);
        let dims: Vec<usize> = std::iter::once(b)
            .chain(std::iter::repeat_n(1, ones))
            .chain(core.dims().iter().copied())
            .collect();
        shape(&dims)?
    } else {
        core
    };
    Ok(if em.shape(a) == target { a } else { em.emit(Prim::Reshape(target), [a]) })
}

/// `x` (batch axis first) with the batch axis moved behind its first `k` unbatched axes.
pub(crate) fn behind(em: &mut Emitter, x: Atom, k: usize) -> Atom {
    if k == 0 {
        return x;
    }
    let rank = em.shape(x).rank();
    let mut perm: Vec<usize> = (1..=k).collect();
    perm.push(0);
    perm.extend(k + 1..rank);
    em.emit(Prim::Permute(perm), [x])
}

/// Moves axis `k` of `x` to the front (the inverse of [`behind`]).
pub(crate) fn to_front(em: &mut Emitter, x: Atom, k: usize) -> Atom {
    if k == 0 {
        return x;
    }
    let rank = em.shape(x).rank();
    let mut perm = vec![k];
    perm.extend((0..rank).filter(|a| *a != k));
    em.emit(Prim::Permute(perm), [x])
}

/// A primitive applied to each batch element separately, the results stacked: for the
/// few primitives whose kernels have no batch of their own (`solve` with a batch of
/// matrices).
fn per_element(em: &mut Emitter, prim: &Prim, args: &[Atom], batched: &[bool], b: usize, out: Shape) -> Rule {
    if b == 0 {
        return Ok(em.zeros(batched_shape(out, 0)?));
    }
    let mut parts = Vec::with_capacity(b);
    for i in 0..b {
        let xs: Vec<Atom> = args
            .iter()
            .zip(batched)
            .map(|(a, is_batched)| {
                if *is_batched {
                    let s = em.shape(*a);
                    let sels: Vec<Sel> = std::iter::once(Sel::At(i))
                        .chain(s.dims()[1..].iter().map(|d| Sel::Range(0, *d)))
                        .collect();
                    em.emit(Prim::Index(sels), [*a])
                } else {
                    *a
                }
            })
            .collect();
        parts.push(em.emit(prim.clone(), xs));
    }
    Ok(em.emit(Prim::Stack, parts))
}
