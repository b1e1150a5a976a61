//! Differential derivative testing: random programs of differentiable primitives, at random
//! points, differentiated in every mode up to order 2. Every mode must agree with every other
//! (to rounding, with NaNs in the same places) and, where the function is smooth around the
//! point, with central differences.
//!
//! The generator covers what `properties.rs` leaves out: operands of ranks 0, 1 and 2 that
//! broadcast against each other; `where` with conditions of every rank, narrow literal masks,
//! and conditions or other branches larger than the branch being differentiated; `where`
//! whose unselected branch is NaN or infinite at the point (NaN-safe points); kinks; matrix
//! products, solves, reductions, indexing, slicing, `concat`, `pad`, array literals, prelude
//! functions, lambdas and transforms nested inside the function.
//!
//! A program is built one `let` at a time, and every binding is evaluated at the point when it
//! is made, so the generator knows the values it works with. It keeps `log`, `sqrt` and `^` in
//! their domains on the selected path, keeps conditions at least `MARGIN` away from their
//! boundaries so that central differences never straddle one, records kinks closer than that
//! (central differences are then skipped, but the modes are still compared with each other),
//! and knows which branch each `where` leaves unselected.
//!
//! `AD_DIFF_CASES=N` runs N random programs instead of the default (from seed `AD_DIFF_FIRST`,
//! 0 by default); `AD_DIFF_SEED=N` runs only the program of seed N; `AD_DIFF_SHOW=N` prints the
//! first N failures (5 by default); `AD_DIFF_VERBOSE=1` prints the generated programs and the
//! expressions the generator rejected. A failure prints the program, the point and the
//! source-level calls as a script for `ad run`, then the value of every mode.
//!
//! The cases that found bugs are in `differential_findings.md`, each with a `finding_N_` test
//! here that fails until it is fixed.

use ad_driver::derive::lower_named;
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_eval::rng::Rng;
use ad_ir::lower::value::{Arr, LVal};
use ad_ir::transform::{JacMode, Mode, Request};
use ad_ir::{Array, Program, Tree};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[path = "common/both_tiers.rs"]
mod both_tiers;
use both_tiers::run_both_ways;
use std::time::Instant;

/// How far conditions and kinks stay from their boundaries. Central differences move the point
/// by `STEP` times a normal direction, so even with slopes of several hundred this is room
/// enough.
const MARGIN: f64 = 0.02;
/// Generated values stay below this in magnitude, so that rounding stays far below the
/// tolerances.
const BOUND: f64 = 1e3;
const STEP: f64 = 1e-5;
/// About 35 s for the whole file in a debug build on a shared 2-core machine.
const DEFAULT_CASES: u64 = 400;

// ---------------------------------------------------------------------------------------------
// Random choices and shapes

struct R(Rng);

impl R {
    fn new(seed: u64) -> R {
        R(Rng::new(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.uniform() < p
    }
    fn choose<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
    /// A value in [lo, hi), rounded to three decimals so that printed points are short and exact.
    fn value(&mut self, lo: f64, hi: f64) -> f64 {
        round_to(lo + (hi - lo) * self.0.uniform(), 1000.0)
    }
    fn normal(&mut self) -> f64 {
        round_to(self.0.normal(), 1000.0)
    }
}

fn round_to(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

type Dims = Vec<usize>;

/// The shapes of parameters and of most operands; the scalar is listed twice so that about a
/// third of the programs have a scalar `x`, for which `grad(grad(g))` applies.
const SHAPES: &[&[usize]] = &[&[], &[], &[2], &[3], &[2, 1], &[1, 3], &[2, 3], &[3, 2]];

fn size(s: &[usize]) -> usize {
    s.iter().product()
}

/// NumPy broadcasting of two shapes of rank at most 2.
fn bcast(a: &[usize], b: &[usize]) -> Option<Dims> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (p, q) if p == q => Some(p),
            (1, q) => Some(q),
            (p, 1) => Some(p),
            _ => None,
        })
        .collect()
}

/// Whether `small` broadcasts to exactly `big`.
fn covers(big: &[usize], small: &[usize]) -> bool {
    bcast(big, small).as_deref() == Some(big)
}

/// A shape as the argument of `zeros`, `reshape` or `broadcast_to`.
fn shape_arg(s: &[usize]) -> String {
    match s {
        [] => "()".into(),
        [n] => n.to_string(),
        _ => format!("({}, {})", s[0], s[1]),
    }
}

