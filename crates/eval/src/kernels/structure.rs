//! Kernels that move data without arithmetic: broadcasting, indexing and padding,
//! concatenation, stacking, transposition; at any rank.

use super::layout::{broadcast_strides, for_each_row, inner, rows};
use ad_ir::prim::Sel;
use ad_ir::{Array, Shape};

pub fn broadcast_to(a: &Array, out: Shape) -> Array {
    if a.shape() == out {
        return a.clone();
    }
    if a.shape().size() == out.size() {
        return a.reshaped(out);
    }
    let s = broadcast_strides(a.shape(), out);
    let step = inner(&s);
    let (_, n) = rows(out);
    let d = a.data();
    let mut data = Vec::with_capacity(out.size());
    for_each_row(out, &[&s], |o| {
        if step == 0 {
            data.extend(std::iter::repeat_n(d[o[0]], n));
        } else {
            data.extend_from_slice(&d[o[0]..o[0] + n]);
        }
    });
    Array::new(out, data)
}

fn range(sel: Sel) -> (usize, usize) {
    match sel {
        Sel::At(i) => (i, i + 1),
        Sel::Range(a, b) => (a, b),
    }
}

/// Copies the block of `src` (shape `src_shape`) starting at `src_start` with the dims of
/// `block` into `dst` (shape `dst_shape`) at `dst_start`: the common core of indexing,
/// padding and concatenation.
fn copy_block(
    src: &[f64],
    src_shape: Shape,
    src_start: &[usize],
    dst: &mut [f64],
    dst_shape: Shape,
    dst_start: &[usize],
    block: &[usize],
) {
    if block.contains(&0) {
        return;
    }
    let (ss, ds) = (src_shape.strides(), dst_shape.strides());
    let offset =
        |start: &[usize], strides: &[usize]| start.iter().zip(strides).map(|(a, b)| a * b).sum::<usize>();
    let (s0, d0) = (offset(src_start, &ss), offset(dst_start, &ds));
    // Walk the block's rows; its last axis is contiguous in both.
    let Some(block_shape) = Shape::from_dims(block) else { return };
    let (_, n) = rows(block_shape);
    for_each_row(block_shape, &[&ss, &ds], |o| {
        let (si, di) = (s0 + o[0], d0 + o[1]);
        dst[di..di + n].copy_from_slice(&src[si..si + n]);
    });
}

pub fn index(a: &Array, sels: &[Sel], out: Shape) -> Array {
    let start: Vec<usize> = sels.iter().map(|s| range(*s).0).collect();
    let block: Vec<usize> = sels.iter().map(|s| range(*s).1 - range(*s).0).collect();
    let mut data = vec![0.0; out.size()];
    // The result is the block with its `At` axes dropped: the same elements in order.
    let Some(block_shape) = Shape::from_dims(&block) else { return Array::new(out, data) };
    let zeros = vec![0; block.len()];
    copy_block(a.data(), a.shape(), &start, &mut data, block_shape, &zeros, &block);
    Array::new(out, data)
}

/// Zero padding, written once in order: each row of the result is zeros, or zeros around a
/// row of `a` (zeroing the whole result first and copying `a` over it wrote the inside
/// twice).
pub fn pad(a: &Array, widths: &[(usize, usize)], out: Shape) -> Array {
    let (src, odims) = (a.shape().dims(), out.dims());
    let Some((&(lo, _), lead)) = widths.split_last() else { return a.clone() };
    let n = odims[odims.len() - 1];
    let k = src[src.len() - 1];
    let mut data = Vec::with_capacity(out.size());
    let d = a.data();
    let mut idx = vec![0usize; lead.len()];
    for _ in 0..out.size() / n.max(1) {
        match source_row(src, widths, &idx) {
            Some(r) if k > 0 => {
                data.resize(data.len() + lo, 0.0);
                data.extend_from_slice(&d[r * k..(r + 1) * k]);
                data.resize(data.len() + (n - lo - k), 0.0);
            }
            _ => data.resize(data.len() + n, 0.0),
        }
        next_position(&mut idx, odims);
    }
    Array::new(out, data)
}

