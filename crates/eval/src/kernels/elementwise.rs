//! Elementwise kernels with NumPy broadcasting. Each kernel writes into a dying input's
//! buffer when it can (the interpreter hands over sole ownership of operands at their last
//! use), so a chain of elementwise operations allocates once.

use super::layout::{broadcast_strides, for_each_row, inner, rows};
use super::simd::wide_fn;
use ad_ir::prim::{Binary, Unary};
use ad_ir::scalar;
use ad_ir::{Array, Shape};
use std::mem::MaybeUninit;

pub fn unary(op: Unary, mut a: Array) -> Array {
    if let Some(d) = a.data_mut() {
        unary_slice(op, d, None);
        return a;
    }
    Array::new(a.shape(), with_unary!(op, |f| map_new(a.data(), f)))
}

/// `dst[i] = op(src[i])`, or `op(dst[i])` in place without a source: the loop `unary` runs,
/// which the compiled tier also calls for long steps.
pub(crate) fn unary_slice(op: Unary, dst: &mut [f64], src: Option<&[f64]>) {
    with_unary!(op, |f| map_into(dst, src, f))
}

/// `$body` with `$f` bound to the scalar function of the unary operation `$op`: the one
/// table of them, which every unary kernel shares.
macro_rules! with_unary {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            Unary::Neg => {
                let $f = |x: f64| -x;
                $body
            }
            Unary::Exp => {
                let $f = scalar::exp;
                $body
            }
            Unary::Log => {
                let $f = f64::ln;
                $body
            }
            Unary::Sin => {
                let $f = f64::sin;
                $body
            }
            Unary::Cos => {
                let $f = f64::cos;
                $body
            }
            Unary::Tanh => {
                let $f = scalar::tanh;
                $body
            }
            Unary::Sqrt => {
                let $f = f64::sqrt;
                $body
            }
            Unary::Abs => {
                let $f = f64::abs;
                $body
            }
            Unary::Sigmoid => {
                let $f = scalar::sigmoid;
                $body
            }
            Unary::Relu => {
                let $f = scalar::relu;
                $body
            }
            Unary::Sign => {
                let $f = scalar::sign;
                $body
            }
            // The rest through their scalar definitions (libm's portable implementations).
            op => {
                let $f = move |x: f64| scalar::unary(op, x);
                $body
            }
        }
    };
}
use with_unary;

/// `$body` with `$f` bound to the scalar function of the binary operation `$op`: the one
/// table of them, which the array kernel and the slice kernel (elementwise chains) share,
/// so that both compute every element with the same function.
macro_rules! with_binary {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            Binary::Add => {
                let $f = |x: f64, y: f64| x + y;
                $body
            }
            Binary::Sub => {
                let $f = |x: f64, y: f64| x - y;
                $body
            }
            Binary::Mul => {
                let $f = |x: f64, y: f64| x * y;
                $body
            }
            Binary::Div => {
                let $f = |x: f64, y: f64| x / y;
                $body
            }
            Binary::Pow => {
                let $f = scalar::pow;
                $body
            }
            Binary::Max => {
                let $f = scalar::max;
                $body
            }
            Binary::Min => {
                let $f = scalar::min;
                $body
            }
            Binary::SafeMul => {
                let $f = scalar::safe_mul;
                $body
            }
            op => {
                let $f = move |x: f64, y: f64| scalar::binary(op, x, y);
                $body
            }
        }
    };
}

pub fn binary(op: Binary, a: Array, b: Array, out: Shape) -> Array {
    with_binary!(op, |f| zip(a, b, out, f))
}

/// `dst[i] = op(a[i], b[i])` on slices of one length (elementwise chains, `chains.rs`).
pub(crate) fn binary_slice(op: Binary, dst: &mut [f64], a: &[f64], b: &[f64]) {
    with_binary!(op, |f| zip_slices(dst, a, b, f))
}

