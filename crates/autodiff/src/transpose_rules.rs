//! Transpose rules, for the linear primitives only: given the cotangent of a linear
//! equation's result, the cotangent contributions of its linear operands. Operands that are
//! not linear are coefficients (primal values).

use crate::emitter::{Emitter, Tan};
use ad_ir::prim::{Binary, Class, Prim, Sel, Unary};
use ad_ir::{Atom, Shape};

/// Contributions to each operand's cotangent (`None` for coefficients), or an error naming
/// the primitive if the equation is not linear in its linear operands.
pub fn transpose_rule(
    e: &mut Emitter,
    prim: &Prim,
    x: &[Atom],
    lin: &[bool],
    ct: Atom,
) -> Result<Vec<Tan>, String> {
    let shape = |e: &Emitter, i: usize| e.shape(x[i]);
    let not_linear =
        || format!("internal error: `{}` is not linear in the operands being transposed", prim.name());
    // The primitive's class says in which operands it is linear; a bilinear one is linear in
    // one operand at a time.
    let class = prim.class();
    let n_linear = lin.iter().filter(|l| **l).count();
    if lin.iter().enumerate().any(|(i, l)| *l && !class.linear_in(i))
        || (class == Class::Bilinear && n_linear > 1)
    {
        return Err(not_linear());
    }
    let mut out: Vec<Tan> = vec![None; x.len()];
    match prim {
        Prim::Unary(Unary::Neg) => out[0] = Some(e.un(Unary::Neg, ct)),
        // Every other operation of one operand is declared nonlinear or of class zero in
        // `elementwise.rs`: the class check above has refused it.
        Prim::Unary(_) => return Err(not_linear()),
        Prim::Binary(
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
        ) => return Err(not_linear()),
        Prim::Binary(Binary::Add) | Prim::Binary(Binary::Sub) => {
            for i in 0..2 {
                if lin[i] {
                    let c =
                        if i == 1 && *prim == Prim::Binary(Binary::Sub) { e.un(Unary::Neg, ct) } else { ct };
                    let s = shape(e, i);
                    out[i] = Some(e.sum_to(c, s));
                }
            }
        }
        Prim::Binary(b @ (Binary::Mul | Binary::SafeMul)) => {
            let i = if lin[0] { 0 } else { 1 };
            // `safe_mul` is symmetric; the operand order of the original is kept.
            // A plain product of a linear value in a NaN-safe program transposes to one with
            // strong zeros in the cotangent.
            let c = if *b == Binary::SafeMul && i == 1 {
                e.bin(*b, x[0], ct)
            } else {
                e.mul_linear(ct, x[1 - i], *b == Binary::SafeMul)
            };
            let s = shape(e, i);
            out[i] = Some(e.sum_to(c, s));
        }
        Prim::Binary(Binary::Div) => {
            let c = e.div_linear(ct, x[1]);
            let s = shape(e, 0);
            out[0] = Some(e.sum_to(c, s));
        }
        Prim::Where => {
            let zero = Atom::Lit(0.0);
            for i in 1..3 {
                if lin[i] {
                    let args = if i == 1 { [x[0], ct, zero] } else { [x[0], zero, ct] };
                    let c = e.emit(Prim::Where, args);
                    let s = shape(e, i);
                    out[i] = Some(e.sum_to(c, s));
                }
            }
        }
        Prim::MatMul | Prim::SafeMatMul => {
            let (sa, sb) = (shape(e, 0), shape(e, 1));
            let strong = *prim == Prim::SafeMatMul;
            if lin[0] {
                out[0] = Some(matmul_ct_left(e, ct, x[1], sa, sb, strong));
            } else {
                out[1] = Some(matmul_ct_right(e, ct, x[0], sa, sb, strong));
            }
        }
        // The three convolutions are each other's adjoints (C(x, k), its adjoint in x,
        // Tx(ct, k), and in k, Tk(x, ct)): ⟨C(x, k), g⟩ = ⟨x, Tx(g, k)⟩ = ⟨k, Tk(x, g)⟩.
        Prim::Conv2d(c) => {
            let (sx, sk) = (shape(e, 0), shape(e, 1));
            if lin[0] {
                out[0] = Some(e.emit(Prim::Conv2dTransposeInput(*c, sx), [ct, x[1]]));
            } else {
                out[1] = Some(e.emit(Prim::Conv2dTransposeKernel(*c, sk), [x[0], ct]));
            }
        }
        // Tx(g, k): in g its adjoint is C(·, k); in k, ⟨Tx(g, k), h⟩ = ⟨k, Tk(h, g)⟩.
        Prim::Conv2dTransposeInput(c, _) => {
            let sk = shape(e, 1);
            if lin[0] {
                out[0] = Some(e.emit(Prim::Conv2d(*c), [ct, x[1]]));
            } else {
                out[1] = Some(e.emit(Prim::Conv2dTransposeKernel(*c, sk), [ct, x[0]]));
            }
        }
        // Tk(x, g): in x, ⟨Tk(x, g), h⟩ = ⟨x, Tx(g, h)⟩; in g its adjoint is C(x, ·).
        Prim::Conv2dTransposeKernel(c, _) => {
            let sx = shape(e, 0);
            if lin[0] {
                out[0] = Some(e.emit(Prim::Conv2dTransposeInput(*c, sx), [x[1], ct]));
            } else {
                out[1] = Some(e.emit(Prim::Conv2d(*c), [x[0], ct]));
            }
        }
        Prim::MaxPool2dPick(p) => out[1] = Some(e.emit(Prim::MaxPool2dScatter(*p), [x[0], ct])),
        Prim::MaxPool2dScatter(p) => out[1] = Some(e.emit(Prim::MaxPool2dPick(*p), [x[0], ct])),
        Prim::AvgPool2d(p) => {
            let s = shape(e, 0);
            out[0] = Some(e.emit(Prim::AvgPool2dTranspose(*p, s), [ct]));
        }
        Prim::AvgPool2dTranspose(p, _) => out[0] = Some(e.emit(Prim::AvgPool2d(*p), [ct])),
        // The transpose of solving with a triangle is solving with the transposed triangle.
        Prim::SolveTriangular(lower) => {
            let tt = e.emit(Prim::Transpose, [x[0]]);
            out[1] = Some(e.emit(Prim::SolveTriangular(!*lower), [tt, ct]));
        }
        Prim::Solve | Prim::SafeSolve => {
            let at = e.emit(Prim::Transpose, [x[0]]);
            out[1] = Some(e.solve(at, ct, *prim == Prim::SafeSolve));
        }
        Prim::Transpose => out[0] = Some(e.emit(Prim::Transpose, [ct])),
        Prim::Sum(axes) => {
            let s = shape(e, 0);
            out[0] = Some(e.expand(ct, s, *axes));
        }
        // Each element is summed into every later one: the transpose sums from the end.
        Prim::Cumsum(axis, reverse) => out[0] = Some(e.emit(Prim::Cumsum(*axis, !*reverse), [ct])),
        // A permutation that is its own inverse.
        Prim::Flip(axes) => out[0] = Some(e.emit(Prim::Flip(*axes), [ct])),
        Prim::Permute(perm) => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            out[0] = Some(e.emit(Prim::Permute(inverse), [ct]));
        }
        Prim::Reshape(_) => {
            let s = shape(e, 0);
            out[0] = Some(e.emit(Prim::Reshape(s), [ct]));
        }
        Prim::BroadcastTo(_) => {
            let s = shape(e, 0);
            out[0] = Some(e.sum_to(ct, s));
        }
        Prim::SumTo(_) => {
            let s = shape(e, 0);
            out[0] = Some(e.broadcast_to(ct, s));
        }
        Prim::Index(sels) => {
            let s = shape(e, 0);
            let kept: Vec<usize> = sels
                .iter()
                .map(|sel| match *sel {
                    Sel::At(_) => 1,
                    Sel::Range(a, b) => b - a,
                })
                .collect();
            // The kept dimensions have the input's rank, which a shape always supports.
            let kept = Shape::from_dims(&kept)
                .unwrap_or_else(|| panic!("internal error: an index of shape {s} keeps an unsupported rank"));
            let c = if e.shape(ct) == kept { ct } else { e.emit(Prim::Reshape(kept), [ct]) };
            let widths = sels
                .iter()
                .zip(s.dims())
                .map(|(sel, d)| match *sel {
                    Sel::At(i) => (i, d - i - 1),
                    Sel::Range(a, b) => (a, d - b),
                })
                .collect();
            out[0] = Some(e.emit(Prim::Pad(widths), [c]));
        }
        // The adjoint of picking a part is placing it into zeros; of replacing a part, the
        // cotangent with that part cleared (for the array) and the part itself (for the value).
        // The identity in `x`: its cotangent passes through.
        Prim::Check(_) => out[0] = Some(ct),
        Prim::DynIndex(sel) => {
            let s0 = shape(e, 0);
            let z = e.zeros(s0);
            let mut args = vec![z, ct];
            args.extend_from_slice(&x[1..]);
            out[0] = Some(e.emit(Prim::DynUpdate(sel.clone()), args));
        }
        Prim::DynUpdate(sel) => {
            if lin[0] {
                let z = e.zeros(shape(e, 1));
                let mut args = vec![ct, z];
                args.extend_from_slice(&x[2..]);
                out[0] = Some(e.emit(prim.clone(), args));
            }
            if lin[1] {
                let mut args = vec![ct];
                args.extend_from_slice(&x[2..]);
                out[1] = Some(e.emit(Prim::DynIndex(sel.clone()), args));
            }
        }
        // `transpose.rs` transposes a linear loop as a whole (a reversed loop).
        Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_) | Prim::Custom(_) | Prim::CustomLin(_) => {
            return Err(not_linear())
        }
        Prim::Pad(widths) => {
            let s = shape(e, 0);
            let sels = widths.iter().zip(s.dims()).map(|((lo, _), d)| Sel::Range(*lo, lo + d)).collect();
            out[0] = Some(e.emit(Prim::Index(sels), [ct]));
        }
        Prim::Concat(axis) => {
            let (sa, sb) = (shape(e, 0), shape(e, 1));
            let split = sa.dim(*axis);
            for i in 0..2 {
                if lin[i] {
                    let sels = (0..sa.rank())
                        .map(|k| {
                            if k == *axis {
                                if i == 0 {
                                    Sel::Range(0, split)
                                } else {
                                    Sel::Range(split, split + sb.dim(k))
                                }
                            } else {
                                Sel::Range(0, sa.dim(k))
                            }
                        })
                        .collect();
                    out[i] = Some(e.emit(Prim::Index(sels), [ct]));
                }
            }
        }
        Prim::Stack => {
            let cs = e.shape(ct);
            for (i, l) in lin.iter().enumerate() {
                if *l {
                    let sels = std::iter::once(Sel::At(i))
                        .chain(cs.dims()[1..].iter().map(|d| Sel::Range(0, *d)))
                        .collect();
                    out[i] = Some(e.emit(Prim::Index(sels), [ct]));
                }
            }
        }
        Prim::Amax(_)
        | Prim::Prod(_)
        | Prim::Cholesky
        | Prim::Decomp(_)
        | Prim::LogAbsDet
        | Prim::SignDet
        | Prim::MaxPool2d(_)
        | Prim::Argmax(_)
        | Prim::StopGradient
        | Prim::Full(..)
        | Prim::Eye(_)
        | Prim::Arange(_)
        | Prim::Linspace(..)
        | Prim::OneHot(_)
        | Prim::Const(_) => return Err(not_linear()),
    }
    Ok(out)
}

