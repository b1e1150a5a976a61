//! Builtins that rearrange axes at any rank: `transpose(x, perm)`, `stack(xs, axis)`,
//! `concat(xs, axis)`, `expand_dims(x, axes)` and `squeeze(x[, axes])`.
//!
//! None of them is a primitive of its own: each lowers to `Permute`, `Stack`, `Concat` or
//! `Reshape`, whose rules already exist, so their derivatives and batching come for free.

use super::builtins::arity;
use super::value::LVal;
use super::{Lowerer, Result};
use crate::prim::Prim;
use crate::shape::Shape;
use ad_syntax::{Diagnostic, Span};

impl Lowerer<'_> {
    /// The shape of `v`, or an error saying that `name` needs an array there.
    pub(crate) fn array_shape(&self, name: &str, v: &LVal, span: Span) -> Result<Shape> {
        self.shape_of(v).ok_or_else(|| {
            Diagnostic::at(span, format!("`{name}` needs an array here, found {}", v.describe()))
        })
    }

    /// `transpose(x)` reverses the axes (NumPy's meaning; for a matrix, its transpose) and
    /// `transpose(x, perm)` puts axis `perm[i]` of `x` at position `i`.
    pub(crate) fn transpose_builtin(&mut self, args: &[LVal], span: Span, spans: &[Span]) -> Result<LVal> {
        arity("transpose", args, &[1, 2], span)?;
        let x = self.array_shape("transpose", &args[0], spans[0])?;
        let perm: Vec<usize> = match args.get(1) {
            None if x.rank() <= 2 => {
                return self.operator(Prim::Transpose, "transpose", &args[..1], spans, span)
            }
            None => (0..x.rank()).rev().collect(),
            Some(p) => self.permutation(p, x, spans[1])?,
        };
        self.permute(&args[0], perm, span)
    }

    /// `perm` as a permutation of the axes of an array of shape `x` (negative axes count
    /// from the end).
    fn permutation(&mut self, p: &LVal, x: Shape, span: Span) -> Result<Vec<usize>> {
        let items: Vec<LVal> = match p {
            LVal::Tuple(t) => t.to_vec(),
            one => vec![one.clone()],
        };
        if items.len() != x.rank() {
            return Err(Diagnostic::at(
                span,
                format!(
                    "the permutation of an array of shape {x} lists {}, found {}",
                    crate::words::count_irregular(x.rank(), "axis", "axes"),
                    items.len()
                ),
            ));
        }
        let mut perm = Vec::with_capacity(items.len());
        for a in &items {
            let axis = self.static_axis(a, x.rank(), span)?;
            if perm.contains(&axis) {
                return Err(Diagnostic::at(span, format!("axis {axis} appears twice in the permutation")));
            }
            perm.push(axis);
        }
        Ok(perm)
    }

    /// `x` with its axes in the order `perm`; nothing when `perm` is the identity.
    pub(crate) fn permute(&mut self, x: &LVal, perm: Vec<usize>, span: Span) -> Result<LVal> {
        if perm.iter().enumerate().all(|(i, p)| i == *p) {
            return Ok(x.clone());
        }
        self.prim(Prim::Permute(perm), std::slice::from_ref(x), span)
    }

    /// The arrays of a tuple argument (`stack((a, b))`, `concat((a, b, c), 1)`).
    fn array_tuple(&self, name: &str, v: &LVal, span: Span) -> Result<Vec<LVal>> {
        let LVal::Tuple(items) = v else {
            return Err(Diagnostic::at(
                span,
                format!("`{name}` takes a tuple of arrays, found {}", v.describe()),
            ));
        };
        if items.is_empty() {
            return Err(Diagnostic::at(span, format!("`{name}` needs at least one array")));
        }
        for item in items.iter() {
            self.array_shape(name, item, span)?;
        }
        Ok(items.to_vec())
    }

    /// `stack(xs, axis)`: the arrays of the tuple `xs`, all of one shape, along a new axis
    /// (0 by default) of the result.
    pub(crate) fn stack_builtin(&mut self, args: &[LVal], span: Span, spans: &[Span]) -> Result<LVal> {
        arity("stack", args, &[1, 2], span)?;
        let items = self.array_tuple("stack", &args[0], spans[0])?;
        let first = self.array_shape("stack", &items[0], spans[0])?;
        for item in &items[1..] {
            let s = self.array_shape("stack", item, spans[0])?;
            if s != first {
                return Err(Diagnostic::at(
                    spans[0],
                    format!("`stack` needs arrays of one shape, found {first} and {s}"),
                ));
            }
        }
        let axis = match args.get(1) {
            Some(a) => self.static_axis(a, first.rank() + 1, spans[1])?,
            None => 0,
        };
        let stacked = self.prim(Prim::Stack, &items, span)?;
        // The literal stacks along axis 0; the new axis then moves to its place.
        let mut perm: Vec<usize> = (1..=first.rank()).collect();
        perm.insert(axis, 0);
        self.permute(&stacked, perm, span)
    }

    /// `concat(xs, axis)` for a tuple `xs` (the two-array form `concat(a, b, axis)` is the
    /// primitive itself).
    pub(crate) fn concat_tuple(&mut self, args: &[LVal], span: Span, spans: &[Span]) -> Result<LVal> {
        arity("concat", args, &[1, 2], span)?;
        let items = self.array_tuple("concat", &args[0], spans[0])?;
        let rank = self.array_shape("concat", &items[0], spans[0])?.rank();
        if rank == 0 {
            return Err(Diagnostic::at(spans[0], "`concat` joins arrays along an axis, found numbers")
                .with_hint("`stack` makes a vector of numbers"));
        }
        let axis = match args.get(1) {
            Some(a) => self.static_axis(a, rank, spans[1])?,
            None => 0,
        };
        let mut acc = items[0].clone();
        for item in &items[1..] {
            acc = self.prim(Prim::Concat(axis), &[acc, item.clone()], span)?;
        }
        Ok(acc)
    }

    /// `expand_dims(x, axes)`: size-1 axes inserted at the given positions of the result
    /// (negative positions count from the result's end, as in NumPy).
    pub(crate) fn expand_dims_builtin(&mut self, args: &[LVal], span: Span, spans: &[Span]) -> Result<LVal> {
        arity("expand_dims", args, &[2], span)?;
        let x = self.array_shape("expand_dims", &args[0], spans[0])?;
        let count = match &args[1] {
            LVal::Tuple(t) => t.len(),
            _ => 1,
        };
        let rank = x.rank() + count;
        if rank > crate::shape::MAX_RANK {
            return Err(Diagnostic::at(
                span,
                format!("arrays have rank at most {}, not {rank}", crate::shape::MAX_RANK),
            ));
        }
        let axes = self.static_axes(&args[1], rank, spans[1])?;
        let mut rest = x.dims().iter();
        let dims: Vec<usize> =
            (0..rank).map(|i| if axes.contains(i) { 1 } else { rest.next().copied().unwrap_or(1) }).collect();
        self.reshape_to(&args[0], &dims, span)
    }

    /// `squeeze(x)` drops every size-1 axis, `squeeze(x, axes)` the given ones (each must
    /// have size 1).
    pub(crate) fn squeeze_builtin(&mut self, args: &[LVal], span: Span, spans: &[Span]) -> Result<LVal> {
        arity("squeeze", args, &[1, 2], span)?;
        let x = self.array_shape("squeeze", &args[0], spans[0])?;
        let axes = match args.get(1) {
            Some(a) => {
                let axes = self.static_axes(a, x.rank(), spans[1])?;
                if let Some(bad) = axes.iter().find(|a| x.dim(*a) != 1) {
                    return Err(Diagnostic::at(
                        spans[1],
                        format!("axis {bad} of an array of shape {x} has size {}, not 1", x.dim(bad)),
                    ));
                }
                axes
            }
            None => crate::prim::Axes::of(&(0..x.rank()).filter(|a| x.dim(*a) == 1).collect::<Vec<_>>()),
        };
        let dims = axes.reduce(x);
        self.reshape_to(&args[0], dims.dims(), span)
    }

    /// `x` reshaped to `dims` (same size), or `x` itself when the shape is unchanged.
    pub(crate) fn reshape_to(&mut self, x: &LVal, dims: &[usize], span: Span) -> Result<LVal> {
        let shape = crate::prim::checked_shape(dims).map_err(|m| Diagnostic::at(span, m))?;
        if self.shape_of(x) == Some(shape) {
            return Ok(x.clone());
        }
        self.prim(Prim::Reshape(shape), std::slice::from_ref(x), span)
    }
}