/// [`unary_slice`] from `src` into memory not yet initialised.
pub(crate) fn unary_uninit(op: Unary, dst: &mut [MaybeUninit<f64>], src: &[f64]) {
    with_unary!(op, |f| map_uninit(dst, src, f))
}

/// [`binary_slice`] into memory not yet initialised.
pub(crate) fn binary_uninit(op: Binary, dst: &mut [MaybeUninit<f64>], a: &[f64], b: &[f64]) {
    with_binary!(op, |f| zip_uninit(dst, a, b, f))
}

wide_fn! {
    fn zip_uninit[](dst: &mut [MaybeUninit<f64>], a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) = zip_uninit_plain;
}

#[inline(always)]
fn zip_uninit_plain(dst: &mut [MaybeUninit<f64>], a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) {
    for ((o, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        o.write(f(x, y));
    }
}

wide_fn! {
    /// [`select_slice`] into memory not yet initialised.
    pub(crate) fn select_uninit[](dst: &mut [MaybeUninit<f64>], c: &[f64], a: &[f64], b: &[f64]) = select_uninit_plain;
}

#[inline(always)]
fn select_uninit_plain(dst: &mut [MaybeUninit<f64>], c: &[f64], a: &[f64], b: &[f64]) {
    for (((o, &c), &x), &y) in dst.iter_mut().zip(c).zip(a).zip(b) {
        o.write(select_bits(c, x, y));
    }
}

wide_fn! {
    fn zip_slices[](dst: &mut [f64], a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) = zip_slices_plain;
}

#[inline(always)]
fn zip_slices_plain(dst: &mut [f64], a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) {
    for ((o, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

wide_fn! {
    /// `where` on slices of one length: `a[i]` where `c[i]` is not zero, else `b[i]`, as
    /// [`select`] chooses.
    pub(crate) fn select_slice[](dst: &mut [f64], c: &[f64], a: &[f64], b: &[f64]) = select_slice_plain;
}

#[inline(always)]
fn select_slice_plain(dst: &mut [f64], c: &[f64], a: &[f64], b: &[f64]) {
    for (((o, &c), &x), &y) in dst.iter_mut().zip(c).zip(a).zip(b) {
        *o = select_bits(c, x, y);
    }
}

/// `x` where `c` is not zero, else `y`, chosen on the bits of both elements, already
/// loaded: written as `if c != 0.0 { x } else { y }`, LLVM loads from the chosen address
/// instead, which it vectorises as a gather (several times slower than two plain loads).
#[inline(always)]
fn select_bits(c: f64, x: f64, y: f64) -> f64 {
    let keep_x = u64::from(c != 0.0).wrapping_neg();
    f64::from_bits((x.to_bits() & keep_x) | (y.to_bits() & !keep_x))
}

#[inline]
pub fn map(mut a: Array, f: impl Fn(f64) -> f64 + Copy + Send + Sync) -> Array {
    if let Some(d) = a.data_mut() {
        map_into(d, None, f);
        return a;
    }
    Array::new(a.shape(), map_new(a.data(), f))
}

/// `f(src[i])` in a new buffer. Below the size that runs on all cores it is written
/// straight into the buffer's spare capacity: zeroing it first would be a pass of its own
/// (and `extend` with an iterator vectorised the cheap functions but not `tanh`, which ran
/// 2.4 times slower).
fn map_new(src: &[f64], f: impl Fn(f64) -> f64 + Copy + Send + Sync) -> Vec<f64> {
    let n = src.len();
    if n > PARALLEL_MAP_ABOVE {
        let mut out = vec![0.0; n];
        map_into(&mut out, Some(src), f);
        return out;
    }
    let mut out = Vec::with_capacity(n);
    map_uninit(&mut out.spare_capacity_mut()[..n], src, f);
    // SAFETY: `map_uninit` wrote each of the first `n` elements (one per element of `src`,
    // and the slice it was given has that length), within the capacity reserved above.
    unsafe { out.set_len(n) };
    out
}

wide_fn! {
    /// `dst[i] = f(src[i])` into memory not yet initialised (`dst` and `src` of one length).
    fn map_uninit[](dst: &mut [MaybeUninit<f64>], src: &[f64], f: impl Fn(f64) -> f64 + Copy) = map_uninit_plain;
}

#[inline(always)]
fn map_uninit_plain(dst: &mut [MaybeUninit<f64>], src: &[f64], f: impl Fn(f64) -> f64) {
    for (o, &x) in dst.iter_mut().zip(src) {
        o.write(f(x));
    }
}

/// Maps over more elements than this run on all cores (below, starting threads costs
/// more than it saves).
const PARALLEL_MAP_ABOVE: usize = 32_768;

/// `dst[i] = f(src[i])` (or `f(dst[i])` without a source), compiled for AVX-512 or AVX2 when
/// the processor has them: the transcendental functions are written without branches, so
/// the same loop runs eight or four lanes at a time.
#[inline(always)]
fn map_into(dst: &mut [f64], src: Option<&[f64]>, f: impl Fn(f64) -> f64 + Copy + Send + Sync) {
    // Large arrays are split across cores.
    const CHUNK: usize = 16_384;
    if dst.len() > PARALLEL_MAP_ABOVE {
        use rayon::prelude::*;
        match src {
            Some(src) => dst
                .par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| map_chunk(d, Some(s), f)),
            None => dst.par_chunks_mut(CHUNK).for_each(|d| map_chunk(d, None, f)),
        }
        return;
    }
    map_chunk(dst, src, f)
}

wide_fn! {
    fn map_chunk[](dst: &mut [f64], src: Option<&[f64]>, f: impl Fn(f64) -> f64 + Copy) = map_plain;
}

#[inline(always)]
fn map_plain(dst: &mut [f64], src: Option<&[f64]>, f: impl Fn(f64) -> f64) {
    match src {
        Some(src) => {
            for (o, &x) in dst.iter_mut().zip(src) {
                *o = f(x);
            }
        }
        None => {
            for o in dst.iter_mut() {
                *o = f(*o);
            }
        }
    }
}

/// `f` applied elementwise to `a` and `b` broadcast to `out`, each loop compiled for the
/// processor's widest vectors ([`wide_fn!`]).
#[inline]
pub fn zip(
    mut a: Array,
    mut b: Array,
    out: Shape,
    f: impl Fn(f64, f64) -> f64 + Copy + Send + Sync,
) -> Array {
    let (sa, sb) = (a.shape(), b.shape());
    if sa == out && sb.size() == out.size() {
        if let Some(d) = a.data_mut() {
            zip_assign(d, b.data(), f);
            return a;
        }
    }
    if sb == out && sa.size() == out.size() {
        if let Some(d) = b.data_mut() {
            zip_assign(d, a.data(), move |y, x| f(x, y));
            return b;
        }
    }
    if sa.size() == out.size() && sb.size() == out.size() {
        let mut data = Vec::with_capacity(out.size());
        zip_new(&mut data, a.data(), b.data(), f);
        return Array::new(out, data);
    }
    if sb.size() == 1 {
        let y = b.data()[0];
        if sa.size() == out.size() {
            // `move`: the closure holds `y` itself. Holding a reference to it, the loop
            // compiled for wide vectors was vectorised with gathers and scatters (LLVM could
            // not tell that the writes leave `y` alone), 1.6 times slower.
            return map(a.into_reshaped(out), move |x| f(x, y));
        }
    }
    if sa.size() == 1 {
        let x = a.data()[0];
        if sb.size() == out.size() {
            return map(b.into_reshaped(out), move |y| f(x, y));
        }
    }
    let mut data = Vec::with_capacity(out.size());
    zip_broadcast(&mut data, (&a, &b), out, f);
    Array::new(out, data)
}

wide_fn! {
    /// `d[i] = f(d[i], o[i])`.
    fn zip_assign[](d: &mut [f64], o: &[f64], f: impl Fn(f64, f64) -> f64) = zip_assign_plain;
}

#[inline(always)]
fn zip_assign_plain(d: &mut [f64], o: &[f64], f: impl Fn(f64, f64) -> f64) {
    for (x, &y) in d.iter_mut().zip(o) {
        *x = f(*x, y);
    }
}

wide_fn! {
    /// `f(a[i], b[i])` appended to `data`.
    fn zip_new[](data: &mut Vec<f64>, a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) = zip_new_plain;
}

#[inline(always)]
fn zip_new_plain(data: &mut Vec<f64>, a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) {
    data.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y)));
}

