//! Elementwise kernels with NumPy broadcasting. Each kernel writes into a dying input's
//! buffer when it can (the interpreter hands over sole ownership of operands at their last
//! use), so a chain of elementwise operations allocates once.

use ad_ir::prim::{Binary, Unary};
use ad_ir::scalar;
use ad_ir::{Array, Shape};

pub fn unary(op: Unary, a: Array) -> Array {
    match op {
        Unary::Neg => map(a, |x| -x),
        Unary::Exp => map(a, f64::exp),
        Unary::Log => map(a, f64::ln),
        Unary::Sin => map(a, f64::sin),
        Unary::Cos => map(a, f64::cos),
        Unary::Tanh => map(a, scalar::tanh),
        Unary::Sqrt => map(a, f64::sqrt),
        Unary::Abs => map(a, f64::abs),
        Unary::Sigmoid => map(a, scalar::sigmoid),
        Unary::Relu => map(a, scalar::relu),
        Unary::Sign => map(a, scalar::sign),
        Unary::Not => map(a, |x| scalar::unary(Unary::Not, x)),
    }
}

pub fn binary(op: Binary, a: Array, b: Array, out: Shape) -> Array {
    match op {
        Binary::Add => zip(a, b, out, |x, y| x + y),
        Binary::Sub => zip(a, b, out, |x, y| x - y),
        Binary::Mul => zip(a, b, out, |x, y| x * y),
        Binary::Div => zip(a, b, out, |x, y| x / y),
        Binary::Pow => zip(a, b, out, scalar::pow),
        Binary::Max => zip(a, b, out, scalar::max),
        Binary::Min => zip(a, b, out, scalar::min),
        op => zip(a, b, out, move |x, y| scalar::binary(op, x, y)),
    }
}

#[inline]
pub fn map(mut a: Array, f: impl Fn(f64) -> f64) -> Array {
    if let Some(d) = a.data_mut() {
        for x in d.iter_mut() {
            *x = f(*x);
        }
        return a;
    }
    let data: Vec<f64> = a.data().iter().map(|&x| f(x)).collect();
    Array::new(a.shape(), data)
}

/// Row and column strides of an operand broadcast to a `[m, n]` (padded) result: a stride of
/// 0 repeats along that axis.
fn strides(s: Shape) -> (usize, usize) {
    let [m, n] = s.padded2();
    let cs = if n == 1 { 0 } else { 1 };
    let rs = if m == 1 { 0 } else { n };
    (rs, cs)
}

#[inline]
pub fn zip(mut a: Array, mut b: Array, out: Shape, f: impl Fn(f64, f64) -> f64) -> Array {
    let (sa, sb) = (a.shape(), b.shape());
    if sa == out && sb.size() == out.size() {
        if let Some(d) = a.data_mut() {
            for (x, &y) in d.iter_mut().zip(b.data()) {
                *x = f(*x, y);
            }
            return a;
        }
    }
    if sb == out && sa.size() == out.size() {
        if let Some(d) = b.data_mut() {
            for (y, &x) in d.iter_mut().zip(a.data()) {
                *y = f(x, *y);
            }
            return b;
        }
    }
    if sa.size() == out.size() && sb.size() == out.size() {
        let data = a.data().iter().zip(b.data()).map(|(&x, &y)| f(x, y)).collect();
        return Array::new(out, data);
    }
    if sb.size() == 1 {
        let y = b.data()[0];
        if sa.size() == out.size() {
            return map(a.reshaped(out), |x| f(x, y));
        }
    }
    if sa.size() == 1 {
        let x = a.data()[0];
        if sb.size() == out.size() {
            return map(b.reshaped(out), |y| f(x, y));
        }
    }
    // General broadcasting over a padded [m, n] result.
    let [m, n] = out.padded2();
    let (ars, acs) = strides(sa);
    let (brs, bcs) = strides(sb);
    let (ad, bd) = (a.data(), b.data());
    let mut data = Vec::with_capacity(m * n);
    for i in 0..m {
        let (ai, bi) = (i * ars, i * brs);
        if acs == 1 && bcs == 1 {
            data.extend(ad[ai..ai + n].iter().zip(&bd[bi..bi + n]).map(|(&x, &y)| f(x, y)));
        } else if acs == 1 {
            let y = bd[bi];
            data.extend(ad[ai..ai + n].iter().map(|&x| f(x, y)));
        } else if bcs == 1 {
            let x = ad[ai];
            data.extend(bd[bi..bi + n].iter().map(|&y| f(x, y)));
        } else {
            let v = f(ad[ai], bd[bi]);
            data.extend(std::iter::repeat_n(v, n));
        }
    }
    Array::new(out, data)
}

pub fn select(c: &Array, a: &Array, b: &Array, out: Shape) -> Array {
    let [m, n] = out.padded2();
    let (crs, ccs) = strides(c.shape());
    let (ars, acs) = strides(a.shape());
    let (brs, bcs) = strides(b.shape());
    let (cd, ad, bd) = (c.data(), a.data(), b.data());
    let mut data = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let v = if cd[i * crs + j * ccs] != 0.0 { ad[i * ars + j * acs] } else { bd[i * brs + j * bcs] };
            data.push(v);
        }
    }
    Array::new(out, data)
}
