//! Tokens to AST (chumsky, with a Pratt parser for operators).
//!
//! The grammar is `grammar/ad.ebnf`; every nonterminal there is a function of the same name
//! here (a test checks this). Operator precedence is the table in that file.
//!
//! Error handling, from the outside in:
//! - [`program`] splits the token stream into top-level statements itself and parses each one
//!   separately, so a mistake never spills into the next top-level statement.
//! - Inside a `{ block }` each statement recovers on its own: a statement that fails to parse
//!   is skipped up to the next separator (brackets balanced) and becomes [`StmtKind::Error`].
//!   Within one statement there is no recovery: its first error is its only error.
//! - Errors at a token the lexer already reported ([`Token::Error`], an unterminated string)
//!   are dropped, and so is a parser error on a line that already has an error.
//! - The rest become [`Diagnostic`]s that read "unexpected `)`, expected expression".
//!
//! Depth: the lexer refuses more than [`crate::lexer::MAX_NESTING`] open brackets, and
//! [`program`] refuses a statement whose syntax tree could be deeper than [`MAX_DEPTH`]
//! (long operator chains nest without brackets). The parser itself could go deeper (chumsky
//! grows its stack as needed), but the trees it returns stay shallow enough to walk, print
//! and drop recursively.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lexer::{lex_full, Lexed, Token};
use crate::span::{FileId, Span};
use crate::syntax_error::SyntaxError;
use chumsky::error::{RichPattern, RichReason};
use chumsky::input::MappedInput;
use chumsky::pratt::{infix, left, prefix, right, Operator};
use chumsky::prelude::*;
use std::rc::Rc;

/// Statements whose syntax tree could nest deeper than this are refused.
pub const MAX_DEPTH: usize = 512;

type In<'t> = MappedInput<'t, Token, Span, &'t [(Token, Span)]>;
type Err<'t> = SyntaxError<'t>;
type Extra<'t> = extra::Err<Err<'t>>;
type P<'t, O> = Boxed<'t, 't, In<'t>, O, Extra<'t>>;

/// A parser error of our own, with its message, label and hint.
fn custom_error<'t>(span: Span, message: &str, label: &str, hint: &str) -> Err<'t> {
    SyntaxError::custom(span, message, label, hint)
}

/// Parses one file or REPL entry. Never fails: statements that do not parse come back as
/// [`StmtKind::Error`] (and expressions as [`ExprKind::Error`]), each mistake reported once.
pub fn parse(file: FileId, text: &str) -> (Module, Vec<Diagnostic>) {
    let parsed = parse_full(file, text);
    (parsed.module, parsed.diagnostics)
}

/// True when `text` fails to parse only because it ends too early: an open bracket, a trailing
/// binary operator, `def f(x) {` without its `}`. The REPL then reads another line. A complete
/// but wrong entry (`1 +* 2`) is not incomplete.
pub fn is_incomplete(text: &str) -> bool {
    parse_full(FileId(0), text).incomplete
}

struct Parsed {
    module: Module,
    diagnostics: Vec<Diagnostic>,
    incomplete: bool,
}

fn parse_full(file: FileId, text: &str) -> Parsed {
    let lexed = lex_full(file, text);
    program(file, text, &lexed)
}

// ---------------------------------------------------------------------------------------------
// program: the top level, split into statements by hand.

/// One top-level statement's tokens, and the separator after it (if any).
struct Slice {
    range: std::ops::Range<usize>,
    separator: Option<(Token, Span)>,
}

/// Splits tokens at the separators that are not inside any bracket. Brackets are matched as
/// the lexer matches them (a closer pops back to its opener; a stray closer is ignored; after
/// an unterminated string the brackets of its line are dropped), so this agrees with the
/// lexer about which brackets are open.
fn split_statements(tokens: &[(Token, Span)], resets: &[(usize, usize)]) -> Vec<Slice> {
    let mut slices = Vec::new();
    let mut stack: Vec<Token> = Vec::new();
    let mut start = 0;
    let mut resets = resets.iter().peekable();
    for (i, (tok, span)) in tokens.iter().enumerate() {
        if let Some((_, depth)) = resets.next_if(|(at, _)| *at == i) {
            stack.truncate(*depth);
        }
        let split = match tok {
            Token::Semi => stack.is_empty(),
            // The lexer only keeps newlines that are not directly inside `(` or `[`.
            Token::Newline => !stack.contains(&Token::LBrace),
            t if t.is_open() => {
                stack.push(t.clone());
                false
            }
            t if t.is_close() => {
                if let Some(pos) = stack.iter().rposition(|o| o.closer().as_ref() == Some(t)) {
                    stack.truncate(pos);
                }
                false
            }
            _ => false,
        };
        if split {
            if start < i {
                slices.push(Slice { range: start..i, separator: Some((tok.clone(), *span)) });
            }
            stack.clear();
            start = i + 1;
        }
    }
    if start < tokens.len() {
        slices.push(Slice { range: start..tokens.len(), separator: None });
    }
    slices
}

