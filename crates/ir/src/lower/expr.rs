//! Expressions: operators, indexing, array literals, lambdas and `if`.

use super::scope::free_names;
use super::value::{Arr, Func, Known, LVal};
use super::{Lowerer, Mode, Result, MAX_EXPR_DEPTH};
use crate::array::Array;
use crate::prim::{Binary, DynSel, Prim, Sel, Unary};
use crate::scalar;
use crate::shape::{broadcast, Shape};
use ad_syntax::ast::{BinOp, Block, Expr, ExprKind, IndexArg, UnOp};
use ad_syntax::format::same_expr;
use ad_syntax::{Diagnostic, Span};
use std::collections::HashSet;
use std::rc::Rc;

pub(crate) fn binop_prim(op: BinOp) -> Prim {
    match op {
        BinOp::Add => Prim::Binary(Binary::Add),
        BinOp::Sub => Prim::Binary(Binary::Sub),
        BinOp::Mul => Prim::Binary(Binary::Mul),
        BinOp::Div => Prim::Binary(Binary::Div),
        BinOp::Pow => Prim::Binary(Binary::Pow),
        BinOp::Lt => Prim::Binary(Binary::Lt),
        BinOp::Le => Prim::Binary(Binary::Le),
        BinOp::Gt => Prim::Binary(Binary::Gt),
        BinOp::Ge => Prim::Binary(Binary::Ge),
        BinOp::Eq => Prim::Binary(Binary::Eq),
        BinOp::Ne => Prim::Binary(Binary::Ne),
        BinOp::And => Prim::Binary(Binary::And),
        BinOp::Or => Prim::Binary(Binary::Or),
        BinOp::MatMul => Prim::MatMul,
    }
}

