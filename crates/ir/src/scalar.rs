//! Scalar semantics of the elementwise primitives. The interpreter's kernels call these in
//! their loops and lowering folds constants with them, so a number means the same thing
//! wherever it is computed.

use crate::prim::{Binary, Unary};

#[inline]
pub fn sigmoid(x: f64) -> f64 {
    // Two branches so that exp never overflows: both are exact formulas for the logistic.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[inline]
pub fn relu(x: f64) -> f64 {
    // `f64::max` would turn NaN into 0; keep NaN a NaN as NumPy and JAX do.
    if x > 0.0 || x.is_nan() {
        x
    } else {
        0.0
    }
}

#[inline]
pub fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0 // 0 stays 0, NaN stays NaN
    }
}

#[inline]
pub fn pow(x: f64, y: f64) -> f64 {
    if y == 2.0 {
        x * x
    } else if y == y.trunc() && y.abs() <= 64.0 {
        x.powi(y as i32)
    } else {
        x.powf(y)
    }
}

#[inline]
pub fn max(x: f64, y: f64) -> f64 {
    // NaN-propagating, as numpy.maximum.
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x >= y {
        x
    } else {
        y
    }
}

#[inline]
pub fn min(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x <= y {
        x
    } else {
        y
    }
}

#[inline]
fn b(c: bool) -> f64 {
    if c {
        1.0
    } else {
        0.0
    }
}

#[inline]
pub fn unary(op: Unary, x: f64) -> f64 {
    match op {
        Unary::Neg => -x,
        Unary::Exp => x.exp(),
        Unary::Log => x.ln(),
        Unary::Sin => x.sin(),
        Unary::Cos => x.cos(),
        Unary::Tanh => x.tanh(),
        Unary::Sqrt => x.sqrt(),
        Unary::Abs => x.abs(),
        Unary::Sigmoid => sigmoid(x),
        Unary::Relu => relu(x),
        Unary::Sign => sign(x),
        Unary::Not => b(x == 0.0),
    }
}

#[inline]
pub fn binary(op: Binary, x: f64, y: f64) -> f64 {
    match op {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
        Binary::Pow => pow(x, y),
        Binary::Max => max(x, y),
        Binary::Min => min(x, y),
        Binary::Lt => b(x < y),
        Binary::Le => b(x <= y),
        Binary::Gt => b(x > y),
        Binary::Ge => b(x >= y),
        Binary::Eq => b(x == y),
        Binary::Ne => b(x != y),
        Binary::And => b(x != 0.0 && y != 0.0),
        Binary::Or => b(x != 0.0 || y != 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_values() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!(relu(f64::NAN).is_nan());
        assert_eq!(relu(-2.0), 0.0);
        assert_eq!(sign(-0.0), 0.0);
        assert!(max(1.0, f64::NAN).is_nan());
        assert_eq!(pow(-2.0, 3.0), -8.0);
        assert_eq!(pow(4.0, 0.5), 2.0);
        assert_eq!(binary(Binary::And, 2.0, 0.0), 0.0);
        assert_eq!(unary(Unary::Not, 0.0), 1.0);
    }
}