/// An upper bound on the depth of the syntax tree the tokens can produce: every tree node
/// owns a token (an operator, a bracket, `=>`, `if`, a statement keyword), and nodes that are
/// siblings (separated by `,` or a statement separator inside the same bracket) do not add.
fn depth_bound(tokens: &[(Token, Span)]) -> usize {
    #[derive(Default)]
    struct Level {
        segment: usize,
        child: usize,
        best: usize,
    }
    impl Level {
        fn end_segment(&mut self) {
            self.best = self.best.max(self.segment + self.child);
            self.segment = 0;
            self.child = 0;
        }
    }
    let mut stack = vec![Level::default()];
    let close = |stack: &mut Vec<Level>| {
        if let Some(mut inner) = stack.pop() {
            inner.end_segment();
            if let Some(outer) = stack.last_mut() {
                outer.child = outer.child.max(inner.best);
            }
        }
    };
    for (tok, _) in tokens {
        use Token::*;
        match tok {
            t if t.is_open() => {
                if let Some(top) = stack.last_mut() {
                    // A block is two levels: the block and its statements.
                    top.segment += if *t == LBrace { 2 } else { 1 };
                }
                stack.push(Level::default());
            }
            t if t.is_close() && stack.len() > 1 => close(&mut stack),
            Comma | Semi | Newline => {
                if let Some(top) = stack.last_mut() {
                    top.end_segment();
                }
            }
            t if t.is_binary_op() => stack.last_mut().into_iter().for_each(|l| l.segment += 1),
            Bang | Quote | FatArrow | If | Def | Let | For | While | Import => {
                stack.last_mut().into_iter().for_each(|l| l.segment += 1)
            }
            _ => {}
        }
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    stack.pop().map_or(0, |mut l| {
        l.end_segment();
        l.best + 1
    })
}

/// `program ::= separator* (statement (separator+ statement)*)? separator*`
///
/// Parses each top-level statement on its own (see the module docs).
fn program(file: FileId, text: &str, lexed: &Lexed) -> Parsed {
    let tokens = lexed.tokens.as_slice();
    let mut diagnostics: Vec<(Diagnostic, bool)> = Vec::new();
    let mut stmts = Vec::new();
    let slices = split_statements(tokens, &lexed.resets);
    let parser = statement_parser().then_ignore(end());
    let text_end = tokens.last().map_or(0, |(_, s)| s.end as usize);
    let eoi_at_end = Span::new(file, text_end..text_end);
    let last = slices.len().saturating_sub(1);

    for (i, slice) in slices.iter().enumerate() {
        let toks = &tokens[slice.range.clone()];
        let span = toks[0].1.join(toks[toks.len() - 1].1);
        if lexed.stopped && i == last {
            // Lexing stopped inside this statement (nesting too deep): do not look inside.
            let end = text.len();
            stmts.push(Stmt { kind: StmtKind::Error, span: Span::new(file, span.start as usize..end) });
            continue;
        }
        if depth_bound(toks) > MAX_DEPTH {
            diagnostics.push((
                Diagnostic::error(format!("statement is nested too deeply (more than {MAX_DEPTH} levels)"))
                    .with_label(span, "in this statement")
                    .with_hint("split it into smaller statements with `let`"),
                false,
            ));
            stmts.push(Stmt { kind: StmtKind::Error, span });
            continue;
        }
        let eoi = match &slice.separator {
            Some((_, s)) => Span { end: s.start, ..*s },
            None => eoi_at_end,
        };
        let (out, errors) = parser.parse(toks.split_token_span(eoi)).into_output_errors();
        let ctx = ErrorContext { separator: slice.separator.clone(), eoi, unclosed: &lexed.unclosed };
        // An unterminated string swallows the brackets of its line, so the rest of the
        // statement is a jumble: report nothing after it.
        let cut = toks.iter().find(|(t, _)| *t == Token::UnterminatedStr).map_or(u32::MAX, |(_, s)| s.start);
        for e in errors {
            if let Some(d) = ctx.diagnostic(e) {
                if d.0.span().is_none_or(|s| s.start < cut) {
                    diagnostics.push(d);
                }
            }
        }
        stmts.push(out.unwrap_or(Stmt { kind: StmtKind::Error, span }));
    }

    // Report in source order. Lexical errors are all kept; a parser error is dropped when its
    // line already has an error, since a second complaint on the line of the first is nearly
    // always a consequence of it rather than a new mistake.
    // Lines are found by binary search in the line starts, and the lines that already have
    // an error are kept in a set, so that this stays linear in the number of errors.
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let line_of = |d: &Diagnostic| d.span().map(|s| line_starts.partition_point(|&l| l <= s.start as usize));
    let mut out: Vec<(Diagnostic, bool)> = lexed.diagnostics.iter().map(|d| (d.clone(), false)).collect();
    let mut lines: std::collections::HashSet<Option<usize>> = out.iter().map(|(d, _)| line_of(d)).collect();
    diagnostics.sort_by_key(|(d, _)| d.span().map(|s| (s.start, s.end)));
    for (d, at_end) in diagnostics {
        if lines.insert(line_of(&d)) {
            out.push((d, at_end));
        }
    }
    out.sort_by_key(|(d, _)| d.span().map(|s| (s.start, s.end)));
    // More input can only help if the next line would continue this one: a bracket is open,
    // or the last token is one after which a newline is dropped (`1 +`, `let x =`).
    let continues = !lexed.unclosed.is_empty() || tokens.last().is_some_and(|(t, _)| t.continues_line());
    let incomplete = !lexed.stopped && continues && !out.is_empty() && out.iter().all(|(_, at_end)| *at_end);
    Parsed { module: Module { stmts }, diagnostics: out.into_iter().map(|(d, _)| d).collect(), incomplete }
}

// ---------------------------------------------------------------------------------------------
// Error messages.

struct ErrorContext<'a> {
    /// The separator after the statement being parsed (its end of input), if any.
    separator: Option<(Token, Span)>,
    eoi: Span,
    unclosed: &'a [(Token, Span)],
}

