//! Jacobians in the cheapest order.
//!
//! A Jacobian is a product of local Jacobians. Forward mode multiplies them from the input
//! side (one JVP per input element), reverse mode from the output side (one VJP per output
//! element), and when the linearized program is a chain, any bracketing is allowed:
//! choosing the cheapest is the matrix-chain problem, solved here by dynamic programming
//! with a cost model that knows dense, diagonal and scalar factors (elementwise steps stay
//! diagonal: a `tanh` of an n-vector is n numbers, never an n×n matrix). Programs that are
//! not chains (a value used twice, residual connections) get forward or reverse mode,
//! whichever the model says is cheaper; optimal accumulation on general graphs is
//! NP-complete (Naumann 2008).
//!
//! Forward and reverse mode run *batched* where every linear value is a vector or a scalar
//! (see `batch.rs`): all directions in one pass, as a matrix.

use crate::batch::batch_linear;
use crate::cost::eqns_madds;
use crate::derive::needs_nan_safety;
use crate::emitter::Emitter;
use crate::simplify::simplify;
use crate::transpose::{linearize, transpose, Linearized};
use ad_ir::prim::{Binary, Prim, Unary, F64};
use ad_ir::transform::{jacobian_shape, JacMode};
use ad_ir::{Atom, Eqn, Program, Shape, Tree, Var};
use ad_syntax::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dense,
    Diagonal,
    Scalar,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dense => "dense",
            Kind::Diagonal => "diagonal",
            Kind::Scalar => "scalar",
        }
    }
}

/// How a factor's matrix is made from the program's values.
#[derive(Clone, Debug)]
enum Source {
    /// A matrix operand, transposed or not.
    Matrix(Atom, bool),
    /// A vector operand as a row `[1, n]` or a column `[n, 1]`.
    Row(Atom),
    Col(Atom),
    /// A diagonal: the coefficient vector, its reciprocal, or a `where` mask.
    Diag(Atom),
    Recip(Atom),
    Mask(Atom, bool),
    Scalar(Atom),
    /// Any other linear step (sum, broadcast, slice, pad, ...): materialised by applying it
    /// to the identity.
    Structured(usize),
}

/// One local Jacobian of a chain: it maps `cols` numbers to `rows` numbers.
#[derive(Clone, Debug)]
pub struct Factor {
    pub kind: Kind,
    pub rows: usize,
    pub cols: usize,
    /// The primitive it comes from, e.g. `matmul`, `mul`.
    pub label: String,
    pub span: Span,
    source: Source,
    /// Scaling uses strong zeros (the derivative is NaN-safe).
    safe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Forward,
    Reverse,
    Chain,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub in_shape: Shape,
    pub out_shape: Shape,
    /// The local Jacobians, input side first, when the linear part is a chain.
    pub factors: Option<Vec<Factor>>,
    /// Multiply-adds of the function and the coefficients of its derivative.
    pub primal: f64,
    /// Multiply-adds of one JVP's (and, transposed, one VJP's) linear part.
    pub per_pass: f64,
    pub forward: f64,
    pub reverse: f64,
    /// The cheapest bracketing and its cost (function included), for chains.
    pub chain: Option<(f64, String)>,
    /// Forward and reverse can push all directions through at once.
    pub batched: bool,
    pub choice: Choice,
}

impl Plan {
    pub fn cost(&self, c: Choice) -> f64 {
        match c {
            Choice::Forward => self.forward,
            Choice::Reverse => self.reverse,
            Choice::Chain => self.chain.as_ref().map(|c| c.0).unwrap_or(f64::INFINITY),
        }
    }
}

