//! Byte offsets (what spans hold) to LSP positions and back.
//!
//! An LSP position is a line and a column counted in UTF-16 code units (the encoding every
//! client supports). Lines end at `\n`, as in the grammar; a `\r` before it is not part of
//! any column a client can point at, so positions inside `\r\n` land before the `\r`.
//! Out-of-range positions (a line past the end, a column past the end of its line) are
//! clamped, never an error.

use lsp_types::{Position, Range};

pub struct LineIndex<'a> {
    text: &'a str,
    /// The byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { text, starts }
    }

    /// The bytes of line `line` without its line break (`\r\n` or `\n`).
    fn line_range(&self, line: usize) -> std::ops::Range<usize> {
        let start = self.starts.get(line).copied().unwrap_or(self.text.len());
        let end = self.starts.get(line + 1).map_or(self.text.len(), |e| e - 1);
        let end = end.max(start);
        let end = if self.text.get(start..end).is_some_and(|l| l.ends_with('\r')) { end - 1 } else { end };
        start..end
    }

    /// The byte offset of a position, clamped to the text.
    pub fn offset(&self, p: Position) -> usize {
        let line = p.line as usize;
        if line >= self.starts.len() {
            return self.text.len();
        }
        let r = self.line_range(line);
        let mut units = 0u32;
        for (i, c) in self.text[r.clone()].char_indices() {
            if units >= p.character {
                return r.start + i;
            }
            units += c.len_utf16() as u32;
        }
        r.end
    }

    /// The position of a byte offset (clamped, and moved back to a character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts[line];
        let character: usize = self.text[start..offset].chars().map(char::len_utf16).sum();
        Position { line: line as u32, character: character as u32 }
    }

    pub fn range(&self, r: std::ops::Range<usize>) -> Range {
        Range { start: self.position(r.start), end: self.position(r.end) }
    }

    /// The position just after the last character.
    pub fn end(&self) -> Position {
        self.position(self.text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn utf16_columns() {
        // `é` is 2 bytes and 1 unit; `𝛼` is 4 bytes and 2 units.
        let text = "let é = 1\n\"𝛼\" + x\r\nlast";
        let ix = LineIndex::new(text);
        assert_eq!(ix.offset(pos(0, 5)), 6);
        assert_eq!(ix.position(6), pos(0, 5));
        let x = text.find('x').unwrap();
        assert_eq!(ix.position(x), pos(1, 7));
        assert_eq!(ix.offset(pos(1, 7)), x);
        // Inside the surrogate pair: the character's start.
        assert_eq!(ix.position(text.find('𝛼').unwrap() + 2), pos(1, 1));
        // Past the end of a line: its end, before `\r\n`.
        assert_eq!(ix.offset(pos(1, 99)), x + 1);
        assert_eq!(ix.offset(pos(0, 99)), text.find('\n').unwrap());
        // Past the last line: the end of the text.
        assert_eq!(ix.offset(pos(99, 0)), text.len());
        assert_eq!(ix.end(), pos(2, 4));
        assert_eq!(ix.position(usize::MAX), pos(2, 4));
        let empty = LineIndex::new("");
        assert_eq!(empty.offset(pos(3, 3)), 0);
        assert_eq!(empty.position(10), pos(0, 0));
    }
}
