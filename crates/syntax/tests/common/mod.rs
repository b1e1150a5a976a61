//! Helpers shared by the syntax tests: a compact s-expression printer for the AST, and a
//! renderer for diagnostics.

#![allow(dead_code)]

use ad_syntax::ast::*;
use ad_syntax::{Diagnostic, FileId, SourceMap};

/// Parses `src` as file 0 and returns the module as s-expressions (one statement a line) and
/// the diagnostics.
pub fn parse(src: &str) -> (String, Vec<Diagnostic>) {
    let (m, d) = ad_syntax::parser::parse(FileId(0), src);
    (module(&m), d)
}

/// Renders diagnostics without colour, as if `src` were the file `test.ad`.
pub fn render(src: &str, diags: &[Diagnostic]) -> String {
    let mut sources = SourceMap::new();
    sources.add("test.ad", src);
    ad_syntax::render(&sources, diags, false)
}

pub fn module(m: &Module) -> String {
    m.stmts.iter().map(stmt).collect::<Vec<_>>().join("\n")
}

pub fn stmt(s: &Stmt) -> String {
    match &s.kind {
        StmtKind::Def(d) => {
            let params: Vec<String> = d
                .params
                .iter()
                .map(|p| match &p.annot {
                    None => p.name.name.to_string(),
                    Some(a) => format!("({} {})", p.name.name, shape(a)),
                })
                .collect();
            format!("(def {} ({}) {})", d.name.name, params.join(" "), block(&d.body))
        }
        StmtKind::Let { pat, value } => format!("(let {} {})", pattern(pat), expr(value)),
        StmtKind::Assign { pat, value } => format!("(set {} {})", pattern(pat), expr(value)),
        StmtKind::For { var, start, end, body } => {
            format!("(for {} {} {} {})", var.name, expr(start), expr(end), block(body))
        }
        StmtKind::While { cond, body } => format!("(while {} {})", expr(cond), block(body)),
        StmtKind::ForEach { var, iter, body } => {
            format!("(foreach {} {} {})", var.name, expr(iter), block(body))
        }
        StmtKind::Update { target, op: None, value } => format!("(update {} {})", expr(target), expr(value)),
        StmtKind::Update { target, op: Some(op), value } => {
            format!("(update{} {} {})", op.symbol(), expr(target), expr(value))
        }
        StmtKind::Import { path, .. } => format!("(import {path:?})"),
        StmtKind::Expr(e) => expr(e),
        StmtKind::Error => "error".into(),
    }
}

fn shape(a: &ShapeAnnot) -> String {
    let dims: Vec<String> = a
        .dims
        .iter()
        .map(|d| match d {
            Dim::Known(n, _) => n.to_string(),
            Dim::Named(i) => i.name.to_string(),
        })
        .collect();
    format!("[{}]", dims.join(" "))
}

pub fn block(b: &Block) -> String {
    format!("{{{}}}", b.stmts.iter().map(stmt).collect::<Vec<_>>().join("; "))
}

pub fn pattern(p: &Pattern) -> String {
    match p {
        Pattern::Name(i) => i.name.to_string(),
        Pattern::Tuple(ps, _) => format!("({})", ps.iter().map(pattern).collect::<Vec<_>>().join(" ")),
    }
}

fn list(items: &[Expr]) -> String {
    items.iter().map(|e| format!(" {}", expr(e))).collect()
}

pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Num(v) => format!("{v}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::None => "none".to_string(),
        ExprKind::Var(n) => n.to_string(),
        ExprKind::Tuple(items) => format!("(tuple{})", list(items)),
        ExprKind::Array(items) => format!("[{}]", list(items).trim_start()),
        ExprKind::Unary(op, x) => format!("({} {})", op.symbol(), expr(x)),
        ExprKind::Binary(op, a, b) => format!("({} {} {})", op.symbol(), expr(a), expr(b)),
        ExprKind::Call(f, args) => format!("(call {}{})", expr(f), list(args)),
        ExprKind::Index(x, args) => {
            let args: String = args
                .iter()
                .map(|a| match a {
                    IndexArg::Index(i) => format!(" {}", expr(i)),
                    IndexArg::Slice { start, end, step, .. } => format!(
                        " (: {} {}{})",
                        start.as_ref().map_or("_".into(), expr),
                        end.as_ref().map_or("_".into(), expr),
                        step.as_ref().map_or(String::new(), |s| format!(" {}", expr(s)))
                    ),
                })
                .collect();
            format!("(index {}{args})", expr(x))
        }
        ExprKind::Transpose(x) => format!("(' {})", expr(x)),
        ExprKind::Lambda(l) => {
            let ps: Vec<&str> = l.params.iter().map(|p| &*p.name).collect();
            format!("(fn ({}) {})", ps.join(" "), expr(&l.body))
        }
        ExprKind::If(c, a, b) => match b {
            None => format!("(if {} {})", expr(c), block(a)),
            Some(b) => format!("(if {} {} {})", expr(c), block(a), block(b)),
        },
        ExprKind::Error => "error".into(),
    }
}