fn annotation(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

fn num(v: f64) -> String {
    format!("{v}")
}

/// An array as an `.ad` literal that reads back to exactly the same numbers.
fn literal(shape: &[usize], data: &[f64]) -> String {
    let row = |r: &[f64]| format!("[{}]", r.iter().map(|v| num(*v)).collect::<Vec<_>>().join(", "));
    match shape {
        [] => num(data[0]),
        [_] => row(data),
        _ => format!("[{}]", data.chunks(shape[1]).map(row).collect::<Vec<_>>().join(", ")),
    }
}

fn lit(a: &Array) -> String {
    literal(a.shape().dims(), a.data())
}

/// Appends a value's arrays (a tuple's leaves in order); false for functions and strings.
fn leaves(v: &LVal, out: &mut Vec<Array>) -> bool {
    match v {
        LVal::Num(x) => out.push(Array::scalar(*x)),
        LVal::Arr(Arr::Val(a)) => out.push(a.clone()),
        LVal::Tuple(items) => return items.iter().all(|i| leaves(i, out)),
        _ => return false,
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The generator

/// What a binding exercises; a program's features are those of the bindings its result
/// depends on.
const POISON: u32 = 1;
const STRETCHED: u32 = 1 << 1;
const KINK: u32 = 1 << 2;
const NESTED: u32 = 1 << 3;
const BROADCAST: u32 = 1 << 4;
const WHERE: u32 = 1 << 5;
const MATMUL: u32 = 1 << 6;
const SOLVE: u32 = 1 << 7;
const REDUCE: u32 = 1 << 8;
const STRUCTURE: u32 = 1 << 9;
const PRELUDE: u32 = 1 << 10;
const LAMBDA: u32 = 1 << 11;
const FEATURES: &[(u32, &str)] = &[
    (POISON, "where with a NaN/inf unselected branch that depends on x"),
    (STRETCHED, "where whose x-dependent branch is stretched by the condition or other branch"),
    (KINK, "kink within the margin (no central differences)"),
    (NESTED, "transform nested inside f"),
    (BROADCAST, "elementwise operands of different shapes"),
    (WHERE, "where"),
    (MATMUL, "matrix product"),
    (SOLVE, "solve"),
    (REDUCE, "reduction"),
    (STRUCTURE, "index, slice, reshape, transpose, concat, pad, literal"),
    (PRELUDE, "prelude function"),
    (LAMBDA, "lambda"),
];

/// A value at the point: a name bound in the function body, or an inline expression.
#[derive(Clone)]
struct Val {
    expr: String,
    shape: Dims,
    data: Vec<f64>,
    /// Whether it depends on `x` (differentiated by every mode) or `y` (by the first-order
    /// modes, which differentiate with respect to both parameters).
    dx: bool,
    dy: bool,
    /// The bound values the expression mentions.
    refs: Vec<usize>,
}

impl Val {
    fn dep(&self) -> bool {
        self.dx || self.dy
    }
    /// The expression as an operand of an operator.
    fn atom(&self) -> String {
        if self.expr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            self.expr.clone()
        } else {
            format!("({})", self.expr)
        }
    }
    fn min(&self) -> f64 {
        self.data.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.data.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    fn min_abs(&self) -> f64 {
        self.data.iter().map(|v| v.abs()).fold(f64::INFINITY, f64::min)
    }
    fn finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}

/// A generated case: a function `f(x, y)` (any result), a scalar function `g` of it, and the
/// point.
struct Spec {
    label: String,
    seed: u64,
    defs: String,
    args: Vec<Array>,
    /// Features of the bindings the result depends on.
    feat: u32,
    /// f's value as the generator computed it, eagerly at the top level.
    evaluated: Vec<f64>,
    /// Whether every derivative must be finite (at a singular point the modes need only agree).
    finite: bool,
    /// Values every mode must give, for the fixed regression cases.
    expected: Vec<(&'static str, Vec<f64>)>,
}

struct Gen {
    r: R,
    /// A session holding `x`, `y` and every binding at the top level, to evaluate them.
    s: Session,
    vals: Vec<Val>,
    /// For each value: the values its binding mentions, and its features.
    deps: Vec<(Vec<usize>, u32)>,
    body: Vec<String>,
    n_eval: usize,
    lambdas: usize,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        let mut r = R::new(seed);
        let mut s = Session::new(Box::new(SharedBuf::default()));
        let mut vals = Vec::new();
        let mut text = String::new();
        for (name, dx) in [("x", true), ("y", false)] {
            let shape = r.choose(SHAPES).to_vec();
            let data: Vec<f64> = (0..size(&shape)).map(|_| r.value(-1.5, 1.5)).collect();
            writeln!(text, "let {name} = {}", literal(&shape, &data)).unwrap();
            vals.push(Val { expr: name.into(), shape, data, dx, dy: !dx, refs: vec![vals.len()] });
        }
        s.run_source("point.ad", &text).expect("the point loads");
        Gen { r, s, vals, deps: vec![(vec![], 0), (vec![], 0)], body: Vec::new(), n_eval: 0, lambdas: 0 }
    }

    /// Evaluates an expression at the point, at the top level of the generator's session.
    fn eval(&mut self, expr: &str) -> Option<(Dims, Vec<f64>)> {
        self.n_eval += 1;
        let name = format!("__e{}", self.n_eval);
        // An error here means the generator built an ill-shaped expression; it is dropped.
        if let Err(e) = self.s.run_source("gen.ad", &format!("let {name} = {expr}\n")) {
            if std::env::var_os("AD_DIFF_VERBOSE").is_some() {
                eprintln!("rejected `{expr}`: {}", ad_syntax::render(&self.s.sources, &e, false));
            }
            return None;
        }
        let mut out = Vec::new();
        if !leaves(self.s.global_value(&name)?, &mut out) || out.len() != 1 {
            return None;
        }
        Some((out[0].shape().dims().to_vec(), out[0].data().to_vec()))
    }

    /// An inline expression of `parts`, with its value; `None` if it is ill-shaped or (unless
    /// `poisoned` is allowed) not finite and moderate.
    fn inline(&mut self, expr: String, parts: &[&Val], poisoned: bool) -> Option<Val> {
        let (shape, data) = self.eval(&expr)?;
        let v = Val {
            expr,
            shape,
            data,
            dx: parts.iter().any(|p| p.dx),
            dy: parts.iter().any(|p| p.dy),
            refs: parts.iter().flat_map(|p| p.refs.iter().copied()).collect(),
        };
        (poisoned || (v.finite() && v.data.iter().all(|d| d.abs() <= BOUND))).then_some(v)
    }

    /// Binds `let tK = expr` in the body if its value is finite and moderate.
    fn bind(&mut self, expr: String, parts: &[&Val], feat: u32) -> Option<()> {
        let v = self.inline(expr, parts, false)?;
        // Small values keep the Jacobians and Hessians of the checks small.
        if size(&v.shape) > 36 {
            return None;
        }
        let name = format!("t{}", self.vals.len() - 1);
        self.s.run_source("gen.ad", &format!("let {name} = {}\n", v.expr)).ok()?;
        self.body.push(format!("let {name} = {}", v.expr));
        self.deps.push((v.refs.clone(), feat));
        let refs = vec![self.vals.len()];
        self.vals.push(Val { expr: name, refs, ..v });
        Some(())
    }

    /// Often (with probability `p`) a shape-sensitive use of `v` instead of `v` itself: a sum,
    /// an index, a reshape. A derivative of the wrong shape (a tangent left unbroadcast, a
    /// cotangent not summed back) survives an elementwise operation, which broadcasts it, but
    /// not these.
    fn consume(&mut self, v: &Val, p: f64) -> String {
        if v.shape.is_empty() || !self.r.chance(p) {
            return v.expr.clone();
        }
        let (e, at) = (v.expr.clone(), v.atom());
        let rank = v.shape.len();
        match self.r.below(5) {
            0 => format!("sum({e})"),
            1 => {
                let ax = self.r.below(rank);
                format!("sum({e}, {})", self.index_text(ax, rank))
            }
            2 => {
                let i = self.r.below(v.shape[0]);
                format!("{at}[{}]", self.index_text(i, v.shape[0]))
            }
            3 => format!("reshape({e}, {})", size(&v.shape)),
            _ => {
                let ax = self.r.below(rank);
                format!("mean({e}, {})", self.index_text(ax, rank))
            }
        }
    }

    /// A bound value satisfying `pred`: the most recent one half of the time, so that programs
    /// grow deep as well as wide.
    fn pick(&mut self, pred: impl Fn(&Val) -> bool) -> Option<Val> {
        let idx: Vec<usize> = (0..self.vals.len()).filter(|&i| pred(&self.vals[i])).collect();
        if idx.is_empty() {
            return None;
        }
        let i = if self.r.chance(0.5) { *idx.last()? } else { self.r.choose(&idx) };
        Some(self.vals[i].clone())
    }

    /// A value that depends on `x` (there is always one: `x`).
    fn pick_dx(&mut self) -> Val {
        self.pick(|v| v.dx).expect("x is always there")
    }

    /// A value that depends on a parameter, mostly on `x`.
    fn pick_dep(&mut self) -> Val {
        if self.r.chance(0.75) {
            self.pick_dx()
        } else {
            self.pick(|v| v.dep()).expect("x is always there")
        }
    }

    fn index_text(&mut self, i: usize, n: usize) -> String {
        if self.r.chance(0.4) {
            (i as i64 - n as i64).to_string()
        } else {
            i.to_string()
        }
    }

    /// `lo:hi` for 0 ≤ lo < hi ≤ n, with omitted and negative bounds.
    fn slice_text(&mut self, lo: usize, hi: usize, n: usize) -> String {
        let l = if lo == 0 && self.r.chance(0.5) { String::new() } else { self.index_text(lo, n) };
        let h = if hi == n {
            if self.r.chance(0.5) {
                String::new()
            } else {
                n.to_string()
            }
        } else {
            self.index_text(hi, n)
        };
        format!("{l}:{h}")
    }

    /// An expression of shape `t` computed from `a` by structural operations.
    fn adapt_text(&mut self, a: &Val, t: &[usize]) -> String {
        let s = a.shape.clone();
        let (e, at) = (a.expr.clone(), a.atom());
        if s == t {
            return e;
        }
        let mut options: Vec<String> = Vec::new();
        if size(&s) == size(t) {
            options.push(format!("reshape({e}, {})", shape_arg(t)));
            if s.len() == 2 && t.len() == 2 && s[0] == t[1] && s[1] == t[0] {
                options.push(format!("{at}'"));
            }
        }
        match (s.as_slice(), t) {
            (_, []) => {
                options.push(format!("sum({e})"));
                options.push(format!("mean({e})"));
                let mut idx = Vec::new();
                for n in &s {
                    let i = self.r.below(*n);
                    idx.push(self.index_text(i, *n));
                }
                if !idx.is_empty() {
                    options.push(format!("{at}[{}]", idx.join(", ")));
                }
            }
            ([m], [n]) if m > n => {
                let lo = self.r.below(m - n + 1);
                let sl = self.slice_text(lo, lo + n, *m);
                options.push(format!("{at}[{sl}]"));
            }
            ([m], [n]) if n - m <= *m => options.push(format!("concat({e}, {at}[:{}])", n - m)),
            ([r, c], [n]) => {
                if c == n {
                    let i = self.r.below(*r);
                    let i = self.index_text(i, *r);
                    options.push(format!("{at}[{i}]"));
                    options.push(format!("sum({e}, 0)"));
                }
                if r == n {
                    let j = self.r.below(*c);
                    let j = self.index_text(j, *c);
                    options.push(format!("{at}[:, {j}]"));
                    options.push(format!("sum({e}, -1)"));
                }
            }
            ([r, c], [p, q]) if r >= p && c >= q => {
                let (i, j) = (self.r.below(r - p + 1), self.r.below(c - q + 1));
                let (si, sj) = (self.slice_text(i, i + p, *r), self.slice_text(j, j + q, *c));
                options.push(format!("{at}[{si}, {sj}]"));
            }
            _ => {}
        }
        if covers(t, &s) {
            options.push(format!("broadcast_to({e}, {})", shape_arg(t)));
        }
        if options.is_empty() {
            // Through a scalar, which broadcasts to anything.
            let inner = if s.is_empty() { e } else { format!("sum({e})") };
            return if t.is_empty() { inner } else { format!("broadcast_to({inner}, {})", shape_arg(t)) };
        }
        self.r.choose(&options)
    }

    /// A value of shape `t` made from a value that depends on the parameters.
    fn dep_operand(&mut self, t: &[usize]) -> Val {
        let a = self.pick_dep();
        if a.shape == t {
            return a;
        }
        let e = self.adapt_text(&a, t);
        self.inline(e, &[&a], false).unwrap_or_else(|| self.constant(t))
    }

    /// A value of shape `t`: a bound value, one adapted from a bound value, or a constant.
    fn operand(&mut self, t: &[usize]) -> Val {
        let exact: Vec<usize> = (0..self.vals.len()).filter(|&i| self.vals[i].shape == t).collect();
        let u = self.r.0.uniform();
        if !exact.is_empty() && u < 0.45 {
            let i = self.r.choose(&exact);
            return self.vals[i].clone();
        }
        if u < 0.75 {
            return self.dep_operand(t);
        }
        self.constant(t)
    }

    fn constant(&mut self, t: &[usize]) -> Val {
        let n = size(t);
        let expr = match self.r.below(6) {
            0 if t.is_empty() => "0".to_string(),
            0 => format!("{}({})", self.r.choose(&["zeros", "ones"]), shape_arg(t)),
            1 => {
                let data: Vec<f64> = (0..n).map(|_| self.r.below(2) as f64).collect();
                literal(t, &data)
            }
            _ => {
                let data: Vec<f64> = (0..n).map(|_| (self.r.below(41) as f64 - 20.0) / 10.0).collect();
                literal(t, &data)
            }
        };
        self.inline(expr, &[], false).expect("constants evaluate")
    }

    /// A shape that `s` broadcasts to, often a larger one.
    fn cover_shape(&mut self, s: &[usize]) -> Dims {
        let bigger: Vec<&[usize]> = SHAPES.iter().copied().filter(|t| *t != s && covers(t, s)).collect();
        if bigger.is_empty() || self.r.chance(0.4) {
            s.to_vec()
        } else {
            self.r.choose(&bigger).to_vec()
        }
    }

    /// A shape that broadcasts to `s`.
    fn sub_shape(&mut self, s: &[usize]) -> Dims {
        let smaller: Vec<&[usize]> = SHAPES.iter().copied().filter(|t| covers(s, t)).collect();
        if self.r.chance(0.4) {
            s.to_vec()
        } else {
            self.r.choose(&smaller).to_vec()
        }
    }

    /// A shape that broadcasts with `s` (to a result of at most 16 elements).
    fn partner_shape(&mut self, s: &[usize]) -> Dims {
        let ok: Vec<&[usize]> =
            SHAPES.iter().copied().filter(|t| bcast(s, t).is_some_and(|b| size(&b) <= 16)).collect();
        if ok.is_empty() || self.r.chance(0.3) {
            s.to_vec()
        } else {
            self.r.choose(&ok).to_vec()
        }
    }

    /// A threshold at least `MARGIN` from every value of `data`: between two of them (so that
    /// a `where` selects both branches) when they are far enough apart, else beyond them all;
    /// sometimes 0, as in `where(a >= 0, ..)`.
    fn threshold(&mut self, data: &[f64]) -> f64 {
        let far = |t: f64| data.iter().all(|d| (d - t).abs() >= MARGIN);
        if far(0.0) && self.r.chance(0.3) {
            return 0.0;
        }
        let mut v = data.to_vec();
        v.sort_by(f64::total_cmp);
        let gaps: Vec<f64> =
            v.windows(2).map(|w| round_to((w[0] + w[1]) / 2.0, 100.0)).filter(|t| far(*t)).collect();
        if !gaps.is_empty() && self.r.chance(0.7) {
            return self.r.choose(&gaps);
        }
        let beyond = 0.1 + 0.4 * self.r.0.uniform();
        if self.r.chance(0.5) {
            round_to(v[0] - beyond, 100.0)
        } else {
            round_to(v[v.len() - 1] + beyond, 100.0)
        }
    }

    /// `c OP t` with `t` far from every value of `c`.
    fn compare(&mut self, c: &Val) -> Option<Val> {
        let t = self.threshold(&c.data);
        let (op, flipped) = self.r.choose(&[(">", "<"), (">=", "<="), ("<", ">"), ("<=", ">=")]);
        let expr = if self.r.chance(0.8) {
            format!("{} {op} {}", c.atom(), num(t))
        } else {
            format!("{} {flipped} {}", num(t), c.atom())
        };
        self.inline(expr, &[c], false)
    }

    /// A condition of shape `sc`: a literal mask, a comparison with a threshold or between two
    /// values, or a logical combination.
    fn cond(&mut self, sc: &[usize]) -> Option<Val> {
        match self.r.below(6) {
            0 => {
                let expr = if sc.is_empty() {
                    self.r.choose(&["0", "1", "true", "false"]).to_string()
                } else {
                    let data: Vec<f64> = (0..size(sc)).map(|_| self.r.below(2) as f64).collect();
                    literal(sc, &data)
                };
                self.inline(expr, &[], false)
            }
            1..=3 => {
                let c = self.operand(sc);
                self.compare(&c)
            }
            4 => {
                let (c1, s2) = (self.operand(sc), self.sub_shape(sc));
                let c2 = self.operand(&s2);
                let d = self.inline(format!("{} - {}", c1.atom(), c2.atom()), &[&c1, &c2], false)?;
                if d.dep() && d.min_abs() < MARGIN {
                    return None;
                }
                self.inline(format!("{} < {}", c1.atom(), c2.atom()), &[&c1, &c2], false)
            }
            _ => {
                let (c1, c2) = (self.operand(sc), self.operand(sc));
                let (a, b) = (self.compare(&c1)?, self.compare(&c2)?);
                let expr = match self.r.below(3) {
                    0 => format!("{} && {}", a.atom(), b.atom()),
                    1 => format!("{} || {}", a.atom(), b.atom()),
                    _ => format!("!{}", a.atom()),
                };
                self.inline(expr, &[&a, &b], false)
            }
        }
    }

    fn op_unary(&mut self) -> Option<()> {
        let a = self.pick_dep();
        let (e, at) = (a.expr.clone(), a.atom());
        let kink = if a.dep() && a.min_abs() < MARGIN { KINK } else { 0 };
        let (expr, feat) = match self.r.below(12) {
            0 if a.max() < 4.0 => (format!("exp({e})"), 0),
            0 => (format!("exp(tanh({e}))"), 0),
            1 if a.min() > 2.5 * MARGIN => (format!("log({e})"), 0),
            1 => (format!("log(1 + {at} ^ 2)"), 0),
            2 => (format!("sin({e})"), 0),
            3 => (format!("cos({e})"), 0),
            4 => (format!("tanh({e})"), 0),
            5 => (format!("sigmoid({e})"), 0),
            6 if a.min() > 2.5 * MARGIN => (format!("sqrt({e})"), 0),
            6 => (format!("sqrt(0.5 + {at} ^ 2)"), 0),
            7 => (format!("abs({e})"), kink),
            8 => (format!("relu({e})"), kink),
            9 => (format!("-{at}"), 0),
            10 => (format!("{at} ^ {}", self.r.choose(&[2, 3])), 0),
            _ => (format!("{at}'"), STRUCTURE),
        };
        let out = self.inline(expr, &[&a], false)?;
        let expr = self.consume(&out, 0.15);
        self.bind(expr, &[&a], feat)
    }

    fn op_binary(&mut self) -> Option<()> {
        let a = self.pick_dep();
        let sb = self.partner_shape(&a.shape);
        let b = self.operand(&sb);
        let (p, q) = if self.r.chance(0.3) { (&b, &a) } else { (&a, &b) };
        let (pt, qt) = (p.atom(), q.atom());
        let mut feat = if p.shape != q.shape { BROADCAST } else { 0 };
        let expr = match self.r.below(9) {
            0 => format!("{pt} + {qt}"),
            1 => format!("{pt} - {qt}"),
            2 => format!("{pt} * {qt}"),
            3 if q.min_abs() > 0.1 => format!("{pt} / {qt}"),
            3 => format!("{pt} / (1 + {qt} ^ 2)"),
            4 if p.min() > 2.5 * MARGIN => format!("{pt} ^ {qt}"),
            4 => format!("(1 + {pt} ^ 2) ^ {qt}"),
            5 | 6 => {
                let d = self.inline(format!("{pt} - {qt}"), &[p, q], false)?;
                if d.dep() && d.min_abs() < MARGIN {
                    feat |= KINK;
                }
                format!("{}({}, {})", self.r.choose(&["max", "min"]), p.expr, q.expr)
            }
            7 => format!("safe_mul({}, {})", p.expr, q.expr),
            _ => format!("{pt} * {qt} - {qt}"),
        };
        let out = self.inline(expr, &[&a, &b], false)?;
        let expr = self.consume(&out, 0.25);
        self.bind(expr, &[&a, &b], feat)
    }

    /// `where` with a derivative-carrying branch and a condition and other branch of any
    /// shapes that broadcast together, often larger than the branch.
    fn op_where(&mut self) -> Option<()> {
        let a = self.pick_dep();
        let s = self.cover_shape(&a.shape);
        let (sc, sb) = (self.sub_shape(&s), self.sub_shape(&s));
        let c = self.cond(&sc)?;
        let b = if self.r.chance(0.25) {
            let z = if sb.is_empty() { "0".to_string() } else { format!("zeros({})", shape_arg(&sb)) };
            self.inline(z, &[], false)?
        } else {
            self.operand(&sb)
        };
        let (p, q) = if self.r.chance(0.5) { (&b, &a) } else { (&a, &b) };
        let expr = format!("where({}, {}, {})", c.expr, p.expr, q.expr);
        let out = self.inline(expr, &[&c, &a, &b], false)?;
        let mut feat = WHERE;
        if [&a, &b].iter().any(|v| v.dx && v.shape != out.shape) {
            feat |= STRETCHED;
        }
        let expr = self.consume(&out, 0.5);
        self.bind(expr, &[&c, &a, &b], feat)
    }

    /// `f(z)` for `z` a parenthesised expression: finite where `z > 0` (by at least `MARGIN`),
    /// NaN or infinite where `z < 0`.
    fn poison_fn(&mut self, z: &str, parts: &[&Val], shape: &[usize]) -> Option<Val> {
        let expr = match self.r.below(11) {
            0 => format!("sqrt({z})"),
            1 => format!("log({z})"),
            2 => format!("{z} ^ 0.5"),
            3 => format!("{z} ^ (-1.5)"),
            4 => format!("1 / sqrt({z})"),
            5 => {
                // A derivative-carrying exponent, as in `where(a >= 0, a ^ b, (-a) ^ b)`.
                let s = self.sub_shape(shape);
                let b = self.pick(|v| v.dy && covers(shape, &v.shape)).unwrap_or_else(|| self.operand(&s));
                let b = if b.min_abs() < 3.0 && b.max() < 3.0 {
                    b
                } else {
                    self.inline(format!("tanh({})", b.expr), &[&b], false)?
                };
                let mut all = parts.to_vec();
                all.push(&b);
                return self.inline(format!("{z} ^ {}", b.atom()), &all, true);
            }
            6 => format!("sqrt(relu({z}))"),
            7 => format!("log(relu({z}))"),
            8 => format!("1 / relu({z})"),
            9 => format!("relu({z}) ^ (-1.5)"),
            _ => format!("{z} * log({z})"),
        };
        self.inline(expr, parts, true)
    }

    /// A scalar that mixes the elements of `p`: whose derivative, with `p` NaN or infinite,
    /// takes the strong-zero products, matrix products and solves (`safe_matmul`,
    /// `safe_solve`) of NaN-safe differentiation.
    fn mix(&mut self, p: &Val) -> Option<Val> {
        let (e, at) = (p.expr.clone(), p.atom());
        let (expr, w) = match (self.r.below(4), p.shape.as_slice()) {
            (0, _) | (_, []) => (format!("sum({e})"), None),
            (1, [n]) => {
                let w = self.operand(&[*n]);
                (format!("{at} @ {}", w.atom()), Some(w))
            }
            (1, [_, c]) => {
                let w = self.operand(&[*c]);
                (format!("sum({at} @ {})", w.atom()), Some(w))
            }
            (2, [n]) if *n <= 3 => {
                let w = self.operand(&[*n]);
                (format!("sum(solve(tanh(outer({e}, {})) + 3 * eye({n}), {}))", w.expr, w.expr), Some(w))
            }
            (2, [r, c]) if r == c => {
                let w = self.operand(&[*r]);
                (format!("sum(solve(tanh({e}) + 3 * eye({r}), {}))", w.expr), Some(w))
            }
            _ => (format!("mean({e})"), None),
        };
        match w {
            Some(w) => self.inline(expr, &[p, &w], true),
            None => self.inline(expr, &[p], true),
        }
    }

    /// `where(g > t, F(g - t), G(t - g))` and variants: each branch is finite where it is
    /// selected and NaN or infinite where it is not, so its derivative there must be exactly
    /// zero at every order.
    fn op_poison(&mut self) -> Option<()> {
        let g = self.pick_dx();
        // A branch that mixes its elements (a sum, a product, a solve) is NaN everywhere as
        // soon as one element is; then the condition must leave it unselected everywhere.
        let mixing = self.r.chance(0.3);
        let t = if mixing {
            round_to(g.max() + 0.1 + 0.4 * self.r.0.uniform(), 100.0)
        } else {
            self.threshold(&g.data)
        };
        let (pos, neg) = if t == 0.0 {
            (g.atom(), format!("(-{})", g.atom()))
        } else if t > 0.0 {
            (format!("({} - {})", g.atom(), num(t)), format!("({} - {})", num(t), g.atom()))
        } else {
            (format!("({} + {})", g.atom(), num(-t)), format!("({} - {})", num(t), g.atom()))
        };
        let mut fpos = self.poison_fn(&pos, &[&g], &g.shape)?;
        let other = match self.r.below(4) {
            0 | 1 => self.poison_fn(&neg, &[&g], &g.shape)?,
            2 => self.inline("0".into(), &[], false)?,
            _ => {
                let s = self.sub_shape(&g.shape);
                self.operand(&s)
            }
        };
        if mixing {
            fpos = self.mix(&fpos)?;
        } else if self.r.chance(0.3) {
            // Stretch the poisoned branch by a larger operand.
            let s = self.cover_shape(&g.shape);
            let w = self.operand(&s);
            fpos = self.inline(format!("{} * {}", fpos.atom(), w.atom()), &[&fpos, &w], true)?;
        }
        let cond_of = |gen: &mut Gen, op: &str| {
            if gen.r.chance(0.2) {
                // A condition larger than the branch computed from it.
                let s = gen.cover_shape(&g.shape);
                format!("broadcast_to({}, {}) {op} {}", g.expr, shape_arg(&s), num(t))
            } else {
                format!("{} {op} {}", g.atom(), num(t))
            }
        };
        let expr = if self.r.chance(0.5) {
            let op = self.r.choose(&[">", ">="]);
            let c = cond_of(self, op);
            format!("where({c}, {}, {})", fpos.expr, other.expr)
        } else {
            let op = self.r.choose(&["<", "<="]);
            let c = cond_of(self, op);
            format!("where({c}, {}, {})", other.expr, fpos.expr)
        };
        let out = self.inline(expr, &[&g, &fpos, &other], false)?;
        let mut feat = WHERE;
        // Every non-finite entry of a branch is unselected, since the result is finite.
        if [&fpos, &other].iter().any(|v| v.dx && !v.finite()) {
            feat |= POISON;
        }
        if [&fpos, &other].iter().any(|v| v.dx && v.shape != out.shape) {
            feat |= STRETCHED;
        }
        let expr = self.consume(&out, 0.5);
        self.bind(expr, &[&g, &fpos, &other], feat)
    }

    fn op_matmul(&mut self) -> Option<()> {
        let a = self.pick(|v| v.dep() && !v.shape.is_empty())?;
        let k = 1 + self.r.below(3);
        let at = a.atom();
        let (expr, b) = match a.shape.as_slice() {
            [n] => match self.r.below(3) {
                0 => {
                    let b = self.operand(&[*n]);
                    (format!("{at} @ {}", b.atom()), b)
                }
                1 => {
                    let b = self.operand(&[*n, k]);
                    (format!("{at} @ {}", b.atom()), b)
                }
                _ => {
                    let b = self.operand(&[k, *n]);
                    (format!("{} @ {at}", b.atom()), b)
                }
            },
            [m, n] => match self.r.below(6) {
                0 => {
                    let b = self.operand(&[*n]);
                    (format!("{at} @ {}", b.atom()), b)
                }
                1 => {
                    let b = self.operand(&[*m]);
                    (format!("{} @ {at}", b.atom()), b)
                }
                2 => {
                    let b = self.operand(&[*n, k]);
                    (format!("{at} @ {}", b.atom()), b)
                }
                3 => {
                    let b = self.operand(&[k, *m]);
                    (format!("{} @ {at}", b.atom()), b)
                }
                4 => (format!("{at}' @ {at}"), a.clone()),
                _ => (format!("{at} @ {at}'"), a.clone()),
            },
            _ => return None,
        };
        self.bind(expr, &[&a, &b], MATMUL)
    }

    /// Whether some group reduced by `amax` has a runner-up within `MARGIN` of its maximum.
    fn amax_tie(v: &Val, axis: Option<usize>) -> bool {
        let groups: Vec<Vec<f64>> = match (v.shape.as_slice(), axis) {
            ([_, c], Some(0)) => {
                (0..*c).map(|j| v.data.iter().skip(j).step_by(*c).copied().collect()).collect()
            }
            ([_, c], Some(_)) => v.data.chunks(*c).map(|r| r.to_vec()).collect(),
            _ => vec![v.data.clone()],
        };
        groups.iter().any(|g| {
            let m = g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            g.iter().filter(|x| m - *x < MARGIN).count() > 1
        })
    }

    fn op_reduce(&mut self) -> Option<()> {
        let a = self.pick(|v| v.dep() && !v.shape.is_empty())?;
        let e = a.expr.clone();
        let rank = a.shape.len();
        let axis = if self.r.chance(0.5) { None } else { Some(self.r.below(rank)) };
        let axis_text = |gen: &mut Gen, ax: usize| gen.index_text(ax, rank);
        let mut feat = REDUCE;
        let f = self.r.choose(&["sum", "amax", "mean", "logsumexp", "softmax", "norm"]);
        if f == "amax" && a.dep() && Self::amax_tie(&a, axis) {
            feat |= KINK;
        }
        if f == "norm" && a.dep() && a.data.iter().map(|v| v * v).sum::<f64>().sqrt() < MARGIN {
            feat |= KINK;
        }
        if !matches!(f, "sum" | "amax") {
            feat |= PRELUDE;
        }
        let expr = match axis {
            Some(ax) if f != "norm" => {
                let ax = axis_text(self, ax);
                format!("{f}({e}, {ax})")
            }
            _ => format!("{f}({e})"),
        };
        self.bind(expr, &[&a], feat)
    }

    fn op_structure(&mut self) -> Option<()> {
        let a = self.pick(|v| v.dep() && !v.shape.is_empty())?;
        let at = a.atom();
        let (expr, b) = match (self.r.below(6), a.shape.as_slice()) {
            (0, [n]) => {
                let i = self.r.below(*n);
                (format!("{at}[{}]", self.index_text(i, *n)), None)
            }
            (0, [r, c]) => {
                let (i, j) = (self.r.below(*r), self.r.below(*c));
                let (i, j) = (self.index_text(i, *r), self.index_text(j, *c));
                let e = self.r.choose(&[
                    format!("{at}[{i}]"),
                    format!("{at}[:, {j}]"),
                    format!("{at}[{i}, {j}]"),
                ]);
                (e, None)
            }
            (1, [n]) if *n > 1 => {
                let lo = self.r.below(*n - 1);
                let hi = lo + 1 + self.r.below(*n - lo);
                (format!("{at}[{}]", self.slice_text(lo, hi, *n)), None)
            }
            (1, [r, c]) => {
                let (r0, c0) = (self.r.below(*r), self.r.below(*c));
                let (r1, c1) = (r0 + 1 + self.r.below(*r - r0), c0 + 1 + self.r.below(*c - c0));
                let (rs, cs) = (self.slice_text(r0, r1, *r), self.slice_text(c0, c1, *c));
                let e = self.r.choose(&[
                    format!("{at}[{rs}]"),
                    format!("{at}[:, {cs}]"),
                    format!("{at}[{rs}, {cs}]"),
                ]);
                (e, None)
            }
            (2, s) => {
                let n = size(s);
                let mut targets: Vec<String> = vec![n.to_string(), format!("(1, {n})"), format!("({n}, -1)")];
                if n == 6 {
                    targets.extend(["(2, 3)", "(3, -1)", "(-1, 3)"].map(String::from));
                }
                if n == 4 {
                    targets.push("(2, 2)".into());
                }
                (format!("reshape({}, {})", a.expr, self.r.choose(&targets)), None)
            }
            (3, [_]) => {
                let m = 1 + self.r.below(2);
                let b = self.operand(&[m]);
                let e = if self.r.chance(0.5) {
                    format!("concat({}, {})", a.expr, b.expr)
                } else {
                    format!("concat({}, {})", b.expr, a.expr)
                };
                (e, Some(b))
            }
            (3, [r, c]) => {
                let m = 1 + self.r.below(2);
                let (b, e) = if self.r.chance(0.5) {
                    let b = self.operand(&[m, *c]);
                    let ax = self.r.choose(&["", ", 0", ", -2"]);
                    let e = format!("concat({}, {}{ax})", a.expr, b.expr);
                    (b, e)
                } else {
                    let b = self.operand(&[*r, m]);
                    let ax = self.r.choose(&["1", "-1"]);
                    let e = format!("concat({}, {}, {ax})", b.expr, a.expr);
                    (b, e)
                };
                (e, Some(b))
            }
            (4, [_]) => {
                let (p, q) = (self.r.below(2), self.r.below(3));
                (format!("pad({}, ({p}, {q}))", a.expr), None)
            }
            (4, [_, _]) => {
                let w: Vec<usize> = (0..4).map(|_| self.r.below(2)).collect();
                (format!("pad({}, (({}, {}), ({}, {})))", a.expr, w[0], w[1], w[2], w[3]), None)
            }
            (_, s) => {
                let t = self.cover_shape(s);
                if t == s && s.len() == 2 {
                    (format!("sum_to({}, (1, {}))", a.expr, s[1]), None)
                } else {
                    (format!("broadcast_to({}, {})", a.expr, shape_arg(&t)), None)
                }
            }
        };
        match b {
            Some(b) => self.bind(expr, &[&a, &b], STRUCTURE),
            None => self.bind(expr, &[&a], STRUCTURE),
        }
    }

    /// Array literals of computed elements.
    fn op_literal(&mut self) -> Option<()> {
        // Scalars into a vector, vectors into a matrix, or scalars into a matrix.
        let (n, rows) = (2 + self.r.below(2), self.r.below(3));
        let shape: Dims = if rows == 1 { vec![n] } else { vec![] };
        let count = [n, 2, 4][rows];
        let first = self.dep_operand(&shape);
        let mut parts = vec![first];
        while parts.len() < count {
            let v = self.operand(&shape);
            parts.push(v);
        }
        let e: Vec<String> = parts.iter().map(|p| p.expr.clone()).collect();
        let expr = if rows == 2 {
            format!("[[{}, {}], [{}, {}]]", e[0], e[2], e[1], e[3])
        } else {
            format!("[{}]", e.join(", "))
        };
        let refs: Vec<&Val> = parts.iter().collect();
        self.bind(expr, &refs, STRUCTURE)
    }

    /// `solve` with a well-conditioned matrix: `tanh(M) + 3 I` is strictly diagonally dominant
    /// for n ≤ 3.
    fn op_solve(&mut self) -> Option<()> {
        let n = 2 + self.r.below(2);
        let (m, mparts) = if self.r.chance(0.5) {
            let (u, w) = (self.dep_operand(&[n]), self.operand(&[n]));
            (format!("outer({}, {})", u.expr, w.expr), vec![u, w])
        } else {
            let k = 1 + self.r.below(3);
            let a = self.dep_operand(&[n, k]);
            (format!("{} @ {}'", a.atom(), a.atom()), vec![a])
        };
        let bshape = if self.r.chance(0.5) { vec![n] } else { vec![n, 1 + self.r.below(3)] };
        let b = self.operand(&bshape);
        let expr = if self.r.chance(0.8) {
            format!("solve(tanh({m}) + 3 * eye({n}), {})", b.expr)
        } else {
            format!("inv(tanh({m}) + 3 * eye({n})) @ {}", b.atom())
        };
        let mut parts: Vec<&Val> = mparts.iter().collect();
        parts.push(&b);
        self.bind(expr, &parts, SOLVE | PRELUDE)
    }

    /// Kinks exactly at the point: ties in `max`, `min` and `amax`, and `abs` and `relu` at 0.
    /// Central differences do not apply, but every mode must follow the same convention (ties
    /// share the derivative equally, `abs'(0) = relu'(0) = 0`).
    fn op_tie(&mut self) -> Option<()> {
        let a = self.pick_dep();
        let (e, at) = (a.expr.clone(), a.atom());
        let n = a.shape.last().copied().unwrap_or(1);
        let expr = match self.r.below(7) {
            0 => format!("max({e}, {e})"),
            1 => format!("min({e}, {at} * 1) * {at}"),
            2 => format!("amax(broadcast_to({e}, (2, {n})), 0)"),
            3 => format!("abs({at} - {at}) + {at}"),
            4 => format!("relu({at} - {at}) * {at} + {at}"),
            5 => format!("max({e}, {at} + 0) + min({e}, {e})"),
            _ => format!("amax(concat(reshape({e}, (1, -1)), reshape({e}, (1, -1))), 0)"),
        };
        self.bind(expr, &[&a], if a.dep() { KINK } else { 0 })
    }

    /// Lambdas and transforms inside `f`, closing over values that depend on the parameters.
    fn op_nested(&mut self) -> Option<()> {
        let a = self.pick_dep();
        let sc = self.partner_shape(&a.shape);
        let c = self.operand(&sc);
        let (ae, ce) = (a.expr.clone(), c.atom());
        let inner = self.r.choose(&[
            format!("sum(sin(z) * {ce})"),
            format!("sum(exp(tanh(z)) * {ce})"),
            format!("sum(z * z * {ce}) / 2"),
            format!("sum(tanh(z * {ce}))"),
            format!("logsumexp(z * {ce})"),
        ]);
        let (expr, parts, feat): (String, Vec<Val>, u32) = match self.r.below(9) {
            0 => (format!("grad(z => {inner})({ae})"), vec![a, c], NESTED),
            1 => {
                let d = self.operand(&a.shape);
                (format!("jvp(z => sin(z) * {ce}, {ae}, {})[1]", d.expr), vec![a, c, d], NESTED)
            }
            2 => {
                let u = self.operand(&bcast(&a.shape, &c.shape)?);
                (format!("vjp(z => tanh(z * {ce}), {ae}, {})[1]", u.expr), vec![a, c, u], NESTED)
            }
            3 => {
                let d = self.operand(&a.shape);
                (format!("hvp(z => {inner}, {ae}, {})", d.expr), vec![a, c, d], NESTED)
            }
            4 => (format!("(z => z * {ce} + sin(z))({ae})"), vec![a, c], LAMBDA),
            5 => (format!("value_and_grad(z => {inner})({ae})[1]"), vec![a, c], NESTED),
            6 => {
                // A lambda bound by `let` in the body and called twice.
                self.lambdas += 1;
                let h = format!("h{}", self.lambdas);
                let line = format!("let {h} = z => tanh(z) * {ce}");
                self.s.run_source("gen.ad", &format!("{line}\n")).ok()?;
                self.body.push(line);
                (format!("{h}({ae}) + {h}({} * 0.5)", a.atom()), vec![a, c], LAMBDA)
            }
            7 => {
                // A NaN-safe `where` inside the nested gradient.
                let t = self.threshold(&a.data);
                let (p, q) = (format!("z - {}", num(t)), format!("{} - z", num(t)));
                let e = format!("grad(z => sum(where(z > {}, sqrt({p}), sqrt({q})) * {ce}))({ae})", num(t));
                // One of the two square roots is NaN at every element.
                let feat = NESTED | WHERE | if a.dx { POISON } else { 0 };
                (e, vec![a, c], feat)
            }
            _ => (format!("grad(z => sum(grad(w => sum(sin(w * z)))(z) * {ce}))({ae})"), vec![a, c], NESTED),
        };
        let refs: Vec<&Val> = parts.iter().collect();
        self.bind(expr, &refs, feat)
    }
}

/// Generates the program of `seed`: `f(x, y)` of 2 to 6 bindings, and a scalar `g` of it.
fn generate(seed: u64) -> Spec {
    let mut gen = Gen::new(seed);
    let n_ops = 2 + gen.r.below(5);
    let (mut made, mut tries) = (0, 0);
    while made < n_ops && tries < 60 {
        tries += 1;
        let done = match gen.r.below(27) {
            0..=2 => gen.op_unary(),
            3..=6 => gen.op_binary(),
            7..=9 => gen.op_where(),
            10..=13 => gen.op_poison(),
            14..=15 => gen.op_matmul(),
            16..=17 => gen.op_reduce(),
            18..=20 => gen.op_structure(),
            21 => gen.op_literal(),
            22 => gen.op_solve(),
            23 => gen.op_tie(),
            _ => gen.op_nested(),
        };
        made += usize::from(done.is_some());
    }
    // The result is the most recent value that depends on x, with the other bindings that
    // nothing uses folded in (as sums, which broadcast to any shape), so that most of what was
    // generated is differentiated.
    let mut out = (0..gen.vals.len()).rev().find(|&i| gen.vals[i].dx).expect("x depends on x");
    let used: Vec<bool> = (0..gen.vals.len()).map(|i| gen.deps.iter().any(|(d, _)| d.contains(&i))).collect();
    let dead: Vec<usize> =
        (2..gen.vals.len()).filter(|&i| i != out && !used[i] && gen.vals[i].dep()).collect();
    if !dead.is_empty() {
        let fv = gen.vals[out].clone();
        let mut parts = vec![&fv];
        let mut expr = fv.atom();
        let dead_vals: Vec<Val> = dead.iter().map(|&i| gen.vals[i].clone()).collect();
        for d in &dead_vals {
            write!(expr, " + sum({}) / {}", d.expr, size(&d.shape) + 1).unwrap();
            parts.push(d);
        }
        if gen.bind(expr, &parts, 0).is_some() {
            out = gen.vals.len() - 1;
        }
    }
    let fv = gen.vals[out].clone();
    let fe = fv.expr.clone();
    // g is a scalar function of f's result, curved so that second derivatives are not zero.
    let rank = fv.shape.len();
    let scalar_of = |e: &str, k: usize| -> String {
        match (rank, k) {
            (_, 0) => format!("sum({e})"),
            (0, 1) => format!("sin({e})"),
            (0, _) => format!("{e} * {e}"),
            (_, 1) => format!("sum(sin({e}))"),
            (1, 2) => format!("{e} @ {e}"),
            (_, 2) => format!("sum({e} * {e}) / 2"),
            _ => format!("logsumexp({e})"),
        }
    };
    let mut k = 1 + gen.r.below(3);
    if gen.inline(scalar_of(&fe, k), &[&fv], false).is_none() {
        k = 0;
    }
    // Features of the bindings the result depends on.
    let mut feat = 0;
    let mut seen = vec![false; gen.vals.len()];
    let mut stack = vec![out];
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut seen[i], true) {
            feat |= gen.deps[i].1;
            stack.extend(gen.deps[i].0.iter().copied());
        }
    }
    let (sx, sy) = (annotation(&gen.vals[0].shape), annotation(&gen.vals[1].shape));
    let mut defs = format!("def f(x: {sx}, y: {sy}) {{\n");
    for line in &gen.body {
        writeln!(defs, "  {line}").unwrap();
    }
    writeln!(defs, "  {fe}\n}}").unwrap();
    let gbody = scalar_of("f(x, y)", k);
    writeln!(defs, "def g(x: {sx}, y: {sy}) = {gbody}").unwrap();
    let args = gen.vals[..2]
        .iter()
        .map(|v| Array::new(ad_ir::Shape::from_dims(&v.shape).unwrap(), v.data.clone()))
        .collect();
    Spec {
        label: format!("seed {seed}"),
        seed,
        defs,
        args,
        feat,
        evaluated: fv.data,
        // At a kink or a singular point (the norm of a vector that is identically zero) the
        // derivative may be NaN; then every mode must give NaN in the same entries.
        finite: feat & KINK == 0,
        expected: vec![],
    }
}

// ---------------------------------------------------------------------------------------------
// The checker

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Ad,
    Differences,
    Expected,
}

