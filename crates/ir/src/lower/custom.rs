//! Calls of functions with their own derivative rules (DESIGN §10): `custom_jvp(f, rule)`
//! or `custom_vjp(f, fwd, bwd)` called on arguments is one equation holding `f` and its
//! rules as closed programs, lowered once each at the arguments' shapes. Running it runs
//! `f`; differentiating it runs the rules (`ad-autodiff`'s `custom.rs`).

use super::spec::{for_each_leaf, Spec};
use super::value::{Arr, CustomKind, LVal};
use super::{Lowerer, Result};
use crate::prim::Prim;
use crate::program::{Atom, Var};
use crate::region::{CustomOp, CustomRule};
use crate::shape::Shape;
use ad_syntax::{Diagnostic, Span};
use std::rc::Rc;

impl Lowerer<'_> {
    /// A call of `custom_jvp(f, rule)` or `custom_vjp(f, fwd, bwd)` (`rules`) on `args`.
    pub(crate) fn call_custom(
        &mut self,
        kind: CustomKind,
        f: &LVal,
        rules: &[LVal],
        args: Vec<LVal>,
        span: Span,
        arg_spans: &[Span],
    ) -> Result<LVal> {
        let kw = kind.keyword();
        let mut operands = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if !arrays_only(a) {
                return Err(Diagnostic::at(
                    arg_spans.get(i).copied().unwrap_or(span),
                    format!(
                        "a `{kw}` function takes numbers and arrays (or tuples of them), not {}",
                        a.describe()
                    ),
                ));
            }
            let mut failed = None;
            for_each_leaf(a, &mut |x| match self.atom(x, span) {
                Ok(at) => operands.push(at),
                Err(e) => failed = Some(e),
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
        let n = operands.len();
        // The function, on placeholders of the arguments' shapes.
        let mark = self.b.eqns.len();
        let mut inputs = Vec::new();
        let placeholders: Vec<LVal> = args.iter().map(|a| self.placeholder(a, &mut inputs, "")).collect();
        let out = self.call_value(f.clone(), placeholders, span, arg_spans)?;
        let out_leaves = self.result_leaves(&out, kw, "function", span)?;
        let eqns = self.b.eqns.split_off(mark);
        let (primal, own_p) = self.close_region(&format!("{kw}_f"), inputs, eqns, &out_leaves, span);
        // The rules, each a closed program with the values it reads from outside (`own`)
        // and how many of its inputs come before the constants.
        let mut closed = Vec::new();
        match kind {
            CustomKind::Jvp => {
                // The rule, on placeholders of the primals and their tangents.
                let mark = self.b.eqns.len();
                let mut inputs = Vec::new();
                let primals: Vec<LVal> = args.iter().map(|a| self.placeholder(a, &mut inputs, "")).collect();
                let tangents: Vec<LVal> =
                    args.iter().map(|a| self.placeholder(a, &mut inputs, "_dot")).collect();
                let pair = vec![LVal::Tuple(primals.into()), LVal::Tuple(tangents.into())];
                let r = self.call_value(rules[0].clone(), pair, span, arg_spans)?;
                let (value, dot) =
                    self.pair_like(&r, &out, &["`out`", "`out_dot`"], "a `custom_jvp` rule", span)?;
                let mut leaves = self.result_leaves(&value, kw, "rule", span)?;
                leaves.extend(self.result_leaves(&dot, kw, "rule", span)?);
                let eqns = self.b.eqns.split_off(mark);
                closed.push((self.close_region("custom_jvp_rule", inputs, eqns, &leaves, span), 2 * n));
            }
            CustomKind::Vjp => {
                // `fwd`, on placeholders of the arguments: `(out, residuals)`.
                let mark = self.b.eqns.len();
                let mut inputs = Vec::new();
                let placeholders: Vec<LVal> =
                    args.iter().map(|a| self.placeholder(a, &mut inputs, "")).collect();
                let r = self.call_value(rules[0].clone(), placeholders, span, arg_spans)?;
                let (value, res) = match &r {
                    LVal::Tuple(t) if t.len() == 2 && Spec::of(&t[0]) == Spec::of(&out) => (t[0].clone(), t[1].clone()),
                    _ => {
                        return Err(Diagnostic::at(
                            span,
                            format!(
                                "a `custom_vjp` forward function returns `(out, residuals)` with `out` of the structure of the function's result ({}); it returns {}",
                                out.describe(),
                                r.describe()
                            ),
                        ))
                    }
                };
                let mut leaves = self.result_leaves(&value, kw, "forward function", span)?;
                let res_leaves = self.result_leaves(&res, kw, "forward function's residuals", span)?;
                let n_res = res_leaves.len();
                leaves.extend(res_leaves);
                let eqns = self.b.eqns.split_off(mark);
                closed.push((self.close_region("custom_vjp_fwd", inputs, eqns, &leaves, span), n));
                // `bwd`, on placeholders of the residuals and the result's cotangent: one
                // cotangent per argument, of its structure.
                let mark = self.b.eqns.len();
                let mut inputs = Vec::new();
                let res_ph = self.placeholder(&res, &mut inputs, "");
                let bar_ph = self.placeholder(&out, &mut inputs, "_bar");
                let r = self.call_value(rules[1].clone(), vec![res_ph, bar_ph], span, arg_spans)?;
                let fits = match &r {
                    LVal::Tuple(t) => {
                        t.len() == args.len() && t.iter().zip(&args).all(|(c, a)| Spec::of(c) == Spec::of(a))
                    }
                    _ => false,
                };
                if !fits {
                    let wanted: Vec<String> = args.iter().map(LVal::describe).collect();
                    return Err(Diagnostic::at(
                        span,
                        format!(
                            "a `custom_vjp` backward function returns a tuple with one cotangent per argument, of the argument's structure ({}); it returns {}",
                            wanted.join(", "),
                            r.describe()
                        ),
                    ));
                }
                let leaves = self.result_leaves(&r, kw, "backward function", span)?;
                let eqns = self.b.eqns.split_off(mark);
                let n_bars = out_leaves.len();
                closed
                    .push((self.close_region("custom_vjp_bwd", inputs, eqns, &leaves, span), n_res + n_bars));
            }
        }
        // Every program reads the values any of them reads from outside.
        let mut consts = own_p.clone();
        for ((_, own), _) in &closed {
            for c in own {
                if !consts.contains(c) {
                    consts.push(*c);
                }
            }
        }
        let primal = self.widen(primal, n, &own_p, &consts);
        let programs: Vec<crate::Program> =
            closed.into_iter().map(|((p, own), k)| self.widen(p, k, &own, &consts)).collect();
        let rule = match <[crate::Program; 1]>::try_from(programs) {
            Ok([rule]) => CustomRule::Jvp(rule),
            Err(programs) => match <[crate::Program; 2]>::try_from(programs) {
                Ok([fwd, bwd]) => CustomRule::Vjp { fwd, bwd, forward: Default::default() },
                Err(_) => return Err(Diagnostic::at(span, "internal error: a custom rule was not lowered")),
            },
        };
        let shapes: Vec<Shape> = primal.outputs.iter().map(|a| primal.shape(*a)).collect();
        operands.extend(consts);
        let op = Rc::new(CustomOp { primal, rule, args: n });
        let outs = self.b.push_multi(Prim::Custom(op), operands, &shapes, span);
        let mut it = outs.into_iter().zip(shapes);
        Ok(rebuild(&out, &mut it))
    }

    /// The two parts of a rule's result `r` that must both have `like`'s structure.
    fn pair_like(
        &self,
        r: &LVal,
        like: &LVal,
        names: &[&str; 2],
        what: &str,
        span: Span,
    ) -> Result<(LVal, LVal)> {
        let pair = match r {
            LVal::Tuple(t) if t.len() == 2 => Some((t[0].clone(), t[1].clone())),
            _ => None,
        };
        let same = |v: &LVal| Spec::of(v) == Spec::of(like);
        match pair {
            Some((v, d)) if same(&v) && same(&d) => Ok((v, d)),
            pair => {
                let found = match &pair {
                    Some((v, _)) if !same(v) => format!("its {} is {}", names[0], v.describe()),
                    Some((_, d)) => format!("its {} is {}", names[1], d.describe()),
                    None => format!("it returns {}", r.describe()),
                };
                Err(Diagnostic::at(
                    span,
                    format!(
                        "{what} returns `({}, {})`, both with the structure of the function's result ({}); {found}",
                        names[0].trim_matches('`'),
                        names[1].trim_matches('`'),
                        like.describe(),
                    ),
                ))
            }
        }
    }

    /// A value of `like`'s structure whose leaves are new variables (appended to `inputs`).
    fn placeholder(&mut self, like: &LVal, inputs: &mut Vec<Var>, suffix: &str) -> LVal {
        match like {
            LVal::Tuple(t) => {
                LVal::Tuple(t.iter().map(|x| self.placeholder(x, inputs, suffix)).collect::<Vec<_>>().into())
            }
            _ => {
                let shape = self.shape_of(like).unwrap_or_default();
                let name = (!suffix.is_empty()).then(|| format!("x{suffix}").into());
                let var = self.b.new_var(shape, name);
                inputs.push(var);
                LVal::Arr(Arr::Var { var, shape, known: None })
            }
        }
    }

    /// The atoms of a result made of numbers and arrays.
    fn result_leaves(&mut self, v: &LVal, kw: &str, what: &str, span: Span) -> Result<Vec<Atom>> {
        if !arrays_only(v) {
            return Err(Diagnostic::at(
                span,
                format!(
                    "a `{kw}` {what} must return numbers and arrays (or tuples of them), not {}",
                    v.describe()
                ),
            ));
        }
        let mut leaves = Vec::new();
        for_each_leaf(v, &mut |x| leaves.push(x.clone()));
        leaves.iter().map(|x| self.atom(x, span)).collect()
    }
}

fn arrays_only(v: &LVal) -> bool {
    match v {
        LVal::Num(_) | LVal::Arr(_) => true,
        LVal::Tuple(t) => t.iter().all(arrays_only),
        _ => false,
    }
}

/// `like`'s structure with its leaves taken from `vars`.
fn rebuild(like: &LVal, vars: &mut impl Iterator<Item = (Var, Shape)>) -> LVal {
    match like {
        LVal::Tuple(t) => LVal::Tuple(t.iter().map(|x| rebuild(x, vars)).collect::<Vec<_>>().into()),
        _ => match vars.next() {
            Some((var, shape)) => LVal::Arr(Arr::Var { var, shape, known: None }),
            None => LVal::unit(),
        },
    }
}
