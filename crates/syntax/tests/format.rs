//! The formatter: expected output for each convention, and on every `.ad` text of the
//! repository (examples, golden files, the prelude, the book's snippets, fuzz regressions)
//! that formatting succeeds, keeps the tree and the comments, and changes nothing the
//! second time; programs AD printed are already formatted.

use ad_syntax::format::{format, same_tree};
use ad_syntax::parser::parse;
use ad_syntax::FileId;
use std::path::{Path, PathBuf};

fn fmt(src: &str) -> String {
    match format(FileId(0), src) {
        Ok(s) => s,
        Err(e) => panic!("formatting {src:?} failed: {e:?}"),
    }
}

/// Each input formats to the expected text, and that text is a fixed point.
fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (src, want) in cases {
        let got = fmt(src);
        if got != *want {
            failures.push(format!("{src:?}\n  want {want:?}\n  got  {got:?}"));
            continue;
        }
        let again = fmt(&got);
        if again != got {
            failures.push(format!("{src:?}: not idempotent\n  once  {got:?}\n  twice {again:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn spacing_and_statements() {
    check(&[
        ("let x=1+2*3", "let x = 1 + 2 * 3\n"),
        ("x=x-0.1*g", "x = x - 0.1 * g\n"),
        ("let (a,(b,c))=(1,(2,3))", "let (a, (b, c)) = (1, (2, 3))\n"),
        ("let (a,)=(1,)", "let (a,) = (1,)\n"),
        ("print( \"a b\" , 1e-3 , true,false )", "print(\"a b\", 1e-3, true, false)\n"),
        ("a = 1; b = 2", "a = 1\nb = 2\n"),
        ("for i in 0 .. n+1 { print(i) }", "for i in 0..n + 1 { print(i) }\n"),
        ("while x>1e-3 { x = x/2 ; y = 1}", "while x > 1e-3 { x = x / 2; y = 1 }\n"),
        ("let t = m'[0 , :] @ m[ : , -1]", "let t = m'[0, :] @ m[:, -1]\n"),
        ("x[1 :]+x[ :-1]+x[:]+x[a:b]", "x[1:] + x[:-1] + x[:] + x[a:b]\n"),
        ("f(x)(y)'", "f(x)(y)'\n"),
        ("let f = (x) => x", "let f = x => x\n"),
        ("let g = (x,y)=>x+y", "let g = (x, y) => x + y\n"),
        ("let h = () => 1", "let h = () => 1\n"),
        ("print((), ( 1 , ))", "print((), (1,))\n"),
        ("def f( x : [ n , 3 ] , y:[] ) = x", "def f(x: [n, 3], y: []) = x\n"),
        ("def f() {}", "def f() {}\n"),
        ("import   \"lib/a.ad\" ;import\"b\\\\c.ad\"", "import \"lib/a.ad\"\nimport \"b\\\\c.ad\"\n"),
        ("", ""),
        ("\n\n", ""),
    ]);
}

#[test]
fn fewest_parentheses() {
    check(&[
        ("(a*b)+c", "a * b + c\n"),
        ("a*(b+c)", "a * (b + c)\n"),
        ("(a-b)-c", "a - b - c\n"),
        ("a-(b-c)", "a - (b - c)\n"),
        ("-(x^2)", "-x ^ 2\n"),
        ("(-x)^2", "(-x) ^ 2\n"),
        ("2^-1", "2 ^ (-1)\n"),
        ("2^(3^2)", "2 ^ 3 ^ 2\n"),
        ("(2^3)^2", "(2 ^ 3) ^ 2\n"),
        ("-(-x)", "-(-x)\n"),
        ("-a*b", "-a * b\n"),
        ("a*-b", "a * -b\n"),
        ("-(a*b)", "-(a * b)\n"),
        ("(a<b)<c", "(a < b) < c\n"),
        ("a<(b+c)", "a < b + c\n"),
        ("(!a)&&b||c", "!a && b || c\n"),
        ("a||(b&&c)", "a || b && c\n"),
        ("(a||b)&&c", "(a || b) && c\n"),
        ("(x')'", "x''\n"),
        ("(a+b)'", "(a + b)'\n"),
        ("(f)(x)", "f(x)\n"),
        ("((x) => x)(1)", "(x => x)(1)\n"),
        ("x => (y => x + y)", "x => y => x + y\n"),
        ("a + (x => x)", "a + (x => x)\n"),
        ("(if c { a } else { b }) + 1", "(if c { a } else { b }) + 1\n"),
        ("let s = (if a > b { a } else { b })", "let s = if a > b { a } else { b }\n"),
        ("((1))", "1\n"),
        ("(([1, 2]))", "[1, 2]\n"),
        ("(((1, 2)))", "(1, 2)\n"),
    ]);
}

#[test]
fn blocks() {
    check(&[
        ("def f(x){\nlet y=x\ny}", "def f(x) {\n  let y = x\n  y\n}\n"),
        ("def f(x) {\n\n\n  let y = x\n\n\n\n  y\n\n}", "def f(x) {\n  let y = x\n\n  y\n}\n"),
        ("def f(x) {\n    y\n}", "def f(x) {\n  y\n}\n"),
        ("def f(x) {\n}", "def f(x) {}\n"),
        ("def sq(x) = x*x", "def sq(x) = x * x\n"),
        ("def sq(x) { x*x }", "def sq(x) { x * x }\n"),
        (
            "print(if 1 > 2 { \"yes\" } else if 2 > 1 { \"no\" } else { \"?\" })",
            "print(if 1 > 2 { \"yes\" } else if 2 > 1 { \"no\" } else { \"?\" })\n",
        ),
        ("let s = if a {\n1\n}\nelse {\n2}", "let s = if a {\n  1\n} else {\n  2\n}\n"),
        (
            "for i in 0..3 {\nfor j in 0..3 {\nprint(i, j)\n}\n}",
            "for i in 0..3 {\n  for j in 0..3 {\n    print(i, j)\n  }\n}\n",
        ),
        ("print(f(if c {\na\n} else { b }))", "print(f(if c {\n  a\n} else { b }))\n"),
        ("if c { a } else { if d { b } }", "if c { a } else { if d { b } }\n"),
    ]);
}

#[test]
fn line_breaks() {
    check(&[
        // After a comma: later lines aligned after the bracket.
        ("let m = [[1, 2],\n [3, 4]]", "let m = [[1, 2],\n         [3, 4]]\n"),
        ("print(\"add\", f(1),\n   f(2))", "print(\"add\", f(1),\n      f(2))\n"),
        // A body after broken parameters is indented from the `def`.
        ("def f(a,\nb) {\nx\n}", "def f(a,\n      b) {\n  x\n}\n"),
        // After the opening bracket: one element a line.
        ("let v = [\n1, 2,\n3]", "let v = [\n  1, 2,\n  3\n]\n"),
        ("f(\n  a,\n  b,\n)", "f(\n  a,\n  b\n)\n"),
        // After an operator, `=` or `=>`.
        ("let y = a +\nb +\n      c", "let y = a +\n  b +\n  c\n"),
        ("def f(x) =\n      x + 1", "def f(x) =\n  x + 1\n"),
        ("let f = x =>\n x", "let f = x =>\n  x\n"),
        ("let y = (a\n+ b)", "let y = a +\n  b\n"),
        // Other line breaks go.
        ("let y = f(a\n)", "let y = f(a)\n"),
        ("for i in 0..\n3 { i }", "for i in 0..3 { i }\n"),
        ("def f(x) {\n  let y = g(a,\n  b)\n  y\n}", "def f(x) {\n  let y = g(a,\n            b)\n  y\n}\n"),
    ]);
}

#[test]
fn comments() {
    check(&[
        ("# a\n# b\nlet x = 1", "# a\n# b\nlet x = 1\n"),
        ("\n\n# a\n\n\n# b\nx", "# a\n\n# b\nx\n"),
        ("x # c", "x # c\n"),
        ("x=1      # aligned\nyy=22    # aligned", "x = 1    # aligned\nyy = 22  # aligned\n"),
        ("let long_name=f(a,b,c) # c", "let long_name = f(a, b, c) # c\n"),
        (
            "def f(x) {  # header\n  x  # body\n  # before the brace\n}",
            "def f(x) {  # header\n  x  # body\n  # before the brace\n}\n",
        ),
        ("def f(x) {\n    # own line\n    x\n}", "def f(x) {\n  # own line\n  x\n}\n"),
        ("let a = [1,  # one\n 2]", "let a = [1,  # one\n         2]\n"),
        (
            "f(\n  a,  # first\n  # about b\n  b  # last\n)",
            "f(\n  a,  # first\n  # about b\n  b  # last\n)\n",
        ),
        ("let y = a +  # more\n  b", "let y = a +  # more\n  b\n"),
        ("let y = (a  # here\n + b)", "let y = a + # here\n  b\n"),
        ("def f(x) =  # why\n  x", "def f(x) =  # why\n  x\n"),
        ("x\n\n\n\n# end\n", "x\n\n# end\n"),
        ("x\n# end   ", "x\n# end   \n"),
        ("#! run\nprint(1)\n# expect:\n# 1\n", "#! run\nprint(1)\n# expect:\n# 1\n"),
        ("# only a comment", "# only a comment\n"),
        ("let s = \"# not a comment\"", "let s = \"# not a comment\"\n"),
        ("a=1;b=2 # on b", "a = 1\nb = 2   # on b\n"),
        ("x = 1\r\n# c\r\ny  =  2\r\n", "x = 1\n# c\ny = 2\n"),
        ("let a = [1, 2]  # c\n", "let a = [1, 2]  # c\n"),
        ("def f(x) {\n  x\n  # a\n\n  # b\n}", "def f(x) {\n  x\n  # a\n\n  # b\n}\n"),
    ]);
}

#[test]
fn comments_the_rules_do_not_reach_keep_their_statement() {
    check(&[
        ("def f(x: [n,  # rows\n  3]) = x\nlet y=1", "def f(x: [n,  # rows\n  3]) = x\nlet y = 1\n"),
        (
            "let a = if c { 1 }  # then\n  else { 2 }\nb=1",
            "let a = if c { 1 }  # then\n  else { 2 }\nb = 1\n",
        ),
        (
            "def f(x) {\n      let y = g((  # c\n a))\n  y\n}",
            "def f(x) {\n  let y = g((  # c\n a))\n  y\n}\n",
        ),
    ]);
}

#[test]
fn syntax_errors_are_reported_not_formatted() {
    for src in ["let x = (1 +", "def f(x) = ", "x = = 1", "let s = \"open", "a < b < c"] {
        assert!(format(FileId(0), src).is_err(), "{src:?} formatted");
    }
}

// ---------------------------------------------------------------------------------------------
// Every text in the repository.

fn ad_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            ad_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ad") {
            out.push(p);
        }
    }
}

