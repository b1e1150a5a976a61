#[test]
fn stmts() {
    for n in [10_000, 20_000, 40_000] {
        let src = "x = x + 1\n".repeat(n);
        let t = std::time::Instant::now();
        let (m, _) = ad_syntax::parser::parse(ad_syntax::FileId(0), &src);
        println!("{} {:?}", m.stmts.len(), t.elapsed());
    }
    for n in [10_000, 20_000, 40_000] {
        let src = format!("x = [{}]", "1, ".repeat(n));
        let t = std::time::Instant::now();
        let (m, _) = ad_syntax::parser::parse(ad_syntax::FileId(0), &src);
        println!("arr {} {:?}", m.stmts.len(), t.elapsed());
    }
}