/// Moves `idx`, a position over the leading axes of an array of dims `dims`, to the next
/// one in row-major order (back to zeros after the last).
fn next_position(idx: &mut [usize], dims: &[usize]) {
    for axis in (0..idx.len()).rev() {
        idx[axis] += 1;
        if idx[axis] < dims[axis] {
            break;
        }
        idx[axis] = 0;
    }
}

super::simd::wide_fn! {
    /// `pad(terms[0], widths[0]) + pad(terms[1], widths[1]) + ...`, added left to right, of
    /// shape `sum` (before the transpose), without the padded arrays: each row of the sum is
    /// written from the first term's row (zeros where it has none), and each later term's row
    /// is added with its zeros, so the numbers added and their order are those of the pads and
    /// `+`s (a zero added to -0 makes +0 here as there). A term with zero widths is an operand
    /// added as it is. With `transposed`, the result is the sum with its last two axes swapped
    /// (`x'`), each row written as a column of it.
    pub fn pad_sum[](terms: &[Array], widths: &[Vec<(usize, usize)>], sum: Shape, transposed: bool) -> Array = pad_sum_plain;
}

#[inline(always)]
fn pad_sum_plain(terms: &[Array], widths: &[Vec<(usize, usize)>], sum: Shape, transposed: bool) -> Array {
    let odims = sum.dims();
    let Some((&n, lead)) = odims.split_last() else {
        // Scalars have nothing to pad: the terms are added.
        let mut terms = terms.iter().map(|t| t.data()[0]);
        let first = terms.next().unwrap_or(0.0);
        return Array::scalar(terms.fold(first, |acc, x| acc + x));
    };
    // A sum of rank 0 or 1 is its own transpose.
    let swap = transposed && odims.len() >= 2;
    let out = if swap {
        let mut d = odims.to_vec();
        d.swap(odims.len() - 2, odims.len() - 1);
        // Same rank and size as `sum`.
        Shape::from_dims(&d).unwrap_or(sum)
    } else {
        sum
    };
    let size = sum.size();
    if n == 0 {
        return Array::new(out, vec![0.0; size]);
    }
    // Transposed, every element is written once, as a column of a tile: the buffer is not
    // zeroed first. Rows are written over zeros (`add_padded_rows` leaves a pad's zeros).
    let mut data: Vec<f64> = if swap { Vec::with_capacity(size) } else { vec![0.0; size] };
    // Each row of the sum is written straight into the result or, transposed, into `rows`:
    // TILE rows of one matrix at a time, then written as columns a tile wide, so that
    // each write of a column fills whole cache lines.
    let m = if odims.len() >= 2 { odims[odims.len() - 2] } else { 1 };
    const TILE: usize = 8;
    let mut rows = if swap { vec![0.0; TILE * n] } else { Vec::new() };
    let mut idx = vec![0usize; lead.len()];
    for r in 0..sum.size() / n {
        let (b, i) = (r / m, r % m);
        let dst: &mut [f64] = if swap {
            let row = &mut rows[(i % TILE) * n..(i % TILE + 1) * n];
            row.fill(0.0);
            row
        } else {
            &mut data[r * n..(r + 1) * n]
        };
        add_padded_rows(dst, terms, widths, &idx);
        if swap && (i % TILE == TILE - 1 || i == m - 1) {
            // Rows i0..=i of matrix b of the sum are columns i0..=i of matrix b of the
            // result.
            let i0 = i - i % TILE;
            let g = i - i0 + 1;
            let matrix = &mut data.spare_capacity_mut()[b * m * n..(b + 1) * m * n];
            // Whole tiles go eight columns at a time through AVX-512 registers; the rest,
            // and processors without it, element by element.
            let done = if g == TILE { transpose_tile(&rows, matrix, (m, n), i0) } else { 0 };
            for (j, column) in matrix.chunks_exact_mut(m).enumerate().skip(done) {
                for (k, d) in column[i0..i0 + g].iter_mut().enumerate() {
                    d.write(rows[k * n + j]);
                }
            }
        }
        next_position(&mut idx, odims);
    }
    if swap {
        // SAFETY: the capacity is `size` (reserved above) and every element was written:
        // each of the `size / (m·n)` matrices had each of its `m` rows flushed (at the end
        // of a tile or at row m - 1) as a column of all `n` of its result rows.
        unsafe { data.set_len(size) };
    }
    Array::new(out, data)
}

