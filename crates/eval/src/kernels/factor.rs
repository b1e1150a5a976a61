//! Solves, determinants and decompositions on faer's factorisations. Each takes one
//! matrix or a stack of them (`[.., m, n]`, NumPy's and JAX's batching over leading axes):
//! the matrices are contiguous in our row-major buffers, so a stack is a loop of the same
//! factorisation over slices, with the right-hand sides and results laid out alike.

use super::linalg::clear_upper_avx;
use ad_ir::prim::Decomp;
use ad_ir::{Array, Shape};
use faer::linalg::solvers::Solve;
use faer::{MatMut, MatRef};

/// The columns of each right-hand side: 1 for a vector per matrix, else `B`'s last
/// dimension (the shape rule in `Prim::infer` checked the rest).
fn rhs_columns(a: Shape, b: Shape) -> usize {
    if ad_ir::prim::rhs_is_vector(a, b) {
        1
    } else {
        b.dim(b.rank() - 1)
    }
}

/// Applies `solve_one(matrix, rhs)` to each matrix of the stack `a` and its block of the
/// right-hand sides `b` (`n × k` each), in place in a copy of `b`.
fn per_rhs(a: &Array, b: &Array, out: Shape, mut solve_one: impl FnMut(MatRef<f64>, MatMut<f64>)) -> Array {
    let (_, n, _) = a.shape().matrix_stack();
    let k = rhs_columns(a.shape(), b.shape());
    let mut x = b.data().to_vec();
    if n * k > 0 {
        for (xs, m) in x.chunks_exact_mut(n * k).zip(a.data().chunks_exact(n * n)) {
            solve_one(MatRef::from_row_major_slice(m, n, n), MatMut::from_row_major_slice_mut(xs, n, k));
        }
        clear_upper_avx();
    }
    Array::new(out, x)
}

/// Solves `A X = B` by LU with partial pivoting, for each matrix of the stack. A singular
/// `A` gives infinities or NaNs (a value, not an error), as in NumPy.
pub fn solve(a: &Array, b: &Array, out: Shape) -> Array {
    per_rhs(a, b, out, |m, rhs| m.partial_piv_lu().solve_in_place(rhs))
}

/// `safe_solve(A, B)`: `solve(A, B)`, with exact zeros for the columns of B that are all
/// zero, whatever A holds (a singular or non-finite A would otherwise make them NaN).
pub fn safe_solve(a: &Array, b: &Array, out: Shape) -> Array {
    let x = solve(a, b, out);
    let (_, n, _) = a.shape().matrix_stack();
    let k = rhs_columns(a.shape(), b.shape());
    if n * k == 0 {
        return x;
    }
    let zero_col = |d: &[f64], j: usize| (0..n).all(|i| d[i * k + j] == 0.0);
    let mut data = None;
    for (block, (bs, xs)) in b.data().chunks_exact(n * k).zip(x.data().chunks_exact(n * k)).enumerate() {
        for j in (0..k).filter(|&j| zero_col(bs, j) && !zero_col(xs, j)) {
            let d = data.get_or_insert_with(|| x.data().to_vec());
            for i in 0..n {
                d[block * n * k + i * k + j] = 0.0;
            }
        }
    }
    match data {
        Some(d) => Array::new(out, d),
        None => x,
    }
}

/// Solves `T X = B` with the lower (or upper) triangle of each `T`; a zero on the diagonal
/// gives infinities or NaNs, as in SciPy.
pub fn solve_triangular(t: &Array, b: &Array, lower: bool, out: Shape) -> Array {
    per_rhs(t, b, out, |m, rhs| {
        if lower {
            m.solve_lower_triangular_in_place(rhs)
        } else {
            m.solve_upper_triangular_in_place(rhs)
        }
    })
}

/// Runs `one(matrix, m, n, result)` for each matrix of the stack `a`, each writing its
/// block of `out`'s elements (which start as NaN, the value of a failed decomposition).
fn per_matrix(a: &Array, out: Shape, mut one: impl FnMut(&[f64], usize, usize, &mut [f64])) -> Array {
    let (count, m, n) = a.shape().matrix_stack();
    let mut data = vec![f64::NAN; out.size()];
    if count > 0 && m * n > 0 {
        let block = out.size() / count;
        for (src, dst) in a.data().chunks_exact(m * n).zip(data.chunks_exact_mut(block.max(1))) {
            one(src, m, n, dst);
        }
        clear_upper_avx();
    }
    Array::new(out, data)
}

/// The lower Cholesky factor of each `A` (its lower triangle read), or NaNs where `A` is
/// not positive definite (as JAX and NumPy's `cholesky` without an error).
pub fn cholesky(a: &Array) -> Array {
    per_matrix(a, a.shape(), |src, _, n, out| {
        if let Ok(llt) = MatRef::from_row_major_slice(src, n, n).llt(faer::Side::Lower) {
            let l = llt.L();
            for i in 0..n {
                for j in 0..n {
                    out[i * n + j] = if j <= i { l[(i, j)] } else { 0.0 };
                }
            }
        }
    })
}

/// A part of the decomposition of each matrix of `a` (`ad_ir::prim::Decomp`), of shape
/// `out`.
pub fn decomp(a: &Array, d: Decomp, out: Shape) -> Array {
    per_matrix(a, out, |src, m, n, dst| match d {
        Decomp::EighValues => eigh(src, n, false, dst),
        Decomp::EighVectors => eigh(src, n, true, dst),
        Decomp::QrQ => qr(src, m, n, true, dst),
        Decomp::QrR => qr(src, m, n, false, dst),
        Decomp::SvdS => svd(src, m, n, 0, dst),
        Decomp::SvdU => svd(src, m, n, 1, dst),
        Decomp::SvdVt => svd(src, m, n, 2, dst),
    })
}