/// One mode's value of a quantity.
struct Obs {
    mode: String,
    kind: Kind,
    data: Vec<f64>,
    /// For central differences: the Richardson extrapolation from steps `STEP` and `STEP / 2`,
    /// accepted too, and its distance from `data` widens the tolerance (an error estimate).
    alt: Option<Vec<f64>>,
    rtol: f64,
    atol: f64,
}

/// Whether `a` and `b` agree: NaNs and infinities in the same places, and
/// `‖a − b‖ ≤ rtol·max(‖a‖, ‖b‖) + atol` over the finite entries.
fn agree(a: &[f64], b: &[f64], rtol: f64, atol: f64) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut d, mut na, mut nb) = (0.0, 0.0, 0.0);
    for (&p, &q) in a.iter().zip(b) {
        if p.is_nan() || q.is_nan() || p.is_infinite() || q.is_infinite() {
            if !(p == q || (p.is_nan() && q.is_nan())) {
                return false;
            }
            continue;
        }
        d += (p - q) * (p - q);
        na += p * p;
        nb += q * q;
    }
    d.sqrt() <= rtol * na.sqrt().max(nb.sqrt()) + atol
}

fn norm(a: &[f64]) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// ‖a − b‖ over the entries finite in both.
fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(p, q)| p.is_finite() && q.is_finite())
        .map(|(p, q)| (p - q) * (p - q))
        .sum::<f64>()
        .sqrt()
}