/// Writes the first columns of the 8 × `n` tile `rows` (row-major) as rows `0..8·⌊n/8⌋`
/// of `matrix` (`n` rows of `m`), at column `i0`, eight columns at a time: 8 loads, 24
/// shuffles and 8 stores per 64 elements, where element by element each is a load and a
/// store. Returns how many columns it wrote (none without AVX-512).
fn transpose_tile(
    rows: &[f64],
    matrix: &mut [std::mem::MaybeUninit<f64>],
    (m, n): (usize, usize),
    i0: usize,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let fits = rows.len() >= 8 * n && i0 + 8 <= m && matrix.len() >= m * n;
        if fits && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F (checked just above) and the slices hold
            // what `transpose_tile_avx512` reads and writes (checked just above).
            return unsafe { transpose_tile_avx512(rows, matrix, (m, n), i0) };
        }
    }
    let _ = (rows, matrix, m, n, i0);
    0
}

/// [`transpose_tile`] with AVX-512.
///
/// # Safety
/// The processor must support AVX-512F; `rows` must hold `8 · n` elements, `matrix`
/// `m · n`, and `i0 + 8 ≤ m`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_tile_avx512(
    rows: &[f64],
    matrix: &mut [std::mem::MaybeUninit<f64>],
    (m, n): (usize, usize),
    i0: usize,
) -> usize {
    use std::arch::x86_64::*;
    let (src, dst) = (rows.as_ptr(), matrix.as_mut_ptr() as *mut f64);
    let whole = n - n % 8;
    for j in (0..whole).step_by(8) {
        // SAFETY: rows k < 8, columns j..j + 8 ≤ n of the 8 × n tile, and rows j..j + 8 ≤ n,
        // columns i0..i0 + 8 ≤ m of the n × m matrix: inside both (the caller's promise).
        unsafe {
            let r = |k: usize| _mm512_loadu_pd(src.add(k * n + j));
            // Pairs of rows interleaved: (r0[0], r1[0], r0[2], r1[2], ...) and the odd ones.
            let t0 = _mm512_unpacklo_pd(r(0), r(1));
            let t1 = _mm512_unpackhi_pd(r(0), r(1));
            let t2 = _mm512_unpacklo_pd(r(2), r(3));
            let t3 = _mm512_unpackhi_pd(r(2), r(3));
            let t4 = _mm512_unpacklo_pd(r(4), r(5));
            let t5 = _mm512_unpackhi_pd(r(4), r(5));
            let t6 = _mm512_unpacklo_pd(r(6), r(7));
            let t7 = _mm512_unpackhi_pd(r(6), r(7));
            // Then 128-bit lanes: 0x88 takes lanes 0 and 2 of each operand, 0xDD lanes 1 and 3.
            let u0 = _mm512_shuffle_f64x2::<0x88>(t0, t2); // columns 0 and 4 of rows 0..4
            let u1 = _mm512_shuffle_f64x2::<0xDD>(t0, t2); // columns 2 and 6
            let u2 = _mm512_shuffle_f64x2::<0x88>(t1, t3); // columns 1 and 5
            let u3 = _mm512_shuffle_f64x2::<0xDD>(t1, t3); // columns 3 and 7
            let v0 = _mm512_shuffle_f64x2::<0x88>(t4, t6); // the same of rows 4..8
            let v1 = _mm512_shuffle_f64x2::<0xDD>(t4, t6);
            let v2 = _mm512_shuffle_f64x2::<0x88>(t5, t7);
            let v3 = _mm512_shuffle_f64x2::<0xDD>(t5, t7);
            let w = |q: usize, x: __m512d| _mm512_storeu_pd(dst.add((j + q) * m + i0), x);
            w(0, _mm512_shuffle_f64x2::<0x88>(u0, v0));
            w(4, _mm512_shuffle_f64x2::<0xDD>(u0, v0));
            w(2, _mm512_shuffle_f64x2::<0x88>(u1, v1));
            w(6, _mm512_shuffle_f64x2::<0xDD>(u1, v1));
            w(1, _mm512_shuffle_f64x2::<0x88>(u2, v2));
            w(5, _mm512_shuffle_f64x2::<0xDD>(u2, v2));
            w(3, _mm512_shuffle_f64x2::<0x88>(u3, v3));
            w(7, _mm512_shuffle_f64x2::<0xDD>(u3, v3));
        }
    }
    whole
}

