//! Reductions: sums (with several accumulators, so the loop vectorises), maxima and argmax,
//! over all elements or one axis, and `sum_to` (the reverse of broadcasting).

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

fn max_slice(xs: &[f64]) -> f64 {
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

/// Reduces along `axis` (or everything) with the given row reducer.
fn reduce(
    a: &Array,
    axis: Option<usize>,
    out: Shape,
    whole: impl Fn(&[f64]) -> f64,
    cols: impl Fn(&Array) -> Vec<f64>,
) -> Array {
    let s = a.shape();
    match (axis, s.rank()) {
        (None, _) | (Some(_), 1) => Array::new(out, vec![whole(a.data())]),
        (Some(1), 2) => {
            let n = s.dim(1);
            let data =
                if n == 0 { vec![whole(&[]); s.dim(0)] } else { a.data().chunks(n).map(&whole).collect() };
            Array::new(out, data)
        }
        _ => Array::new(out, cols(a)),
    }
}

pub fn sum(a: &Array, axis: Option<usize>, out: Shape) -> Array {
    reduce(a, axis, out, sum_slice, |a| {
        let (m, n) = a.shape().as_matrix();
        let mut acc = vec![0.0; n];
        for i in 0..m {
            for (o, x) in acc.iter_mut().zip(&a.data()[i * n..(i + 1) * n]) {
                *o += x;
            }
        }
        acc
    })
}

pub fn amax(a: &Array, axis: Option<usize>, out: Shape) -> Array {
    reduce(a, axis, out, max_slice, |a| {
        let (m, n) = a.shape().as_matrix();
        let mut acc = vec![f64::NEG_INFINITY; n];
        for i in 0..m {
            for (o, &x) in acc.iter_mut().zip(&a.data()[i * n..(i + 1) * n]) {
                *o = scalar::max(*o, x);
            }
        }
        acc
    })
}

pub fn argmax(a: &Array, axis: Option<usize>, out: Shape) -> Array {
    reduce(
        a,
        axis,
        out,
        |xs| argmax_slice(xs.iter().copied()),
        |a| {
            let (m, n) = a.shape().as_matrix();
            (0..n).map(|j| argmax_slice((0..m).map(|i| a.data()[i * n + j]))).collect()
        },
    )
}

/// Sums the axes along which `target` was broadcast to `a`'s shape.
pub fn sum_to(a: &Array, target: Shape) -> Array {
    let s = a.shape();
    if s == target {
        return a.clone();
    }
    let [tm, tn] = target.padded2();
    let [m, n] = s.padded2();
    let data = match (tm == 1 && m != 1, tn == 1 && n != 1) {
        (true, true) => vec![sum_slice(a.data())],
        // One sum per row; rows of no elements sum to 0 (chunks of an empty buffer would
        // give no rows at all).
        (false, true) => (0..m).map(|i| sum_slice(&a.data()[i * n..(i + 1) * n])).collect(),
        (true, false) => {
            let mut acc = vec![0.0; n];
            for row in a.data().chunks(n.max(1)) {
                for (o, x) in acc.iter_mut().zip(row) {
                    *o += x;
                }
            }
            acc
        }
        (false, false) => a.data().to_vec(),
    };
    Array::new(target, data)
}
