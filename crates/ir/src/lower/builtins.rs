//! Builtin functions: primitives (one IR operation each, with static arguments parsed
//! here), shape utilities answered while lowering, and top-level effects.
//!
//! Library functions (`mean`, `softmax`, ...) are not here: they are written in `.ad` in the
//! prelude, so their derivatives come from the primitives.

use super::value::{CustomKind, LVal};
use super::{Lowerer, Mode, Result};
use crate::prim::{Axes, Binary, Decomp, Prim, Sel, Unary, F64};
use crate::shape::Shape;
use crate::transform::{self, JacMode};
use ad_syntax::{Diagnostic, Span};

/// Builtins that are not primitives: shape utilities answered while lowering, the
/// transformations, and effects.
#[rustfmt::skip]
const NON_PRIMITIVES: &[&str] = &[
    // shape utilities
    "shape", "rows", "cols", "size", "rank",
    // axes at any rank, lowered to primitives (`axes.rs`, `einsum.rs`)
    "stack", "expand_dims", "squeeze", "einsum", "cumprod", "eigh", "qr", "svd",
    // differentiation
    "grad", "value_and_grad", "jvp", "vjp", "hvp", "hessian", "jacobian", "jacfwd", "jacrev",
    // reverse mode through a loop, as derived programs print it (`reverse_loop.rs`)
    "reverse_loop",
    // batching
    "vmap",
    // custom derivatives (`custom.rs`)
    "custom_jvp", "custom_vjp",
    // effects (top level only)
    "print", "seed", "randn", "rand", "now", "read_csv", "write_csv",
    "load", "save",
    // plotting (top level only)
    "plot", "scatter", "hist", "imshow", "title", "xlabel", "ylabel", "show", "savefig",
];

/// Every builtin name, for lookup, completion and suggestions: the primitives' names (from
/// their declarations) and the other builtins.
pub fn names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| crate::prim::names().chain(NON_PRIMITIVES.iter().copied()).collect())
}

/// Builtins that touch the world; only the top level may call them.
const EFFECTS: &[&str] = &["print", "seed", "randn", "rand", "now", "read_csv", "write_csv"];

/// Builtins with effects: they are not functions of their arguments, so they cannot be
/// traced or differentiated.
pub fn is_effect(name: &str) -> bool {
    EFFECTS.contains(&name) || super::io_effects::is_io_effect(name)
}

/// The builtin called `name`, if any: a hash lookup, since every name a top-level statement
/// evaluates is looked up here (a scan of the table was a tenth of a small function's
/// call).
pub fn lookup(name: &str) -> Option<&'static str> {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> = std::sync::OnceLock::new();
    SET.get_or_init(|| names().iter().copied().collect()).get(name).copied()
}

pub fn is_builtin_name(name: &str) -> bool {
    lookup(name).is_some()
}

/// The callable elementwise primitive called `name`, if any (by hash, as `lookup`).
fn unary_of(name: &str) -> Option<Unary> {
    static MAP: std::sync::OnceLock<std::collections::HashMap<&'static str, Unary>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(|| Unary::ALL.iter().filter(|u| u.callable()).map(|u| (u.name(), *u)).collect())
        .get(name)
        .copied()
}

fn binary_of(name: &str) -> Option<Binary> {
    static MAP: std::sync::OnceLock<std::collections::HashMap<&'static str, Binary>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(|| Binary::ALL.iter().filter(|b| b.callable()).map(|b| (b.name(), *b)).collect())
        .get(name)
        .copied()
}

pub(super) fn arity(name: &str, args: &[LVal], allowed: &[usize], span: Span) -> Result<()> {
    if allowed.contains(&args.len()) {
        return Ok(());
    }
    let expected = match allowed {
        [n] => crate::words::count(*n, "argument"),
        [a, b] => format!("{a} or {b} arguments"),
        _ => format!("{allowed:?} arguments"),
    };
    Err(Diagnostic::at(span, crate::words::arity(&format!("`{name}`"), &expected, args.len())))
}

