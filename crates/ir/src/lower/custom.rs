//! Calls of functions with their own derivative rules (DESIGN §10): `custom_jvp(f, rule)`
//! called on arguments is one equation holding `f` and `rule` as closed programs, lowered
//! once each at the arguments' shapes. Running it runs `f`; differentiating it runs
//! `rule` (`ad-autodiff`'s `custom.rs`).

use super::spec::for_each_leaf;
use super::value::{Arr, LVal};
use super::{Lowerer, Result};
use crate::prim::Prim;
use crate::program::{Atom, Var};
use crate::region::CustomJvpOp;
use crate::shape::Shape;
use ad_syntax::{Diagnostic, Span};
use std::rc::Rc;

impl Lowerer<'_> {
    pub(crate) fn call_custom_jvp(
        &mut self,
        f: &LVal,
        rule: &LVal,
        args: Vec<LVal>,
        span: Span,
        arg_spans: &[Span],
    ) -> Result<LVal> {
        let mut operands = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if !arrays_only(a) {
                return Err(Diagnostic::at(
                    arg_spans.get(i).copied().unwrap_or(span),
                    format!(
                        "a `custom_jvp` function takes numbers and arrays (or tuples of them), not {}",
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
        let out_leaves = self.result_leaves(&out, "function", span)?;
        let eqns = self.b.eqns.split_off(mark);
        let (primal, own_p) = self.close_region("custom_jvp_f", inputs, eqns, &out_leaves, span);
        // The rule, on placeholders of the primals and their tangents.
        let mark = self.b.eqns.len();
        let mut inputs = Vec::new();
        let primals: Vec<LVal> = args.iter().map(|a| self.placeholder(a, &mut inputs, "")).collect();
        let tangents: Vec<LVal> = args.iter().map(|a| self.placeholder(a, &mut inputs, "_dot")).collect();
        let r = self.call_value(
            rule.clone(),
            vec![LVal::Tuple(primals.into()), LVal::Tuple(tangents.into())],
            span,
            arg_spans,
        )?;
        let pair = match &r {
            LVal::Tuple(t) if t.len() == 2 => Some((t[0].clone(), t[1].clone())),
            _ => None,
        };
        let same = |v: &LVal| super::spec::Spec::of(v) == super::spec::Spec::of(&out);
        let Some((value, dot)) = pair.clone().filter(|(v, d)| same(v) && same(d)) else {
            let found = match &pair {
                Some((v, _)) if !same(v) => format!("its `out` is {}", v.describe()),
                Some((_, d)) => format!("its `out_dot` is {}", d.describe()),
                None => format!("it returns {}", r.describe()),
            };
            return Err(Diagnostic::at(
                span,
                format!(
                    "a `custom_jvp` rule returns `(out, out_dot)`, both with the structure of the function's result ({}); {found}",
                    out.describe(),
                ),
            ));
        };
        let mut rule_leaves = self.result_leaves(&value, "rule", span)?;
        rule_leaves.extend(self.result_leaves(&dot, "rule", span)?);
        let eqns = self.b.eqns.split_off(mark);
        let (rule_p, own_r) = self.close_region("custom_jvp_rule", inputs, eqns, &rule_leaves, span);
        // Both programs read the values either reads from outside.
        let mut consts = own_p.clone();
        for c in &own_r {
            if !consts.contains(c) {
                consts.push(*c);
            }
        }
        let primal = self.widen(primal, n, &own_p, &consts);
        let rule_p = self.widen(rule_p, 2 * n, &own_r, &consts);
        let shapes: Vec<Shape> = primal.outputs.iter().map(|a| primal.shape(*a)).collect();
        operands.extend(consts);
        let op = Rc::new(CustomJvpOp { primal, rule: rule_p, args: n });
        let outs = self.b.push_multi(Prim::CustomJvp(op), operands, &shapes, span);
        let mut it = outs.into_iter().zip(shapes);
        Ok(rebuild(&out, &mut it))
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
    fn result_leaves(&mut self, v: &LVal, what: &str, span: Span) -> Result<Vec<Atom>> {
        if !arrays_only(v) {
            return Err(Diagnostic::at(
                span,
                format!(
                    "a `custom_jvp` {what} must return numbers and arrays (or tuples of them), not {}",
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
