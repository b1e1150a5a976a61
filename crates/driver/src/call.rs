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
use std::any::Any;
use std::rc::Rc;

pub fn call(
    s: &mut Session,
    f: &LVal,
    args: Vec<LVal>,
    span: Span,
    arg_spans: &[Span],
) -> lower::Result<LVal> {
    let known = call_known_scalars(f, &args);
    let specs: Vec<Spec> = args.iter().map(Spec::of).collect();
    let leaves = arg_leaves(f, &args);
    let (entry, leaves) =
        specialise(s, f, &specs, leaves, &known, span, arg_spans).map_err(|e| at_call(e, span))?;
    run(&entry, leaves, span, Some("in this call"))
}

/// The leaves of a call's function value, then of its arguments.
fn arg_leaves(f: &LVal, args: &[LVal]) -> Vec<Array> {
    let mut leaves = Vec::new();
    flatten(f, &mut leaves);
    for a in args {
        flatten(a, &mut leaves);
    }
    leaves
}

/// Calls the body of a top-level loop (`Host::call_traced`): its arguments' scalar values
/// change from call to call, so lowering treats them as unknown; `None` when the body does
/// not lower to a program (the caller then runs it statement by statement, which reports
/// whatever is wrong where a user expects it).
pub fn call_traced(
    s: &mut Session,
    f: &LVal,
    args: Vec<LVal>,
    assigned: &[ad_ir::lower::value::Name],
    span: Span,
    memo: &mut Option<Box<dyn Any>>,
) -> Option<lower::Result<LVal>> {
    // `--no-compile`: the reference semantics run a loop's statements one by one.
    if !ad_eval::compiling() {
        return None;
    }
    let specs: Vec<Spec> = args.iter().map(Spec::of).collect();
    let mut leaves = arg_leaves(f, &args);
    if let Some(m) = memo.as_ref().and_then(|m| m.downcast_ref::<TracedMemo>()) {
        if m.specs == specs {
            leaves.extend(m.captured.iter().cloned());
            return Some(run(&m.entry, leaves, span, None));
        }
    }
    let mut known = Vec::new();
    ad_ir::lower::spec::known_scalars(f, &mut known);
    known.resize(leaves.len(), None);
    let n_args = leaves.len();
    let spans = vec![span; args.len()];
    let (entry, leaves) = specialise(s, f, &specs, leaves, &known, span, &spans).ok()?;
    let scope = ad_ir::lower::Host::scope(s, span.file);
    if entry.lowered.global_deps.iter().any(|(sc, n, _)| *sc == scope && assigned.contains(n)) {
        return None;
    }
    let captured = leaves[n_args..].to_vec();
    *memo = Some(Box::new(TracedMemo { specs, entry: entry.clone(), captured }));
    Some(run(&entry, leaves, span, None))
}

/// What calls of a part of a loop's body keep between iterations (`Host::call_traced`'s
/// memo, one per run of the loop). While a top-level loop runs, only its body assigns
/// top-level names; those are passed to its programs as arguments, never captured (a
/// program that reads one through a function it calls is refused above). So the
/// specialisation and the captured values found at one call hold for the next calls whose
/// arguments have the same structure: those skip the cache's lookup and its checks.
struct TracedMemo {
    specs: Vec<Spec>,
    entry: Rc<Entry>,
    captured: Vec<Array>,
}

/// The specialisation of `f` for arguments of structure `specs` (found in the cache or
/// lowered and compiled now), with the leaves it runs on: `leaves` (the function's and the
/// arguments', from [`arg_leaves`]), then the captured top-level names'.
fn specialise(
    s: &mut Session,
    f: &LVal,
    specs: &[Spec],
    mut leaves: Vec<Array>,
    known: &[Option<f64>],
    span: Span,
    arg_spans: &[Span],
) -> lower::Result<(Rc<Entry>, Vec<Array>)> {
    let key = (Spec::of(f), specs.to_vec());
    let n_args = leaves.len();
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
                return Ok((e.clone(), leaves));
            }
        }
    }
    // The cache never refuses: past this many specialisations for different values, the
    // oldest is forgotten (lowered again if it is called again).
    if let Some(v) = s.cache.map.get_mut(&key) {
        if v.len() >= MAX_VALUE_SPECIALISATIONS {
            v.remove(0);
        }
    }
    leaves.truncate(n_args);
    let lowered = lower_function(s, f, &key.1, known, span, arg_spans)?;
    s.cache.lowerings += 1;
    if !s.capture_leaves(&lowered, &mut leaves) {
        return Err(Diagnostic::at(span, "internal error: a captured name disappeared while lowering"));
    }
    let compiled = Compiled::new(&lowered.program);
    let e = Rc::new(Entry { lowered, compiled });
    s.cache.map.entry(key).or_default().push(e.clone());
    Ok((e, leaves))
}

/// Runs a specialisation; errors inside it get `label` at the call when they are elsewhere.
fn run(entry: &Entry, leaves: Vec<Array>, span: Span, label: Option<&str>) -> lower::Result<LVal> {
    let outs = entry.compiled.run(leaves).map_err(|e| match e {
        ad_eval::RunError::Interrupted => Diagnostic::at(span, "interrupted"),
        ad_eval::RunError::At(at, message) => match label {
            Some(label) if at != span => Diagnostic::at(at, message).with_label(span, label),
            _ => Diagnostic::at(at, message),
        },
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
