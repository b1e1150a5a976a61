//! What needs a session: the diagnostics of `ad check`, and the shape of an expression
//! without running anything (as the REPL's `:type`).
//!
//! Each question gets a fresh session (loading the prelude takes about a millisecond), whose
//! output goes nowhere. A shape is found by shape-checking the statements before the one the
//! expression is in, then the statements of the enclosing blocks before it, then the
//! expression itself. Inside a `def`, the body is lowered for the parameters' annotated
//! shapes, each dimension name standing for a size of its own that is shown by its name
//! again (`f64[n, 3]`); a parameter without annotation has no shape to offer.

use crate::analysis::{self, signature, Binder, Frame, Located, Node};
use crate::signatures;
use ad_driver::Session;
use ad_ir::lower::spec::{FuncSpec, Spec};
use ad_ir::lower::value::{Func, LVal};
use ad_ir::lower::{self};
use ad_ir::Shape;
use ad_syntax::ast::*;
use ad_syntax::{Diagnostic, FileId, Span};
use std::rc::Rc;

/// A session that prints nowhere, with `text` added as a file (parsed, possibly with errors).
pub struct Loaded {
    pub session: Session,
    pub file: FileId,
    pub module: Module,
    pub syntax_errors: Vec<Diagnostic>,
}

pub fn load(name: &str, text: &str) -> Loaded {
    let mut session = Session::new(Box::new(std::io::sink()));
    let file = session.add_source(name, text);
    let (module, syntax_errors) = ad_syntax::parser::parse(file, text);
    Loaded { session, file, module, syntax_errors }
}

/// The reports `ad check` gives for `text`: its syntax errors, or else its shape errors.
pub fn check(name: &str, text: &str) -> (FileId, Vec<Diagnostic>) {
    let mut l = load(name, text);
    if !l.syntax_errors.is_empty() {
        return (l.file, l.syntax_errors);
    }
    let errors = lower::check_module(&mut l.session, &l.module);
    (l.file, errors)
}

/// Sizes that stand for dimension names while a `def` is lowered for a hover: primes that
/// scripts are unlikely to write as sizes themselves.
const NAMED_SIZES: &[usize] = &[97, 89, 83, 79, 73, 71, 67, 61, 59, 53, 47, 43, 41, 37, 31, 29];

/// Where a position is, as far as running up to it goes.
struct Context<'m> {
    /// The top-level statement it is in.
    top_index: usize,
    /// The `def` it is in.
    def: Option<&'m Def>,
    /// The statements of the enclosing blocks that run before it (loop variables bound to
    /// their first value).
    pre: Vec<Stmt>,
    /// Names bound by enclosing lambdas: their values are unknown.
    hidden: Vec<Rc<str>>,
}

fn context<'m>(frames: &[Frame<'m>]) -> Context<'m> {
    let mut c = Context { top_index: 0, def: None, pre: Vec::new(), hidden: Vec::new() };
    for f in frames {
        match *f {
            Frame::Stmt { index, top: true, .. } => c.top_index = index,
            Frame::Stmt { stmts, index, top: false } => {
                c.pre.extend(stmts[..index.min(stmts.len())].iter().filter(|s| !is_error(s)).cloned())
            }
            Frame::Def(d) => c.def = Some(d),
            Frame::For { var, start, each: false } => c.pre.push(let_stmt(var, start)),
            Frame::For { var, start, each: true } => c.pre.push(let_stmt(var, &first_of(start))),
            Frame::Lambda(lam) => c.hidden.extend(lam.params.iter().map(|p| p.name.clone())),
        }
    }
    c
}

impl Context<'_> {
    fn mentions(&self, target: &Expr, name: &str) -> bool {
        analysis::mentions(target, name) || self.pre.iter().any(|s| analysis::stmt_mentions(s, name))
    }
}

/// The statements of the top level before statement `index` (and, for a function body,
/// every function, since a body may call one defined further down).
fn prefix(module: &Module, index: usize, with_later_defs: bool) -> Vec<Stmt> {
    let stmts = &module.stmts;
    let mut prefix: Vec<Stmt> =
        stmts[..index.min(stmts.len())].iter().filter(|s| !is_error(s)).cloned().collect();
    if with_later_defs {
        let later = stmts.get(index + 1..).unwrap_or(&[]);
        prefix.extend(later.iter().filter(|s| matches!(s.kind, StmtKind::Def(_))).cloned());
    }
    prefix
}