/// Tokens that can start an expression: "expected expression" covers them.
fn starts_expression(t: &Token) -> bool {
    use Token::*;
    matches!(t, Num(_) | Str(_) | Ident(_) | True | False | None | LParen | LBracket | If | Minus | Bang)
}

/// How an expected item is named, and where it goes in a list.
/// After an expression (`after_expr`), `'`, `=`, `=>` and `+=` (and its kin) count as
/// operators too.
fn expected_name(p: &RichPattern<'_, Token>, after_expr: bool) -> Option<(u8, String)> {
    Some(match p {
        RichPattern::Token(t) => {
            let t: &Token = t;
            match t {
                Token::Newline | Token::Semi => (4, "end of statement".into()),
                Token::Comma => (0, t.to_string()),
                Token::RBrace => (5, t.to_string()),
                t if t.is_binary_op() => (3, "operator".into()),
                Token::Quote
                | Token::Assign
                | Token::FatArrow
                | Token::PlusAssign
                | Token::MinusAssign
                | Token::StarAssign
                | Token::SlashAssign
                    if after_expr =>
                {
                    (3, "operator".into())
                }
                t => (1, t.to_string()),
            }
        }
        RichPattern::Label(l) if l == "operator" => (3, l.to_string()),
        RichPattern::Label(l) => (2, l.to_string()),
        RichPattern::Identifier(i) => (1, format!("`{i}`")),
        RichPattern::EndOfInput => (4, "end of statement".into()),
        _ => return None,
    })
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl ErrorContext<'_> {
    /// The diagnostic for a parser error, and whether it is "input ended too early"; `None`
    /// for errors at a token the lexer already reported.
    fn diagnostic(&self, e: Err<'_>) -> Option<(Diagnostic, bool)> {
        let rich = match e {
            SyntaxError::Custom(c) => {
                let mut d = Diagnostic::error(c.message).with_label(c.span, c.label);
                if !c.hint.is_empty() {
                    d = d.with_hint(c.hint);
                }
                return Some((d, false));
            }
            SyntaxError::Rich(r) => r,
        };
        let span = *rich.span();
        match rich.into_reason() {
            // Custom errors are ours (above); chumsky makes none of its own.
            RichReason::Custom(msg) => Some((Diagnostic::error(msg).with_label(span, ""), false)),
            RichReason::ExpectedFound { expected, found } => {
                let found: Option<Token> = found.map(|t| (*t).clone());
                if matches!(found, Some(Token::Error | Token::UnterminatedStr)) {
                    return None;
                }
                let at_real_end = found.is_none() && self.separator.is_none();
                let (found_name, span) = match (&found, &self.separator) {
                    (Some(t), _) => (t.to_string(), span),
                    (None, Some((sep, sep_span))) => (sep.to_string(), *sep_span),
                    (None, None) => ("end of input".to_string(), self.eoi),
                };
                let has_label =
                    |l: &str| expected.iter().any(|p| matches!(p, RichPattern::Label(x) if x == l));
                let expects_expr = has_label("expression");
                let expects_operator = has_label("operator")
                    || expected.iter().any(|p| match p {
                        RichPattern::Token(t) => t.is_binary_op() && !(expects_expr && **t == Token::Minus),
                        _ => false,
                    });
                let mut items: Vec<(u8, String)> = expected
                    .iter()
                    .filter(|p| match p {
                        // "expression" covers every token that can start one; after an
                        // expression, `(` and `[` are a call and an index: operators.
                        RichPattern::Token(t) => {
                            let covered = (expects_expr && starts_expression(t))
                                || (expects_operator && matches!(**t, Token::LParen | Token::LBracket));
                            !covered
                        }
                        // An identifier is an expression (a lambda's parameter, or a variable).
                        RichPattern::Label(l) => !(expects_expr && l == "identifier"),
                        _ => true,
                    })
                    .filter_map(|p| expected_name(p, expects_operator))
                    .collect();
                let mut labels = Vec::new();
                // At the end of the input, name the bracket that is still open.
                if at_real_end {
                    if let Some((open, open_span)) = self.unclosed.last() {
                        if let Some(closer) = open.closer() {
                            let name = closer.to_string();
                            if items.iter().any(|(_, s)| *s == name) {
                                items = vec![(1, name)];
                                labels.push((*open_span, format!("{open} opened here is never closed")));
                            }
                        }
                    }
                }
                items.sort();
                items.dedup();
                let names: Vec<String> = items.into_iter().map(|(_, s)| s).collect();
                let (message, label) = if names.is_empty() {
                    (format!("unexpected {found_name}"), format!("unexpected {found_name}"))
                } else {
                    let list = join_or(&names);
                    (format!("unexpected {found_name}, expected {list}"), format!("expected {list}"))
                };
                let mut d = Diagnostic::error(message).with_label(span, label);
                for (s, m) in labels {
                    d = d.with_label(s, m);
                }
                Some((d, at_real_end))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The grammar. Each function is the nonterminal of the same name in grammar/ad.ebnf.

/// `separator ::= NEWLINE | ";"`
fn separator<'t>() -> impl Parser<'t, In<'t>, (), Extra<'t>> + Clone {
    just(Token::Newline).or(just(Token::Semi)).ignored()
}

fn ident<'t>() -> impl Parser<'t, In<'t>, Ident, Extra<'t>> + Clone {
    select! { Token::Ident(name) => name }
        .map_with(|name, e| Ident { name, span: e.span() })
        .labelled("identifier")
}

/// The statement parser, with everything it needs tied together.
fn statement_parser<'t>() -> P<'t, Stmt> {
    recursive(|stmt| {
        let block = block(stmt.boxed());
        let expr = expr(block.clone());
        statement(expr, block)
    })
    .boxed()
}

/// `statement ::= def_stmt | import_stmt | let_stmt | for_stmt | while_stmt | assign_stmt | expr_stmt`
fn statement<'t>(expr: P<'t, Expr>, block: P<'t, Block>) -> P<'t, Stmt> {
    choice((
        def_stmt(expr.clone(), block.clone()),
        import_stmt(),
        let_stmt(expr.clone()),
        for_stmt(expr.clone(), block.clone()),
        while_stmt(expr.clone(), block),
        assign_stmt(expr.clone()),
        expr_stmt(expr),
    ))
    .labelled("statement")
    .boxed()
}

/// `block ::= "{" separator* (statement (separator+ statement)*)? separator* "}"`
///
/// A statement that fails to parse is skipped to the next separator and becomes
/// [`StmtKind::Error`], so one block can report several mistakes.
fn block<'t>(stmt: P<'t, Stmt>) -> P<'t, Block> {
    let end_of_stmt = choice((just(Token::Newline), just(Token::Semi), just(Token::RBrace))).rewind();
    let item = stmt.then_ignore(end_of_stmt).recover_with(via_parser(skip_statement()));
    just(Token::LBrace)
        .ignore_then(separator().repeated())
        .ignore_then(
            item.separated_by(separator().repeated().at_least(1)).allow_trailing().collect::<Vec<_>>(),
        )
        .then_ignore(just(Token::RBrace))
        .map_with(|stmts, e| Block { stmts, span: e.span() })
        .boxed()
}

/// Error recovery: skips the rest of a statement in a block, up to a separator or the `}` that
/// ends the block, keeping brackets balanced. Fails if there is nothing to skip.
fn skip_statement<'t>() -> impl Parser<'t, In<'t>, Stmt, Extra<'t>> + Clone {
    custom(|inp| {
        let start = inp.cursor();
        let mut open: Vec<Token> = Vec::new();
        let mut skipped = 0usize;
        while let Some(tok) = inp.peek() {
            match &tok {
                // The lexer abandoned the brackets of this line.
                Token::UnterminatedStr => open.clear(),
                Token::Semi if open.is_empty() => break,
                Token::Newline if !open.contains(&Token::LBrace) => break,
                t if t.is_open() => open.push(t.clone()),
                t if t.is_close() => match open.iter().rposition(|o| o.closer().as_ref() == Some(t)) {
                    Some(pos) => open.truncate(pos),
                    None if *t == Token::RBrace => break,
                    None => {}
                },
                _ => {}
            }
            inp.skip();
            skipped += 1;
        }
        let span = inp.span_since(&start);
        if skipped == 0 {
            Err(custom_error(span, "nothing to skip", "", ""))
        } else {
            Ok(Stmt { kind: StmtKind::Error, span })
        }
    })
}

/// `def_stmt ::= "def" IDENT "(" (param ("," param)* ","?)? ")" ("=" expr | block)`
fn def_stmt<'t>(expr: P<'t, Expr>, block: P<'t, Block>) -> P<'t, Stmt> {
    let params = param()
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LParen), just(Token::RParen));
    let body = choice((
        just(Token::Assign).ignore_then(expr).map(|e: Expr| {
            let span = e.span;
            Block { stmts: vec![Stmt { kind: StmtKind::Expr(e), span }], span }
        }),
        block,
    ));
    just(Token::Def)
        .ignore_then(ident())
        .then(params)
        .then(body)
        .map_with(|((name, params), body), e| {
            let span = e.span();
            Stmt { kind: StmtKind::Def(Rc::new(Def { name, params, body, span })), span }
        })
        .boxed()
}

