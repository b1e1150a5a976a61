//! The formatter behind `ad fmt` and the language server: source text to source text, by the
//! conventions of the IR printer (`crates/ir/src/print.rs`), keeping every comment.
//!
//! Conventions: two spaces per block level; one space around binary operators, after `,`
//! and around `=` and `=>`; no space inside brackets; the fewest parentheses the precedence
//! table allows (as the printer writes them: `x ^ (-1)`, `-(a * b)`); one statement a line.
//! Literals are kept as written (`1e-3`, `true`, escapes in strings).
//!
//! The formatter does not wrap long lines. It keeps the line structure the author chose where
//! the grammar allows a line break inside a statement, and normalises the rest:
//! - a block stays on one line (`{ a; b }`) when it was written on one line, and otherwise
//!   has one statement a line, indented, with `}` on its own line (`} else {` joined);
//! - a bracketed list (arguments, array rows, tuples, parameters) broken after a `,` stays
//!   broken there, its later lines aligned after the opening bracket; one broken right after
//!   its opening bracket has one element a line, indented, and the closing bracket on a line
//!   of its own;
//! - a line broken after a binary operator, `=` or `=>` stays broken there, continued two
//!   spaces deeper than the line the statement starts on.
//!
//! Comments: a comment on a line of its own keeps its line, indented like the code around it;
//! a comment after code stays after that code, at its old column if there is room (so
//! aligned comments stay aligned) and one space after the code otherwise. Comment text is
//! never changed, so `#!` directives and `# expect:` blocks stay byte for byte. Runs of blank
//! lines between statements become one; blank lines at the start and end of a block go.
//! A statement with a comment somewhere the rules above do not reach (inside a shape
//! annotation, between `}` and `else`, ...) is kept exactly as written.
//!
//! Safety: the result is parsed again and must give the same tree (spans aside) and the same
//! comments in the same order; otherwise formatting fails with an internal error and the
//! caller keeps the original text. A text with syntax errors is not formatted.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::parser::parse;
use crate::span::{FileId, Span};
use crate::trivia::{comment_texts, Trivia};
use std::ops::Range;

/// Formats `text` (file `file` of a source map, for the diagnostics). Fails with the syntax
/// errors of a text that does not parse, or with an internal error if the result would not
/// mean the same.
pub fn format(file: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let (module, errors) = parse(file, text);
    if !errors.is_empty() {
        return Err(errors);
    }
    let trivia = Trivia::scan(text);
    let mut f = Formatter::new(text, &trivia);
    f.stmt_lines(&module.stmts, 0, text.len(), 0);
    let out = f.finish();
    let (again, errors) = parse(file, &out);
    if !errors.is_empty() || !same_tree(&module, &again) || comment_texts(text) != comment_texts(&out) {
        return Err(vec![Diagnostic::error(
            "internal error: formatting would change the meaning or the comments of this file, so \
             it was left as it is (this is a bug in AD)",
        )]);
    }
    Ok(out)
}

// Binding strength, loosest first: the operator table of grammar/ad.ebnf (as in print.rs).
// `if` and lambdas bind loosest: they are parenthesised as operands.
const P_LOOSE: u8 = 0;
const P_PREFIX: u8 = 6;
const P_POW: u8 = 7;
const P_POSTFIX: u8 = 8;
const P_ATOM: u8 = 9;

fn level(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And => 2,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => 3,
        BinOp::Add | BinOp::Sub => 4,
        BinOp::Mul | BinOp::Div | BinOp::MatMul => 5,
        BinOp::Pow => P_POW,
    }
}