/// General broadcasting: `f` of the operands broadcast to `out`, appended to `data`, row by
/// row over the result, each operand read with the strides that repeat it along its missing
/// or size-1 axes.
fn zip_broadcast(data: &mut Vec<f64>, (a, b): (&Array, &Array), out: Shape, f: impl Fn(f64, f64) -> f64) {
    let (sa, sb) = (broadcast_strides(a.shape(), out), broadcast_strides(b.shape(), out));
    let (_, n) = rows(out);
    // Where each row starts in each operand; the rows are then run by one loop compiled for
    // wide vectors (a closure called per row would be compiled for the baseline only).
    let mut starts = Vec::with_capacity(out.size() / n.max(1));
    for_each_row(out, &[&sa, &sb], |o| starts.push((o[0], o[1])));
    zip_rows(data, &starts, (a.data(), b.data()), (inner(&sa), inner(&sb), n), f);
}

wide_fn! {
    fn zip_rows[](
        data: &mut Vec<f64>,
        starts: &[(usize, usize)],
        operands: (&[f64], &[f64]),
        steps: (usize, usize, usize),
        f: impl Fn(f64, f64) -> f64
    ) = zip_rows_plain;
}

/// The rows of a broadcast `f(a, b)` starting at `starts`, `n` elements each; an operand
/// whose last stride is 0 repeats one element along the row.
#[inline(always)]
fn zip_rows_plain(
    data: &mut Vec<f64>,
    starts: &[(usize, usize)],
    (ad, bd): (&[f64], &[f64]),
    (ia, ib, n): (usize, usize, usize),
    f: impl Fn(f64, f64) -> f64,
) {
    for &(ai, bi) in starts {
        match (ia, ib) {
            (0, 0) => data.extend(std::iter::repeat_n(f(ad[ai], bd[bi]), n)),
            (_, 0) => {
                let y = bd[bi];
                data.extend(ad[ai..ai + n].iter().map(|&x| f(x, y)));
            }
            (0, _) => {
                let x = ad[ai];
                data.extend(bd[bi..bi + n].iter().map(|&y| f(x, y)));
            }
            _ => data.extend(ad[ai..ai + n].iter().zip(&bd[bi..bi + n]).map(|(&x, &y)| f(x, y))),
        }
    }
}

pub fn select(c: &Array, a: &Array, b: &Array, out: Shape) -> Array {
    let (sc, sa, sb) = (
        broadcast_strides(c.shape(), out),
        broadcast_strides(a.shape(), out),
        broadcast_strides(b.shape(), out),
    );
    let (ic, ia, ib) = (inner(&sc), inner(&sa), inner(&sb));
    let (_, n) = rows(out);
    let (cd, ad, bd) = (c.data(), a.data(), b.data());
    let mut data = Vec::with_capacity(out.size());
    for_each_row(out, &[&sc, &sa, &sb], |o| {
        for j in 0..n {
            let v = if cd[o[0] + j * ic] != 0.0 { ad[o[1] + j * ia] } else { bd[o[2] + j * ib] };
            data.push(v);
        }
    });
    Array::new(out, data)
}