/// The cotangent of `a` in `a @ b` (for every rank combination), with strong zeros in the
/// cotangent when `strong` is set or the program is NaN-safe.
fn matmul_ct_left(e: &mut Emitter, ct: Atom, b: Atom, sa: Shape, sb: Shape, strong: bool) -> Atom {
    if sa.rank() > 2 || sb.rank() > 2 {
        return batched_ct_left(e, ct, b, sa, sb, strong);
    }
    match (sa.rank(), sb.rank()) {
        // [m,k]@[k,n]: ct @ b'
        (2, 2) => {
            let bt = e.emit(Prim::Transpose, [b]);
            e.matmul(ct, bt, strong)
        }
        // [m,k]@[k] -> [m]: the outer product of ct and b
        (2, 1) => {
            let (col, row) = outer_operands(e, ct, b);
            e.mul_linear(col, row, strong)
        }
        // [k]@[k,n] -> [n]: b @ ct
        (1, 2) => e.matmul(b, ct, strong),
        // [k]@[k] -> []: ct * b
        _ => e.mul_linear(ct, b, strong),
    }
}

/// The cotangent of `b` in `a @ b`, likewise.
fn matmul_ct_right(e: &mut Emitter, ct: Atom, a: Atom, sa: Shape, sb: Shape, strong: bool) -> Atom {
    if sa.rank() > 2 || sb.rank() > 2 {
        return batched_ct_right(e, ct, a, sa, sb, strong);
    }
    match (sa.rank(), sb.rank()) {
        // a' @ ct
        (2, 2) | (2, 1) => {
            let at = e.emit(Prim::Transpose, [a]);
            e.matmul(at, ct, strong)
        }
        // [k]@[k,n]: outer(a, ct)
        (1, 2) => {
            let (col, row) = outer_operands(e, a, ct);
            e.mul_linear(col, row, strong)
        }
        _ => e.mul_linear(ct, a, strong),
    }
}

