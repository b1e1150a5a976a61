//! Choosing places in the slab and making steps, one program after another.

use super::steps::{Branches, Nested, Src, Step, NONE};
use super::{Iteration, Out, Slot, MAX_STEP};
use crate::kernels;
use ad_ir::prim::{Axes, Prim};
use ad_ir::region::{CondOp, LoopOp};
use ad_ir::{Array, Atom, Program, Shape};
use std::collections::HashMap;

/// Chooses places and makes steps, one program after another in one slab.
#[derive(Default)]
pub(super) struct Builder {
    pub(super) len: usize,
    /// Places free for reuse, by length.
    pub(super) free: HashMap<usize, Vec<usize>>,
    pub(super) init: Vec<(usize, Box<[f64]>)>,
}

impl Builder {
    pub(super) fn alloc(&mut self, len: usize) -> Slot {
        let at = self.free.get_mut(&len).and_then(Vec::pop).unwrap_or_else(|| {
            self.len += len;
            self.len - len
        });
        Slot { at, len }
    }

    fn release(&mut self, s: Slot) {
        if s.len > 0 {
            self.free.entry(s.len).or_default().push(s.at);
        }
    }

    /// Takes a place back from the free ones: it holds a value again.
    fn claim(&mut self, s: Slot) {
        if let Some(free) = self.free.get_mut(&s.len) {
            free.retain(|&at| at != s.at);
        }
    }

    /// Plans a loop whose body reads its index, carried values and constants at `inputs`.
    pub(super) fn iteration(&mut self, op: &LoopOp, inputs: &[Slot]) -> Option<Iteration> {
        let n = inputs.len();
        // The condition reads every input and leaves them all for the body.
        let cond = match &op.cond {
            Some(c) => {
                let (steps, outs) = self.program(c, inputs, &vec![true; n])?;
                Some((steps, *outs.first()?))
            }
            None => None,
        };
        // The body may reuse the places of carried values after their last use (they are
        // written again between iterations), but not those of the index and the constants.
        let pinned: Vec<bool> = (0..n).map(|k| k == 0 || k > op.carries).collect();
        let (body, outs) = self.program(&op.body, inputs, &pinned)?;
        let moves = outs
            .iter()
            .zip(&inputs[1..=op.carries])
            .filter(|(o, to)| !matches!(o, Out::Slot(s) if s == *to))
            .map(|(o, to)| (*o, *to))
            .collect();
        Some(Iteration { index: inputs[0].at, cond, body, moves })
    }

    /// Plans a loop equation `e` inside a planned body; its results are the places of its
    /// carried values.
    fn nested(
        &mut self,
        steps: &mut Vec<Step>,
        e: &ad_ir::program::Eqn,
        op: &LoopOp,
        slot: &[Option<Slot>],
        dies: &[Option<Slot>],
    ) -> Option<Vec<Slot>> {
        let (lo, hi) = (scalar(&e.args[0], slot)?, scalar(&e.args[1], slot)?);
        let mut inputs = vec![self.alloc(1)];
        let mut enter = Vec::new();
        for (k, a) in e.args.iter().enumerate().skip(2) {
            let at = match a {
                Atom::Var(v) => slot[v.index()]?,
                Atom::Lit(x) => self.constant(&[*x]),
            };
            // Constants are read where they are; a carried value that dies here (and is
            // passed once) is carried in its own place, others are copied in.
            let once = e.args.iter().filter(|b| *b == a).count() == 1;
            inputs.push(match dies[k] {
                _ if k >= 2 + op.carries => at,
                Some(s) if once => s,
                _ => {
                    let to = self.alloc(at.len);
                    enter.push((at.at, to));
                    to
                }
            });
        }
        let iteration = self.iteration(op, &inputs)?;
        // The carried values end where the body reads them: those places hold the results,
        // and no later step may take them.
        let results = inputs[1..=op.carries].to_vec();
        for r in &results {
            self.claim(*r);
        }
        self.release(inputs[0]);
        steps.push(Step::Loop(Box::new(Nested {
            lo,
            hi,
            is_while: op.is_while(),
            enter,
            iteration,
            span: e.span,
        })));
        Some(results)
    }

