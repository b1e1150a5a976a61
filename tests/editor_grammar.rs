//! The editor grammar (grammar/ad.tmLanguage.json) names every keyword, builtin and
//! library function the language has, so editors colour what the language knows.

use std::path::Path;

#[test]
fn editor_grammar_knows_every_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("grammar/ad.tmLanguage.json")).unwrap();
    let words = |key: &str| -> Vec<String> {
        let i = text.find(&format!("\"{key}\"")).unwrap_or_else(|| panic!("no `{key}` rule"));
        let rest = &text[i..];
        let m = rest.find("\"match\"").unwrap();
        let line = rest[m..].lines().next().unwrap();
        let inner = line.split("\\\\b(").nth(1).unwrap_or("").split(")\\\\b").next().unwrap_or("");
        inner.split('|').map(|s| s.to_string()).collect()
    };
    let builtins = words("builtin");
    assert!(
        builtins.len() >= ad_ir::lower::builtins::names().len(),
        "the builtin rule was not read: {builtins:?}"
    );
    for name in ad_ir::lower::builtins::names() {
        assert!(builtins.iter().any(|b| b == name), "the editor grammar lacks the builtin `{name}`");
    }
    let library = words("library");
    for line in ad_driver::session::PRELUDE.lines() {
        if let Some(rest) = line.strip_prefix("def ") {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.starts_with('_') {
                assert!(library.contains(&name), "the editor grammar lacks the library function `{name}`");
            }
        }
    }
    for kw in ["def", "let", "for", "in", "while", "if", "else", "import"] {
        assert!(words("keyword").iter().any(|k| k == kw), "the editor grammar lacks the keyword `{kw}`");
    }
}

/// The language reference names every builtin (in code spans), so that the table a user
/// reads is the table the language has.
#[test]
fn reference_names_every_builtin() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("book/src/reference.md")).unwrap();
    // Words inside code spans: `sum(x, axis)` gives `sum`, `x` and `axis`.
    let mut words = std::collections::HashSet::new();
    for (i, span) in text.split('`').enumerate() {
        if i % 2 == 1 {
            words.extend(span.split(|c: char| !(c.is_alphanumeric() || c == '_')).map(str::to_string));
        }
    }
    let missing: Vec<&str> =
        ad_ir::lower::builtins::names().iter().copied().filter(|n| !words.contains(*n)).collect();
    assert!(missing.is_empty(), "book/src/reference.md does not mention the builtins {missing:?}");
}