/// The parameter and result a Jacobian differentiates: one array each.
fn check(p: &Program, param: usize) -> Result<usize, String> {
    let d = p.params.get(param).ok_or("`jacobian` needs an argument")?;
    if d.tree != Tree::Leaf {
        return Err(format!(
            "`jacobian` differentiates with respect to one array, but `{}` is a tuple",
            d.name
        ));
    }
    if !(p.out_tree == Tree::Leaf && p.outputs.len() == 1) {
        return Err(format!("`jacobian` needs a function returning one array; `{}` returns a tuple", p.name));
    }
    Ok(p.params[..param].iter().map(|d| d.tree.leaves()).sum())
}

fn linearized(p: &Program, leaf: usize) -> Linearized {
    linearize(p, &[leaf], needs_nan_safety(p, &[leaf]))
}

/// Plans the Jacobian of `p` with respect to parameter `param`.
pub fn plan(p: &Program, param: usize) -> Result<Plan, String> {
    let leaf = check(p, param)?;
    let l = linearized(p, leaf);
    Ok(plan_of(p, leaf, &l))
}

fn plan_of(p: &Program, leaf: usize, l: &Linearized) -> Plan {
    let em = &l.jvp.em;
    let shape = |a: Atom| em.shape(a);
    let in_shape = p.var_shape(p.inputs[leaf]);
    let out_shape = p.shape(p.outputs[0]);
    let (n_in, n_out) = (in_shape.size() as f64, out_shape.size() as f64);
    let primal = eqns_madds(&em.b.eqns, shape);
    let per_pass = eqns_madds(&l.linear, shape);
    let batched = in_shape.rank() <= 1
        && out_shape.rank() <= 1
        && l.linear.iter().all(|e| em.shape(Atom::Var(e.out)).rank() <= 1);
    let factors = chain(l);
    let chain = factors.as_ref().filter(|f| !f.is_empty()).map(|f| {
        let (cost, split) = bracket(f);
        (primal + cost, describe(&split, 0, f.len() - 1))
    });
    let forward = primal + n_in * per_pass;
    let reverse = primal + n_out * per_pass;
    let mut choice = if n_in <= n_out { Choice::Forward } else { Choice::Reverse };
    if forward < reverse {
        choice = Choice::Forward;
    } else if reverse < forward {
        choice = Choice::Reverse;
    }
    if let Some((c, _)) = &chain {
        if *c < forward.min(reverse) {
            choice = Choice::Chain;
        }
    }
    Plan {
        name: p.name.clone(),
        in_shape,
        out_shape,
        factors,
        primal,
        per_pass,
        forward,
        reverse,
        chain,
        batched,
        choice,
    }
}

/// The linear part as a chain of local Jacobians, if it is one: every linear value feeds
/// exactly one linear step, from the tangent input to the tangent output.
fn chain(l: &Linearized) -> Option<Vec<Factor>> {
    let em = &l.jvp.em;
    let input = *l.jvp.tangent_inputs.first()?;
    let output = l.jvp.tangents.first().copied().flatten()?.var()?;
    let mut uses = std::collections::HashMap::<Var, usize>::new();
    for e in &l.linear {
        for a in &e.args {
            if let Atom::Var(v) = a {
                if em.is_linear(*a) {
                    *uses.entry(*v).or_default() += 1;
                }
            }
        }
    }
    let mut cur = input;
    let mut factors = Vec::new();
    while cur != output {
        if uses.get(&cur).copied() != Some(1) {
            return None;
        }
        let (i, e) = l.linear.iter().enumerate().find(|(_, e)| e.args.contains(&Atom::Var(cur)))?;
        if e.args.iter().filter(|a| em.is_linear(**a)).count() != 1 {
            return None;
        }
        let (sin, sout) = (em.shape(Atom::Var(cur)), em.shape(Atom::Var(e.out)));
        if sin.rank() > 1 || sout.rank() > 1 {
            return None;
        }
        if let Some(f) = factor(em, e, i, cur, sin, sout) {
            factors.push(f);
        }
        cur = e.out;
    }
    Some(factors)
}

