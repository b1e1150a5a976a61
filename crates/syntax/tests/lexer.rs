//! The lexer: tokens, layout (which newlines survive), and lexical errors.

use ad_syntax::lexer::{lex, Token, MAX_NESTING};
use ad_syntax::FileId;

/// The tokens of `src` as their display names, newlines as `⏎`.
fn kinds(src: &str) -> String {
    let (tokens, diags) = lex(FileId(0), src);
    assert!(diags.is_empty(), "{src:?}: {diags:?}");
    names(&tokens)
}

fn names(tokens: &[(Token, ad_syntax::Span)]) -> String {
    tokens
        .iter()
        .map(|(t, _)| match t {
            Token::Newline => "⏎".to_string(),
            Token::Num(v) => format!("{v}"),
            Token::Str(s) => format!("{s:?}"),
            Token::Ident(n) => n.to_string(),
            t => t.symbol().map_or_else(|| format!("{t:?}"), str::to_string),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn numbers() {
    assert_eq!(kinds("3 2.5 1e-3 4.0E+2 1E3 007"), "3 2.5 0.001 400 1000 7");
    assert_eq!(kinds("0..10"), "0 .. 10");
    assert_eq!(kinds("1.5..2.5"), "1.5 .. 2.5");
    assert_eq!(kinds("x[1:2]"), "x [ 1 : 2 ]");
    // An exponent needs digits; otherwise the `e` is a name.
    assert_eq!(kinds("1e"), "1 e");
    assert_eq!(kinds("2x"), "2 x");
}

#[test]
fn strings() {
    let (tokens, diags) = lex(FileId(0), r#""a\"b\\c\nd\te" "" "π""#);
    assert!(diags.is_empty());
    let strs: Vec<&str> = tokens
        .iter()
        .map(|(t, _)| match t {
            Token::Str(s) => &**s,
            _ => panic!("not a string: {t:?}"),
        })
        .collect();
    assert_eq!(strs, ["a\"b\\c\nd\te", "", "π"]);
}

#[test]
fn names_and_keywords() {
    assert_eq!(kinds("def let for in while if else true false"), "def let for in while if else true false");
    let (tokens, _) = lex(FileId(0), "define iff true_ _x x1 In");
    assert!(tokens.iter().all(|(t, _)| matches!(t, Token::Ident(_))), "{tokens:?}");
}

#[test]
fn punctuation_and_operators() {
    assert_eq!(
        kinds("( ) [ ] { } , ; : = => .. + - * / @ ^ ' ! < <= > >= == != && ||"),
        "( ) [ ] { } , ; : = => .. + - * / @ ^ ' ! < <= > >= == != && ||"
    );
    // Longest match.
    assert_eq!(kinds("a<=b==c=>d"), "a <= b == c => d");
    assert_eq!(kinds("x''"), "x ' '");
}

#[test]
fn spans_are_byte_ranges() {
    let src = "é = \"ü\" # ä\nxy";
    let (tokens, diags) = lex(FileId(3), src);
    assert_eq!(diags.len(), 1); // `é` is not an identifier character
    let texts: Vec<&str> = tokens.iter().map(|(_, s)| &src[s.range()]).collect();
    assert_eq!(texts, ["é", "=", "\"ü\"", "\n", "xy"]);
    assert!(tokens.iter().all(|(_, s)| s.file == FileId(3)));
}

#[test]
fn comments_are_skipped() {
    assert_eq!(kinds("#!/usr/bin/env ad\nx # comment ( [ {\ny"), "x ⏎ y");
    assert_eq!(kinds("# only a comment"), "");
    assert_eq!(kinds("x = \"# in a string\""), "x = \"# in a string\"");
}

#[test]
fn display_names_for_messages() {
    let (tokens, _) = lex(FileId(0), ") foo 3 \"s\" def\nx");
    let shown: Vec<String> = tokens.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        shown,
        ["`)`", "identifier `foo`", "number", "string", "`def`", "end of line", "identifier `x`"]
    );
}

#[test]
fn layout() {
    // A newline ends a statement...
    assert_eq!(kinds("a\nb"), "a ⏎ b");
    // ...except inside ( ) and [ ],
    assert_eq!(kinds("f(a,\nb\n)"), "f ( a , b )");
    assert_eq!(kinds("[1\n2]"), "[ 1 2 ]");
    // but inside { } again, even within parentheses;
    assert_eq!(kinds("{a\nb}"), "{ a ⏎ b }");
    assert_eq!(kinds("f({a\nb}\n)"), "f ( { a ⏎ b } )");
    assert_eq!(kinds("{ f(a\n) \n b }"), "{ f ( a ) ⏎ b }");
    // and not after an operator, `,`, `=`, `=>`, `(`, `[`, `{`, `:` or `..`;
    for op in [
        "+", "-", "*", "/", "@", "^", "<", "<=", ">", ">=", "==", "!=", "&&", "||", ",", "=", "=>", ":", "..",
    ] {
        assert_eq!(kinds(&format!("a {op}\nb")), format!("a {op} b"), "after {op}");
    }
    assert_eq!(kinds("{\na}"), "{ a }");
    // but after `!`, `'` and closing brackets it does.
    assert_eq!(kinds("a'\nb"), "a ' ⏎ b");
    assert_eq!(kinds("f()\nb"), "f ( ) ⏎ b");
    // Not before `else`.
    assert_eq!(kinds("}\nelse"), "} else");
    assert_eq!(kinds("}\n\n# c\n  else"), "} else");
    // Runs collapse; leading newlines go; a trailing one stays.
    assert_eq!(kinds("\n\na\n\n\nb\n\n"), "a ⏎ b ⏎");
    assert_eq!(kinds("a ;\n b"), "a ; ⏎ b");
    assert_eq!(kinds("a\r\nb"), "a ⏎ b");
    // A statement keyword at the start of a line inside ( or [ closes them.
    assert_eq!(kinds("x = f(1,\nlet y = [2\ndef"), "x = f ( 1 , ⏎ let y = [ 2 ⏎ def");
    assert_eq!(kinds("{ g(1\nwhile"), "{ g ( 1 ⏎ while");
    assert_eq!(kinds("f(let"), "f ( let");
}

#[test]
fn bad_characters_make_one_error_per_run() {
    let (tokens, diags) = lex(FileId(0), "a $%§ b ~ c");
    assert_eq!(names(&tokens), "a Error b Error c");
    let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs, ["unexpected characters `$%§`", "unexpected character `~`"]);
    let (_, diags) = lex(FileId(0), "\u{1}\u{2}ÿ€");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].span().map(|s| s.range()), Some(0..7));
}

