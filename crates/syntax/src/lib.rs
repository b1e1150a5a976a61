//! Source text to AST: tokens (logos), parser (chumsky), spans, and the one diagnostic type
//! every phase reports through (rendered by ariadne).
//!
//! This crate knows nothing of arrays, shapes or evaluation.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod ast;
pub mod diagnostic;
mod excerpt;
pub mod format;
pub mod lexer;
pub mod parser;
pub mod source;
pub mod span;
mod syntax_error;
pub mod trivia;

pub use diagnostic::{render, Diagnostic, Label};
pub use source::{SourceFile, SourceMap};
pub use span::{FileId, Span, Spanned};