/// The local Jacobian of one linear step (`None` for a step that changes nothing).
fn factor(em: &Emitter, e: &Eqn, index: usize, t: Var, sin: Shape, sout: Shape) -> Option<Factor> {
    let (n, m) = (sin.size(), sout.size());
    let k = e.args.iter().position(|a| *a == Atom::Var(t))?;
    let other = |i: usize| e.args[i];
    let make = |kind: Kind, source: Source| Factor {
        kind,
        rows: m,
        cols: n,
        label: e.prim.name().to_string(),
        span: e.span,
        source,
        safe: e.prim == Prim::Binary(Binary::SafeMul),
    };
    let structured = || make(Kind::Dense, Source::Structured(index));
    Some(match &e.prim {
        Prim::Reshape(_) | Prim::Transpose | Prim::StopGradient if n == m => return None,
        Prim::MatMul => {
            let c = other(1 - k);
            match (em.shape(c).rank(), k) {
                (2, 1) => make(Kind::Dense, Source::Matrix(c, false)),
                (2, 0) => make(Kind::Dense, Source::Matrix(c, true)),
                (1, _) => make(Kind::Dense, Source::Row(c)),
                _ => structured(),
            }
        }
        Prim::Binary(Binary::Mul | Binary::SafeMul) => {
            let c = other(1 - k);
            let cs = em.shape(c);
            if cs.size() == 1 && n == m {
                make(Kind::Scalar, Source::Scalar(c))
            } else if cs.size() == m && n == m {
                make(Kind::Diagonal, Source::Diag(c))
            } else if n == 1 && cs.size() == m {
                make(Kind::Dense, Source::Col(c))
            } else {
                structured()
            }
        }
        Prim::Binary(Binary::Div) if k == 0 => {
            let c = other(1);
            let cs = em.shape(c);
            if cs.size() == 1 && n == m {
                make(Kind::Scalar, Source::Recip(c))
            } else if cs.size() == m && n == m {
                make(Kind::Diagonal, Source::Recip(c))
            } else {
                structured()
            }
        }
        Prim::Unary(Unary::Neg) => make(Kind::Scalar, Source::Scalar(Atom::Lit(-1.0))),
        Prim::Where if k > 0 && n == m && em.shape(other(0)).size() == m => {
            let zero_other = other(3 - k) == Atom::Lit(0.0);
            if zero_other {
                make(Kind::Diagonal, Source::Mask(other(0), k == 1))
            } else {
                structured()
            }
        }
        _ => structured(),
    })
}

/// Multiply-adds of multiplying A (`r×c`, kind `ka`) by B (`c×q`, kind `kb`), and the kind
/// of the result. Diagonal and scalar factors scale; only dense by dense is a real product.
fn product(ka: Kind, kb: Kind, r: usize, c: usize, q: usize) -> (f64, Kind) {
    use Kind::*;
    let (r, c, q) = (r as f64, c as f64, q as f64);
    match (ka, kb) {
        (Scalar, Scalar) => (1.0, Scalar),
        (Scalar, Diagonal) | (Diagonal, Scalar) | (Diagonal, Diagonal) => (r, Diagonal),
        (Scalar, Dense) | (Dense, Scalar) | (Diagonal, Dense) | (Dense, Diagonal) => (r * q, Dense),
        (Dense, Dense) => (r * c * q, Dense),
    }
}

/// The cheapest bracketing of `f[j] ⋯ f[0]`: its cost and the split table.
fn bracket(f: &[Factor]) -> (f64, Vec<Vec<usize>>) {
    let k = f.len();
    let mut cost = vec![vec![0.0f64; k]; k];
    let mut kind = vec![vec![Kind::Scalar; k]; k];
    let mut split = vec![vec![0usize; k]; k];
    for i in 0..k {
        kind[i][i] = f[i].kind;
    }
    for len in 2..=k {
        for i in 0..=k - len {
            let j = i + len - 1;
            cost[i][j] = f64::INFINITY;
            // (f[j] ⋯ f[s+1]) × (f[s] ⋯ f[i])
            for s in i..j {
                let (c, kd) = product(kind[s + 1][j], kind[i][s], f[j].rows, f[s].rows, f[i].cols);
                let total = cost[i][s] + cost[s + 1][j] + c;
                if total < cost[i][j] {
                    cost[i][j] = total;
                    kind[i][j] = kd;
                    split[i][j] = s;
                }
            }
        }
    }
    (cost[0][k - 1], split)
}

