//! Kernels that move data without arithmetic: broadcasting, indexing and padding,
//! concatenation, stacking, transposition.

use ad_ir::prim::Sel;
use ad_ir::{Array, Shape};

pub fn broadcast_to(a: &Array, out: Shape) -> Array {
    if a.shape() == out {
        return a.clone();
    }
    if a.shape().size() == out.size() {
        return a.reshaped(out);
    }
    let [m, n] = out.padded2();
    let [am, an] = a.shape().padded2();
    let d = a.data();
    let mut data = Vec::with_capacity(m * n);
    for i in 0..m {
        let r = if am == 1 { 0 } else { i * an };
        if an == 1 {
            data.extend(std::iter::repeat_n(d[r], n));
        } else {
            data.extend_from_slice(&d[r..r + n]);
        }
    }
    Array::new(out, data)
}

fn range(sel: Sel) -> (usize, usize) {
    match sel {
        Sel::At(i) => (i, i + 1),
        Sel::Range(a, b) => (a, b),
    }
}

pub fn index(a: &Array, sels: &[Sel], out: Shape) -> Array {
    let d = a.data();
    match *sels {
        [s] => {
            let (lo, hi) = range(s);
            Array::new(out, d[lo..hi].to_vec())
        }
        [r, c] => {
            let n = a.shape().dim(1);
            let ((r0, r1), (c0, c1)) = (range(r), range(c));
            let mut data = Vec::with_capacity((r1 - r0) * (c1 - c0));
            for i in r0..r1 {
                data.extend_from_slice(&d[i * n + c0..i * n + c1]);
            }
            Array::new(out, data)
        }
        _ => a.clone(),
    }
}

pub fn pad(a: &Array, widths: &[(usize, usize)], out: Shape) -> Array {
    let mut data = vec![0.0; out.size()];
    let d = a.data();
    match (widths, a.shape().dims()) {
        ([(lo, _)], [n]) => data[*lo..*lo + n].copy_from_slice(d),
        ([(r0, _), (c0, _)], [m, n]) => {
            let on = out.dim(1);
            for i in 0..*m {
                let dst = (i + r0) * on + c0;
                data[dst..dst + n].copy_from_slice(&d[i * n..(i + 1) * n]);
            }
        }
        _ => data.copy_from_slice(d),
    }
    Array::new(out, data)
}

pub fn concat(a: &Array, b: &Array, axis: usize, out: Shape) -> Array {
    let mut data = Vec::with_capacity(out.size());
    if axis == 0 {
        data.extend_from_slice(a.data());
        data.extend_from_slice(b.data());
    } else {
        let (na, nb) = (a.shape().dim(1), b.shape().dim(1));
        for i in 0..out.dim(0) {
            data.extend_from_slice(&a.data()[i * na..(i + 1) * na]);
            data.extend_from_slice(&b.data()[i * nb..(i + 1) * nb]);
        }
    }
    Array::new(out, data)
}

pub fn stack(parts: &[Array], out: Shape) -> Array {
    let mut data = Vec::with_capacity(out.size());
    for p in parts {
        data.extend_from_slice(p.data());
    }
    Array::new(out, data)
}

pub fn transpose(a: &Array, out: Shape) -> Array {
    let [m, n] = match a.shape().dims() {
        [m, n] => [*m, *n],
        _ => return a.clone(),
    };
    let d = a.data();
    let mut data = vec![0.0; m * n];
    // Blocked, so that both sides stay in cache for large matrices.
    const B: usize = 32;
    for ib in (0..m).step_by(B) {
        for jb in (0..n).step_by(B) {
            for i in ib..(ib + B).min(m) {
                for j in jb..(jb + B).min(n) {
                    data[j * m + i] = d[i * n + j];
                }
            }
        }
    }
    Array::new(out, data)
}