fn show(data: &[f64]) -> String {
    let mut s: Vec<String> = data.iter().take(12).map(|v| format!("{v:.12e}")).collect();
    if data.len() > 12 {
        s.push(format!("... ({} entries)", data.len()));
    }
    format!("[{}]", s.join(", "))
}

#[derive(Default)]
struct Stats {
    cases: usize,
    smooth: usize,
    /// Comparisons with central differences given up (see `Checker::given_up`).
    given_up: usize,
    /// In how many cases each mode was computed and compared.
    modes: BTreeMap<String, usize>,
    features: BTreeMap<&'static str, usize>,
}

#[derive(Default)]
struct Checker {
    quantities: Vec<(&'static str, Vec<Obs>)>,
    errors: Vec<String>,
    /// Central differences given up: the function was not finite a step away, or the
    /// differences had not converged.
    given_up: usize,
}

impl Checker {
    fn push(&mut self, q: &'static str, o: Obs) {
        match self.quantities.iter_mut().find(|(n, _)| *n == q) {
            Some((_, obs)) => obs.push(o),
            None => self.quantities.push((q, vec![o])),
        }
    }

    /// A value computed by automatic differentiation, to agree with the others to rounding.
    fn ad(&mut self, q: &'static str, mode: &str, r: Result<Vec<f64>, String>) {
        match r {
            Ok(data) => self
                .push(q, Obs { mode: mode.into(), kind: Kind::Ad, data, alt: None, rtol: 1e-9, atol: 1e-11 }),
            Err(e) => self.errors.push(format!("{mode} ({q}) failed: {e}")),
        }
    }

