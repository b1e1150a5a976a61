//! Calling a user function from the top level: find or make the specialisation, gather the
//! inputs (argument leaves, then captured top-level names), run, rebuild the result.

use crate::cache::Entry;
use crate::session::Session;
use ad_eval::Compiled;
use ad_ir::lower::spec::{call_known_scalars, flatten, Spec};
use ad_ir::lower::value::LVal;
use ad_ir::lower::{self, lower_function};
use ad_ir::Array;
use ad_syntax::{Diagnostic, Span};
use std::rc::Rc;

pub fn call(
    s: &mut Session,
    f: &LVal,
    args: Vec<LVal>,
    span: Span,
    arg_spans: &[Span],
) -> lower::Result<LVal> {
    let key = (Spec::of(f), args.iter().map(Spec::of).collect::<Vec<_>>());
    let mut leaves: Vec<Array> = Vec::new();
    flatten(f, &mut leaves);
    for a in &args {
        flatten(a, &mut leaves);
    }
    let n_args = leaves.len();
    let mut found = None;
    if let Some(entries) = s.cache.map.get(&key) {
        for e in entries {
            leaves.truncate(n_args);
            if s.deps_hold(&e.lowered)
                && s.capture_leaves(&e.lowered, &mut leaves)
                && e.lowered
                    .static_deps
                    .iter()
                    .all(|(i, x)| leaves.get(*i).and_then(|a| a.as_scalar()) == Some(*x))
            {
                found = Some(e.clone());
                break;
            }
        }
    }
    let entry = match found {
        Some(e) => e,
        None => {
            // The cache never refuses: past this many specialisations for different values,
            // the oldest is forgotten (lowered again if it is called again).
            if let Some(v) = s.cache.map.get_mut(&key) {
                if v.len() >= MAX_VALUE_SPECIALISATIONS {
                    v.remove(0);
                }
            }
            leaves.truncate(n_args);
            let known = call_known_scalars(f, &args);
            let lowered =
                lower_function(s, f, &key.1, &known, span, arg_spans).map_err(|e| at_call(e, span))?;
            s.cache.lowerings += 1;
            if !s.capture_leaves(&lowered, &mut leaves) {
                return Err(Diagnostic::at(
                    span,
                    "internal error: a captured name disappeared while lowering",
                ));
            }
            let compiled = Compiled::new(&lowered.program);
            let e = Rc::new(Entry { lowered, compiled });
            s.cache.map.entry(key).or_default().push(e.clone());
            e
        }
    };
    let outs = entry.compiled.run(leaves).map_err(|e| match e {
        ad_eval::RunError::Interrupted => Diagnostic::at(span, "interrupted"),
        ad_eval::RunError::At(at, message) if at != span => {
            Diagnostic::at(at, message).with_label(span, "in this call")
        }
        ad_eval::RunError::At(at, message) => Diagnostic::at(at, message),
    })?;
    Ok(entry.lowered.out_spec.unflatten(&mut outs.into_iter()))
}

/// A function is lowered again for each new value of a scalar argument that decides
/// something static in it (a shape, an unrolled loop's bound, an `if`); this many are kept.
const MAX_VALUE_SPECIALISATIONS: usize = 64;

/// Errors found while lowering a call point into the function; add the call site.
fn at_call(e: Diagnostic, span: Span) -> Diagnostic {
    let inside = |s: Span| s.file == span.file && s.start >= span.start && s.end <= span.end;
    if e.labels.first().is_some_and(|l| inside(l.span)) {
        e
    } else {
        e.with_label(span, "in this call")
    }
}
