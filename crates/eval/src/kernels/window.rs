//! Convolution and pooling over images in NHWC order (`x: [b, h, w, c]`), with the kernels
//! their derivatives need. The geometry (result size, padding) is `ad_ir::window`'s.
//!
//! A convolution is one matrix product: "im2col" copies each output pixel's window of the
//! input into a row of a matrix `[b·oh·ow, kh·kw·c]`, whose product with the kernel read as
//! `[kh·kw·c, o]` is the result read as `[b·oh·ow, o]`. The two adjoints are products with
//! the same matrices transposed (faer reads a transposed view at no cost); the adjoint with
//! respect to the input then adds each row back over its window ("col2im"). The window
//! matrix is built a block of rows at a time, so its memory stays bounded (and in cache)
//! whatever the image size.
//!
//! Pooling is a single pass over the windows. Max pooling picks, per window and channel, the
//! position of the maximum; its derivative kernels read or add at those positions.

use ad_ir::prim::Conv as ConvArgs;
use ad_ir::scalar::safe_mul;
use ad_ir::window::Window;
use ad_ir::{Array, Shape};
use faer::linalg::matmul::matmul as faer_matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// The window matrix is built this many elements (1 MiB of f64) at a time: large enough
/// that each product keeps faer's kernels busy, small enough to stay in the cache between
/// being written and being read.
const BLOCK_ELEMENTS: usize = 1 << 17;

/// Products with more multiply-adds than this run on all cores (the crossover `linalg.rs`
/// measured for faer on this machine).
const PARALLEL_ABOVE: usize = 4_000_000;

/// The sizes of a convolution: batch, input and output channels (all groups), the number
/// of groups, and the windows.
#[derive(Clone, Copy)]
struct Conv {
    b: usize,
    c: usize,
    o: usize,
    groups: usize,
    win: Window,
}

impl Conv {
    /// The convolution of an `x_shape` image batch with a `k_shape` kernel. Programs are
    /// shape-checked before they run, so ill-matched shapes here are a bug in the caller.
    fn new(x_shape: Shape, k_shape: Shape, c: ConvArgs) -> Conv {
        let (x, k) = (x_shape.dims(), k_shape.dims());
        let ([b, h, w, ch], [kh, kw, kc, o]) = (four(x, "image"), four(k, "kernel"));
        let groups = c.groups();
        if groups == 0 || kc * groups != ch || !o.is_multiple_of(groups) {
            panic!(
                "internal error: conv2d in {groups} groups of an image with {ch} channels and a kernel {k:?}"
            );
        }
        let win = Window::conv(h, w, kh, kw, c.stride(), c.padding)
            .unwrap_or_else(|e| panic!("internal error: conv2d on unchecked shapes: {e}"));
        Conv { b, c: ch, o, groups, win }
    }

    /// Input channels of one group.
    fn ci(&self) -> usize {
        self.c / self.groups
    }

    /// Output channels of one group.
    fn og(&self) -> usize {
        self.o / self.groups
    }

    /// Rows of the window matrix: one per output pixel.
    fn rows(&self) -> usize {
        self.b * self.win.out_h * self.win.out_w
    }

    /// Columns of one group's window matrix: one per kernel weight feeding one output
    /// channel.
    fn cols(&self) -> usize {
        self.win.size_h * self.win.size_w * self.ci()
    }

    fn y_shape(&self) -> Shape {
        shape4([self.b, self.win.out_h, self.win.out_w, self.o])
    }

    /// A 1 × 1 kernel with stride 1 reads each pixel once, in order, with no padding (both
    /// paddings give none), so the window matrix of a group is the image's columns of that
    /// group: no copy is needed.
    fn is_pointwise(&self) -> bool {
        self.win.size_h == 1 && self.win.size_w == 1 && self.win.stride == 1
    }

    /// How many rows of the window matrix to build at a time (at least one).
    fn block_rows(&self) -> usize {
        (BLOCK_ELEMENTS / self.cols().max(1)).max(1)
    }

    /// The kernel `[kh, kw, c / groups, o]` as the matrix `[cols, o]`, whose columns
    /// `group · og ..` are that group's.
    fn kernel<'a>(&self, k: &'a [f64]) -> MatRef<'a, f64> {
        MatRef::from_row_major_slice(k, self.cols(), self.o)
    }
}

