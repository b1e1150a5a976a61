//! The parser on broken input: every mistake reported once, at the right place, in words a
//! user understands; no panics, no stack overflows, no cascades.

mod common;

use ad_syntax::ast::StmtKind;
use ad_syntax::parser::{is_incomplete, parse};
use ad_syntax::{Diagnostic, FileId};

fn diags(src: &str) -> Vec<Diagnostic> {
    parse(FileId(0), src).1
}

fn messages(src: &str) -> Vec<String> {
    diags(src).into_iter().map(|d| d.message).collect()
}

/// The rendered report, trailing spaces removed from each line (ariadne pads lines).
fn rendered(src: &str) -> String {
    let d = diags(src);
    common::render(src, &d).lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// The source text under the primary label of each diagnostic.
fn located(src: &str) -> Vec<String> {
    diags(src)
        .iter()
        .map(|d| {
            let s = d.span().expect("every syntax error has a location");
            assert_eq!(s.file, FileId(0));
            src.get(s.range()).expect("span inside the text, on character boundaries").to_string()
        })
        .collect()
}

#[test]
fn snapshot_unexpected_token() {
    assert_eq!(
        rendered("let y = 1 +* 2"),
        "\
Error: unexpected `*`, expected expression
   ╭─[ test.ad:1:12 ]
   │
 1 │ let y = 1 +* 2
   │            ┬
   │            ╰── expected expression
───╯"
    );
}

#[test]
fn snapshot_unclosed_block() {
    assert_eq!(
        rendered("def f(x) {\n  let y = x * 2"),
        "\
Error: unexpected end of input, expected `}`
   ╭─[ test.ad:2:16 ]
   │
 2 │   let y = x * 2
   │                │
   │                ╰─ expected `}`
   │
   ├─[ test.ad:2:16 ]
   │
 1 │ def f(x) {
   │          ┬
   │          ╰── `{` opened here is never closed
───╯"
    );
}

#[test]
fn snapshot_chained_comparison() {
    assert_eq!(
        rendered("ok = 0 < x <= 1"),
        "\
Error: comparison operators do not chain
   ╭─[ test.ad:1:12 ]
   │
 1 │ ok = 0 < x <= 1
   │            ─┬
   │             ╰── second comparison
   │
   │ Help: write `a < b && b < c`, or add parentheses
───╯"
    );
}

#[test]
fn snapshot_unterminated_string() {
    assert_eq!(
        rendered("print(\"hello)\nx = 1"),
        "\
Error: unterminated string
   ╭─[ test.ad:1:7 ]
   │
 1 │ print(\"hello)
   │       ───┬───
   │          ╰───── this string has no closing `\"` on its line
───╯"
    );
}

#[test]
fn three_typos_three_diagnostics() {
    let src = "let a = 1 +* 2\nlet b = (3 4)\nlet c = ]\nlet d = 5\n";
    assert_eq!(
        messages(src),
        [
            "unexpected `*`, expected expression",
            "unexpected number, expected `,`, `)` or operator",
            "unexpected `]`, expected expression",
        ]
    );
    assert_eq!(located(src), ["*", "4", "]"]);
    // The good statement after them still parses.
    let (m, _) = parse(FileId(0), src);
    assert_eq!(common::module(&m), "error\nerror\nerror\n(let d 5)");
}

#[test]
fn three_typos_with_open_brackets() {
    // A line that starts with a statement keyword inside brackets ends the open brackets, so
    // a missing `)` costs one report and the next line is parsed on its own.
    let src = "let a = (1 +\nlet b = 2 * * 3\nlet c = [1, 2\nprint(a)\n";
    assert_eq!(
        messages(src),
        [
            "unexpected end of line, expected expression",
            "unexpected `*`, expected expression",
            "unexpected identifier `print`, expected `,`, `]` or operator",
        ]
    );
    let src = "def f(x) {\n  let a = g(x,\n  let b = (2\n  for i in 0..3 { }\n  a\n}\nlet ok = 1\n";
    assert_eq!(
        messages(src),
        [
            "unexpected end of line, expected `)` or expression",
            "unexpected end of line, expected `,`, `)` or operator"
        ]
    );
    let (m, _) = parse(FileId(0), src);
    assert_eq!(common::module(&m), "(def f (x) {error; error; (for i 0 3 {}); a})\n(let ok 1)");
    assert!(!is_incomplete("f(1,\nlet y = 2"));
}

#[test]
fn three_typos_in_one_block() {
    let src = "def f(x) {\n  let a = 1 +* 2\n  let b = (3 4)\n  a b\n  a + b\n}\nlet z = f(1)\n";
    assert_eq!(
        messages(src),
        [
            "unexpected `*`, expected expression",
            "unexpected number, expected `,`, `)` or operator",
            "unexpected identifier `b`, expected operator, end of statement or `}`",
        ]
    );
    let (m, _) = parse(FileId(0), src);
    assert_eq!(common::module(&m), "(def f (x) {error; error; error; (+ a b)})\n(let z (call f 1))");
}

#[test]
fn garbage_bytes() {
    let src = "\u{1}\u{2}ÿ€ def";
    assert_eq!(messages(src)[0], "unexpected characters `\\u{1}\\u{2}ÿ€`");
    assert_eq!(located(src)[0], "\u{1}\u{2}ÿ€");
    // One run of bad characters, one report (the statement it starts is not reported again).
    assert_eq!(messages(src).len(), 1, "{:?}", messages(src));
    assert!(!is_incomplete(src));

    assert_eq!(messages("x = 1 $ 2"), ["unexpected character `$`"]);
    assert_eq!(messages("x = 1 $ $ 2"), ["unexpected character `$`", "unexpected character `$`"]);
    assert_eq!(messages("x = \0"), ["unexpected character `\\0`"]);
    let d = diags("a & b");
    assert_eq!(d[0].hint.as_deref(), Some("logical and is written `&&`"));
    // Odd Unicode everywhere: no panic, every label on character boundaries.
    for src in
        ["é", "x = é", "\"é", "é\"", "\u{feff}x = 1", "x = 1\u{2028}", "𝑥 = 1", "a\u{0}b", "\u{7f}", "x = .5"]
    {
        let _ = located(src);
    }
}

#[test]
fn unterminated_string() {
    let src = "x = \"abc\ny = 2";
    let d = diags(src);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].message, "unterminated string");
    assert_eq!(located(src), ["\"abc"]);
    // The next line is a fresh statement.
    assert_eq!(common::module(&parse(FileId(0), src).0), "error\n(set y 2)");
    // Even when the string was inside parentheses.
    let src = "f(1, \"abc)\ny = 2\n";
    assert_eq!(messages(src), ["unterminated string"]);
    assert_eq!(common::module(&parse(FileId(0), src).0), "error\n(set y 2)");
    // A trailing backslash does not escape the newline.
    assert_eq!(messages("x = \"abc\\\ny = 1"), ["unterminated string"]);
    assert_eq!(messages("\""), ["unterminated string"]);
}

#[test]
fn hints() {
    let hint = |src: &str| diags(src).first().and_then(|d| d.hint.clone()).unwrap_or_default();
    assert_eq!(hint("f(x) = x * 2"), "to define a function, write `def f(x) = ...`");
    assert!(hint("f(x)[0] = 1").starts_with("only names and parts of named arrays"));
    assert_eq!(hint("a < b < c"), "write `a < b && b < c`, or add parentheses");
    assert_eq!(hint("x = 1 | 2"), "logical or is written `||`");
    assert!(hint(&"(".repeat(300)).contains("let"));
}

#[test]
fn unknown_escape() {
    let src = r#"x = "a\qb\n""#;
    assert_eq!(messages(src), ["unknown escape `\\q` in string"]);
    assert_eq!(located(src), ["\\q"]);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // This runs on the test harness's thread (2 MiB of stack), on purpose.
    for open in ["(", "[", "{", "f(", "x => (", "-(", "if c {"] {
        let src = format!("a = 1\nb = {}", open.repeat(3000));
        let d = diags(&src);
        assert_eq!(d.len(), 1, "{open}: {:?}", d);
        assert_eq!(d[0].message, "nesting is too deep (more than 256 levels)");
        let span = d[0].span().expect("located");
        assert!(span.start > 256, "the report points at the 257th bracket");
        assert!(!is_incomplete(&src));
        // The statements before the deep one are kept.
        let (m, _) = parse(FileId(0), &src);
        assert_eq!(m.stmts.len(), 2);
        assert_eq!(common::stmt(&m.stmts[0]), "(set a 1)");
        assert!(matches!(m.stmts[1].kind, StmtKind::Error));
    }
    // Balanced but too deep.
    let src = format!("{}1{}", "(".repeat(3000), ")".repeat(3000));
    assert_eq!(messages(&src), ["nesting is too deep (more than 256 levels)"]);
}

#[test]
fn long_operator_chains_are_refused_not_overflowed() {
    let cases = [
        format!("x = 1{}", " + 1".repeat(50_000)),
        format!("x = {}1", "-".repeat(50_000)),
        format!("x = {}1", "! ".repeat(50_000)),
        format!("x = 2{}", "^2".repeat(50_000)),
        format!("x = f{}", "(1)".repeat(50_000)),
        format!("x = m{}", "'".repeat(50_000)),
        format!("x = a{}", "[0]".repeat(50_000)),
        format!("f = {}1", "x => ".repeat(50_000)),
        format!("y = if a {{1}}{} else {{2}}", " else if a {1}".repeat(50_000)),
        format!("def f(x) {{\n  y = 1{}\n}}", " * x".repeat(50_000)),
    ];
    for src in &cases {
        let d = diags(src);
        assert_eq!(d.len(), 1, "{}: {d:?}", &src[..20]);
        assert_eq!(d[0].message, "statement is nested too deeply (more than 512 levels)");
    }
    // Long chains with a mistake at the end are refused before the parser sees them too.
    let src = format!("x = 1{} +", " + 1".repeat(50_000));
    assert_eq!(messages(&src), ["statement is nested too deeply (more than 512 levels)"]);
}

#[test]
fn unexpected_tokens_read_well() {
    let cases: &[(&str, &str, &str)] = &[
        ("1 +* 2", "unexpected `*`, expected expression", "*"),
        ("f(1, )", "", ""),
        ("f(, 1)", "unexpected `,`, expected `)` or expression", ","),
        ("let x = )", "unexpected `)`, expected expression", ")"),
        (")", "unexpected `)`, expected statement", ")"),
        ("}", "unexpected `}`, expected statement", "}"),
        ("1 2", "unexpected number, expected operator or end of statement", "2"),
        ("a b", "unexpected identifier `b`, expected operator or end of statement", "b"),
        ("let 3 = 4", "unexpected number, expected pattern", "3"),
        ("let x 3", "unexpected number, expected `=`", "3"),
        ("def 3", "unexpected number, expected identifier", "3"),
        ("def f", "unexpected end of input, expected `(`", ""),
        ("def f(x)", "unexpected end of input, expected `=` or `{`", ""),
        ("def f(x) 3", "unexpected number, expected `=` or `{`", "3"),
        ("def f(x y) = x", "unexpected identifier `y`, expected `,`, `)` or `:`", "y"),
        ("def f(x: 3) = x", "unexpected number, expected shape such as `[n, 3]`", "3"),
        ("def f(x: [a b]) = x", "unexpected identifier `b`, expected `,` or `]`", "b"),
        ("for 1 in 0..3 {}", "unexpected number, expected identifier", "1"),
        ("for i 0..3 {}", "unexpected number, expected `in`", "0"),
        ("for i in 0 10 { }", "unexpected number, expected `..`, `{` or operator", "10"),
        ("for i in 0..3 print(i)", "unexpected identifier `print`, expected `{` or operator", "print"),
        ("while x print(x)", "unexpected identifier `print`, expected `{` or operator", "print"),
        ("if c { 1 } else 2", "unexpected number, expected `if` or `{`", "2"),
        ("x[]", "unexpected `]`, expected `:` or expression", "]"),
        ("(,)", "unexpected `,` in `(,)`", "(,)"),
        ("x = 1;; y = ;", "unexpected `;`, expected expression", ";"),
        ("x = (1 +\n 2", "unexpected end of input, expected `)`", ""),
        ("x = [1, 2\n  3]", "unexpected number, expected `,`, `]` or operator", "3"),
        ("def f(x) {\n  x\n", "unexpected end of input, expected `}`", ""),
        ("f(x)[0] = 1", "cannot assign to this expression", "f(x)[0]"),
        ("f(x) = 1", "cannot assign to this expression", "f(x)"),
        ("def f(x: [2.5]) = x", "a dimension must be a non-negative integer or a name", "2.5"),
        ("def f(x: [-1]) = x", "unexpected `-`, expected `]` or dimension", "-"),
    ];
    let mut failures = Vec::new();
    for (src, want, at) in cases {
        let d = diags(src);
        let got: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
        let wanted: Vec<&str> = if want.is_empty() { vec![] } else { vec![want] };
        if got != wanted {
            failures.push(format!("{src:?}:\n  want {wanted:?}\n  got  {got:?}"));
            continue;
        }
        if let Some(d) = d.first() {
            let span = d.span().expect("located");
            let text = &src[span.range()];
            if text != *at {
                failures.push(format!("{src:?}: labelled {text:?}, want {at:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_mistake_one_report() {
    // Each of these has one mistake; a second report is tolerated only where the mistake
    // really breaks two things, never more.
    let cases = [
        "def f(x) {\n  let y = (1 + 2\n  y\n}\nz = 1",
        "def f(x) {\n  let y = [1, 2\n  y\n}\nz = 1",
        "def f(x) {\n  let y = 1 +\n}\nz = 1",
        "def f(x)\n{ x }",
        "x = f(1, 2))\ny = 2",
        "x = (1, 2]\ny = 2",
        "if c { a } else { b ]\ny = 2",
        "def f(x) { x ) }\ny = 2",
        "let = 3\nlet y = 4",
        "x = 1 2 3 4 5 6\ny = 2",
        "print(\"a\" \"b\" \"c\")",
        "def f(x) = {\n  x\n}",
        "x = [1, 2, 3,, 4, 5]",
        "while x > 0 {\n  x = x - 1\n  if x { }\n  else\n}\n",
    ];
    for src in cases {
        let n = diags(src).len();
        assert!((1..=2).contains(&n), "{src:?} gives {n} reports:\n{}", rendered(src));
    }
}

#[test]
fn ragged_endings() {
    for src in [
        "[1, 2",
        "(",
        "f(",
        "x = [",
        "def",
        "def f",
        "def f(",
        "def f(x",
        "def f(x:",
        "def f(x: [",
        "def f(x) =",
        "let",
        "let (",
        "let (a,",
        "let x",
        "let x =",
        "for",
        "for i",
        "for i in",
        "for i in 0",
        "for i in 0..",
        "for i in 0..1",
        "for i in 0..1 {",
        "while",
        "while x",
        "while x {",
        "if",
        "if c",
        "if c {",
        "if c { 1 } else",
        "x[",
        "x[1:",
        "x[1,",
        "x =>",
        "(x, y) =>",
        "\"",
        "x''(",
        "-",
        "!",
        "1 ^",
    ] {
        let d = diags(src);
        assert!(!d.is_empty(), "{src:?} should be an error");
        assert!(d.len() <= 2, "{src:?}: {d:?}");
        let _ = located(src);
    }
}

#[test]
fn incomplete_input() {
    let incomplete = [
        "1 +",
        "x = 1 *",
        "let x =",
        "f(1,",
        "f(1, 2",
        "[1, 2",
        "[[1, 2],\n [3, 4]",
        "def f(x) {",
        "def f(x) {\n  let y = 1\n",
        "def f(x) {\n  let y = 1",
        "def f(x) =",
        "def f(x: [n,",
        "x => ",
        "for i in 0..",
        "for i in 0..10 {",
        "while x > 0 {\n  x = x - 1\n",
        "if c {",
        "if c { 1 } else {",
        "x = (1 +\n 2",
        "a &&",
        "y = f(if c {\n  1\n",
        "x[1:",
        "(",
    ];
    for src in incomplete {
        assert!(is_incomplete(src), "{src:?} should be incomplete");
    }
    let complete = [
        "",
        "\n",
        "# comment",
        "1 + 2",
        "1 +* 2",
        "1 +* (2",
        "def f(x) { x }",
        "def f(x) = x",
        "def f(x)",
        "def f(x)\n",
        "if c { 1 }",
        "if c { 1 } else",
        "x = )",
        "x = \"abc",
        "x = \"abc\n",
        "a < b < c",
    ];
    for src in complete {
        assert!(!is_incomplete(src), "{src:?} should not be incomplete");
    }
    // Too deep is never "incomplete", even though brackets are open.
    assert!(!is_incomplete(&"(".repeat(300)));
    // A complete statement followed by an incomplete one is incomplete; a broken one is not.
    assert!(is_incomplete("x = 1\ny = (2 +"));
    assert!(!is_incomplete("x = 1 +* 2\ny = (2 +"));
}

/// A tiny deterministic generator (xorshift64*), so the fuzz test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SAMPLE: &str = "\
# A small network.
def layer(W: [n, m], b: [m], x: [k, n]) {
  let z = x @ W + b
  tanh(z)
}
def loss(W, b, x, y) = mean((layer(W, b, x) - y)^2)
let (W, b) = (randn((3, 2)), zeros(2))
for i in 0..100 {
  let g = grad(loss)(W, b, x, y)
  W = W - 0.1 * g
}
while loss(W, b, x, y) > 1e-3 { W = W * 0.5 }
let s = if a < b { a } else if a == b { 0 } else { -b^2 }
print(\"done\", m'[0, :], x[1:, :-1], (), (1,), f => f(1))
";

#[test]
fn mutated_programs_never_panic_or_cascade() {
    // Delete, duplicate or replace a few characters of a valid program, many times. Every
    // diagnostic must be located inside the text, and a few mutations must not produce a flood.
    let pieces = [
        "(", ")", "[", "]", "{", "}", ",", ";", "\n", "=", "=>", "..", ":", "+", "-", "*", "^", "'", "!",
        "<", "&&", "def", "let", "if", "else", "x", "1", "\"", "#", "$", "é", "\u{0}",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let chars: Vec<char> = SAMPLE.chars().collect();
    for _ in 0..600 {
        let mut text: Vec<char> = chars.clone();
        let edits = 1 + rng.below(3);
        for _ in 0..edits {
            let at = rng.below(text.len());
            match rng.below(3) {
                0 => {
                    text.remove(at);
                }
                1 => {
                    let piece = pieces[rng.below(pieces.len())];
                    for (i, c) in piece.chars().enumerate() {
                        text.insert(at + i, c);
                    }
                }
                _ => {
                    let piece = pieces[rng.below(pieces.len())];
                    text.remove(at);
                    for (i, c) in piece.chars().enumerate() {
                        text.insert(at + i, c);
                    }
                }
            }
        }
        let src: String = text.into_iter().collect();
        let d = diags(&src);
        for diag in &d {
            let span = diag.span().expect("located");
            assert!(src.get(span.range()).is_some(), "{src:?}: bad span {span:?} for {diag:?}");
        }
        assert!(
            d.len() <= 2 * edits + 1,
            "{edits} edits gave {} reports:\n{src}\n{}",
            d.len(),
            common::render(&src, &d)
        );
        let _ = is_incomplete(&src);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    let alphabet: Vec<char> = "()[]{},;:=>.+-*/@^'!<&|#\"\\\n \tabcxyz019eE_é€\u{0}\u{1}".chars().collect();
    for _ in 0..300 {
        let len = rng.below(60);
        let src: String = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        for diag in diags(&src) {
            let span = diag.span().expect("located");
            assert!(src.get(span.range()).is_some(), "{src:?}: bad span {span:?}");
        }
        let _ = is_incomplete(&src);
    }
}