impl Lowerer<'_> {
    pub(crate) fn expr(&mut self, e: &Expr) -> Result<LVal> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            self.depth -= 1;
            return Err(Diagnostic::at(e.span, "expression is nested too deeply"));
        }
        let r = self.expr_inner(e);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, e: &Expr) -> Result<LVal> {
        let span = e.span;
        match &e.kind {
            ExprKind::Num(x) => Ok(LVal::Num(*x)),
            ExprKind::None => Ok(LVal::None),
            ExprKind::Str(s) => Ok(LVal::Str(s.clone())),
            ExprKind::Var(n) => self.lookup(n, span),
            ExprKind::Tuple(es) => {
                let mut items = Vec::with_capacity(es.len());
                for x in es {
                    items.push(self.expr(x)?);
                }
                Ok(LVal::Tuple(items.into()))
            }
            ExprKind::Array(es) => self.array_literal(es, span),
            ExprKind::Unary(op, x) => {
                let v = self.expr(x)?;
                let prim = match op {
                    UnOp::Neg => Prim::Unary(Unary::Neg),
                    UnOp::Not => Prim::Unary(Unary::Not),
                };
                self.operator(prim, op.symbol(), &[v], &[x.span], span)
            }
            ExprKind::Binary(op, a, b) => {
                let va = self.expr(a)?;
                let vb = self.expr(b)?;
                self.operator(binop_prim(*op), op.symbol(), &[va, vb], &[a.span, b.span], span)
            }
            ExprKind::Transpose(x) => {
                let v = self.expr(x)?;
                self.operator(Prim::Transpose, "'", &[v], &[x.span], span)
            }
            ExprKind::Call(f, args) => {
                // A misspelt function's suggestion is a function.
                let fv = match &f.kind {
                    ExprKind::Var(name) if self.is_unknown(name, f.span) => {
                        return Err(self.unknown_function(name, f.span))
                    }
                    _ => self.expr(f)?,
                };
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.expr(a)?);
                }
                let spans: Vec<Span> = args.iter().map(|a| a.span).collect();
                self.call_value(fv, vals, span, &spans)
            }
            ExprKind::Index(x, idx) => {
                let v = self.expr(x)?;
                self.index(v, idx, x.span, span)
            }
            ExprKind::Lambda(l) => {
                let mut bound: Vec<_> = l.params.iter().map(|p| p.name.clone()).collect();
                let mut free = Vec::new();
                free_names(&l.body, &mut bound, &mut free, &mut HashSet::new());
                let mut env = Vec::new();
                for n in free {
                    let local = self.frames.iter().rev().find_map(|f| f.iter().rev().find(|(m, _)| *m == n));
                    if let Some((_, v)) = local {
                        env.push((n.clone(), v.clone()));
                    }
                }
                Ok(LVal::Func(Rc::new(Func::Closure { lam: l.clone(), env })))
            }
            ExprKind::If(c, then, els) => self.if_expr(c, then, els.as_ref()),
            ExprKind::Error => Err(Diagnostic::at(span, "this expression could not be parsed")),
        }
    }

    /// Applies an operator, with operand labels on shape errors.
    pub(crate) fn operator(
        &mut self,
        prim: Prim,
        symbol: &str,
        args: &[LVal],
        spans: &[Span],
        span: Span,
    ) -> Result<LVal> {
        // Arithmetic on tuples maps over matching structures, with arrays and numbers applied
        // to every element (as `jax.tree_util.tree_map` would): `params - lr * grads`.
        if matches!(prim, Prim::Binary(_) | Prim::Unary(_))
            && args.iter().any(|a| matches!(a, LVal::Tuple(_)))
        {
            let len = args
                .iter()
                .find_map(|a| if let LVal::Tuple(t) = a { Some(t.len()) } else { None })
                .unwrap_or(0);
            for (a, s) in args.iter().zip(spans) {
                match a {
                    LVal::Tuple(t) if t.len() != len => {
                        return Err(Diagnostic::at(
                            *s,
                            format!("`{symbol}` on tuples of different lengths ({} and {len})", t.len()),
                        ))
                    }
                    LVal::Func(_) | LVal::Str(_) => {
                        return Err(Diagnostic::at(
                            *s,
                            format!("`{symbol}` needs arrays or tuples of arrays, found {}", a.describe()),
                        ))
                    }
                    _ => {}
                }
            }
            let mut items = Vec::with_capacity(len);
            for i in 0..len {
                let parts: Vec<LVal> = args
                    .iter()
                    .map(|a| if let LVal::Tuple(t) = a { t[i].clone() } else { a.clone() })
                    .collect();
                items.push(self.operator(prim.clone(), symbol, &parts, spans, span)?);
            }
            return Ok(LVal::Tuple(items.into()));
        }
        if let (Prim::Binary(_), [a, b]) = (&prim, args) {
            if let (Some(sa), Some(sb)) = (self.shape_of(a), self.shape_of(b)) {
                if broadcast(sa, sb).is_none() {
                    return Err(Diagnostic::at(span, format!("shape mismatch in `{symbol}`: {sa} and {sb}"))
                        .with_label(spans[0], format!("this has shape {sa}"))
                        .with_label(spans[1], format!("this has shape {sb}"))
                        .with_hint(
                            "shapes must be equal or broadcast (align on the right; size-1 axes stretch)",
                        ));
                }
            }
        }
        if let (Prim::MatMul, [a, b]) = (&prim, args) {
            if let (Some(sa), Some(sb)) = (self.shape_of(a), self.shape_of(b)) {
                if let Err(m) = crate::prim::matmul_shape(sa, sb) {
                    return Err(Diagnostic::at(span, m)
                        .with_label(spans[0], format!("this has shape {sa}"))
                        .with_label(spans[1], format!("this has shape {sb}")));
                }
            }
        }
        for (v, s) in args.iter().zip(spans) {
            if !matches!(v, LVal::Num(_) | LVal::Arr(_)) {
                return Err(Diagnostic::at(
                    *s,
                    format!("`{symbol}` needs an array here, found {}", v.describe()),
                ));
            }
        }
        self.prim(prim, args, span)
    }

    /// An array of shape `s` whose values are not known while checking (what an effect
    /// that does not run would have produced).
    pub(crate) fn unknown_array(&mut self, s: Shape) -> LVal {
        let var = self.b.new_var(s, None);
        LVal::Arr(Arr::Var { var, shape: s, known: None })
    }

    pub(crate) fn shape_of(&self, v: &LVal) -> Option<Shape> {
        match v {
            LVal::Num(_) => Some(Shape::scalar()),
            LVal::Arr(a) => Some(a.shape()),
            _ => None,
        }
    }

    /// Applies a primitive: folds numbers, evaluates concrete arrays, or emits an equation.
    pub(crate) fn prim(&mut self, prim: Prim, args: &[LVal], span: Span) -> Result<LVal> {
        let mut shapes = Vec::with_capacity(args.len());
        for v in args {
            match self.shape_of(v) {
                Some(s) => shapes.push(s),
                None => {
                    return Err(Diagnostic::at(
                        span,
                        format!("`{}` needs arrays, found {}", prim.name(), v.describe()),
                    ))
                }
            }
        }
        let shape = prim.infer(&shapes).map_err(|m| Diagnostic::at(span, m))?;
        // Fold elementwise operations on known numbers.
        let nums: Option<Vec<f64>> =
            args.iter().map(|v| if let LVal::Num(x) = v { Some(*x) } else { None }).collect();
        if let (Some(n), true) = (&nums, prim.is_elementwise()) {
            match (&prim, n.as_slice()) {
                (Prim::Unary(u), [x]) => return Ok(LVal::Num(scalar::unary(*u, *x))),
                (Prim::Binary(b), [x, y]) => return Ok(LVal::Num(scalar::binary(*b, *x, *y))),
                (Prim::Where, [c, x, y]) => return Ok(LVal::Num(if *c != 0.0 { *x } else { *y })),
                _ => {}
            }
        }
        match self.mode {
            Mode::Eager => {
                let arrays: Vec<Array> = args
                    .iter()
                    .map(|v| match v {
                        LVal::Num(x) => Array::scalar(*x),
                        LVal::Arr(Arr::Val(a)) => a.clone(),
                        // In eager mode every array is concrete.
                        _ => Array::full(Shape::scalar(), f64::NAN),
                    })
                    .collect();
                Ok(LVal::Arr(Arr::Val(self.host.apply(&prim, &arrays, span)?)))
            }
            Mode::Trace => {
                let known =
                    if prim.is_elementwise() && shape.is_scalar() { known_result(&prim, args) } else { None };
                let mut atoms = Vec::with_capacity(args.len());
                for v in args {
                    atoms.push(self.atom(v, span)?);
                }
                let var = self.b.push(prim, atoms, shape, span);
                Ok(LVal::Arr(Arr::Var { var, shape, known }))
            }
        }
    }

    fn index(&mut self, v: LVal, idx: &[IndexArg], xspan: Span, span: Span) -> Result<LVal> {
        if let LVal::Tuple(items) = &v {
            let [IndexArg::Index(i)] = idx else {
                return Err(Diagnostic::at(span, "a tuple takes exactly one index"));
            };
            let iv = self.expr(i)?;
            let k = self.static_position(&iv, items.len(), "the tuple index", i.span)?;
            return Ok(items[k].clone());
        }
        let Some(shape) = self.shape_of(&v) else {
            return Err(Diagnostic::at(xspan, format!("cannot index {}", v.describe())));
        };
        if idx.len() > shape.rank() {
            return Err(Diagnostic::at(
                span,
                format!("too many indices: an array of shape {shape} takes at most {}", shape.rank()),
            )
            .with_label(xspan, format!("this has shape {shape}")));
        }
        let sels = self.axis_sels(idx, shape, "a slice bound")?;
        let strided = sels.iter().any(|s| matches!(s, AxisSel::Strided { .. }));
        if strided && sels.iter().any(|s| matches!(s, AxisSel::Pick(_) | AxisSel::Window(..))) {
            return Err(Diagnostic::at(
                span,
                "a slice with a step cannot be taken together with computed positions",
            ));
        }
        if strided {
            return self.strided_index(v, &sels, shape, span);
        }
        if sels.iter().any(|s| matches!(s, AxisSel::Pick(_) | AxisSel::Window(..))) {
            let (sel, mut args) = dyn_sel(sels, shape);
            args.insert(0, v);
            return self.prim(Prim::DynIndex(sel), &args, span);
        }
        let mut sels: Vec<Sel> = sels
            .into_iter()
            .map(|s| match s {
                AxisSel::Static(s) => s,
                // Computed and strided selections were handled above.
                AxisSel::Pick(_) | AxisSel::Window(..) | AxisSel::Strided { .. } => Sel::Range(0, 0),
            })
            .collect();
        for axis in idx.len()..shape.rank() {
            sels.push(Sel::Range(0, shape.dim(axis)));
        }
        if sels.iter().enumerate().all(|(i, s)| *s == Sel::Range(0, shape.dim(i))) {
            return Ok(v);
        }
        self.prim(Prim::Index(sels), &[v], span)
    }

    /// What each index of `x[...]` selects on its axis of an array of shape `shape`: a
    /// position or a range known while lowering, a computed position, or a window of known
    /// length at a computed start (`x[i:i + k]`).
    pub(crate) fn axis_sels(&mut self, idx: &[IndexArg], shape: Shape, what: &str) -> Result<Vec<AxisSel>> {
        let mut sels = Vec::with_capacity(idx.len());
        for (axis, arg) in idx.iter().enumerate() {
            let len = shape.dim(axis);
            let step = match arg {
                IndexArg::Slice { step: Some(e), .. } => self.step_of(e)?,
                _ => 1,
            };
            sels.push(match arg {
                // A computed position stays computed even when its value is known: the
                // function is then not specialised to it (positions decide nothing static).
                IndexArg::Index(e) => {
                    let iv = self.expr(e)?;
                    if matches!(iv, LVal::Arr(Arr::Var { .. })) {
                        self.scalar_position(&iv, e.span)?;
                        AxisSel::Pick(iv)
                    } else {
                        AxisSel::Static(Sel::At(self.static_position(&iv, len, "index", e.span)?))
                    }
                }
                // A step other than 1, with bounds known while lowering (`strided_range`
                // reads them as such).
                IndexArg::Slice { start, end, step: Some(e), .. } if step != 1 => {
                    if step == 0 {
                        return Err(Diagnostic::at(e.span, "a slice's step cannot be zero"));
                    }
                    let (first, n) = self.strided_range(start, end, step, len, what)?;
                    AxisSel::Strided { first, n, step }
                }
                IndexArg::Slice { start: Some(start), end, span, .. } => {
                    let sv = self.expr(start)?;
                    if matches!(sv, LVal::Arr(Arr::Var { .. })) {
                        self.scalar_position(&sv, start.span)?;
                        let k = self.window_length(start, end, *span, len)?;
                        AxisSel::Window(sv, k)
                    } else {
                        let (a, b) = self.slice_range(&Some(start.clone()), end, len, what)?;
                        AxisSel::Static(Sel::Range(a, b))
                    }
                }
                IndexArg::Slice { start: None, end, .. } => {
                    let (a, b) = self.slice_range(&None, end, len, what)?;
                    AxisSel::Static(Sel::Range(a, b))
                }
            });
        }
        Ok(sels)
    }

    /// The length `k` of a slice `i:i + k` whose start `i` is computed: the end must be
    /// written as the start plus a length known while lowering.
    fn window_length(&mut self, start: &Expr, end: &Option<Expr>, span: Span, len: usize) -> Result<usize> {
        let length = match end.as_ref().map(|e| &e.kind) {
            Some(ExprKind::Binary(BinOp::Add, a, b)) if same_expr(a, start) => Some(b),
            Some(ExprKind::Binary(BinOp::Add, a, b)) if same_expr(b, start) => Some(a),
            _ => None,
        };
        let Some(length) = length else {
            return Err(Diagnostic::at(
                span,
                "a slice with a computed start needs a length known while lowering: write `x[i:i + k]`",
            ));
        };
        let kv = self.expr(length)?;
        let k = self.static_int(&kv, "the length of a slice", length.span)?;
        if k < 0 || k as usize > len {
            return Err(Diagnostic::at(
                length.span,
                format!("a slice of length {k} cannot be taken from an axis of length {len}"),
            ));
        }
        Ok(k as usize)
    }

    /// The range `start:end` of an axis of length `len`, with bounds known while lowering;
    /// negative bounds count from the end and out-of-range ones clamp, as in NumPy.
    pub(crate) fn slice_range(
        &mut self,
        start: &Option<Expr>,
        end: &Option<Expr>,
        len: usize,
        what: &str,
    ) -> Result<(usize, usize)> {
        let mut bound = |e: &Option<Expr>, default: usize| -> Result<usize> {
            let Some(e) = e else { return Ok(default) };
            let b = self.expr(e)?;
            let i = self.static_int(&b, what, e.span)?;
            let j = if i < 0 { i + len as i64 } else { i };
            Ok(j.clamp(0, len as i64) as usize)
        };
        let a = bound(start, 0)?;
        let b = bound(end, len)?;
        Ok((a, b.max(a)))
    }

    /// A slice's step: an integer known while lowering.
    fn step_of(&mut self, step: &Expr) -> Result<i64> {
        let v = self.expr(step)?;
        self.static_int(&v, "the step of a slice", step.span)
    }

    fn array_literal(&mut self, elems: &[Expr], span: Span) -> Result<LVal> {
        if let Some((shape, data)) = constant_literal(elems, span)? {
            let a = Array::new(shape, data);
            return Ok(match self.mode {
                Mode::Eager => LVal::Arr(Arr::Val(a)),
                Mode::Trace => {
                    let prim = Prim::Const(crate::prim::ConstArray(Rc::new(a)));
                    let var = self.b.push(prim, vec![], shape, span);
                    LVal::Arr(Arr::Var { var, shape, known: None })
                }
            });
        }
        let mut vals = Vec::with_capacity(elems.len());
        for e in elems {
            vals.push(self.expr(e)?);
        }
        let mut first: Option<Shape> = None;
        for (v, e) in vals.iter().zip(elems) {
            let Some(s) = self.shape_of(v) else {
                return Err(Diagnostic::at(
                    e.span,
                    format!("array elements must be numbers or arrays, found {}", v.describe()),
                ));
            };
            match first {
                None => first = Some(s),
                Some(f) if f != s => {
                    return Err(Diagnostic::at(
                        e.span,
                        format!("ragged array literal: this element has shape {s}"),
                    )
                    .with_label(elems[0].span, format!("but the first has shape {f}")))
                }
                _ => {}
            }
        }
        self.prim(Prim::Stack, &vals, span)
    }

    fn if_expr(&mut self, c: &Expr, then: &Block, els: Option<&Block>) -> Result<LVal> {
        let cv = self.expr(c)?;
        if let Some(s) = self.shape_of(&cv) {
            if !s.is_scalar() {
                return Err(Diagnostic::at(
                    c.span,
                    format!("the condition of `if` must be a scalar, found shape {s}"),
                )
                .with_hint("for an elementwise choice use `where(c, a, b)`"));
            }
        }
        let dynamic = matches!(&cv, LVal::Arr(Arr::Var { known: None, .. }));
        if dynamic && self.is_check() {
            // Checking the top level: the condition is unknown, so check both branches.
            let t = self.block(then)?;
            if let Some(e) = els {
                self.block(e)?;
            }
            return Ok(t);
        }
        if dynamic {
            return self.if_region(c, &cv, then, els, c.span);
        }
        let cond = self.static_num(&cv, "the condition", c.span)?;
        if cond != 0.0 {
            self.block(then)
        } else if let Some(e) = els {
            self.block(e)
        } else {
            Ok(LVal::unit())
        }
    }
}