/// The binding strength operands need on the left and on the right of `op`.
fn operand_levels(op: BinOp) -> (u8, u8) {
    let p = level(op);
    match op {
        // Right associative, and `-a ^ b` is `-(a ^ b)`: the left operand is postfix.
        BinOp::Pow => (P_POSTFIX, P_POW),
        // Comparisons do not chain.
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => (p + 1, p + 1),
        _ => (p, p + 1),
    }
}

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Num(_)
        | ExprKind::Str(_)
        | ExprKind::None
        | ExprKind::Var(_)
        | ExprKind::Tuple(_)
        | ExprKind::Array(_) => P_ATOM,
        ExprKind::Error => P_ATOM,
        ExprKind::Call(..) | ExprKind::Index(..) | ExprKind::Transpose(_) => P_POSTFIX,
        ExprKind::Unary(..) => P_PREFIX,
        ExprKind::Binary(op, ..) => level(*op),
        ExprKind::Lambda(_) | ExprKind::If(..) => P_LOOSE,
    }
}

fn range(s: Span) -> Range<usize> {
    s.start as usize..s.end as usize
}

/// The body of `def f(x) = e`, which the parser stores as a block of one expression statement
/// spanning exactly the expression (a `{ e }` block also spans its braces).
pub fn expression_body(b: &Block) -> Option<&Expr> {
    match b.stmts.as_slice() {
        [Stmt { kind: StmtKind::Expr(e), .. }] if e.span == b.span => Some(e),
        _ => None,
    }
}

/// The `if` of an `else if`: an else block holding one expression statement, the inner `if`,
/// with the same span.
fn else_if(b: &Block) -> Option<&Expr> {
    expression_body(b).filter(|e| matches!(e.kind, ExprKind::If(..)))
}

struct Formatter<'a> {
    src: &'a str,
    t: &'a Trivia,
    /// Which comments have been written.
    used: Vec<bool>,
    out: String,
    /// Where the current output line starts, and its indentation.
    line_start: usize,
    line_indent: usize,
    /// The indentation of a line continued after an operator, `=` or `=>`.
    cont: usize,
    /// A blank line is due before the next line.
    blank: bool,
}

/// Where the formatter was, to go back when a statement is kept as written.
struct Mark {
    len: usize,
    line_start: usize,
    line_indent: usize,
    cont: usize,
    blank: bool,
}

