mod common;
fn run(name: &str, src: &str) {
    let t = std::time::Instant::now();
    let (m, d) = ad_syntax::parser::parse(ad_syntax::FileId(0), src);
    let s = if m.stmts.len() < 3 && src.len() < 100 { common::module(&m) } else { String::new() };
    let inc = ad_syntax::parser::is_incomplete(src);
    let msgs: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
    println!("{name}: {:?} stmts_len={} diags={:?} inc={inc}", t.elapsed(), s.len().min(80), msgs);
}
#[test]
fn scratch2() {
    run("3000 parens", &"(".repeat(3000));
    run("3000 parens closed", &format!("{}1{}", "(".repeat(3000), ")".repeat(3000)));
    run("256 parens closed", &format!("{}1{}", "(".repeat(256), ")".repeat(256)));
    run("256 brackets closed", &format!("{}1{}", "[".repeat(256), "]".repeat(256)));
    run("257 parens closed", &format!("x = 1\n{}1{}\ny = 2", "(".repeat(257), ")".repeat(257)));
    run("100k plus", &format!("x = 1{}", " + 1".repeat(100_000)));
    run("999 plus", &format!("x = 1{}", " + 1".repeat(999)));
    run("100k neg", &format!("x = {}1", "-".repeat(100_000)));
    run("100k pow", &format!("x = 1{}", "^1".repeat(100_000)));
    run("100k lambda", &format!("f = {}1", "x => ".repeat(100_000)));
    run("10k elseif", &format!("y = if a {{1}}{} else {{2}}", " else if a {1}".repeat(10_000)));
    run("100k array", &format!("x = [{}]", "-1.5, ".repeat(100_000)));
    run("100k stmts", &"x = x + 1\n".repeat(100_000));
    run("100k calls", &format!("x = f{}", "(1)".repeat(100_000)));
    run("100k transpose", &format!("x = f{}", "'".repeat(100_000)));
    run("garbage", "\u{1}\u{2}ÿ€ def");
    run("nul", "x = \0 1");
    run("lone quote", "\"");
    run("backslash eol", "x = \"abc\\\ny = 1");
}
#[test]
fn lextime() {
    let src = "x = x + 1\n".repeat(100_000);
    let t = std::time::Instant::now();
    let (toks, _) = ad_syntax::lexer::lex(ad_syntax::FileId(0), &src);
    println!("lex {} tokens: {:?}", toks.len(), t.elapsed());
}