/// The value of a scalar operation whose operands are all known, with their dependencies.
fn known_result(prim: &Prim, args: &[LVal]) -> Option<Known> {
    let mut values = Vec::with_capacity(args.len());
    let mut deps: Vec<(usize, f64)> = Vec::new();
    for v in args {
        match v {
            LVal::Num(x) => values.push(*x),
            LVal::Arr(Arr::Var { known: Some(k), .. }) => {
                values.push(k.value);
                for d in k.deps.iter() {
                    if !deps.contains(d) {
                        deps.push(*d);
                    }
                }
            }
            _ => return None,
        }
    }
    let value = match (prim, values.as_slice()) {
        (Prim::Unary(u), [x]) => scalar::unary(*u, *x),
        (Prim::Binary(b), [x, y]) => scalar::binary(*b, *x, *y),
        (Prim::Where, [c, x, y]) => {
            if *c != 0.0 {
                *x
            } else {
                *y
            }
        }
        (Prim::StopGradient, [x]) => *x,
        _ => return None,
    };
    Some(Known { value, deps: Rc::new(deps) })
}

/// An array literal made only of (possibly negated) number literals, built directly.
fn constant_literal(elems: &[Expr], span: Span) -> Result<Option<(Shape, Vec<f64>)>> {
    fn num(e: &Expr) -> Option<f64> {
        match &e.kind {
            ExprKind::Num(x) => Some(*x),
            ExprKind::Unary(UnOp::Neg, x) => num(x).map(|v| -v),
            _ => None,
        }
    }
    if let Some(xs) = elems.iter().map(num).collect::<Option<Vec<f64>>>() {
        return Ok(Some((Shape::vector(xs.len()), xs)));
    }
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for e in elems {
        let ExprKind::Array(inner) = &e.kind else { return Ok(None) };
        let Some(xs) = inner.iter().map(num).collect::<Option<Vec<f64>>>() else { return Ok(None) };
        if let Some(first) = rows.first() {
            if first.len() != xs.len() {
                return Err(Diagnostic::at(
                    e.span,
                    format!(
                        "ragged array literal: this row has {}, the first row has {}",
                        crate::words::count(xs.len(), "element"),
                        first.len()
                    ),
                )
                .with_label(span, "in this array"));
            }
        }
        rows.push(xs);
    }
    let n = rows.first().map(|r| r.len()).unwrap_or(0);
    let m = rows.len();
    Ok(Some((Shape::matrix(m, n), rows.concat())))
}

