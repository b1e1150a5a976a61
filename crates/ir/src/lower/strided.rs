//! Slices with steps, `x[a:b:s]` (negative steps too), read and assigned. They lower to
//! primitives that have every rule already: reading takes the spanned range with `index`,
//! reverses the axes of negative steps with `flip` and keeps every `|s|`-th element by
//! padding the axis to a multiple of the step, splitting it into `[n, |s|]` and taking
//! position 0 of the second; assigning runs those steps backwards (the transpose of each)
//! to place the value in an array of `x`'s shape, and selects it with `where` and a
//! constant mask of the assigned positions.

use super::expr::AxisSel;
use super::value::{Arr, LVal};
use super::{Lowerer, Result};
use crate::array::Array;
use crate::prim::{Axes, Prim, Sel};
use crate::shape::Shape;
use ad_syntax::ast::Expr;
use ad_syntax::{Diagnostic, Span};

/// (axis of the selected part, elements, step) of a strided selection.
type Step = (usize, usize, i64);

/// The range of `x` each selection spans (a position for a number, the whole axis where
/// nothing is given) and the steps to take within the spanned part.
fn plan(sels: &[AxisSel], shape: Shape) -> (Vec<Sel>, Vec<Step>) {
    let mut ranges = Vec::with_capacity(shape.rank());
    let mut steps = Vec::new();
    let mut out_axis = 0;
    for axis in 0..shape.rank() {
        match sels.get(axis) {
            Some(AxisSel::Static(Sel::At(i))) => ranges.push(Sel::At(*i)),
            Some(AxisSel::Static(Sel::Range(a, b))) => {
                ranges.push(Sel::Range(*a, *b));
                out_axis += 1;
            }
            Some(AxisSel::Strided { first, n, step }) => {
                let (m, first) = (step.unsigned_abs() as usize, *first as usize);
                ranges.push(match (*n, *step > 0) {
                    (0, _) => Sel::Range(0, 0),
                    (n, true) => Sel::Range(first, first + (n - 1) * m + 1),
                    (n, false) => Sel::Range(first - (n - 1) * m, first + 1),
                });
                steps.push((out_axis, *n, *step));
                out_axis += 1;
            }
            // Computed selections were refused by the caller.
            Some(AxisSel::Pick(_) | AxisSel::Window(..)) | None => {
                ranges.push(Sel::Range(0, shape.dim(axis)));
                out_axis += 1;
            }
        }
    }
    (ranges, steps)
}

/// The shape `dims` (one axis more than the array `s` it splits), or a located error when
/// that passes the rank limit.
fn one_more_axis(dims: &[usize], s: Shape, span: Span) -> Result<Shape> {
    Shape::from_dims(dims).ok_or_else(|| {
        Diagnostic::at(
            span,
            format!("a slice with a step of an array of shape {s} needs one axis more than arrays have"),
        )
    })
}

/// The positions each selection picks along its axis.
fn positions(sel: Option<&AxisSel>, len: usize) -> Vec<usize> {
    match sel {
        Some(AxisSel::Static(Sel::At(i))) => vec![*i],
        Some(AxisSel::Static(Sel::Range(a, b))) => (*a..*b).collect(),
        Some(AxisSel::Strided { first, n, step }) => {
            (0..*n as i64).map(|k| (first + k * step) as usize).collect()
        }
        Some(AxisSel::Pick(_) | AxisSel::Window(..)) | None => (0..len).collect(),
    }
}

