//! Forward-mode rules: the tangent of each primitive's result from its operands' tangents.
//!
//! `x` are the primal operands, `o` the primal result, `t` the operands' tangents (`None`
//! is a symbolic zero). A rule returns `None` when the result's tangent is zero. Every rule
//! is linear in `t`, with coefficients computed from `x` and `o`: that is what lets the
//! linearize/transpose route derive reverse mode without reverse rules.

use crate::emitter::{Emitter, Tan};
use ad_ir::prim::{Binary, Decomp, Prim, Sel, Unary};
use ad_ir::Atom;

pub fn jvp_rule(e: &mut Emitter, prim: &Prim, x: &[Atom], o: Atom, t: &[Tan]) -> Tan {
    use Binary::*;
    let out = e.shape(o);
    let one = Atom::Lit(1.0);
    match prim {
        Prim::Unary(u) => {
            let (x, t) = (x[0], t[0]);
            match u {
                Unary::Neg => e.neg(t),
                Unary::Exp => e.scale(t, o),
                Unary::Log => e.div(t, x),
                Unary::Sin => {
                    let c = e.un(Unary::Cos, x);
                    e.scale(t, c)
                }
                Unary::Cos => {
                    let s = e.un(Unary::Sin, x);
                    let c = e.un(Unary::Neg, s);
                    e.scale(t, c)
                }
                Unary::Tanh => {
                    let sq = e.bin(Mul, o, o);
                    let c = e.bin(Sub, one, sq);
                    e.scale(t, c)
                }
                Unary::Sqrt => {
                    let d = e.bin(Mul, Atom::Lit(2.0), o);
                    e.div(t, d)
                }
                Unary::Abs => {
                    let s = e.un(Unary::Sign, x);
                    e.scale(t, s)
                }
                Unary::Sigmoid => {
                    let c = e.bin(Sub, one, o);
                    let c = e.bin(Mul, o, c);
                    e.scale(t, c)
                }
                // relu'(0) = 0.
                Unary::Relu => {
                    let m = e.bin(Gt, x, Atom::Lit(0.0));
                    e.scale(t, m)
                }
                Unary::Tan => {
                    let sq = e.bin(Mul, o, o);
                    let c = e.bin(Add, one, sq);
                    e.scale(t, c)
                }
                Unary::Asin | Unary::Acos => {
                    let sq = e.bin(Mul, x, x);
                    let r = e.bin(Sub, one, sq);
                    let r = e.un(Unary::Sqrt, r);
                    let d = e.div(t, r);
                    if *u == Unary::Acos {
                        e.neg(d)
                    } else {
                        d
                    }
                }
                Unary::Atan => {
                    let sq = e.bin(Mul, x, x);
                    let r = e.bin(Add, one, sq);
                    e.div(t, r)
                }
                Unary::Sinh => {
                    let c = e.un(Unary::Cosh, x);
                    e.scale(t, c)
                }
                Unary::Cosh => {
                    let c = e.un(Unary::Sinh, x);
                    e.scale(t, c)
                }
                Unary::Asinh | Unary::Acosh => {
                    let sq = e.bin(Mul, x, x);
                    let r = e.bin(if *u == Unary::Asinh { Add } else { Sub }, sq, one);
                    let r = e.un(Unary::Sqrt, r);
                    e.div(t, r)
                }
                Unary::Atanh => {
                    let sq = e.bin(Mul, x, x);
                    let r = e.bin(Sub, one, sq);
                    e.div(t, r)
                }
                Unary::Log1p => {
                    let r = e.bin(Add, one, x);
                    e.div(t, r)
                }
                Unary::Expm1 => {
                    let c = e.bin(Add, o, one);
                    e.scale(t, c)
                }
                Unary::Log2 | Unary::Log10 => {
                    let ln_base =
                        if *u == Unary::Log2 { std::f64::consts::LN_2 } else { std::f64::consts::LN_10 };
                    let r = e.bin(Mul, x, Atom::Lit(ln_base));
                    e.div(t, r)
                }
                Unary::Exp2 => {
                    let c = e.bin(Mul, o, Atom::Lit(std::f64::consts::LN_2));
                    e.scale(t, c)
                }
                // erf'(x) = 2/√π e^(-x²), and erfc = 1 - erf.
                Unary::Erf | Unary::Erfc => {
                    let sq = e.bin(Mul, x, x);
                    let n = e.un(Unary::Neg, sq);
                    let g = e.un(Unary::Exp, n);
                    let k = std::f64::consts::FRAC_2_SQRT_PI * if *u == Unary::Erf { 1.0 } else { -1.0 };
                    let c = e.bin(Mul, Atom::Lit(k), g);
                    e.scale(t, c)
                }
                // cbrt'(x) = 1 / (3 cbrt(x)²): infinite at 0, as in JAX.
                Unary::Cbrt => {
                    let sq = e.bin(Mul, o, o);
                    let r = e.bin(Mul, Atom::Lit(3.0), sq);
                    e.div(t, r)
                }
                // Class zero: `jvp` never asks for these.
                Unary::Sign | Unary::Not | Unary::Floor | Unary::Ceil | Unary::Round | Unary::Trunc => None,
            }
        }
        Prim::Binary(b) => {
            let (a, c) = (x[0], x[1]);
            match b {
                Add => e.add(t[0], t[1], out),
                Sub => e.sub(t[0], t[1], out),
                Mul => {
                    let da = e.scale(t[0], c);
                    let dc = e.scale(t[1], a);
                    e.add(da, dc, out)
                }
                // d(a/c) = (da - (a/c) dc) / c
                Div => {
                    let dc = e.scale(t[1], o);
                    let num = e.sub(t[0], dc, out);
                    e.div(num, c)
                }
                Pow => {
                    let da = match (t[0], c) {
                        (None, _) => None,
                        (Some(_), Atom::Lit(0.0)) => None,
                        (Some(_), Atom::Lit(1.0)) => t[0],
                        (Some(_), Atom::Lit(2.0)) => {
                            let coef = e.bin(Mul, Atom::Lit(2.0), a);
                            e.scale(t[0], coef)
                        }
                        (Some(_), Atom::Lit(k)) => {
                            let p = e.bin(Pow, a, Atom::Lit(k - 1.0));
                            let coef = e.bin(Mul, Atom::Lit(k), p);
                            e.scale(t[0], coef)
                        }
                        // c a^(c-1), with the exponent taken as 1 where c = 0 so that the
                        // derivative of the constant a^0 is exactly 0 even at a = 0 (as a
                        // literal exponent 0 gives; JAX gives 0 · ∞ = nan there).
                        (Some(_), c) => {
                            let k1 = e.bin(Sub, c, one);
                            let z = e.bin(Eq, c, Atom::Lit(0.0));
                            let k1 = e.emit(Prim::Where, [z, one, k1]);
                            let p = e.bin(Pow, a, k1);
                            let coef = e.bin(Mul, c, p);
                            e.scale(t[0], coef)
                        }
                    };
                    // d(a^c)/dc = a^c log a, taken as 0 where a = 0 (as JAX does).
                    let dc = match t[1] {
                        None => None,
                        Some(_) => {
                            let z = e.bin(Eq, a, Atom::Lit(0.0));
                            let safe = e.emit(Prim::Where, [z, one, a]);
                            let l = e.un(Unary::Log, safe);
                            let coef = e.bin(Mul, o, l);
                            e.scale(t[1], coef)
                        }
                    };
                    e.add(da, dc, out)
                }
                // Ties share the derivative equally, as in JAX.
                Max | Min => {
                    let strict = e.bin(if *b == Max { Gt } else { Lt }, a, c);
                    let tie = e.bin(Eq, a, c);
                    let half = e.bin(Mul, Atom::Lit(0.5), tie);
                    let w = e.bin(Add, strict, half);
                    let da = e.scale(t[0], w);
                    let dc = match t[1] {
                        None => None,
                        Some(_) => {
                            let w1 = e.bin(Sub, one, w);
                            e.scale(t[1], w1)
                        }
                    };
                    e.add(da, dc, out)
                }
                // atan2(a, c) = θ with (c, a) = r (cos θ, sin θ): dθ = (c da - a dc) / (a² + c²).
                Atan2 => {
                    let r2 = {
                        let a2 = e.bin(Mul, a, a);
                        let c2 = e.bin(Mul, c, c);
                        e.bin(Add, a2, c2)
                    };
                    let da = {
                        let w = e.bin(Div, c, r2);
                        e.scale(t[0], w)
                    };
                    let dc = match t[1] {
                        None => None,
                        Some(_) => {
                            let w = e.bin(Div, a, r2);
                            let w = e.un(Unary::Neg, w);
                            e.scale(t[1], w)
                        }
                    };
                    e.add(da, dc, out)
                }
                // d hypot(a, c) = (a da + c dc) / hypot(a, c). At the origin JAX's
                // composite gives the derivative of max(|a|, |c|) there: ±1/2 each (the
                // tie shared, |v|' = 1 at +0 and -0), which this follows.
                Hypot => {
                    let zero = e.bin(Eq, o, Atom::Lit(0.0));
                    let safe = e.emit(Prim::Where, [zero, one, o]);
                    let part = |e: &mut Emitter, v: Atom, tv: Tan| {
                        tv?;
                        let w = e.bin(Div, v, safe);
                        let nonneg = e.bin(Ge, v, Atom::Lit(0.0));
                        let at_zero = e.emit(Prim::Where, [nonneg, Atom::Lit(0.5), Atom::Lit(-0.5)]);
                        let w = e.emit(Prim::Where, [zero, at_zero, w]);
                        e.scale(tv, w)
                    };
                    let da = part(e, a, t[0]);
                    let dc = part(e, c, t[1]);
                    e.add(da, dc, out)
                }
                // mod(a, c) = a - floor(a / c) c, the floor held constant (JAX's convention).
                Mod => {
                    let dc = match t[1] {
                        None => None,
                        Some(_) => {
                            let q = e.bin(Div, a, c);
                            let f = e.un(Unary::Floor, q);
                            let w = e.un(Unary::Neg, f);
                            e.scale(t[1], w)
                        }
                    };
                    let da = t[0].map(|ta| e.broadcast_to(ta, out));
                    e.add(da, dc, out)
                }
                // d logaddexp(a, c) = e^(a - o) da + e^(c - o) dc, with infinities read as 0
                // in the exponents (as JAX does, so that both -inf gives finite weights).
                Logaddexp => {
                    let finite = |e: &mut Emitter, v: Atom| {
                        let m = e.un(Unary::Abs, v);
                        let inf = e.bin(Eq, m, Atom::Lit(f64::INFINITY));
                        e.emit(Prim::Where, [inf, Atom::Lit(0.0), v])
                    };
                    let of = finite(e, o);
                    let part = |e: &mut Emitter, v: Atom, tv: Tan| {
                        tv?;
                        let vf = finite(e, v);
                        let d = e.bin(Sub, vf, of);
                        let w = e.un(Unary::Exp, d);
                        e.scale(tv, w)
                    };
                    let da = part(e, a, t[0]);
                    let dc = part(e, c, t[1]);
                    e.add(da, dc, out)
                }
                SafeMul => {
                    let da = t[0].map(|ta| e.bin(SafeMul, ta, c));
                    let dc = t[1].map(|tc| e.bin(SafeMul, a, tc));
                    e.add(da, dc, out)
                }
                // Class zero: `jvp` never asks for these.
                Lt | Le | Gt | Ge | Eq | Ne | And | Or => None,
            }
        }
        Prim::Where => {
            if t[1].is_none() && t[2].is_none() {
                return None;
            }
            // The result has the shape of all three operands broadcast together; the
            // tangents alone may be smaller (a scalar `x` selected by a matrix mask), and
            // then each element of the result still carries the derivative.
            let zero = Atom::Lit(0.0);
            let w = e.emit(Prim::Where, [x[0], t[1].unwrap_or(zero), t[2].unwrap_or(zero)]);
            Some(e.broadcast_to(w, out))
        }
        // Convolutions and their adjoints are bilinear: d B(a, b) = B(da, b) + B(a, db),
        // with strong zeros in NaN-safe programs (as products are).
        Prim::Conv2d(_) | Prim::Conv2dTransposeInput(..) | Prim::Conv2dTransposeKernel(..) => {
            let b = if e.nan_safe { prim.with_strong_zeros() } else { prim.clone() };
            let da = t[0].map(|ta| e.emit(b.clone(), [ta, x[1]]));
            let db = t[1].map(|tb| e.emit(b.clone(), [x[0], tb]));
            e.add(da, db, out)
        }
        // The maximum of a window moves with the entry that attains it.
        Prim::MaxPool2d(p) => t[0].map(|t0| e.emit(Prim::MaxPool2dPick(*p), [x[0], t0])),
        // Which entry is picked does not change under small moves of `x` (almost
        // everywhere), so only the picked operand carries a derivative.
        Prim::MaxPool2dPick(_) | Prim::MaxPool2dScatter(_) => t[1].map(|t1| e.emit(prim.clone(), [x[0], t1])),
        Prim::AvgPool2d(_) | Prim::AvgPool2dTranspose(..) => t[0].map(|t0| e.emit(prim.clone(), [t0])),
        Prim::MatMul | Prim::SafeMatMul => {
            let strong = *prim == Prim::SafeMatMul;
            let da = t[0].map(|ta| e.matmul(ta, x[1], strong));
            let db = t[1].map(|tb| e.matmul(x[0], tb, strong));
            e.add(da, db, out)
        }
        // d log|det A| = tr(A⁻¹ dA).
        Prim::LogAbsDet => {
            let t0 = t[0]?;
            let (r, n) = square(e, x[0]);
            let s = e.solve(x[0], t0, false);
            let i = e.emit(Prim::Eye(n), []);
            let d = e.bin(Mul, s, i);
            Some(e.emit(Prim::Sum(ad_ir::prim::Axes::of(&[r - 2, r - 1])), [d]))
        }
        // dX = solve_triangular(T, dB - tri(dT) X): only the triangle read counts.
        Prim::SolveTriangular(lower) => {
            let (_, n) = square(e, x[0]);
            let dt_x = match t[0] {
                Some(tt) => {
                    // Selected rather than multiplied by the mask, so that the other
                    // triangle's derivative is +0 (as JAX's), not -0.
                    let m = triangle(e, n, *lower, 1.0);
                    let masked = e.emit(Prim::Where, [m, tt, Atom::Lit(0.0)]);
                    Some(times_rhs(e, masked, o, false)?)
                }
                None => None,
            };
            let inner = e.sub(t[1], dt_x, e.shape(x[1]))?;
            Some(e.emit(prim.clone(), [x[0], inner]))
        }
        // dL = L Φ(L⁻¹ S L⁻ᵀ) with S = (dA + dAᵀ) / 2 (symmetrised, as JAX's) and Φ the lower
        // triangle with its diagonal halved (Murray, "Differentiation of the Cholesky
        // decomposition", 2016).
        Prim::Cholesky => {
            let t0 = t[0]?;
            let (_, n) = square(e, x[0]);
            let s = symmetric_part(e, t0);
            let y = e.emit(Prim::SolveTriangular(true), [o, s]);
            let yt = e.emit(Prim::Transpose, [y]);
            let z = e.emit(Prim::SolveTriangular(true), [o, yt]);
            let m = triangle(e, n, true, 0.5);
            let phi = e.bin(Mul, z, m);
            Some(e.matmul(o, phi, false))
        }
        // The decompositions' parts (`decomp_jvp` below).
        Prim::Decomp(d) => decomp_jvp(e, *d, x[0], o, t[0]?),
        // dX = solve(A, dB - dA X)
        Prim::Solve | Prim::SafeSolve => {
            let strong = *prim == Prim::SafeSolve;
            let da_x = match t[0] {
                Some(ta) => Some(times_rhs(e, ta, o, strong)?),
                None => None,
            };
            let inner = e.sub(t[1], da_x, e.shape(x[1]))?;
            Some(e.solve(x[0], inner, strong))
        }
        // The product's JVP by pairwise products, as JAX's: the reduced elements are laid
        // out as the rows of `[n, rest]`, and halves are multiplied together (x = a b,
        // t = t_a b + a t_b) until one row is left. No division, so zeros need no special
        // case, and the derivative of this JVP is exact again at every order.
        Prim::Prod(axes) => {
            let t0 = t[0]?;
            let xs = e.shape(x[0]);
            let reduced: Vec<usize> = axes.iter().collect();
            let n: usize = reduced.iter().map(|&a| xs.dim(a)).product();
            if n == 0 {
                return None;
            }
            let rest = xs.size() / n;
            let perm: Vec<usize> =
                reduced.iter().copied().chain((0..xs.rank()).filter(|a| !axes.contains(*a))).collect();
            let rows = |e: &mut Emitter, v: Atom| -> Atom {
                let v = e.broadcast_to(v, xs);
                let v = if perm.iter().enumerate().all(|(i, p)| i == *p) {
                    v
                } else {
                    e.emit(Prim::Permute(perm.clone()), [v])
                };
                e.emit(Prim::Reshape(ad_ir::Shape::matrix(n, rest)), [v])
            };
            let part = |e: &mut Emitter, v: Atom, lo: usize, hi: usize| {
                e.emit(
                    Prim::Index(vec![ad_ir::prim::Sel::Range(lo, hi), ad_ir::prim::Sel::Range(0, rest)]),
                    [v],
                )
            };
            let (mut p, mut q) = (rows(e, x[0]), rows(e, t0));
            let mut m = n;
            let mut odd = Vec::new();
            while m > 1 {
                if m % 2 == 1 {
                    odd.push((part(e, p, m - 1, m), part(e, q, m - 1, m)));
                    p = part(e, p, 0, m - 1);
                    q = part(e, q, 0, m - 1);
                    m -= 1;
                }
                let h = m / 2;
                let (a, b) = (part(e, p, 0, h), part(e, p, h, m));
                let (ta, tb) = (part(e, q, 0, h), part(e, q, h, m));
                let tab = e.bin(Mul, ta, b);
                let atb = e.bin(Mul, a, tb);
                q = e.bin(Add, tab, atb);
                p = e.bin(Mul, a, b);
                m = h;
            }
            for (a, ta) in odd.into_iter().rev() {
                let qa = e.bin(Mul, q, a);
                let pta = e.bin(Mul, p, ta);
                q = e.bin(Add, qa, pta);
                p = e.bin(Mul, p, a);
            }
            Some(e.emit(Prim::Reshape(out), [q]))
        }
        Prim::Amax(axes) => {
            // The derivative goes to the maximal entries, shared equally between ties.
            let t0 = t[0]?;
            let xs = e.shape(x[0]);
            let ob = e.expand(o, xs, *axes);
            let mask = e.bin(Eq, x[0], ob);
            let count = e.emit(Prim::Sum(*axes), [mask]);
            let cb = e.expand(count, xs, *axes);
            let w = e.bin(Div, mask, cb);
            let tw = e.scale(Some(t0), w)?;
            Some(e.emit(Prim::Sum(*axes), [tw]))
        }
        Prim::Transpose
        | Prim::Permute(_)
        | Prim::Cumsum(..)
        | Prim::Flip(_)
        | Prim::Sum(_)
        | Prim::Reshape(_)
        | Prim::BroadcastTo(_)
        | Prim::SumTo(_)
        | Prim::Index(_)
        | Prim::Pad(_) => t[0].map(|t0| e.emit(prim.clone(), [t0])),
        Prim::Concat(_) | Prim::Stack => {
            if t.iter().all(Option::is_none) {
                return None;
            }
            let parts: Vec<Atom> = t
                .iter()
                .zip(x)
                .map(|(ti, xi)| {
                    let s = e.shape(*xi);
                    e.materialize(*ti, s)
                })
                .collect();
            Some(e.emit(prim.clone(), parts))
        }
        // Linear in the array: pick the same part of its tangent.
        Prim::DynIndex(_) => {
            let t0 = t[0]?;
            let mut args = vec![t0];
            args.extend_from_slice(&x[1..]);
            Some(e.emit(prim.clone(), args))
        }
        // Linear in the array and the new part together (the positions carry no derivative).
        Prim::DynUpdate(_) => {
            if t[0].is_none() && t[1].is_none() {
                return None;
            }
            let (s0, s1) = (e.shape(x[0]), e.shape(x[1]));
            let mut args = vec![e.materialize(t[0], s0), e.materialize(t[1], s1)];
            args.extend_from_slice(&x[2..]);
            Some(e.emit(prim.clone(), args))
        }
        // `jvp.rs` differentiates a loop as a whole (a loop over its body's JVP).
        Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_) | Prim::Custom(_) | Prim::CustomLin(_) => {
            panic!("internal error: a loop or `if` reached the per-primitive JVP rules")
        }
        // Class zero: `jvp` never asks for these.
        Prim::StopGradient | Prim::Argmax(_) | Prim::OneHot(_) | Prim::SignDet => None,
        // The identity: the check stays with the primal value.
        Prim::Check(_) => t[0],
        Prim::Full(..) | Prim::Eye(_) | Prim::Arange(_) | Prim::Linspace(..) | Prim::Const(_) => None,
    }
}

