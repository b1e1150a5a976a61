//! Delta debugging: shrink a failing input while it keeps failing the same way.
//!
//! First by lines (a REPL entry or a statement is usually one line), then by tokens, with
//! Zeller's ddmin over complements, then one pass removing single units. The caller's test
//! decides what "failing the same way" means (the same finding signature) and a budget
//! bounds the number of runs, since every test is a run of the binary.

use std::time::{Duration, Instant};

/// How much effort a minimisation may spend.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub runs: usize,
    pub time: Duration,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget { runs: 400, time: Duration::from_secs(90) }
    }
}

/// Counts the runs a minimisation makes and says when the budget is spent.
struct Meter {
    budget: Budget,
    start: Instant,
    runs: usize,
}

impl Meter {
    fn spent(&self) -> bool {
        self.runs >= self.budget.runs || self.start.elapsed() >= self.budget.time
    }
}

/// The smallest text found (by lines, groups, then tokens) for which `still_fails` holds. The
/// input itself is assumed to fail; the result always does (or is the input).
pub fn minimize(text: &[u8], budget: Budget, still_fails: &mut dyn FnMut(&[u8]) -> bool) -> Vec<u8> {
    let mut meter = Meter { budget, start: Instant::now(), runs: 0 };
    let mut test = |candidate: &[u8], meter: &mut Meter| -> bool {
        if meter.spent() {
            return false;
        }
        meter.runs += 1;
        still_fails(candidate)
    };
    let lines = split_lines(text);
    let lines = ddmin(lines, &mut |units: &[&[u8]], m: &mut Meter| test(&units.concat(), m), &mut meter);
    let text = lines.concat();
    let text = simplify_groups(&text, &mut |candidate: &[u8], m: &mut Meter| test(candidate, m), &mut meter);
    let tokens = split_tokens(&text);
    let tokens = ddmin(tokens, &mut |units: &[&[u8]], m: &mut Meter| test(&units.concat(), m), &mut meter);
    let text = tokens.concat();
    simplify_groups(&text, &mut |candidate: &[u8], m: &mut Meter| test(candidate, m), &mut meter)
}

/// Removing single tokens cannot shrink `f((a + b) * c)` without unbalancing brackets,
/// which usually turns the finding into a syntax error. So each bracketed group, largest
/// first, is tried removed whole, replaced by its contents, and replaced (with the name
/// called before it) by `1`.
fn simplify_groups(
    text: &[u8],
    test: &mut dyn FnMut(&[u8], &mut Meter) -> bool,
    meter: &mut Meter,
) -> Vec<u8> {
    let mut current = text.to_vec();
    // After a success the groups are found again and the walk goes on from the same rank
    // (the groups before it were tried already, and removing text rarely helps them).
    let mut rank = 0;
    while !meter.spent() {
        let tokens = split_tokens(&current);
        let groups = bracket_groups(&tokens);
        let Some(&(open, close)) = groups.get(rank) else { break };
        let callee = open.checked_sub(1).filter(|&i| {
            tokens[i].first().is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
                && !tokens[i].ends_with(b" ")
        });
        // Replaces a range of tokens, with a space where the new neighbours would glue into
        // one word (`print(boom)` unwrapped is `print boom`, not `printboom`).
        let keep = |range: std::ops::Range<usize>, middle: &[&[u8]]| -> Vec<u8> {
            let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
            let mut out: Vec<u8> = tokens[..range.start].concat();
            for piece in [middle.concat(), tokens[range.end..].concat()] {
                if word(out.last()) && word(piece.first()) {
                    out.push(b' ');
                }
                out.extend(piece);
            }
            out
        };
        // The whole lines the group spans: a block statement (`def f(x) { ... }`, `for ...`)
        // that line-wise ddmin could not remove, since its chunks rarely line up with it.
        let first = tokens[..open].iter().rposition(|t| t.ends_with(b"\n")).map_or(0, |i| i + 1);
        let last =
            tokens[close..].iter().position(|t| t.ends_with(b"\n")).map_or(tokens.len(), |i| close + i + 1);
        let candidates = [
            keep(first..last, &[]),
            keep(open..close + 1, &[]),
            keep(open..close + 1, &tokens[open + 1..close]),
            keep(callee.unwrap_or(open)..close + 1, &[b"1".as_slice()]),
        ];
        let mut reduced = false;
        for c in candidates {
            if c.len() < current.len() && test(&c, meter) {
                current = c;
                reduced = true;
                break;
            }
        }
        if !reduced {
            rank += 1;
        }
    }
    current
}