/// `import_stmt ::= "import" STRING`
fn import_stmt<'t>() -> P<'t, Stmt> {
    just(Token::Import)
        .ignore_then(
            select! { Token::Str(path) => path }
                .map_with(|path, e| (path, e.span()))
                .labelled("file name in quotes, such as \"lib.ad\""),
        )
        .map_with(|(path, path_span), e| Stmt { kind: StmtKind::Import { path, path_span }, span: e.span() })
        .boxed()
}

/// `param ::= IDENT (":" shape_annot)?`
fn param<'t>() -> impl Parser<'t, In<'t>, Param, Extra<'t>> + Clone {
    ident()
        .then(just(Token::Colon).ignore_then(shape_annot()).or_not())
        .map(|(name, annot)| Param { name, annot })
}

/// `shape_annot ::= "[" (dim ("," dim)* ","?)? "]"`
fn shape_annot<'t>() -> impl Parser<'t, In<'t>, ShapeAnnot, Extra<'t>> + Clone {
    dim()
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
        .map_with(|dims, e| ShapeAnnot { dims, span: e.span() })
        .labelled("shape such as `[n, 3]`")
}

/// `dim ::= NUMBER | IDENT` (a number must be a non-negative integer)
fn dim<'t>() -> impl Parser<'t, In<'t>, Dim, Extra<'t>> + Clone {
    let known = select! { Token::Num(v) => v }.validate(|v: f64, e, emitter| {
        let span: Span = e.span();
        if v >= 0.0 && v.fract() == 0.0 && v <= 9.0e15 {
            Dim::Known(v as u64, span)
        } else {
            emitter.emit(custom_error(
                span,
                "a dimension must be a non-negative integer or a name",
                "not a dimension",
                "write a size such as `[3]` or a name such as `[n]`",
            ));
            Dim::Known(0, span)
        }
    });
    choice((known, ident().map(Dim::Named))).labelled("dimension")
}

