//! Matrix products on faer, over our own row-major buffers (batched over leading axes as
//! NumPy's `matmul`); solves and decompositions are in `factor.rs`.

use super::layout::{broadcast_strides, for_each_row};
use super::simd::wide_fn;
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
    let offsets = batch_offsets(sa, sb, out);
    let mut data = vec![0.0; out.size()];
    let (ad, bd) = (a.data(), b.data());
    for_each_product(&mut data, m * n, m * n * k, &offsets, |c, (ia, ib)| {
        matmul_2d_into(&ad[ia..ia + m * k], &bd[ib..ib + k * n], c, m, k, n)
    });
    Array::new(out, data)
}

/// Runs `product` on each batch element's part of `c` (`mn` elements each) with its
/// operands' offsets. Products of `work` multiply-adds at most [`PARALLEL_ABOVE`] each run
/// on one core whatever the batch (as each would alone, so the bits are the same), so a
/// batch of them whose total is larger is shared out between the cores, a product to a
/// task; larger products run one after another, each on all cores.
fn for_each_product(
    c: &mut [f64],
    mn: usize,
    work: usize,
    offsets: &[(usize, usize)],
    product: impl Fn(&mut [f64], (usize, usize)) + Sync,
) {
    if mn == 0 {
        return;
    }
    if work <= PARALLEL_ABOVE && work * offsets.len() > PARALLEL_ABOVE {
        use rayon::prelude::*;
        c.par_chunks_mut(mn).zip(offsets.par_iter()).for_each(|(c, &o)| {
            product(c, o);
            clear_upper_avx();
        });
        return;
    }
    for (c, &o) in c.chunks_exact_mut(mn).zip(offsets) {
        product(c, o);
    }
}

/// `op(a) @ op(b)`, where `op` swaps the last two axes of its operand when the operand's
/// flag is set: the product of a transpose the interpreter did not materialise (it fuses a
/// transpose read only by products into them). Large products give faer a transposed view
/// of the operand, which costs nothing; a small single product reads the operand in place
/// (`small_matmul_strided`, to the bit what `small_matmul` gives on the transpose); a small
/// stack transposes its operand first, as the unfused program would have.
pub fn matmul_transposed(a: &Array, b: &Array, ta: bool, tb: bool, out: Shape) -> Array {
    let swap = |x: &Array, t: bool| {
        let s = x.shape();
        let mut dims = s.dims().to_vec();
        if t && dims.len() >= 2 {
            let r = dims.len();
            dims.swap(r - 2, r - 1);
        }
        Shape::from_dims(&dims).unwrap_or(s)
    };
    let (sa, sb) = (swap(a, ta), swap(b, tb));
    let (m, k, n) = dims(sa, sb);
    let big = m * n * k > 64 * 64 && n != 1 && m != 1 && k != 1;
    if !big {
        // Single small matrices (the product `matmul` would give to `small_matmul`): read
        // in place, in the same order of operations, so the result is the same to the bit.
        if sa.rank() <= 2 && sb.rank() <= 2 && k != 1 {
            let mut data = vec![0.0; m * n];
            small_matmul_strided(a.data(), b.data(), &mut data, (m, k, n), (ta, tb));
            return Array::new(out, data);
        }
        let a = if ta { super::structure::transpose(a, sa) } else { a.clone() };
        let b = if tb { super::structure::transpose(b, sb) } else { b.clone() };
        return matmul(&a, &b, out);
    }
    let offsets = if sa.rank() <= 2 && sb.rank() <= 2 { vec![(0, 0)] } else { batch_offsets(sa, sb, out) };
    let mut data = vec![0.0; out.size()];
    let par = if m * n * k > PARALLEL_ABOVE { Par::rayon(0) } else { Par::Seq };
    let (ad, bd) = (a.data(), b.data());
    for_each_product(&mut data, m * n, m * n * k, &offsets, |c, (ia, ib)| {
        let lhs = transposed_view(&ad[ia..ia + m * k], ta, m, k);
        let rhs = transposed_view(&bd[ib..ib + k * n], tb, k, n);
        faer_matmul(MatMut::from_row_major_slice_mut(c, m, n), Accum::Replace, lhs, rhs, 1.0, par);
    });
    clear_upper_avx();
    Array::new(out, data)
}

