//! The one error type every phase converts into, and the only file that talks to ariadne.
//!
//! Phases (lexing, parsing, lowering, shape checking, running) each build [`Diagnostic`]s;
//! the CLI and the REPL render them with [`render`].

use crate::excerpt::Excerpt;
use crate::source::SourceMap;
use crate::span::Span;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// One line saying what is wrong, e.g. "shape mismatch in `+`: \[3\] and \[4\]".
    pub message: String,
    /// Where: the first label is the primary location (its position heads the report).
    pub labels: Vec<Label>,
    /// How to fix it, if we know: "use `where(c, a, b)` for a data-dependent choice".
    pub hint: Option<String>,
    /// Extra facts, e.g. the call chain that led to an error inside a function.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic { message: message.into(), labels: Vec::new(), hint: None, notes: Vec::new() }
    }

    /// An error with a primary label.
    pub fn at(span: Span, message: impl Into<String>) -> Diagnostic {
        let message = message.into();
        Diagnostic::error(message).with_label(span, "")
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into() });
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// The primary span, if any.
    pub fn span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

/// At most this many reports are rendered; the rest are counted.
pub const MAX_REPORTS: usize = 50;

/// Renders diagnostics as ariadne reports, one after the other (at most [`MAX_REPORTS`],
/// then a line counting the others). Labels in generated code (dummy spans) are dropped; a
/// diagnostic with no real label renders as a one-line error. Each report sees only an
/// excerpt of its files, so rendering costs time in the size of what is shown.
pub fn render(sources: &SourceMap, diagnostics: &[Diagnostic], color: bool) -> String {
    use ariadne::{Config, FnCache, IndexType, Label as ALabel, Report, ReportKind, Source};

    let mut out = Vec::new();
    for d in diagnostics.iter().take(MAX_REPORTS) {
        let labels: Vec<&Label> = d.labels.iter().filter(|l| sources.get(l.span.file).is_some()).collect();
        let Some(primary) = labels.first() else {
            out.extend_from_slice(format!("Error: {}\n", d.message).as_bytes());
            if let Some(h) = &d.hint {
                out.extend_from_slice(format!("  help: {h}\n").as_bytes());
            }
            for n in &d.notes {
                out.extend_from_slice(format!("  note: {n}\n").as_bytes());
            }
            continue;
        };
        let id = |s: Span| sources.name(s.file).to_string();
        let clamp = |s: Span| {
            let len = sources.text(s.file).len();
            let start = (s.start as usize).min(len);
            let end = (s.end as usize).clamp(start, len);
            start..end
        };
        // One excerpt per file the labels point into.
        let mut excerpts: Vec<(crate::span::FileId, Excerpt)> = Vec::new();
        for l in &labels {
            if excerpts.iter().any(|(f, _)| *f == l.span.file) {
                continue;
            }
            let spans: Vec<_> =
                labels.iter().filter(|o| o.span.file == l.span.file).map(|o| clamp(o.span)).collect();
            if let Some(file) = sources.get(l.span.file) {
                excerpts.push((l.span.file, Excerpt::new(file, &spans)));
            }
        }
        let place = |s: Span| {
            let r = clamp(s);
            match excerpts.iter().find(|(f, _)| *f == s.file) {
                Some((_, e)) => e.map(r.start)..e.map(r.end),
                None => r,
            }
        };
        let mut report = Report::build(ReportKind::Error, (id(primary.span), place(primary.span)))
            .with_config(Config::default().with_index_type(IndexType::Byte).with_color(color))
            .with_message(&d.message);
        for (i, l) in labels.iter().enumerate() {
            // A primary label with nothing to say is left out when other labels inside it
            // explain the error (the operands of a mismatched `+`); the report's header
            // still gives its location.
            let inside = |o: &Label| {
                o.span.file == l.span.file && o.span.start >= l.span.start && o.span.end <= l.span.end
            };
            if i == 0 && l.message.is_empty() && labels[1..].iter().any(|o| inside(o)) {
                continue;
            }
            // ariadne draws no underline for a label without text, so every label gets some.
            let text = if l.message.is_empty() { "here" } else { l.message.as_str() };
            let mut label = ALabel::new((id(l.span), place(l.span))).with_order(i as i32).with_message(text);
            if color {
                label = label.with_color(if i == 0 { ariadne::Color::Red } else { ariadne::Color::Blue });
            }
            report = report.with_label(label);
        }
        if let Some(h) = &d.hint {
            report = report.with_help(h);
        }
        for n in &d.notes {
            report = report.with_note(n);
        }
        let files =
            excerpts.into_iter().map(|(f, e)| (sources.name(f).to_string(), Source::from(e.text))).collect();
        let missing = |name: &String| Err(format!("no source `{name}`"));
        let cache = FnCache::new(missing as fn(&String) -> Result<String, String>).with_sources(files);
        // Writing into a Vec cannot fail; if ariadne fails to find a source we still print the message.
        if report.finish().write(cache, &mut out).is_err() {
            out.extend_from_slice(format!("Error: {}\n", d.message).as_bytes());
        }
    }
    if diagnostics.len() > MAX_REPORTS {
        let more = diagnostics.len() - MAX_REPORTS;
        let noun = if more == 1 { "error" } else { "errors" };
        out.extend_from_slice(format!("Error: {more} more {noun} not shown\n").as_bytes());
    }
    String::from_utf8_lossy(&out).into_owned()
}