impl<'a> Formatter<'a> {
    fn new(src: &'a str, t: &'a Trivia) -> Formatter<'a> {
        Formatter {
            src,
            t,
            used: vec![false; t.comments.len()],
            out: String::with_capacity(src.len() + src.len() / 8),
            line_start: 0,
            line_indent: 0,
            cont: 2,
            blank: false,
        }
    }

    fn finish(mut self) -> String {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.out
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            line_start: self.line_start,
            line_indent: self.line_indent,
            cont: self.cont,
            blank: self.blank,
        }
    }

    fn reset(&mut self, m: Mark) {
        self.out.truncate(m.len);
        self.line_start = m.line_start;
        self.line_indent = m.line_indent;
        self.cont = m.cont;
        self.blank = m.blank;
    }

    /// Appends text; a line break in it (only in text kept as written) starts a line.
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
        if let Some(i) = s.rfind('\n') {
            self.line_start = self.out.len() - (s.len() - i - 1);
            let last = &self.out[self.line_start..];
            self.line_indent = last.len() - last.trim_start_matches(' ').len();
        }
    }

    /// Ends the current line (with a blank line after it if one is due) and indents the next.
    fn start_line(&mut self, indent: usize) {
        if !self.out.is_empty() {
            if self.blank {
                self.out.push('\n');
            }
            self.out.push('\n');
        }
        self.blank = false;
        self.line_start = self.out.len();
        self.line_indent = indent;
        self.out.extend(std::iter::repeat_n(' ', indent));
    }

    fn column(&self) -> usize {
        self.out[self.line_start..].chars().count()
    }

    fn line_has_content(&self) -> bool {
        self.out.len() > self.line_start + self.line_indent
    }

    fn text(&self, r: Range<usize>) -> &'a str {
        self.src.get(r).unwrap_or("")
    }

    fn comment_text(&self, i: usize) -> &'a str {
        self.text(self.t.comments[i].clone()).trim_end_matches('\r')
    }

    /// The column (in characters) of a byte offset of the source.
    fn source_column(&self, pos: usize) -> usize {
        let before = self.text(0..pos);
        let line = before.rfind('\n').map_or(0, |i| i + 1);
        before[line..].chars().count()
    }

    /// Writes comment `i` after the code on the current line: at its old column if the code
    /// ends before it, else one space after the code.
    fn trailing_comment(&mut self, i: usize) {
        let want = self.source_column(self.t.comments[i].start);
        let col = self.column();
        let pad = want.max(col + 1) - col;
        self.out.extend(std::iter::repeat_n(' ', pad));
        self.out.push_str(self.comment_text(i));
        self.used[i] = true;
    }

    fn own_line_comment(&mut self, i: usize, indent: usize) {
        self.start_line(indent);
        self.out.push_str(self.comment_text(i));
        self.used[i] = true;
    }

    /// The comments of a gap inside a statement, where a line break follows: the first after
    /// the code if it was on the same line, the others on lines of their own.
    fn gap_comments(&mut self, from: usize, to: usize, indent: usize) {
        let mut prev = from;
        for i in self.t.comments_in(from, to) {
            if self.used[i] {
                continue;
            }
            let c = self.t.comments[i].clone();
            if self.t.newlines_in(prev, c.start) == 0 && self.line_has_content() {
                self.trailing_comment(i);
            } else {
                self.own_line_comment(i, indent);
            }
            prev = c.end;
        }
    }

    /// The comments and blank lines between two statements (or a bracket and a statement).
    /// `first` is true until something has been written in this block; blank lines before
    /// that are dropped.
    fn line_gap(&mut self, from: usize, to: usize, indent: usize, first: &mut bool) {
        let mut prev = from;
        for i in self.t.comments_in(from, to) {
            if self.used[i] {
                continue;
            }
            let c = self.t.comments[i].clone();
            let breaks = self.t.newlines_in(prev, c.start);
            if breaks == 0 && self.line_has_content() {
                self.trailing_comment(i);
            } else {
                if breaks >= 2 && !*first {
                    self.blank = true;
                }
                self.own_line_comment(i, indent);
                *first = false;
            }
            prev = c.end;
        }
        if self.t.newlines_in(prev, to) >= 2 && !*first {
            self.blank = true;
        }
    }

    /// Statements one a line at `indent`, with the comments and blank lines of `from..to`.
    fn stmt_lines(&mut self, stmts: &[Stmt], from: usize, to: usize, indent: usize) {
        let mut pos = from;
        let mut first = true;
        for s in stmts {
            let r = range(s.span);
            self.line_gap(pos, r.start, indent, &mut first);
            self.start_line(indent);
            first = false;
            self.stmt_or_verbatim(s);
            pos = r.end;
        }
        self.line_gap(pos, to, indent, &mut first);
        self.blank = false;
    }

    /// A statement, or its text as written when it holds a comment the rules cannot place.
    fn stmt_or_verbatim(&mut self, s: &Stmt) {
        let r = range(s.span);
        let comments = self.t.comments_in(r.start, r.end);
        let mark = self.mark();
        self.stmt(s);
        if comments.clone().any(|i| !self.used[i]) {
            self.reset(mark);
            for i in comments {
                self.used[i] = true;
            }
            self.push(self.text(r));
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        let saved = self.cont;
        self.cont = self.line_indent + 2;
        match &s.kind {
            StmtKind::Def(d) => self.def(d),
            StmtKind::Let { pat, value } => {
                self.push("let ");
                self.pattern(pat);
                self.then_op("=", pat.span().end as usize, value.span.start as usize);
                self.expr(value, P_LOOSE);
            }
            StmtKind::Assign { pat, value } => {
                self.pattern(pat);
                self.then_op("=", pat.span().end as usize, value.span.start as usize);
                self.expr(value, P_LOOSE);
            }
            StmtKind::Update { target, op, value } => {
                self.expr(target, P_LOOSE);
                let symbol = op.map(|o| format!("{}=", o.symbol())).unwrap_or_else(|| "=".into());
                self.then_op(&symbol, target.span.end as usize, value.span.start as usize);
                self.expr(value, P_LOOSE);
            }
            StmtKind::For { var, start, end, body } => {
                self.push("for ");
                self.push(&var.name);
                self.push(" in ");
                self.expr(start, P_LOOSE + 1);
                self.push("..");
                self.expr(end, P_LOOSE + 1);
                self.push(" ");
                self.block(body);
            }
            StmtKind::ForEach { var, iter, body } => {
                self.push("for ");
                self.push(&var.name);
                self.push(" in ");
                self.expr(iter, P_LOOSE + 1);
                self.push(" ");
                self.block(body);
            }
            StmtKind::While { cond, body } => {
                self.push("while ");
                self.expr(cond, P_LOOSE + 1);
                self.push(" ");
                self.block(body);
            }
            StmtKind::Import { path_span, .. } => {
                self.push("import ");
                self.push(self.literal(*path_span));
            }
            StmtKind::Expr(e) => self.expr(e, P_LOOSE),
            StmtKind::Error => self.push(self.text(range(s.span))),
        }
        self.cont = saved;
    }

    fn def(&mut self, d: &Def) {
        self.push("def ");
        self.push(&d.name.name);
        let open = self.find_token(d.name.span.end as usize, "(");
        let after_params = d.params.last().map_or(open.end, |p| param_range(p).end);
        let close = self.find_token(after_params, ")");
        self.list("(", ")", open.end, close.start, &d.params, param_range, Self::param, false);
        match expression_body(&d.body) {
            Some(e) => {
                self.then_op("=", close.end, e.span.start as usize);
                self.expr(e, P_LOOSE);
            }
            None => {
                self.push(" ");
                self.block(&d.body);
            }
        }
    }

    fn param(&mut self, p: &Param) {
        self.push(&p.name.name);
        if let Some(a) = &p.annot {
            self.push(": [");
            for (i, d) in a.dims.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                match d {
                    Dim::Known(n, _) => self.push(&n.to_string()),
                    Dim::Named(id) => self.push(&id.name),
                }
            }
            self.push("]");
        }
    }

    fn pattern(&mut self, p: &Pattern) {
        match p {
            Pattern::Name(id) => self.push(&id.name),
            Pattern::Tuple(items, _) => {
                self.push("(");
                for (i, q) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.pattern(q);
                }
                if items.len() == 1 {
                    self.push(",");
                }
                self.push(")");
            }
        }
    }

    /// ` op` and then a space, or the line break the source has in `from..to` (with its
    /// comments), continued at the statement's continuation indent.
    fn then_op(&mut self, op: &str, from: usize, to: usize) {
        self.push(" ");
        self.push(op);
        if self.t.newlines_in(from, to) > 0 {
            let cont = self.cont;
            self.gap_comments(from, to, cont);
            self.start_line(cont);
        } else {
            self.push(" ");
        }
    }

    fn block(&mut self, b: &Block) {
        let r = range(b.span);
        let (inner_from, inner_to) = (r.start + 1, r.end.saturating_sub(1).max(r.start + 1));
        if self.t.newlines_in(r.start, r.end) == 0 {
            if b.stmts.is_empty() {
                self.push("{}");
                return;
            }
            self.push("{ ");
            for (i, s) in b.stmts.iter().enumerate() {
                if i > 0 {
                    self.push("; ");
                }
                self.stmt(s);
            }
            self.push(" }");
            return;
        }
        if b.stmts.is_empty() && self.t.comments_in(inner_from, inner_to).is_empty() {
            self.push("{}");
            return;
        }
        let base = self.line_indent;
        self.push("{");
        self.stmt_lines(&b.stmts, inner_from, inner_to, base + 2);
        self.start_line(base);
        self.push("}");
    }

    /// The first token at or after `pos` whose text is `tok` (a bracket); `pos..pos` if none.
    fn find_token(&self, pos: usize, tok: &str) -> Range<usize> {
        let mut i = self.t.tokens.partition_point(|t| t.start < pos);
        while let Some(t) = self.t.tokens.get(i) {
            if self.text(t.clone()) == tok {
                return t.clone();
            }
            i += 1;
        }
        pos..pos
    }

    /// The last token before `pos` whose text is `tok`; `pos..pos` if none.
    fn find_token_before(&self, pos: usize, tok: &str) -> Range<usize> {
        let mut i = self.t.tokens.partition_point(|t| t.start < pos);
        while i > 0 {
            i -= 1;
            let t = &self.t.tokens[i];
            if self.text(t.clone()) == tok {
                return t.clone();
            }
        }
        pos..pos
    }

    /// The text of a literal: its token, without the parentheses a span may include.
    fn literal(&self, span: Span) -> &'a str {
        let r = range(span);
        let mut i = self.t.tokens.partition_point(|t| t.start < r.start);
        while let Some(t) = self.t.tokens.get(i).filter(|t| t.start < r.end) {
            let s = self.text(t.clone());
            if s != "(" && s != "\n" {
                return s;
            }
            i += 1;
        }
        self.text(r)
    }

    /// A bracketed, comma-separated list. `open_end` is where the opening bracket ends in the
    /// source and `close_start` where the closing one starts. A list of one gets a trailing
    /// comma when `one_comma` (tuples).
    #[allow(clippy::too_many_arguments)]
    fn list<T>(
        &mut self,
        open: &str,
        close: &str,
        open_end: usize,
        close_start: usize,
        items: &[T],
        span: fn(&T) -> Range<usize>,
        item: fn(&mut Self, &T),
        one_comma: bool,
    ) {
        self.push(open);
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            self.push(close);
            return;
        };
        let saved = self.cont;
        let vertical = self.t.newlines_in(open_end, span(first).start) > 0;
        let base = self.line_indent;
        let align = if vertical { base + 2 } else { self.column() };
        if vertical {
            self.gap_comments(open_end, span(first).start, align);
            self.start_line(align);
        }
        self.cont = align + 2;
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.push(",");
                let (from, to) = (span(&items[i - 1]).end, span(it).start);
                if self.t.newlines_in(from, to) > 0 {
                    self.gap_comments(from, to, align);
                    self.start_line(align);
                } else {
                    self.push(" ");
                }
            }
            item(self, it);
        }
        if one_comma && items.len() == 1 {
            self.push(",");
        }
        if vertical {
            self.gap_comments(span(last).end, close_start, align);
            self.start_line(base);
        }
        self.push(close);
        // The rest of the line continues the line the list started on: a block after it
        // (a `def`'s body after its parameters) is indented from there.
        self.line_indent = base;
        self.cont = saved;
    }

    fn expr(&mut self, e: &Expr, min: u8) {
        if prec(e) < min {
            self.push("(");
            self.expr_inner(e);
            self.push(")");
        } else {
            self.expr_inner(e);
        }
    }

    fn expr_inner(&mut self, e: &Expr) {
        let r = range(e.span);
        match &e.kind {
            ExprKind::Num(_) | ExprKind::Str(_) => self.push(self.literal(e.span)),
            ExprKind::None => self.push("none"),
            ExprKind::Var(name) => self.push(name),
            ExprKind::Tuple(items) => {
                let open = match items.first() {
                    Some(f) => self.find_token_before(f.span.start as usize, "("),
                    None => r.start..r.start + 1,
                };
                let close = match items.last() {
                    Some(l) => self.find_token(l.span.end as usize, ")"),
                    None => r.end.saturating_sub(1)..r.end,
                };
                self.list("(", ")", open.end, close.start, items, expr_range, Self::item, true);
            }
            ExprKind::Array(items) => {
                let open = self.find_token(r.start, "[");
                let close = self.find_token(items.last().map_or(open.end, |l| l.span.end as usize), "]");
                self.list("[", "]", open.end, close.start, items, expr_range, Self::item, false);
            }
            ExprKind::Unary(op, x) => {
                self.push(op.symbol());
                self.expr(x, P_POW);
            }
            ExprKind::Binary(op, l, rhs) => {
                let (lmin, rmin) = operand_levels(*op);
                self.expr(l, lmin);
                self.then_op(op.symbol(), l.span.end as usize, rhs.span.start as usize);
                self.expr(rhs, rmin);
            }
            ExprKind::Call(f, args) => {
                self.expr(f, P_POSTFIX);
                let open = self.find_token(f.span.end as usize, "(");
                let close = self.find_token(args.last().map_or(open.end, |l| l.span.end as usize), ")");
                self.list("(", ")", open.end, close.start, args, expr_range, Self::item, false);
            }
            ExprKind::Index(x, args) => {
                self.expr(x, P_POSTFIX);
                let open = self.find_token(x.span.end as usize, "[");
                let close = self.find_token(args.last().map_or(open.end, |a| index_range(a).end), "]");
                self.list("[", "]", open.end, close.start, args, index_range, Self::index_arg, false);
            }
            ExprKind::Transpose(x) => {
                self.expr(x, P_POSTFIX);
                self.push("'");
            }
            ExprKind::Lambda(lam) => {
                match lam.params.as_slice() {
                    [p] => self.push(&p.name),
                    ps => {
                        self.push("(");
                        for (i, p) in ps.iter().enumerate() {
                            if i > 0 {
                                self.push(", ");
                            }
                            self.push(&p.name);
                        }
                        self.push(")");
                    }
                }
                let from = lam.params.last().map_or(lam.span.start, |p| p.span.end) as usize;
                self.then_op("=>", from, lam.body.span.start as usize);
                self.expr(&lam.body, P_LOOSE);
            }
            ExprKind::If(cond, then, otherwise) => {
                self.push("if ");
                self.expr(cond, P_LOOSE + 1);
                self.push(" ");
                self.block(then);
                if let Some(b) = otherwise {
                    self.push(" else ");
                    match else_if(b) {
                        Some(inner) => self.expr(inner, P_LOOSE),
                        None => self.block(b),
                    }
                }
            }
            ExprKind::Error => self.push(self.text(r)),
        }
    }

    fn item(&mut self, e: &Expr) {
        self.expr(e, P_LOOSE);
    }

    fn index_arg(&mut self, a: &IndexArg) {
        match a {
            IndexArg::Index(e) => self.expr(e, P_LOOSE),
            IndexArg::Slice { start, end, step, .. } => {
                if let Some(s) = start {
                    self.expr(s, P_LOOSE + 1);
                }
                self.push(":");
                if let Some(e) = end {
                    self.expr(e, P_LOOSE + 1);
                }
                if let Some(s) = step {
                    self.push(":");
                    self.expr(s, P_LOOSE + 1);
                }
            }
        }
    }
}

