//! The steps of a planned program and how they run on the slab.

use super::{put, Iteration, Out, Slot};
use crate::interp::RunError;
use crate::kernels;
use ad_ir::prim::{Binary, Unary};
use ad_ir::scalar;
use ad_syntax::Span;

/// An operand of an elementwise step, as it is read for each element of the result.
#[derive(Debug)]
pub(super) enum Src {
    /// A run of the result's length at this offset.
    Run(usize),
    /// One element, broadcast.
    One(usize),
    /// A number in the program.
    Lit(f64),
    /// A broadcast of another shape: the offset of each element.
    Map(Box<[usize]>),
}

impl Src {
    #[inline(always)]
    pub(super) fn get(&self, s: &[f64], k: usize) -> f64 {
        match self {
            Src::Run(at) => s[at + k],
            Src::One(at) => s[*at],
            Src::Lit(x) => *x,
            Src::Map(m) => s[m[k]],
        }
    }
}

#[derive(Debug)]
pub(super) enum Step {
    Unary(Unary, Src, Slot),
    Binary(Binary, Src, Src, Slot),
    Where(Src, Src, Src, Slot),
    /// Each element of the result from an offset in the slab, or 0 where the map holds
    /// `NONE` (padding).
    Gather(Box<[usize]>, Slot),
    /// A sum or maximum: row `r` of `x` (`row` consecutive elements, or one) folds into
    /// element `map[r]` of the result, in the order and grouping of the interpreter's
    /// kernel, so that both give the same bits.
    Reduce {
        max: bool,
        x: Slot,
        row: usize,
        map: Box<[usize]>,
        out: Slot,
    },
    Copy(usize, Slot),
    /// A product of a vector or matrix by a vector or matrix: `m × k` times `k × n`.
    MatMul {
        a: Slot,
        b: Slot,
        m: usize,
        k: usize,
        n: usize,
        out: Slot,
    },
    /// A loop inside the body: its carried values are copied in (unless they were left in
    /// place), then it iterates in the same slab; its results stay where it carried them.
    Loop(Box<Nested>),
    /// An `if`: the chosen branch's steps, then its values moved to the results' places.
    Cond(Box<Branches>),
    /// The part of `x` (an array with axes `dims`) that `sel` selects at the positions.
    DynIndex {
        x: usize,
        dims: Box<[usize]>,
        sel: Box<[Option<usize>]>,
        at: Vec<Src>,
        out: Slot,
        span: Span,
    },
    /// `x` (copied to `out` unless it is already there) with `v` written at the part.
    DynUpdate {
        x: usize,
        v: Src,
        dims: Box<[usize]>,
        sel: Box<[Option<usize>]>,
        at: Vec<Src>,
        out: Slot,
        span: Span,
    },
}

#[derive(Debug)]
pub(super) struct Nested {
    pub(super) lo: Src,
    pub(super) hi: Src,
    pub(super) is_while: bool,
    pub(super) enter: Vec<(usize, Slot)>,
    pub(super) iteration: Iteration,
    pub(super) span: Span,
}

impl Nested {
    /// The loop's bounds, checked, after copying its carried values into place.
    pub(super) fn enter(&self, s: &mut [f64]) -> Result<(i64, Option<i64>), RunError> {
        let bound = |src: &Src, which| crate::interp::bound_value(src.get(s, 0), which, self.span);
        let lo = bound(&self.lo, "lower")?;
        let hi = match self.hi.get(s, 0) {
            x if self.is_while && x == f64::INFINITY => None,
            _ => Some(bound(&self.hi, "upper")?),
        };
        for (from, to) in &self.enter {
            s.copy_within(*from..*from + to.len, to.at);
        }
        Ok((lo, hi))
    }
}

#[derive(Debug)]
pub(super) struct Branches {
    pub(super) c: Src,
    pub(super) then: (Vec<Step>, Vec<(Out, Slot)>),
    pub(super) els: (Vec<Step>, Vec<(Out, Slot)>),
}

