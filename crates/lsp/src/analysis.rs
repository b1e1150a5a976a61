//! Questions about the syntax tree at a position: what is there, which scopes enclose it,
//! where a name is bound, which names are visible. Nothing here knows about arrays.
//!
//! Scoping follows the language: a block's `let` is visible in the statements after it (not
//! in its own value); `for` binds its variable in its body; a `def`'s and a lambda's
//! parameters are visible in their bodies; top-level names are visible below their binding
//! at the top level, and everywhere inside function bodies (which read them when called);
//! `def`s are visible in the whole file (a function may call one defined after it).

use ad_syntax::ast::*;
use ad_syntax::Span;
use std::rc::Rc;

/// One level of context around a position, outermost first.
#[derive(Clone, Copy)]
pub enum Frame<'m> {
    /// In (or before) statement `index` of a statement list; `top` for the file's top level.
    Stmt { stmts: &'m [Stmt], index: usize, top: bool },
    /// In a `def`'s body.
    Def(&'m Def),
    /// In a `for` loop's body (`each`: `for x in X`, where `start` is `X`).
    For { var: &'m Ident, start: &'m Expr, each: bool },
    /// In a lambda's body.
    Lambda(&'m Lambda),
}

/// A name where it is bound.
#[derive(Clone, Copy)]
pub enum Binder<'m> {
    DefName(&'m Rc<Def>),
    Param(&'m Def, usize),
    /// A name in a `let` pattern.
    Let(&'m Ident),
    /// A name in the pattern of an assignment (it rebinds an existing name).
    Assign(&'m Ident),
    For(&'m Ident),
    LambdaParam(&'m Ident),
}

impl Binder<'_> {
    pub fn ident(&self) -> &Ident {
        match self {
            Binder::DefName(d) => &d.name,
            Binder::Param(d, k) => &d.params[*k].name,
            Binder::Let(i) | Binder::Assign(i) | Binder::For(i) | Binder::LambdaParam(i) => i,
        }
    }
}

/// The innermost thing at a position.
#[derive(Clone, Copy)]
pub enum Node<'m> {
    Expr(&'m Expr),
    Binder(Binder<'m>),
    /// Between statements, or on a keyword or bracket of a statement.
    None,
}

pub struct Located<'m> {
    pub frames: Vec<Frame<'m>>,
    pub node: Node<'m>,
}

/// Whether a span covers the character at `offset` (the one a cursor is on).
fn contains(s: Span, offset: usize) -> bool {
    (s.start as usize) <= offset && offset < (s.end as usize)
}

/// What is at `offset` in `module`, and the frames around it.
pub fn locate(module: &Module, offset: usize) -> Located<'_> {
    let mut frames = Vec::new();
    let node = stmt_list(&module.stmts, true, offset, &mut frames);
    Located { frames, node }
}

fn stmt_list<'m>(stmts: &'m [Stmt], top: bool, offset: usize, frames: &mut Vec<Frame<'m>>) -> Node<'m> {
    match stmts.iter().position(|s| contains(s.span, offset)) {
        Some(index) => {
            frames.push(Frame::Stmt { stmts, index, top });
            stmt(&stmts[index], offset, frames)
        }
        None => {
            let index = stmts.iter().take_while(|s| (s.span.end as usize) < offset).count();
            frames.push(Frame::Stmt { stmts, index, top });
            Node::None
        }
    }
}

fn block<'m>(b: &'m Block, offset: usize, frames: &mut Vec<Frame<'m>>) -> Node<'m> {
    stmt_list(&b.stmts, false, offset, frames)
}

fn pattern_binder(p: &Pattern, offset: usize) -> Option<&Ident> {
    match p {
        Pattern::Name(i) => contains(i.span, offset).then_some(i),
        Pattern::Tuple(ps, _) => ps.iter().find_map(|q| pattern_binder(q, offset)),
    }
}

fn stmt<'m>(s: &'m Stmt, offset: usize, frames: &mut Vec<Frame<'m>>) -> Node<'m> {
    match &s.kind {
        StmtKind::Def(d) => {
            if contains(d.name.span, offset) {
                return Node::Binder(Binder::DefName(d));
            }
            if let Some(k) = d.params.iter().position(|p| contains(p.name.span, offset)) {
                return Node::Binder(Binder::Param(d, k));
            }
            if contains(d.body.span, offset) {
                frames.push(Frame::Def(d));
                return block(&d.body, offset, frames);
            }
            Node::None
        }
        StmtKind::Let { pat, value } | StmtKind::Assign { pat, value } => {
            if let Some(i) = pattern_binder(pat, offset) {
                let b =
                    if matches!(s.kind, StmtKind::Let { .. }) { Binder::Let(i) } else { Binder::Assign(i) };
                return Node::Binder(b);
            }
            if contains(value.span, offset) {
                return expr(value, offset, frames);
            }
            Node::None
        }
        StmtKind::For { var, start, end, body } => {
            if contains(var.span, offset) {
                return Node::Binder(Binder::For(var));
            }
            for e in [start, end] {
                if contains(e.span, offset) {
                    return expr(e, offset, frames);
                }
            }
            if contains(body.span, offset) {
                frames.push(Frame::For { var, start, each: false });
                return block(body, offset, frames);
            }
            Node::None
        }
        StmtKind::While { cond, body } => {
            if contains(cond.span, offset) {
                return expr(cond, offset, frames);
            }
            if contains(body.span, offset) {
                return block(body, offset, frames);
            }
            Node::None
        }
        StmtKind::ForEach { var, iter, body } => {
            if contains(var.span, offset) {
                return Node::Binder(Binder::For(var));
            }
            if contains(iter.span, offset) {
                return expr(iter, offset, frames);
            }
            if contains(body.span, offset) {
                frames.push(Frame::For { var, start: iter, each: true });
                return block(body, offset, frames);
            }
            Node::None
        }
        StmtKind::Update { target, value, .. } => {
            for e in [target, value] {
                if contains(e.span, offset) {
                    return expr(e, offset, frames);
                }
            }
            Node::None
        }
        StmtKind::Expr(e) => expr(e, offset, frames),
        StmtKind::Import { .. } | StmtKind::Error => Node::None,
    }
}

fn expr<'m>(e: &'m Expr, offset: usize, frames: &mut Vec<Frame<'m>>) -> Node<'m> {
    let child = |items: &'m [Expr]| items.iter().find(|x| contains(x.span, offset));
    let found: Option<&'m Expr> = match &e.kind {
        ExprKind::Tuple(items) | ExprKind::Array(items) => child(items),
        ExprKind::Unary(_, x) | ExprKind::Transpose(x) => Some(&**x).filter(|x| contains(x.span, offset)),
        ExprKind::Binary(_, l, r) => [&**l, &**r].into_iter().find(|x| contains(x.span, offset)),
        ExprKind::Call(f, args) => {
            std::iter::once(&**f).chain(args.iter()).find(|x| contains(x.span, offset))
        }
        ExprKind::Index(x, args) => std::iter::once(&**x)
            .chain(args.iter().flat_map(IndexArg::parts))
            .find(|x| contains(x.span, offset)),
        ExprKind::Lambda(l) => {
            if let Some(p) = l.params.iter().find(|p| contains(p.span, offset)) {
                return Node::Binder(Binder::LambdaParam(p));
            }
            if contains(l.body.span, offset) {
                frames.push(Frame::Lambda(l));
                return expr(&l.body, offset, frames);
            }
            None
        }
        ExprKind::If(c, then, otherwise) => {
            if contains(c.span, offset) {
                return expr(c, offset, frames);
            }
            for b in std::iter::once(then).chain(otherwise.iter()) {
                if contains(b.span, offset) {
                    return block(b, offset, frames);
                }
            }
            None
        }
        ExprKind::Num(_) | ExprKind::Str(_) | ExprKind::None | ExprKind::Var(_) | ExprKind::Error => None,
    };
    match found {
        Some(x) => expr(x, offset, frames),
        None => Node::Expr(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Bindings.

/// Where a name is bound, and how.
#[derive(Clone)]
pub enum Binding<'m> {
    Def(&'m Rc<Def>),
    Param(&'m Def, usize),
    /// A `let`: the name in its pattern and the statement.
    Let(&'m Ident, &'m Stmt),
    For(&'m Ident, &'m Expr),
    LambdaParam(&'m Ident),
}

impl Binding<'_> {
    pub fn span(&self) -> Span {
        match self {
            Binding::Def(d) => d.name.span,
            Binding::Param(d, k) => d.params[*k].name.span,
            Binding::Let(i, _) | Binding::For(i, _) | Binding::LambdaParam(i) => i.span,
        }
    }

    pub fn is_function(&self) -> bool {
        matches!(self, Binding::Def(_))
    }
}

fn pattern_finds<'m>(p: &'m Pattern, name: &str) -> Option<&'m Ident> {
    match p {
        Pattern::Name(i) => (&*i.name == name).then_some(i),
        Pattern::Tuple(ps, _) => ps.iter().find_map(|q| pattern_finds(q, name)),
    }
}

/// The binding of `name` by statement `s`, if it binds it.
fn stmt_binds<'m>(s: &'m Stmt, name: &str) -> Option<Binding<'m>> {
    match &s.kind {
        StmtKind::Def(d) if &*d.name.name == name => Some(Binding::Def(d)),
        StmtKind::Let { pat, .. } => pattern_finds(pat, name).map(|i| Binding::Let(i, s)),
        _ => None,
    }
}

/// Every `def` of `name` in a statement list (overloads are all of them).
fn defs_named<'m>(stmts: &'m [Stmt], name: &str) -> Vec<Binding<'m>> {
    stmts
        .iter()
        .filter_map(|s| match &s.kind {
            StmtKind::Def(d) if &*d.name.name == name => Some(Binding::Def(d)),
            _ => None,
        })
        .collect()
}

/// Where `name`, used at the place `frames` describe, is bound (several places for a
/// function with overloads); empty for builtins, prelude functions and unknown names.
pub fn resolve<'m>(frames: &[Frame<'m>], name: &str) -> Vec<Binding<'m>> {
    let in_function =
        |k: usize| frames[k + 1..].iter().any(|f| matches!(f, Frame::Def(_) | Frame::Lambda(_)));
    for (k, f) in frames.iter().enumerate().rev() {
        match *f {
            Frame::Lambda(l) => {
                if let Some(p) = l.params.iter().find(|p| &*p.name == name) {
                    return vec![Binding::LambdaParam(p)];
                }
            }
            Frame::For { var, start, .. } => {
                if &*var.name == name {
                    return vec![Binding::For(var, start)];
                }
            }
            Frame::Def(d) => {
                if let Some(i) = d.params.iter().position(|p| &*p.name.name == name) {
                    return vec![Binding::Param(d, i)];
                }
            }
            Frame::Stmt { stmts, index, top } => {
                let before = &stmts[..index.min(stmts.len())];
                if let Some(b) = before.iter().rev().find_map(|s| stmt_binds(s, name)) {
                    return match b {
                        Binding::Def(_) => defs_named(stmts, name),
                        b => vec![b],
                    };
                }
                if top {
                    // Functions are visible in the whole file; inside a function body, so
                    // are the top-level names bound after it (it reads them when called).
                    let defs = defs_named(stmts, name);
                    if !defs.is_empty() {
                        return defs;
                    }
                    if in_function(k) {
                        if let Some(b) =
                            stmts[index.min(stmts.len())..].iter().find_map(|s| stmt_binds(s, name))
                        {
                            return vec![b];
                        }
                    }
                }
            }
        }
    }
    Vec::new()
}