/// `let_stmt ::= "let" pattern "=" expr`
fn let_stmt<'t>(expr: P<'t, Expr>) -> P<'t, Stmt> {
    just(Token::Let)
        .ignore_then(pattern())
        .then_ignore(just(Token::Assign))
        .then(expr)
        .map_with(|(pat, value), e| Stmt { kind: StmtKind::Let { pat, value }, span: e.span() })
        .boxed()
}

/// `assign_stmt ::= pattern "=" expr`
fn assign_stmt<'t>(expr: P<'t, Expr>) -> P<'t, Stmt> {
    pattern()
        .then_ignore(just(Token::Assign))
        .then(expr)
        .map_with(|(pat, value), e| Stmt { kind: StmtKind::Assign { pat, value }, span: e.span() })
        .boxed()
}

/// `pattern ::= IDENT | "(" (pattern ("," pattern)* ","?)? ")"`
///
/// `(p)` is `p`; `(p,)` is a tuple of one.
fn pattern<'t>() -> P<'t, Pattern> {
    recursive(|pattern| {
        let tuple = pattern
            .separated_by(just(Token::Comma))
            .collect::<Vec<_>>()
            .then(just(Token::Comma).or_not())
            .delimited_by(just(Token::LParen), just(Token::RParen))
            .validate(|(mut items, comma): (Vec<Pattern>, Option<Token>), e, emitter| {
                let span: Span = e.span();
                if items.is_empty() && comma.is_some() {
                    emitter.emit(custom_error(
                        span,
                        "unexpected `,` in `(,)`",
                        "expected a name before `,`",
                        "",
                    ));
                }
                if items.len() == 1 && comma.is_none() {
                    items.pop().unwrap_or(Pattern::Tuple(Vec::new(), span))
                } else {
                    Pattern::Tuple(items, span)
                }
            });
        choice((ident().map(Pattern::Name), tuple))
    })
    .labelled("pattern")
    .boxed()
}