/// The bracketing as text, `F1` the factor nearest the input: `(F4 F3) (F2 F1)`.
fn describe(split: &[Vec<usize>], i: usize, j: usize) -> String {
    if i == j {
        return format!("F{}", i + 1);
    }
    let s = split[i][j];
    let wrap = |a: usize, b: usize| {
        let t = describe(split, a, b);
        if a == b {
            t
        } else {
            format!("({t})")
        }
    };
    format!("{} {}", wrap(s + 1, j), wrap(i, s))
}

/// The Jacobian program for `mode`: the plan's choice for `Auto`.
pub fn jacobian_program(p: &Program, param: usize, mode: JacMode) -> Result<Program, String> {
    let leaf = check(p, param)?;
    let mut l = linearized(p, leaf);
    let plan = plan_of(p, leaf, &l);
    let choice = match mode {
        JacMode::Forward => Choice::Forward,
        JacMode::Reverse => Choice::Reverse,
        JacMode::Auto => plan.choice,
    };
    let target = jacobian_shape(plan.out_shape, plan.in_shape);
    let (n_in, n_out) = (plan.in_shape.size(), plan.out_shape.size());
    let out_var = l.jvp.tangents[0].and_then(|t| t.var());
    let t_in = l.jvp.tangent_inputs[0];
    let span = p.span;
    l.jvp.em.span = span;
    // The result as a [n_out, n_in] matrix, or None when this way does not apply.
    let flat: Option<Atom> = match (choice, out_var) {
        (_, None) => Some(l.jvp.em.zeros(Shape::matrix(n_out, n_in))),
        (Choice::Chain, Some(_)) => {
            plan.factors.as_ref().filter(|f| !f.is_empty()).map(|f| emit_chain(&mut l, f))
        }
        (Choice::Forward, Some(out)) if plan.batched => {
            let eqns = std::mem::take(&mut l.linear);
            let em = &mut l.jvp.em;
            let seed = identity(em, n_in);
            batch_linear(em, &eqns, &[(t_in, seed)], n_in, &[out]).map(|r| {
                let rows = r[0].unwrap_or_else(|| em.zeros(Shape::matrix(n_in, n_out)));
                em.emit(Prim::Transpose, [rows])
            })
        }
        (Choice::Reverse, Some(out)) if plan.batched => {
            let seed_var = l.jvp.em.new_var(plan.out_shape, Some("ct".into()), false);
            let n_primal = l.jvp.em.b.eqns.len();
            let cts = transpose(&mut l, &[(Some(Atom::Var(out)), Atom::Var(seed_var))], &[t_in])?;
            let em = &mut l.jvp.em;
            let trans: Vec<Eqn> = em.b.eqns.split_off(n_primal);
            match cts[0] {
                None => Some(em.zeros(Shape::matrix(n_out, n_in))),
                Some(Atom::Var(xbar)) => {
                    let seed = identity(em, n_out);
                    batch_linear(em, &trans, &[(seed_var, seed)], n_out, &[xbar])
                        .map(|r| r[0].unwrap_or_else(|| em.zeros(Shape::matrix(n_out, n_in))))
                }
                Some(lit) => Some(em.to_shape(lit, Shape::matrix(n_out, n_in))),
            }
        }
        _ => None,
    };
    let Some(flat) = flat else {
        // Not batchable (a linear value is a matrix): one pass per direction, unrolled.
        let unrolled_mode = if choice == Choice::Reverse { JacMode::Reverse } else { JacMode::Forward };
        return crate::derive::jacobian_unrolled(p, param, unrolled_mode);
    };
    let em = &mut l.jvp.em;
    let j = if em.shape(flat) == target { flat } else { em.emit(Prim::Reshape(target), [flat]) };
    if let Atom::Var(v) = j {
        em.b.vars[v.index()].name = Some("jac".into());
    }
    let prog = Program {
        name: p.name.clone(),
        vars: std::mem::take(&mut em.b.vars),
        inputs: l.jvp.inputs.clone(),
        params: p.params.clone(),
        captures: p.captures.clone(),
        eqns: std::mem::take(&mut em.b.eqns),
        outputs: vec![j],
        out_tree: Tree::Leaf,
        span: p.span,
    };
    Ok(simplify(prog))
}