/// The `n × n` mask of the lower (or upper) triangle: ones there, `diagonal` on the
/// diagonal, zeros elsewhere.
fn triangle(e: &mut Emitter, n: usize, lower: bool, diagonal: f64) -> Atom {
    let data = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                diagonal
            } else if (i > j) == lower {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let a = ad_ir::Array::new(ad_ir::Shape::matrix(n, n), data);
    e.emit(Prim::Const(ad_ir::prim::ConstArray(std::rc::Rc::new(a))), [])
}

/// `(t + tᵀ)/2`: the tangent of the symmetric part, which is all `cholesky` and `eigh` read
/// of their matrix (as JAX's rules).
fn symmetric_part(e: &mut Emitter, t: Atom) -> Atom {
    let tt = e.emit(Prim::Transpose, [t]);
    let s = e.bin(Binary::Add, t, tt);
    e.bin(Binary::Mul, s, Atom::Lit(0.5))
}

/// The rank of the square matrix (or stack of them) `a`, and its size `n`.
fn square(e: &Emitter, a: Atom) -> (usize, usize) {
    let s = e.shape(a);
    (s.rank(), s.dim(s.rank() - 1))
}

/// The last two dimensions of the matrix (or stack of them) `a`.
fn last_two(e: &Emitter, a: Atom) -> (usize, usize) {
    let (_, m, n) = e.shape(a).matrix_stack();
    (m, n)
}