pub(crate) fn call(
    lw: &mut Lowerer,
    name: &'static str,
    args: Vec<LVal>,
    span: Span,
    spans: &[Span],
) -> Result<LVal> {
    let at = |i: usize| spans.get(i).copied().unwrap_or(span);
    // One span per argument, whatever the caller gave.
    let all_spans: Vec<Span> = (0..args.len().max(1)).map(at).collect();
    if is_effect(name) {
        return effect(lw, name, args, span, spans);
    }
    if let Some(u) = unary_of(name) {
        arity(name, &args, &[1], span)?;
        return lw.operator(Prim::Unary(u), name, &args, spans, span);
    }
    if let Some(b) = binary_of(name) {
        arity(name, &args, &[2], span)?;
        return lw.operator(Prim::Binary(b), name, &args, spans, span);
    }
    if let Some(d) = Decomp::from_name(name) {
        arity(name, &args, &[1], span)?;
        return lw.prim(Prim::Decomp(d), &args, span);
    }
    let shape_arg = |lw: &mut Lowerer, i: usize| -> Result<Shape> {
        let s = lw.shape_of(&args[i]).ok_or_else(|| {
            Diagnostic::at(at(i), format!("`{name}` needs an array here, found {}", args[i].describe()))
        })?;
        Ok(s)
    };
    match name {
        "grad" | "value_and_grad" => {
            arity(name, &args, &[1, 2], span)?;
            let f = function_arg(name, &args[0], at(0))?;
            let (argnums, tuple) = match args.get(1) {
                None => (vec![0], false),
                Some(LVal::Tuple(items)) => {
                    let mut v = Vec::new();
                    for x in items.iter() {
                        v.push(lw.static_count(x, "an argument number", at(1))?);
                    }
                    (v, true)
                }
                Some(x) => (vec![lw.static_count(x, "the argument number", at(1))?], false),
            };
            let mode = transform::Mode::Grad { with_value: name == "value_and_grad" };
            Ok(super::derived::transform_value(mode, f, argnums, tuple))
        }
        "hessian" | "jacobian" | "jacfwd" | "jacrev" => {
            arity(name, &args, &[1], span)?;
            let f = function_arg(name, &args[0], at(0))?;
            let mode = match name {
                "hessian" => transform::Mode::Hessian,
                "jacfwd" => transform::Mode::Jacobian(JacMode::Forward),
                "jacrev" => transform::Mode::Jacobian(JacMode::Reverse),
                _ => transform::Mode::Jacobian(JacMode::Auto),
            };
            Ok(super::derived::transform_value(mode, f, vec![0], false))
        }
        "jvp" | "vjp" => {
            arity(name, &args, &[3], span)?;
            let f = function_arg(name, &args[0], at(0))?;
            let (primals, tuple) = match &args[1] {
                LVal::Tuple(items) => (items.to_vec(), true),
                x => (vec![x.clone()], false),
            };
            let n = primals.len();
            let mut call_args = primals;
            let mut spans: Vec<Span> = vec![at(1); n];
            if name == "jvp" {
                let tangents = match (&args[2], tuple) {
                    (LVal::Tuple(items), true) => items.to_vec(),
                    (x, false) => vec![x.clone()],
                    (x, true) => {
                        return Err(Diagnostic::at(
                            at(2),
                            format!("the tangents must be a tuple like the primals, found {}", x.describe()),
                        ))
                    }
                };
                if tangents.len() != n {
                    return Err(Diagnostic::at(
                        at(2),
                        format!("{} primal(s) but {} tangent(s)", n, tangents.len()),
                    ));
                }
                call_args.extend(tangents);
                spans.extend(vec![at(2); n]);
            } else {
                call_args.push(args[2].clone());
                spans.push(at(2));
            }
            let mode = if name == "jvp" { transform::Mode::Jvp } else { transform::Mode::Vjp };
            let t = super::derived::transform_value(mode, f, (0..n).collect(), tuple);
            lw.call_value(t, call_args, span, &spans)
        }
        "vmap" => {
            arity(name, &args, &[1, 2, 3], span)?;
            let f = function_arg(name, &args[0], at(0))?;
            let in_axes = match args.get(1) {
                Some(a) => super::vmap::axis_arg(lw, a, "an entry of `in_axes`", at(1))?,
                None => super::value::AxisArg::All(Some(0)),
            };
            let out_axes = match args.get(2) {
                Some(a) => super::vmap::axis_arg(lw, a, "an entry of `out_axes`", at(2))?,
                None => super::value::AxisArg::All(Some(0)),
            };
            let axes = std::rc::Rc::new(super::value::VmapAxes { in_axes, out_axes });
            Ok(LVal::Func(std::rc::Rc::new(super::value::Func::Vmap { f, axes })))
        }
        "reverse_loop" => lw.reverse_loop(&args, spans, span),
        "custom_jvp" | "custom_vjp" => {
            let kind = if name == "custom_jvp" { CustomKind::Jvp } else { CustomKind::Vjp };
            arity(name, &args, &[if kind == CustomKind::Jvp { 2 } else { 3 }], span)?;
            let f = function_arg(name, &args[0], at(0))?;
            let rules =
                (1..args.len()).map(|k| function_arg(name, &args[k], at(k))).collect::<Result<_>>()?;
            Ok(LVal::Func(std::rc::Rc::new(super::value::Func::Custom { kind, f, rules })))
        }
        "hvp" => {
            arity(name, &args, &[3], span)?;
            let f = function_arg(name, &args[0], at(0))?;
            let t = super::derived::transform_value(transform::Mode::Hvp, f, vec![0], false);
            lw.call_value(t, vec![args[1].clone(), args[2].clone()], span, &[at(1), at(2)])
        }
        "where" => {
            arity(name, &args, &[3], span)?;
            lw.operator(Prim::Where, name, &args, spans, span)
        }
        "matmul" => {
            arity(name, &args, &[2], span)?;
            lw.operator(Prim::MatMul, "@", &args, spans, span)
        }
        "solve" | "safe_solve" | "safe_matmul" => {
            arity(name, &args, &[2], span)?;
            let prim = match name {
                "solve" => Prim::Solve,
                "safe_solve" => Prim::SafeSolve,
                _ => Prim::SafeMatMul,
            };
            let args = if prim == Prim::SafeMatMul { args } else { broadcast_batches(lw, args, span)? };
            lw.operator(prim, name, &args, spans, span)
        }
        // `eigh(A)`: the eigenvalues (ascending) and the eigenvectors (columns), as NumPy's.
        "eigh" => {
            arity(name, &args, &[1], span)?;
            let w = lw.prim(Prim::Decomp(Decomp::EighValues), &args, span)?;
            let v = lw.prim(Prim::Decomp(Decomp::EighVectors), &args, span)?;
            Ok(LVal::Tuple(vec![w, v].into()))
        }
        // `qr(A)`: the reduced decomposition `(Q, R)`, as NumPy's `qr(A)` (mode "reduced").
        "qr" => {
            arity(name, &args, &[1], span)?;
            let q = lw.prim(Prim::Decomp(Decomp::QrQ), &args, span)?;
            let r = lw.prim(Prim::Decomp(Decomp::QrR), &args, span)?;
            Ok(LVal::Tuple(vec![q, r].into()))
        }
        // `svd(A)`: the reduced decomposition `(U, s, Vt)`, as NumPy's `svd(A, full_matrices=False)`.
        "svd" => {
            arity(name, &args, &[1], span)?;
            let u = lw.prim(Prim::Decomp(Decomp::SvdU), &args, span)?;
            let s = lw.prim(Prim::Decomp(Decomp::SvdS), &args, span)?;
            let vt = lw.prim(Prim::Decomp(Decomp::SvdVt), &args, span)?;
            Ok(LVal::Tuple(vec![u, s, vt].into()))
        }
        "cholesky" | "logabsdet" | "signdet" => {
            arity(name, &args, &[1], span)?;
            let prim = match name {
                "cholesky" => Prim::Cholesky,
                "logabsdet" => Prim::LogAbsDet,
                _ => Prim::SignDet,
            };
            lw.prim(prim, &args, span)
        }
        "solve_triangular" => {
            arity(name, &args, &[3], span)?;
            let lower = lw.static_num(&args[2], "`lower`", at(2))? != 0.0;
            let args = broadcast_batches(lw, args[..2].to_vec(), span)?;
            lw.prim(Prim::SolveTriangular(lower), &args, span)
        }
        "transpose" => lw.transpose_builtin(&args, span, &all_spans),
        "stack" => lw.stack_builtin(&args, span, &all_spans),
        "expand_dims" => lw.expand_dims_builtin(&args, span, &all_spans),
        "squeeze" => lw.squeeze_builtin(&args, span, &all_spans),
        "einsum" => lw.einsum(&args, span, &all_spans),
        "concat" if matches!(args.first(), Some(LVal::Tuple(_))) => lw.concat_tuple(&args, span, &all_spans),
        "check" => {
            arity(name, &args, &[4], span)?;
            let message = match &args[2] {
                LVal::Str(m) => m.clone(),
                other => {
                    return Err(Diagnostic::at(
                        at(2),
                        format!("the message of `check` is a string, not {}", other.describe()),
                    ))
                }
            };
            let operands = [args[0].clone(), args[1].clone(), args[3].clone()];
            lw.prim(Prim::Check(message), &operands, span)
        }
        "stop_gradient" => {
            arity(name, &args, &[1], span)?;
            lw.operator(Prim::StopGradient, name, &args, spans, span)
        }
        "sum" | "amax" | "prod" | "flip" => {
            arity(name, &args, &[1, 2], span)?;
            let x = shape_arg(lw, 0)?;
            let axes = match args.get(1) {
                Some(a) => lw.static_axes(a, x.rank(), at(1))?,
                None => Axes::all(x.rank()),
            };
            let prim = match name {
                "sum" => Prim::Sum(axes),
                "amax" => Prim::Amax(axes),
                "flip" => Prim::Flip(axes),
                _ => Prim::Prod(axes),
            };
            lw.prim(prim, &args[..1], span)
        }
        // `cumsum(x)` runs over the elements in order (of the flattened array, as NumPy);
        // `cumsum(x, axis)` along an axis; `cumsum(x, axis, 1)` from the end of it.
        "cumsum" => {
            arity(name, &args, &[1, 2, 3], span)?;
            let x = shape_arg(lw, 0)?;
            let reverse = match args.get(2) {
                Some(r) => lw.static_num(r, "`reverse`", at(2))? != 0.0,
                None => false,
            };
            match args.get(1) {
                Some(a) => {
                    let axis = lw.static_axis(a, x.rank(), at(1))?;
                    lw.prim(Prim::Cumsum(axis, reverse), &args[..1], span)
                }
                None => {
                    let flat = lw.prim(Prim::Reshape(crate::Shape::vector(x.size())), &args[..1], span)?;
                    lw.prim(Prim::Cumsum(0, reverse), &[flat], span)
                }
            }
        }
        // `cumprod(x)` over the elements in order (of the flattened array, as NumPy);
        // `cumprod(x, axis)` along an axis.
        "cumprod" => {
            arity(name, &args, &[1, 2], span)?;
            let x = shape_arg(lw, 0)?;
            match args.get(1) {
                Some(a) => {
                    let axis = lw.static_axis(a, x.rank(), at(1))?;
                    lw.cumprod(args[0].clone(), axis, span)
                }
                None => {
                    let flat = lw.prim(Prim::Reshape(crate::Shape::vector(x.size())), &args[..1], span)?;
                    lw.cumprod(flat, 0, span)
                }
            }
        }
        "argmax" => {
            arity(name, &args, &[1, 2], span)?;
            let x = shape_arg(lw, 0)?;
            let axis = match args.get(1) {
                Some(a) => Some(lw.static_axis(a, x.rank(), at(1))?),
                None => None,
            };
            lw.prim(Prim::Argmax(axis), &args[..1], span)
        }
        "reshape" => {
            arity(name, &args, &[2], span)?;
            let x = shape_arg(lw, 0)?;
            let dims = lw.static_dims(&args[1], at(1))?;
            let shape = reshape_target(x, &dims).map_err(|m| Diagnostic::at(at(1), m))?;
            lw.prim(Prim::Reshape(shape), &args[..1], span)
        }
        "broadcast_to" | "sum_to" => {
            arity(name, &args, &[2], span)?;
            let s = lw.static_shape(&args[1], at(1))?;
            let prim = if name == "broadcast_to" { Prim::BroadcastTo(s) } else { Prim::SumTo(s) };
            lw.prim(prim, &args[..1], span)
        }
        "slice" => {
            arity(name, &args, &[3], span)?;
            let x = shape_arg(lw, 0)?;
            let starts = lw.static_dims(&args[1], at(1))?;
            let ends = lw.static_dims(&args[2], at(2))?;
            if starts.len() != x.rank() || ends.len() != x.rank() {
                return Err(Diagnostic::at(
                    span,
                    format!("`slice` of an array of shape {x} needs {} start(s) and end(s)", x.rank()),
                ));
            }
            let sels = (0..x.rank())
                .map(|k| {
                    let len = x.dim(k) as i64;
                    let norm = |i: i64| (if i < 0 { i + len } else { i }).clamp(0, len) as usize;
                    let (a, b) = (norm(starts[k]), norm(ends[k]));
                    Sel::Range(a, b.max(a))
                })
                .collect();
            lw.prim(Prim::Index(sels), &args[..1], span)
        }
        "index" => {
            arity(name, &args, &[2, 3], span)?;
            let x = shape_arg(lw, 0)?;
            if args.len() - 1 != x.rank() {
                return Err(Diagnostic::at(
                    span,
                    format!(
                        "`index` of an array of shape {x} needs {}",
                        crate::words::count_irregular(x.rank(), "index", "indices")
                    ),
                ));
            }
            let mut sels = Vec::new();
            for k in 0..x.rank() {
                sels.push(Sel::At(lw.static_position(&args[k + 1], x.dim(k), "index", at(k + 1))?));
            }
            lw.prim(Prim::Index(sels), &args[..1], span)
        }
        "pad" => {
            arity(name, &args, &[2], span)?;
            let x = shape_arg(lw, 0)?;
            let widths = pad_widths(lw, &args[1], x.rank(), at(1))?;
            lw.prim(Prim::Pad(widths), &args[..1], span)
        }
        "concat" => {
            arity(name, &args, &[2, 3], span)?;
            let x = shape_arg(lw, 0)?;
            let axis = match args.get(2) {
                Some(a) => lw.static_axis(a, x.rank().max(1), at(2))?,
                None => 0,
            };
            lw.prim(Prim::Concat(axis), &args[..2], span)
        }
        "zeros" | "ones" => {
            arity(name, &args, &[1], span)?;
            let s = lw.static_shape(&args[0], at(0))?;
            lw.prim(Prim::Full(s, F64(if name == "ones" { 1.0 } else { 0.0 })), &[], span)
        }
        "full" => {
            arity(name, &args, &[2], span)?;
            let s = lw.static_shape(&args[0], at(0))?;
            match &args[1] {
                LVal::Num(v) => lw.prim(Prim::Full(s, F64(*v)), &[], span),
                _ => lw.prim(Prim::BroadcastTo(s), &args[1..], span),
            }
        }
        "eye" => {
            arity(name, &args, &[1], span)?;
            let n = lw.static_count(&args[0], "the size", at(0))?;
            lw.prim(Prim::Eye(n), &[], span)
        }
        "arange" => {
            arity(name, &args, &[1], span)?;
            let n = lw.static_count(&args[0], "the length", at(0))?;
            lw.prim(Prim::Arange(n), &[], span)
        }
        "linspace" => {
            arity(name, &args, &[3], span)?;
            let n = lw.static_count(&args[2], "the number of points", at(2))?;
            if let (LVal::Num(a), LVal::Num(b)) = (&args[0], &args[1]) {
                return lw.prim(Prim::Linspace(F64(*a), F64(*b), n), &[], span);
            }
            // Computed end points are data, not constants: `a + (b - a) * linspace(0, 1, n)`
            // keeps their derivatives (taking their values as constants would silently
            // give a zero derivative).
            for i in 0..2 {
                if !lw.shape_of(&args[i]).is_some_and(|s| s.is_scalar()) {
                    return Err(Diagnostic::at(
                        at(i),
                        format!("`linspace` needs numbers as end points, found {}", args[i].describe()),
                    ));
                }
            }
            let unit = lw.prim(Prim::Linspace(F64(0.0), F64(1.0), n), &[], span)?;
            let width = lw.prim(Prim::Binary(Binary::Sub), &[args[1].clone(), args[0].clone()], span)?;
            let steps = lw.prim(Prim::Binary(Binary::Mul), &[width, unit], span)?;
            lw.prim(Prim::Binary(Binary::Add), &[args[0].clone(), steps], span)
        }
        "conv2d"
        | "conv2d_transpose_input"
        | "conv2d_transpose_kernel"
        | "safe_conv2d"
        | "safe_conv2d_transpose_input"
        | "safe_conv2d_transpose_kernel" => {
            // `conv2d(x, k[, stride[, padding[, groups]]])`; the transposes take the shape
            // of what they produce after their two operands. The `safe_` forms have strong
            // zeros.
            let (strong, base) = match name.strip_prefix("safe_") {
                Some(base) => (true, base),
                None => (false, name),
            };
            let first = if base == "conv2d" { 2 } else { 3 };
            arity(name, &args, &(first..=first + 3).collect::<Vec<_>>(), span)?;
            let stride = match args.get(first) {
                Some(s) => lw.static_count32(s, "the stride", at(first))?,
                None => 1,
            };
            let padding = match args.get(first + 1) {
                None => crate::window::Padding::Valid,
                Some(LVal::Str(s)) => crate::window::Padding::from_name(s).ok_or_else(|| {
                    Diagnostic::at(at(first + 1), format!("the padding is \"same\" or \"valid\", not {s:?}"))
                })?,
                Some(other) => {
                    return Err(Diagnostic::at(
                        at(first + 1),
                        format!("the padding is \"same\" or \"valid\", found {}", other.describe()),
                    ))
                }
            };
            let groups = match args.get(first + 2) {
                Some(g) => lw.static_count32(g, "the number of groups", at(first + 2))?,
                None => 1,
            };
            if groups == 0 {
                return Err(Diagnostic::at(at(first + 2), "a convolution needs at least one group"));
            }
            let c = crate::prim::Conv { stride, padding, groups, strong };
            let prim = match base {
                "conv2d" => Prim::Conv2d(c),
                "conv2d_transpose_input" => Prim::Conv2dTransposeInput(c, lw.static_shape(&args[2], at(2))?),
                _ => Prim::Conv2dTransposeKernel(c, lw.static_shape(&args[2], at(2))?),
            };
            lw.prim(prim, &args[..2], span)
        }
        "max_pool2d" | "avg_pool2d" | "max_pool2d_pick" | "max_pool2d_scatter" | "avg_pool2d_transpose" => {
            // `max_pool2d(x, size[, stride])` (the stride defaults to the size); the pick
            // and scatter take two arrays first, the transpose an array and a shape.
            let first = match name {
                "max_pool2d" | "avg_pool2d" => 1,
                _ => 2,
            };
            arity(name, &args, &[first + 1, first + 2], span)?;
            let size = lw.static_count32(&args[first], "the window size", at(first))?;
            let stride = match args.get(first + 1) {
                Some(s) => lw.static_count32(s, "the stride", at(first + 1))?,
                None => size,
            };
            let p = crate::prim::Pool { size, stride };
            let (prim, operands) = match name {
                "max_pool2d" => (Prim::MaxPool2d(p), 1),
                "avg_pool2d" => (Prim::AvgPool2d(p), 1),
                "max_pool2d_pick" => (Prim::MaxPool2dPick(p), 2),
                "max_pool2d_scatter" => (Prim::MaxPool2dScatter(p), 2),
                _ => (Prim::AvgPool2dTranspose(p, lw.static_shape(&args[1], at(1))?), 1),
            };
            lw.prim(prim, &args[..operands], span)
        }
        "one_hot" => {
            arity(name, &args, &[2], span)?;
            let k = lw.static_count(&args[1], "the number of classes", at(1))?;
            lw.prim(Prim::OneHot(k), &args[..1], span)
        }
        "shape" | "rows" | "cols" | "size" | "rank" => {
            arity(name, &args, &[1], span)?;
            let s = shape_arg(lw, 0)?;
            let num = |x: usize| LVal::Num(x as f64);
            match name {
                "shape" => Ok(LVal::Tuple(s.dims().iter().map(|d| num(*d)).collect::<Vec<_>>().into())),
                "size" => Ok(num(s.size())),
                "rank" => Ok(num(s.rank())),
                "rows" if s.rank() >= 1 => Ok(num(s.dim(0))),
                "cols" if s.rank() == 2 => Ok(num(s.dim(1))),
                _ => Err(Diagnostic::at(at(0), format!("`{name}` is not defined for an array of shape {s}"))),
            }
        }
        _ => Err(Diagnostic::at(span, format!("internal error: builtin `{name}` has no implementation"))),
    }
}