impl Lowerer<'_> {
    /// `cumprod` of `x` along `axis`: the running products, by the Hillis–Steele scan,
    /// `y[i] *= y[i - d]` for `d = 1, 2, 4, ..` (the shifted copy padded with ones), made of
    /// `index`, `pad` and `mul`. Its derivatives are then the product rule's, exact where
    /// elements are zero (a rule dividing by them would not be), at log₂ n steps.
    pub(crate) fn cumprod(&mut self, x: LVal, axis: usize, span: Span) -> Result<LVal> {
        use crate::prim::{Binary, Sel};
        let s = self.array_shape("cumprod", &x, span)?;
        let n = s.dim(axis);
        let mut y = x;
        let mut d = 1;
        while d < n {
            let mut keep: Vec<Sel> = s.dims().iter().map(|k| Sel::Range(0, *k)).collect();
            keep[axis] = Sel::Range(0, n - d);
            let head = self.prim(Prim::Index(keep), &[y.clone()], span)?;
            // Padding adds zeros: shift by one so that the new places hold ones.
            let less = self.prim(Prim::Binary(Binary::Sub), &[head, LVal::Num(1.0)], span)?;
            let mut widths = vec![(0, 0); s.rank()];
            widths[axis] = (d, 0);
            let padded = self.prim(Prim::Pad(widths), &[less], span)?;
            let shifted = self.prim(Prim::Binary(Binary::Add), &[padded, LVal::Num(1.0)], span)?;
            y = self.prim(Prim::Binary(Binary::Mul), &[y, shifted], span)?;
            d *= 2;
        }
        Ok(y)
    }
}
