//! `reverse_loop(lo, hi, cond, body, back, inits, consts, cotangents, wrt)`: reverse mode
//! through a loop, as derived programs print it (DESIGN §8; the book's Loops chapter).
//!
//! Reverse mode writes this when it does not record a loop's carried values in the
//! program (the trip count is known only when the loop runs, or the record would pass the
//! memory budget). The loop `for i in lo..hi` (or, with a condition `cond` and the bounds
//! `0, inf`, `while cond(i, ..)`) runs `body(i, carried.., consts..)` from `inits`; then
//! `back(i, carried.., consts.., cotangents..)` runs from the last iteration to the first,
//! returning the new cotangents followed by contributions to the cotangents of the
//! constants at the positions `wrt` (a tuple of numbers), summed over the iterations. The
//! result is the tuple of the final cotangents and the sums.

use super::spec::{for_each_leaf, Spec};
use super::value::{Arr, LVal};
use super::{lower_function, Lowerer, Result};
use crate::prim::Prim;
use crate::region::{LoopOp, ReverseOp};
use crate::shape::Shape;
use crate::Program;
use ad_syntax::{Diagnostic, Span};
use std::rc::Rc;

impl Lowerer<'_> {
    pub(crate) fn reverse_loop(&mut self, args: &[LVal], spans: &[Span], span: Span) -> Result<LVal> {
        super::builtins::arity("reverse_loop", args, &[9], span)?;
        let at = |i: usize| spans.get(i).copied().unwrap_or(span);
        let mut bounds = Vec::new();
        for (k, bound) in args[..2].iter().enumerate() {
            match self.shape_of(bound) {
                Some(s) if s.is_scalar() => bounds.push(self.atom(bound, at(k))?),
                _ => return Err(Diagnostic::at(at(k), "a loop bound must be a number")),
            }
        }
        // The arrays of the three tuples, with their shapes.
        let mut groups: Vec<Vec<(LVal, Shape)>> = Vec::new();
        for k in 5..8 {
            let mut leaves = Vec::new();
            for_each_leaf(&args[k], &mut |x| leaves.push(x.clone()));
            let mut group = Vec::new();
            for x in leaves {
                let s = self.shape_of(&x).ok_or_else(|| {
                    Diagnostic::at(at(k), format!("expected arrays, found {}", x.describe()))
                })?;
                group.push((x, s));
            }
            groups.push(group);
        }
        let shapes = |g: &[(LVal, Shape)]| g.iter().map(|(_, s)| Spec::Array(*s)).collect::<Vec<_>>();
        let (c, k, a) = (groups[0].len(), groups[1].len(), groups[2].len());
        let index = vec![Spec::Array(Shape::scalar())];
        let loop_specs = [index.clone(), shapes(&groups[0]), shapes(&groups[1])].concat();
        let back_specs = [loop_specs.clone(), shapes(&groups[2])].concat();
        let trace = |lw: &mut Lowerer, f: &LVal, specs: &[Spec], k: usize| -> Result<Program> {
            let known = vec![None; specs.len()];
            let l = lower_function(&mut *lw.host, f, specs, &known, at(k), &vec![at(k); specs.len()])?;
            if !l.program.captures.is_empty() {
                return Err(Diagnostic::at(
                    at(k),
                    "the functions of `reverse_loop` must not read outer values",
                )
                .with_hint("pass what they read in the tuple of constants"));
            }
            Ok(l.program)
        };
        let cond = match &args[2] {
            LVal::None => None,
            f => Some(trace(self, f, &loop_specs, 2)?),
        };
        let body = trace(self, &args[3], &loop_specs, 3)?;
        let back = trace(self, &args[4], &back_specs, 4)?;
        let outs = |p: &Program| p.outputs.iter().map(|o| p.shape(*o)).collect::<Vec<_>>();
        let carried: Vec<Shape> = groups[0].iter().map(|(_, s)| *s).collect();
        if outs(&body) != carried {
            return Err(Diagnostic::at(at(3), "the body must return the carried values, of the same shapes"));
        }
        if let Some(c) = &cond {
            if c.outputs.len() != 1 || !c.shape(c.outputs[0]).is_scalar() {
                return Err(Diagnostic::at(at(2), "the condition must return a number"));
            }
        }
        let cts: Vec<Shape> = groups[2].iter().map(|(_, s)| *s).collect();
        let mut wrt = Vec::new();
        let mut positions = Vec::new();
        for_each_leaf(&args[8], &mut |x| positions.push(x.clone()));
        for p in &positions {
            let j = self.static_int(p, "a position among the constants", at(8))?;
            if j < 0 || j as usize >= k {
                return Err(Diagnostic::at(
                    at(8),
                    format!("there are {k} constants; {j} is not a position among them"),
                ));
            }
            wrt.push(j as usize);
        }
        let back_shapes = outs(&back);
        let consts: Vec<Shape> = groups[1].iter().map(|(_, s)| *s).collect();
        let contributions: Vec<Shape> = wrt.iter().map(|j| consts[*j]).collect();
        if back_shapes.len() != a + wrt.len()
            || back_shapes[..a] != cts[..]
            || back_shapes[a..] != contributions[..]
        {
            return Err(Diagnostic::at(
                at(4),
                "the backward step must return the cotangents, of the same shapes, then the contributions to the constants `wrt`",
            ));
        }
        let primal = Rc::new(LoopOp { body, carries: c, cond, replay: None });
        debug_assert_eq!(primal.consts(), k);
        let op = ReverseOp { primal, back, cotangents: a, wrt, tangent_of: None };
        let mut operands = bounds;
        for group in &groups {
            for (x, _) in group {
                operands.push(self.atom(x, span)?);
            }
        }
        let results = self.b.push_multi(Prim::ReverseLoop(Rc::new(op)), operands, &back_shapes, span);
        let items: Vec<LVal> = results
            .into_iter()
            .zip(back_shapes)
            .map(|(var, shape)| LVal::Arr(Arr::Var { var, shape, known: None }))
            .collect();
        Ok(LVal::Tuple(items.into()))
    }
}