/// Writes into `dst` (zeros) the sum of the rows at leading position `idx` of the terms
/// padded by their widths: the first term's row, then each later one's added with its
/// zeros.
#[inline(always)]
fn add_padded_rows(dst: &mut [f64], terms: &[Array], widths: &[Vec<(usize, usize)>], idx: &[usize]) {
    for (t, (a, w)) in terms.iter().zip(widths).enumerate() {
        let src = a.shape().dims();
        let k = src[src.len() - 1];
        let lo = w[w.len() - 1].0;
        match source_row(src, w, idx) {
            Some(r) if k > 0 => {
                let row = &a.data()[r * k..(r + 1) * k];
                let (before, rest) = dst.split_at_mut(lo);
                let (middle, after) = rest.split_at_mut(k);
                if t == 0 {
                    // The rest of the row holds the zeros `pad` puts there.
                    middle.copy_from_slice(row);
                } else {
                    before.iter_mut().for_each(|d| *d += 0.0);
                    middle.iter_mut().zip(row).for_each(|(d, x)| *d += x);
                    after.iter_mut().for_each(|d| *d += 0.0);
                }
            }
            _ if t > 0 => dst.iter_mut().for_each(|d| *d += 0.0),
            _ => {}
        }
    }
}

/// The row of an array of dims `src` that the row at leading position `idx` of its padding
/// by `widths` holds, if any: each leading position, less the padding before it, must fall
/// inside the array.
fn source_row(src: &[usize], widths: &[(usize, usize)], idx: &[usize]) -> Option<usize> {
    let mut row = 0usize;
    for (axis, (&i, &(before, _))) in idx.iter().zip(widths).enumerate() {
        let j = i.checked_sub(before).filter(|j| *j < src[axis])?;
        row = row * src[axis] + j;
    }
    Some(row)
}

pub fn concat(a: &Array, b: &Array, axis: usize, out: Shape) -> Array {
    let mut data = vec![0.0; out.size()];
    let zeros = vec![0; out.rank()];
    copy_block(a.data(), a.shape(), &zeros, &mut data, out, &zeros, a.shape().dims());
    let mut at = zeros.clone();
    at[axis] = a.shape().dim(axis);
    copy_block(b.data(), b.shape(), &zeros, &mut data, out, &at, b.shape().dims());
    Array::new(out, data)
}

/// Equal-shaped parts stacked along a new leading axis.
pub fn stack(parts: &[Array], out: Shape) -> Array {
    let mut data = Vec::with_capacity(out.size());
    for p in parts {
        data.extend_from_slice(p.data());
    }
    Array::new(out, data)
}

/// `x'`: the last two axes swapped (vectors and scalars are their own transposes).
pub fn transpose(a: &Array, out: Shape) -> Array {
    let r = a.shape().rank();
    if r < 2 {
        return a.clone();
    }
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    permute(a, &perm, out)
}

/// The axes of `a` rearranged: axis `i` of the result is axis `perm[i]` of `a`.
pub fn permute(a: &Array, perm: &[usize], out: Shape) -> Array {
    let shape = a.shape();
    let dims = shape.dims();
    let d = a.data();
    // Matrices (and batches of them) get a blocked transpose, which keeps both sides in
    // cache for large ones.
    let r = dims.len();
    let swaps_last_two =
        r >= 2 && perm[r - 2] == r - 1 && perm[r - 1] == r - 2 && (0..r - 2).all(|i| perm[i] == i);
    if swaps_last_two {
        let (m, n) = (dims[r - 2], dims[r - 1]);
        let batch: usize = dims[..r - 2].iter().product();
        let mut data = vec![0.0; out.size()];
        for k in 0..batch {
            transpose_block(&d[k * m * n..(k + 1) * m * n], &mut data[k * m * n..(k + 1) * m * n], m, n);
        }
        return Array::new(out, data);
    }
    // In general: walk the result in order, reading `a` with permuted strides.
    let own = a.shape().strides();
    let strides: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
    let step = inner(&strides);
    let (_, n) = rows(out);
    let mut data = Vec::with_capacity(out.size());
    for_each_row(out, &[&strides], |o| {
        data.extend((0..n).map(|j| d[o[0] + j * step]));
    });
    Array::new(out, data)
}

