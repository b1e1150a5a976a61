mod common;
#[test]
fn scratch() {
    let src = std::fs::read_to_string("/tmp/scratch.ad").unwrap();
    for case in src.split("\n----\n") {
        let (s, d) = common::parse(case);
        println!("=== {case:?}\n{s}\nincomplete={}\n{}", ad_syntax::parser::is_incomplete(case), common::render(case, &d));
    }
}
