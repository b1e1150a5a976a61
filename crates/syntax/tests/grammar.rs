//! Keeps `grammar/ad.ebnf` and the parser in step, and checks that every example program
//! (`examples/*.ad`, ```` ```ad ```` blocks in `book/src` and in the grammar) parses cleanly.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn grammar_text() -> String {
    let path = workspace_root().join("grammar/ad.ebnf");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The grammar with its comments blanked out (comments do not nest).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => {
                // Keep the newlines so that rule starts stay at line starts.
                let comment = &rest[start..start + 2 + end + 2];
                out.extend(comment.chars().filter(|&c| c == '\n'));
                rest = &rest[start + 2 + end + 2..];
            }
            None => panic!("unterminated comment in grammar/ad.ebnf"),
        }
    }
    out.push_str(rest);
    out
}

/// The rules of the grammar: (name, body), in order.
fn rules(grammar: &str) -> Vec<(String, String)> {
    let mut rules: Vec<(String, String)> = Vec::new();
    for line in strip_comments(grammar).lines() {
        let starts_rule = line.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        match line.split_once("::=") {
            Some((name, body)) if starts_rule => {
                let name = name.trim();
                assert!(
                    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad rule name `{name}`"
                );
                rules.push((name.to_string(), body.to_string()));
            }
            _ if line.trim().is_empty() => {}
            _ => match rules.last_mut() {
                Some((_, body)) => {
                    body.push(' ');
                    body.push_str(line);
                }
                None => panic!("text before the first rule: {line:?}"),
            },
        }
    }
    rules
}

/// The names a rule body refers to (outside quoted tokens, character classes and `#xN`).
fn references(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
            }
            '[' => {
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
            }
            '#' => {
                while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric()) {
                    chars.next();
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = c.to_string();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_alphanumeric() || **d == '_') {
                    name.push(d);
                    chars.next();
                }
                names.push(name);
            }
            _ => {}
        }
    }
    names
}

fn parser_sources() -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut text = fs::read_to_string(src.join("parser.rs")).unwrap_or_default();
    if let Ok(dir) = fs::read_dir(src.join("parser")) {
        for entry in dir.flatten() {
            text.push_str(&fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    assert!(!text.is_empty(), "no parser sources found");
    text
}

fn has_fn(source: &str, name: &str) -> bool {
    source.contains(&format!("fn {name}<")) || source.contains(&format!("fn {name}("))
}

#[test]
fn every_nonterminal_has_a_parser_function() {
    let rules = rules(&grammar_text());
    assert!(rules.len() > 20, "found only {} rules", rules.len());
    let source = parser_sources();
    let missing: Vec<&str> = rules
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.chars().any(|c| c.is_ascii_lowercase()) && !has_fn(&source, n))
        .collect();
    assert!(missing.is_empty(), "grammar rules without a parser function: {missing:?}");
}

#[test]
fn grammar_is_closed_and_has_no_duplicates() {
    let rules = rules(&grammar_text());
    let mut defined = BTreeSet::new();
    for (name, _) in &rules {
        assert!(defined.insert(name.clone()), "rule `{name}` is defined twice");
    }
    for (name, body) in &rules {
        for r in references(body) {
            assert!(defined.contains(&r), "rule `{name}` refers to undefined `{r}`");
        }
    }
    // Every rule but the start symbol is used somewhere.
    let used: BTreeSet<String> = rules.iter().flat_map(|(_, b)| references(b)).collect();
    for (name, _) in &rules {
        assert!(name == "program" || used.contains(name), "rule `{name}` is never used");
    }
}

#[test]
fn parser_docs_name_only_grammar_rules() {
    // Doc comments of the form "/// `name ::= ...`" must describe a rule that exists.
    let rules: BTreeSet<String> = rules(&grammar_text()).into_iter().map(|(n, _)| n).collect();
    let source = parser_sources();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("/// `") else { continue };
        let Some((name, _)) = rest.split_once(" ::=") else { continue };
        assert!(rules.contains(name.trim()), "parser.rs documents `{name}`, which the grammar lacks");
    }
}

/// ```` ```ad ```` blocks of a Markdown (or grammar) text: (line number, code). Blocks tagged
/// otherwise (` ```ad,ignore `, ` ```text `) are not checked.
fn ad_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```") && fence.trim_start_matches('`').trim() == "ad" => {
                current = Some((i + 2, String::new()));
            }
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some((_, code)) => {
                code.push_str(line);
                code.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn check_parses(what: &str, src: &str) {
    let (_, diags) = common::parse(src);
    assert!(diags.is_empty(), "{what} does not parse:\n{}", common::render(src, &diags));
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

#[test]
fn grammar_examples_parse() {
    let blocks = ad_blocks(&grammar_text());
    assert!(!blocks.is_empty(), "the grammar should show examples");
    for (line, code) in blocks {
        check_parses(&format!("the example at grammar/ad.ebnf:{line}"), &code);
    }
}

#[test]
fn example_files_parse() {
    let mut files = Vec::new();
    files_under(&workspace_root().join("examples"), "ad", &mut files);
    files.sort();
    for path in files {
        let src = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check_parses(&path.display().to_string(), &src);
    }
}

#[test]
fn book_snippets_parse() {
    let mut files = Vec::new();
    files_under(&workspace_root().join("book/src"), "md", &mut files);
    files.sort();
    for path in files {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (line, code) in ad_blocks(&text) {
            check_parses(&format!("the snippet at {}:{line}", path.display()), &code);
        }
    }
}

#[test]
fn ad_blocks_are_found() {
    let md = "text\n```ad\nx = 1\n```\n```ad,ignore\nbad +\n```\n```text\nno\n```\n  ```ad\ny = 2\n  ```\n";
    let blocks = ad_blocks(md);
    assert_eq!(blocks, vec![(3, "x = 1\n".to_string()), (12, "y = 2\n".to_string())]);
}