/// The names visible at the place `frames` describe, innermost first (each once).
pub fn visible<'m>(frames: &[Frame<'m>]) -> Vec<(String, Binding<'m>)> {
    let mut out: Vec<(String, Binding<'m>)> = Vec::new();
    let add = |name: &str, b: Binding<'m>, out: &mut Vec<(String, Binding<'m>)>| {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), b));
        }
    };
    fn pattern_names<'m>(p: &'m Pattern, out: &mut Vec<&'m Ident>) {
        match p {
            Pattern::Name(i) => out.push(i),
            Pattern::Tuple(ps, _) => ps.iter().for_each(|q| pattern_names(q, out)),
        }
    }
    let in_function =
        |k: usize| frames[k + 1..].iter().any(|f| matches!(f, Frame::Def(_) | Frame::Lambda(_)));
    for (k, f) in frames.iter().enumerate().rev() {
        match *f {
            Frame::Lambda(l) => l.params.iter().for_each(|p| add(&p.name, Binding::LambdaParam(p), &mut out)),
            Frame::For { var, start, .. } => add(&var.name, Binding::For(var, start), &mut out),
            Frame::Def(d) => {
                for (i, p) in d.params.iter().enumerate() {
                    add(&p.name.name, Binding::Param(d, i), &mut out);
                }
            }
            Frame::Stmt { stmts, index, top } => {
                let end = if top && in_function(k) { stmts.len() } else { index.min(stmts.len()) };
                for s in stmts[..end].iter().rev() {
                    match &s.kind {
                        StmtKind::Def(d) => add(&d.name.name, Binding::Def(d), &mut out),
                        StmtKind::Let { pat, .. } => {
                            let mut names = Vec::new();
                            pattern_names(pat, &mut names);
                            for i in names {
                                add(&i.name, Binding::Let(i, s), &mut out);
                            }
                        }
                        _ => {}
                    }
                }
                if top {
                    for s in stmts {
                        if let StmtKind::Def(d) = &s.kind {
                            add(&d.name.name, Binding::Def(d), &mut out);
                        }
                    }
                }
            }
        }
    }
    out
}

