//! Building derived programs: a builder that knows which values are *linear* (computed from
//! tangents) and treats absent tangents as symbolic zeros.
//!
//! Linearity is not declared but computed: an equation is linear when one of its operands
//! is. Rules are written so that a linear equation is linear in its linear operands, with
//! coefficients from the primal part; the transposer checks this.

use ad_ir::prim::{Axes, Binary, Prim, Unary, F64};
use ad_ir::{Atom, Builder, Shape, Var};
use ad_syntax::Span;
use std::rc::Rc;

/// A tangent or cotangent: `None` is a symbolic zero, never materialised.
pub type Tan = Option<Atom>;

pub struct Emitter {
    pub b: Builder,
    pub linear: Vec<bool>,
    /// Products of a tangent with a coefficient use `safe_mul` (strong zeros), so that the
    /// branch `where` did not select contributes exactly zero. Set for programs that
    /// contain a `where`.
    pub nan_safe: bool,
    /// The source span given to emitted equations: the equation being differentiated.
    pub span: Span,
}

impl Emitter {
    pub fn new(nan_safe: bool) -> Emitter {
        Emitter { b: Builder::new(), linear: Vec::new(), nan_safe, span: Span::DUMMY }
    }

    /// Room for this many more variables and equations.
    pub fn reserve(&mut self, vars: usize, eqns: usize) {
        self.b.vars.reserve(vars);
        self.b.eqns.reserve(eqns);
        self.linear.reserve(vars);
    }

    pub fn shape(&self, a: Atom) -> Shape {
        self.b.shape(a)
    }

    pub fn is_linear(&self, a: Atom) -> bool {
        match a {
            Atom::Var(v) => self.linear.get(v.index()).copied().unwrap_or(false),
            Atom::Lit(_) => false,
        }
    }

    pub fn new_var(&mut self, shape: Shape, name: Option<Rc<str>>, linear: bool) -> Var {
        let v = self.b.new_var(shape, name);
        self.mark(v, linear);
        v
    }

    pub fn mark(&mut self, v: Var, linear: bool) {
        if self.linear.len() <= v.index() {
            self.linear.resize(v.index() + 1, false);
        }
        self.linear[v.index()] = linear;
    }

    /// Emits `prim(args)`; the result is linear when an operand is.
    pub fn emit(&mut self, prim: Prim, args: impl IntoIterator<Item = Atom>) -> Atom {
        let args = ad_ir::args_of(args);
        let linear = args.iter().any(|a| self.is_linear(*a));
        let a = self.b.emit(prim, args, self.span);
        if let Atom::Var(v) = a {
            self.mark(v, linear);
        }
        a
    }

    /// Emits an equation with several results (a loop, an `if`, a call with its own rule),
    /// of the given shapes, its results marked linear or not.
    pub fn emit_multi(
        &mut self,
        prim: Prim,
        args: impl IntoIterator<Item = Atom>,
        shapes: &[Shape],
        linear: bool,
    ) -> Vec<Var> {
        let outs = self.b.push_multi(prim, args, shapes, self.span);
        for o in &outs {
            self.mark(*o, linear);
        }
        outs
    }

    pub fn un(&mut self, u: Unary, x: Atom) -> Atom {
        self.emit(Prim::Unary(u), [x])
    }

    pub fn bin(&mut self, b: Binary, x: Atom, y: Atom) -> Atom {
        self.emit(Prim::Binary(b), [x, y])
    }

    /// A zero array of the given shape (a literal for scalars).
    pub fn zeros(&mut self, s: Shape) -> Atom {
        if s.is_scalar() {
            Atom::Lit(0.0)
        } else {
            self.emit(Prim::Full(s, F64(0.0)), [])
        }
    }

    /// `a` broadcast to `s` if it has another shape.
    pub fn broadcast_to(&mut self, a: Atom, s: Shape) -> Atom {
        if self.shape(a) == s {
            a
        } else {
            self.emit(Prim::BroadcastTo(s), [a])
        }
    }

    /// `r`, the result of reducing an array of shape `x` over `axes`, broadcast back to `x`
    /// (the reduced axes put back as size 1 first, where they are not leading axes that
    /// broadcasting adds anyway).
    pub fn expand(&mut self, r: Atom, x: Shape, axes: Axes) -> Atom {
        let leading: Vec<usize> = (0..axes.count()).collect();
        let r = if axes == Axes::of(&leading) { r } else { self.emit(Prim::Reshape(axes.keep(x)), [r]) };
        self.broadcast_to(r, x)
    }