/// The matching bracket pairs among tokens (by index), largest first.
fn bracket_groups(tokens: &[&[u8]]) -> Vec<(usize, usize)> {
    let mut stack: Vec<(usize, u8)> = Vec::new();
    let mut pairs = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.trim_ascii_end() {
            [b @ (b'(' | b'[' | b'{')] => stack.push((i, *b)),
            [b @ (b')' | b']' | b'}')] => {
                let want = match b {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if let Some(pos) = stack.iter().rposition(|(_, o)| *o == want) {
                    pairs.push((stack[pos].0, i));
                    stack.truncate(pos);
                }
            }
            _ => {}
        }
    }
    pairs.sort_by_key(|&(a, b)| std::cmp::Reverse(b - a));
    pairs
}

/// ddmin on complements: remove one of `n` chunks while that keeps the failure, doubling
/// `n` when no chunk can go; then try removing units one at a time.
fn ddmin<'a>(
    mut units: Vec<&'a [u8]>,
    test: &mut dyn FnMut(&[&'a [u8]], &mut Meter) -> bool,
    meter: &mut Meter,
) -> Vec<&'a [u8]> {
    let mut n = 2usize;
    while units.len() >= 2 && !meter.spent() {
        let chunk = units.len().div_ceil(n);
        let mut reduced = false;
        let mut start = 0;
        while start < units.len() {
            let end = (start + chunk).min(units.len());
            let candidate: Vec<&[u8]> = units[..start].iter().chain(&units[end..]).copied().collect();
            if test(&candidate, meter) {
                units = candidate;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
            start = end;
        }
        if !reduced {
            if n >= units.len() {
                break;
            }
            n = (n * 2).min(units.len());
        }
    }
    // Single units, from the end (later statements usually depend on earlier ones).
    let mut i = units.len();
    while i > 0 && !meter.spent() {
        i -= 1;
        let mut candidate = units.clone();
        candidate.remove(i);
        if test(&candidate, meter) {
            units = candidate;
        }
    }
    units
}

/// Lines, each with its newline.
pub fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

/// Tokens for minimisation and mutation: an identifier, a number (`2.5e-3`), a string
/// literal, a newline, or any other single byte (so `..` is two tokens), each with the
/// blanks that follow it, so that removing a word takes its space along rather than gluing
/// its neighbours (`let x = 1` loses `x ` and becomes `let = 1`, not `letx`).
pub fn split_tokens(text: &[u8]) -> Vec<&[u8]> {
    let digit = |i: usize| text.get(i).is_some_and(|b| b.is_ascii_digit());
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let mut j = i + 1;
        if b.is_ascii_alphabetic() || b == b'_' {
            while j < text.len() && (text[j].is_ascii_alphanumeric() || text[j] == b'_') {
                j += 1;
            }
        } else if b.is_ascii_digit() {
            while digit(j) {
                j += 1;
            }
            if text.get(j) == Some(&b'.') && digit(j + 1) {
                j += 1;
                while digit(j) {
                    j += 1;
                }
            }
            if matches!(text.get(j), Some(b'e' | b'E')) {
                let k = if matches!(text.get(j + 1), Some(b'+' | b'-')) { j + 2 } else { j + 1 };
                if digit(k) {
                    j = k;
                    while digit(j) {
                        j += 1;
                    }
                }
            }
        } else if b == b'"' {
            while j < text.len() && text[j] != b'"' && text[j] != b'\n' {
                j += if text[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(text.len());
        }
        while j < text.len() && (text[j] == b' ' || text[j] == b'\t') {
            j += 1;
        }
        out.push(&text[i..j]);
        i = j;
    }
    out
}
