//! Mutations of existing `.ad` files (the golden files, the examples, earlier findings):
//! programs that are almost right, which reach deeper than random text and nearer to the
//! edges than generated programs, because each file was written to exercise something.

use crate::minimize::{split_lines, split_tokens};
use crate::rng::Rng;

/// Numbers at the edges: zero, negatives, huge and tiny magnitudes, sizes near the
/// 2^31-element limit, non-integers where integers are expected, NaN and infinities.
pub const EXTREME_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "0.5",
    "1e308",
    "1e-308",
    "65536",
    "2147483648",
    "46341",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "(0 / 0)",
    "3.000001",
    "-0",
    "1e16",
];

/// Numbers for positions where a large value only makes the program run long (loop bounds),
/// which says nothing about AD.
const SMALL_NUMBERS: &[&str] = &["0", "1", "2", "3", "-1", "0.5"];

/// Tokens to insert or substitute: keywords, punctuation, operators, and the builtins where
/// the interesting code is (transforms, random numbers, shapes).
pub const VOCABULARY: &[&str] = &[
    "def",
    "let",
    "for",
    "in",
    "while",
    "if",
    "else",
    "true",
    "false",
    "import",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    ":",
    "=",
    "=>",
    "..",
    "+",
    "-",
    "*",
    "/",
    "@",
    "^",
    "'",
    "!",
    "<",
    "==",
    "&&",
    "||",
    "\n",
    "x",
    "f",
    "nan",
    "inf",
    "0",
    "-1",
    "1e308",
    "()",
    "(1,)",
    "\"s\"",
    "grad",
    "value_and_grad",
    "jvp",
    "vjp",
    "hvp",
    "hessian",
    "jacobian",
    "jacfwd",
    "jacrev",
    "randn",
    "rand",
    "zeros",
    "ones",
    "eye",
    "sum",
    "amax",
    "where",
    "reshape",
    "broadcast_to",
    "sum_to",
    "pad",
    "concat",
    "slice",
    "index",
    "stop_gradient",
    "solve",
    "transpose",
    "shape",
    "mean",
    "softmax",
    "seed",
    "print",
];

/// Function-to-function wrappers for the "wrap a called name in a transform" mutation.
const WRAPPERS: &[&str] =
    &["grad", "value_and_grad", "hessian", "jacobian", "jacfwd", "jacrev", "grad(grad", "jacobian(grad"];

/// Applies 1 to 4 mutations to `text`; `donor` is another file that may lend a line.
pub fn mutate(rng: &mut Rng, text: &[u8], donor: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    for _ in 0..rng.range(1, 4) {
        out = mutate_once(rng, &out, donor);
    }
    out
}

fn mutate_once(rng: &mut Rng, text: &[u8], donor: &[u8]) -> Vec<u8> {
    let lines = split_lines(text);
    let tokens = split_tokens(text);
    let mut lines: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    let mut tokens: Vec<Vec<u8>> = tokens.iter().map(|t| t.to_vec()).collect();
    let nl = lines.len();
    let nt = tokens.len();
    match rng.below(14) {
        0 if nl > 0 => {
            lines.remove(rng.below(nl));
        }
        1 if nl > 0 => {
            let i = rng.below(nl);
            let l = lines[i].clone();
            lines.insert(rng.below(nl + 1), l);
        }
        2 if nl > 1 => {
            let (i, j) = (rng.below(nl), rng.below(nl));
            lines.swap(i, j);
        }
        3 if nt > 0 => {
            tokens.remove(rng.below(nt));
            return tokens.concat();
        }
        4 if nt > 0 => {
            let i = rng.below(nt);
            let t = tokens[i].clone();
            tokens.insert(i, t);
            return tokens.concat();
        }
        5 if nt > 1 => {
            let (i, j) = (rng.below(nt), rng.below(nt));
            tokens.swap(i, j);
            return tokens.concat();
        }
        6..=8 => {
            if let Some(t) = replace_number(rng, &tokens) {
                return t;
            }
        }
        9 if nt > 0 => {
            let i = rng.below(nt);
            tokens[i] = format!("{} ", rng.pick(VOCABULARY)).into_bytes();
            return tokens.concat();
        }
        10 => {
            let i = rng.below(nt + 1);
            tokens.insert(i, format!(" {} ", rng.pick(VOCABULARY)).into_bytes());
            return tokens.concat();
        }
        11 if nt > 0 => {
            tokens.truncate(rng.below(nt));
            return tokens.concat();
        }
        12 => {
            let donor_lines = split_lines(donor);
            if !donor_lines.is_empty() {
                let mut l = rng.pick(&donor_lines).to_vec();
                if !l.ends_with(b"\n") {
                    l.push(b'\n');
                }
                lines.insert(rng.below(nl + 1), l);
            }
        }
        _ => {
            if let Some(t) = wrap_in_transform(rng, &tokens) {
                return t;
            }
        }
    }
    lines.concat()
}

fn is_number(t: &[u8]) -> bool {
    let t = t.trim_ascii_end();
    !t.is_empty() && t[0].is_ascii_digit()
}

/// Replaces a number by an extreme one (or a small one in a loop bound).
fn replace_number(rng: &mut Rng, tokens: &[Vec<u8>]) -> Option<Vec<u8>> {
    let numbers: Vec<usize> = (0..tokens.len()).filter(|&i| is_number(&tokens[i])).collect();
    if numbers.is_empty() {
        return None;
    }
    let i = *rng.pick(&numbers);
    // A bound of `a..b` is preceded by `..` tokens or followed by them; a `while` line's
    // numbers decide how long it loops.
    let near = |j: Option<usize>| j.and_then(|j| tokens.get(j)).is_some_and(|t| t.trim_ascii() == b".");
    let line_start = tokens[..i].iter().rposition(|t| t.as_slice() == b"\n").map_or(0, |p| p + 1);
    let in_while = tokens[line_start..i].iter().any(|t| t.trim_ascii() == b"while");
    let loop_bound = near(i.checked_sub(1)) || near(Some(i + 1)) || in_while;
    let pool = if loop_bound { SMALL_NUMBERS } else { EXTREME_NUMBERS };
    let trailing = &tokens[i][tokens[i].trim_ascii_end().len()..];
    let mut t = tokens.to_vec();
    let mut new = rng.pick(pool).as_bytes().to_vec();
    new.extend_from_slice(trailing);
    t[i] = new;
    Some(t.concat())
}

/// `f(x)` becomes `grad(f)(x)` (or another transform) for a name that is called.
fn wrap_in_transform(rng: &mut Rng, tokens: &[Vec<u8>]) -> Option<Vec<u8>> {
    let called: Vec<usize> = (0..tokens.len().saturating_sub(1))
        .filter(|&i| {
            let t = &tokens[i];
            t.first().is_some_and(|b| b.is_ascii_alphabetic()) && tokens[i + 1].as_slice() == b"("
        })
        .collect();
    if called.is_empty() {
        return None;
    }
    let i = *rng.pick(&called);
    let w = rng.pick(WRAPPERS);
    let closing = ")".repeat(w.matches('(').count() + 1);
    let mut t = tokens.to_vec();
    let mut new = format!("{w}(").into_bytes();
    new.extend_from_slice(&tokens[i]);
    new.extend_from_slice(closing.as_bytes());
    t[i] = new;
    Some(t.concat())
}