    fn differences(
        &mut self,
        q: &'static str,
        mode: &str,
        r: Result<Option<Differences>, String>,
        rtol: f64,
        atol: f64,
    ) {
        match r {
            // Where the step and half the step give estimates more than 1% apart the differences
            // have not converged (seed 9224: a chain of `relu(z) ^ -1.5` and `1 / relu(z)` with
            // H·v near 1e15 against J·v near 1e7), and they say nothing about the derivative.
            Ok(Some((data, alt))) if distance(&data, &alt) > 1e-2 * norm(&data).max(norm(&alt)) => {
                self.given_up += 1
            }
            Ok(Some((data, alt))) => self.push(
                q,
                Obs { mode: mode.into(), kind: Kind::Differences, data, alt: Some(alt), rtol, atol },
            ),
            Ok(None) => self.given_up += 1,
            Err(e) => self.errors.push(format!("{mode} ({q}) failed: {e}")),
        }
    }

    fn expected(&mut self, q: &'static str, data: Vec<f64>) {
        self.push(
            q,
            Obs { mode: "expected".into(), kind: Kind::Expected, data, alt: None, rtol: 1e-12, atol: 1e-14 },
        );
    }

    /// Compares every value of each quantity with a reference (the expected value, or else the
    /// first AD value) and checks that AD values are finite; counts the modes compared.
    fn verdict(self, stats: &mut Stats, finite: bool) -> Vec<String> {
        let mut msgs = self.errors;
        let mut compared = std::collections::BTreeSet::new();
        // Rounding in a derivative is relative to the magnitudes its computation went through,
        // not to the result, which can cancel to nearly nothing (vᵀHv exactly 0 one way and
        // -1e-11 the other, seed 23380, where a nested `hvp` of a steep function is 0 in exact
        // arithmetic; entries of 3e-4 agreeing to 8 digits where softmax was within 1e-8 of 1,
        // seed 20244). The largest value among the quantities of the same order stands in for
        // those magnitudes, and 1e-9 for the ones no quantity shows. A wrong derivative is off
        // by far more than that.
        let order = |q: &str| u8::from(q.contains('H'));
        let mut magnitude = [0.0f64; 2];
        for (q, obs) in &self.quantities {
            for o in obs.iter().filter(|o| o.kind == Kind::Ad) {
                let m = o.data.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
                magnitude[usize::from(order(q))] = magnitude[usize::from(order(q))].max(m);
            }
        }
        for (q, obs) in &self.quantities {
            let floor = 1e-9 + 1e-10 * magnitude[usize::from(order(q))];
            let reference = obs
                .iter()
                .position(|o| o.kind == Kind::Expected)
                .or_else(|| obs.iter().position(|o| o.kind == Kind::Ad));
            let Some(ri) = reference else { continue };
            let r = &obs[ri];
            let mut bad = Vec::new();
            for (i, o) in obs.iter().enumerate() {
                if obs.len() > 1 && o.kind != Kind::Expected {
                    compared.insert(o.mode.clone());
                }
                if i == ri {
                    continue;
                }
                let (rtol, mut atol) = (o.rtol.max(r.rtol), o.atol.max(r.atol).max(floor));
                if let Some(alt) = &o.alt {
                    // Near a steep singularity (`z ^ -1.5` at z = 0.03) central differences are
                    // poor (seeds 1021 and 2026 were off by 0.3% and 1.5%, which 50-digit
                    // differentiation with mpmath confirmed); how far the plain and extrapolated
                    // estimates are apart is an estimate of their error. For a smooth function
                    // they agree closely, and a wrong derivative still stands out.
                    atol += 2.0 * distance(&o.data, alt);
                }
                let ok = agree(&r.data, &o.data, rtol, atol)
                    || o.alt.as_ref().is_some_and(|alt| agree(&r.data, alt, rtol, atol));
                if !ok {
                    bad.push(i);
                }
            }
            let infinite: Vec<usize> = (0..obs.len())
                .filter(|&i| finite && obs[i].kind == Kind::Ad && obs[i].data.iter().any(|v| !v.is_finite()))
                .collect();
            if !bad.is_empty() || !infinite.is_empty() {
                let mut m = if bad.is_empty() {
                    format!("{q}: a derivative is not finite\n")
                } else {
                    format!("{q}: modes disagree (reference: {})\n", r.mode)
                };
                for (i, o) in obs.iter().enumerate() {
                    let mark = if bad.contains(&i) { "✗" } else { " " };
                    writeln!(m, "  {mark} {:<28} {}", o.mode, show(&o.data)).unwrap();
                    if let Some(alt) = &o.alt {
                        writeln!(m, "    {:<28} {}", "(extrapolated)", show(alt)).unwrap();
                    }
                }
                msgs.push(m);
            }
        }
        for mode in compared {
            *stats.modes.entry(mode).or_default() += 1;
        }
        stats.given_up += self.given_up;
        msgs
    }
}

/// Runs `p`, interpreted and compiled (which must agree bit for bit).
fn run(s: &Session, p: &Program, inputs: Vec<Array>) -> Result<Vec<Array>, String> {
    run_both_ways(s, p, inputs).ok_or_else(|| format!("`{}` could not run", p.name))
}

/// Runs `f` (a block of `?`s) for its result.
fn attempt<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    f()
}