/// One index of `x[...]` as lowering reads it.
pub(crate) enum AxisSel {
    Static(Sel),
    /// `a:b:s` with a step other than 1, known while lowering: `n` elements from `first`
    /// (which is -1 only when `n` is 0), `step` apart.
    Strided {
        first: i64,
        n: usize,
        step: i64,
    },
    Pick(LVal),
    Window(LVal, usize),
}

/// Computed selections on the leading axes as one `dyn_index`/`dyn_update` selector and its
/// position operands: positions and ranges known while lowering become numbers (a range
/// `a:b` a window of `b - a` from `a`); ranges over a whole trailing axis are left out.
pub(crate) fn dyn_sel(mut sels: Vec<AxisSel>, shape: Shape) -> (DynSel, Vec<LVal>) {
    while let Some(AxisSel::Static(Sel::Range(0, b))) = sels.last() {
        if *b != shape.dim(sels.len() - 1) {
            break;
        }
        sels.pop();
    }
    let mut sel = Vec::with_capacity(sels.len());
    let mut args = Vec::with_capacity(sels.len());
    for s in sels {
        let (w, p) = match s {
            AxisSel::Static(Sel::At(i)) => (None, LVal::Num(i as f64)),
            AxisSel::Static(Sel::Range(a, b)) => (Some(b - a), LVal::Num(a as f64)),
            AxisSel::Pick(p) => (None, p),
            AxisSel::Window(p, k) => (Some(k), p),
            // Callers refuse strided selections before asking for a selector.
            AxisSel::Strided { first, n, .. } => (Some(n), LVal::Num(first as f64)),
        };
        sel.push(w);
        args.push(p);
    }
    (DynSel(sel), args)
}