fn markdown_blocks(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            markdown_blocks(&p, out);
        } else if p.extension().is_some_and(|x| x == "md" || x == "ebnf") {
            let text = std::fs::read_to_string(&p).unwrap();
            let mut current: Option<(usize, String)> = None;
            for (i, line) in text.lines().enumerate() {
                let t = line.trim_start();
                match &mut current {
                    None if t.starts_with("```ad") => current = Some((i + 1, String::new())),
                    Some((n, body)) if t.starts_with("```") => {
                        out.push((format!("{}:{n}", p.display()), std::mem::take(body)));
                        current = None;
                    }
                    Some((_, body)) => {
                        body.push_str(line);
                        body.push('\n');
                    }
                    None => {}
                }
            }
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.ad` text of the repository, named.
fn corpus() -> Vec<(String, String)> {
    let root = root();
    let mut files = Vec::new();
    for dir in ["examples", "tests", "crates", "book"] {
        ad_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut texts: Vec<(String, String)> =
        files.iter().map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap())).collect();
    markdown_blocks(&root.join("book/src"), &mut texts);
    markdown_blocks(&root.join("grammar"), &mut texts);
    texts
}

#[test]
fn every_text_keeps_its_meaning_and_formats_once() {
    let texts = corpus();
    assert!(texts.len() > 500, "found only {} texts", texts.len());
    let mut failures = Vec::new();
    let mut formatted = 0;
    for (name, text) in &texts {
        let (tree, errors) = parse(FileId(0), text);
        let once = match format(FileId(0), text) {
            Ok(s) => s,
            Err(e) if !errors.is_empty() => {
                assert_eq!(e, errors, "{name}: syntax errors reported differently");
                continue;
            }
            Err(e) => {
                failures.push(format!("{name}: {}", e[0].message));
                continue;
            }
        };
        formatted += 1;
        let (again, errors) = parse(FileId(0), &once);
        if !errors.is_empty() || !same_tree(&tree, &again) {
            failures.push(format!("{name}: the formatted text means something else"));
        }
        let twice = fmt(&once);
        if twice != once {
            failures
                .push(format!("{name}: formatting twice changes it:\n{}", first_difference(&once, &twice)));
        }
    }
    assert!(formatted > 500, "formatted only {formatted} texts");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Programs AD printed (the derived programs beside the golden files) are formatted already:
/// the formatter and the printer follow the same conventions.
#[test]
fn printed_programs_are_formatted() {
    let mut files = Vec::new();
    ad_files(&root().join("tests/golden"), &mut files);
    let derived = regex_free_is_derived;
    let mut failures = Vec::new();
    let mut n = 0;
    for f in files.iter().filter(|f| derived(f)) {
        let text = std::fs::read_to_string(f).unwrap();
        n += 1;
        let once = fmt(&text);
        if once != text {
            failures.push(format!("{}:\n{}", f.display(), first_difference(&text, &once)));
        }
    }
    assert!(n > 300, "found only {n} derived programs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A derived program: a golden `.ad` file with no `#!` directive.
fn regex_free_is_derived(f: &Path) -> bool {
    let text = std::fs::read_to_string(f).unwrap();
    !text.lines().any(|l| l.starts_with("#!"))
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("  line {}:\n  - {x:?}\n  + {y:?}", i + 1);
        }
    }
    format!("  lengths differ: {} and {} lines", a.lines().count(), b.lines().count())
}
