//! Source text to tokens (logos), plus the layout rules that decide which newlines end a
//! statement.
//!
//! The lexer never stops at a bad character: every unrecognised run of characters becomes one
//! diagnostic and one [`Token::Error`], so the parser can carry on (and stays quiet about the
//! error token, which is already reported). The one exception is nesting deeper than
//! [`MAX_NESTING`] brackets: lexing stops there, which is what keeps the recursive-descent
//! parser (and everything downstream) off the end of the stack.
//!
//! Layout (the normative version is in `grammar/ad.ebnf`): a newline ends a statement, except
//! - inside `(...)` or `[...]` (inside `{...}` newlines end statements again, even when the
//!   braces are themselves inside parentheses);
//! - after a token that cannot end an expression: a binary operator, `,`, `=`, `=>`, `(`, `[`,
//!   `{`, `:` or `..`;
//! - right before `else` (so `}` newline `else {` works), at the start of the input, and when it
//!   repeats the previous newline.
//!
//! And two rules so that one mistake does not swallow the lines after it: a line that starts
//! with `def`, `let`, `for`, `while` or `import` inside `(` or `[` closes them (and the newline
//! before it ends the statement), and an unterminated string closes the brackets opened on its
//! line. The parser learns about both through `Lexed::resets`.

use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use logos::Logos;
use std::fmt;
use std::rc::Rc;

/// At most this many brackets may be open at once; one more is an error that stops lexing.
pub const MAX_NESTING: usize = 256;

#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\f]+")]
#[logos(skip(r"#[^\n]*", allow_greedy = true))]
pub enum Token {
    /// `3`, `2.5`, `1e-3`, `4.0E+2`. A number needs digits on both sides of its point, so
    /// `0..10` is `0`, `..`, `10`.
    #[regex(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", number)]
    Num(f64),
    /// A string literal, escapes already replaced. An unknown escape is kept as written (and
    /// reported by [`lex`]).
    #[regex(r#""([^"\\\n]|\\[^\n])*""#, string)]
    Str(Rc<str>),
    /// A string with no closing quote before the end of its line; [`lex`] reports it, and the
    /// parser stays quiet about it.
    #[regex(r#""([^"\\\n]|\\[^\n])*\\?"#)]
    UnterminatedStr,
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| Rc::<str>::from(lex.slice()))]
    Ident(Rc<str>),

    #[token("def")]
    Def,
    #[token("let")]
    Let,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("while")]
    While,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("none")]
    None,
    #[token("import")]
    Import,

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("=")]
    Assign,
    #[token("=>")]
    FatArrow,
    /// `+=`, `-=`, `*=`, `/=`: compound assignment.
    #[token("+=")]
    PlusAssign,
    #[token("-=")]
    MinusAssign,
    #[token("*=")]
    StarAssign,
    #[token("/=")]
    SlashAssign,
    #[token("..")]
    DotDot,

    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("^")]
    Caret,
    #[token("'")]
    Quote,
    #[token("!")]
    Bang,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("==")]
    EqEq,
    #[token("!=")]
    Ne,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,

    /// A newline that ends a statement (after the layout rules; see the module docs).
    #[token("\n")]
    Newline,
    /// Characters that form no token; already reported.
    Error,
}

fn number(lex: &mut logos::Lexer<Token>) -> Option<f64> {
    lex.slice().parse().ok()
}

fn string(lex: &mut logos::Lexer<Token>) -> Rc<str> {
    let raw = lex.slice();
    let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e) => match unescape(e) {
                Some(u) => out.push(u),
                None => {
                    out.push('\\');
                    out.push(e);
                }
            },
            None => out.push('\\'),
        }
    }
    Rc::from(out)
}