/// The eigenvalues (ascending) or the unit eigenvectors (as columns) of the symmetric
/// part `(A + Aᵀ)/2` of `A` (JAX's `eigh` symmetrises its input too), each eigenvector
/// with its largest component positive; left NaN if the decomposition fails.
fn eigh(d: &[f64], n: usize, vectors: bool, out: &mut [f64]) {
    let mut sym = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            sym[i * n + j] = 0.5 * (d[i * n + j] + d[j * n + i]);
        }
    }
    let Ok(evd) = MatRef::from_row_major_slice(&sym, n, n).self_adjoint_eigen(faer::Side::Lower) else {
        return;
    };
    let (u, s) = (evd.U(), evd.S().column_vector());
    if !vectors {
        for (i, w) in out.iter_mut().enumerate() {
            *w = s[i];
        }
        return;
    }
    for j in 0..n {
        let big = (0..n).fold(0, |b, i| if u[(i, j)].abs() > u[(b, j)].abs() { i } else { b });
        let sign = if u[(big, j)] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            out[i * n + j] = sign * u[(i, j)];
        }
    }
}

/// `Q` (with `q`, `[m, k]`) or `R` (`[k, n]`) of the reduced QR decomposition of an
/// `[m, n]` matrix, `k = min(m, n)`, signed so that `R`'s diagonal is nonnegative (which
/// makes the decomposition unique when the first `k` columns are independent).
fn qr(a: &[f64], m: usize, n: usize, q: bool, out: &mut [f64]) {
    let k = m.min(n);
    let qr = MatRef::from_row_major_slice(a, m, n).qr();
    let (qm, rm) = (qr.compute_thin_Q(), qr.thin_R());
    let sign: Vec<f64> = (0..k).map(|i| if rm[(i, i)] < 0.0 { -1.0 } else { 1.0 }).collect();
    if q {
        for (p, o) in out.iter_mut().enumerate() {
            *o = sign[p % k] * qm[(p / k, p % k)];
        }
    } else {
        for (p, o) in out.iter_mut().enumerate() {
            let (i, j) = (p / n, p % n);
            *o = if i <= j { sign[i] * rm[(i, j)] } else { 0.0 };
        }
    }
}

/// One part of the reduced SVD `A = U diag(s) Vt` of an `[m, n]` matrix (`part` 0: the
/// singular values, descending; 1: `U`; 2: `Vt`), each column of `U` with its largest
/// component positive and the matching row of `Vt` signed to agree; left NaN if it fails.
fn svd(a: &[f64], m: usize, n: usize, part: u8, out: &mut [f64]) {
    let k = m.min(n);
    let Ok(svd) = MatRef::from_row_major_slice(a, m, n).thin_svd() else {
        return;
    };
    let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
    // faer's order is not promised: sort descending, as NumPy's.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| s[j].total_cmp(&s[i]));
    let sign: Vec<f64> = order
        .iter()
        .map(|&j| {
            let big = (0..m).fold(0, |b, i| if u[(i, j)].abs() > u[(b, j)].abs() { i } else { b });
            if u[(big, j)] < 0.0 {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    for (p, o) in out.iter_mut().enumerate() {
        *o = match part {
            0 => s[order[p]],
            1 => sign[p % k] * u[(p / k, order[p % k])],
            _ => sign[p / n] * v[(p % n, order[p / n])],
        };
    }
}

/// `log |det A|` (with `log`) or the sign of `det A` for each matrix of the stack.
pub fn slogdet(a: &Array, log: bool, out: Shape) -> Array {
    let (_, n, _) = a.shape().matrix_stack();
    let data = if n == 0 {
        vec![if log { 0.0 } else { 1.0 }; out.size()]
    } else {
        let parts: Vec<f64> = a
            .data()
            .chunks_exact(n * n)
            .map(|m| {
                let (sign, logabs) = slogdet_one(m, n);
                if log {
                    logabs
                } else {
                    sign
                }
            })
            .collect();
        clear_upper_avx();
        parts
    };
    Array::new(out, data)
}

/// `(sign, log |det A|)` by LU with partial pivoting: the sign of the pivots' product and
/// of the row permutation, and the sum of the pivots' logarithms. A singular `A` gives
/// `(0, -inf)`.
fn slogdet_one(a: &[f64], n: usize) -> (f64, f64) {
    let lu = MatRef::from_row_major_slice(a, n, n).partial_piv_lu();
    let u = lu.U();
    let (mut sign, mut log) = (1.0, 0.0);
    for i in 0..n {
        let p = u[(i, i)];
        if p == 0.0 {
            return (0.0, f64::NEG_INFINITY);
        }
        if p.is_nan() {
            return (f64::NAN, f64::NAN);
        }
        sign *= p.signum();
        log += p.abs().ln();
    }
    // The permutation's parity: each cycle of length c is c - 1 transpositions.
    let (fwd, _) = lu.P().arrays();
    let mut seen = vec![false; n];
    for start in 0..n {
        let mut len = 0;
        let mut i = start;
        while !seen[i] {
            seen[i] = true;
            i = fwd[i];
            len += 1;
        }
        if len > 0 && len % 2 == 0 {
            sign = -sign;
        }
    }
    (sign, log)
}
