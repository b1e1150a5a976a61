//! Scalar semantics of the elementwise primitives. The interpreter's kernels call these in
//! their loops and lowering folds constants with them, so a number means the same thing
//! wherever it is computed.

use crate::prim::{Binary, Unary};

#[inline]
pub fn sigmoid(x: f64) -> f64 {
    // e^-|x| never overflows; both forms are exact formulas for the logistic.
    let e = exp(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// The exponential, written without branches so that loops over arrays vectorise, and in
/// Rust rather than the platform's libm so that results are the same everywhere. Error
/// below 2 ulp (at most 1 eps relative, measured over [-730, 730]): x = k ln 2 + r with
/// |r| ≤ ln 2 / 2, e^r by its Taylor polynomial of degree 13, and 2^k applied in two halves
/// so that subnormal results and overflow come out right.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Adding and subtracting 1.5·2^52 rounds to the nearest integer without a branch.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let xc = x.clamp(-746.0, 710.0);
    let t = xc * LOG2E + ROUND;
    let k = t - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    // e^r = 1 + r + r² h(r), h of degree 11 evaluated by Estrin's scheme (pairs, then
    // pairs of pairs: a dependency chain of five steps instead of Horner's thirteen, which
    // made this loop wait on latency: 20% faster vectorised). Adding 1 last keeps the error
    // of the terms below it small against the result: at most 1 eps relative.
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let a0 = 0.5 + r * (1.0 / 6.0);
    let a1 = 1.0 / 24.0 + r * (1.0 / 120.0);
    let a2 = 1.0 / 720.0 + r * (1.0 / 5_040.0);
    let a3 = 1.0 / 40_320.0 + r * (1.0 / 362_880.0);
    let a4 = 1.0 / 3_628_800.0 + r * (1.0 / 39_916_800.0);
    let a5 = 1.0 / 479_001_600.0 + r * (1.0 / 6_227_020_800.0);
    let h = ((a0 + a1 * r2) + (a2 + a3 * r2) * r4) + (a4 + a5 * r2) * r8;
    let p = 1.0 + (r + r2 * h);
    // The integer k sits in the low bits of t. Split k + 2048 (positive, so logical shifts
    // do) into two halves and build 2^(half - 1024) from exponent bits: integer operations
    // that vectorise on every x86-64 (a float-to-int64 conversion would not).
    let kb = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(2048);
    let k1 = kb >> 1;
    let k2 = kb - k1;
    let s1 = f64::from_bits((k1 - 1) << 52);
    let s2 = f64::from_bits((k2 - 1) << 52);
    let y = p * s1 * s2;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// Hyperbolic tangent (Cephes' method, error about 1 ulp): a rational approximation for
/// |x| ≤ 0.625, where `1 - 2/(e^2x + 1)` would cancel, and that formula elsewhere. Both are
/// computed and one selected, so that loops vectorise.
#[inline(always)]
pub fn tanh(x: f64) -> f64 {
    const P: [f64; 3] = [-9.643_991_794_250_522e-1, -9.928_772_310_019_186e1, -1.614_687_684_417_084_5e3];
    const Q: [f64; 3] = [1.128_116_784_916_329_3e2, 2.235_488_390_601_004_6e3, 4.844_063_053_251_255e3];
    let z = x.abs();
    let big = 1.0 - 2.0 / (exp(2.0 * z) + 1.0);
    let big = if x < 0.0 { -big } else { big };
    let s = x * x;
    let p = (P[0] * s + P[1]) * s + P[2];
    let q = ((s + Q[0]) * s + Q[1]) * s + Q[2];
    let small = x + x * s * (p / q);
    if z > 0.625 {
        big
    } else {
        small
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
pub fn safe_mul(t: f64, p: f64) -> f64 {
    // Symmetric: which factor is the tangent and which the coefficient changes from one
    // derivative to the next (a cotangent of one pass is a coefficient of the next), and
    // forward and reverse mode must agree.
    if t == 0.0 || p == 0.0 {
        0.0
    } else {
        t * p
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

/// The remainder of `x / y` with the sign of `y` (NumPy's `mod`, Python's `%`); a zero
/// remainder takes the sign of `y` too, and `y = 0` gives NaN.
#[inline]
pub fn remainder(x: f64, y: f64) -> f64 {
    let r = libm::fmod(x, y);
    if y == 0.0 || r.is_nan() {
        r
    } else if r == 0.0 {
        0.0f64.copysign(y)
    } else if (r < 0.0) != (y < 0.0) {
        r + y
    } else {
        r
    }
}

/// `log(exp(x) + exp(y))`, computed as NumPy's `logaddexp`: the larger plus
/// `log1p(exp(-|x - y|))`, and `x + log 2` when they are equal (so that infinities of one
/// sign give themselves).
#[inline]
pub fn logaddexp(x: f64, y: f64) -> f64 {
    if x == y {
        return x + std::f64::consts::LN_2;
    }
    let d = x - y;
    if d > 0.0 {
        x + libm::log1p(exp(-d))
    } else if d <= 0.0 {
        y + libm::log1p(exp(d))
    } else {
        d
    }
}

/// 1 for true, 0 for false: the numbers comparisons give.
#[inline]
pub fn truth(c: bool) -> f64 {
    if c {
        1.0
    } else {
        0.0
    }
}

/// An elementwise operation of one operand on a number ([`Unary::eval`]).
#[inline]
pub fn unary(op: Unary, x: f64) -> f64 {
    op.eval(x)
}

/// An elementwise operation of two operands on numbers ([`Binary::eval`]).
#[inline]
pub fn binary(op: Binary, x: f64, y: f64) -> f64 {
    op.eval(x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0;
        let mut x = -745.5;
        while x < 709.8 {
            worst = worst.max(ulps(exp(x), x.exp()));
            x += 0.0123;
        }
        assert!(worst <= 2, "{worst} ulp");
        for x in [-1e-300, 0.0, 1e-10, 0.5, 1.0, 88.7, 700.0] {
            assert!(ulps(exp(x), x.exp()) <= 2, "{x}");
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!(exp(f64::NAN).is_nan());
        // Subnormal results.
        assert!(ulps(exp(-740.0), (-740.0f64).exp()) <= 2);
    }

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