/// The name the value asked about is bound to, at the end of the statements checked.
const ANSWER: &str = "ad lsp: the answer";

/// The value (arrays abstract) of `target` at a place outside every `def`. The question is
/// one more statement after those before it, checked in the same pass: the abstract arrays
/// of one pass mean nothing to another.
fn top_value(session: &mut Session, module: &Module, c: &Context, target: Expr) -> Option<LVal> {
    if c.def.is_some() || c.hidden.iter().any(|h| c.mentions(&target, h)) {
        return None;
    }
    let span = target.span;
    let e = if c.pre.is_empty() { target } else { in_block(c.pre.clone(), target, span) };
    let mut stmts = prefix(module, c.top_index, false);
    let answer = Ident { name: ANSWER.into(), span };
    stmts.push(Stmt { kind: StmtKind::Let { pat: Pattern::Name(answer), value: e }, span });
    let _ = lower::check_module(session, &Module { stmts });
    session.global_value(ANSWER).cloned()
}

/// The type of what is at the place `loc` describes (`f64[3, n]`, `(f64[], f64[2])`, a
/// signature), if it can be found without running anything.
pub fn type_at(session: &mut Session, module: &Module, loc: &Located<'_>) -> Option<String> {
    let target = match loc.node {
        Node::Expr(e) => e.clone(),
        Node::Binder(b) => Expr { kind: ExprKind::Var(b.ident().name.clone()), span: b.ident().span },
        Node::None => return None,
    };
    let mut c = context(&loc.frames);
    // A name where it is bound: its value after the binding.
    if let Node::Binder(b) = loc.node {
        let Some(Frame::Stmt { stmts, index, top }) = loc.frames.last().copied() else { return None };
        let current = stmts.get(index)?;
        match b {
            Binder::DefName(_) | Binder::LambdaParam(_) => return None,
            Binder::Param(d, _) => c.def = Some(d),
            Binder::Let(_) | Binder::Assign(_) if top && c.def.is_none() => c.top_index += 1,
            Binder::Let(_) | Binder::Assign(_) => c.pre.push(current.clone()),
            Binder::For(var) => match &current.kind {
                StmtKind::For { start, .. } => c.pre.push(let_stmt(var, start)),
                StmtKind::ForEach { iter, .. } => c.pre.push(let_stmt(var, &first_of(iter))),
                _ => return None,
            },
        }
    }
    let Some(d) = c.def else {
        return top_value(session, module, &c, target).map(|v| describe(&v, &[]));
    };
    if c.hidden.iter().any(|h| c.mentions(&target, h)) {
        return None;
    }
    let (specs, known, names) = parameter_specs(module, d, |name| c.mentions(&target, name))?;
    let _ = lower::check_module(session, &Module { stmts: prefix(module, c.top_index, true) });
    let span = target.span;
    let mut body = c.pre;
    body.push(Stmt { kind: StmtKind::Expr(target), span });
    let probe = Def {
        name: d.name.clone(),
        params: d.params.clone(),
        body: Block { stmts: body, span: d.body.span },
        span: d.span,
    };
    let f = LVal::Func(Rc::new(Func::Def(Rc::new(probe))));
    let spans: Vec<Span> = d.params.iter().map(|p| p.name.span).collect();
    let lowered = lower::lower_function(session, &f, &specs, &known, d.span, &spans).ok()?;
    Some(describe_spec(&lowered.out_spec, &names))
}

type Specs = (Vec<Spec>, Vec<Option<f64>>, Vec<(usize, String)>);

