//! The abstract syntax tree. It mirrors the surface syntax of DESIGN §1 closely; name
//! resolution, shapes and meaning are the business of lowering (`ad-ir`).
//!
//! `def`s and lambdas sit behind `Rc` because function values point into the tree and
//! specialisation caches key on their identity.

use crate::span::Span;
use std::rc::Rc;

pub type Name = Rc<str>;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: Name,
    pub span: Span,
}

/// A whole file (or REPL entry): statements in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub stmts: Vec<Stmt>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `def f(x, y: [n]) = e` or `def f(x) { ... }`.
    Def(Rc<Def>),
    /// `let p = e` where `p` is a name or a (nested) tuple of names.
    Let { pat: Pattern, value: Expr },
    /// `p = e`: rebinding names that already exist.
    Assign { pat: Pattern, value: Expr },
    /// `x[i] = v`, `x[i, :] = v`: rebinds the name `x` to a copy of its array with that part
    /// replaced; `target` is the index expression (`ExprKind::Index` of a name). With an
    /// operator, a compound assignment `t += v` (`-=`, `*=`, `/=`) means `t = t + v`, and its
    /// target may also be a name (`ExprKind::Var`).
    Update { target: Expr, op: Option<BinOp>, value: Expr },
    /// `for i in a..b { ... }`: `i = a, a+1, ..., b-1`.
    For { var: Ident, start: Expr, end: Expr, body: Block },
    /// `for x in X { ... }`: `x = X[0], X[1], ...` (the first axis of `X`).
    ForEach { var: Ident, iter: Expr, body: Block },
    /// `while c { ... }`.
    While { cond: Expr, body: Block },
    /// `import "path.ad"`: runs that file once per session and brings the names it defines
    /// into this file's scope (only at the top level). `path_span` is the string literal's.
    Import { path: Rc<str>, path_span: Span },
    /// An expression evaluated for its value (echoed in the REPL) or effect (`print`).
    Expr(Expr),
    /// A statement that failed to parse; the parser already reported it.
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Def {
    pub name: Ident,
    pub params: Vec<Param>,
    /// `= e` bodies are stored as a block holding one expression statement.
    pub body: Block,
    /// The whole definition, `def` to the end of the body.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub annot: Option<ShapeAnnot>,
}

/// `[n, 3]`: a shape annotation; dimension names unify within one signature.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeAnnot {
    pub dims: Vec<Dim>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    Known(u64, Span),
    Named(Ident),
}

/// `{ s1; s2; e }`: the value of a block is its last statement if that is an expression
/// statement, otherwise the empty tuple.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Name(Ident),
    Tuple(Vec<Pattern>, Span),
}

impl Pattern {
    pub fn span(&self) -> Span {
        match self {
            Pattern::Name(i) => i.span,
            Pattern::Tuple(_, s) => *s,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// Numbers, and `true` (1) / `false` (0).
    Num(f64),
    Str(Rc<str>),
    /// `none`: "no axis" in `vmap`'s `in_axes` and `out_axes`.
    None,
    Var(Name),
    /// `()`, `(a,)`, `(a, b)`. A parenthesised expression `(a)` is just `a`.
    Tuple(Vec<Expr>),
    /// `[a, b]`, `[[1, 2], [3, 4]]`.
    Array(Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Expr>),
    /// `x[i]`, `x[i, j]`, `x[a:b]`, `x[:, j]`.
    Index(Box<Expr>, Vec<IndexArg>),
    /// Postfix `x'`.
    Transpose(Box<Expr>),
    Lambda(Rc<Lambda>),
    /// `if c { a } else { b }`; `else if` chains nest in the else block.
    If(Box<Expr>, Block, Option<Block>),
    /// An expression that failed to parse; the parser already reported it.
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexArg {
    /// `x[i]`
    Index(Expr),
    /// `x[a:b]`, `x[:b]`, `x[a:]`, `x[:]`, and with a step `x[a:b:s]`, `x[::s]`
    Slice { start: Option<Expr>, end: Option<Expr>, step: Option<Box<Expr>>, span: Span },
}

impl IndexArg {
    /// The expressions written in it: the position, or the slice's bounds and step.
    pub fn parts(&self) -> Vec<&Expr> {
        match self {
            IndexArg::Index(e) => vec![e],
            IndexArg::Slice { start, end, step, .. } => {
                start.iter().chain(end).chain(step.as_deref()).collect()
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lambda {
    pub params: Vec<Ident>,
    pub body: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

impl UnOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnOp::Neg => "-",
            UnOp::Not => "!",
        }
    }
}