fn function_arg(name: &str, v: &LVal, span: Span) -> Result<LVal> {
    match v {
        LVal::Func(_) => Ok(v.clone()),
        other => Err(Diagnostic::at(span, format!("`{name}` takes a function, found {}", other.describe()))),
    }
}

fn reshape_target(x: Shape, dims: &[i64]) -> std::result::Result<Shape, String> {
    let unknown = dims.iter().filter(|d| **d == -1).count();
    if unknown > 1 || dims.iter().any(|d| *d < -1) {
        return Err("a shape may contain at most one -1 and no other negative dimension".into());
    }
    let known: i64 = dims.iter().filter(|d| **d != -1).product();
    let size = x.size() as i64;
    let dims: Vec<usize> = dims
        .iter()
        .map(|d| {
            if *d == -1 {
                if known == 0 {
                    0
                } else {
                    (size / known) as usize
                }
            } else {
                *d as usize
            }
        })
        .collect();
    let shape = crate::prim::checked_shape(&dims)?;
    if shape.size() != x.size() {
        return Err(format!(
            "cannot reshape an array of shape {x} ({}) to {shape}",
            crate::words::count(x.size(), "element")
        ));
    }
    Ok(shape)
}

fn pad_widths(lw: &mut Lowerer, v: &LVal, rank: usize, span: Span) -> Result<Vec<(usize, usize)>> {
    let pair = |lw: &mut Lowerer, v: &LVal| -> Result<(usize, usize)> {
        match v {
            LVal::Tuple(t) if t.len() == 2 => Ok((
                lw.static_count(&t[0], "a pad width", span)?,
                lw.static_count(&t[1], "a pad width", span)?,
            )),
            _ => Err(Diagnostic::at(span, "a pad width is a pair `(before, after)`")),
        }
    };
    match (rank, v) {
        (0, LVal::Tuple(t)) if t.is_empty() => Ok(vec![]),
        (1, _) => Ok(vec![pair(lw, v)?]),
        (_, LVal::Tuple(t)) if t.len() == rank => t.iter().map(|p| pair(lw, p)).collect(),
        _ => Err(Diagnostic::at(
            span,
            format!(
                "`pad` of a rank-{rank} array takes {} `(before, after)`",
                crate::words::count(rank, "pair")
            ),
        )),
    }
}