/// `for_stmt ::= "for" IDENT "in" expr (".." expr)? block`
fn for_stmt<'t>(expr: P<'t, Expr>, block: P<'t, Block>) -> P<'t, Stmt> {
    just(Token::For)
        .ignore_then(ident())
        .then_ignore(just(Token::In))
        .then(expr.clone())
        .then(just(Token::DotDot).ignore_then(expr).or_not())
        .then(block)
        .map_with(|(((var, start), end), body), e| Stmt {
            kind: match end {
                Some(end) => StmtKind::For { var, start, end, body },
                None => StmtKind::ForEach { var, iter: start, body },
            },
            span: e.span(),
        })
        .boxed()
}

/// `while_stmt ::= "while" expr block`
fn while_stmt<'t>(expr: P<'t, Expr>, block: P<'t, Block>) -> P<'t, Stmt> {
    just(Token::While)
        .ignore_then(expr)
        .then(block)
        .map_with(|(cond, body), e| Stmt { kind: StmtKind::While { cond, body }, span: e.span() })
        .boxed()
}

/// `expr_stmt ::= expr ( ("=" | "+=" | "-=" | "*=" | "/=") expr )?`
///
/// Indexed updates (`x[i] = v`) and compound assignments (`x += v`, `x[i] -= v`) are parsed
/// here; so are `f(x) = 1` and the like (an expression that is not a pattern, then `=`), to
/// report them well.
fn expr_stmt<'t>(expr: P<'t, Expr>) -> P<'t, Stmt> {
    let op = choice((
        just(Token::Assign).to(None),
        just(Token::PlusAssign).to(Some(BinOp::Add)),
        just(Token::MinusAssign).to(Some(BinOp::Sub)),
        just(Token::StarAssign).to(Some(BinOp::Mul)),
        just(Token::SlashAssign).to(Some(BinOp::Div)),
    ));
    expr.clone()
        .then(op.then(expr).or_not())
        .validate(|(target, value), e, emitter| {
            let span: Span = e.span();
            let indexed =
                matches!(&target.kind, ExprKind::Index(base, _) if matches!(base.kind, ExprKind::Var(_)));
            match value {
                None => Stmt { kind: StmtKind::Expr(target), span },
                Some((op, value)) if indexed || (op.is_some() && matches!(target.kind, ExprKind::Var(_))) => {
                    Stmt { kind: StmtKind::Update { target, op, value }, span }
                }
                Some(_) => {
                    let looks_like_def = match &target.kind {
                        ExprKind::Call(f, args) => {
                            matches!(f.kind, ExprKind::Var(_))
                                && args.iter().all(|a| matches!(a.kind, ExprKind::Var(_)))
                        }
                        _ => false,
                    };
                    let hint = if looks_like_def {
                        "to define a function, write `def f(x) = ...`"
                    } else {
                        "only names and parts of named arrays can be assigned: `x = ...`, \
                         `(a, b) = ...`, `x[i] = ...`"
                    };
                    emitter.emit(custom_error(
                        target.span,
                        "cannot assign to this expression",
                        "not a name or a tuple of names",
                        hint,
                    ));
                    Stmt { kind: StmtKind::Error, span }
                }
            }
        })
        .boxed()
}

/// `expr ::= lambda | operator_expr`
fn expr<'t>(block: P<'t, Block>) -> P<'t, Expr> {
    recursive(|expr| {
        let expr = expr.boxed();
        let atom = atom(expr.clone(), block);
        let postfix = postfix_expr(atom, expr.clone());
        choice((lambda(expr), operator_expr(postfix)))
    })
    .labelled("expression")
    .boxed()
}

/// `lambda ::= lambda_params "=>" expr`
fn lambda<'t>(expr: P<'t, Expr>) -> P<'t, Expr> {
    lambda_params()
        .then_ignore(just(Token::FatArrow))
        .then(expr)
        .map_with(|(params, body), e| {
            let span = e.span();
            Expr { kind: ExprKind::Lambda(Rc::new(Lambda { params, body, span })), span }
        })
        .boxed()
}

/// `lambda_params ::= IDENT | "(" (IDENT ("," IDENT)* ","?)? ")"`
fn lambda_params<'t>() -> impl Parser<'t, In<'t>, Vec<Ident>, Extra<'t>> + Clone {
    choice((
        ident().map(|i| vec![i]),
        ident()
            .separated_by(just(Token::Comma))
            .allow_trailing()
            .collect::<Vec<_>>()
            .delimited_by(just(Token::LParen), just(Token::RParen)),
    ))
}

fn is_comparison(op: BinOp) -> bool {
    matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne)
}

/// How a binary operator groups with itself.
#[derive(Clone, Copy)]
enum Assoc {
    Left,
    Right,
    /// Does not chain: `a < b < c` is an error.
    Never,
}

/// The operators of one precedence level, and what they mean.
type OpLevel = &'static [(Token, BinOp)];

