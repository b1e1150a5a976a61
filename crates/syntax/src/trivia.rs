//! What the lexer skips, recovered for the formatter and for editors: the comments, and where
//! each token and line break is.
//!
//! The lexer drops comments (they mean nothing), but a formatter must put every one of them
//! back. Between two tokens there is only white space and at most one comment (a comment runs
//! to the end of its line, and the line break is a token), so the comments are found in the
//! gaps between the tokens that logos produces, without a second grammar for them.

use crate::lexer::Token;
use logos::Logos;
use std::ops::Range;

/// The tokens, comments and line breaks of a text, each as a byte range, in order.
#[derive(Debug, Default, Clone)]
pub struct Trivia {
    /// Every token, before the layout rules (newlines included, comments not).
    pub tokens: Vec<Range<usize>>,
    /// Every comment: from its `#` to the end of its line, the line break excluded.
    pub comments: Vec<Range<usize>>,
    /// The byte offset of every `\n` (strings cannot hold one, comments end before one).
    pub newlines: Vec<usize>,
}

impl Trivia {
    /// Scans `text`. Never fails: characters that form no token are tokens here too.
    pub fn scan(text: &str) -> Trivia {
        let mut t = Trivia::default();
        let mut end = 0;
        let gap = |t: &mut Trivia, from: usize, to: usize| {
            if let Some(i) = text.get(from..to).and_then(|g| g.find('#')) {
                let start = from + i;
                let stop = text[start..to].find('\n').map_or(to, |j| start + j);
                t.comments.push(start..stop);
            }
        };
        for (_, range) in Token::lexer(text).spanned() {
            gap(&mut t, end, range.start);
            end = range.end;
            t.tokens.push(range);
        }
        gap(&mut t, end, text.len());
        t.newlines = text.match_indices('\n').map(|(i, _)| i).collect();
        t
    }

    /// The number of line breaks in `from..to`.
    pub fn newlines_in(&self, from: usize, to: usize) -> usize {
        if to <= from {
            return 0;
        }
        self.newlines.partition_point(|&n| n < to) - self.newlines.partition_point(|&n| n < from)
    }

    /// The indices (into [`Trivia::comments`]) of the comments that start in `from..to`.
    pub fn comments_in(&self, from: usize, to: usize) -> Range<usize> {
        let a = self.comments.partition_point(|c| c.start < from);
        let b = self.comments.partition_point(|c| c.start < to).max(a);
        a..b
    }

    /// The first token that starts at or after `pos`.
    pub fn token_at_or_after(&self, pos: usize) -> Option<Range<usize>> {
        let i = self.tokens.partition_point(|t| t.start < pos);
        self.tokens.get(i).cloned()
    }

    /// The last token that ends at or before `pos`.
    pub fn token_before(&self, pos: usize) -> Option<Range<usize>> {
        let i = self.tokens.partition_point(|t| t.end <= pos);
        i.checked_sub(1).and_then(|i| self.tokens.get(i)).cloned()
    }

    /// The index of the token that contains `pos` (or ends there), if any.
    pub fn token_index_at(&self, pos: usize) -> Option<usize> {
        let i = self.tokens.partition_point(|t| t.end < pos);
        self.tokens.get(i).filter(|t| t.start <= pos).map(|_| i)
    }
}

/// The comments of `text`, as written (a carriage return before the line break dropped).
pub fn comment_texts(text: &str) -> Vec<&str> {
    Trivia::scan(text).comments.into_iter().map(|c| text[c].trim_end_matches('\r')).collect()
}