/// A top-level effect, with its arguments checked; the host performs it.
#[derive(Debug, Clone)]
pub enum Effect {
    Print(Vec<LVal>),
    Seed(u64),
    Randn(Shape),
    Rand(Shape),
    Now,
    ReadCsv(String),
    WriteCsv(String, LVal),
    /// A plotting call (`plot`, `savefig`, ...; see `io_effects`).
    Plot(super::io_effects::PlotCall),
    /// `load(path)` or `load(path, name)`: a NumPy file.
    Load {
        path: String,
        name: Option<String>,
    },
    /// `save(path, x)`: a NumPy file.
    Save(String, LVal),
}

fn path_arg(v: &LVal, span: Span) -> Result<String> {
    match v {
        LVal::Str(s) => Ok(s.to_string()),
        other => {
            Err(Diagnostic::at(span, format!("expected a file name (a string), found {}", other.describe())))
        }
    }
}

fn effect(lw: &mut Lowerer, name: &'static str, args: Vec<LVal>, span: Span, spans: &[Span]) -> Result<LVal> {
    if lw.in_function {
        return Err(Diagnostic::at(span, format!("`{name}` is only available at the top level"))
            .with_hint("functions are pure: create data at the top level and pass it in"));
    }
    if super::io_effects::is_io_effect(name) {
        return super::io_effects::effect(lw, name, args, span, spans);
    }
    let at = |i: usize| spans.get(i).copied().unwrap_or(span);
    let e = match name {
        "print" => Effect::Print(args),
        "seed" => {
            arity(name, &args, &[1], span)?;
            let k = lw.static_int(&args[0], "the seed", at(0))?;
            Effect::Seed(k as u64)
        }
        "randn" | "rand" => {
            arity(name, &args, &[1], span)?;
            let s = lw.static_shape(&args[0], at(0))?;
            if name == "randn" {
                Effect::Randn(s)
            } else {
                Effect::Rand(s)
            }
        }
        "now" => {
            arity(name, &args, &[0], span)?;
            Effect::Now
        }
        "read_csv" => {
            arity(name, &args, &[1], span)?;
            Effect::ReadCsv(path_arg(&args[0], at(0))?)
        }
        _ => {
            arity(name, &args, &[2], span)?;
            let path = path_arg(&args[0], at(0))?;
            if lw.shape_of(&args[1]).is_none() {
                return Err(Diagnostic::at(
                    at(1),
                    format!("`write_csv` writes an array, found {}", args[1].describe()),
                ));
            }
            Effect::WriteCsv(path, args[1].clone())
        }
    };
    if lw.mode == Mode::Eager {
        return lw.host.effect(e, span);
    }
    // Checking: effects do not run, but their results have known shapes.
    match e {
        Effect::Randn(s) | Effect::Rand(s) => Ok(lw.unknown_array(s)),
        Effect::Now => Ok(lw.unknown_array(Shape::scalar())),
        // A file the script itself wrote has the shape it was written with; any other is
        // read to learn its shape.
        Effect::ReadCsv(path) => {
            let s = match lw.written.iter().rev().find(|(p, _)| *p == path) {
                Some((_, s)) => *s,
                None => {
                    let v = lw.host.effect(Effect::ReadCsv(path), span)?;
                    lw.shape_of(&v).unwrap_or_default()
                }
            };
            Ok(lw.unknown_array(s))
        }
        Effect::WriteCsv(path, v) => {
            let s = lw.shape_of(&v).unwrap_or_default();
            // A CSV file holds a vector or a matrix; one column reads back as a vector.
            let back = match s.dims() {
                [] => Shape::vector(1),
                [m, 1] => Shape::vector(*m),
                _ => s,
            };
            lw.written.push((path, back));
            Ok(LVal::unit())
        }
        _ => Ok(LVal::unit()),
    }
}