/// `x` with a size-1 axis inserted before axis `at` (counted from the end when `from_end`).
fn unsqueeze(e: &mut Emitter, x: Atom, at_from_end: usize) -> Atom {
    let s = e.shape(x);
    // Inserting one axis keeps the rank within the limit: the product had one more.
    let t = s.insert_axis(s.rank() - at_from_end, 1).unwrap_or(s);
    e.emit(Prim::Reshape(t), [x])
}

/// The cotangent of `a` in a batched `a @ b` (an operand of rank 3 or more): the products of
/// the matrix case, batched, then summed over the batch axes that `a` was broadcast along.
fn batched_ct_left(e: &mut Emitter, ct: Atom, b: Atom, sa: Shape, sb: Shape, strong: bool) -> Atom {
    let full = match (sa.rank(), sb.rank()) {
        // [.., m, k] @ [k] -> [.., m]: ct[.., :, None] * b.
        (_, 1) => {
            let col = unsqueeze(e, ct, 0);
            e.mul_linear(col, b, strong)
        }
        // [k] @ [.., k, n] -> [.., n]: b @ ct[.., :, None], the column dropped.
        (1, _) => {
            let col = unsqueeze(e, ct, 0);
            let r = e.matmul(b, col, strong);
            let rs = e.shape(r);
            let flat = rs.remove_axis(rs.rank() - 1);
            e.emit(Prim::Reshape(flat), [r])
        }
        // [.., m, k] @ [.., k, n]: ct @ b'.
        _ => {
            let bt = e.emit(Prim::Transpose, [b]);
            e.matmul(ct, bt, strong)
        }
    };
    e.sum_to(full, sa)
}