/// The `rows × cols` matrix stored row-major in `d`, or (with `t`) the transpose of the
/// `cols × rows` matrix stored there.
fn transposed_view(d: &[f64], t: bool, rows: usize, cols: usize) -> MatRef<'_, f64> {
    if t {
        MatRef::from_row_major_slice(d, cols, rows).transpose()
    } else {
        MatRef::from_row_major_slice(d, rows, cols)
    }
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
        outer_into(c, a, b);
        return;
    }
    if m * n * k <= 64 * 64 || n == 1 || m == 1 {
        // `small_matmul` accumulates; faer below overwrites, so only this path clears.
        c.fill(0.0);
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
    if n == 0 {
        return data;
    }
    if m * n < PARALLEL_OUTER_ABOVE {
        outer_rows(&mut data.spare_capacity_mut()[..m * n], col, row);
        // SAFETY: `outer_rows` wrote all m·n elements (a row of n for each of the m).
        unsafe { data.set_len(m * n) };
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

wide_fn! {
    /// Writes the outer product of `col` and `row` (not empty) into `dst`, a row at a time
    /// (growing a vector by `extend` instead was a quarter of the speed).
    fn outer_rows[](dst: &mut [std::mem::MaybeUninit<f64>], col: &[f64], row: &[f64]) = outer_rows_plain;
}

#[inline(always)]
fn outer_rows_plain(dst: &mut [std::mem::MaybeUninit<f64>], col: &[f64], row: &[f64]) {
    for (d, &c) in dst.chunks_exact_mut(row.len()).zip(col) {
        for (o, &r) in d.iter_mut().zip(row) {
            o.write(c * r);
        }
    }
}

wide_fn! {
    /// The outer product of `col` and `row` written over `c` (`col.len()` rows).
    fn outer_into[](c: &mut [f64], col: &[f64], row: &[f64]) = outer_into_plain;
}

#[inline(always)]
fn outer_into_plain(c: &mut [f64], col: &[f64], row: &[f64]) {
    for (dst, &x) in c.chunks_exact_mut(row.len()).zip(col) {
        for (o, &y) in dst.iter_mut().zip(row) {
            *o = x * y;
        }
    }
}

/// Outer products with more elements than this are written in parallel.
const PARALLEL_OUTER_ABOVE: usize = 1 << 16;

wide_fn! {
    /// Row-major product for small or vector cases, where faer's setup dominates; it adds
    /// to `c`.
    fn small_matmul[](a: &[f64], b: &[f64], c: &mut [f64], m: usize, k: usize, n: usize) = small_matmul_plain;
}

#[inline(always)]
fn small_matmul_plain(a: &[f64], b: &[f64], c: &mut [f64], m: usize, k: usize, n: usize) {
    if n == 1 {
        for i in 0..m {
            c[i] = dot(&a[i * k..(i + 1) * k], b);
        }
        return;
    }
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            axpy(row, a[i * k + p], &b[p * n..(p + 1) * n]);
        }
    }
}

/// `row[j] += x * y[j]`. (Written in chunks of eight, this ran 14% faster on a 64 × 2 by
/// 2 × 16 product, but LLVM vectorised it across chunks with gathers and scatters, which
/// the kernels avoid; a kernel eight wide by construction is left to do.)
#[inline(always)]
fn axpy(row: &mut [f64], x: f64, y: &[f64]) {
    for (o, y) in row.iter_mut().zip(y) {
        *o += x * y;
    }
}

wide_fn! {
    /// [`small_matmul`] of `op(a)` (`m × k`) and `op(b)` (`k × n`), where `op` reads the
    /// operand transposed when its flag is set (`a` stored as `k × m`, `b` as `n × k`), with
    /// the same order of operations as `small_matmul` on the transposes, so the same bits.
    fn small_matmul_strided[](
        a: &[f64],
        b: &[f64],
        c: &mut [f64],
        dims: (usize, usize, usize),
        flags: (bool, bool)
    ) = small_matmul_strided_plain;
}

#[inline(always)]
fn small_matmul_strided_plain(
    a: &[f64],
    b: &[f64],
    c: &mut [f64],
    (m, k, n): (usize, usize, usize),
    (ta, tb): (bool, bool),
) {
    if m == 0 || n == 0 {
        return;
    }
    if n == 1 {
        // Matrix-vector products take `dot`'s grouping for each entry: four running sums
        // over whole chunks of four, then the rest (`b` reads the same either way).
        if !ta {
            for (i, out) in c.iter_mut().enumerate().take(m) {
                *out = dot(&a[i * k..(i + 1) * k], &b[..k]);
            }
            return;
        }
        // `a'` times a vector: the four running sums of every entry at once, so that the
        // loops run along `a`'s rows (contiguous) rather than down its columns.
        let whole = k - k % 4;
        let mut acc = vec![0.0f64; 4 * m];
        for p in (0..whole).step_by(4) {
            for (l, sums) in acc.chunks_exact_mut(m).enumerate() {
                let y = b[p + l];
                for (s, &x) in sums.iter_mut().zip(&a[(p + l) * m..(p + l + 1) * m]) {
                    *s += x * y;
                }
            }
        }
        for (i, out) in c.iter_mut().enumerate().take(m) {
            let mut s = (acc[i] + acc[2 * m + i]) + (acc[m + i] + acc[3 * m + i]);
            for p in whole..k {
                s += a[p * m + i] * b[p];
            }
            *out = s;
        }
        return;
    }
    let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let x = at(i, p);
            if tb {
                for (j, o) in row.iter_mut().enumerate() {
                    *o += x * b[j * k + p];
                }
            } else {
                // Rows of `b` are contiguous: the inner loop runs along them.
                axpy(row, x, &b[p * n..(p + 1) * n]);
            }
        }
    }
}

#[inline(always)]
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