/// The character an escape `\c` stands for, if `c` is a known escape.
fn unescape(c: char) -> Option<char> {
    match c {
        'n' => Some('\n'),
        't' => Some('\t'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        _ => None,
    }
}

impl Token {
    /// True for `(`, `[` and `{`.
    pub fn is_open(&self) -> bool {
        matches!(self, Token::LParen | Token::LBracket | Token::LBrace)
    }

    /// True for `)`, `]` and `}`.
    pub fn is_close(&self) -> bool {
        matches!(self, Token::RParen | Token::RBracket | Token::RBrace)
    }

    /// The closing bracket for an opening one.
    pub fn closer(&self) -> Option<Token> {
        match self {
            Token::LParen => Some(Token::RParen),
            Token::LBracket => Some(Token::RBracket),
            Token::LBrace => Some(Token::RBrace),
            _ => None,
        }
    }

    /// True for the operators that take two operands (`-` included).
    pub fn is_binary_op(&self) -> bool {
        use Token::*;
        matches!(
            self,
            Plus | Minus | Star | Slash | At | Caret | Lt | Le | Gt | Ge | EqEq | Ne | AndAnd | OrOr
        )
    }

    /// True for tokens after which a newline does not end the statement.
    pub(crate) fn continues_line(&self) -> bool {
        use Token::*;
        self.is_binary_op()
            || matches!(
                self,
                Comma
                    | Assign
                    | PlusAssign
                    | MinusAssign
                    | StarAssign
                    | SlashAssign
                    | FatArrow
                    | LParen
                    | LBracket
                    | LBrace
                    | Colon
                    | DotDot
            )
    }

    /// The source form of a keyword, punctuation or operator token.
    pub fn symbol(&self) -> Option<&'static str> {
        use Token::*;
        Some(match self {
            Def => "def",
            Let => "let",
            For => "for",
            In => "in",
            While => "while",
            If => "if",
            Else => "else",
            True => "true",
            False => "false",
            None => "none",
            Import => "import",
            LParen => "(",
            RParen => ")",
            LBracket => "[",
            RBracket => "]",
            LBrace => "{",
            RBrace => "}",
            Comma => ",",
            Semi => ";",
            Colon => ":",
            Assign => "=",
            PlusAssign => "+=",
            MinusAssign => "-=",
            StarAssign => "*=",
            SlashAssign => "/=",
            FatArrow => "=>",
            DotDot => "..",
            Plus => "+",
            Minus => "-",
            Star => "*",
            Slash => "/",
            At => "@",
            Caret => "^",
            Quote => "'",
            Bang => "!",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            EqEq => "==",
            Ne => "!=",
            AndAnd => "&&",
            OrOr => "||",
            Num(_) | Str(_) | UnterminatedStr | Ident(_) | Newline | Error => return Option::None,
        })
    }
}

/// How a token is named in an error message: "`)`", "identifier `foo`", "number", "end of line".
impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.symbol() {
            return write!(f, "`{s}`");
        }
        match self {
            Token::Num(_) => write!(f, "number"),
            Token::Str(_) | Token::UnterminatedStr => write!(f, "string"),
            Token::Ident(name) => write!(f, "identifier `{name}`"),
            Token::Newline => write!(f, "end of line"),
            _ => write!(f, "invalid text"),
        }
    }
}

/// Everything the lexer found out, for the parser.
#[derive(Debug, Default)]
pub(crate) struct Lexed {
    pub tokens: Vec<(Token, Span)>,
    pub diagnostics: Vec<Diagnostic>,
    /// Lexing stopped early because brackets nest too deeply.
    pub stopped: bool,
    /// Brackets still open at the end of the input, outermost first.
    pub unclosed: Vec<(Token, Span)>,
    /// After an unterminated string (at this token index) only this many brackets stay open.
    pub resets: Vec<(usize, usize)>,
}

/// Splits `text` into tokens, applying the layout rules, and reports lexical errors.
///
/// Never fails: bad characters become [`Token::Error`] (one per contiguous run) with a
/// diagnostic. When brackets nest more than [`MAX_NESTING`] deep, the tokens up to (not
/// including) the offending bracket are returned with a diagnostic.
pub fn lex(file: FileId, text: &str) -> (Vec<(Token, Span)>, Vec<Diagnostic>) {
    let lexed = lex_full(file, text);
    (lexed.tokens, lexed.diagnostics)
}

struct Layout<'a> {
    file: FileId,
    text: &'a str,
    out: Lexed,
    /// Open brackets (innermost last).
    stack: Vec<(Token, Span)>,
    /// A newline that ends a statement unless `else` follows.
    pending_newline: Option<Span>,
    /// A newline dropped because it was inside `(` or `[`, since the last token.
    dropped_newline: Option<Span>,
    /// A run of unrecognised characters not yet reported.
    error_run: Option<(usize, usize)>,
}