    /// Plans an `if` equation `e` inside a planned body: each branch reads the operands
    /// where they are and leaves its values in the same new places, the results.
    fn branches(
        &mut self,
        steps: &mut Vec<Step>,
        e: &ad_ir::program::Eqn,
        op: &CondOp,
        slot: &[Option<Slot>],
    ) -> Option<Vec<Slot>> {
        let c = scalar(&e.args[0], slot)?;
        let mut inputs = Vec::with_capacity(e.args.len() - 1);
        for a in &e.args[1..] {
            inputs.push(match a {
                Atom::Var(v) => slot[v.index()]?,
                Atom::Lit(x) => self.constant(&[*x]),
            });
        }
        // Both branches read the operands in place and leave them as they were. Places one
        // branch frees may serve the other, since only one runs. Their results are not given
        // back (one may be a constant's place, written once per run).
        let pinned = vec![true; inputs.len()];
        let (then_steps, then_outs) = self.program(&op.then, &inputs, &pinned)?;
        let (else_steps, else_outs) = self.program(&op.els, &inputs, &pinned)?;
        let results: Vec<Slot> = op.out_shapes().iter().map(|s| self.alloc(s.size())).collect();
        let moves = |outs: Vec<Out>| outs.into_iter().zip(results.iter().copied()).collect();
        steps.push(Step::Cond(Box::new(Branches {
            c,
            then: (then_steps, moves(then_outs)),
            els: (else_steps, moves(else_outs)),
        })));
        Some(results)
    }

    /// A place written once per run, never reused.
    fn constant(&mut self, data: &[f64]) -> Slot {
        let slot = Slot { at: self.len, len: data.len() };
        self.len += data.len();
        self.init.push((slot.at, data.into()));
        slot
    }