/// The binary operators from tightest to loosest: the precedence table of grammar/ad.ebnf.
/// Prefix `-` and `!` sit between levels 7 and 5, at [`PREFIX_PRECEDENCE`].
const BINARY_OPS: &[(u16, Assoc, OpLevel)] = &[
    (7, Assoc::Right, &[(Token::Caret, BinOp::Pow)]),
    (5, Assoc::Left, &[(Token::Star, BinOp::Mul), (Token::Slash, BinOp::Div), (Token::At, BinOp::MatMul)]),
    (4, Assoc::Left, &[(Token::Plus, BinOp::Add), (Token::Minus, BinOp::Sub)]),
    (
        3,
        Assoc::Never,
        &[
            (Token::Lt, BinOp::Lt),
            (Token::Le, BinOp::Le),
            (Token::Gt, BinOp::Gt),
            (Token::Ge, BinOp::Ge),
            (Token::EqEq, BinOp::Eq),
            (Token::Ne, BinOp::Ne),
        ],
    ),
    (2, Assoc::Left, &[(Token::AndAnd, BinOp::And)]),
    (1, Assoc::Left, &[(Token::OrOr, BinOp::Or)]),
];

/// Prefix `-` and `!` bind tighter than `*` but looser than `^`: `-x^2` is `-(x^2)`.
const PREFIX_PRECEDENCE: u16 = 6;

/// `operator_expr ::= prefix_op* postfix_expr (binary_op operator_expr)?`, disambiguated by the
/// precedence table in the grammar (a Pratt parser over [`BINARY_OPS`]).
fn operator_expr<'t>(postfix: P<'t, Expr>) -> P<'t, Expr> {
    let binary: Vec<_> = BINARY_OPS
        .iter()
        .map(|&(precedence, assoc, ops)| {
            let assoc = match assoc {
                Assoc::Left | Assoc::Never => left(precedence),
                Assoc::Right => right(precedence),
            };
            Operator::boxed(infix(assoc, binary_op(ops), fold_binary))
        })
        .collect();
    postfix
        .pratt((
            prefix(PREFIX_PRECEDENCE, prefix_op(), |op, x: Expr, e| Expr {
                kind: ExprKind::Unary(op, Box::new(x)),
                span: e.span(),
            }),
            binary,
        ))
        .boxed()
}

/// `prefix_op ::= "-" | "!"`
fn prefix_op<'t>() -> impl Parser<'t, In<'t>, UnOp, Extra<'t>> + Clone {
    choice((just(Token::Minus).to(UnOp::Neg), just(Token::Bang).to(UnOp::Not)))
}

/// `binary_op ::= "^" | "*" | "/" | "@" | "+" | "-" | "<" | ... | "&&" | "||"` (one precedence
/// level of them at a time).
fn binary_op<'t>(
    ops: &'static [(Token, BinOp)],
) -> impl Parser<'t, In<'t>, (BinOp, Span), Extra<'t>> + Clone {
    choice(ops.iter().map(|(tok, op)| just(tok.clone()).to(*op)).collect::<Vec<_>>())
        .map_with(|op, e| (op, e.span()))
        .labelled("operator")
}

fn fold_binary<'t>(
    l: Expr,
    (op, op_span): (BinOp, Span),
    r: Expr,
    e: &mut chumsky::input::MapExtra<'t, '_, In<'t>, Extra<'t>>,
) -> Expr {
    // `a < b < c`: the left operand is an unparenthesised comparison (a parenthesised one has a
    // span that starts before its own left operand, because `(e)` keeps the parentheses' span).
    if is_comparison(op) {
        if let ExprKind::Binary(inner, first, _) = &l.kind {
            if is_comparison(*inner) && first.span.start == l.span.start {
                e.emit(custom_error(
                    op_span,
                    "comparison operators do not chain",
                    "second comparison",
                    "write `a < b && b < c`, or add parentheses",
                ));
                return Expr { kind: ExprKind::Error, span: e.span() };
            }
        }
    }
    Expr { kind: ExprKind::Binary(op, Box::new(l), Box::new(r)), span: e.span() }
}

/// One postfix operation, before it is applied.
#[derive(Clone)]
enum Postfix {
    Call(Vec<Expr>),
    Index(Vec<IndexArg>),
    Transpose,
}

/// `postfix_expr ::= atom (call_args | index_args | "'")*`
fn postfix_expr<'t>(atom: P<'t, Expr>, expr: P<'t, Expr>) -> P<'t, Expr> {
    let op = choice((
        call_args(expr.clone()).map(Postfix::Call),
        index_args(expr).map(Postfix::Index),
        just(Token::Quote).to(Postfix::Transpose),
    ))
    .labelled("operator");
    atom.foldl_with(op.repeated(), |lhs, op, e| {
        let kind = match op {
            Postfix::Call(args) => ExprKind::Call(Box::new(lhs), args),
            Postfix::Index(args) => ExprKind::Index(Box::new(lhs), args),
            Postfix::Transpose => ExprKind::Transpose(Box::new(lhs)),
        };
        Expr { kind, span: e.span() }
    })
    .boxed()
}