/// `a` with the order of its elements reversed along each of `axes`: each element is read
/// from the mirrored position, walking the result in order.
pub fn flip(a: &Array, axes: ad_ir::prim::Axes) -> Array {
    let s = a.shape();
    let (dims, strides) = (s.dims(), s.strides());
    let d = a.data();
    let mut data = Vec::with_capacity(s.size());
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..s.size() {
        let src: usize = idx
            .iter()
            .enumerate()
            .map(|(k, &i)| if axes.contains(k) { dims[k] - 1 - i } else { i } * strides[k])
            .sum();
        data.push(d[src]);
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Array::new(s, data)
}

/// The `m × n` matrix `src` transposed into `dst` (both hold `m · n` elements): tiles of
/// 4 × 4 moved by AVX shuffles when the processor has them, else element by element.
fn transpose_block(src: &[f64], dst: &mut [f64], m: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") && src.len() >= m * n && dst.len() >= m * n {
            // SAFETY: the processor supports AVX (checked just above), and both slices hold
            // the `m · n` elements `transpose_avx` reads and writes (checked just above).
            unsafe { transpose_avx(src, dst, m, n) };
            return;
        }
    }
    in_blocks(src, dst, m, n, |src, dst, i, j| {
        for c in 0..4 {
            for r in 0..4 {
                dst[(j + c) * m + i + r] = src[(i + r) * n + j + c];
            }
        }
    })
}

/// The transpose in blocks of 32 × 32, which keep both sides in cache: each whole 4 × 4
/// tile (rows `i..i + 4`, columns `j..j + 4` of `src`) moved by `tile`, the blocks' ragged
/// edges element by element.
#[inline(always)]
fn in_blocks(
    src: &[f64],
    dst: &mut [f64],
    m: usize,
    n: usize,
    tile: impl Fn(&[f64], &mut [f64], usize, usize),
) {
    const B: usize = 32;
    for ib in (0..m).step_by(B) {
        let ie = (ib + B).min(m);
        for jb in (0..n).step_by(B) {
            let je = (jb + B).min(n);
            let mut i = ib;
            while i + 4 <= ie {
                let mut j = jb;
                while j + 4 <= je {
                    tile(src, dst, i, j);
                    j += 4;
                }
                for j in j..je {
                    for r in 0..4 {
                        dst[j * m + i + r] = src[(i + r) * n + j];
                    }
                }
                i += 4;
            }
            for i in i..ie {
                for j in jb..je {
                    dst[j * m + i] = src[i * n + j];
                }
            }
        }
    }
}

/// [`in_blocks`] with each tile read as four rows of four and written as four rows of the
/// result: two unpacks and two lane swaps per pair of rows instead of sixteen single moves.
///
/// # Safety
/// The processor must support AVX, and `src` and `dst` must hold at least `m · n` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_avx(src: &[f64], dst: &mut [f64], m: usize, n: usize) {
    use std::arch::x86_64::*;
    in_blocks(src, dst, m, n, |src, dst, i, j| {
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: rows i..i + 4 ≤ m and columns j..j + 4 ≤ n of the m × n source, and rows
        // j..j + 4 ≤ n, columns i..i + 4 ≤ m of the n × m result (`in_blocks` passes whole
        // tiles only): all inside the m · n elements both hold (the caller's promise).
        unsafe {
            let r0 = _mm256_loadu_pd(s.add(i * n + j));
            let r1 = _mm256_loadu_pd(s.add((i + 1) * n + j));
            let r2 = _mm256_loadu_pd(s.add((i + 2) * n + j));
            let r3 = _mm256_loadu_pd(s.add((i + 3) * n + j));
            // (r0[0], r1[0], r0[2], r1[2]), (r0[1], r1[1], r0[3], r1[3]), and so for r2, r3.
            let t0 = _mm256_unpacklo_pd(r0, r1);
            let t1 = _mm256_unpackhi_pd(r0, r1);
            let t2 = _mm256_unpacklo_pd(r2, r3);
            let t3 = _mm256_unpackhi_pd(r2, r3);
            _mm256_storeu_pd(d.add(j * m + i), _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(d.add((j + 1) * m + i), _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(d.add((j + 2) * m + i), _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(d.add((j + 3) * m + i), _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    })
}
