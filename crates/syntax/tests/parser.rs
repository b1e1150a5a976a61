//! The parser on valid input: expected AST shapes, written as s-expressions (see
//! `common/mod.rs` for the notation: `(+ a b)`, `(call f x)`, `(index x (: a _))`, `(' x)`,
//! `(fn (x) body)`, `{s1; s2}` for blocks, `(set p e)` for assignment).

mod common;

use ad_syntax::ast::*;
use ad_syntax::parser::parse;
use ad_syntax::FileId;

/// Checks that each input parses without diagnostics into the expected s-expressions.
fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (src, want) in cases {
        let (got, diags) = common::parse(src);
        if !diags.is_empty() {
            failures.push(format!("{src:?}: unexpected diagnostics:\n{}", common::render(src, &diags)));
        } else if got != *want {
            failures.push(format!("{src:?}:\n  want {want}\n  got  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn precedence() {
    check(&[
        ("-x^2", "(- (^ x 2))"),
        ("a - b - c", "(- (- a b) c)"),
        ("2^3^2", "(^ 2 (^ 3 2))"),
        ("2^-1", "(^ 2 (- 1))"),
        ("-2^-x^2", "(- (^ 2 (- (^ x 2))))"),
        ("a @ b'", "(@ a (' b))"),
        ("x => y => x + y", "(fn (x) (fn (y) (+ x y)))"),
        ("f(x)[0]'", "(' (index (call f x) 0))"),
        ("f(x)'[0]", "(index (' (call f x)) 0)"),
        ("!a && b || c", "(|| (&& (! a) b) c)"),
        ("a || b && c", "(|| a (&& b c))"),
        ("a + b * c", "(+ a (* b c))"),
        ("a * b + c", "(+ (* a b) c)"),
        ("a / b * c @ d", "(@ (* (/ a b) c) d)"),
        ("-a * b", "(* (- a) b)"),
        ("--a", "(- (- a))"),
        ("!a == b", "(== (! a) b)"),
        ("a + b < c * d", "(< (+ a b) (* c d))"),
        ("a < b && c >= d", "(&& (< a b) (>= c d))"),
        ("a <= b || c != d", "(|| (<= a b) (!= c d))"),
        ("(a < b) == (c > d)", "(== (< a b) (> c d))"),
        ("x''", "(' (' x))"),
        ("-x'", "(- (' x))"),
        ("(a + b) * c", "(* (+ a b) c)"),
        ("a - -b", "(- a (- b))"),
        ("x => -x", "(fn (x) (- x))"),
        ("f(x => x * 2, 3)", "(call f (fn (x) (* x 2)) 3)"),
        (
            "grad(x => x * grad(y => x + y)(1))(1)",
            "(call (call grad (fn (x) (* x (call (call grad (fn (y) (+ x y))) 1)))) 1)",
        ),
    ]);
}

#[test]
fn chained_comparison_is_an_error_not_a_tree() {
    let (m, d) = parse(FileId(0), "a > b == c > d");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(common::module(&m), "(> error d)");
}

#[test]
fn atoms() {
    check(&[
        ("3", "3"),
        ("2.5", "2.5"),
        ("1e-3", "0.001"),
        ("4.0E+2", "400"),
        ("1E3", "1000"),
        ("true", "1"),
        ("false", "0"),
        ("x_1", "x_1"),
        ("_", "_"),
        (r#""hi""#, r#""hi""#),
        (r#""a\"b\\c\nd\te""#, r#""a\"b\\c\nd\te""#),
        ("\"π ≈ 3.14\"", "\"π ≈ 3.14\""),
        ("()", "(tuple)"),
        ("(a)", "a"),
        ("((a))", "a"),
        ("(a,)", "(tuple a)"),
        ("(a, b)", "(tuple a b)"),
        ("(a, b,)", "(tuple a b)"),
        ("((a, b), (c,))", "(tuple (tuple a b) (tuple c))"),
        ("[]", "[]"),
        ("[1]", "[1]"),
        ("[1, 2]", "[1 2]"),
        ("[1, 2,]", "[1 2]"),
        ("[[1, 2], [3, 4]]", "[[1 2] [3 4]]"),
        ("[-1, x + 1]", "[(- 1) (+ x 1)]"),
    ]);
}

#[test]
fn lambdas_tuples_and_parens() {
    check(&[
        ("x => x", "(fn (x) x)"),
        ("(x) => x", "(fn (x) x)"),
        ("(x, y) => x * y", "(fn (x y) (* x y))"),
        ("(x, y,) => x", "(fn (x y) x)"),
        ("() => 1", "(fn () 1)"),
        ("(x, y)", "(tuple x y)"),
        ("(x => x)(1)", "(call (fn (x) x) 1)"),
        ("f((a, b), (a, b) => a)", "(call f (tuple a b) (fn (a b) a))"),
        ("x => y => (x, y)", "(fn (x) (fn (y) (tuple x y)))"),
        ("x => x + 1 < 2", "(fn (x) (< (+ x 1) 2))"),
        ("x => if x > 0 { x } else { 0 }", "(fn (x) (if (> x 0) {x} {0}))"),
    ]);
}

#[test]
fn postfix_chains() {
    check(&[
        ("f()", "(call f)"),
        ("f(a, b)", "(call f a b)"),
        ("f(a, b,)", "(call f a b)"),
        ("f(a)(b)", "(call (call f a) b)"),
        ("x[i]", "(index x i)"),
        ("x[i, j]", "(index x i j)"),
        ("x[i][j]", "(index (index x i) j)"),
        ("x[a:b]", "(index x (: a b))"),
        ("x[:b]", "(index x (: _ b))"),
        ("x[a:]", "(index x (: a _))"),
        ("x[:]", "(index x (: _ _))"),
        ("x[:, j]", "(index x (: _ _) j)"),
        ("x[i, :]", "(index x i (: _ _))"),
        ("x[:-1]", "(index x (: _ (- 1)))"),
        ("x[::2]", "(index x (: _ _ 2))"),
        ("x[a:b:s]", "(index x (: a b s))"),
        ("x[::-1, 1::]", "(index x (: _ _ (- 1)) (: 1 _))"),
        ("x[a::k + 1]", "(index x (: a _ (+ k 1)))"),
        ("x[-2:]", "(index x (: (- 2) _))"),
        ("x[1:n-1, 0]", "(index x (: 1 (- n 1)) 0)"),
        ("x[i,]", "(index x i)"),
        ("[1, 2][0]", "(index [1 2] 0)"),
        ("(a, b)'", "(' (tuple a b))"),
        ("f(x)'[0]", "(index (' (call f x)) 0)"),
        ("m'[0, :] @ m[:, -1]", "(@ (index (' m) 0 (: _ _)) (index m (: _ _) (- 1)))"),
    ]);
}

#[test]
fn if_expressions() {
    check(&[
        ("if c { a }", "(if c {a})"),
        ("if c { a } else { b }", "(if c {a} {b})"),
        ("if c {a} else if d {b} else {c}", "(if c {a} {(if d {b} {c})})"),
        ("if c {a} else if d {b}", "(if c {a} {(if d {b})})"),
        ("let y = if c { 1 } else { 2 } + 1", "(let y (+ (if c {1} {2}) 1))"),
        ("if a < b { let t = a\n t * 2 } else { b }", "(if (< a b) {(let t a); (* t 2)} {b})"),
        ("if c {} else {}", "(if c {} {})"),
    ]);
}

#[test]
fn statements() {
    check(&[
        ("def sq(x) = x * x", "(def sq (x) {(* x x)})"),
        ("def f() = 1", "(def f () {1})"),
        ("def f(x, y,) = x", "(def f (x y) {x})"),
        ("def f(x: [n, 3], y: [], z) = x", "(def f ((x [n 3]) (y []) z) {x})"),
        ("def f(x: [0]) = x", "(def f ((x [0])) {x})"),
        (
            "def layer(W: [n, m], b: [m], x: [k, n]) {\n  let z = x @ W + b\n  tanh(z)\n}",
            "(def layer ((W [n m]) (b [m]) (x [k n])) {(let z (+ (@ x W) b)); (call tanh z)})",
        ),
        ("def f(x) {}", "(def f (x) {})"),
        ("def f(x) { x }", "(def f (x) {x})"),
        ("let x = 1", "(let x 1)"),
        ("let (a, b) = (1, 2)", "(let (a b) (tuple 1 2))"),
        ("let (a, (b, c)) = t", "(let (a (b c)) t)"),
        ("let (a,) = t", "(let (a) t)"),
        ("let ((a)) = t", "(let a t)"),
        ("let () = t", "(let () t)"),
        ("x = x - 0.1 * g", "(set x (- x (* 0.1 g)))"),
        ("(a, b) = (b, a)", "(set (a b) (tuple b a))"),
        ("f = x => x", "(set f (fn (x) x))"),
        ("for i in 0..10 { print(i) }", "(for i 0 10 {(call print i)})"),
        ("for i in 1..n+1 { s = s + i }", "(for i 1 (+ n 1) {(set s (+ s i))})"),
        ("for i in a..b {}", "(for i a b {})"),
        ("for row in X { s = s + row }", "(foreach row X {(set s (+ s row))})"),
        ("while loss > 1e-3 { loss = loss / 2 }", "(while (> loss 0.001) {(set loss (/ loss 2))})"),
        ("x[i] = 1", "(update (index x i) 1)"),
        ("x += 1", "(update+ x 1)"),
        ("x[i, :] -= v * 2", "(update- (index x i (: _ _)) (* v 2))"),
        ("s *= 2", "(update* s 2)"),
        ("s /= n", "(update/ s n)"),
        ("print(\"loss\", l)", "(call print \"loss\" l)"),
        ("x == 1", "(== x 1)"),
        ("import \"lib/a.ad\"", "(import \"lib/a.ad\")"),
        ("import \"a\\\"b.ad\"; let x = 1", "(import \"a\\\"b.ad\")\n(let x 1)"),
    ]);
}

#[test]
fn import_needs_a_string() {
    for (src, message) in [
        ("import", "unexpected end of input, expected file name in quotes, such as \"lib.ad\""),
        ("import lib", "unexpected identifier `lib`, expected file name in quotes, such as \"lib.ad\""),
        ("import \"a.ad\" \"b.ad\"", "unexpected string, expected end of statement"),
    ] {
        let (_, d) = parse(FileId(0), src);
        assert_eq!(d.iter().map(|d| d.message.as_str()).collect::<Vec<_>>(), vec![message], "{src:?}");
    }
    // `import` is a keyword: not a name.
    let (_, d) = parse(FileId(0), "let import = 1");
    assert_eq!(d.len(), 1);
}

#[test]
fn nested_blocks_and_statements() {
    check(&[
        (
            "def f(x) {\n  let y = 0\n  for i in 0..3 {\n    y = y + i\n  }\n  if y > 0 { y } else { -y }\n}",
            "(def f (x) {(let y 0); (for i 0 3 {(set y (+ y i))}); (if (> y 0) {y} {(- y)})})",
        ),
        ("while a { while b { c } }", "(while a {(while b {c})})"),
        ("def f(x) { def g(y) = y\n g(x) }", "(def f (x) {(def g (y) {y}); (call g x)})"),
    ]);
}

#[test]
fn separators() {
    check(&[
        ("", ""),
        ("\n\n", ""),
        (";;", ""),
        ("a; b", "a\nb"),
        ("a;b;", "a\nb"),
        ("; a ;; b ;", "a\nb"),
        ("a\n\n\nb", "a\nb"),
        ("\n  a  \n  b  \n", "a\nb"),
        ("def f(x) { a; b }", "(def f (x) {a; b})"),
        ("def f(x) { ; a ;; b ; }", "(def f (x) {a; b})"),
        ("def f(x) {\n\n a\n\n b\n\n}", "(def f (x) {a; b})"),
        ("def f(x) { a\n; b }", "(def f (x) {a; b})"),
        ("let a = 1; let b = 2", "(let a 1)\n(let b 2)"),
    ]);
}

#[test]
fn comments() {
    check(&[
        ("# just a comment", ""),
        ("#!/usr/bin/env ad\nx = 1", "(set x 1)"),
        ("x = 1 # set x\ny = 2 # and y", "(set x 1)\n(set y 2)"),
        ("def f(x) { # body\n  x # result\n}", "(def f (x) {x})"),
        ("x = [1, # one\n  2] # two", "(set x [1 2])"),
        ("x = \"# not a comment\"", "(set x \"# not a comment\")"),
    ]);
}

#[test]
fn newline_rules() {
    check(&[
        // Inside parentheses and brackets.
        ("f(1,\n  2)", "(call f 1 2)"),
        ("f(\n  1\n  ,2\n)", "(call f 1 2)"),
        ("x = (a\n + b)", "(set x (+ a b))"),
        ("m = [[1, 2],\n     [3, 4]]", "(set m [[1 2] [3 4]])"),
        ("m = [\n  1,\n  2,\n]", "(set m [1 2])"),
        ("x[\n 0\n]", "(index x 0)"),
        // After a binary operator, `,`, `=`, `=>`, `:`, `..`, `{`.
        ("y = x +\n  1", "(set y (+ x 1))"),
        ("y = a &&\n b ||\n c", "(set y (|| (&& a b) c))"),
        ("y = a <\n b", "(set y (< a b))"),
        ("let y =\n  1", "(let y 1)"),
        ("f = x =>\n  x", "(set f (fn (x) x))"),
        ("for i in 0..\n 10 { }", "(for i 0 10 {})"),
        ("def f(x) =\n  x", "(def f (x) {x})"),
        ("def f(x) {\n  x }", "(def f (x) {x})"),
        // Not before an operator: a new statement starts.
        ("a\n-b", "a\n(- b)"),
        // `}` newline `else`.
        ("if c {\n  a\n}\nelse {\n  b\n}", "(if c {a} {b})"),
        ("if c { a }\n\n# comment\nelse if d { b }\nelse { e }", "(if c {a} {(if d {b} {e})})"),
        ("def f(x) {\n  if x { 1 }\n  else { 2 }\n}", "(def f (x) {(if x {1} {2})})"),
        // Inside `{` nested in parentheses, newlines end statements again.
        ("y = f(if c {\n  let t = 1\n  t\n} else { 0 })", "(set y (call f (if c {(let t 1); t} {0})))"),
        // Carriage returns are whitespace.
        ("a = 1\r\nb = 2\r\n", "(set a 1)\n(set b 2)"),
    ]);
}

#[test]
fn numbers_and_ranges() {
    check(&[
        ("for i in 0..10 {}", "(for i 0 10 {})"),
        ("for i in 1.5..2 {}", "(for i 1.5 2 {})"),
        ("x[1:2]", "(index x (: 1 2))"),
        ("1e3 + 2.5e-1", "(+ 1000 0.25)"),
        ("123456789012345678901234567890", "123456789012345680000000000000"),
        ("1e400", "inf"),
    ]);
}

/// The span of the expression statement `src` parses to.
fn expr_span(src: &str) -> (u32, u32) {
    let (m, d) = parse(FileId(0), src);
    assert!(d.is_empty(), "{src:?}: {d:?}");
    match &m.stmts[..] {
        [Stmt { kind: StmtKind::Expr(e), .. }] => (e.span.start, e.span.end),
        _ => panic!("{src:?} is not one expression statement"),
    }
}

#[test]
fn spans_cover_the_source_text() {
    assert_eq!(expr_span("a + b * c"), (0, 9));
    assert_eq!(expr_span("  f(x)'  "), (2, 7));
    assert_eq!(expr_span("(a + b)"), (0, 7)); // the parentheses belong to the expression
    assert_eq!(expr_span("-x^2"), (0, 4));
    assert_eq!(expr_span("x => x + 1"), (0, 10));
    assert_eq!(expr_span("if c { a } else { b }"), (0, 21));

    let src = "let (a, b) = f(1)\ndef g(x: [n]) {\n  x\n}";
    let (m, d) = parse(FileId(7), src);
    assert!(d.is_empty());
    let StmtKind::Let { pat, value } = &m.stmts[0].kind else { panic!("not a let") };
    assert_eq!(m.stmts[0].span.range(), 0..17);
    assert_eq!(m.stmts[0].span.file, FileId(7));
    assert_eq!(pat.span().range(), 4..10);
    assert_eq!(value.span.range(), 13..17);
    let StmtKind::Def(def) = &m.stmts[1].kind else { panic!("not a def") };
    assert_eq!(&src[def.span.range()], "def g(x: [n]) {\n  x\n}");
    assert_eq!(m.stmts[1].span, def.span);
    assert_eq!(&src[def.name.span.range()], "g");
    let annot = def.params[0].annot.as_ref().expect("annotation");
    assert_eq!(&src[annot.span.range()], "[n]");
    assert!(matches!(&annot.dims[..], [Dim::Named(Ident { name, .. })] if &**name == "n"));
    assert_eq!(&src[def.body.span.range()], "{\n  x\n}");

    // An `=` body is a block holding one expression statement, with the expression's span.
    let src = "def sq(x) = x * x";
    let (m, _) = parse(FileId(0), src);
    let StmtKind::Def(def) = &m.stmts[0].kind else { panic!("not a def") };
    assert_eq!(&src[def.body.span.range()], "x * x");
    assert_eq!(def.body.stmts.len(), 1);

    // Slices know their extent.
    let src = "x[1:n, :]";
    let (m, _) = parse(FileId(0), src);
    let StmtKind::Expr(Expr { kind: ExprKind::Index(_, args), .. }) = &m.stmts[0].kind else { panic!() };
    let spans: Vec<&str> = args
        .iter()
        .map(|a| match a {
            IndexArg::Slice { span, .. } => &src[span.range()],
            IndexArg::Index(e) => &src[e.span.range()],
        })
        .collect();
    assert_eq!(spans, ["1:n", ":"]);
}

#[test]
fn lambdas_and_defs_are_shared() {
    // Function values point into the tree (`Rc`), so cloning a module shares them.
    let (m, _) = parse(FileId(0), "def f(x) = x\nlet g = y => y");
    let m2 = m.clone();
    let (StmtKind::Def(a), StmtKind::Def(b)) = (&m.stmts[0].kind, &m2.stmts[0].kind) else { panic!() };
    assert!(std::rc::Rc::ptr_eq(a, b));
}

#[test]
fn deep_but_allowed_nesting() {
    // 256 levels of brackets are fine.
    let src = format!("x = {}1{}", "(".repeat(255), ")".repeat(255));
    check(&[(&src, "(set x 1)")]);
    let src = format!("x = {}1{}", "[".repeat(256), "]".repeat(256));
    let (m, d) = parse(FileId(0), &src);
    assert!(d.is_empty());
    assert_eq!(m.stmts.len(), 1);
    // A long but shallow array literal is fine.
    let src = format!("x = [{}]", "-1.5, ".repeat(2000));
    let (m, d) = parse(FileId(0), &src);
    assert!(d.is_empty());
    let StmtKind::Assign { value: Expr { kind: ExprKind::Array(items), .. }, .. } = &m.stmts[0].kind else {
        panic!()
    };
    assert_eq!(items.len(), 2000);
}