/// `a @ x` for a matrix (or stack) `a` and the right-hand side `x` of a solve with it: a
/// matrix per matrix, or a vector per matrix when `x` has one axis fewer, which `@` would
/// read as a matrix in a stack, so it is multiplied as a column.
fn times_rhs(e: &mut Emitter, a: Atom, x: Atom, strong: bool) -> Option<Atom> {
    let (sa, sx) = (e.shape(a), e.shape(x));
    if sa.rank() <= 2 || !ad_ir::prim::rhs_is_vector(sa, sx) {
        return Some(e.matmul(a, x, strong));
    }
    let col = e.emit(Prim::Reshape(sx.insert_axis(sx.rank(), 1)?), [x]);
    let product = e.matmul(a, col, strong);
    Some(e.emit(Prim::Reshape(sx), [product]))
}

/// The diagonal of the square matrix (or stack of them) `m` (`eye` the identity of its
/// size).
fn diagonal(e: &mut Emitter, m: Atom, eye: Atom) -> Atom {
    let on = e.bin(Binary::Mul, m, eye);
    let r = e.shape(m).rank();
    e.emit(Prim::Sum(ad_ir::prim::Axes::one(r - 1)), [on])
}

/// The vector (or stack of vectors) `v` as a row `[.., 1, n]` and as a column `[.., n, 1]`.
fn row_and_column(e: &mut Emitter, v: Atom) -> Option<(Atom, Atom)> {
    let s = e.shape(v);
    let r = s.rank();
    let row = e.emit(Prim::Reshape(s.insert_axis(r - 1, 1)?), [v]);
    let col = e.emit(Prim::Reshape(s.insert_axis(r, 1)?), [v]);
    Some((row, col))
}

