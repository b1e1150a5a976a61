//! Grammar-based generation of random programs that are mostly well-formed and
//! shape-correct, so that they get past the parser and the shape checker and reach lowering,
//! the transforms and the interpreter.
//!
//! Generation is type-directed: every expression is asked for with the shape its value must
//! have (`expr(scope, [2, 3], depth)`), and every function value with its parameter types
//! and result shape, so `grad(f)(x)`, `jacobian(grad(f))(x)` and `hessian(x => ...)(x)` come
//! out with operands that fit. Edge cases are mixed in on purpose: scalars, empty arrays,
//! broadcasting between ranks 0, 1 and 2, `where` with narrow conditions, huge sizes,
//! extreme numbers, random builtins under transforms, recursion through transforms.

use crate::rng::Rng;

mod edge;
mod expr;
mod repl;
mod stmt;
mod transform;

/// A shape of rank 0, 1 or 2 (the language's limit).
pub type Shape = Vec<usize>;

/// The type of a value in scope: an array, or a tuple of arrays (one level deep).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    Arr(Shape),
    Tuple(Vec<Shape>),
}

/// A generated `def`, so that `ad derive` can be pointed at it.
#[derive(Clone, Debug)]
pub struct DefInfo {
    pub name: String,
    pub params: Vec<(String, Ty)>,
    pub result: Ty,
    /// Whether every array parameter carries a shape annotation.
    pub annotated: bool,
}

/// A generated script and what it defines.
#[derive(Clone, Debug)]
pub struct Program {
    pub text: String,
    pub defs: Vec<DefInfo>,
    pub globals: Vec<String>,
}

/// What an expression may refer to.
#[derive(Clone, Default)]
struct Scope {
    vars: Vec<(String, Ty)>,
    /// Inside a `def` or a lambda body: effects (`randn`, `print`) are errors there.
    in_function: bool,
    /// The `def` being generated, which its own body may refer to (recursion, an error
    /// that must be reported, not a crash).
    current: Option<(String, Vec<Ty>, Ty)>,
}

impl Scope {
    fn with(&self, more: &[(String, Ty)], in_function: bool) -> Scope {
        let mut s = self.clone();
        s.vars.extend_from_slice(more);
        s.in_function |= in_function;
        s
    }
}

/// Elementwise unary builtins: any shape to the same shape.
const UNARY: &[&str] = &["neg", "exp", "log", "sin", "cos", "tanh", "sqrt", "abs", "sigmoid", "relu", "sign"];
/// Reductions to a scalar, usable as functions.
const TO_SCALAR: &[&str] = &["sum", "amax", "mean", "norm", "logsumexp"];
const BINARY_OPS: &[&str] = &["+", "-", "*", "/", "^", "+", "*", "-"];
const COMPARISONS: &[&str] = &["<", "<=", ">", ">=", "==", "!="];
const JACOBIANS: &[&str] = &["jacobian", "jacfwd", "jacrev"];

/// The generator: a random source and what the program defined so far.
pub struct Gen<'r> {
    rng: &'r mut Rng,
    globals: Vec<(String, Ty)>,
    defs: Vec<DefInfo>,
    fresh: usize,
    /// Nodes left for the statement being generated; keeps programs small.
    nodes: usize,
}

pub fn program(rng: &mut Rng) -> Program {
    let mut g = Gen::new(rng);
    let mut text = String::new();
    if g.rng.chance(40) {
        text.push_str(&format!("seed({})\n", g.rng.below(100)));
    }
    for _ in 0..g.rng.range(0, 3) {
        text.push_str(&g.global_let());
    }
    for _ in 0..g.rng.range(1, 3) {
        text.push_str(&g.def());
    }
    for _ in 0..g.rng.range(2, 7) {
        text.push_str(&g.statement());
    }
    let globals = g.globals.iter().map(|(n, _)| n.clone()).collect();
    Program { text, defs: g.defs, globals }
}

/// A REPL session: entries that define, use, fail and redefine names, mixed with every
/// command. The text is piped to `ad repl`, one line at a time.
pub fn repl_session(rng: &mut Rng) -> String {
    let mut g = Gen::new(rng);
    let mut text = String::new();
    for _ in 0..g.rng.range(4, 14) {
        text.push_str(&g.repl_entry());
    }
    if g.rng.chance(10) {
        // An entry left open at the end of the input must be reported, not lost.
        let open: &[&str] = &["def open(x) {\n  x +\n", "let unclosed = [1, 2,\n", "(\n"];
        let line: &&str = g.rng.pick(open);
        text.push_str(line);
    }
    text
}

/// A `--shape` option for a parameter of type `ty` (no spaces: targets are lists of words).
pub fn shape_option(name: &str, ty: &Ty) -> String {
    fn arr(s: &Shape) -> String {
        format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
    }
    match ty {
        Ty::Arr(s) => format!("{name}={}", arr(s)),
        Ty::Tuple(ts) => format!("{name}=({})", ts.iter().map(arr).collect::<Vec<_>>().join(",")),
    }
}

