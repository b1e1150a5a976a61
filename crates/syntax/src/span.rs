//! Source positions. Every token, AST node, IR equation and diagnostic carries a [`Span`]:
//! a byte range in one file of a [`crate::SourceMap`].

use std::ops::Range;

/// Identifies one source text in a [`crate::SourceMap`] (a script, the prelude, a REPL entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one file. Byte (not character) offsets: logos and chumsky produce bytes,
/// and the renderer is configured for bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, range: Range<usize>) -> Span {
        Span { file, start: range.start as u32, end: range.end as u32 }
    }

    /// A span that covers nothing in particular; used for program text that AD itself writes
    /// (derived programs) when no user span is available.
    pub const DUMMY: Span = Span { file: FileId(u32::MAX), start: 0, end: 0 };

    pub fn is_dummy(&self) -> bool {
        self.file == FileId(u32::MAX)
    }

    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The smallest span covering both; if they lie in different files, `self`.
    pub fn join(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

impl chumsky::span::Span for Span {
    type Context = FileId;
    type Offset = u32;

    fn new(context: FileId, range: Range<u32>) -> Span {
        Span { file: context, start: range.start, end: range.end }
    }

    fn context(&self) -> FileId {
        self.file
    }

    fn start(&self) -> u32 {
        self.start
    }

    fn end(&self) -> u32 {
        self.end
    }
}

/// A value together with where it came from.
pub type Spanned<T> = (T, Span);