/// `1/d` off the diagonal and 0 on it, for a matrix of differences `d` whose diagonal is
/// zero: `1/(d + I) (1 - I)`, finite on the diagonal (where the rules' `F` has no term).
fn inverse_off_diagonal(e: &mut Emitter, d: Atom, eye: Atom) -> Atom {
    let shifted = e.bin(Binary::Add, d, eye);
    let inv = e.bin(Binary::Div, Atom::Lit(1.0), shifted);
    let off = e.bin(Binary::Sub, Atom::Lit(1.0), eye);
    e.bin(Binary::Mul, inv, off)
}

/// The JVP of a part of a decomposition of `a` (`o` is the part, `t0` the tangent of `a`).
fn decomp_jvp(e: &mut Emitter, d: Decomp, a: Atom, o: Atom, t0: Atom) -> Tan {
    match d {
        Decomp::EighValues | Decomp::EighVectors => eigh_jvp(e, d, a, o, t0),
        Decomp::QrQ | Decomp::QrR => qr_jvp(e, d, a, o, t0),
        Decomp::SvdS | Decomp::SvdU | Decomp::SvdVt => svd_jvp(e, d, a, o, t0),
    }
}

/// With S = (dA + dAᵀ)/2 (the kernels decompose the symmetric part) and M = Vᵀ S V:
/// dw = diag(M) and dV = V (F ∘ M), F_ij = 1/(w_j - w_i) off the diagonal and 0 on
/// it (Giles 2008, §3.1; JAX's rule). Defined where the eigenvalues are distinct;
/// equal ones give infinities in dV, as in JAX.
fn eigh_jvp(e: &mut Emitter, d: Decomp, a: Atom, o: Atom, t0: Atom) -> Tan {
    use Binary::*;
    let (_, n) = square(e, a);
    let (w, v) = match d {
        Decomp::EighValues => (o, e.emit(Prim::Decomp(Decomp::EighVectors), [a])),
        _ => (e.emit(Prim::Decomp(Decomp::EighValues), [a]), o),
    };
    let s = symmetric_part(e, t0);
    let vt = e.emit(Prim::Transpose, [v]);
    let sv = e.matmul(s, v, false);
    let m = e.matmul(vt, sv, false);
    let eye = e.emit(Prim::Eye(n), []);
    if d == Decomp::EighValues {
        return Some(diagonal(e, m, eye));
    }
    let (row, col) = row_and_column(e, w)?;
    let diff = e.bin(Sub, row, col);
    let f = inverse_off_diagonal(e, diff, eye);
    let fm = e.bin(Mul, f, m);
    Some(e.matmul(v, fm, false))
}

