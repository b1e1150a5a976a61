//! Byte noise: damage a text below the level of tokens, where the lexer, the layout rules
//! and the error reporter (which slices the source by byte offsets) must cope with anything.

use crate::rng::Rng;

/// Byte sequences worth inserting: multi-byte UTF-8 (reports slice text by bytes, and a
/// slice inside a character must not panic), invalid UTF-8, control characters, a
/// right-to-left override, a byte-order mark, and characters the lexer treats specially.
const SNIPPETS: &[&[u8]] = &[
    "é".as_bytes(),
    "∑".as_bytes(),
    "𝔸".as_bytes(),
    "\u{202e}".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{0301}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xe2\x88",
    b"\x00",
    b"\r",
    b"\r\n",
    b"\t",
    b"\x0c",
    b"\x1b[31m",
    b"\"",
    b"\\",
    b"#",
    b"#!",
    b";",
    b"{",
    b"}",
    b"(",
    b")",
    b"[",
    b"]",
    b"..",
    b"=>",
    b"'",
    b":",
    b"\n",
];

/// Applies 1 to 8 random byte-level changes to `text`.
pub fn noise(rng: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    for _ in 0..rng.range(1, 8) {
        let len = out.len();
        let at = if len == 0 { 0 } else { rng.below(len + 1) };
        match rng.below(9) {
            // Flip one bit.
            0 if len > 0 => {
                let i = at.min(len - 1);
                out[i] ^= 1 << rng.below(8);
            }
            // Replace a byte with any byte.
            1 if len > 0 => {
                let i = at.min(len - 1);
                out[i] = rng.below(256) as u8;
            }
            // Insert a snippet.
            2 | 3 => {
                let s = rng.pick(SNIPPETS);
                out.splice(at..at, s.iter().copied());
            }
            // Delete a range.
            4 if len > 0 => {
                let end = (at + rng.range(1, 16)).min(len);
                out.drain(at.min(end)..end);
            }
            // Duplicate a range.
            5 if len > 0 => {
                let end = (at + rng.range(1, 64)).min(len);
                let piece: Vec<u8> = out[at.min(end)..end].to_vec();
                out.splice(end..end, piece);
            }
            // A long run of one byte: opening brackets, operators, newlines, digits.
            6 => {
                let b = *rng.pick(b"([{-!\n9'+\"");
                let n = *rng.pick(&[10usize, 100, 300, 3000]);
                out.splice(at..at, std::iter::repeat_n(b, n));
            }
            // Truncate.
            7 => out.truncate(at),
            // Random bytes.
            _ => {
                let n = rng.range(1, 12);
                let bytes: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
                out.splice(at..at, bytes);
            }
        }
    }
    out
}