/// The cotangent of `b` in a batched `a @ b`, likewise.
fn batched_ct_right(e: &mut Emitter, ct: Atom, a: Atom, sa: Shape, sb: Shape, strong: bool) -> Atom {
    // One matrix applied to a whole stack: the sum over the stack of `a' @ ct` is one
    // product of all rows, `rows(a)' @ rows(ct)`.
    if sb.rank() == 2 && sa.rank() > 2 {
        if let (Some(ra), Some(rc)) = (crate::planner::rows_of(e, a), crate::planner::rows_of(e, ct)) {
            let rat = e.emit(Prim::Transpose, [ra]);
            return e.matmul(rat, rc, strong);
        }
    }
    let full = match (sa.rank(), sb.rank()) {
        // [.., m, k] @ [k] -> [.., m]: a' @ ct[.., :, None], the column dropped.
        (_, 1) => {
            let at = e.emit(Prim::Transpose, [a]);
            let col = unsqueeze(e, ct, 0);
            let r = e.matmul(at, col, strong);
            let rs = e.shape(r);
            let flat = rs.remove_axis(rs.rank() - 1);
            e.emit(Prim::Reshape(flat), [r])
        }
        // [k] @ [.., k, n] -> [.., n]: a[:, None] * ct[.., None, :].
        (1, _) => {
            let row = unsqueeze(e, ct, 1);
            let col = e.emit(Prim::Reshape(Shape::matrix(sa.dim(0), 1)), [a]);
            e.mul_linear(row, col, strong)
        }
        // [.., m, k] @ [.., k, n]: a' @ ct.
        _ => {
            let at = e.emit(Prim::Transpose, [a]);
            e.matmul(at, ct, strong)
        }
    };
    e.sum_to(full, sb)
}

/// `u` as a column `[m, 1]` and `v` as a row `[1, n]`: their product broadcasts to the outer
/// product.
fn outer_operands(e: &mut Emitter, u: Atom, v: Atom) -> (Atom, Atom) {
    let (m, n) = (e.shape(u).size(), e.shape(v).size());
    let col = e.emit(Prim::Reshape(Shape::matrix(m, 1)), [u]);
    let row = e.emit(Prim::Reshape(Shape::matrix(1, n)), [v]);
    (col, row)
}
