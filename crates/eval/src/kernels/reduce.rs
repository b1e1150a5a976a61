//! Reductions: sums (with several accumulators, so the loop vectorises), maxima and argmax,
//! over any set of axes, and `sum_to` (the reverse of broadcasting).

use super::layout::{for_each_row, rows};
use ad_ir::prim::Axes;
use ad_ir::scalar;
use ad_ir::{Array, Shape};

/// Sum with eight independent accumulators: vectorises, and is more accurate than one
/// running sum.
pub fn sum_slice(xs: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for x in rest {
        s += x;
    }
    s
}

pub fn max_slice(xs: &[f64]) -> f64 {
    xs.iter().fold(f64::NEG_INFINITY, |m, &x| scalar::max(m, x))
}

fn argmax_slice(xs: impl Iterator<Item = f64>) -> f64 {
    let mut best = (0usize, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x.is_nan() {
            return i as f64;
        }
        if x > best.1 || i == 0 {
            best = (i, x);
        }
    }
    best.0 as f64
}

super::simd::wide_fn! {
    /// Folds each row of `d` (rows as long as `acc`) into `acc`, element by element, one
    /// row after another: a reduction over leading axes, vectorised along the rows.
    fn fold_rows[F: Fn(f64, f64) -> f64 + Copy](acc: &mut [f64], d: &[f64], fold: F) = fold_rows_plain;
}

#[inline(always)]
fn fold_rows_plain<F: Fn(f64, f64) -> f64 + Copy>(acc: &mut [f64], d: &[f64], fold: F) {
    for row in d.chunks_exact(acc.len()) {
        for (x, &y) in acc.iter_mut().zip(row) {
            *x = fold(*x, y);
        }
    }
}

/// Reduces over a set of axes: `whole` reduces a contiguous run of elements to one value,
/// `fold` combines two partial results, `init` starts an empty one. Reducing every axis, or
/// the trailing ones, works on contiguous runs; other sets walk the input row by row.
fn reduce(
    a: &Array,
    axes: Axes,
    out: Shape,
    init: f64,
    whole: impl Fn(&[f64]) -> f64,
    fold: impl Fn(f64, f64) -> f64 + Copy,
) -> Array {
    let s = a.shape();
    let r = s.rank();
    let d = a.data();
    // The reduced axes are the last k: each result element is one contiguous run.
    let k = (0..r).rev().take_while(|i| axes.contains(*i)).count();
    if k == axes.count() {
        let run: usize = s.dims()[r - k..].iter().product();
        let data = if run == 0 { vec![whole(&[]); out.size()] } else { d.chunks(run).map(&whole).collect() };
        return Array::new(out, data);
    }
    // The reduced axes are the first j: the input is rows of the result's size, folded in
    // one after another (each result element sees its terms in the order of the general
    // walk below, so the bits are the same), with no walk to pay per row.
    let j = (0..r).take_while(|i| axes.contains(*i)).count();
    if j == axes.count() {
        let n = out.size();
        let mut acc = vec![init; n];
        if n > 0 {
            fold_rows(&mut acc, d, fold);
        }
        return Array::new(out, acc);
    }
    // Otherwise every input row adds into the result with strides that skip the reduced
    // axes.
    let kept = axes.keep(s);
    let own = kept.strides();
    let to_out: Vec<usize> = (0..r).map(|i| if axes.contains(i) { 0 } else { own[i] }).collect();
    let input = s.strides();
    let step = to_out.last().copied().unwrap_or(0);
    let n = s.dims().last().copied().unwrap_or(1);
    let mut acc = vec![init; out.size()];
    for_each_row(s, &[&input, &to_out], |o| {
        let row = &d[o[0]..o[0] + n];
        if step == 0 {
            acc[o[1]] = fold(acc[o[1]], whole(row));
        } else {
            for (x, &y) in acc[o[1]..o[1] + n].iter_mut().zip(row) {
                *x = fold(*x, y);
            }
        }
    });
    Array::new(out, acc)
}

pub fn sum(a: &Array, axes: Axes, out: Shape) -> Array {
    reduce(a, axes, out, 0.0, sum_slice, |x, y| x + y)
}

pub fn amax(a: &Array, axes: Axes, out: Shape) -> Array {
    reduce(a, axes, out, f64::NEG_INFINITY, max_slice, scalar::max)
}

pub fn prod(a: &Array, axes: Axes, out: Shape) -> Array {
    reduce(a, axes, out, 1.0, |xs| xs.iter().product(), |x, y| x * y)
}

/// Running sums along `axis`, from its start (or from its end when `reverse`).
pub fn cumsum(a: &Array, axis: usize, reverse: bool) -> Array {
    let s = a.shape();
    let len = s.dim(axis);
    let inner: usize = s.dims()[axis + 1..].iter().product();
    let outer: usize = s.dims()[..axis].iter().product();
    let mut d = a.data().to_vec();
    for o in 0..outer {
        let base = o * len * inner;
        for k in 0..inner {
            let mut acc = 0.0;
            for j in 0..len {
                let i = if reverse { len - 1 - j } else { j };
                let at = base + i * inner + k;
                acc += d[at];
                d[at] = acc;
            }
        }
    }
    Array::new(s, d)
}

/// The first position of the largest element (of the first NaN, if any), over everything
/// or along one axis.
pub fn argmax(a: &Array, axis: Option<usize>, out: Shape) -> Array {
    let d = a.data();
    let Some(axis) = axis else {
        return Array::new(out, vec![argmax_slice(d.iter().copied())]);
    };
    let s = a.shape();
    let (len, step) = (s.dim(axis), s.strides()[axis]);
    // One scan along the axis for each element of the result.
    let input = s.strides();
    let at: Vec<usize> = (0..s.rank()).filter(|i| *i != axis).map(|i| input[i]).collect();
    let (_, n) = rows(out);
    let last = at.last().copied().unwrap_or(0);
    let mut data = Vec::with_capacity(out.size());
    for_each_row(out, &[&at], |o| {
        for j in 0..n {
            let base = o[0] + j * last;
            data.push(argmax_slice((0..len).map(|i| d[base + i * step])));
        }
    });
    Array::new(out, data)
}

/// Sums the axes that broadcasting `target` to `a`'s shape would stretch: the transpose of
/// `broadcast_to`.
pub fn sum_to(a: &Array, target: Shape) -> Array {
    let s = a.shape();
    if s == target {
        return a.clone();
    }
    let lead = s.rank() - target.rank();
    let axes: Vec<usize> =
        (0..s.rank()).filter(|&i| i < lead || (target.dim(i - lead) == 1 && s.dim(i) != 1)).collect();
    let axes = Axes::of(&axes);
    sum(a, axes, axes.reduce(s)).reshaped(target)
}