/// The operands of a solve, `A` (`[.., n, n]`) and `B`, with their leading (batch) axes
/// broadcast to a common shape as NumPy's `solve` does (`B` a vector or a matrix per
/// matrix, `prim::rhs_is_vector`). Operands whose
/// batch axes already agree, or do not broadcast (the shape rule then reports both), are
/// left as they are.
fn broadcast_batches(lw: &mut Lowerer, args: Vec<LVal>, span: Span) -> Result<Vec<LVal>> {
    let (Some(a), Some(b)) = (lw.shape_of(&args[0]), lw.shape_of(&args[1])) else {
        return Ok(args);
    };
    if a.rank() < 2 || b.rank() == 0 {
        return Ok(args);
    }
    let core = if crate::prim::rhs_is_vector(a, b) { 1 } else { 2.min(b.rank()) };
    let (batch_a, batch_b) = (&a.dims()[..a.rank() - 2], &b.dims()[..b.rank() - core]);
    if batch_a == batch_b {
        return Ok(args);
    }
    let (Some(sa), Some(sb)) = (Shape::from_dims(batch_a), Shape::from_dims(batch_b)) else {
        return Ok(args);
    };
    let Some(batch) = crate::shape::broadcast(sa, sb) else {
        return Ok(args);
    };
    let widen = |lw: &mut Lowerer, v: &LVal, s: Shape, core: usize| -> Result<LVal> {
        let dims = [batch.dims(), &s.dims()[s.rank() - core..]].concat();
        match Shape::from_dims(&dims) {
            Some(target) if target != s => lw.prim(Prim::BroadcastTo(target), std::slice::from_ref(v), span),
            _ => Ok(v.clone()),
        }
    };
    Ok(vec![widen(lw, &args[0], a, 2)?, widen(lw, &args[1], b, core)?])
}