    /// `a` summed down to `s` if it has another shape (undoing broadcasting).
    pub fn sum_to(&mut self, a: Atom, s: Shape) -> Atom {
        if self.shape(a) == s {
            a
        } else {
            self.emit(Prim::SumTo(s), [a])
        }
    }

    /// A tangent as a concrete atom of shape `s` (zeros when symbolic).
    pub fn materialize(&mut self, t: Tan, s: Shape) -> Atom {
        match t {
            Some(a) => a,
            None => self.zeros(s),
        }
    }

    /// Tangent times a coefficient computed from primal values.
    pub fn scale(&mut self, t: Tan, c: Atom) -> Tan {
        let t = t?;
        if c == Atom::Lit(1.0) {
            return Some(t);
        }
        Some(self.mul_linear(t, c, false))
    }

    /// Tangent divided by a primal value.
    pub fn div(&mut self, t: Tan, c: Atom) -> Tan {
        Some(self.div_linear(t?, c))
    }

    /// A linear value divided by a primal value; in NaN-safe programs a multiplication by
    /// the reciprocal with strong zeros.
    pub fn div_linear(&mut self, t: Atom, c: Atom) -> Atom {
        if self.nan_safe {
            let r = self.bin(Binary::Div, Atom::Lit(1.0), c);
            self.bin(Binary::SafeMul, t, r)
        } else {
            self.bin(Binary::Div, t, c)
        }
    }

    /// A matrix product of a linear value and a coefficient (in either order): in NaN-safe
    /// programs (or when `strong` asks for it) a term with a zero factor is exactly 0
    /// (`safe_matmul`).
    pub fn matmul(&mut self, a: Atom, b: Atom, strong: bool) -> Atom {
        let prim = if strong || self.nan_safe { Prim::SafeMatMul } else { Prim::MatMul };
        self.emit(prim, [a, b])
    }

    /// `solve(a, t)` for a linear right-hand side `t`: `safe_solve` in NaN-safe programs, so
    /// that a zero right-hand side gives zero even where `a` is singular or not finite.
    pub fn solve(&mut self, a: Atom, t: Atom, strong: bool) -> Atom {
        let prim = if strong || self.nan_safe { Prim::SafeSolve } else { Prim::Solve };
        self.emit(prim, [a, t])
    }

    /// `t * p` for a linear `t` and a coefficient `p` (possibly of another shape: an outer
    /// product by broadcasting), with strong zeros when asked or in NaN-safe programs.
    pub fn mul_linear(&mut self, t: Atom, p: Atom, strong: bool) -> Atom {
        let op = if strong || self.nan_safe { Binary::SafeMul } else { Binary::Mul };
        self.bin(op, t, p)
    }

    pub fn neg(&mut self, t: Tan) -> Tan {
        let t = t?;
        Some(self.un(Unary::Neg, t))
    }

    /// Sum of two tangents, broadcast to `out`.
    pub fn add(&mut self, a: Tan, b: Tan, out: Shape) -> Tan {
        match (a, b) {
            (None, None) => None,
            (Some(a), None) => Some(self.broadcast_to(a, out)),
            (None, Some(b)) => Some(self.broadcast_to(b, out)),
            (Some(a), Some(b)) => {
                let s = self.bin(Binary::Add, a, b);
                Some(self.broadcast_to(s, out))
            }
        }
    }

    pub fn sub(&mut self, a: Tan, b: Tan, out: Shape) -> Tan {
        match (a, b) {
            (a, None) => self.add(a, None, out),
            (None, Some(b)) => {
                let n = self.un(Unary::Neg, b);
                Some(self.broadcast_to(n, out))
            }
            (Some(a), Some(b)) => {
                let s = self.bin(Binary::Sub, a, b);
                Some(self.broadcast_to(s, out))
            }
        }
    }

    /// Accumulates a cotangent contribution.
    pub fn accumulate(&mut self, acc: Tan, c: Atom) -> Atom {
        match acc {
            None => c,
            Some(a) => self.bin(Binary::Add, a, c),
        }
    }
}