    /// Plans `p`, whose inputs are at `inputs`; `pinned` inputs keep their places (they are
    /// read again later). `None` when some equation cannot be planned.
    pub(super) fn program(
        &mut self,
        p: &Program,
        inputs: &[Slot],
        pinned: &[bool],
    ) -> Option<(Vec<Step>, Vec<Out>)> {
        let n = p.vars.len();
        let end = p.eqns.len();
        let mut last: Vec<Option<usize>> = vec![None; n];
        for (i, e) in p.eqns.iter().enumerate() {
            for a in &e.args {
                if let Atom::Var(v) = a {
                    last[v.index()] = Some(i);
                }
            }
        }
        for a in &p.outputs {
            if let Atom::Var(v) = a {
                last[v.index()] = Some(end);
            }
        }
        let mut slot: Vec<Option<Slot>> = vec![None; n];
        let mut keep = vec![false; n];
        for ((v, &place), &pin) in p.inputs.iter().zip(inputs).zip(pinned) {
            slot[v.index()] = Some(place);
            keep[v.index()] = pin;
            if last[v.index()].is_none() && !pin {
                self.release(place);
            }
        }
        let mut steps = Vec::new();
        for (i, e) in p.eqns.iter().enumerate() {
            // The operands whose last use is here, which may give their place to the result.
            let dies: Vec<Option<Slot>> = e
                .args
                .iter()
                .map(|a| match a {
                    Atom::Var(v) if last[v.index()] == Some(i) && !keep[v.index()] => slot[v.index()],
                    _ => None,
                })
                .collect();
            let region = match &e.prim {
                Prim::Loop(op) => Some(self.nested(&mut steps, e, op, &slot, &dies)),
                Prim::Cond(op) => Some(self.branches(&mut steps, e, op, &slot)),
                _ => None,
            };
            if let Some(results) = region {
                let results = results?;
                for (v, r) in e.outs().zip(&results) {
                    slot[v.index()] = Some(*r);
                }
                self.settle(e, &dies, &results, &last, &keep);
                continue;
            }
            let shape = p.var_shape(e.out);
            let size = shape.size();
            let dying = |a: &Atom| e.args.iter().position(|b| b == a).and_then(|k| dies[k]);
            let place = |b: &mut Builder, a: &Atom| -> Option<Slot> {
                match a {
                    Atom::Var(v) => slot[v.index()],
                    Atom::Lit(x) => Some(b.constant(&[*x])),
                }
            };
            let out = match &e.prim {
                Prim::Unary(_) | Prim::Binary(_) | Prim::Where => {
                    if size > MAX_STEP {
                        return None;
                    }
                    let mut srcs = Vec::with_capacity(e.args.len());
                    for a in &e.args {
                        srcs.push(match a {
                            Atom::Lit(x) => Src::Lit(*x),
                            Atom::Var(v) => {
                                let at = slot[v.index()]?;
                                let from = p.var_shape(*v);
                                if from == shape {
                                    Src::Run(at.at)
                                } else if from.size() == 1 {
                                    Src::One(at.at)
                                } else {
                                    Src::Map(broadcast_map(from, at.at, shape))
                                }
                            }
                        });
                    }
                    // An operand of the result's shape that dies here is overwritten: each
                    // element is read before the same element is written.
                    let out = e
                        .args
                        .iter()
                        .filter(|a| p.shape(**a) == shape)
                        .find_map(&dying)
                        .unwrap_or_else(|| self.alloc(size));
                    let mut srcs = srcs.into_iter();
                    let mut next = || srcs.next();
                    steps.push(match &e.prim {
                        Prim::Unary(u) => Step::Unary(*u, next()?, out),
                        Prim::Binary(b) => Step::Binary(*b, next()?, next()?, out),
                        _ => Step::Where(next()?, next()?, next()?, out),
                    });
                    out
                }
                // The same elements: the operand's place when it dies here, else a copy.
                Prim::Reshape(_) | Prim::StopGradient | Prim::SumTo(_) if !matches!(&e.prim, Prim::SumTo(s) if *s != p.shape(e.args[0])) => {
                    match dying(&e.args[0]) {
                        Some(s) => s,
                        None => {
                            let from = place(self, &e.args[0])?;
                            let out = self.alloc(size);
                            steps.push(Step::Copy(from.at, out));
                            out
                        }
                    }
                }
                Prim::Index(_)
                | Prim::Pad(_)
                | Prim::BroadcastTo(_)
                | Prim::Transpose
                | Prim::Permute(_)
                | Prim::Stack
                | Prim::Concat(_) => {
                    if size > MAX_STEP {
                        return None;
                    }
                    // Each operand holds its own positions in the slab (plus one, so that
                    // padding's zeros mean "no element"); the kernel moves them where it
                    // would move the values.
                    let mut marked = Vec::with_capacity(e.args.len());
                    for a in &e.args {
                        let at = place(self, a)?;
                        let data = (0..at.len).map(|k| (at.at + k + 1) as f64).collect();
                        marked.push(Array::new(p.shape(*a), data));
                    }
                    let moved = kernels::apply(&e.prim, marked, shape);
                    let map =
                        moved.data().iter().map(|&m| if m == 0.0 { NONE } else { m as usize - 1 }).collect();
                    let out = self.alloc(size);
                    steps.push(Step::Gather(map, out));
                    out
                }
                Prim::Sum(axes) | Prim::Amax(axes) => {
                    let max = matches!(e.prim, Prim::Amax(_));
                    let from = place(self, &e.args[0])?;
                    self.reduction(&mut steps, from, p.shape(e.args[0]), *axes, max, shape)?
                }
                Prim::SumTo(target) => {
                    let from = place(self, &e.args[0])?;
                    let x = p.shape(e.args[0]);
                    let lead = x.rank() - target.rank();
                    let axes: Vec<usize> = (0..x.rank())
                        .filter(|&i| i < lead || (target.dim(i - lead) == 1 && x.dim(i) != 1))
                        .collect();
                    self.reduction(&mut steps, from, x, Axes::of(&axes), false, shape)?
                }
                Prim::Full(..) | Prim::Const(_) | Prim::Eye(_) | Prim::Arange(_) | Prim::Linspace(..) => {
                    let value = kernels::apply(&e.prim, Vec::new(), shape);
                    self.constant(value.data())
                }
                Prim::DynIndex(dyn_sel) | Prim::DynUpdate(dyn_sel) => {
                    let update = matches!(e.prim, Prim::DynUpdate(_));
                    let x = place(self, &e.args[0])?;
                    let dims: Box<[usize]> = p.shape(e.args[0]).dims().into();
                    let sel: Box<[Option<usize>]> = dyn_sel.0.as_slice().into();
                    let skip = if update { 2 } else { 1 };
                    let mut at = Vec::with_capacity(dyn_sel.len());
                    for a in &e.args[skip..] {
                        at.push(scalar(a, &slot)?);
                    }
                    if update {
                        let v = match e.args[1] {
                            Atom::Lit(x) => Src::Lit(x),
                            Atom::Var(v) if p.var_shape(v).size() == 1 => Src::One(slot[v.index()]?.at),
                            Atom::Var(v) => Src::Run(slot[v.index()]?.at),
                        };
                        let out = dying(&e.args[0]).unwrap_or_else(|| self.alloc(size));
                        steps.push(Step::DynUpdate { x: x.at, v, dims, sel, at, out, span: e.span });
                        out
                    } else {
                        let out = self.alloc(size);
                        steps.push(Step::DynIndex { x: x.at, dims, sel, at, out, span: e.span });
                        out
                    }
                }
                Prim::MatMul => {
                    let (sa, sb) = (p.shape(e.args[0]), p.shape(e.args[1]));
                    if sa.rank() > 2
                        || sb.rank() > 2
                        || [size, sa.size(), sb.size()].iter().any(|&n| n > MAX_STEP)
                    {
                        return None;
                    }
                    let (m, k, n) = kernels::linalg::dims(sa, sb);
                    let (a, b) = (place(self, &e.args[0])?, place(self, &e.args[1])?);
                    let out = self.alloc(size);
                    steps.push(Step::MatMul { a, b, m, k, n, out });
                    out
                }
                _ => return None,
            };
            let constant = matches!(
                e.prim,
                Prim::Full(..) | Prim::Const(_) | Prim::Eye(_) | Prim::Arange(_) | Prim::Linspace(..)
            );
            keep[e.out.index()] = constant;
            slot[e.out.index()] = Some(out);
            self.settle(e, &dies, &[out], &last, &keep);
        }
        let outs = p
            .outputs
            .iter()
            .map(|a| match a {
                Atom::Lit(x) => Some(Out::Lit(*x)),
                Atom::Var(v) => slot[v.index()].map(Out::Slot),
            })
            .collect::<Option<Vec<_>>>()?;
        Some((steps, outs))
    }

