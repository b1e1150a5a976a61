//! Calling derived functions (`grad(f)(x)`, `jvp(f, x, dx)`, ...) while tracing.
//!
//! The function being differentiated is lowered into a program of its own, with everything
//! it closes over as inputs (closure conversion); the host differentiates that program; the
//! derived program is inlined here with the caller's values as inputs. Because each
//! differentiation works on its own closed program, a derivative inside a function being
//! differentiated cannot confuse the two perturbations: `grad(x => x * grad(y => x + y)(1))(1)`
//! is 1.

use super::spec::{call_known_scalars, for_each_leaf, Spec};
use super::value::{Arr, Func, LVal};
use super::{lower_function, Lowerer, Result};
use crate::program::{Atom, Program};
use crate::transform::{jacobian_shape, Mode, Request};
use ad_syntax::{Diagnostic, Span};
use std::rc::Rc;

impl Lowerer<'_> {
    /// Calls a derived function value in trace mode.
    /// `transform` is a `Func::Transform`.
    pub(crate) fn call_transform(
        &mut self,
        transform: &Func,
        args: Vec<LVal>,
        span: Span,
        arg_spans: &[Span],
    ) -> Result<LVal> {
        let Func::Transform { mode, f, argnums, tuple } = transform else {
            return Err(Diagnostic::at(span, "internal error: not a derived function"));
        };
        let (mode, tuple) = (*mode, *tuple);
        let at = |i: usize| arg_spans.get(i).copied().unwrap_or(span);
        match mode {
            Mode::Vmap(_) => Err(Diagnostic::at(span, "internal error: `vmap` is not a derivative")),
            Mode::Jvp | Mode::Jvp2 | Mode::Vjp | Mode::Hvp => {
                // The primals, then the tangents, cotangent or direction.
                let n = argnums.len();
                let (primals, extra) = args.split_at(n.min(args.len()));
                if mode == Mode::Hvp || mode == Mode::Jvp || mode == Mode::Jvp2 {
                    for (i, (p, t)) in primals.iter().zip(extra).enumerate() {
                        if Spec::of(p) != Spec::of(t) {
                            let what = if mode == Mode::Hvp { "the direction" } else { "the tangent" };
                            return Err(Diagnostic::at(
                                at(n + i),
                                format!(
                                    "{what} has the structure of {}, but the argument is {}",
                                    t.describe(),
                                    p.describe()
                                ),
                            ));
                        }
                    }
                }
                if let (Mode::Vjp, Some(ct)) = (mode, extra.first()) {
                    // A cotangent holds numbers and arrays only; its structure is checked
                    // against the result's below.
                    fn arrays(v: &LVal) -> bool {
                        match v {
                            LVal::Num(_) | LVal::Arr(_) => true,
                            LVal::Tuple(t) => t.iter().all(arrays),
                            _ => false,
                        }
                    }
                    if !arrays(ct) {
                        return Err(Diagnostic::at(
                            at(n),
                            format!("the cotangent must have the structure of the function's result, numbers and arrays; it is {}", ct.describe()),
                        ));
                    }
                }
                let (outs, out_spec) = self.derived(mode, f, primals, argnums, extra, span, arg_spans)?;
                let mut it = outs.into_iter();
                Ok(match mode {
                    Mode::Hvp => self.rebuild(&Spec::of(&primals[0]), &mut it),
                    Mode::Vjp => {
                        let out = self.rebuild(&out_spec, &mut it);
                        let cts: Vec<LVal> =
                            primals.iter().map(|p| self.rebuild(&Spec::of(p), &mut it)).collect();
                        let cts = if tuple {
                            LVal::Tuple(cts.into())
                        } else {
                            cts.into_iter().next().unwrap_or(LVal::unit())
                        };
                        LVal::Tuple(vec![out, cts].into())
                    }
                    _ => {
                        let out = self.rebuild(&out_spec, &mut it);
                        let dot = self.rebuild(&out_spec, &mut it);
                        LVal::Tuple(vec![out, dot].into())
                    }
                })
            }
            Mode::Grad { with_value } => {
                for &i in argnums {
                    if i >= args.len() {
                        return Err(Diagnostic::at(
                            span,
                            format!(
                                "`grad` was asked for argument {i}, but the function is called with {}",
                                crate::words::count(args.len(), "argument")
                            ),
                        ));
                    }
                }
                let (outs, _) = self.derived(mode, f, &args, argnums, &[], span, arg_spans)?;
                let mut it = outs.into_iter();
                let value = if with_value {
                    Some(self.rebuild(&Spec::Array(crate::Shape::scalar()), &mut it))
                } else {
                    None
                };
                let grads: Vec<LVal> =
                    argnums.iter().map(|&i| self.rebuild(&Spec::of(&args[i]), &mut it)).collect();
                let g = if tuple {
                    LVal::Tuple(grads.into())
                } else {
                    grads.into_iter().next().unwrap_or(LVal::unit())
                };
                Ok(match value {
                    Some(v) => LVal::Tuple(vec![v, g].into()),
                    None => g,
                })
            }
            Mode::Hessian | Mode::Jacobian(_) => {
                let Some(x) = args.first() else {
                    return Err(Diagnostic::at(
                        span,
                        format!("`{}` needs at least one argument", mode.suffix()),
                    ));
                };
                let Some(xs) = self.shape_of(x) else {
                    return Err(Diagnostic::at(
                        at(0),
                        format!(
                            "`{}` differentiates with respect to an array, not {}",
                            mode.suffix(),
                            x.describe()
                        ),
                    ));
                };
                let (outs, out_spec) = self.derived(mode, f, &args, argnums, &[], span, arg_spans)?;
                let shape = match (mode, out_spec) {
                    (Mode::Hessian, _) => jacobian_shape(xs, xs),
                    (_, Spec::Array(o)) => jacobian_shape(o, xs),
                    _ => return Err(Diagnostic::at(span, "`jacobian` needs a function returning one array")),
                };
                let mut it = outs.into_iter();
                Ok(self.rebuild(&Spec::Array(shape), &mut it))
            }
        }
    }

    /// Lowers `f` at `args` into its own program, differentiates it, and inlines the result;
    /// returns the derived program's outputs and the structure of `f`'s result.
    #[allow(clippy::too_many_arguments)]
    fn derived(
        &mut self,
        mode: Mode,
        f: &LVal,
        args: &[LVal],
        argnums: &[usize],
        extra: &[LVal],
        span: Span,
        arg_spans: &[Span],
    ) -> Result<(Vec<Atom>, Spec)> {
        let specs: Vec<Spec> = args.iter().map(Spec::of).collect();
        let known = call_known_scalars(f, args);
        let lowered = lower_function(&mut *self.host, f, &specs, &known, span, arg_spans)?;
        if let (Mode::Vjp, Some(ct)) = (mode, extra.first()) {
            if Spec::of(ct) != lowered.out_spec {
                return Err(Diagnostic::at(
                    arg_spans.get(args.len()).copied().unwrap_or(span),
                    format!(
                        "the cotangent must have the structure of the function's result; it is {}",
                        ct.describe()
                    ),
                ));
            }
        }
        let offset = usize::from(Spec::of(f).leaves() > 0);
        let req = Request { mode, wrt: argnums.iter().map(|i| i + offset).collect() };
        let derived = self.host.derive(&lowered.program, &req).map_err(|m| Diagnostic::at(span, m))?;
        // The derived program's inputs: f's captured values, the arguments, the extra inputs
        // the derivation added, then top-level names.
        let mut sources: Vec<LVal> = Vec::new();
        leaves(f, &mut sources);
        for a in args {
            leaves(a, &mut sources);
        }
        let n_params = sources.len();
        for e in extra {
            leaves(e, &mut sources);
        }
        let n_extra = sources.len() - n_params;
        self.add_captures(&derived, &mut sources, span)?;
        // Where the sub-program used a known scalar as a constant, this program depends on
        // whatever that scalar was computed from.
        for (idx, _) in &lowered.static_deps {
            // The sub-program's inputs are its parameters then captures; `sources` has the
            // extra inputs in between.
            let src = if *idx < n_params { sources.get(*idx) } else { sources.get(idx + n_extra) };
            if let Some(LVal::Arr(Arr::Var { known: Some(k), .. })) = src {
                for d in k.deps.iter() {
                    if !self.static_deps.contains(d) {
                        self.static_deps.push(*d);
                    }
                }
            }
        }
        Ok((self.inline_program(&derived, &sources, span)?, lowered.out_spec))
    }

    /// Appends to `sources` the values of the top-level names `program` captures (its
    /// last inputs).
    pub(crate) fn add_captures(
        &mut self,
        program: &Program,
        sources: &mut Vec<LVal>,
        span: Span,
    ) -> Result<()> {
        for c in &program.captures {
            let v = self
                .global(c.scope, &c.name)
                .ok_or_else(|| Diagnostic::at(span, format!("internal error: `{}` disappeared", c.name)))?;
            leaves(&v, sources);
        }
        Ok(())
    }

    /// Inlines a program made by the host (derived or batched) with `sources` as its
    /// inputs, one value per input; returns its outputs.
    pub(crate) fn inline_program(
        &mut self,
        program: &Program,
        sources: &[LVal],
        span: Span,
    ) -> Result<Vec<Atom>> {
        if sources.len() != program.inputs.len() {
            return Err(Diagnostic::at(
                span,
                format!(
                    "internal error: `{}` takes {} inputs but {} were supplied",
                    program.name,
                    program.inputs.len(),
                    sources.len()
                ),
            ));
        }
        let mut atoms = Vec::with_capacity(sources.len());
        for v in sources {
            atoms.push(self.atom(v, span)?);
        }
        Ok(self.b.inline(program, &atoms))
    }

    /// A value of structure `spec` from program atoms.
    pub(crate) fn rebuild(&mut self, spec: &Spec, atoms: &mut impl Iterator<Item = Atom>) -> LVal {
        match spec {
            Spec::Array(s) => match atoms.next() {
                Some(Atom::Var(var)) => LVal::Arr(Arr::Var { var, shape: *s, known: None }),
                Some(Atom::Lit(x)) => LVal::Num(x),
                None => LVal::unit(),
            },
            Spec::Tuple(ts) => {
                LVal::Tuple(ts.iter().map(|t| self.rebuild(t, atoms)).collect::<Vec<_>>().into())
            }
            other => other.unflatten(&mut std::iter::empty()),
        }
    }
}

/// The array leaves of a value, in flattening order (numbers included).
fn leaves(v: &LVal, out: &mut Vec<LVal>) {
    for_each_leaf(v, &mut |x| out.push(x.clone()))
}

/// `grad(f)`, `hessian(f)` and their siblings as function values.
pub fn transform_value(mode: Mode, f: LVal, argnums: Vec<usize>, tuple: bool) -> LVal {
    LVal::Func(Rc::new(Func::Transform { mode, f, argnums, tuple }))
}