/// `def f(x: [n, 3], y)`: a definition's signature as written.
pub fn signature(d: &Def) -> String {
    let params: Vec<String> = d.params.iter().map(param_text).collect();
    format!("{}({})", d.name.name, params.join(", "))
}

pub fn param_text(p: &Param) -> String {
    match &p.annot {
        None => p.name.name.to_string(),
        Some(a) => format!("{}: {}", p.name.name, annot_text(a)),
    }
}

pub fn annot_text(a: &ShapeAnnot) -> String {
    let dims: Vec<String> = a
        .dims
        .iter()
        .map(|d| match d {
            Dim::Known(n, _) => n.to_string(),
            Dim::Named(i) => i.name.to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The comment lines right above a statement that starts at `start` (its documentation),
/// without their `#`.
pub fn doc_comment(text: &str, start: usize) -> Option<String> {
    let before = text.get(..start)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    if !before[line_start..].trim().is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    let mut rest = &before[..line_start];
    while let Some(stripped) = rest.strip_suffix('\n') {
        let from = stripped.rfind('\n').map_or(0, |i| i + 1);
        let line = stripped[from..].trim();
        match line.strip_prefix('#') {
            Some(c) if !c.starts_with('!') => lines.push(c.strip_prefix(' ').unwrap_or(c).to_string()),
            _ => break,
        }
        rest = &stripped[..from];
    }
    lines.reverse();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The names a piece of syntax uses (an over-approximation: every variable mentioned).
pub fn mentions(e: &Expr, name: &str) -> bool {
    let any = |items: &[Expr]| items.iter().any(|x| mentions(x, name));
    match &e.kind {
        ExprKind::Var(v) => &**v == name,
        ExprKind::Num(_) | ExprKind::Str(_) | ExprKind::None | ExprKind::Error => false,
        ExprKind::Tuple(items) | ExprKind::Array(items) => any(items),
        ExprKind::Unary(_, x) | ExprKind::Transpose(x) => mentions(x, name),
        ExprKind::Binary(_, l, r) => mentions(l, name) || mentions(r, name),
        ExprKind::Call(f, args) => mentions(f, name) || any(args),
        ExprKind::Index(x, args) => {
            mentions(x, name) || args.iter().flat_map(IndexArg::parts).any(|x| mentions(x, name))
        }
        ExprKind::Lambda(l) => mentions(&l.body, name),
        ExprKind::If(c, t, o) => {
            mentions(c, name)
                || block_mentions(t, name)
                || o.as_ref().is_some_and(|b| block_mentions(b, name))
        }
    }
}

pub fn block_mentions(b: &Block, name: &str) -> bool {
    b.stmts.iter().any(|s| stmt_mentions(s, name))
}

pub fn stmt_mentions(s: &Stmt, name: &str) -> bool {
    match &s.kind {
        StmtKind::Def(d) => block_mentions(&d.body, name),
        StmtKind::Let { value, .. } => mentions(value, name),
        StmtKind::Assign { pat, value } => pattern_finds(pat, name).is_some() || mentions(value, name),
        StmtKind::For { start, end, body, .. } => {
            mentions(start, name) || mentions(end, name) || block_mentions(body, name)
        }
        StmtKind::While { cond, body } => mentions(cond, name) || block_mentions(body, name),
        StmtKind::ForEach { iter, body, .. } => mentions(iter, name) || block_mentions(body, name),
        StmtKind::Update { target, value, .. } => mentions(target, name) || mentions(value, name),
        StmtKind::Expr(e) => mentions(e, name),
        StmtKind::Import { .. } | StmtKind::Error => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ad_syntax::parser::parse;
    use ad_syntax::FileId;

    fn at(src: &str, marker: &str) -> usize {
        let i = src.find(marker).unwrap_or_else(|| panic!("no {marker:?} in {src:?}"));
        // A marker may start with context before the name: `= x` points at `x`.
        i + marker.find(|c: char| c.is_alphanumeric() || c == '_').unwrap_or(0)
    }

    /// The text of where the name at `marker` is bound.
    fn definition(src: &str, marker: &str) -> Vec<String> {
        let (m, _) = parse(FileId(0), src);
        let loc = locate(&m, at(src, marker));
        let name = match loc.node {
            Node::Expr(Expr { kind: ExprKind::Var(v), .. }) => v.to_string(),
            Node::Binder(b) => b.ident().name.to_string(),
            _ => panic!("no name at {marker:?}"),
        };
        resolve(&loc.frames, &name)
            .iter()
            .map(|b| {
                let s = b.span();
                let line = src[..s.start as usize].matches('\n').count() + 1;
                format!("{}@{line}", &src[s.start as usize..s.end as usize])
            })
            .collect()
    }

    #[test]
    fn resolves_by_scope() {
        let src = "let x = 1\ndef f(x: [n]) {\n  let y = x\n  for i in 0..3 { y = y + i }\n  g => g(y)\n}\nlet x = 2\nprint(x, f(x))\ndef f(a, b) = a\nprint(fw)\ndef fw(z) = x\n";
        assert_eq!(definition(src, "x\n  for"), ["x@2"]);
        assert_eq!(definition(src, "i }"), ["i@4"]);
        assert_eq!(definition(src, "g(y)"), ["g@5"]);
        assert_eq!(definition(src, "y)\n}"), ["y@3"]);
        assert_eq!(definition(src, "x, f(x)"), ["x@7"]);
        // Overloads: every definition.
        assert_eq!(definition(src, "f(x))"), ["f@2", "f@9"]);
        // A function defined further down.
        assert_eq!(definition(src, "fw)"), ["fw@11"]);
        // Inside a body, a top-level name is the last one before the def, or else after it.
        assert_eq!(definition(src, ") = x\n"), ["x@7"]);
        assert_eq!(definition("def h() = q\nlet q = 1", "q\n"), ["q@2"]);
        // A let's own value sees the binding before it.
        assert_eq!(definition("let a = 1\nlet a = a + 1", "a + 1"), ["a@1"]);
        assert!(definition("print(sum)", "sum").is_empty());
    }

    #[test]
    fn visible_names() {
        let src = "let a = 1\ndef f(p) {\n  let q = p\n  \n}\nlet late = 2\ndef g() = 0";
        let (m, _) = parse(FileId(0), src);
        let loc = locate(&m, at(src, "  \n") + 1);
        let names: Vec<String> = visible(&loc.frames).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["q", "p", "g", "late", "f", "a"]);
        let loc = locate(&m, at(src, "let late"));
        let names: Vec<String> = visible(&loc.frames).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["f", "a", "g"]);
    }

    #[test]
    fn doc_comments() {
        let src = "# not this\n\n# Adds one.\n# Really.\ndef f(x) = x + 1\n#! run\ndef g(x) = x";
        assert_eq!(doc_comment(src, at(src, "def f")).as_deref(), Some("Adds one.\nReally."));
        assert_eq!(doc_comment(src, at(src, "def g")), None);
        assert_eq!(doc_comment(src, 0), None);
    }
}