/// The identity as the batch of basis directions `[n, n]` (`[1, 1]` for a scalar).
fn identity(em: &mut Emitter, n: usize) -> Atom {
    if n == 1 {
        em.emit(Prim::Full(Shape::matrix(1, 1), F64(1.0)), [])
    } else {
        em.emit(Prim::Eye(n), [])
    }
}

/// A factor as (value, kind): dense `[rows, cols]`, diagonal `[n]`, or scalar.
fn materialize(l: &mut Linearized, f: &Factor) -> (Atom, Kind) {
    let eqns = l.linear.clone();
    let em = &mut l.jvp.em;
    em.span = f.span;
    let (m, n) = (f.rows, f.cols);
    match &f.source {
        Source::Matrix(w, false) => (*w, Kind::Dense),
        Source::Matrix(w, true) => (em.emit(Prim::Transpose, [*w]), Kind::Dense),
        Source::Row(w) => (em.emit(Prim::Reshape(Shape::matrix(1, n)), [*w]), Kind::Dense),
        Source::Col(c) => (em.emit(Prim::Reshape(Shape::matrix(m, 1)), [*c]), Kind::Dense),
        Source::Diag(c) => (*c, f.kind),
        Source::Scalar(c) => (*c, Kind::Scalar),
        Source::Recip(c) => (em.bin(Binary::Div, Atom::Lit(1.0), *c), f.kind),
        Source::Mask(c, selected) => {
            let (a, b) = if *selected { (1.0, 0.0) } else { (0.0, 1.0) };
            (em.emit(Prim::Where, [*c, Atom::Lit(a), Atom::Lit(b)]), Kind::Diagonal)
        }
        Source::Structured(i) => {
            // The step applied to every basis direction, as rows; transposed to [m, n].
            let e = eqns[*i].clone();
            let t = e.args.iter().copied().find(|a| em.is_linear(*a)).and_then(|a| a.var());
            let seed = identity(em, n);
            let rows = t
                .and_then(|t| batch_linear(em, std::slice::from_ref(&e), &[(t, seed)], n, &[e.out]))
                .and_then(|r| r[0])
                .unwrap_or_else(|| em.zeros(Shape::matrix(n, m)));
            (em.emit(Prim::Transpose, [rows]), Kind::Dense)
        }
    }
}

/// Emits the chain's product in its cheapest bracketing; the result is `[n_out, n_in]`.
fn emit_chain(l: &mut Linearized, f: &[Factor]) -> Atom {
    let (_, split) = bracket(f);
    let (a, kind) = emit_range(l, f, &split, 0, f.len() - 1);
    let em = &mut l.jvp.em;
    let (m, n) = (f[f.len() - 1].rows, f[0].cols);
    match kind {
        Kind::Dense => a,
        Kind::Diagonal => {
            let col = em.emit(Prim::Reshape(Shape::matrix(m, 1)), [a]);
            let eye = em.emit(Prim::Eye(m), []);
            em.bin(Binary::Mul, col, eye)
        }
        Kind::Scalar => {
            let eye = identity(em, m.max(n));
            em.bin(Binary::Mul, a, eye)
        }
    }
}

