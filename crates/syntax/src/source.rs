//! The set of source texts a session has seen, so that any span can be rendered later.

use crate::span::FileId;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// What diagnostics call the file: a path, `<prelude>`, `<repl:3>`.
    pub name: String,
    pub text: Rc<str>,
    /// The byte offset where each line starts. Lines end at `\n` only, as in the grammar
    /// (a carriage return or form feed is white space, not a line break).
    line_starts: Rc<[usize]>,
}

impl SourceFile {
    /// The 0-based line holding a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }

    /// The byte range of a 0-based line, without its `\n`.
    pub fn line_range(&self, line: usize) -> std::ops::Range<usize> {
        let start = self.line_starts.get(line).copied().unwrap_or(self.text.len());
        let end = self.line_starts.get(line + 1).map(|e| e - 1).unwrap_or(self.text.len());
        start..end.max(start)
    }
}

#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Rc<str>>) -> FileId {
        let text: Rc<str> = text.into();
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        self.files.push(SourceFile { name: name.into(), text, line_starts });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn name(&self, id: FileId) -> &str {
        self.get(id).map(|f| f.name.as_str()).unwrap_or("<generated>")
    }

    pub fn text(&self, id: FileId) -> &str {
        self.get(id).map(|f| &*f.text).unwrap_or("")
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: FileId, offset: usize) -> (usize, usize) {
        let Some(file) = self.get(id) else { return (1, 1) };
        let text = &*file.text;
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = file.line_of(offset);
        let start = file.line_range(line).start.min(offset);
        (line + 1, text[start..offset].chars().count() + 1)
    }
}

pub(crate) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
