//! Local Jacobians: what one linear step does to one of its linear operands, as a factor of
//! a known kind (dense, diagonal, scalar), and the arithmetic of such factors: the
//! multiply-adds their products and sums cost, and the code that computes them.

use super::batch::{self, batch_linear};
use crate::emitter::Emitter;
use crate::transpose::Linearized;
use ad_ir::prim::{Binary, Prim, Unary, F64};
use ad_ir::{Atom, Eqn, Shape};
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
    /// A number spread over a vector: a column of ±1.
    Spread(f64),
    /// Any other linear step (sum, slice, pad, concat, ...), by equation and operand:
    /// materialised by applying it to the identity.
    Structured(usize, usize),
}

/// One local Jacobian: it maps `cols` numbers to `rows` numbers.
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
    pub safe: bool,
}

impl Factor {
    /// A step that changes nothing (a reshape of a vector to itself, `+` of one operand).
    pub fn is_identity(&self) -> bool {
        matches!(self.source, Source::Scalar(Atom::Lit(x)) if x == 1.0)
    }

    /// Multiply-adds to make its matrix (structured steps are applied to the identity).
    pub fn materialize_cost(&self) -> f64 {
        match self.source {
            Source::Structured(..) => (self.rows * self.cols) as f64,
            _ => 0.0,
        }
    }
}

/// The local Jacobian of step `e` (number `index` of the linear part) with respect to its
/// operand at position `k`, which maps a value of shape `sin` to one of shape `sout`.
pub fn factor(em: &Emitter, e: &Eqn, index: usize, k: usize, sin: Shape, sout: Shape) -> Factor {
    let (n, m) = (sin.size(), sout.size());
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
    let structured = || make(Kind::Dense, Source::Structured(index, k));
    let one = Source::Scalar(Atom::Lit(1.0));
    match &e.prim {
        Prim::Reshape(_) | Prim::Transpose | Prim::StopGradient | Prim::Check(_) => {
            if n == m {
                make(Kind::Scalar, one)
            } else {
                structured()
            }
        }
        Prim::Binary(op @ (Binary::Add | Binary::Sub)) => {
            let sign = if *op == Binary::Sub && k == 1 { -1.0 } else { 1.0 };
            if n == m {
                make(Kind::Scalar, Source::Scalar(Atom::Lit(sign)))
            } else if n == 1 {
                make(Kind::Dense, Source::Spread(sign))
            } else {
                structured()
            }
        }
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
        Prim::Binary(Binary::Div) => {
            let cs = em.shape(other(1));
            if k != 0 {
                structured()
            } else if cs.size() == 1 && n == m {
                make(Kind::Scalar, Source::Recip(other(1)))
            } else if cs.size() == m && n == m {
                make(Kind::Diagonal, Source::Recip(other(1)))
            } else {
                structured()
            }
        }
        Prim::Unary(Unary::Neg) => make(Kind::Scalar, Source::Scalar(Atom::Lit(-1.0))),
        // A `where` selects: its Jacobian for each branch is a 0/1 diagonal.
        Prim::Where => {
            if k > 0 && n == m && em.shape(other(0)).size() == m {
                make(Kind::Diagonal, Source::Mask(other(0), k == 1))
            } else {
                structured()
            }
        }
        // Any other linear step is applied to the identity.
        Prim::SafeMatMul
        | Prim::Permute(_)
        | Prim::Solve
        | Prim::SafeSolve
        | Prim::SolveTriangular(_)
        | Prim::Sum(_)
        | Prim::Cumsum(..)
        | Prim::Flip(_)
        | Prim::BroadcastTo(_)
        | Prim::SumTo(_)
        | Prim::Index(_)
        | Prim::Pad(_)
        | Prim::Concat(_)
        | Prim::Stack
        | Prim::Conv2d(_)
        | Prim::Conv2dTransposeInput(..)
        | Prim::Conv2dTransposeKernel(..)
        | Prim::MaxPool2dPick(_)
        | Prim::MaxPool2dScatter(_)
        | Prim::AvgPool2d(_)
        | Prim::AvgPool2dTranspose(..)
        | Prim::DynIndex(_)
        | Prim::DynUpdate(_)
        | Prim::Loop(_)
        | Prim::ReverseLoop(_)
        | Prim::Cond(_) => structured(),
        // Never linear, so never a step of the linear part.
        // Every operation of one operand but `neg` is declared nonlinear or of class zero
        // (`elementwise.rs`).
        Prim::Unary(_)
        | Prim::Binary(
            Binary::Pow
            | Binary::Max
            | Binary::Min
            | Binary::Atan2
            | Binary::Hypot
            | Binary::Mod
            | Binary::Logaddexp
            | Binary::Lt
            | Binary::Le
            | Binary::Gt
            | Binary::Ge
            | Binary::Eq
            | Binary::Ne
            | Binary::And
            | Binary::Or,
        )
        | Prim::Amax(_)
        | Prim::Prod(_)
        | Prim::Custom(_)
        | Prim::CustomLin(_)
        | Prim::Cholesky
        | Prim::Decomp(_)
        | Prim::LogAbsDet
        | Prim::SignDet
        | Prim::MaxPool2d(_)
        | Prim::Argmax(_)
        | Prim::Full(..)
        | Prim::Eye(_)
        | Prim::Arange(_)
        | Prim::Linspace(..)
        | Prim::OneHot(_)
        | Prim::Const(_) => structured(),
    }
}