/// With X = dA R⁻¹, C = Qᵀ X and Ω = L - Lᵀ where L is C's strictly lower triangle:
/// dQ = Q (Ω - C) + X and dR = (C - Ω) R (JAX's rule; `A` of full column rank). A wide
/// `A = [A₁ A₂]` (`m < n`, JAX has no rule) has the QR decomposition `Q R₁` of its square
/// part `A₁` and `R = [R₁ Qᵀ A₂]`, so dQ and dR₁ are the square rule's for dA₁, and
/// dR₂ = dQᵀ A₂ + Qᵀ dA₂ (`A₁` invertible).
fn qr_jvp(e: &mut Emitter, d: Decomp, a: Atom, o: Atom, t0: Atom) -> Tan {
    let (m, n) = last_two(e, a);
    let (q, r) = match d {
        Decomp::QrQ => (o, e.emit(Prim::Decomp(Decomp::QrR), [a])),
        _ => (e.emit(Prim::Decomp(Decomp::QrQ), [a]), o),
    };
    if m >= n {
        let parts = qr_parts(e, q, r, t0);
        return Some(if d == Decomp::QrQ { qr_dq(e, q, parts) } else { qr_dr(e, r, parts) });
    }
    let columns = |e: &mut Emitter, x: Atom, lo: usize, hi: usize| {
        let s = e.shape(x);
        let sels: Vec<Sel> =
            s.dims()[..s.rank() - 1].iter().map(|&d| Sel::Range(0, d)).chain([Sel::Range(lo, hi)]).collect();
        e.emit(Prim::Index(sels), [x])
    };
    let (r1, t1) = (columns(e, r, 0, m), columns(e, t0, 0, m));
    // The square rule on the first m columns, its parts computed once for dQ and dR₁.
    let parts = qr_parts(e, q, r1, t1);
    let dq = qr_dq(e, q, parts);
    if d == Decomp::QrQ {
        return Some(dq);
    }
    let dr1 = qr_dr(e, r1, parts);
    let (a2, t2) = (columns(e, a, m, n), columns(e, t0, m, n));
    let dqt = e.emit(Prim::Transpose, [dq]);
    let qt = e.emit(Prim::Transpose, [q]);
    let moved = e.matmul(dqt, a2, false);
    let own = e.matmul(qt, t2, false);
    let dr2 = e.bin(Binary::Add, moved, own);
    let last = e.shape(a).rank() - 1;
    Some(e.emit(Prim::Concat(last), [dr1, dr2]))
}

