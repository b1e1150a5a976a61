//! Calling `vmap(f, in_axes, out_axes)` while tracing.
//!
//! The mapped axis of each mapped argument moves to the front; `f` is lowered into its own
//! program for one batch element (the arguments without that axis); the host batches the
//! program (`Mode::Vmap`, one batching rule per primitive in `ad-autodiff`); the batched
//! program is inlined with the moved arguments, and each result's batch axis moves to its
//! place in `out_axes`. Because the batched program is ordinary IR, every transform
//! composes with `vmap` in either order.

use super::spec::{call_known_scalars, for_each_leaf, Spec};
use super::statics::wrap;
use super::value::{AxisArg, LVal, VmapAxes};
use super::{lower_function, Lowerer, Result};
use crate::shape::Shape;
use crate::transform::{Mode, Request};
use ad_syntax::{Diagnostic, Span};

/// `in_axes` or `out_axes` as written: a number, `none`, or a tuple of those.
pub(crate) fn axis_arg(lw: &mut Lowerer, v: &LVal, what: &str, span: Span) -> Result<AxisArg> {
    let one = |lw: &mut Lowerer, x: &LVal| -> Result<Option<i64>> {
        match x {
            LVal::None => Ok(None),
            other => lw.static_int(other, what, span).map(Some),
        }
    };
    Ok(match v {
        LVal::Tuple(items) => {
            let mut each = Vec::with_capacity(items.len());
            for x in items.iter() {
                each.push(one(lw, x)?);
            }
            AxisArg::Each(each)
        }
        x => AxisArg::All(one(lw, x)?),
    })
}

/// The permutation that moves axis `from` to position `to`.
fn moving(rank: usize, from: usize, to: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..rank).filter(|a| *a != from).collect();
    perm.insert(to, from);
    perm
}

