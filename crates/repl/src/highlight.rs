//! Syntax colouring for the line editor. Only ANSI colour codes are inserted, so the
//! displayed width of the line never changes.

use ad_ir::lower::builtins;

const KEYWORD: &str = "\x1b[1;35m";
const NUMBER: &str = "\x1b[36m";
const STRING: &str = "\x1b[32m";
const COMMENT: &str = "\x1b[90m";
const BUILTIN: &str = "\x1b[34m";
const COMMAND: &str = "\x1b[1;33m";
const RESET: &str = "\x1b[0m";

const KEYWORDS: &[&str] = &["def", "let", "for", "in", "while", "if", "else", "true", "false", "import"];

pub fn highlight(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    let paint = |out: &mut String, color: &str, text: &str| {
        out.push_str(color);
        out.push_str(text);
        out.push_str(RESET);
    };
    // A command word at the start of the entry.
    if line.trim_start().starts_with(':') {
        let start = line.len() - line.trim_start().len();
        let end = line[start..].find(char::is_whitespace).map(|e| start + e).unwrap_or(line.len());
        out.push_str(&line[..start]);
        paint(&mut out, COMMAND, &line[start..end]);
        while i < chars.len() && chars[i].0 < end {
            i += 1;
        }
    }
    while i < chars.len() {
        let (pos, c) = chars[i];
        let end_of = |j: usize| chars.get(j).map(|x| x.0).unwrap_or(line.len());
        if c == '#' {
            paint(&mut out, COMMENT, &line[pos..]);
            break;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j].1 != '"' {
                if chars[j].1 == '\\' {
                    j += 1;
                }
                j += 1;
            }
            let end = end_of((j + 1).min(chars.len()));
            paint(&mut out, STRING, &line[pos..end]);
            i = j + 1;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() {
                let d = chars[j].1;
                let exp_sign = (d == '-' || d == '+') && j > i && matches!(chars[j - 1].1, 'e' | 'E');
                let dot = d == '.' && chars.get(j + 1).is_some_and(|n| n.1.is_ascii_digit());
                if d.is_ascii_digit() || dot || d == 'e' || d == 'E' || exp_sign {
                    j += 1;
                } else {
                    break;
                }
            }
            paint(&mut out, NUMBER, &line[pos..end_of(j)]);
            i = j;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_ascii_alphanumeric() || chars[j].1 == '_') {
                j += 1;
            }
            let word = &line[pos..end_of(j)];
            if KEYWORDS.contains(&word) {
                paint(&mut out, KEYWORD, word);
            } else if builtins::is_builtin_name(word) {
                paint(&mut out, BUILTIN, word);
            } else {
                out.push_str(word);
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The text without colour codes: what the terminal shows.
pub fn strip(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_keep_the_text() {
        for line in [
            "def f(x) = sum(sin(x) * x)  # a comment",
            "let s = \"a \\\"quoted\\\" string\"",
            ":grad f(2.5e-3, [1, 2])",
            "x[1:] - x[:-1] ^ 2",
            "ünïcode => 1",
            "\"unterminated",
        ] {
            let h = highlight(line);
            assert_eq!(strip(&h), line);
        }
        assert!(highlight("def").contains(KEYWORD));
        assert!(highlight("sin(x)").contains(BUILTIN));
        assert!(highlight("1e-3").contains(NUMBER));
    }
}