/// Shapes that are legal but unusual: scalars, empty and size-1 axes, long vectors.
pub fn odd_shape(rng: &mut Rng) -> Shape {
    rng.pick(&[
        vec![],
        vec![0],
        vec![1],
        vec![1, 1],
        vec![2, 0],
        vec![0, 3],
        vec![400],
        vec![3, 3],
        vec![1, 5],
        vec![7],
        vec![2048],
        vec![65536],
        vec![3, 1],
    ])
    .clone()
}

/// Whether `a` divides `n` (`a` positive).
fn divides(a: usize, n: usize) -> bool {
    n.checked_rem(a) == Some(0)
}

fn size(s: &Shape) -> usize {
    s.iter().product()
}

/// Whether an array of shape `t` broadcasts to shape `s` (without changing `s`).
fn broadcasts_to(t: &Shape, s: &Shape) -> bool {
    t.len() <= s.len() && t.iter().rev().zip(s.iter().rev()).all(|(a, b)| a == b || *a == 1)
}

/// The shape of `a` and `b` broadcast together (they are assumed compatible).
fn broadcast(a: &Shape, b: &Shape) -> Shape {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = (i + a.len()).checked_sub(r).map_or(1, |j| a[j]);
            let db = (i + b.len()).checked_sub(r).map_or(1, |j| b[j]);
            if da == 1 {
                db
            } else {
                da
            }
        })
        .collect()
}

/// The shape a Jacobian has: the result's axes then the argument's, flattened to
/// `[size(out), size(in)]` when that would be more than two axes.
fn jacobian_shape(out: &Shape, arg: &Shape) -> Shape {
    if out.len() + arg.len() <= 2 {
        out.iter().chain(arg).copied().collect()
    } else {
        vec![size(out), size(arg)]
    }
}

/// Writes a shape as the argument of `zeros` and `reshape`.
fn tuple_text(s: &Shape) -> String {
    match s.as_slice() {
        [] => "()".into(),
        [n] => n.to_string(),
        [m, n] => format!("({m}, {n})"),
        _ => format!("({})", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

impl<'r> Gen<'r> {
    pub fn new(rng: &'r mut Rng) -> Gen<'r> {
        Gen { rng, globals: Vec::new(), defs: Vec::new(), fresh: 0, nodes: 0 }
    }

    fn name(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}{}", self.fresh)
    }

    fn dim(&mut self) -> usize {
        // Now and then a larger axis, where costs that grow faster than they should (a
        // Jacobian built one column at a time, say) become hangs.
        if self.rng.below(150) == 0 {
            return self.rng.range(12, 40);
        }
        match self.rng.below(20) {
            0 => 0,
            1..=5 => 1,
            6..=17 => self.rng.range(2, 4),
            _ => self.rng.range(5, 8),
        }
    }

    fn shape(&mut self) -> Shape {
        match self.rng.weighted(&[30, 40, 30]) {
            0 => vec![],
            1 => vec![self.dim()],
            _ => vec![self.dim(), self.dim()],
        }
    }

    fn ty(&mut self) -> Ty {
        if self.rng.chance(10) {
            Ty::Tuple(vec![self.shape(), self.shape()])
        } else {
            Ty::Arr(self.shape())
        }
    }

    /// A random shape that broadcasts to `s` (fewer leading axes, some axes of length 1).
    fn sub_broadcast(&mut self, s: &Shape) -> Shape {
        let rank = if self.rng.chance(60) { s.len() } else { self.rng.range(0, s.len()) };
        s[s.len() - rank..].iter().map(|&d| if self.rng.chance(25) { 1 } else { d }).collect()
    }

    /// A shape that, broadcast with `a` (which broadcasts to `s`), gives exactly `s`.
    fn complement(&mut self, s: &Shape, a: &Shape) -> Shape {
        let r = s.len();
        let off = r - a.len();
        let required = |i: usize| s[i] != 1 && (i < off || a[i - off] == 1);
        let first = (0..r).find(|&i| required(i)).unwrap_or(r);
        let rank = if self.rng.chance(60) { r } else { self.rng.range(r - first, r) };
        (r - rank..r).map(|i| if !required(i) && self.rng.chance(25) { 1 } else { s[i] }).collect()
    }

    fn number(&mut self) -> String {
        if self.rng.chance(12) {
            return self
                .rng
                .pick(&[
                    "0", "1e308", "1e-308", "65536", "nan", "inf", "(-inf)", "(-1)", "pi", "true", "false",
                    "(-0)",
                ])
                .to_string();
        }
        match self.rng.below(4) {
            0 => self.rng.range(0, 4).to_string(),
            1 => format!("{}.{}", self.rng.below(3), self.rng.range(1, 9)),
            2 => format!("(-{}.{})", self.rng.below(3), self.rng.range(1, 9)),
            _ => format!("{}.5", self.rng.below(2)),
        }
    }
}
