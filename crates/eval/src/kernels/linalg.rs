//! Matrix products on faer, over our own row-major buffers (batched over leading axes as
//! NumPy's `matmul`), and solves.

use super::layout::{broadcast_strides, for_each_row};
use ad_ir::{Array, Shape};
use faer::linalg::matmul::matmul as faer_matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Products with more multiply-adds than this run on all cores. Below it, thread start-up
/// costs more than it saves (measured crossover on this machine: about 4e6).
const PARALLEL_ABOVE: usize = 4_000_000;

/// The dimensions of a matrix product: `m × k` times `k × n`, vectors read as a row (left
/// operand) or a column (right operand); leading axes are batch axes.
pub(crate) fn dims(sa: Shape, sb: Shape) -> (usize, usize, usize) {
    let (ra, rb) = (sa.rank(), sb.rank());
    let (m, k) = if ra == 1 { (1, sa.dim(0)) } else { (sa.dim(ra - 2), sa.dim(ra - 1)) };
    let n = if rb == 1 { 1 } else { sb.dim(rb - 1) };
    (m, k, n)
}

/// NumPy's `matmul`: a matrix product over the last two axes, broadcast over the leading
/// (batch) axes; one faer product per batch element, or one product in all when a stack of
/// matrices meets a single one on its right.
pub fn matmul(a: &Array, b: &Array, out: Shape) -> Array {
    let (sa, sb) = (a.shape(), b.shape());
    let (m, k, n) = dims(sa, sb);
    if sa.rank() <= 2 && sb.rank() <= 2 {
        return Array::new(out, matmul_2d(a.data(), b.data(), m, k, n));
    }
    // `[.., m, k] @ [k, n]`: the stack's rows, one after another, are the rows of a single
    // `[.. * m, k]` matrix, and the result's rows are laid out the same way.
    if sb.rank() <= 2 && sa.rank() > 2 {
        let rows = sa.size() / k.max(1);
        let rows = if k == 0 { sa.dims()[..sa.rank() - 1].iter().product() } else { rows };
        return Array::new(out, matmul_2d(a.data(), b.data(), rows, k, n));
    }
    let mut data = Vec::with_capacity(out.size());
    for (ia, ib) in batch_offsets(sa, sb, out) {
        data.extend(matmul_2d(&a.data()[ia..ia + m * k], &b.data()[ib..ib + k * n], m, k, n));
    }
    Array::new(out, data)
}

/// Where each batch element of a batched product starts in the two operands, in the
/// result's order: the batch axes of each (none for a vector or a matrix) broadcast to the
/// result's.
fn batch_offsets(sa: Shape, sb: Shape, out: Shape) -> Vec<(usize, usize)> {
    let (m, k, n) = dims(sa, sb);
    let batch_of = |s: Shape| Shape::from_dims(&s.dims()[..s.rank().saturating_sub(2)]).unwrap_or_default();
    let core = usize::from(sa.rank() > 1) + usize::from(sb.rank() > 1);
    let batch = Shape::from_dims(&out.dims()[..out.rank() - core]).unwrap_or_default();
    let (stride_a, stride_b) =
        (broadcast_strides(batch_of(sa), batch), broadcast_strides(batch_of(sb), batch));
    // Walk the batch as the rows of `batch × [1]`, with strides in whole matrices.
    let walk = Shape::from_dims(&[batch.dims(), &[1]].concat()).unwrap_or_default();
    let wa: Vec<usize> = stride_a.iter().map(|s| s * m * k).chain([0]).collect();
    let wb: Vec<usize> = stride_b.iter().map(|s| s * k * n).chain([0]).collect();
    let mut offsets = Vec::with_capacity(batch.size());
    for_each_row(walk, &[&wa, &wb], |o| offsets.push((o[0], o[1])));
    offsets
}

/// One `m × k` by `k × n` product of row-major slices.
fn matmul_2d(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    if k == 1 && m * n > 0 {
        return outer(a, b);
    }
    let mut data = vec![0.0; m * n];
    matmul_2d_into(a, b, &mut data, m, k, n);
    data
}

