//! Elementwise kernels with NumPy broadcasting. Each kernel writes into a dying input's
//! buffer when it can (the interpreter hands over sole ownership of operands at their last
//! use), so a chain of elementwise operations allocates once.

use super::layout::{broadcast_strides, for_each_row, inner, rows};
use ad_ir::prim::{Binary, Unary};
use ad_ir::scalar;
use ad_ir::{Array, Shape};

pub fn unary(op: Unary, mut a: Array) -> Array {
    if let Some(d) = a.data_mut() {
        unary_slice(op, d, None);
        return a;
    }
    let mut out = vec![0.0; a.shape().size()];
    unary_slice(op, &mut out, Some(a.data()));
    Array::new(a.shape(), out)
}

/// `dst[i] = op(src[i])`, or `op(dst[i])` in place without a source: the loop `unary` runs,
/// which the compiled tier also calls for long steps.
pub(crate) fn unary_slice(op: Unary, dst: &mut [f64], src: Option<&[f64]>) {
    match op {
        Unary::Neg => map_into(dst, src, |x| -x),
        Unary::Exp => map_into(dst, src, scalar::exp),
        Unary::Log => map_into(dst, src, f64::ln),
        Unary::Sin => map_into(dst, src, f64::sin),
        Unary::Cos => map_into(dst, src, f64::cos),
        Unary::Tanh => map_into(dst, src, scalar::tanh),
        Unary::Sqrt => map_into(dst, src, f64::sqrt),
        Unary::Abs => map_into(dst, src, f64::abs),
        Unary::Sigmoid => map_into(dst, src, scalar::sigmoid),
        Unary::Relu => map_into(dst, src, scalar::relu),
        Unary::Sign => map_into(dst, src, scalar::sign),
        // The rest through their scalar definitions (libm's portable implementations).
        op => map_into(dst, src, move |x| scalar::unary(op, x)),
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
        Binary::SafeMul => zip(a, b, out, scalar::safe_mul),
        op => zip(a, b, out, move |x, y| scalar::binary(op, x, y)),
    }
}

#[inline]
pub fn map(mut a: Array, f: impl Fn(f64) -> f64 + Copy + Send + Sync) -> Array {
    if let Some(d) = a.data_mut() {
        map_into(d, None, f);
        return a;
    }
    let mut out = vec![0.0; a.shape().size()];
    map_into(&mut out, Some(a.data()), f);
    Array::new(a.shape(), out)
}

/// `dst[i] = f(src[i])` (or `f(dst[i])` without a source), compiled for AVX-512 or AVX2 when
/// the processor has them: the transcendental functions are written without branches, so
/// the same loop runs eight or four lanes at a time.
#[inline(always)]
fn map_into(dst: &mut [f64], src: Option<&[f64]>, f: impl Fn(f64) -> f64 + Copy + Send + Sync) {
    // Large arrays are split across cores; below this, starting threads costs more.
    const PARALLEL_ABOVE: usize = 32_768;
    const CHUNK: usize = 16_384;
    if dst.len() > PARALLEL_ABOVE {
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

#[inline(always)]
fn map_chunk(dst: &mut [f64], src: Option<&[f64]>, f: impl Fn(f64) -> f64 + Copy) {
    #[cfg(target_arch = "x86_64")]
    {
        match simd_level() {
            // SAFETY: the processor supports these instructions (checked by simd_level).
            Simd::Avx512 => return unsafe { map_avx512(dst, src, f) },
            Simd::Avx2 => return unsafe { map_avx2(dst, src, f) },
            Simd::None => {}
        }
    }
    map_plain(dst, src, f)
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2(dst: &mut [f64], src: Option<&[f64]>, f: impl Fn(f64) -> f64) {
    map_plain(dst, src, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn map_avx512(dst: &mut [f64], src: Option<&[f64]>, f: impl Fn(f64) -> f64) {
    map_plain(dst, src, f)
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Simd {
    None,
    Avx2,
    Avx512,
}

#[cfg(target_arch = "x86_64")]
fn simd_level() -> Simd {
    use std::arch::is_x86_feature_detected as has;
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        if has!("avx512f") && has!("avx512dq") && has!("avx2") && has!("fma") {
            Simd::Avx512
        } else if has!("avx2") && has!("fma") {
            Simd::Avx2
        } else {
            Simd::None
        }
    })
}

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
            return map(a.into_reshaped(out), |x| f(x, y));
        }
    }
    if sa.size() == 1 {
        let x = a.data()[0];
        if sb.size() == out.size() {
            return map(b.into_reshaped(out), |y| f(x, y));
        }
    }
    // General broadcasting: row by row over the result, each operand read with the strides
    // that repeat it along its missing or size-1 axes.
    let (sa, sb) = (broadcast_strides(sa, out), broadcast_strides(sb, out));
    let (ia, ib) = (inner(&sa), inner(&sb));
    let (_, n) = rows(out);
    let (ad, bd) = (a.data(), b.data());
    let mut data = Vec::with_capacity(out.size());
    for_each_row(out, &[&sa, &sb], |o| {
        let (ai, bi) = (o[0], o[1]);
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
    });
    Array::new(out, data)
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