impl Layout<'_> {
    fn span(&self, range: std::ops::Range<usize>) -> Span {
        Span::new(self.file, range)
    }

    fn push(&mut self, tok: Token, span: Span) {
        self.dropped_newline = None;
        if let Some(nl) = self.pending_newline.take() {
            if tok != Token::Else {
                self.out.tokens.push((Token::Newline, nl));
            }
        }
        self.out.tokens.push((tok, span));
    }

    fn newline(&mut self, span: Span) {
        let in_parens = matches!(self.stack.last(), Some((Token::LParen | Token::LBracket, _)));
        let keep = match self.out.tokens.last() {
            None => false,
            Some((last, _)) => !in_parens && !last.continues_line() && *last != Token::Newline,
        };
        if keep && self.pending_newline.is_none() {
            self.pending_newline = Some(span);
        }
        if in_parens && self.dropped_newline.is_none() {
            self.dropped_newline = Some(span);
        }
    }

    /// A line that starts with `def`, `let`, `for`, `while` or `import` inside `(` or `[`: those
    /// words only start statements, so the brackets were left open by mistake. Closes them (back to
    /// the innermost `{`) and ends the statement at the newline, so that one missing `)` costs
    /// one report and the next line still parses. The parser does the same (see `resets`).
    fn statement_keyword(&mut self, tok: &Token) {
        if !matches!(tok, Token::Def | Token::Let | Token::For | Token::While | Token::Import) {
            return;
        }
        let Some(nl) = self.dropped_newline else { return };
        while matches!(self.stack.last(), Some((Token::LParen | Token::LBracket, _))) {
            self.stack.pop();
        }
        self.out.resets.push((self.out.tokens.len(), self.stack.len()));
        self.pending_newline = Some(nl);
    }

    fn flush_errors(&mut self) {
        let Some((start, end)) = self.error_run.take() else { return };
        let span = self.span(start..end);
        let bad = self.text.get(start..end).unwrap_or("");
        let shown: String = bad.chars().flat_map(char::escape_debug).collect();
        let noun = if bad.chars().count() == 1 { "character" } else { "characters" };
        let mut d = Diagnostic::error(format!("unexpected {noun} `{shown}`"))
            .with_label(span, "not part of the language");
        if let Some(hint) = hint_for(bad) {
            d = d.with_hint(hint);
        }
        self.out.diagnostics.push(d);
        self.push(Token::Error, span);
    }

    fn bad_escapes(&mut self, start: usize, raw: &str) {
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                continue;
            }
            if let Some((j, e)) = chars.next() {
                if unescape(e).is_none() {
                    let span = self.span(start + i..start + j + e.len_utf8());
                    let shown: String = e.escape_debug().collect();
                    self.out.diagnostics.push(
                        Diagnostic::error(format!("unknown escape `\\{shown}` in string"))
                            .with_label(span, "unknown escape")
                            .with_hint("the escapes are `\\n`, `\\t`, `\\\"` and `\\\\`"),
                    );
                }
            }
        }
    }

    /// Handles one token; returns false when lexing must stop.
    fn token(&mut self, tok: Token, range: std::ops::Range<usize>) -> bool {
        let span = self.span(range.clone());
        match tok {
            Token::Newline => self.newline(span),
            Token::UnterminatedStr => {
                self.out.diagnostics.push(
                    Diagnostic::error("unterminated string")
                        .with_label(span, "this string has no closing `\"` on its line"),
                );
                self.push(Token::UnterminatedStr, span);
                // Strings never span lines, so the string probably swallowed the closing
                // brackets of its line: the brackets opened on this line are abandoned, so that
                // the next line starts afresh. The parser does the same (see `resets`).
                let line_start =
                    self.text.get(..range.start).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
                while self.stack.last().is_some_and(|(_, s)| s.start as usize >= line_start) {
                    self.stack.pop();
                }
                self.out.resets.push((self.out.tokens.len() - 1, self.stack.len()));
            }
            Token::Str(_) => {
                let raw = self.text.get(range.clone()).unwrap_or("");
                self.bad_escapes(range.start, raw);
                self.push(tok, span);
            }
            t if t.is_open() => {
                if self.stack.len() >= MAX_NESTING {
                    self.out.diagnostics.push(
                        Diagnostic::error(format!("nesting is too deep (more than {MAX_NESTING} levels)"))
                            .with_label(span, format!("bracket number {} opened here", MAX_NESTING + 1))
                            .with_hint("split the expression with `let`"),
                    );
                    self.out.stopped = true;
                    return false;
                }
                self.stack.push((t.clone(), span));
                self.push(t, span);
            }
            t if t.is_close() => {
                if let Some(pos) = self.stack.iter().rposition(|(o, _)| o.closer().as_ref() == Some(&t)) {
                    self.stack.truncate(pos);
                }
                self.push(t, span);
            }
            t => {
                self.statement_keyword(&t);
                self.push(t, span)
            }
        }
        true
    }
}

/// A suggestion for a character that is not part of the language.
fn hint_for(bad: &str) -> Option<&'static str> {
    match bad {
        "&" => Some("logical and is written `&&`"),
        "|" => Some("logical or is written `||`"),
        "." => Some("write numbers with a digit before the point (`0.5`); ranges are `a..b`"),
        "%" => Some("there is no remainder operator: use `mod(a, b)`, the remainder with the sign of b"),
        _ => None,
    }
}

pub(crate) fn lex_full(file: FileId, text: &str) -> Lexed {
    let mut st = Layout {
        file,
        text,
        out: Lexed::default(),
        stack: Vec::new(),
        pending_newline: None,
        dropped_newline: None,
        error_run: None,
    };
    let mut lexer = Token::lexer(text).spanned();
    for (res, range) in lexer.by_ref() {
        match res {
            Err(()) => {
                if matches!(st.error_run, Some((_, end)) if end != range.start) {
                    st.flush_errors();
                }
                let start = st.error_run.map_or(range.start, |(s, _)| s);
                st.error_run = Some((start, range.end));
            }
            Ok(tok) => {
                st.flush_errors();
                if !st.token(tok, range) {
                    break;
                }
            }
        }
    }
    st.flush_errors();
    if !st.out.stopped {
        if let Some(nl) = st.pending_newline.take() {
            st.out.tokens.push((Token::Newline, nl));
        }
    }
    st.out.unclosed = st.stack;
    st.out
}