fn der(p: &Program, mode: Mode, wrt: Vec<usize>) -> Result<Program, String> {
    ad_autodiff::derive(p, &Request { mode, wrt })
}

fn flat(xs: &[Array]) -> Vec<f64> {
    xs.iter().flat_map(|a| a.data().iter().copied()).collect()
}

fn cat(a: &[Array], b: &[Array]) -> Vec<Array> {
    a.iter().chain(b).cloned().collect()
}

fn basis_like(a: &Array, k: usize) -> Array {
    let mut d = vec![0.0; a.data().len()];
    d[k] = 1.0;
    Array::new(a.shape(), d)
}

fn zeros_like(a: &Array) -> Array {
    Array::full(a.shape(), 0.0)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

fn random_like(a: &Array, r: &mut R) -> Array {
    Array::new(a.shape(), a.data().iter().map(|_| r.normal()).collect())
}

/// `p` with only output `k`, for differentiating one result of a derived program.
fn only_output(p: &Program, k: usize) -> Program {
    let mut q = p.clone();
    q.outputs = vec![p.outputs[k]];
    q.out_tree = Tree::Leaf;
    q
}

/// Central differences, and their Richardson extrapolation.
type Differences = (Vec<f64>, Vec<f64>);

/// Central differences of `p`'s outputs along `v` (step `STEP`), and their Richardson
/// extrapolation from steps STEP and STEP/2 (smaller steps, since the larger ones would come
/// closer to a condition's boundary or a singularity). `None` if the function is not finite a
/// step away: the step crossed a condition's boundary after all (where the slope is in the
/// tens of thousands, near `z ^ -1.5` at z = 0.02), so the differences say nothing.
fn differences(s: &Session, p: &Program, x: &[Array], v: &[Array]) -> Result<Option<Differences>, String> {
    let at = |h: f64| -> Result<Vec<f64>, String> {
        let moved: Vec<Array> = x
            .iter()
            .zip(v)
            .map(|(a, d)| {
                Array::new(a.shape(), a.data().iter().zip(d.data()).map(|(p, q)| p + h * q).collect())
            })
            .collect();
        Ok(flat(&run(s, p, moved)?))
    };
    let d = |h: f64| -> Result<Vec<f64>, String> {
        let (hi, lo) = (at(h)?, at(-h)?);
        Ok(hi.iter().zip(&lo).map(|(p, q)| (p - q) / (2.0 * h)).collect())
    };
    let (plain, half) = (d(STEP)?, d(STEP / 2.0)?);
    if plain.iter().chain(&half).any(|v| !v.is_finite()) {
        return Ok(None);
    }
    Ok(Some((plain.clone(), half.iter().zip(&plain).map(|(a, b)| (4.0 * a - b) / 3.0).collect())))
}

/// Checks one case in every mode; returns the failures, each with the script that reproduces it.
fn check_case(spec: &Spec, stats: &mut Stats) -> Vec<String> {
    let mut repro = String::new();
    let result = catch_unwind(AssertUnwindSafe(|| check_modes(spec, stats, &mut repro)));
    let msgs = match result {
        Ok(m) => m,
        Err(e) => {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            vec![format!("panic: {what}")]
        }
    };
    if repro.is_empty() {
        repro = spec.defs.clone();
    }
    msgs.into_iter()
        .map(|m| {
            format!("{} ({}):\n{m}--- to reproduce, `ad run` this:\n{repro}", spec.label, describe(spec.feat))
        })
        .collect()
}

fn describe(feat: u32) -> String {
    let names: Vec<&str> = [(POISON, "poison"), (STRETCHED, "stretched"), (KINK, "kink"), (NESTED, "nested")]
        .iter()
        .filter(|(b, _)| feat & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "smooth".into()
    } else {
        names.join(", ")
    }
}

fn check_modes(spec: &Spec, stats: &mut Stats, repro: &mut String) -> Vec<String> {
    let mut ck = Checker::default();
    let mut s = Session::new(Box::new(SharedBuf::default()));
    let render = |s: &Session, e: &[ad_syntax::Diagnostic]| ad_syntax::render(&s.sources, e, false);
    if let Err(e) = s.run_source("case.ad", &spec.defs) {
        return vec![format!("the definitions do not load:\n{}", render(&s, &e))];
    }
    let (fp, gp) = match (lower_named(&mut s, "f", &[]), lower_named(&mut s, "g", &[])) {
        (Ok(f), Ok(g)) => (f.program, g.program),
        (Err(e), _) | (_, Err(e)) => return vec![format!("lowering failed:\n{}", render(&s, &[e]))],
    };
    let x = spec.args.clone();
    let np = x.len();
    let mut r = R::new(spec.seed ^ 0xd1ff);
    let v: Vec<Array> = x.iter().map(|a| random_like(a, &mut r)).collect();
    let vx = v[0].clone();
    // Only x moves for the derivatives of g, which are taken with respect to x.
    let vx_only: Vec<Array> =
        x.iter().enumerate().map(|(i, a)| if i == 0 { vx.clone() } else { zeros_like(a) }).collect();
    let fx = match run(&s, &fp, x.clone()) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    let u = random_like(&fx[0], &mut r);
    let (n_out, nx) = (fx[0].data().len(), x[0].data().len());
    let smooth = spec.feat & KINK == 0;
    let scale = |d: &[f64]| 1.0 + d.iter().fold(0.0f64, |m, v| m.max(v.abs()));

    // The point and the source-level calls, as a script.
    let names = ["x0", "y0"];
    let dir_names = ["vx0", "vy0"];
    *repro = spec.defs.clone();
    for i in 0..np {
        writeln!(repro, "let {} = {}\nlet {} = {}", names[i], lit(&x[i]), dir_names[i], lit(&v[i])).unwrap();
    }
    writeln!(repro, "let u0 = {}", lit(&u)).unwrap();
    let point = repro[spec.defs.len()..].to_string();
    if let Err(e) = s.run_source("point.ad", &point) {
        return vec![format!("the point does not load:\n{}", render(&s, &e))];
    }

    let all: Vec<usize> = (0..np).collect();
    let value = flat(&fx);
    ck.ad("f(x)", "f", Ok(value.clone()));
    if !spec.evaluated.is_empty() {
        // The interpreter's eager evaluation at the top level, against the compiled program.
        ck.ad("f(x)", "top-level evaluation", Ok(spec.evaluated.clone()));
    }

    // ---- First order, f with respect to every parameter.
    let jvp_f = der(&fp, Mode::Jvp, all.clone());
    let v_flat = flat(&v);
    ck.ad("f(x)", "jvp primal", attempt(|| Ok(flat(&run(&s, jvp_f.as_ref()?, cat(&x, &v))?[..1]))));
    ck.ad("J·v", "jvp", attempt(|| Ok(run(&s, jvp_f.as_ref()?, cat(&x, &v))?[1].data().to_vec())));
    ck.ad(
        "J·v",
        "jvp2",
        attempt(|| Ok(run(&s, &der(&fp, Mode::Jvp2, all.clone())?, cat(&x, &v))?[1].data().to_vec())),
    );
    // Columns of the Jacobian by forward mode, one basis direction at a time, with a JVP with
    // respect to one parameter only: the other parameters' tangents are then symbolic zeros,
    // as in reverse mode. (A numeric zero tangent through `sqrt'(0)` is NaN, where a symbolic
    // one contributes nothing, in JAX too.)
    let cols = attempt(|| {
        let mut cols = Vec::new();
        for (i, a) in x.iter().enumerate() {
            let p = der(&fp, Mode::Jvp, vec![i])?;
            for k in 0..a.data().len() {
                cols.push(run(&s, &p, cat(&x, &[basis_like(a, k)]))?[1].data().to_vec());
            }
        }
        Ok(cols)
    });
    ck.ad(
        "J·v",
        "jvp basis",
        attempt(|| {
            let cols = cols.as_ref()?;
            Ok((0..n_out).map(|o| cols.iter().zip(&v_flat).map(|(c, w)| c[o] * w).sum()).collect())
        }),
    );
    ck.ad("uᵀJ", "jvp basis", attempt(|| Ok(cols.as_ref()?.iter().map(|c| dot(c, u.data())).collect())));
    ck.ad(
        "J_x",
        "jvp basis",
        attempt(|| {
            let cols = cols.as_ref()?;
            Ok((0..n_out).flat_map(|o| (0..nx).map(move |k| cols[k][o])).collect())
        }),
    );
    // Rows of the Jacobian by reverse mode, one basis cotangent at a time.
    let vjp_f = der(&fp, Mode::Vjp, all.clone());
    ck.ad(
        "f(x)",
        "vjp primal",
        attempt(|| Ok(flat(&run(&s, vjp_f.as_ref()?, cat(&x, std::slice::from_ref(&u)))?[..1]))),
    );
    ck.ad(
        "uᵀJ",
        "vjp",
        attempt(|| Ok(flat(&run(&s, vjp_f.as_ref()?, cat(&x, std::slice::from_ref(&u)))?[1..]))),
    );
    let rows: Result<Vec<Vec<f64>>, String> = attempt(|| {
        let p = vjp_f.as_ref()?;
        (0..n_out).map(|o| Ok(flat(&run(&s, p, cat(&x, &[basis_like(&fx[0], o)]))?[1..]))).collect()
    });
    ck.ad("J·v", "vjp basis", attempt(|| Ok(rows.as_ref()?.iter().map(|row| dot(row, &v_flat)).collect())));
    ck.ad(
        "J_x",
        "vjp basis",
        attempt(|| Ok(rows.as_ref()?.iter().flat_map(|row| row[..nx].to_vec()).collect())),
    );
    for (jm, name) in
        [(JacMode::Forward, "jacfwd"), (JacMode::Reverse, "jacrev"), (JacMode::Auto, "jacobian")]
    {
        ck.ad(
            "J_x",
            name,
            attempt(|| Ok(flat(&run(&s, &der(&fp, Mode::Jacobian(jm), vec![0])?, x.clone())?))),
        );
    }
    if smooth {
        let sc = scale(&value);
        ck.differences("J·v", "central differences", differences(&s, &fp, &x, &v), 1e-6, 1e-7 * sc);
    }

    // ---- Second order, g with respect to x.
    let grad_g = der(&gp, Mode::Grad { with_value: false }, vec![0]);
    let gval = run(&s, &gp, x.clone()).map(|o| flat(&o)).unwrap_or_default();
    let grad = attempt(|| Ok(flat(&run(&s, grad_g.as_ref()?, x.clone())?)));
    ck.ad("∇g", "grad", grad.clone());
    ck.ad(
        "∇g",
        "value_and_grad",
        attempt(|| {
            Ok(run(&s, &der(&gp, Mode::Grad { with_value: true }, vec![0])?, x.clone())?[1].data().to_vec())
        }),
    );
    ck.ad(
        "∇g",
        "vjp of g",
        attempt(|| {
            Ok(run(&s, &der(&gp, Mode::Vjp, vec![0])?, cat(&x, &[Array::scalar(1.0)]))?[1].data().to_vec())
        }),
    );
    let jvp_g = der(&gp, Mode::Jvp, vec![0]);
    ck.ad(
        "∇g",
        "jvp basis of g",
        attempt(|| {
            let p = jvp_g.as_ref()?;
            (0..nx).map(|k| Ok(run(&s, p, cat(&x, &[basis_like(&x[0], k)]))?[1].data()[0])).collect()
        }),
    );
    ck.ad("∇g·v", "grad·v", attempt(|| Ok(vec![dot(grad.as_ref()?, vx.data())])));
    if smooth {
        let sc = scale(&gval);
        ck.differences(
            "∇g·v",
            "central differences of g",
            differences(&s, &gp, &x, &vx_only),
            1e-6,
            1e-7 * sc,
        );
    }
    let hessian = attempt(|| Ok(flat(&run(&s, &der(&gp, Mode::Hessian, vec![0])?, x.clone())?)));
    ck.ad("H", "hessian", hessian.clone());
    for (jm, name) in [
        (JacMode::Forward, "jacfwd(grad)"),
        (JacMode::Reverse, "jacrev(grad)"),
        (JacMode::Auto, "jacobian(grad)"),
    ] {
        ck.ad(
            "H",
            name,
            attempt(|| Ok(flat(&run(&s, &der(grad_g.as_ref()?, Mode::Jacobian(jm), vec![0])?, x.clone())?))),
        );
    }
    let hvp_p = der(&gp, Mode::Hvp, vec![0]);
    ck.ad(
        "H",
        "hvp basis",
        attempt(|| {
            let p = hvp_p.as_ref()?;
            let cols: Vec<Vec<f64>> = (0..nx)
                .map(|k| Ok(flat(&run(&s, p, cat(&x, &[basis_like(&x[0], k)]))?)))
                .collect::<Result<_, String>>()?;
            Ok((0..nx).flat_map(|i| cols.iter().map(move |c| c[i])).collect())
        }),
    );
    if x[0].shape().rank() == 0 {
        ck.ad(
            "H",
            "grad of grad",
            attempt(|| {
                Ok(flat(&run(
                    &s,
                    &der(grad_g.as_ref()?, Mode::Grad { with_value: false }, vec![0])?,
                    x.clone(),
                )?))
            }),
        );
    }
    let hv = attempt(|| Ok(flat(&run(&s, hvp_p.as_ref()?, cat(&x, std::slice::from_ref(&vx)))?)));
    ck.ad("H·v", "hvp (fwd over rev)", hv.clone());
    ck.ad(
        "H·v",
        "hvp (rev over fwd)",
        attempt(|| {
            let jv = only_output(jvp_g.as_ref()?, 1);
            let p = der(&jv, Mode::Grad { with_value: false }, vec![0])?;
            Ok(flat(&run(&s, &p, cat(&x, std::slice::from_ref(&vx)))?))
        }),
    );
    ck.ad(
        "H·v",
        "hvp (rev over rev)",
        attempt(|| {
            let p = der(grad_g.as_ref()?, Mode::Vjp, vec![0])?;
            Ok(run(&s, &p, cat(&x, std::slice::from_ref(&vx)))?[1].data().to_vec())
        }),
    );
    ck.ad(
        "H·v",
        "hessian·v",
        attempt(|| {
            let h = hessian.as_ref()?;
            Ok(h.chunks(nx).map(|row| dot(row, vx.data())).collect())
        }),
    );
    if smooth {
        let sc = scale(grad.as_ref().map(|g| g.as_slice()).unwrap_or(&[]));
        let fd = attempt(|| differences(&s, grad_g.as_ref()?, &x, &vx_only));
        ck.differences("H·v", "differences of gradients", fd, 1e-5, 1e-6 * sc);
    }
    ck.ad(
        "vᵀHv",
        "jvp of jvp (fwd over fwd)",
        attempt(|| {
            let p = der(jvp_g.as_ref()?, Mode::Jvp, vec![0])?;
            Ok(run(&s, &p, cat(&x, &[vx.clone(), vx.clone()]))?[3].data().to_vec())
        }),
    );
    ck.ad("vᵀHv", "v·hvp", attempt(|| Ok(vec![dot(vx.data(), hv.as_ref()?)])));

    // ---- The same through the language: transforms called from source.
    let args = names[..np].join(", ");
    let (prim, tan) = if np == 1 {
        ("x0".into(), "vx0".into())
    } else {
        ("(x0, y0)".to_string(), "(vx0, vy0)".to_string())
    };
    let (g_of_x, grad_at_z) = if np == 1 {
        ("g".to_string(), "grad(g)(z)".to_string())
    } else {
        ("z => g(z, y0)".into(), "grad(g)(z, y0)".into())
    };
    // Which leaves of the result to compare: all of them, or those from a position on.
    let mut calls: Vec<(&'static str, &'static str, String, usize, Option<usize>)> = vec![
        ("J·v", "source jvp", format!("jvp(f, {prim}, {tan})"), 1, Some(2)),
        ("uᵀJ", "source vjp", format!("vjp(f, {prim}, u0)"), 1, None),
        ("J_x", "source jacfwd", format!("jacfwd(f)({args})"), 0, None),
        ("J_x", "source jacrev", format!("jacrev(f)({args})"), 0, None),
        ("J_x", "source jacobian", format!("jacobian(f)({args})"), 0, None),
        ("∇g", "source grad", format!("grad(g)({args})"), 0, None),
        ("H·v", "source hvp", format!("hvp({g_of_x}, x0, vx0)"), 0, None),
        ("H·v", "source grad(grad·v)", format!("grad(z => sum({grad_at_z} * vx0))(x0)"), 0, None),
        ("H", "source hessian", format!("hessian(g)({args})"), 0, None),
        ("H", "source jacfwd(grad)", format!("jacfwd(grad(g))({args})"), 0, None),
        ("H", "source jacrev(grad)", format!("jacrev(grad(g))({args})"), 0, None),
        ("H", "source jacobian(grad)", format!("jacobian(grad(g))({args})"), 0, None),
    ];
    if x[0].shape().rank() == 0 {
        calls.push(("H", "source grad(grad)", format!("grad(grad(g))({args})"), 0, None));
    }
    for (i, (q, mode, call, from, to)) in calls.into_iter().enumerate() {
        writeln!(repro, "print({call})").unwrap();
        let name = format!("r{i}");
        let got = match s.run_source("source.ad", &format!("let {name} = {call}\n")) {
            Err(e) => Err(format!("`{call}`:\n{}", render(&s, &e))),
            Ok(()) => {
                let mut out = Vec::new();
                match s.global_value(&name) {
                    Some(v) if leaves(v, &mut out) => {
                        let to = to.unwrap_or(out.len()).min(out.len());
                        Ok(flat(&out[from.min(to)..to]))
                    }
                    _ => Err(format!("`{call}` gave no array")),
                }
            }
        };
        ck.ad(q, mode, got);
    }

    for (q, data) in &spec.expected {
        ck.expected(q, data.clone());
    }
    stats.cases += 1;
    stats.smooth += usize::from(smooth);
    ck.verdict(stats, spec.finite)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn print_stats(title: &str, stats: &Stats, elapsed: std::time::Duration) {
    let mut out = format!(
        "\n{title}: {} cases ({} smooth enough for central differences) in {:.1} s\n",
        stats.cases,
        stats.smooth,
        elapsed.as_secs_f64()
    );
    if stats.given_up > 0 {
        let why = "the function not finite a step away, or the differences not converged";
        writeln!(out, "central differences given up {} times ({why})", stats.given_up).unwrap();
    }
    out.push_str("cases per mode:\n");
    for (mode, n) in &stats.modes {
        writeln!(out, "  {mode:<30} {n}").unwrap();
    }
    if !stats.features.is_empty() {
        out.push_str("cases per feature:\n");
        for (name, n) in &stats.features {
            writeln!(out, "  {name:<78} {n}").unwrap();
        }
    }
    println!("{out}");
}

fn seeds() -> Vec<u64> {
    match env_u64("AD_DIFF_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env_u64("AD_DIFF_FIRST").unwrap_or(0);
            (first..first + env_u64("AD_DIFF_CASES").unwrap_or(DEFAULT_CASES)).collect()
        }
    }
}

fn report(failures: &[String], cases: usize) {
    if !failures.is_empty() {
        let n = env_u64("AD_DIFF_SHOW").unwrap_or(5) as usize;
        let shown: Vec<&str> = failures.iter().take(n).map(|s| s.as_str()).collect();
        panic!("{} failures in {cases} cases; the first ones:\n\n{}", failures.len(), shown.join("\n\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn random_programs_agree_across_modes() {
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    let compiled_before = ad_eval::compiled_plans();
    for seed in seeds() {
        let spec = match catch_unwind(|| generate(seed)) {
            Ok(spec) => spec,
            Err(_) => {
                failures.push(format!("seed {seed}: the generator panicked"));
                continue;
            }
        };
        if std::env::var_os("AD_DIFF_VERBOSE").is_some() {
            println!("{} ({}):\n{}", spec.label, describe(spec.feat), spec.defs);
        }
        for (bit, name) in FEATURES {
            if spec.feat & bit != 0 {
                *stats.features.entry(name).or_default() += 1;
            }
        }
        failures.extend(check_case(&spec, &mut stats));
    }
    print_stats("random programs", &stats, start.elapsed());
    report(&failures, stats.cases);
    // Every program also ran compiled (`run`): the comparison is void unless it did.
    assert!(ad_eval::compiled_plans() > compiled_before, "no program was compiled");
}

/// The generator produces the two shapes of program that found real bugs: a `where` whose
/// unselected, x-dependent branch is NaN or infinite at the point (differentiated twice by
/// every second-order mode, since `g` is a function of `f`), and a `where` whose x-dependent
/// branch is smaller than the condition or the other branch.
#[test]
fn generator_emits_the_shapes_of_known_bugs() {
    let (mut poison, mut stretched) = (None, None);
    for seed in 0..DEFAULT_CASES {
        let spec = generate(seed);
        if std::env::var_os("AD_DIFF_VERBOSE").is_some() {
            println!("{}:\n{}", spec.label, spec.defs);
        }
        if spec.feat & POISON != 0 && poison.is_none() {
            poison = Some(spec);
        } else if spec.feat & STRETCHED != 0 && stretched.is_none() {
            stretched = Some(spec);
        }
        if poison.is_some() && stretched.is_some() {
            break;
        }
    }
    let poison = poison.expect("no program with a NaN-producing unselected branch");
    let stretched = stretched.expect("no program with a stretched where branch");
    println!("{}:\n{}\n{}:\n{}", poison.label, poison.defs, stretched.label, stretched.defs);
    assert!(poison.defs.contains("where(") && stretched.defs.contains("where("));
}

/// A fixed case: `f` (and `g = f`) of one or two scalar parameters at `args`, with values every
/// mode must give.
fn fixed(label: &str, def: &str, args: &[f64], expected: Vec<(&'static str, Vec<f64>)>) -> Spec {
    let params: Vec<&str> = ["x", "y"][..args.len()].to_vec();
    let sig: Vec<String> = params.iter().map(|p| format!("{p}: []")).collect();
    let defs =
        format!("def f({}) = {def}\ndef g({}) = f({})\n", sig.join(", "), sig.join(", "), params.join(", "));
    Spec {
        label: label.into(),
        seed: 1,
        defs,
        args: args.iter().map(|a| Array::scalar(*a)).collect(),
        feat: 0,
        evaluated: vec![],
        finite: true,
        expected,
    }
}

fn check_fixed(cases: Vec<Spec>) {
    let start = Instant::now();
    let mut stats = Stats::default();
    let failures: Vec<String> = cases.iter().flat_map(|c| check_case(c, &mut stats)).collect();
    print_stats("fixed cases", &stats, start.elapsed());
    report(&failures, stats.cases);
}

/// Second order through a NaN-safe `where` (the unselected branch is NaN at the point): this
/// gave `nan` for `grad(grad(f))` before the strong zeros were made symmetric.
#[test]
fn regression_second_order_through_nan_safe_where() {
    check_fixed(vec![
        fixed(
            "sqrt on both sides",
            "where(x >= 0, sqrt(x), sqrt(-x))",
            &[-2.0],
            vec![
                ("f(x)", vec![2f64.sqrt()]),
                ("∇g", vec![-1.0 / (2.0 * 2f64.sqrt())]),
                ("H", vec![-0.0883883476483184]),
            ],
        ),
        fixed(
            "sqrt against a constant",
            "where(x > 0, sqrt(x), 0)",
            &[-1.0],
            vec![("f(x)", vec![0.0]), ("∇g", vec![0.0]), ("H", vec![0.0])],
        ),
        fixed(
            "power with a differentiated exponent",
            "where(x >= 0, x ^ y, (-x) ^ y)",
            &[-2.0, -1.5],
            vec![("H", vec![0.331456303681194])],
        ),
    ]);
}

/// `where` whose differentiated operand is stretched by the condition or the other branch:
/// the cotangent must be summed back to the operand's shape (it was not, and grad(g)(5) was 2).
#[test]
fn regression_where_with_a_stretched_operand() {
    check_fixed(vec![
        fixed(
            "stretched by the condition and zeros",
            "sum(where([[1], [1]], x, zeros((2, 3))))",
            &[5.0],
            vec![("f(x)", vec![30.0]), ("∇g", vec![6.0]), ("H", vec![0.0])],
        ),
        fixed(
            "stretched by the other branch",
            "sum(where(x < 0, [1, 2, 3], x))",
            &[2.0],
            vec![("∇g", vec![3.0]), ("H", vec![0.0])],
        ),
        fixed(
            "stretched, second order",
            "sum(where(0, [1, 2, 3], x ^ 2))",
            &[2.0],
            vec![("∇g", vec![12.0]), ("H", vec![6.0])],
        ),
        fixed(
            "stretched, then indexed",
            "where(0, [1, 2], x)[0]",
            &[2.0],
            vec![("f(x)", vec![2.0]), ("J_x", vec![1.0]), ("∇g", vec![1.0])],
        ),
    ]);
}

/// The calls of the two bug reports, exactly as written there.
#[test]
fn regression_calls_print_the_true_values() {
    let script = "\
def f(a) = where(a >= 0, sqrt(a), sqrt(-a))
print(grad(grad(f))(-2))
print(grad(grad(x => where(x > 0, sqrt(x), 0)))(-1))
def g(a, b) = where(a >= 0, a ^ b, (-a) ^ b)
print(grad(grad(g))(-2, -1.5))
def h(s) = sum(where([[1], [1]], s, zeros((2, 3))))
print(grad(h)(5))
print(grad(x => sum(where(x < 0, [1, 2, 3], x)))(2.0))
print(hessian(x => sum(where(0, [1, 2, 3], x ^ 2)))(2.0))
print(jvp(x => where(0, [1, 2], x)[0], 2.0, 1.0))
";
    let buf = SharedBuf::default();
    let mut s = Session::new(Box::new(buf.clone()));
    s.precision = 15;
    s.run_source("bugs.ad", script)
        .unwrap_or_else(|e| panic!("{}", ad_syntax::render(&s.sources, &e, false)));
    assert_eq!(buf.take(), "-0.0883883476483184\n0\n0.331456303681194\n6\n3\n6\n(2, 1)\n");
}

// ---------------------------------------------------------------------------------------------
// Findings of these tests (differential_findings.md), fixed since.

/// Finding 1: a Jacobian planned by vertex elimination counted a value used by several operands
/// of one structured step once per use in each use's factor: `[t, t]` gave twice the Jacobian,
/// and so did `concat(r, r)` and a broadcasting `where(m, t, t)`.
#[test]
fn regression_jacobian_by_elimination_of_a_repeated_operand() {
    let spec = |label: &str, body: &str, expected: Vec<f64>| Spec {
        label: label.into(),
        seed: 1,
        defs: format!(
            "def f(x: [3]) {{\n  let t = sum(x * x * x)\n{body}\n}}\ndef g(x: [3]) = sum(sin(f(x)))\n"
        ),
        args: vec![Array::new(ad_ir::Shape::vector(3), vec![1.0, 2.0, 3.0])],
        feat: 0,
        evaluated: vec![],
        finite: true,
        expected: vec![("J_x", expected)],
    };
    // The true Jacobians (by hand, and JAX's jacfwd and jacrev): ∂t/∂x = 3x² = [3, 12, 27],
    // and t = 36.
    let row = [3.0, 12.0, 27.0];
    let twice: Vec<f64> = [row, row].concat();
    let scaled: Vec<f64> = row.iter().map(|d| 2.0 * 36.0 * d).collect();
    check_fixed(vec![
        spec("[t, t]", "  [t, t]", twice),
        spec("[t, t, t]", "  [t, t, t]", [row, row, row].concat()),
        spec(
            "concat(r, r)",
            "  let r = reshape(t, 1)\n  let v = concat(r, r)\n  v * v",
            [&scaled[..], &scaled].concat(),
        ),
        spec(
            "where(m, t, t)",
            "  let v = where([1, 0, 1], t, t)\n  v * v",
            [&scaled[..], &scaled, &scaled].concat(),
        ),
    ]);
}

/// Finding 2: where `sqrt` met a value that is identically zero, forward and reverse mode
/// disagreed on NaN (`jvp` gave NaN, `vjp` 0: `0 * a` was folded to 0 for an unknown `a` but
/// `0 * inf` to NaN). All modes now give NaN, as JAX does; the function is constant, so
/// central differences do not apply, but the modes must agree.
#[test]
fn regression_modes_agree_on_nan_at_sqrt_of_zero() {
    let spec = |label: &str, def: &str| Spec {
        label: label.into(),
        seed: 1,
        defs: format!("def f(x: []) = {def}\ndef g(x: []) = f(x)\n"),
        args: vec![Array::scalar(1.0)],
        // Central differences see a constant function; only the modes are compared.
        feat: KINK,
        evaluated: vec![],
        finite: false,
        expected: vec![],
    };
    check_fixed(vec![
        spec("sqrt(0 * x)", "sqrt(0 * x)"),
        spec("sqrt(x - x)", "sqrt(x - x)"),
        spec("norm of a zero vector", "norm(zeros((3, 2)) @ [x, 2 * x])"),
    ]);
}
