//! Calling function values: builtins, and user functions (inlined while tracing, handed to
//! the host at the top level). Arity and shape annotations are checked here.

use super::value::{Func, LVal};
use super::{builtins, Lowerer, Mode, Result, MAX_INLINE_DEPTH, PRELUDE_FILE};
use crate::words;
use ad_syntax::ast::{Def, Dim};
use ad_syntax::{Diagnostic, Span};
use std::collections::HashMap;
use std::rc::Rc;

impl Lowerer<'_> {
    pub(crate) fn call_value(
        &mut self,
        f: LVal,
        args: Vec<LVal>,
        span: Span,
        arg_spans: &[Span],
    ) -> Result<LVal> {
        let LVal::Func(func) = &f else {
            return Err(Diagnostic::at(span, format!("cannot call {}: it is not a function", f.describe())));
        };
        match &**func {
            Func::Builtin(name) => builtins::call(self, name, args, span, arg_spans),
            Func::Def(_)
            | Func::Overloads(_)
            | Func::Closure { .. }
            | Func::Transform { .. }
            | Func::Vmap { .. }
            | Func::Custom { .. }
                if self.mode == Mode::Eager =>
            {
                self.host.call(&f, args, span, arg_spans)
            }
            Func::Def(d) => self.inline_def(d, args, span, arg_spans),
            Func::Transform { .. } => self.call_transform(func, args, span, arg_spans),
            Func::Vmap { f, axes } => self.call_vmap(f, axes, args, span, arg_spans),
            Func::Custom { kind, f, rules } => self.call_custom(*kind, f, rules, args, span, arg_spans),
            Func::Overloads(ds) => match ds.iter().find(|d| d.params.len() == args.len()) {
                Some(d) => self.inline_def(d, args, span, arg_spans),
                None => {
                    let arities: Vec<String> = ds.iter().map(|d| d.params.len().to_string()).collect();
                    Err(Diagnostic::at(
                        span,
                        words::arity(
                            &format!("`{}`", func.name()),
                            &format!("{} arguments", arities.join(" or ")),
                            args.len(),
                        ),
                    ))
                }
            },
            Func::Closure { lam, env } => {
                if args.len() != lam.params.len() {
                    return Err(Diagnostic::at(
                        span,
                        words::arity(
                            "this function",
                            &words::count(lam.params.len(), "argument"),
                            args.len(),
                        ),
                    )
                    .with_label(lam.span, "the function is defined here"));
                }
                let frame = lam.params.iter().map(|p| p.name.clone()).zip(args).collect();
                let frames = vec![env.clone(), frame];
                let (lam, span_) = (lam.clone(), span);
                self.with_frames(frames, span_, |lw| lw.expr(&lam.body))
            }
        }
    }

    fn inline_def(&mut self, d: &Rc<Def>, args: Vec<LVal>, span: Span, arg_spans: &[Span]) -> Result<LVal> {
        let name = &d.name.name;
        if self.host.lowering().iter().any(|a| Rc::ptr_eq(a, d)) {
            return Err(Diagnostic::at(span, format!("recursive call to `{name}`"))
                .with_label(d.name.span, format!("`{name}` is defined here"))
                .with_hint("recursion is not supported; loop with `for` over constant bounds instead"));
        }
        if args.len() != d.params.len() {
            let params = d.params.first().map(|p| p.name.span).unwrap_or(d.name.span);
            return Err(Diagnostic::at(
                span,
                words::arity(&format!("`{name}`"), &words::count(d.params.len(), "argument"), args.len()),
            )
            .with_label(params, format!("`{name}` is defined here")));
        }
        self.check_annotations(d, &args, span, arg_spans)?;
        let frame = d.params.iter().map(|p| p.name.name.clone()).zip(args).collect();
        self.host.lowering().push(d.clone());
        let body = &d.body;
        let r = self.with_frames(vec![frame], span, |lw| lw.block(body));
        self.host.lowering().pop();
        r.map_err(|e| {
            if d.span.file == PRELUDE_FILE && e.span().is_some_and(|s| s.file == PRELUDE_FILE) {
                // An error inside a library function is best shown at the user's call.
                let mut e = e;
                e.labels.insert(0, ad_syntax::Label { span, message: format!("in this call to `{name}`") });
                e
            } else {
                e
            }
        })
    }

    /// Runs `f` with a fresh set of local scopes, as a function body.
    fn with_frames<T>(
        &mut self,
        frames: Vec<Vec<(super::value::Name, LVal)>>,
        span: Span,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        if self.inline_depth >= MAX_INLINE_DEPTH {
            return Err(Diagnostic::at(span, format!("calls are nested more than {MAX_INLINE_DEPTH} deep"))
                .with_hint("is a function calling itself through a function argument?"));
        }
        let saved = std::mem::replace(&mut self.frames, frames);
        let was_in_function = std::mem::replace(&mut self.in_function, true);
        self.inline_depth += 1;
        let r = f(self);
        self.inline_depth -= 1;
        self.in_function = was_in_function;
        self.frames = saved;
        r
    }

    /// Checks arguments against the definition's shape annotations; dimension names unify
    /// within the signature.
    fn check_annotations(&mut self, d: &Def, args: &[LVal], span: Span, arg_spans: &[Span]) -> Result<()> {
        let mut dims: HashMap<&str, (usize, Span)> = HashMap::new();
        for (i, (p, v)) in d.params.iter().zip(args).enumerate() {
            let Some(annot) = &p.annot else { continue };
            let at = arg_spans.get(i).copied().unwrap_or(span);
            let Some(shape) = self.shape_of(v) else {
                return Err(Diagnostic::at(
                    at,
                    format!(
                        "argument `{}` of `{}` must be an array, found {}",
                        p.name.name,
                        d.name.name,
                        v.describe()
                    ),
                )
                .with_label(annot.span, "declared here"));
            };
            let mismatch = |why: String| {
                Diagnostic::at(
                    at,
                    format!(
                        "argument `{}` of `{}` has shape {shape}, which does not match its annotation",
                        p.name.name, d.name.name
                    ),
                )
                .with_label(annot.span, why)
            };
            if annot.dims.len() != shape.rank() {
                return Err(mismatch(format!("the annotation has rank {}", annot.dims.len())));
            }
            for (k, (dim, &actual)) in annot.dims.iter().zip(shape.dims()).enumerate() {
                match dim {
                    Dim::Known(n, _) if *n as usize != actual => {
                        return Err(mismatch(format!("axis {k} should have length {n}")));
                    }
                    Dim::Known(..) => {}
                    Dim::Named(id) => match dims.get(&*id.name) {
                        Some((bound, where_)) if *bound != actual => {
                            return Err(mismatch(format!("`{}` is {bound} here", id.name)).with_label(
                                *where_,
                                format!("`{}` was set to {bound} by this argument", id.name),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            dims.insert(&id.name, (actual, at));
                        }
                    },
                }
            }
        }
        Ok(())
    }
}