fn expr_range(e: &Expr) -> Range<usize> {
    range(e.span)
}

fn index_range(a: &IndexArg) -> Range<usize> {
    match a {
        IndexArg::Index(e) => range(e.span),
        IndexArg::Slice { span, .. } => range(*span),
    }
}

fn param_range(p: &Param) -> Range<usize> {
    let end = p.annot.as_ref().map_or(p.name.span.end, |a| a.span.end);
    p.name.span.start as usize..end as usize
}

// ---------------------------------------------------------------------------------------------
// Trees compared without their spans.

/// True when two modules are the same tree, spans aside (what formatting must preserve).
pub fn same_tree(a: &Module, b: &Module) -> bool {
    a.stmts.len() == b.stmts.len() && a.stmts.iter().zip(&b.stmts).all(|(x, y)| same_stmt(x, y))
}

fn same_all<T>(a: &[T], b: &[T], f: impl Fn(&T, &T) -> bool) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| f(x, y))
}

fn same_stmt(a: &Stmt, b: &Stmt) -> bool {
    use StmtKind::*;
    match (&a.kind, &b.kind) {
        (Def(x), Def(y)) => {
            x.name.name == y.name.name
                && same_all(&x.params, &y.params, |p, q| {
                    p.name.name == q.name.name
                        && match (&p.annot, &q.annot) {
                            (Option::None, Option::None) => true,
                            (Some(s), Some(t)) => same_all(&s.dims, &t.dims, |d, e| match (d, e) {
                                (Dim::Known(m, _), Dim::Known(n, _)) => m == n,
                                (Dim::Named(m), Dim::Named(n)) => m.name == n.name,
                                _ => false,
                            }),
                            _ => false,
                        }
                })
                && same_block(&x.body, &y.body)
        }
        (Let { pat: p, value: v }, Let { pat: q, value: w })
        | (Assign { pat: p, value: v }, Assign { pat: q, value: w }) => same_pattern(p, q) && same_expr(v, w),
        (For { var: i, start: s, end: e, body: b }, For { var: j, start: t, end: f, body: c }) => {
            i.name == j.name && same_expr(s, t) && same_expr(e, f) && same_block(b, c)
        }
        (While { cond: c, body: b }, While { cond: d, body: e }) => same_expr(c, d) && same_block(b, e),
        (ForEach { var: i, iter: x, body: b }, ForEach { var: j, iter: y, body: c }) => {
            i.name == j.name && same_expr(x, y) && same_block(b, c)
        }
        (Update { target: t, op: o, value: v }, Update { target: u, op: p, value: w }) => {
            o == p && same_expr(t, u) && same_expr(v, w)
        }
        (Import { path: p, .. }, Import { path: q, .. }) => p == q,
        (Expr(x), Expr(y)) => same_expr(x, y),
        (Error, Error) => true,
        _ => false,
    }
}

