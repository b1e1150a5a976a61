//! The part of a source file that one report shows.
//!
//! Rendering a report against the whole file costs time in the size of the file (the
//! renderer indexes every line), which made a file with many errors quadratic to report; and
//! a long line was printed in full for every error on it. An excerpt holds only the lines
//! the report's labels touch, with very long lines cut to a window around the labels, and
//! maps file offsets to excerpt offsets.

use crate::source::{floor_char_boundary, SourceFile};
use std::ops::Range;

/// Lines longer than this many bytes are cut around the labels.
const LONG_LINE: usize = 240;
/// Bytes of context kept on each side of the labels in a cut line.
const CONTEXT: usize = 80;
/// The most of one line a cut keeps, however far apart the labels on it are.
const MAX_WINDOW: usize = 400;

pub(crate) struct Excerpt {
    /// The excerpt, preceded by one empty line per line of the file before it, so that the
    /// renderer numbers lines as the file does.
    pub text: String,
    /// Pieces of the file copied into `text`: (file range, offset in `text`), in order.
    pieces: Vec<(Range<usize>, usize)>,
}

impl Excerpt {
    /// The excerpt of `file` covering the byte ranges `spans` (which must be non-empty).
    pub fn new(file: &SourceFile, spans: &[Range<usize>]) -> Excerpt {
        let first = spans.iter().map(|s| file.line_of(s.start)).min().unwrap_or(0);
        let last = spans.iter().map(|s| file.line_of(s.end.max(s.start + 1) - 1)).max().unwrap_or(first);
        let text_all = &*file.text;
        let mut text = "\n".repeat(first);
        let mut pieces = Vec::new();
        for line in first..=last.max(first) {
            let r = file.line_range(line);
            let window = if r.len() > LONG_LINE { cut(text_all, &r, spans) } else { r.clone() };
            if window.start > r.start {
                text.push('…');
            }
            // A kept line end includes its line break, which labels may point at (an
            // unexpected end of line).
            let mapped_end =
                if window.end == r.end && r.end < text_all.len() { r.end + 1 } else { window.end };
            pieces.push((window.start..mapped_end, text.len()));
            push_sanitised(&mut text, &text_all[window.clone()]);
            if window.end < r.end {
                text.push('…');
            }
            text.push('\n');
        }
        Excerpt { text, pieces }
    }

    /// Where a byte offset of the file is in the excerpt; offsets in parts that were cut
    /// move to the nearest kept byte.
    pub fn map(&self, pos: usize) -> usize {
        let i = self.pieces.partition_point(|(r, _)| r.start <= pos);
        match i.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            Some((r, at)) => at + pos.min(r.end) - r.start,
            None => self.pieces.first().map(|(_, at)| *at).unwrap_or(0),
        }
    }
}

/// The window of a long line to keep: the labels' ends on it with some context.
fn cut(text: &str, line: &Range<usize>, spans: &[Range<usize>]) -> Range<usize> {
    let points: Vec<usize> =
        spans.iter().flat_map(|s| [s.start, s.end]).filter(|p| line.start <= *p && *p <= line.end).collect();
    let lo = points.iter().min().copied().unwrap_or(line.start);
    let hi = points.iter().max().copied().unwrap_or(line.start);
    let start = lo.saturating_sub(CONTEXT).max(line.start);
    let end = (hi + CONTEXT).min(line.end).min(start + MAX_WINDOW).max(start);
    let start = floor_char_boundary(text, start);
    let mut end = floor_char_boundary(text, end);
    if end < line.end && end == start {
        end = floor_char_boundary(text, (start + 4).min(line.end));
    }
    start..end
}

/// Appends a piece of a line, with the characters that the renderer would take as line
/// breaks but the language takes as spaces (carriage return, vertical tab, form feed, the
/// Unicode line and paragraph separators) replaced by as many spaces as they have bytes, so
/// that byte offsets and line numbers stay those of the file.
fn push_sanitised(out: &mut String, piece: &str) {
    for c in piece.chars() {
        match c {
            '\r' | '\x0B' | '\x0C' | '\u{0085}' | '\u{2028}' | '\u{2029}' => {
                out.extend(std::iter::repeat_n(' ', c.len_utf8()))
            }
            c => out.push(c),
        }
    }
}