/// A factor's value while code is emitted: dense `[rows, cols]`, diagonal `[rows]`, or a
/// scalar times the identity.
#[derive(Clone, Copy, Debug)]
pub struct Val {
    pub atom: Atom,
    pub kind: Kind,
    pub rows: usize,
    pub cols: usize,
}

/// The identity as the batch of basis directions `[n, n]` (`[1, 1]` for a scalar).
pub fn identity(em: &mut Emitter, n: usize) -> Atom {
    if n == 1 {
        em.emit(Prim::Full(Shape::matrix(1, 1), F64(1.0)), [])
    } else {
        em.emit(Prim::Eye(n), [])
    }
}

/// Emits a factor's value, or `None` when a step's factor cannot be made by batching.
pub fn materialize(l: &mut Linearized, f: &Factor) -> Option<Val> {
    let em = &mut l.jvp.em;
    em.span = f.span;
    let (m, n) = (f.rows, f.cols);
    let val = |atom: Atom, kind: Kind| Val { atom, kind, rows: m, cols: n };
    Some(match &f.source {
        Source::Matrix(w, false) => val(*w, Kind::Dense),
        Source::Matrix(w, true) => val(em.emit(Prim::Transpose, [*w]), Kind::Dense),
        Source::Row(w) => val(em.emit(Prim::Reshape(Shape::matrix(1, n)), [*w]), Kind::Dense),
        Source::Col(c) => val(em.emit(Prim::Reshape(Shape::matrix(m, 1)), [*c]), Kind::Dense),
        Source::Diag(c) => val(*c, f.kind),
        Source::Scalar(c) => val(*c, Kind::Scalar),
        Source::Spread(s) => val(em.emit(Prim::Full(Shape::matrix(m, 1), F64(*s)), []), Kind::Dense),
        Source::Recip(c) => val(em.bin(Binary::Div, Atom::Lit(1.0), *c), f.kind),
        Source::Mask(c, selected) => {
            let (a, b) = if *selected { (1.0, 0.0) } else { (0.0, 1.0) };
            val(em.emit(Prim::Where, [*c, Atom::Lit(a), Atom::Lit(b)]), Kind::Diagonal)
        }
        Source::Structured(i, k) => {
            // The step applied to every basis direction of this operand (the others count
            // as zero), as rows; transposed to [m, n].
            let mut e = l.linear[*i].clone();
            let em = &mut l.jvp.em;
            let t = e.args[*k].var();
            // The same value in another operand position (`[t, t]`, `where(c, t, t)`) is
            // another factor of the graph: here it counts as zero, or it would be counted
            // once per position in each factor.
            for j in 0..e.args.len() {
                if j != *k && e.args[j] == e.args[*k] {
                    let s = em.shape(e.args[j]);
                    e.args[j] = em.zeros(s);
                }
            }
            // A step that cannot be batched gives no factor: the caller computes the
            // Jacobian another way (never a zero in place of a factor it could not make).
            let batched = match t {
                Some(t) => {
                    let seed = batch::seed(em, em.shape(Atom::Var(t)))?;
                    batch_linear(em, std::slice::from_ref(&e), &[(t, seed)], n, &[e.out])?[0]
                }
                None => None,
            };
            let rows = match batched {
                Some(r) => batch::flat(em, r),
                None => em.zeros(Shape::matrix(n, m)),
            };
            val(em.emit(Prim::Transpose, [rows]), Kind::Dense)
        }
    })
}

