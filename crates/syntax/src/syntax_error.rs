//! The parser's error type: chumsky's `Rich` errors (what was expected, what was found) and
//! errors of our own with a message, a label and a hint, as typed fields. chumsky's own
//! custom errors carry one string, which would make those three travel as one string.

use crate::lexer::Token;
use crate::span::Span;
use chumsky::error::{Error, LabelError, Rich, RichPattern};
use chumsky::input::Input;
use chumsky::util::MaybeRef;

/// An error of our own: what is wrong, what the label under the code says, and how to fix
/// it (empty when there is nothing to suggest).
#[derive(Clone, Debug, PartialEq)]
pub struct Custom {
    pub span: Span,
    pub message: String,
    pub label: String,
    pub hint: String,
}

#[derive(Clone, Debug)]
pub enum SyntaxError<'t> {
    Rich(Rich<'t, Token, Span>),
    Custom(Box<Custom>),
}

impl SyntaxError<'_> {
    pub fn custom(span: Span, message: &str, label: &str, hint: &str) -> Self {
        SyntaxError::Custom(Box::new(Custom {
            span,
            message: message.to_string(),
            label: label.to_string(),
            hint: hint.to_string(),
        }))
    }
}

// The combinations below behave as `Rich` does with its own custom errors: a custom error
// wins a merge (the first one if both are), ignores further expected tokens, and is
// replaced by a label put on it.

impl<'t, I> Error<'t, I> for SyntaxError<'t>
where
    I: Input<'t, Token = Token, Span = Span>,
{
    fn merge(self, other: Self) -> Self {
        match (self, other) {
            (SyntaxError::Rich(a), SyntaxError::Rich(b)) => {
                SyntaxError::Rich(<Rich<'t, Token, Span> as Error<'t, I>>::merge(a, b))
            }
            (a @ SyntaxError::Custom(_), _) => a,
            (_, b @ SyntaxError::Custom(_)) => b,
        }
    }
}

impl<'t, I, L> LabelError<'t, I, L> for SyntaxError<'t>
where
    I: Input<'t, Token = Token, Span = Span>,
    L: Into<RichPattern<'t, Token>>,
{
    fn expected_found<E: IntoIterator<Item = L>>(
        expected: E,
        found: Option<MaybeRef<'t, Token>>,
        span: Span,
    ) -> Self {
        SyntaxError::Rich(<Rich<'t, Token, Span> as LabelError<'t, I, L>>::expected_found(
            expected, found, span,
        ))
    }

    fn merge_expected_found<E: IntoIterator<Item = L>>(
        self,
        expected: E,
        found: Option<MaybeRef<'t, Token>>,
        span: Span,
    ) -> Self
    where
        Self: Error<'t, I>,
    {
        match self {
            SyntaxError::Rich(r) => {
                SyntaxError::Rich(<Rich<'t, Token, Span> as LabelError<'t, I, L>>::merge_expected_found(
                    r, expected, found, span,
                ))
            }
            custom => custom,
        }
    }

    fn replace_expected_found<E: IntoIterator<Item = L>>(
        self,
        expected: E,
        found: Option<MaybeRef<'t, Token>>,
        span: Span,
    ) -> Self {
        match self {
            SyntaxError::Rich(r) => {
                SyntaxError::Rich(<Rich<'t, Token, Span> as LabelError<'t, I, L>>::replace_expected_found(
                    r, expected, found, span,
                ))
            }
            SyntaxError::Custom(_) => SyntaxError::Rich(
                <Rich<'t, Token, Span> as LabelError<'t, I, L>>::expected_found(expected, found, span),
            ),
        }
    }

    fn label_with(&mut self, label: L) {
        match self {
            SyntaxError::Rich(r) => <Rich<'t, Token, Span> as LabelError<'t, I, L>>::label_with(r, label),
            SyntaxError::Custom(c) => {
                let span = c.span;
                *self = SyntaxError::Rich(<Rich<'t, Token, Span> as LabelError<'t, I, L>>::expected_found(
                    [label],
                    None,
                    span,
                ));
            }
        }
    }

    fn in_context(&mut self, label: L, span: Span) {
        if let SyntaxError::Rich(r) = self {
            <Rich<'t, Token, Span> as LabelError<'t, I, L>>::in_context(r, label, span)
        }
    }
}