/// The four dimensions of an image or a kernel.
fn four(dims: &[usize], what: &str) -> [usize; 4] {
    match dims {
        &[a, b, c, d] => [a, b, c, d],
        _ => panic!("internal error: a convolution's {what} has shape {dims:?}, not four axes"),
    }
}

/// A shape of four axes; every rank up to 8 exists.
fn shape4(dims: [usize; 4]) -> Shape {
    Shape::from_dims(&dims).unwrap_or_else(|| panic!("internal error: no shape {dims:?}"))
}

/// Columns `group · n .. (group + 1) · n` of a row-major matrix `rows × (groups · n)`.
fn group_cols(m: MatRef<'_, f64>, group: usize, n: usize) -> MatRef<'_, f64> {
    m.subcols(group * n, n)
}

/// `conv2d(x, k, stride, padding, groups)`: the cross-correlation of `x: [b, h, w, c]` with
/// `k: [kh, kw, c / groups, o]` (the kernel is not flipped), giving `[b, oh, ow, o]`; JAX's
/// `conv_general_dilated` with dimension numbers `('NHWC', 'HWIO', 'NHWC')` and
/// `feature_group_count = groups`.
pub fn conv2d(x: &Array, k: &Array, c: ConvArgs) -> Array {
    let g = Conv::new(x.shape(), k.shape(), c);
    if needs_strong_zeros(c, x, k) {
        let (x, k, mut y) = (x.data(), k.data(), vec![0.0; g.rows() * g.o]);
        for_each_term(&g, |xi, ki, yi| y[yi] += safe_mul(x[xi], k[ki]));
        return Array::new(g.y_shape(), y);
    }
    let (rows, cols, o) = (g.rows(), g.cols(), g.o);
    let mut y = vec![0.0; rows * o];
    if rows * o == 0 || cols == 0 {
        // No outputs, or outputs that sum no terms: zeros of the right shape.
        return Array::new(g.y_shape(), y);
    }
    let kernel = g.kernel(k.data());
    let (ci, og) = (g.ci(), g.og());
    if g.is_pointwise() {
        let image = MatRef::from_row_major_slice(x.data(), rows, g.c);
        let par = par_for(rows * cols * og);
        for group in 0..g.groups {
            let dst = MatMut::from_row_major_slice_mut(&mut y, rows, o).subcols_mut(group * og, og);
            product(dst, group_cols(image, group, ci), group_cols(kernel, group, og), Accum::Replace, par);
        }
        return Array::new(g.y_shape(), y);
    }
    // Each block of output rows is computed from its own rows of the window matrix, a
    // group at a time. (The closures see buffers, not arrays, whose reference counts cannot
    // cross threads.)
    let (step, x) = (g.block_rows(), x.data());
    let one = |first: usize, y_block: &mut [f64], block: &mut [f64], par: Par| {
        let n = y_block.len() / o;
        let block = &mut block[..n * cols];
        for group in 0..g.groups {
            im2col(x, &g, group, first, block);
            let dst = MatMut::from_row_major_slice_mut(y_block, n, o).subcols_mut(group * og, og);
            let lhs = MatRef::from_row_major_slice(block, n, cols);
            product(dst, lhs, group_cols(kernel, group, og), Accum::Replace, par);
        }
    };
    if in_parallel(rows, step, cols * o) {
        // Blocks write disjoint rows of the result, so they run on all cores, each product
        // on one.
        y.par_chunks_mut(step * o).enumerate().for_each_init(
            || vec![0.0; step * cols],
            |block, (i, y_block)| one(i * step, y_block, block, Par::Seq),
        );
    } else {
        let mut block = vec![0.0; step.min(rows) * cols];
        for (i, y_block) in y.chunks_mut(step * o).enumerate() {
            one(i * step, y_block, &mut block, par_for(y_block.len() / o * cols * og));
        }
    }
    Array::new(g.y_shape(), y)
}

/// The adjoint of `x ↦ conv2d(x, k, ..)` applied to `ct: [b, oh, ow, o]`: per group, the
/// rows of `ct · kᵀ` (one window's worth of input gradient per output pixel) added back
/// over their windows, giving an array shaped `x_shape`. Padding receives nothing.
pub fn conv2d_transpose_input(ct: &Array, k: &Array, c: ConvArgs, x_shape: Shape) -> Array {
    let g = Conv::new(x_shape, k.shape(), c);
    check_cotangent(ct, &g);
    if needs_strong_zeros(c, ct, k) {
        let (ct, k, mut dx) = (ct.data(), k.data(), vec![0.0; x_shape.size()]);
        for_each_term(&g, |xi, ki, yi| dx[xi] += safe_mul(ct[yi], k[ki]));
        return Array::new(x_shape, dx);
    }
    let (rows, cols, o) = (g.rows(), g.cols(), g.o);
    let mut dx = vec![0.0; x_shape.size()];
    if rows * cols == 0 || o == 0 {
        // Nothing reaches the input: no windows, no weights or no output channels.
        return Array::new(x_shape, dx);
    }
    let kernel = g.kernel(k.data());
    let (ci, og) = (g.ci(), g.og());
    if g.is_pointwise() {
        let ct = MatRef::from_row_major_slice(ct.data(), rows, o);
        let par = par_for(rows * cols * og);
        for group in 0..g.groups {
            let dst = MatMut::from_row_major_slice_mut(&mut dx, rows, g.c).subcols_mut(group * ci, ci);
            let kernel_t = group_cols(kernel, group, og).transpose();
            product(dst, group_cols(ct, group, og), kernel_t, Accum::Replace, par);
        }
        return Array::new(x_shape, dx);
    }
    // Rows `first .. first + n` of the window matrix's gradient, a group at a time, added
    // back into `dx`, which starts at element `base` of the whole gradient.
    let (step, ct) = (g.block_rows(), ct.data());
    let one = |first: usize, n: usize, dx: &mut [f64], base: usize, block: &mut [f64], par: Par| {
        let block = &mut block[..n * cols];
        let ct = MatRef::from_row_major_slice(&ct[first * o..(first + n) * o], n, o);
        for group in 0..g.groups {
            let kernel_t = group_cols(kernel, group, og).transpose();
            let dst = MatMut::from_row_major_slice_mut(block, n, cols);
            product(dst, group_cols(ct, group, og), kernel_t, Accum::Replace, par);
            col2im(block, &g, group, first, dx, base);
        }
    };
    let (image_rows, image_len) = (g.win.out_h * g.win.out_w, g.win.h * g.win.w * g.c);
    if g.b > 1 && in_parallel(rows, step, cols * o) {
        // Windows overlap within an image but never across images, so images run on all
        // cores. Each pixel receives its terms in the same order as in the loop below.
        dx.par_chunks_mut(image_len).enumerate().for_each_init(
            || vec![0.0; step.min(image_rows) * cols],
            |block, (bi, dx_image)| {
                let end = (bi + 1) * image_rows;
                for first in (bi * image_rows..end).step_by(step) {
                    one(first, step.min(end - first), dx_image, bi * image_len, block, Par::Seq);
                }
            },
        );
    } else {
        let mut block = vec![0.0; step.min(rows) * cols];
        for first in (0..rows).step_by(step) {
            let n = step.min(rows - first);
            one(first, n, &mut dx, 0, &mut block, par_for(n * cols * og));
        }
    }
    Array::new(x_shape, dx)
}

/// The adjoint of `k ↦ conv2d(x, k, ..)` applied to `ct: [b, oh, ow, o]`: per group, the
/// window matrix transposed times `ct`, giving an array shaped `k_shape`.
pub fn conv2d_transpose_kernel(x: &Array, ct: &Array, c: ConvArgs, k_shape: Shape) -> Array {
    let g = Conv::new(x.shape(), k_shape, c);
    check_cotangent(ct, &g);
    if needs_strong_zeros(c, x, ct) {
        let (x, ct, mut dk) = (x.data(), ct.data(), vec![0.0; k_shape.size()]);
        for_each_term(&g, |xi, ki, yi| dk[ki] += safe_mul(x[xi], ct[yi]));
        return Array::new(k_shape, dk);
    }
    let (rows, cols, o) = (g.rows(), g.cols(), g.o);
    let mut dk = vec![0.0; cols * o];
    if rows == 0 || cols * o == 0 {
        // A sum of no terms, or an empty kernel.
        return Array::new(k_shape, dk);
    }
    let (ci, og) = (g.ci(), g.og());
    if g.is_pointwise() {
        let image = MatRef::from_row_major_slice(x.data(), rows, g.c);
        let ct = MatRef::from_row_major_slice(ct.data(), rows, o);
        let par = par_for(rows * cols * og);
        for group in 0..g.groups {
            let dst = MatMut::from_row_major_slice_mut(&mut dk, cols, o).subcols_mut(group * og, og);
            product(
                dst,
                group_cols(image, group, ci).transpose(),
                group_cols(ct, group, og),
                Accum::Replace,
                par,
            );
        }
        return Array::new(k_shape, dk);
    }
    // The sum over output pixels, block by block: each block of rows adds its share, a group
    // at a time.
    let (step, x, ct) = (g.block_rows(), x.data(), ct.data());
    let add = |first: usize, n: usize, dk: &mut [f64], block: &mut [f64], par: Par| {
        let block = &mut block[..n * cols];
        let ct = MatRef::from_row_major_slice(&ct[first * o..(first + n) * o], n, o);
        for group in 0..g.groups {
            im2col(x, &g, group, first, block);
            let block_t = MatRef::from_row_major_slice(block, n, cols).transpose();
            let dst = MatMut::from_row_major_slice_mut(dk, cols, o).subcols_mut(group * og, og);
            product(dst, block_t, group_cols(ct, group, og), Accum::Add, par);
        }
    };
    let blocks = rows.div_ceil(step);
    if in_parallel(rows, step, cols * o) {
        // A fixed number of groups of consecutive blocks, each summed on one core, and
        // their sums added in order: the result does not depend on the scheduling.
        let per_group = blocks.div_ceil(blocks.min(SUM_GROUPS));
        let partial: Vec<Vec<f64>> = (0..blocks.div_ceil(per_group))
            .into_par_iter()
            .map(|part| {
                let (mut dk, mut block) = (vec![0.0; cols * o], vec![0.0; step * cols]);
                for first in (part * per_group * step..rows.min((part + 1) * per_group * step)).step_by(step)
                {
                    add(first, step.min(rows - first), &mut dk, &mut block, Par::Seq);
                }
                dk
            })
            .collect();
        for part in partial {
            for (d, p) in dk.iter_mut().zip(part) {
                *d += p;
            }
        }
    } else {
        let mut block = vec![0.0; step.min(rows) * cols];
        for first in (0..rows).step_by(step) {
            let n = step.min(rows - first);
            add(first, n, &mut dk, &mut block, par_for(n * cols * og));
        }
    }
    Array::new(k_shape, dk)
}

/// Whether a convolution with strong zeros must run term by term: only when an operand
/// holds an infinite or NaN element. Otherwise a term with a zero factor is zero anyway, and
/// the ordinary kernel gives the same result.
fn needs_strong_zeros(c: ConvArgs, a: &Array, b: &Array) -> bool {
    let finite = |a: &Array| a.data().iter().all(|v| v.is_finite());
    c.strong && !(finite(a) && finite(b))
}

/// Every term of the convolution `g` by its definition, in the order of the output pixels:
/// `f(x offset, kernel offset, output offset)` for each input pixel under each output
/// pixel's window (the padding has none), each input channel and each output channel of
/// its group. The strong-zero forms sum these one at a time, with `safe_mul`'s product.
fn for_each_term(g: &Conv, mut f: impl FnMut(usize, usize, usize)) {
    let (c, ci, o, og, kw) = (g.c, g.ci(), g.o, g.og(), g.win.size_w);
    for r in 0..g.rows() {
        let w = RowWindow::of(g, r);
        for i in 0..g.win.size_h {
            let Some(start) = w.start(g, i) else { continue };
            for j in w.j0..w.j1 {
                let pixel = start + (j - w.j0) * c;
                for group in 0..g.groups {
                    for cc in 0..ci {
                        let k_row = ((i * kw + j) * ci + cc) * o;
                        for out in group * og..(group + 1) * og {
                            f(pixel + group * ci + cc, k_row + out, r * o + out);
                        }
                    }
                }
            }
        }
    }
}

/// The kernel gradient of a convolution is summed over at most this many groups of blocks
/// in parallel (a fixed number, so that the order of the sum does not depend on the machine).
const SUM_GROUPS: usize = 16;

/// Whether the blocks of a convolution run on all cores: when there are several and the
/// products, `rows × (cols · o)` multiply-adds in all, are large enough to pay for threads.
fn in_parallel(rows: usize, step: usize, per_row: usize) -> bool {
    rows > step && rows.saturating_mul(per_row) > PARALLEL_ABOVE
}

/// The parallelism of one product of `work` multiply-adds run on its own.
fn par_for(work: usize) -> Par {
    if work > PARALLEL_ABOVE {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// A cotangent must be shaped like the convolution's result.
fn check_cotangent(ct: &Array, g: &Conv) {
    if ct.shape() != g.y_shape() {
        panic!("internal error: a convolution's cotangent is {:?}, not {:?}", ct.shape(), g.y_shape());
    }
}

/// The input columns `[j0, j1)` of a window row that fall inside the image, for the window
/// whose first column is `left` (negative in the padding): the rest reads zeros.
fn inside(left: isize, size: usize, len: usize) -> (usize, usize) {
    let j0 = (-left).clamp(0, size as isize) as usize;
    let j1 = (len as isize - left).clamp(j0 as isize, size as isize) as usize;
    (j0, j1)
}

/// Where row `r` of the window matrix reads the image: the input columns `[j0, j1)` of
/// each window row that fall inside the image, and the element offset (in the NHWC image)
/// of window row `i`'s first inside pixel, if that row is inside the image at all.
struct RowWindow {
    bi: usize,
    top: isize,
    left: isize,
    j0: usize,
    j1: usize,
}

impl RowWindow {
    fn of(g: &Conv, r: usize) -> RowWindow {
        let win = g.win;
        let (bi, oy, ox) = (r / (win.out_h * win.out_w), r / win.out_w % win.out_h, r % win.out_w);
        let top = (oy * win.stride) as isize - win.pad_top as isize;
        let left = (ox * win.stride) as isize - win.pad_left as isize;
        let (j0, j1) = inside(left, win.size_w, win.w);
        RowWindow { bi, top, left, j0, j1 }
    }

    fn start(&self, g: &Conv, i: usize) -> Option<usize> {
        let win = g.win;
        let iy = self.top + i as isize;
        if iy < 0 || iy >= win.h as isize || self.j0 == self.j1 {
            return None;
        }
        Some(((self.bi * win.h + iy as usize) * win.w + (self.left + self.j0 as isize) as usize) * g.c)
    }
}

/// Writes rows `first ..` of group `group`'s window matrix (as many as `block` holds) into
/// `block`: row `(bi, oy, ox)` holds the group's channels of the input pixels under that
/// output pixel's window, in the kernel's order (window row, window column, channel),
/// zeros where the window lies in the padding. With one group each window row is a
/// contiguous run of the image, so it is copied whole; with several, pixel by pixel.
fn im2col(x: &[f64], g: &Conv, group: usize, first: usize, block: &mut [f64]) {
    let (c, ci) = (g.c, g.ci());
    let run = g.win.size_w * ci;
    for (r, dst) in (first..).zip(block.chunks_exact_mut(g.cols())) {
        let w = RowWindow::of(g, r);
        for (i, seg) in dst.chunks_exact_mut(run).enumerate() {
            let Some(start) = w.start(g, i) else {
                seg.fill(0.0);
                continue;
            };
            seg[..w.j0 * ci].fill(0.0);
            let inner = &mut seg[w.j0 * ci..w.j1 * ci];
            if g.groups == 1 {
                inner.copy_from_slice(&x[start..start + (w.j1 - w.j0) * c]);
            } else {
                let src = &x[start + group * ci..];
                for (p, d) in inner.chunks_exact_mut(ci).enumerate() {
                    d.copy_from_slice(&src[p * c..p * c + ci]);
                }
            }
            seg[w.j1 * ci..].fill(0.0);
        }
    }
}

/// The adjoint of [`im2col`]: adds rows `first ..` of group `group`'s window matrix back
/// into the image gradient, each entry onto the pixel and channel it was copied from
/// (entries from the padding are dropped). `dx` holds the gradient from its element `base`
/// on, which the rows reach.
fn col2im(block: &[f64], g: &Conv, group: usize, first: usize, dx: &mut [f64], base: usize) {
    let (c, ci) = (g.c, g.ci());
    let run = g.win.size_w * ci;
    for (r, src) in (first..).zip(block.chunks_exact(g.cols())) {
        let w = RowWindow::of(g, r);
        for (i, seg) in src.chunks_exact(run).enumerate() {
            let Some(start) = w.start(g, i).map(|s| s - base) else { continue };
            let inner = &seg[w.j0 * ci..w.j1 * ci];
            if g.groups == 1 {
                for (d, s) in dx[start..start + inner.len()].iter_mut().zip(inner) {
                    *d += s;
                }
            } else {
                for (p, s) in inner.chunks_exact(ci).enumerate() {
                    let at = start + p * c + group * ci;
                    for (d, s) in dx[at..at + ci].iter_mut().zip(s) {
                        *d += s;
                    }
                }
            }
        }
    }
}

/// `dst (+)= lhs · rhs` on faer.
fn product(dst: MatMut<'_, f64>, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, accum: Accum, par: Par) {
    faer_matmul(dst, accum, lhs, rhs, 1.0, par);
    super::linalg::clear_upper_avx();
}

/// The sizes of a pooling: batch, channels and the windows.
#[derive(Clone, Copy)]
struct Pool {
    b: usize,
    c: usize,
    win: Window,
}

impl Pool {
    fn new(x_shape: Shape, size: usize, stride: usize) -> Pool {
        let [b, h, w, c] = four(x_shape.dims(), "image");
        let win = Window::pool(h, w, size, stride)
            .unwrap_or_else(|e| panic!("internal error: pooling on unchecked shapes: {e}"));
        Pool { b, c, win }
    }

    fn y_shape(&self) -> Shape {
        shape4([self.b, self.win.out_h, self.win.out_w, self.c])
    }

    /// Calls `f(out, starts)` for each output pixel in order, where `out` is the offset of
    /// its channels in the result and `starts` the offsets in the image of the runs of
    /// `size · c` elements (one per window row) that its window covers.
    fn for_each_window(&self, mut f: impl FnMut(usize, &[usize])) {
        let (win, c) = (self.win, self.c);
        let mut starts = vec![0; win.size_h];
        let mut out = 0;
        for bi in 0..self.b {
            for oy in 0..win.out_h {
                for ox in 0..win.out_w {
                    for (i, s) in starts.iter_mut().enumerate() {
                        *s = ((bi * win.h + oy * win.stride + i) * win.w + ox * win.stride) * c;
                    }
                    f(out, &starts);
                    out += c;
                }
            }
        }
    }
}

/// Calls `f(out, chosen)` for each window of a max pooling of `x`, where `out` is the offset
/// of the window's channels in the result and `chosen[ch]` the offset in `x` of channel
/// `ch`'s maximum: the first in the window's row-major order on ties, and the first NaN if
/// there is one (a NaN wins, as in the pooled value, which is then NaN). The positions of
/// one window at a time are kept, not those of the whole result.
fn for_each_max(x: &[f64], p: &Pool, mut f: impl FnMut(usize, &[usize])) {
    let (c, size_w) = (p.c, p.win.size_w);
    if p.y_shape().size() == 0 {
        return;
    }
    // The best value per channel and the offset of its pixel from the window's first pixel,
    // held as an f64 so that the comparison loop below selects between f64 lanes only,
    // which the compiler vectorises (with a usize offset beside the f64 it did not);
    // offsets are below the array's size, far below 2^53, so they are exact.
    let (mut best, mut which) = (vec![0.0; c], vec![0.0; c]);
    let mut chosen = vec![0; c];
    p.for_each_window(|out, starts| {
        // The window's first pixel is the starting point; the walk in row-major order then
        // replaces the best only with a strictly greater value (so the first of equal
        // maxima stays) or with the first NaN.
        best.copy_from_slice(&x[starts[0]..starts[0] + c]);
        which.fill(0.0);
        for (i, &row) in starts.iter().enumerate() {
            for j in usize::from(i == 0)..size_w {
                let at = row + j * c;
                let offset = (at - starts[0]) as f64;
                // Zipped iterators, non-short-circuiting `|` and `&`, and selects by bit mask
                // rather than indexing and branches: the compiler vectorises this form, and
                // turned `if better { .. } else { .. }` into a branch per lane, which random
                // data mispredicts (three times slower).
                for ((&cand, v), w) in x[at..at + c].iter().zip(best.iter_mut()).zip(which.iter_mut()) {
                    let better = (cand > *v) | (cand.is_nan() & !v.is_nan());
                    let mask = u64::from(better).wrapping_neg();
                    *v = select(mask, cand, *v);
                    *w = select(mask, offset, *w);
                }
            }
        }
        for (ch, (q, &offset)) in chosen.iter_mut().zip(&which).enumerate() {
            *q = starts[0] + offset as usize + ch;
        }
        f(out, &chosen);
    });
}

/// `a` where `mask` is all ones, `b` where it is zero, without a branch.
fn select(mask: u64, a: f64, b: f64) -> f64 {
    f64::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
}

/// `max_pool2d(x, size, stride)`: the maximum of each `size × size` window (no padding) of
/// each channel of `x: [b, h, w, c]`; NaN if the window holds one.
pub fn max_pool2d(x: &Array, size: usize, stride: usize) -> Array {
    max_pool2d_pick(x, x, size, stride)
}

/// The JVP of `max_pool2d` at `x` applied to the tangent `t` (shaped like `x`): for each
/// window and channel, `t` where `x` has its maximum (see [`for_each_max`] for ties and NaN).
pub fn max_pool2d_pick(x: &Array, t: &Array, size: usize, stride: usize) -> Array {
    let p = Pool::new(x.shape(), size, stride);
    check_like(t, x.shape(), "max_pool2d_pick");
    let t = t.data();
    let mut y = vec![0.0; p.y_shape().size()];
    for_each_max(x.data(), &p, |out, chosen| {
        for (v, &q) in y[out..out + chosen.len()].iter_mut().zip(chosen) {
            *v = t[q];
        }
    });
    Array::new(p.y_shape(), y)
}

/// The adjoint of `t ↦ max_pool2d_pick(x, t)`: each entry of `ct` (shaped like the pooled
/// result) added at its window's chosen position, giving an array shaped like `x`.
/// Overlapping windows that choose the same pixel both add to it.
pub fn max_pool2d_scatter(x: &Array, ct: &Array, size: usize, stride: usize) -> Array {
    let p = Pool::new(x.shape(), size, stride);
    check_like(ct, p.y_shape(), "max_pool2d_scatter");
    let g = ct.data();
    let mut dx = vec![0.0; x.shape().size()];
    for_each_max(x.data(), &p, |out, chosen| {
        for (&q, v) in chosen.iter().zip(&g[out..out + chosen.len()]) {
            dx[q] += v;
        }
    });
    Array::new(x.shape(), dx)
}

/// `avg_pool2d(x, size, stride)`: the mean of each `size × size` window (no padding) of each
/// channel of `x: [b, h, w, c]`.
pub fn avg_pool2d(x: &Array, size: usize, stride: usize) -> Array {
    let p = Pool::new(x.shape(), size, stride);
    let (c, data) = (p.c, x.data());
    let mut y = vec![0.0; p.y_shape().size()];
    if y.is_empty() {
        return Array::new(p.y_shape(), y);
    }
    let count = (size * size) as f64;
    p.for_each_window(|out, starts| {
        let acc = &mut y[out..out + c];
        for &row in starts {
            for pixel in data[row..row + size * c].chunks_exact(c) {
                for (a, v) in acc.iter_mut().zip(pixel) {
                    *a += v;
                }
            }
        }
        for a in acc.iter_mut() {
            *a /= count;
        }
    });
    Array::new(p.y_shape(), y)
}

/// The adjoint of `avg_pool2d` applied to `ct` (shaped like the pooled result): each entry
/// divided by `size²` and added to every pixel of its window, giving an array `x_shape`.
pub fn avg_pool2d_transpose(ct: &Array, size: usize, stride: usize, x_shape: Shape) -> Array {
    let p = Pool::new(x_shape, size, stride);
    check_like(ct, p.y_shape(), "avg_pool2d_transpose");
    let (c, g) = (p.c, ct.data());
    let mut dx = vec![0.0; x_shape.size()];
    if g.is_empty() {
        return Array::new(x_shape, dx);
    }
    let count = (size * size) as f64;
    let mut share = vec![0.0; c];
    p.for_each_window(|out, starts| {
        for (s, v) in share.iter_mut().zip(&g[out..out + c]) {
            *s = v / count;
        }
        for &row in starts {
            for pixel in dx[row..row + size * c].chunks_exact_mut(c) {
                for (d, s) in pixel.iter_mut().zip(&share) {
                    *d += s;
                }
            }
        }
    });
    Array::new(x_shape, dx)
}

/// An operand of a pooling's derivative must have the shape its rule says.
fn check_like(a: &Array, shape: Shape, what: &str) {
    if a.shape() != shape {
        panic!("internal error: `{what}` given an operand of shape {:?}, not {:?}", a.shape(), shape);
    }
}