    /// After a step: operands used for the last time give their places back, unless a
    /// result took one, and results nobody reads give theirs back at once.
    fn settle(
        &mut self,
        e: &ad_ir::program::Eqn,
        dies: &[Option<Slot>],
        results: &[Slot],
        last: &[Option<usize>],
        keep: &[bool],
    ) {
        for (k, a) in e.args.iter().enumerate() {
            if let (false, Some(s)) = (e.args[..k].contains(a), dies[k]) {
                if !results.contains(&s) {
                    self.release(s);
                }
            }
        }
        for (v, r) in e.outs().zip(results) {
            if last[v.index()].is_none() && !keep[v.index()] {
                self.release(*r);
            }
        }
    }

    /// A sum or maximum of `x` (of shape `from`, at `at`) over `axes`.
    fn reduction(
        &mut self,
        steps: &mut Vec<Step>,
        at: Slot,
        from: Shape,
        axes: Axes,
        max: bool,
        out: Shape,
    ) -> Option<Slot> {
        if from.size() > MAX_STEP {
            return None;
        }
        let slot = self.alloc(out.size());
        // The interpreter's kernel reduces contiguous runs when the reduced axes are the
        // trailing ones; otherwise it walks the rows of the input, reducing each row first
        // when the last axis is reduced. The plan groups the same way.
        let r = from.rank();
        let trailing = (0..r).rev().take_while(|i| axes.contains(*i)).count();
        let (row, map): (usize, Box<[usize]>) = if trailing == axes.count() {
            let run: usize = from.dims()[r - trailing..].iter().product();
            let rows = from.size().checked_div(run).unwrap_or(0);
            (run, (0..rows).collect())
        } else {
            let kept = axes.keep(from);
            let positions = Array::new(kept, (0..kept.size()).map(|k| k as f64).collect());
            let to_out = kernels::structure::broadcast_to(&positions, from);
            let row = if axes.contains(r - 1) { from.dim(r - 1) } else { 1 };
            (row, to_out.data().iter().step_by(row.max(1)).map(|&m| m as usize).collect())
        };
        steps.push(Step::Reduce { max, x: at, row, map, out: slot });
        Some(slot)
    }
}

/// A scalar operand (a loop bound, a condition, a position) where it is read: a number, or
/// the one element at its place.
fn scalar(a: &Atom, slot: &[Option<Slot>]) -> Option<Src> {
    Some(match a {
        Atom::Lit(x) => Src::Lit(*x),
        Atom::Var(v) => Src::One(slot[v.index()]?.at),
    })
}

/// The offset in the slab of each element of `from` (at `at`) broadcast to `to`.
fn broadcast_map(from: Shape, at: usize, to: Shape) -> Box<[usize]> {
    let positions = Array::new(from, (0..from.size()).map(|k| (at + k) as f64).collect());
    kernels::structure::broadcast_to(&positions, to).data().iter().map(|&m| m as usize).collect()
}