/// `C` and `Ω` of the QR rule above, and `X`, for a tall or square `A = Q R`.
fn qr_parts(e: &mut Emitter, q: Atom, r: Atom, t0: Atom) -> (Atom, Atom, Atom) {
    use Binary::*;
    let (_, n) = last_two(e, r);
    // X R = dA is Rᵀ Xᵀ = dAᵀ, a lower triangular solve.
    let rt = e.emit(Prim::Transpose, [r]);
    let tt = e.emit(Prim::Transpose, [t0]);
    let xt = e.emit(Prim::SolveTriangular(true), [rt, tt]);
    let xm = e.emit(Prim::Transpose, [xt]);
    let qt = e.emit(Prim::Transpose, [q]);
    let c = e.matmul(qt, xm, false);
    let strict = triangle(e, n, true, 0.0);
    let low = e.bin(Mul, c, strict);
    let lowt = e.emit(Prim::Transpose, [low]);
    let omega = e.bin(Sub, low, lowt);
    (c, omega, xm)
}

/// dQ = Q (Ω - C) + X, from [`qr_parts`].
fn qr_dq(e: &mut Emitter, q: Atom, (c, omega, xm): (Atom, Atom, Atom)) -> Atom {
    let d = e.bin(Binary::Sub, omega, c);
    let qd = e.matmul(q, d, false);
    e.bin(Binary::Add, qd, xm)
}