/// [`matmul_2d`] written into `c` (whatever it holds), with the same arithmetic: planned
/// loops (`planned.rs`) call it on their buffer.
pub(crate) fn matmul_2d_into(a: &[f64], b: &[f64], c: &mut [f64], m: usize, k: usize, n: usize) {
    if k == 1 && m * n > 0 {
        // The outer product, element by element as `outer` computes it.
        for (row, &x) in c.chunks_exact_mut(n).zip(a) {
            for (o, &y) in row.iter_mut().zip(b) {
                *o = x * y;
            }
        }
        return;
    }
    c.fill(0.0);
    if m * n * k == 0 {
        return;
    }
    if m * n * k <= 64 * 64 || n == 1 || m == 1 {
        small_matmul(a, b, c, m, k, n);
        return;
    }
    let lhs = MatRef::from_row_major_slice(a, m, k);
    let rhs = MatRef::from_row_major_slice(b, k, n);
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
    let par = if m * n * k > PARALLEL_ABOVE { Par::rayon(0) } else { Par::Seq };
    faer_matmul(dst, Accum::Replace, lhs, rhs, 1.0, par);
    clear_upper_avx();
}

/// `safe_matmul(a, b)`: the product, except that terms with a factor exactly 0 contribute
/// exactly 0 even when the other factor is infinite or NaN. A product whose
/// entries are all finite already has that property (a 0 × ∞ or 0 × NaN term would have
/// made its entry NaN), so the fast product runs first and only non-finite entries are
/// recomputed term by term: the common case costs one scan of the result.
pub fn safe_matmul(a: &Array, b: &Array, out: Shape) -> Array {
    let plain = matmul(a, b, out);
    if plain.data().iter().all(|x| x.is_finite()) {
        return plain;
    }
    // Recompute non-finite entries term by term, batch by batch (the batch strides are
    // those of the product itself).
    let (sa, sb) = (a.shape(), b.shape());
    let (m, k, n) = dims(sa, sb);
    let offsets = if sa.rank() <= 2 && sb.rank() <= 2 { vec![(0, 0)] } else { batch_offsets(sa, sb, out) };
    let (ad, bd) = (a.data(), b.data());
    let mut data = plain.data().to_vec();
    for (idx, entry) in data.iter_mut().enumerate() {
        if entry.is_finite() {
            continue;
        }
        let (batch, within) = (idx / (m * n).max(1), idx % (m * n).max(1));
        let (i, j) = (within / n, within % n);
        let (oa, ob) = offsets[batch];
        *entry = (0..k).map(|p| ad_ir::scalar::safe_mul(ad[oa + i * k + p], bd[ob + p * n + j])).sum();
    }
    Array::new(out, data)
}

/// The outer product of a column and a row (a product with inner dimension 1), written
/// directly: no zeroing of the result first, one vectorised pass per row.
fn outer(col: &[f64], row: &[f64]) -> Vec<f64> {
    let (m, n) = (col.len(), row.len());
    let mut data = Vec::with_capacity(m * n);
    if m * n < PARALLEL_OUTER_ABOVE {
        for &c in col {
            data.extend(row.iter().map(|&r| c * r));
        }
        return data;
    }
    // Large results: rows are written on all cores, straight into the new buffer.
    use rayon::prelude::*;
    data.spare_capacity_mut()[..m * n].par_chunks_mut(n).zip(col.par_iter()).for_each(|(dst, &c)| {
        for (d, &r) in dst.iter_mut().zip(row) {
            d.write(c * r);
        }
    });
    // SAFETY: the loop above initialised all m·n elements (one chunk of n per row).
    unsafe { data.set_len(m * n) };
    data
}

/// Outer products with more elements than this are written in parallel.
const PARALLEL_OUTER_ABOVE: usize = 1 << 16;

/// Row-major product for small or vector cases, where faer's setup dominates.
fn small_matmul(a: &[f64], b: &[f64], c: &mut [f64], m: usize, k: usize, n: usize) {
    if n == 1 {
        for i in 0..m {
            c[i] = dot(&a[i * k..(i + 1) * k], b);
        }
        return;
    }
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let x = a[i * k + p];
            for (o, y) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *o += x * y;
            }
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// faer's kernels leave the upper halves of the AVX registers dirty, after which scalar
/// `tanh`/`exp` from libm run about 10× slower (SSE/AVX transition penalty). Clearing them
/// after each product keeps elementwise kernels fast (here and in `window.rs`).
pub(crate) fn clear_upper_avx() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked just above), which is all vzeroupper needs.
            unsafe { zeroupper() }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zeroupper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// Solves `A X = B` by LU with partial pivoting. A singular `A` gives infinities or NaNs