fn emit_range(l: &mut Linearized, f: &[Factor], split: &[Vec<usize>], i: usize, j: usize) -> (Atom, Kind) {
    if i == j {
        return materialize(l, &f[i]);
    }
    let s = split[i][j];
    let (left, kl) = emit_range(l, f, split, s + 1, j);
    let (right, kr) = emit_range(l, f, split, i, s);
    let safe = f[i..=j].iter().any(|x| x.safe);
    let em = &mut l.jvp.em;
    let r = f[j].rows;
    let scale = |em: &mut Emitter, m: Atom, d: Atom| {
        // The accumulated product first: a strong zero there stays zero.
        em.bin(if safe { Binary::SafeMul } else { Binary::Mul }, m, d)
    };
    use Kind::*;
    match (kl, kr) {
        (Dense, Dense) => (em.emit(Prim::MatMul, [left, right]), Dense),
        (Scalar, k) => (scale(em, right, left), k),
        (k, Scalar) => (scale(em, left, right), k),
        (Diagonal, Diagonal) => (scale(em, right, left), Diagonal),
        // diag(d) × M scales the rows of M.
        (Diagonal, Dense) => {
            let col = em.emit(Prim::Reshape(Shape::matrix(r, 1)), [left]);
            (scale(em, right, col), Dense)
        }
        // M × diag(d) scales its columns.
        (Dense, Diagonal) => (scale(em, left, right), Dense),
    }
}

fn count(x: f64) -> String {
    if x >= 1e5 {
        let e = x.log10().floor() as i32;
        format!("{:.2}e{e}", x / 10f64.powi(e))
    } else {
        format!("{}", x.round() as u64)
    }
}

impl Plan {
    /// The plan as `#` comment lines: the factors of a chain with their shapes and kinds,
    /// and the estimated multiply-adds of forward, reverse and the chosen plan. `locate`
    /// names a span's place (e.g. `line 3`).
    pub fn render(&self, locate: &dyn Fn(Span) -> Option<String>) -> String {
        let mut s = format!(
            "# jacobian of `{}`: f64{} -> f64{}, result {}\n",
            self.name,
            self.in_shape,
            self.out_shape,
            jacobian_shape(self.out_shape, self.in_shape)
        );
        let (n_in, n_out) = (self.in_shape.size(), self.out_shape.size());
        match &self.factors {
            Some(f) if !f.is_empty() => {
                s.push_str("# the linear part is a chain of local Jacobians (F1 acts first):\n");
                for (i, x) in f.iter().enumerate() {
                    let shape = match x.kind {
                        Kind::Dense => format!("[{}, {}]", x.rows, x.cols),
                        Kind::Diagonal => format!("[{}] on the diagonal", x.rows),
                        Kind::Scalar => format!("[{}, {}] times a number", x.rows, x.cols),
                    };
                    let place = locate(x.span).map(|l| format!(", {l}")).unwrap_or_default();
                    s.push_str(&format!(
                        "#   F{:<3} {:<9} {:<26} from `{}`{place}\n",
                        i + 1,
                        x.kind.name(),
                        shape,
                        x.label
                    ));
                }
            }
            _ => s.push_str(
                "# the linear part is not a chain (a value feeds two steps): forward or reverse mode\n",
            ),
        }
        let how = if self.batched { "all at once" } else { "one pass each" };
        s.push_str("# estimated multiply-adds (the function itself included):\n");
        let mark = |c: Choice| if c == self.choice { "   <- chosen" } else { "" };
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut line = |label: String, cost: f64, c: Choice| {
            s.push_str(&format!("#   {label:<36} {:>9}{}\n", count(cost), mark(c)));
        };
        line(format!("forward: {n_in} JVP{} ({how})", plural(n_in)), self.forward, Choice::Forward);
        line(format!("reverse: {n_out} VJP{} ({how})", plural(n_out)), self.reverse, Choice::Reverse);
        if let Some((c, b)) = &self.chain {
            line(format!("chain:   {b}"), *c, Choice::Chain);
        }
        s
    }
}