/// `call_args ::= "(" (expr ("," expr)* ","?)? ")"`
fn call_args<'t>(expr: P<'t, Expr>) -> impl Parser<'t, In<'t>, Vec<Expr>, Extra<'t>> + Clone {
    expr.separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LParen), just(Token::RParen))
}

/// `index_args ::= "[" index_arg ("," index_arg)* ","? "]"`
fn index_args<'t>(expr: P<'t, Expr>) -> impl Parser<'t, In<'t>, Vec<IndexArg>, Extra<'t>> + Clone {
    index_arg(expr)
        .separated_by(just(Token::Comma))
        .at_least(1)
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
}

/// `index_arg ::= expr | expr? ":" expr? (":" expr?)?`
fn index_arg<'t>(expr: P<'t, Expr>) -> impl Parser<'t, In<'t>, IndexArg, Extra<'t>> + Clone {
    let step =
        just(Token::Colon).ignore_then(expr.clone().or_not()).or_not().map(|s| s.flatten().map(Box::new));
    let upper = just(Token::Colon).ignore_then(expr.clone().or_not()).then(step);
    choice((
        upper.clone().map_with(|(end, step), e| IndexArg::Slice { start: None, end, step, span: e.span() }),
        expr.then(upper.or_not()).map_with(|(start, upper), e| match upper {
            None => IndexArg::Index(start),
            Some((end, step)) => IndexArg::Slice { start: Some(start), end, step, span: e.span() },
        }),
    ))
}

/// `atom ::= NUMBER | STRING | "true" | "false" | "none" | IDENT | tuple_or_paren | array_lit | if_expr`
fn atom<'t>(expr: P<'t, Expr>, block: P<'t, Block>) -> P<'t, Expr> {
    let literal = select! {
        Token::Num(v) => ExprKind::Num(v),
        Token::True => ExprKind::Num(1.0),
        Token::False => ExprKind::Num(0.0),
        Token::None => ExprKind::None,
        Token::Str(s) => ExprKind::Str(s),
        Token::Ident(name) => ExprKind::Var(name),
    }
    .map_with(|kind, e| Expr { kind, span: e.span() });
    choice((literal, tuple_or_paren(expr.clone()), array_lit(expr.clone()), if_expr(expr, block)))
        .labelled("expression")
        .boxed()
}

/// `tuple_or_paren ::= "(" ")" | "(" expr ")" | "(" expr "," (expr ("," expr)* ","?)? ")"`
///
/// `(e)` is `e` (with the span of the parentheses); `(e,)` is a tuple of one.
fn tuple_or_paren<'t>(expr: P<'t, Expr>) -> impl Parser<'t, In<'t>, Expr, Extra<'t>> + Clone {
    expr.separated_by(just(Token::Comma))
        .collect::<Vec<_>>()
        .then(just(Token::Comma).or_not())
        .delimited_by(just(Token::LParen), just(Token::RParen))
        .validate(|(mut items, comma): (Vec<Expr>, Option<Token>), e, emitter| {
            let span: Span = e.span();
            if items.is_empty() && comma.is_some() {
                emitter.emit(custom_error(span, "unexpected `,` in `(,)`", "", "the empty tuple is `()`"));
            }
            match items.pop() {
                Some(only) if items.is_empty() && comma.is_none() => Expr { span, ..only },
                Some(last) => {
                    items.push(last);
                    Expr { kind: ExprKind::Tuple(items), span }
                }
                None => Expr { kind: ExprKind::Tuple(items), span },
            }
        })
}

/// `array_lit ::= "[" (expr ("," expr)* ","?)? "]"`
fn array_lit<'t>(expr: P<'t, Expr>) -> impl Parser<'t, In<'t>, Expr, Extra<'t>> + Clone {
    expr.separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
        .map_with(|items, e| Expr { kind: ExprKind::Array(items), span: e.span() })
}

/// `if_expr ::= "if" expr block ("else" (block | if_expr))?`
///
/// `else if` nests: the else block holds one expression statement, the inner `if`.
fn if_expr<'t>(expr: P<'t, Expr>, block: P<'t, Block>) -> P<'t, Expr> {
    recursive(|if_expr| {
        let else_if = if_expr.map(|e: Expr| {
            let span = e.span;
            Block { stmts: vec![Stmt { kind: StmtKind::Expr(e), span }], span }
        });
        just(Token::If)
            .ignore_then(expr)
            .then(block.clone())
            .then(just(Token::Else).ignore_then(choice((block, else_if))).or_not())
            .map_with(|((cond, then), otherwise), e| Expr {
                kind: ExprKind::If(Box::new(cond), then, otherwise),
                span: e.span(),
            })
    })
    .boxed()
}