/// (a value, not an error), as in NumPy.
pub fn solve(a: &Array, b: &Array, out: Shape) -> Array {
    let n = a.shape().dim(0);
    let k = if b.shape().rank() == 1 { 1 } else { b.shape().dim(1) };
    let mut x = b.data().to_vec();
    if n == 0 {
        return Array::new(out, x);
    }
    let lu = MatRef::from_row_major_slice(a.data(), n, n).partial_piv_lu();
    faer::linalg::solvers::Solve::solve_in_place(&lu, MatMut::from_row_major_slice_mut(&mut x, n, k));
    clear_upper_avx();
    Array::new(out, x)
}

/// The lower Cholesky factor of `A` (its lower triangle read), or NaNs where `A` is not
/// positive definite (as JAX and NumPy's `cholesky` without an error).
pub fn cholesky(a: &Array) -> Array {
    let n = a.shape().dim(0);
    let mut out = vec![0.0; n * n];
    match MatRef::from_row_major_slice(a.data(), n, n).llt(faer::Side::Lower) {
        Ok(llt) => {
            let l = llt.L();
            for i in 0..n {
                for j in 0..=i {
                    out[i * n + j] = l[(i, j)];
                }
            }
        }
        Err(_) => out.fill(f64::NAN),
    }
    clear_upper_avx();
    Array::new(a.shape(), out)
}

/// A part of the decomposition of the matrix `a` (`ad_ir::prim::Decomp`).
pub fn decomp(a: &Array, d: ad_ir::prim::Decomp) -> Array {
    use ad_ir::prim::Decomp;
    match d {
        Decomp::EighValues => eigh(a, false),
        Decomp::EighVectors => eigh(a, true),
        Decomp::QrQ => qr(a, true),
        Decomp::QrR => qr(a, false),
        Decomp::SvdS => svd(a, 0),
        Decomp::SvdU => svd(a, 1),
        Decomp::SvdVt => svd(a, 2),
    }
}

/// The eigenvalues (ascending) or the unit eigenvectors (as columns) of the symmetric
/// part `(A + Aᵀ)/2` of `A` (JAX's `eigh` symmetrises its input too), each eigenvector
/// with its largest component positive; NaNs if the decomposition fails.
fn eigh(a: &Array, vectors: bool) -> Array {
    let n = a.shape().dim(0);
    let d = a.data();
    let mut sym = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            sym[i * n + j] = 0.5 * (d[i * n + j] + d[j * n + i]);
        }
    }
    let out_len = if vectors { n * n } else { n };
    let mut out = vec![f64::NAN; out_len];
    if let Ok(evd) = MatRef::from_row_major_slice(&sym, n, n).self_adjoint_eigen(faer::Side::Lower) {
        let (u, s) = (evd.U(), evd.S().column_vector());
        if vectors {
            for j in 0..n {
                let mut big = 0;
                for i in 0..n {
                    if u[(i, j)].abs() > u[(big, j)].abs() {
                        big = i;
                    }
                }
                let sign = if u[(big, j)] < 0.0 { -1.0 } else { 1.0 };
                for i in 0..n {
                    out[i * n + j] = sign * u[(i, j)];
                }
            }
        } else {
            for (i, w) in out.iter_mut().enumerate() {
                *w = s[i];
            }
        }
    }
    clear_upper_avx();
    let shape = if vectors { a.shape() } else { Shape::vector(n) };
    Array::new(shape, out)
}

/// `Q` (with `q`) or `R` of the reduced QR decomposition of an `[m, n]` matrix, `m ≥ n`,
/// signed so that `R`'s diagonal is nonnegative (which makes the decomposition unique when
/// `A` has full rank).
fn qr(a: &Array, q: bool) -> Array {
    let (m, n) = (a.shape().dim(0), a.shape().dim(1));
    let qr = MatRef::from_row_major_slice(a.data(), m, n).qr();
    let (qm, rm) = (qr.compute_thin_Q(), qr.thin_R());
    let sign: Vec<f64> = (0..n).map(|i| if rm[(i, i)] < 0.0 { -1.0 } else { 1.0 }).collect();
    let out = if q {
        (0..m * n).map(|k| sign[k % n] * qm[(k / n, k % n)]).collect()
    } else {
        (0..n * n).map(|k| if k / n <= k % n { sign[k / n] * rm[(k / n, k % n)] } else { 0.0 }).collect()
    };
    clear_upper_avx();
    Array::new(if q { a.shape() } else { Shape::matrix(n, n) }, out)
}