/// The structures a function body is looked at for: its parameters' annotations when all
/// have one; else the arguments of its first call at the top level; else the annotations,
/// with a number for each parameter without one (none if `uses` says the question needs it).
fn parameter_specs(module: &Module, d: &Def, uses: impl Fn(&str) -> bool) -> Option<Specs> {
    if d.params.iter().any(|p| p.annot.is_none()) {
        if let Some(found) = call_site_specs(module, d) {
            return Some(found);
        }
    }
    let mut names: Vec<(usize, String)> = Vec::new();
    let mut specs = Vec::new();
    for p in &d.params {
        let Some(a) = &p.annot else {
            if uses(&p.name.name) {
                return None;
            }
            specs.push(Spec::Array(Shape::scalar()));
            continue;
        };
        let mut dims = Vec::new();
        for dim in &a.dims {
            dims.push(match dim {
                Dim::Known(n, _) => usize::try_from(*n).ok()?,
                Dim::Named(id) => match names.iter().find(|(_, n)| *n == *id.name) {
                    Some((size, _)) => *size,
                    None => {
                        let size = *NAMED_SIZES.get(names.len())?;
                        names.push((size, id.name.to_string()));
                        size
                    }
                },
            });
        }
        specs.push(Spec::Array(Shape::from_dims(&dims)?));
    }
    let known = vec![None; specs.len()];
    Some((specs, known, names))
}

/// The structures of the arguments of the first call `f(a, b, ..)` of `d` (by name, with as
/// many arguments as it has parameters) outside every function body.
fn call_site_specs(module: &Module, d: &Def) -> Option<Specs> {
    let call = module.stmts.iter().find_map(|s| first_call_in_stmt(s, &d.name.name, d.params.len()))?;
    let ExprKind::Call(callee, args) = &call.kind else { return None };
    let loc = analysis::locate(module, callee.span.start as usize);
    let c = context(&loc.frames);
    let mut fresh = Session::new(Box::new(std::io::sink()));
    let tuple = Expr { kind: ExprKind::Tuple(args.clone()), span: call.span };
    let LVal::Tuple(values) = top_value(&mut fresh, module, &c, tuple)? else { return None };
    let specs = values.iter().map(Spec::of).collect();
    let mut known = Vec::new();
    for v in values.iter() {
        ad_ir::lower::spec::known_scalars(v, &mut known);
    }
    Some((specs, known, Vec::new()))
}

fn first_call_in_stmt<'m>(s: &'m Stmt, name: &str, arity: usize) -> Option<&'m Expr> {
    let in_block = |b: &'m Block| b.stmts.iter().find_map(|s| first_call_in_stmt(s, name, arity));
    match &s.kind {
        StmtKind::Def(_) | StmtKind::Import { .. } | StmtKind::Error => None,
        StmtKind::Let { value, .. } | StmtKind::Assign { value, .. } | StmtKind::Expr(value) => {
            first_call(value, name, arity)
        }
        StmtKind::For { start, end, body, .. } => {
            first_call(start, name, arity).or_else(|| first_call(end, name, arity)).or_else(|| in_block(body))
        }
        StmtKind::While { cond, body } => first_call(cond, name, arity).or_else(|| in_block(body)),
        StmtKind::ForEach { iter, body, .. } => first_call(iter, name, arity).or_else(|| in_block(body)),
        StmtKind::Update { target, value, .. } => {
            first_call(target, name, arity).or_else(|| first_call(value, name, arity))
        }
    }
}

fn first_call<'m>(e: &'m Expr, name: &str, arity: usize) -> Option<&'m Expr> {
    let in_all = |items: &'m [Expr]| items.iter().find_map(|x| first_call(x, name, arity));
    match &e.kind {
        ExprKind::Call(f, args) => {
            let direct = matches!(&f.kind, ExprKind::Var(v) if &**v == name) && args.len() == arity;
            if direct {
                return Some(e);
            }
            first_call(f, name, arity).or_else(|| in_all(args))
        }
        ExprKind::Tuple(items) | ExprKind::Array(items) => in_all(items),
        ExprKind::Unary(_, x) | ExprKind::Transpose(x) => first_call(x, name, arity),
        ExprKind::Binary(_, l, r) => first_call(l, name, arity).or_else(|| first_call(r, name, arity)),
        ExprKind::Index(x, args) => first_call(x, name, arity)
            .or_else(|| args.iter().flat_map(IndexArg::parts).find_map(|x| first_call(x, name, arity))),
        ExprKind::If(c, t, o) => first_call(c, name, arity).or_else(|| {
            std::iter::once(t)
                .chain(o.iter())
                .find_map(|b| b.stmts.iter().find_map(|s| first_call_in_stmt(s, name, arity)))
        }),
        // A lambda's body runs with arguments not known here.
        ExprKind::Lambda(_)
        | ExprKind::Num(_)
        | ExprKind::Str(_)
        | ExprKind::None
        | ExprKind::Var(_)
        | ExprKind::Error => None,
    }
}