impl Lowerer<'_> {
    pub(crate) fn call_vmap(
        &mut self,
        f: &LVal,
        axes: &VmapAxes,
        args: Vec<LVal>,
        span: Span,
        arg_spans: &[Span],
    ) -> Result<LVal> {
        let at = |i: usize| arg_spans.get(i).copied().unwrap_or(span);
        if let AxisArg::Each(each) = &axes.in_axes {
            if each.len() != args.len() {
                return Err(Diagnostic::at(
                    span,
                    format!(
                        "`in_axes` has {} but the function is called with {}",
                        crate::words::count_irregular(each.len(), "entry", "entries"),
                        crate::words::count(args.len(), "argument")
                    ),
                )
                .with_hint("give one axis (or `none`) per argument, or one number for all"));
            }
        }
        // The batch size, from every leaf of every mapped argument.
        let mut size: Option<(usize, Shape, usize)> = None;
        let mut mapped = Vec::new();
        for (i, a) in args.iter().enumerate() {
            let Some(axis) = axes.in_axes.get(i) else { continue };
            mapped.push(i);
            let mut leaves = Vec::new();
            for_each_leaf(a, &mut |x| leaves.push(x.clone()));
            if leaves.is_empty() || matches!(a, LVal::Func(_)) {
                return Err(Diagnostic::at(
                    at(i),
                    format!("`vmap` maps over arrays, found {}; give `none` for this argument", a.describe()),
                ));
            }
            for x in &leaves {
                let s = self.array_shape("vmap", x, at(i))?;
                let k = wrap(axis, s.rank()).ok_or_else(|| {
                    Diagnostic::at(at(i), format!("`vmap` cannot map axis {axis} of an array of shape {s}"))
                })?;
                match size {
                    Some((n, first, j)) if n != s.dim(k) => {
                        return Err(Diagnostic::at(
                            span,
                            format!(
                                "`vmap` got batches of different sizes: {n} (shape {first}) and {} (shape {s}, axis {k})",
                                s.dim(k)
                            ),
                        )
                        .with_label(at(j), format!("batch of {n} here"))
                        .with_label(at(i), format!("batch of {} here", s.dim(k)))
                        .with_hint("give `none` in `in_axes` for the arguments that are not batched, e.g. `vmap(f, (none, 0))`"))
                    }
                    Some(_) => {}
                    None => size = Some((s.dim(k), s, i)),
                }
            }
        }
        let Some((b, _, _)) = size else {
            return Err(Diagnostic::at(
                span,
                "`vmap` needs at least one mapped argument (all `in_axes` are `none`)",
            ));
        };
        // The arguments with their mapped axis first, and one batch element's structure.
        let mut moved = Vec::with_capacity(args.len());
        let mut specs = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            match axes.in_axes.get(i) {
                None => {
                    moved.push(a.clone());
                    specs.push(Spec::of(a));
                }
                Some(axis) => {
                    let m = self.map_leaves(a, &mut |lw, x| {
                        let s = lw.array_shape("vmap", x, span)?;
                        let k = wrap(axis, s.rank()).unwrap_or(0);
                        lw.permute(x, moving(s.rank(), k, 0), span)
                    })?;
                    specs.push(element_spec(&Spec::of(&m)));
                    moved.push(m);
                }
            }
        }
        let known = call_known_scalars(f, &args);
        let lowered = lower_function(&mut *self.host, f, &specs, &known, span, arg_spans)?;
        let offset = usize::from(Spec::of(f).leaves() > 0);
        let req = Request { mode: Mode::Vmap(b), wrt: mapped.iter().map(|i| i + offset).collect() };
        let batched = self.host.derive(&lowered.program, &req).map_err(|m| Diagnostic::at(span, m))?;
        let mut sources: Vec<LVal> = Vec::new();
        for_each_leaf(f, &mut |x| sources.push(x.clone()));
        for a in &moved {
            for_each_leaf(a, &mut |x| sources.push(x.clone()));
        }
        self.add_captures(&batched, &mut sources, span)?;
        let outs = self.inline_program(&batched, &sources, span)?;
        let out_spec = batch_spec(&lowered.out_spec, b);
        let mut it = outs.into_iter();
        let result = self.rebuild(&out_spec, &mut it);
        self.place_outputs(result, &axes.out_axes, span)
    }

    /// Applies `g` to every array leaf of `v`, keeping its structure.
    fn map_leaves(&mut self, v: &LVal, g: &mut dyn FnMut(&mut Self, &LVal) -> Result<LVal>) -> Result<LVal> {
        Ok(match v {
            LVal::Tuple(items) => {
                let mut out = Vec::with_capacity(items.len());
                for x in items.iter() {
                    out.push(self.map_leaves(x, g)?);
                }
                LVal::Tuple(out.into())
            }
            LVal::Num(_) | LVal::Arr(_) => g(self, v)?,
            other => other.clone(),
        })
    }

    /// Moves the leading batch axis of each result to its place in `out_axes` (per
    /// top-level element of a tuple result when a tuple is given).
    fn place_outputs(&mut self, result: LVal, out_axes: &AxisArg, span: Span) -> Result<LVal> {
        let place = |lw: &mut Self, v: &LVal, axis: Option<i64>| -> Result<LVal> {
            let Some(axis) = axis else {
                return Err(Diagnostic::at(
                    span,
                    "`out_axes` is `none` for a result that depends on the mapped arguments",
                ));
            };
            lw.map_leaves(v, &mut |lw, x| {
                let s = lw.array_shape("vmap", x, span)?;
                let k = wrap(axis, s.rank()).ok_or_else(|| {
                    Diagnostic::at(
                        span,
                        format!("`out_axes` {axis} is out of range for a result of shape {s}"),
                    )
                })?;
                lw.permute(x, moving(s.rank(), 0, k), span)
            })
        };
        match (out_axes, &result) {
            (AxisArg::All(a), _) => place(self, &result, *a),
            (AxisArg::Each(each), LVal::Tuple(items)) if each.len() == items.len() => {
                let mut out = Vec::with_capacity(items.len());
                for (x, a) in items.iter().zip(each) {
                    out.push(place(self, x, *a)?);
                }
                Ok(LVal::Tuple(out.into()))
            }
            (AxisArg::Each(each), r) => Err(Diagnostic::at(
                span,
                format!(
                    "`out_axes` has {} but the function returns {}",
                    crate::words::count_irregular(each.len(), "entry", "entries"),
                    r.describe()
                ),
            )),
        }
    }
}

/// One batch element's structure: every array without its leading axis.
fn element_spec(s: &Spec) -> Spec {
    match s {
        Spec::Array(shape) => Spec::Array(Shape::from_dims(&shape.dims()[1..]).unwrap_or_default()),
        Spec::Tuple(ts) => Spec::Tuple(ts.iter().map(element_spec).collect()),
        other => other.clone(),
    }
}

/// A result structure with a leading batch axis on every array.
fn batch_spec(s: &Spec, b: usize) -> Spec {
    match s {
        // The batched program was built, so the batched shapes exist.
        Spec::Array(shape) => Spec::Array(shape.insert_axis(0, b).unwrap_or(*shape)),
        Spec::Tuple(ts) => Spec::Tuple(ts.iter().map(|t| batch_spec(t, b)).collect()),
        other => other.clone(),
    }
}