fn same_block(a: &Block, b: &Block) -> bool {
    same_all(&a.stmts, &b.stmts, same_stmt)
}

fn same_pattern(a: &Pattern, b: &Pattern) -> bool {
    match (a, b) {
        (Pattern::Name(x), Pattern::Name(y)) => x.name == y.name,
        (Pattern::Tuple(x, _), Pattern::Tuple(y, _)) => same_all(x, y, same_pattern),
        _ => false,
    }
}

/// Whether two expressions are the same tree, spans aside (lowering reads `x[i:i + k]` by
/// finding the start again in the end).
pub fn same_expr(a: &Expr, b: &Expr) -> bool {
    use ExprKind::*;
    match (&a.kind, &b.kind) {
        (Num(x), Num(y)) => x.to_bits() == y.to_bits(),
        (Str(x), Str(y)) => x == y,
        (Var(x), Var(y)) => x == y,
        (None, None) => true,
        (Tuple(x), Tuple(y)) | (Array(x), Array(y)) => same_all(x, y, same_expr),
        (Unary(o, x), Unary(p, y)) => o == p && same_expr(x, y),
        (Binary(o, x1, x2), Binary(p, y1, y2)) => o == p && same_expr(x1, y1) && same_expr(x2, y2),
        (Call(f, x), Call(g, y)) => same_expr(f, g) && same_all(x, y, same_expr),
        (Index(f, x), Index(g, y)) => {
            same_expr(f, g)
                && same_all(x, y, |i, j| match (i, j) {
                    (IndexArg::Index(e), IndexArg::Index(f)) => same_expr(e, f),
                    (
                        IndexArg::Slice { start: s, end: e, step: p, .. },
                        IndexArg::Slice { start: t, end: f, step: q, .. },
                    ) => {
                        let steps = match (p, q) {
                            (Some(p), Some(q)) => same_expr(p, q),
                            (p, q) => p.is_none() && q.is_none(),
                        };
                        same_opt(s, t) && same_opt(e, f) && steps
                    }
                    _ => false,
                })
        }
        (Transpose(x), Transpose(y)) => same_expr(x, y),
        (Lambda(l), Lambda(m)) => {
            same_all(&l.params, &m.params, |p, q| p.name == q.name) && same_expr(&l.body, &m.body)
        }
        (If(c, t, e), If(d, u, f)) => {
            same_expr(c, d)
                && same_block(t, u)
                && match (e, f) {
                    (Option::None, Option::None) => true,
                    (Some(x), Some(y)) => same_block(x, y),
                    _ => false,
                }
        }
        (Error, Error) => true,
        _ => false,
    }
}

fn same_opt(a: &Option<Expr>, b: &Option<Expr>) -> bool {
    match (a, b) {
        (Option::None, Option::None) => true,
        (Some(x), Some(y)) => same_expr(x, y),
        _ => false,
    }
}