/// One part of the reduced SVD `A = U diag(s) Vt` of an `[m, n]` matrix (`part` 0: the
/// singular values, descending; 1: `U`; 2: `Vt`), each column of `U` with its largest
/// component positive and the matching row of `Vt` signed to agree; NaNs if it fails.
fn svd(a: &Array, part: u8) -> Array {
    let (m, n) = (a.shape().dim(0), a.shape().dim(1));
    let k = m.min(n);
    let shape = match part {
        0 => Shape::vector(k),
        1 => Shape::matrix(m, k),
        _ => Shape::matrix(k, n),
    };
    let Ok(svd) = MatRef::from_row_major_slice(a.data(), m, n).thin_svd() else {
        return Array::new(shape, vec![f64::NAN; shape.size()]);
    };
    let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
    // faer's order is not promised: sort descending, as NumPy's.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| s[j].total_cmp(&s[i]));
    let sign: Vec<f64> = order
        .iter()
        .map(|&j| {
            let big = (0..m).fold(0, |b, i| if u[(i, j)].abs() > u[(b, j)].abs() { i } else { b });
            if m > 0 && u[(big, j)] < 0.0 {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    let out: Vec<f64> = match part {
        0 => order.iter().map(|&j| s[j]).collect(),
        1 => (0..m * k).map(|p| sign[p % k] * u[(p / k, order[p % k])]).collect(),
        _ => (0..k * n).map(|p| sign[p / n] * v[(p % n, order[p / n])]).collect(),
    };
    clear_upper_avx();
    Array::new(shape, out)
}

/// Solves `T X = B` with the lower (or upper) triangle of `T`; a zero on the diagonal
/// gives infinities or NaNs, as in SciPy.
pub fn solve_triangular(t: &Array, b: &Array, lower: bool, out: Shape) -> Array {
    let n = t.shape().dim(0);
    let k = if b.shape().rank() == 1 { 1 } else { b.shape().dim(1) };
    let mut x = b.data().to_vec();
    if n == 0 {
        return Array::new(out, x);
    }
    let tm = MatRef::from_row_major_slice(t.data(), n, n);
    let rhs = MatMut::from_row_major_slice_mut(&mut x, n, k);
    if lower {
        tm.solve_lower_triangular_in_place(rhs);
    } else {
        tm.solve_upper_triangular_in_place(rhs);
    }
    clear_upper_avx();
    Array::new(out, x)
}

/// `(sign, log |det A|)` by LU with partial pivoting: the sign of the pivots' product and
/// of the row permutation, and the sum of the pivots' logarithms. A singular `A` gives
/// `(0, -inf)`.
pub fn slogdet(a: &Array) -> (f64, f64) {
    let n = a.shape().dim(0);
    if n == 0 {
        return (1.0, 0.0);
    }
    let lu = MatRef::from_row_major_slice(a.data(), n, n).partial_piv_lu();
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
    clear_upper_avx();
    (sign, log)
}

/// `safe_solve(A, B)`: `solve(A, B)`, with exact zeros for the columns of B that are all
/// zero, whatever A holds (a singular or non-finite A would otherwise make them NaN).
pub fn safe_solve(a: &Array, b: &Array, out: Shape) -> Array {
    let x = solve(a, b, out);
    let n = a.shape().dim(0);
    let k = if b.shape().rank() == 1 { 1 } else { b.shape().dim(1) };
    let zero_col = |d: &[f64], j: usize| (0..n).all(|i| d[i * k + j] == 0.0);
    let zero_cols: Vec<usize> = (0..k).filter(|&j| zero_col(b.data(), j)).collect();
    if zero_cols.is_empty() || zero_cols.iter().all(|&j| zero_col(x.data(), j)) {
        return x;
    }
    let mut data = x.data().to_vec();
    for j in zero_cols {
        for i in 0..n {
            data[i * k + j] = 0.0;
        }
    }
    Array::new(out, data)
}