#[test]
fn unterminated_strings() {
    let src = "x = \"abc\ny";
    let (tokens, diags) = lex(FileId(0), src);
    assert_eq!(names(&tokens), "x = UnterminatedStr ⏎ y");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].message, "unterminated string");
    assert_eq!(&src[diags[0].span().unwrap().range()], "\"abc");
    // The brackets of its line are abandoned, so the newline after it ends the statement.
    let (tokens, _) = lex(FileId(0), "f(\"abc)\ny");
    assert_eq!(names(&tokens), "f ( UnterminatedStr ⏎ y");
}

#[test]
fn nesting_limit() {
    let ok = "(".repeat(MAX_NESTING);
    let (tokens, diags) = lex(FileId(0), &ok);
    assert!(diags.is_empty());
    assert_eq!(tokens.len(), MAX_NESTING);

    let src = format!("x = {}1", "[".repeat(5000));
    let (tokens, diags) = lex(FileId(0), &src);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].message, "nesting is too deep (more than 256 levels)");
    let span = diags[0].span().unwrap();
    assert_eq!(span.range(), 4 + MAX_NESTING..4 + MAX_NESTING + 1);
    // Lexing stopped at the offending bracket.
    assert_eq!(tokens.len(), 2 + MAX_NESTING);

    // Closing brackets free levels again.
    let src = "(".repeat(200) + &")".repeat(200) + &"(".repeat(200);
    assert!(lex(FileId(0), &src).1.is_empty());
}