/// A gather map's mark for "no element": padding reads zero.
pub(super) const NONE: usize = usize::MAX;

/// Runs steps on the slab.
pub(super) fn exec(steps: &[Step], s: &mut [f64], scratch: &mut Vec<f64>) -> Result<(), RunError> {
    for step in steps {
        match step {
            Step::Unary(op, x, o) => {
                for k in 0..o.len {
                    s[o.at + k] = op.eval(x.get(s, k));
                }
            }
            Step::Binary(op, x, y, o) => {
                for k in 0..o.len {
                    s[o.at + k] = op.eval(x.get(s, k), y.get(s, k));
                }
            }
            Step::Where(c, a, b, o) => {
                for k in 0..o.len {
                    s[o.at + k] = if c.get(s, k) != 0.0 { a.get(s, k) } else { b.get(s, k) };
                }
            }
            Step::Gather(map, o) => {
                for (k, &m) in map.iter().enumerate() {
                    s[o.at + k] = if m == NONE { 0.0 } else { s[m] };
                }
            }
            Step::Reduce { max, x, row, map, out } => {
                let init = if *max { f64::NEG_INFINITY } else { 0.0 };
                s[out.at..out.at + out.len].fill(init);
                for (r, &m) in map.iter().enumerate() {
                    let o = out.at + m;
                    let v = if *row == 1 {
                        s[x.at + r]
                    } else {
                        let seg = &s[x.at + r * row..x.at + (r + 1) * row];
                        if *max {
                            kernels::reduce::max_slice(seg)
                        } else {
                            kernels::reduce::sum_slice(seg)
                        }
                    };
                    s[o] = if *max { scalar::max(s[o], v) } else { s[o] + v };
                }
            }
            Step::Copy(from, to) => s.copy_within(*from..*from + to.len, to.at),
            Step::MatMul { a, b, m, k, n, out } => {
                // The operands are copied out so that the product can write the slab.
                scratch.clear();
                scratch.extend_from_slice(&s[a.at..a.at + a.len]);
                scratch.extend_from_slice(&s[b.at..b.at + b.len]);
                let (x, y) = scratch.split_at(a.len);
                kernels::linalg::matmul_2d_into(x, y, &mut s[out.at..out.at + out.len], *m, *k, *n);
            }
            Step::Loop(l) => {
                let (lo, hi) = l.enter(s)?;
                l.iteration.run(lo, hi, s, scratch)?;
            }
            Step::Cond(b) => {
                let (steps, moves) = if b.c.get(s, 0) != 0.0 { &b.then } else { &b.els };
                exec(steps, s, scratch)?;
                for (from, to) in moves {
                    put(s, *from, *to);
                }
            }
            Step::DynIndex { x, dims, sel, at, out, span } => {
                let start = position(dims, sel, at, s, *span)?;
                let mut to = out.at;
                kernels::dynamic::runs(dims, sel, &start, |o, n| {
                    s.copy_within(x + o..x + o + n, to);
                    to += n;
                });
            }
            Step::DynUpdate { x, v, dims, sel, at, out, span } => {
                let start = position(dims, sel, at, s, *span)?;
                if *x != out.at {
                    s.copy_within(*x..*x + out.len, out.at);
                }
                let mut k = 0;
                kernels::dynamic::runs(dims, sel, &start, |o, n| {
                    for j in 0..n {
                        s[out.at + o + j] = v.get(s, k + j);
                    }
                    k += n;
                });
            }
        }
    }
    Ok(())
}

/// Where the part at computed positions starts, checked as the interpreter checks it.
fn position(
    dims: &[usize],
    sel: &[Option<usize>],
    at: &[Src],
    s: &[f64],
    span: Span,
) -> Result<[usize; ad_ir::shape::MAX_RANK], RunError> {
    kernels::dynamic::starts(dims, sel, at.iter().map(|p| p.get(s, 0))).map_err(|m| RunError::At(span, m))
}