fn is_error(s: &Stmt) -> bool {
    matches!(s.kind, StmtKind::Error)
}

/// `X[0]`: the value `x` has in the first iteration of `for x in X`.
fn first_of(x: &Expr) -> Expr {
    let zero = Expr { kind: ExprKind::Num(0.0), span: x.span };
    Expr {
        kind: ExprKind::Index(Box::new(x.clone()), vec![ad_syntax::ast::IndexArg::Index(zero)]),
        span: x.span,
    }
}

fn let_stmt(var: &Ident, value: &Expr) -> Stmt {
    Stmt { kind: StmtKind::Let { pat: Pattern::Name(var.clone()), value: value.clone() }, span: value.span }
}

/// `if 1 { pre; target } else { 0 }`: the target's value after the statements, in a scope
/// of its own.
fn in_block(mut pre: Vec<Stmt>, target: Expr, span: Span) -> Expr {
    pre.push(Stmt { kind: StmtKind::Expr(target), span });
    let one = Expr { kind: ExprKind::Num(1.0), span };
    let zero = Block {
        stmts: vec![Stmt { kind: StmtKind::Expr(Expr { kind: ExprKind::Num(0.0), span }), span }],
        span,
    };
    Expr { kind: ExprKind::If(Box::new(one), Block { stmts: pre, span }, Some(zero)), span }
}

fn dims(s: &Shape, names: &[(usize, String)]) -> String {
    let parts: Vec<String> = s
        .dims()
        .iter()
        .map(|d| names.iter().find(|(size, _)| size == d).map_or(d.to_string(), |(_, n)| n.clone()))
        .collect();
    format!("f64[{}]", parts.join(", "))
}

fn tuple(parts: Vec<String>) -> String {
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

/// A value's type as the REPL's `:type` shows it: `f64[3]`, `(f64[], f64[2, 2])`, `f(x: [n])`.
pub fn describe(v: &LVal, names: &[(usize, String)]) -> String {
    match v {
        LVal::Num(_) => "f64[]".to_string(),
        LVal::Arr(a) => dims(&a.shape(), names),
        LVal::Tuple(t) => tuple(t.iter().map(|v| describe(v, names)).collect()),
        LVal::Str(_) => "string".to_string(),
        LVal::None => "none".to_string(),
        LVal::Func(f) => match &**f {
            Func::Def(d) => signature(d),
            Func::Overloads(ds) => ds.iter().map(|d| signature(d)).collect::<Vec<_>>().join(" | "),
            Func::Closure { lam, .. } => lambda(lam),
            Func::Builtin(b) => builtin(b),
            Func::Transform { .. } => format!("{}: a derived function", f.name()),
            Func::Vmap { .. } => format!("{}: a batched function", f.name()),
            Func::Custom { .. } => format!("{}: a function with its own derivative rule", f.name()),
        },
    }
}

fn describe_spec(s: &Spec, names: &[(usize, String)]) -> String {
    match s {
        Spec::Array(shape) => dims(shape, names),
        Spec::Tuple(t) => tuple(t.iter().map(|s| describe_spec(s, names)).collect()),
        Spec::Str(_) => "string".to_string(),
        Spec::None => "none".to_string(),
        Spec::Func(f) => match f {
            FuncSpec::Def(d) => signature(d),
            FuncSpec::Overloads(ds) => ds.iter().map(|d| signature(d)).collect::<Vec<_>>().join(" | "),
            FuncSpec::Closure(lam, _) => lambda(lam),
            FuncSpec::Builtin(b) => builtin(b),
            FuncSpec::Transform(..) => "a derived function".to_string(),
            FuncSpec::Vmap(..) => "a batched function".to_string(),
            FuncSpec::Custom(..) => "a function with its own derivative rule".to_string(),
        },
    }
}

fn lambda(lam: &Lambda) -> String {
    let ps: Vec<&str> = lam.params.iter().map(|p| &*p.name).collect();
    format!("({}) => ...", ps.join(", "))
}

fn builtin(name: &str) -> String {
    signatures::builtins().get(name).map_or(name.to_string(), |c| c.signatures.join(" | "))
}