/// Multiply-adds of multiplying A (`r×c`, kind `ka`) by B (`c×q`, kind `kb`), and the kind
/// of the result. Diagonal and scalar factors scale; only dense by dense is a real product.
pub fn product_cost(ka: Kind, kb: Kind, r: usize, c: usize, q: usize) -> (f64, Kind) {
    use Kind::*;
    let (r, c, q) = (r as f64, c as f64, q as f64);
    match (ka, kb) {
        (Scalar, Scalar) => (1.0, Scalar),
        (Scalar, Diagonal) | (Diagonal, Scalar) | (Diagonal, Diagonal) => (r, Diagonal),
        (Scalar, Dense) | (Dense, Scalar) | (Diagonal, Dense) | (Dense, Diagonal) => (r * q, Dense),
        (Dense, Dense) => (r * c * q, Dense),
    }
}

/// Multiply-adds of adding two `r×q` factors, and the kind of the sum.
pub fn sum_cost(ka: Kind, kb: Kind, r: usize, q: usize) -> (f64, Kind) {
    use Kind::*;
    match (ka, kb) {
        (Scalar, Scalar) => (1.0, Scalar),
        (Dense, _) | (_, Dense) => ((r * q) as f64, Dense),
        _ => (r as f64, Diagonal),
    }
}

/// Emits `left × right` (left acts after right).
pub fn mul(em: &mut Emitter, left: Val, right: Val, safe: bool) -> Val {
    use Kind::*;
    let (r, q) = (left.rows, right.cols);
    // The accumulated product first: a strong zero there stays zero.
    let scale =
        |em: &mut Emitter, m: Atom, d: Atom| em.bin(if safe { Binary::SafeMul } else { Binary::Mul }, m, d);
    let (atom, kind) = match (left.kind, right.kind) {
        (Dense, Dense) => {
            (em.emit(if safe { Prim::SafeMatMul } else { Prim::MatMul }, [left.atom, right.atom]), Dense)
        }
        (Scalar, k) => (scale(em, right.atom, left.atom), k),
        (k, Scalar) => (scale(em, left.atom, right.atom), k),
        (Diagonal, Diagonal) => (scale(em, right.atom, left.atom), Diagonal),
        // diag(d) × M scales the rows of M.
        (Diagonal, Dense) => {
            let col = em.emit(Prim::Reshape(Shape::matrix(r, 1)), [left.atom]);
            (scale(em, right.atom, col), Dense)
        }
        // M × diag(d) scales its columns.
        (Dense, Diagonal) => (scale(em, left.atom, right.atom), Dense),
    };
    Val { atom, kind, rows: r, cols: q }
}

/// Emits `a + b` for two factors of one shape.
pub fn add(em: &mut Emitter, a: Val, b: Val) -> Val {
    use Kind::*;
    match (a.kind, b.kind) {
        (Dense, _) | (_, Dense) => {
            let (x, y) = (dense(em, a), dense(em, b));
            Val { atom: em.bin(Binary::Add, x, y), kind: Dense, ..a }
        }
        (Scalar, Scalar) => Val { atom: em.bin(Binary::Add, a.atom, b.atom), ..a },
        _ => Val { atom: em.bin(Binary::Add, a.atom, b.atom), kind: Diagonal, ..a },
    }
}

/// A factor as a dense matrix `[rows, cols]`.
pub fn dense(em: &mut Emitter, v: Val) -> Atom {
    match v.kind {
        Kind::Dense => v.atom,
        Kind::Diagonal => {
            let col = em.emit(Prim::Reshape(Shape::matrix(v.rows, 1)), [v.atom]);
            let eye = identity(em, v.rows);
            em.bin(Binary::Mul, col, eye)
        }
        Kind::Scalar => {
            let eye = identity(em, v.rows);
            em.bin(Binary::Mul, v.atom, eye)
        }
    }
}