/// dR = (C - Ω) R, from [`qr_parts`].
fn qr_dr(e: &mut Emitter, r: Atom, (c, omega, _): (Atom, Atom, Atom)) -> Atom {
    let d = e.bin(Binary::Sub, c, omega);
    e.matmul(d, r, false)
}

/// With dS = Uᵀ dA V: ds = diag(dS); dU = U (F ∘ (dS S + S dSᵀ)) and dV = V (F ∘ (S dS +
/// dSᵀ S)) with F_ij = 1/(s_j² - s_i²) off the diagonal (JAX's term in the
/// antisymmetric part of dS on the diagonal is zero for real matrices), plus, for a
/// tall (wide) A, the part of dA V / s outside U's columns (of dAᵀ U / s outside
/// V's): JAX's rule. Defined where the singular values are distinct and nonzero.
fn svd_jvp(e: &mut Emitter, d: Decomp, a: Atom, o: Atom, t0: Atom) -> Tan {
    use Binary::*;
    let (m, n) = last_two(e, a);
    let k = m.min(n);
    let part = |e: &mut Emitter, p: Prim| if p == Prim::Decomp(d) { o } else { e.emit(p, [a]) };
    let s = part(e, Prim::Decomp(Decomp::SvdS));
    let u = part(e, Prim::Decomp(Decomp::SvdU));
    let vt = part(e, Prim::Decomp(Decomp::SvdVt));
    let (ut, v) = (e.emit(Prim::Transpose, [u]), e.emit(Prim::Transpose, [vt]));
    let tv = e.matmul(t0, v, false);
    let ds_mat = e.matmul(ut, tv, false);
    let eye = e.emit(Prim::Eye(k), []);
    if d == Decomp::SvdS {
        return Some(diagonal(e, ds_mat, eye));
    }
    let (row, col) = row_and_column(e, s)?;
    let sum = e.bin(Add, row, col);
    let diff = e.bin(Sub, row, col);
    let sq = e.bin(Mul, sum, diff);
    let f = inverse_off_diagonal(e, sq, eye);
    let ds_t = e.emit(Prim::Transpose, [ds_mat]);
    if d == Decomp::SvdU {
        let dss = e.bin(Mul, ds_mat, row);
        let sds_t = e.bin(Mul, ds_t, col);
        let sym = e.bin(Add, dss, sds_t);
        let fsym = e.bin(Mul, f, sym);
        let du = e.matmul(u, fsym, false);
        if m <= n {
            return Some(du);
        }
        // The part of dA V / s outside the span of U (whose coordinates Uᵀ dA V are dS).
        let uproj = e.matmul(u, ds_mat, false);
        let rest = e.bin(Sub, tv, uproj);
        let rest = e.bin(Div, rest, row);
        return Some(e.bin(Add, du, rest));
    }
    let sds = e.bin(Mul, ds_mat, col);
    let ds_ts = e.bin(Mul, ds_t, row);
    let sym = e.bin(Add, sds, ds_ts);
    let fsym = e.bin(Mul, f, sym);
    let dv = e.matmul(v, fsym, false);
    let dv = if m < n {
        // The part of dAᵀ U / s outside the span of V (whose coordinates Vᵀ dAᵀ U are dSᵀ).
        let tt = e.emit(Prim::Transpose, [t0]);
        let tu = e.matmul(tt, u, false);
        let vproj = e.matmul(v, ds_t, false);
        let rest = e.bin(Sub, tu, vproj);
        let rest = e.bin(Div, rest, row);
        e.bin(Add, dv, rest)
    } else {
        dv
    };
    Some(e.emit(Prim::Transpose, [dv]))
}
