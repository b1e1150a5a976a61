//! Values that must be known while lowering: loop bounds, indices, axes and shapes.
//!
//! A number is known when it is a literal or computed from literals and shapes, when it is
//! a concrete top-level value, or when it is a scalar input whose value the caller showed
//! (then the specialisation records that it depends on that value).

use super::value::{Arr, LVal};
use super::{Lowerer, Result};
use crate::prim::checked_shape;
use crate::shape::Shape;
use ad_syntax::ast::{Dim, ShapeAnnot};
use ad_syntax::{Diagnostic, Span};

impl Lowerer<'_> {
    /// The value of `v` as a number known now. `what` names the role, for the message.
    pub(crate) fn static_num(&mut self, v: &LVal, what: &str, span: Span) -> Result<f64> {
        match v {
            LVal::Num(x) => Ok(*x),
            LVal::Arr(a) if !a.shape().is_scalar() => {
                Err(Diagnostic::at(span, format!("{what} must be a number, found an array of shape {}", a.shape())))
            }
            LVal::Arr(Arr::Val(a)) => Ok(a.data()[0]),
            LVal::Arr(Arr::Var { known: Some(k), .. }) => {
                for d in k.deps.iter() {
                    if !self.static_deps.contains(d) {
                        self.static_deps.push(*d);
                    }
                }
                Ok(k.value)
            }
            LVal::Arr(Arr::Var { .. }) => Err(Diagnostic::at(
                span,
                format!("{what} must be known when the function is lowered, but it depends on the function's inputs"),
            )
            .with_hint("compute it from literals, shapes (`rows(x)`, `size(x)`) or top-level constants")),
            other => Err(Diagnostic::at(span, format!("{what} must be a number, found {}", other.describe()))),
        }
    }

    pub(crate) fn static_int(&mut self, v: &LVal, what: &str, span: Span) -> Result<i64> {
        let x = self.static_num(v, what, span)?;
        if x != x.trunc() || !x.is_finite() || x.abs() > 9.0e15 {
            return Err(Diagnostic::at(
                span,
                format!("{what} must be an integer, found {}", crate::display::fmt_num(x, 17)),
            ));
        }
        Ok(x as i64)
    }

    /// A non-negative count (a dimension, a number of classes).
    pub(crate) fn static_count(&mut self, v: &LVal, what: &str, span: Span) -> Result<usize> {
        let n = self.static_int(v, what, span)?;
        usize::try_from(n)
            .map_err(|_| Diagnostic::at(span, format!("{what} must not be negative, found {n}")))
    }

    /// A count that a primitive stores in 32 bits (a window's size, a stride, a number of
    /// groups): larger values could not describe an array this tool can hold anyway.
    pub(crate) fn static_count32(&mut self, v: &LVal, what: &str, span: Span) -> Result<u32> {
        let n = self.static_count(v, what, span)?;
        u32::try_from(n).map_err(|_| Diagnostic::at(span, format!("{what} is too large: {n}")))
    }

    /// A position along an axis of length `len`; negative positions count from the end.
    pub(crate) fn static_position(&mut self, v: &LVal, len: usize, what: &str, span: Span) -> Result<usize> {
        let i = self.static_int(v, what, span)?;
        wrap(i, len).ok_or_else(|| {
            Diagnostic::at(span, format!("{what} {i} is out of range for an axis of length {len}"))
        })
    }

    /// An axis of an array of rank `rank`; -1 is the last.
    pub(crate) fn static_axis(&mut self, v: &LVal, rank: usize, span: Span) -> Result<usize> {
        let a = self.static_int(v, "the axis", span)?;
        wrap(a, rank).ok_or_else(|| {
            Diagnostic::at(span, format!("axis {a} is out of range for an array of rank {rank}"))
        })
    }

    /// Axes given as a number or a tuple of numbers (`1`, `(0, 2)`, `()`), negative ones
    /// counting from the end; each at most once.
    pub(crate) fn static_axes(&mut self, v: &LVal, rank: usize, span: Span) -> Result<crate::prim::Axes> {
        let list: Vec<LVal> = match v {
            LVal::Tuple(items) => items.iter().cloned().collect(),
            one => vec![one.clone()],
        };
        let mut axes = Vec::new();
        for a in &list {
            let axis = self.static_axis(a, rank, span)?;
            if axes.contains(&axis) {
                return Err(Diagnostic::at(span, format!("axis {axis} is given twice")));
            }
            axes.push(axis);
        }
        Ok(crate::prim::Axes::of(&axes))
    }

    /// A shape given as a number or a tuple of numbers: `3`, `(2, 3)`, `()`.
    pub(crate) fn static_shape(&mut self, v: &LVal, span: Span) -> Result<Shape> {
        let dims = self.static_dims(v, span)?;
        let dims: Vec<usize> = dims
            .into_iter()
            .map(|d| {
                usize::try_from(d)
                    .map_err(|_| Diagnostic::at(span, format!("a dimension must not be negative, found {d}")))
            })
            .collect::<Result<_>>()?;
        checked_shape(&dims).map_err(|m| Diagnostic::at(span, m))
    }

    /// Dimensions as signed integers (reshape accepts one -1).
    pub(crate) fn static_dims(&mut self, v: &LVal, span: Span) -> Result<Vec<i64>> {
        match v {
            LVal::Tuple(items) => items.iter().map(|x| self.static_int(x, "a dimension", span)).collect(),
            _ => Ok(vec![self.static_int(v, "a dimension", span)?]),
        }
    }
}

/// `i` as a position in `0..len`, counting negative values from the end.
pub(super) fn wrap(i: i64, len: usize) -> Option<usize> {
    let j = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&j).then_some(j as usize)
}

/// The shape an annotation denotes when all its dimensions are numbers.
pub(crate) fn annot_shape(a: &ShapeAnnot) -> Option<Shape> {
    let dims: Option<Vec<usize>> = a
        .dims
        .iter()
        .map(|d| match d {
            Dim::Known(n, _) => usize::try_from(*n).ok(),
            Dim::Named(_) => None,
        })
        .collect();
    checked_shape(&dims?).ok()
}