impl Lowerer<'_> {
    /// The first position and the length of `start:end:step` (step not 0 or 1) on an axis
    /// of length `len`, as NumPy: negative bounds count from the end, bounds are clipped,
    /// and a negative step runs from `start` (default the last element) down to just
    /// after `end` (default: through the first element).
    pub(super) fn strided_range(
        &mut self,
        start: &Option<Expr>,
        end: &Option<Expr>,
        step: i64,
        len: usize,
        what: &str,
    ) -> Result<(i64, usize)> {
        if step > 0 {
            let (a, b) = self.slice_range(start, end, len, what)?;
            return Ok((a as i64, (b - a).div_ceil(step as usize)));
        }
        let n = len as i64;
        let mut bound = |e: &Option<Expr>, default: i64| -> Result<i64> {
            let Some(e) = e else { return Ok(default) };
            let b = self.expr(e)?;
            let i = self.static_int(&b, what, e.span)?;
            Ok(if i < 0 { i + n } else { i }.clamp(-1, n - 1))
        };
        let a = bound(start, n - 1)?;
        let b = bound(end, -1)?;
        let count = if a > b { ((a - b) as u64).div_ceil(step.unsigned_abs()) as usize } else { 0 };
        Ok((if count == 0 { 0 } else { a }, count))
    }

    /// `x[..]` with slices that have steps (`sels`; `x` of shape `shape`): the ranges they
    /// span taken with `index`, axes of negative steps reversed with `flip`, then every
    /// `|step|`-th element kept by padding the axis to a multiple of the step, splitting it
    /// into `[n, |step|]` and taking position 0 of the second. All of them are primitives
    /// with derivatives, so a strided slice needs no rules of its own.
    pub(super) fn strided_index(
        &mut self,
        v: LVal,
        sels: &[AxisSel],
        shape: Shape,
        span: Span,
    ) -> Result<LVal> {
        let (ranges, steps) = plan(sels, shape);
        let mut x = self.prim(Prim::Index(ranges), &[v], span)?;
        let flipped: Vec<usize> = steps.iter().filter(|(_, _, s)| *s < 0).map(|(a, _, _)| *a).collect();
        if !flipped.is_empty() {
            x = self.prim(Prim::Flip(crate::prim::Axes::of(&flipped)), &[x], span)?;
        }
        for &(axis, n, step) in &steps {
            let m = step.unsigned_abs() as usize;
            if n < 2 || m == 1 {
                continue;
            }
            let s = self.shape_of(&x).unwrap_or_default();
            let mut widths = vec![(0, 0); s.rank()];
            widths[axis] = (0, m - 1);
            x = self.prim(Prim::Pad(widths), &[x], span)?;
            let mut dims = s.dims().to_vec();
            dims.splice(axis..=axis, [n, m]);
            let split = one_more_axis(&dims, s, span)?;
            x = self.prim(Prim::Reshape(split), &[x], span)?;
            let mut pick: Vec<Sel> = dims.iter().map(|d| Sel::Range(0, *d)).collect();
            pick[axis + 1] = Sel::At(0);
            x = self.prim(Prim::Index(pick), &[x], span)?;
        }
        Ok(x)
    }

    /// The shape of the part of an array of shape `shape` that `sels` select.
    pub(super) fn strided_part(sels: &[AxisSel], shape: Shape, span: Span) -> Result<Shape> {
        let dims: Vec<usize> = (0..shape.rank())
            .filter_map(|axis| match sels.get(axis) {
                Some(AxisSel::Static(Sel::At(_))) => None,
                sel => Some(positions(sel, shape.dim(axis)).len()),
            })
            .collect();
        Shape::from_dims(&dims)
            .ok_or_else(|| Diagnostic::at(span, "internal error: a part with more axes than its array"))
    }

    /// `x` with the part that `sels` select (some of them slices with steps) replaced by
    /// `v`, which has the part's shape.
    pub(super) fn strided_update(
        &mut self,
        x: LVal,
        v: LVal,
        sels: &[AxisSel],
        shape: Shape,
        span: Span,
    ) -> Result<LVal> {
        let (ranges, steps) = plan(sels, shape);
        let mut y = v;
        // Each step of `strided_index` transposed, last first: position 0 of `[n, |s|]`
        // becomes a size-1 axis padded to `|s|`, merged, and cut to the spanned range.
        for &(axis, n, step) in steps.iter().rev() {
            let m = step.unsigned_abs() as usize;
            if n < 2 || m == 1 {
                continue;
            }
            let s = self.shape_of(&y).unwrap_or_default();
            let mut dims = s.dims().to_vec();
            dims.insert(axis + 1, 1);
            y = self.prim(Prim::Reshape(one_more_axis(&dims, s, span)?), &[y], span)?;
            let mut widths = vec![(0, 0); dims.len()];
            widths[axis + 1] = (0, m - 1);
            y = self.prim(Prim::Pad(widths), &[y], span)?;
            let mut merged = s.dims().to_vec();
            merged[axis] = n * m;
            y = self.prim(Prim::Reshape(one_more_axis(&merged, s, span)?), &[y], span)?;
            let mut cut: Vec<Sel> = merged.iter().map(|d| Sel::Range(0, *d)).collect();
            cut[axis] = Sel::Range(0, (n - 1) * m + 1);
            y = self.prim(Prim::Index(cut), &[y], span)?;
        }
        let flipped: Vec<usize> = steps.iter().filter(|(_, _, s)| *s < 0).map(|(a, _, _)| *a).collect();
        if !flipped.is_empty() {
            y = self.prim(Prim::Flip(Axes::of(&flipped)), &[y], span)?;
        }
        // The spanned part placed in the whole: size-1 axes where a position was picked,
        // then zeros around.
        let spanned: Vec<usize> =
            ranges.iter().map(|r| if let Sel::Range(a, b) = r { b - a } else { 1 }).collect();
        let spanned = one_more_axis(&spanned, shape, span)?;
        if self.shape_of(&y) != Some(spanned) {
            y = self.prim(Prim::Reshape(spanned), &[y], span)?;
        }
        let widths: Vec<(usize, usize)> = ranges
            .iter()
            .zip(shape.dims())
            .map(|(r, d)| match r {
                Sel::Range(a, b) => (*a, d - b),
                Sel::At(i) => (*i, d - i - 1),
            })
            .collect();
        y = self.prim(Prim::Pad(widths), &[y], span)?;
        // The mask of the assigned positions: the product of each axis's indicator.
        let picked: Vec<Vec<bool>> = (0..shape.rank())
            .map(|axis| {
                let mut on = vec![false; shape.dim(axis)];
                positions(sels.get(axis), shape.dim(axis)).into_iter().for_each(|p| on[p] = true);
                on
            })
            .collect();
        let strides = shape.strides();
        let mask: Vec<f64> = (0..shape.size())
            .map(|k| f64::from(u8::from((0..shape.rank()).all(|a| picked[a][k / strides[a] % shape.dim(a)]))))
            .collect();
        let mask = LVal::Arr(Arr::Val(Array::new(shape, mask)));
        self.prim(Prim::Where, &[mask, y, x], span)
    }
}
