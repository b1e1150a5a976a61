//! Planned loops: a loop whose body works on small arrays, run in one buffer without
//! allocating.
//!
//! In a loop body of small arrays (a simulation step on a state of two numbers, the backward
//! step that reads one row of a tape) the interpreter's cost per equation — a reference
//! counted buffer, a vector of operands, a dispatch on the primitive — is many times the
//! arithmetic. A planned loop gives every value of its body a fixed place in one buffer (the
//! slab), chosen once when the loop is prepared: a value's place is reused after its last
//! use, an elementwise result is written over an operand that dies there, an indexed update
//! writes into the array it updates, and a carried value that comes back in the place it
//! went in costs nothing between iterations. Each equation becomes a step that reads and
//! writes the slab at offsets fixed in advance.
//!
//! Structural primitives (indexing, padding, broadcasting, stacking, concatenation,
//! transposes, reshapes) all become one step, a gather, whose map is computed by running the
//! primitive's own kernel on the positions of its operands in the slab: they mean exactly
//! what the interpreter means by construction. Elementwise steps call the primitives' own
//! scalar semantics (`Unary::eval`, `Binary::eval`). A body with anything else (a matrix
//! product, a nested loop, a large elementwise operation, which the interpreter's kernels
//! vectorise better) is not planned and runs in the interpreter.

use crate::interp::{interrupted, RunError};
use crate::kernels;
use ad_ir::prim::{Axes, Binary, Prim, Unary};
use ad_ir::region::LoopOp;
use ad_ir::scalar;
use ad_ir::{Array, Atom, Program, Shape};
use ad_syntax::Span;
use std::collections::HashMap;

/// The largest result of an elementwise, gather or reduction step in a planned body. Beyond
/// it the interpreter's vectorised kernels are faster than a step's general loop, and the
/// per-equation cost the plan saves no longer matters.
const MAX_STEP: usize = 4096;

/// The largest slab a loop may plan (in elements, 256 MiB).
const MAX_SLAB: usize = 1 << 25;

/// A place in the slab: an offset and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    at: usize,
    len: usize,
}

/// A program output: a value in the slab or a number.
#[derive(Clone, Copy, Debug)]
enum Out {
    Slot(Slot),
    Lit(f64),
}

/// An operand of an elementwise step, as it is read for each element of the result.
#[derive(Debug)]
enum Src {
    /// A run of the result's length at this offset.
    Run(usize),
    /// One element, broadcast.
    One(usize),
    /// A number in the program.
    Lit(f64),
    /// A broadcast of another shape: the offset of each element.
    Map(Box<[usize]>),
}

impl Src {
    #[inline(always)]
    fn get(&self, s: &[f64], k: usize) -> f64 {
        match self {
            Src::Run(at) => s[at + k],
            Src::One(at) => s[*at],
            Src::Lit(x) => *x,
            Src::Map(m) => s[m[k]],
        }
    }
}

#[derive(Debug)]
enum Step {
    Unary(Unary, Src, Slot),
    Binary(Binary, Src, Src, Slot),
    Where(Src, Src, Src, Slot),
    /// Each element of the result from an offset in the slab, or 0 where the map holds
    /// `NONE` (padding).
    Gather(Box<[usize]>, Slot),
    /// A sum or maximum: row `r` of `x` (`row` consecutive elements, or one) folds into
    /// element `map[r]` of the result, in the order and grouping of the interpreter's
    /// kernel, so that both give the same bits.
    Reduce {
        max: bool,
        x: Slot,
        row: usize,
        map: Box<[usize]>,
        out: Slot,
    },
    Copy(usize, Slot),
    /// A product of a vector or matrix by a vector or matrix: `m × k` times `k × n`.
    MatMul {
        a: Slot,
        b: Slot,
        m: usize,
        k: usize,
        n: usize,
        out: Slot,
    },
    /// A loop inside the body: its carried values are copied in (unless they were left in
    /// place), then it iterates in the same slab; its results stay where it carried them.
    Loop(Box<Nested>),
    /// The part of `x` (an array with axes `dims`) that `sel` selects at the positions.
    DynIndex {
        x: usize,
        dims: Box<[usize]>,
        sel: Box<[Option<usize>]>,
        at: Vec<Src>,
        out: Slot,
        span: Span,
    },
    /// `x` (copied to `out` unless it is already there) with `v` written at the part.
    DynUpdate {
        x: usize,
        v: Src,
        dims: Box<[usize]>,
        sel: Box<[Option<usize>]>,
        at: Vec<Src>,
        out: Slot,
        span: Span,
    },
}

#[derive(Debug)]
struct Nested {
    lo: Src,
    hi: Src,
    is_while: bool,
    enter: Vec<(usize, Slot)>,
    iteration: Iteration,
    span: Span,
}

/// A gather map's mark for "no element": padding reads zero.
const NONE: usize = usize::MAX;

/// A loop prepared to run in one slab.
#[derive(Debug)]
pub(crate) struct LoopPlan {
    len: usize,
    /// Constants written once per run: array literals and the like.
    init: Vec<(usize, Box<[f64]>)>,
    /// The body's inputs: the index, the carried values, the constants.
    inputs: Vec<Slot>,
    shapes: Vec<Shape>,
    carries: usize,
    iteration: Iteration,
    spare: std::cell::RefCell<Vec<f64>>,
}

/// What one iteration of a loop does in the slab: set the index, test the condition (of a
/// `while`), run the body, move the carried values back to where the body reads them.
#[derive(Debug)]
struct Iteration {
    index: usize,
    cond: Option<(Vec<Step>, Out)>,
    body: Vec<Step>,
    /// The carried values' moves from where the body leaves them to where it reads them.
    moves: Vec<(Out, Slot)>,
}

impl LoopPlan {
    /// Plans `op`, or says it cannot (see the module's documentation).
    pub(crate) fn new(op: &LoopOp) -> Option<LoopPlan> {
        let body = &op.body;
        let shapes: Vec<Shape> = body.inputs.iter().map(|v| body.var_shape(*v)).collect();
        let mut b = Builder::default();
        let inputs: Vec<Slot> = shapes.iter().map(|s| b.alloc(s.size())).collect();
        let iteration = b.iteration(op, &inputs)?;
        (b.len <= MAX_SLAB).then_some(LoopPlan {
            len: b.len,
            init: b.init,
            inputs,
            shapes,
            carries: op.carries,
            iteration,
            spare: Default::default(),
        })
    }

    /// Runs the loop from `lo` to `hi` (a `while` loop has no `hi`) on its carried values
    /// and constants; returns the carried values.
    pub(crate) fn run(&self, lo: i64, hi: Option<i64>, args: Vec<Array>) -> Result<Vec<Array>, RunError> {
        let mut s = self.spare.take();
        s.clear();
        s.resize(self.len, 0.0);
        for (at, data) in &self.init {
            s[*at..*at + data.len()].copy_from_slice(data);
        }
        for (slot, a) in self.inputs[1..].iter().zip(&args) {
            s[slot.at..slot.at + slot.len].copy_from_slice(a.data());
        }
        self.iteration.run(lo, hi, &mut s, &mut Vec::new())?;
        let carried = self.inputs[1..]
            .iter()
            .zip(&self.shapes[1..])
            .take(self.carries)
            .map(|(slot, shape)| Array::new(*shape, s[slot.at..slot.at + slot.len].to_vec()))
            .collect();
        *self.spare.borrow_mut() = s;
        Ok(carried)
    }
}

impl Iteration {
    fn run(&self, lo: i64, hi: Option<i64>, s: &mut [f64], scratch: &mut Vec<f64>) -> Result<(), RunError> {
        for i in lo..hi.unwrap_or(i64::MAX) {
            // A `while` may never end: it checks for Ctrl-C on every iteration.
            if (self.cond.is_some() || (i - lo) % 1024 == 1023) && interrupted() {
                return Err(RunError::Interrupted);
            }
            s[self.index] = i as f64;
            if let Some((steps, go)) = &self.cond {
                exec(steps, s, scratch)?;
                let go = match go {
                    Out::Slot(g) => s[g.at],
                    Out::Lit(x) => *x,
                };
                if go == 0.0 {
                    break;
                }
            }
            exec(&self.body, s, scratch)?;
            // Every value moves only after all are read: one carried value's new place may
            // be another's old one.
            if let [(from, to)] = self.moves.as_slice() {
                put(s, *from, *to);
            } else if !self.moves.is_empty() {
                scratch.clear();
                for (from, to) in &self.moves {
                    match from {
                        Out::Slot(f) => scratch.extend_from_slice(&s[f.at..f.at + f.len]),
                        Out::Lit(x) => scratch.extend(std::iter::repeat_n(*x, to.len)),
                    }
                }
                let mut k = 0;
                for (_, to) in &self.moves {
                    s[to.at..to.at + to.len].copy_from_slice(&scratch[k..k + to.len]);
                    k += to.len;
                }
            }
        }
        Ok(())
    }
}

/// Writes a carried value where the body reads it.
fn put(s: &mut [f64], from: Out, to: Slot) {
    match from {
        Out::Slot(f) => s.copy_within(f.at..f.at + f.len, to.at),
        Out::Lit(x) => s[to.at..to.at + to.len].fill(x),
    }
}

/// Runs steps on the slab.
fn exec(steps: &[Step], s: &mut [f64], scratch: &mut Vec<f64>) -> Result<(), RunError> {
    for step in steps {
        match step {
            Step::Unary(op, x, o) => {
                for k in 0..o.len {
                    s[o.at + k] = op.eval(x.get(s, k));
                }
            }
            Step::Binary(op, x, y, o) => {
                for k in 0..o.len {
                    s[o.at + k] = op.eval(x.get(s, k), y.get(s, k));
                }
            }
            Step::Where(c, a, b, o) => {
                for k in 0..o.len {
                    s[o.at + k] = if c.get(s, k) != 0.0 { a.get(s, k) } else { b.get(s, k) };
                }
            }
            Step::Gather(map, o) => {
                for (k, &m) in map.iter().enumerate() {
                    s[o.at + k] = if m == NONE { 0.0 } else { s[m] };
                }
            }
            Step::Reduce { max, x, row, map, out } => {
                let init = if *max { f64::NEG_INFINITY } else { 0.0 };
                s[out.at..out.at + out.len].fill(init);
                for (r, &m) in map.iter().enumerate() {
                    let o = out.at + m;
                    let v = if *row == 1 {
                        s[x.at + r]
                    } else {
                        let seg = &s[x.at + r * row..x.at + (r + 1) * row];
                        if *max {
                            kernels::reduce::max_slice(seg)
                        } else {
                            kernels::reduce::sum_slice(seg)
                        }
                    };
                    s[o] = if *max { scalar::max(s[o], v) } else { s[o] + v };
                }
            }
            Step::Copy(from, to) => s.copy_within(*from..*from + to.len, to.at),
            Step::MatMul { a, b, m, k, n, out } => {
                // The operands are copied out so that the product can write the slab.
                scratch.clear();
                scratch.extend_from_slice(&s[a.at..a.at + a.len]);
                scratch.extend_from_slice(&s[b.at..b.at + b.len]);
                let (x, y) = scratch.split_at(a.len);
                kernels::linalg::matmul_2d_into(x, y, &mut s[out.at..out.at + out.len], *m, *k, *n);
            }
            Step::Loop(l) => {
                let bound = |src: &Src, which| crate::interp::bound_value(src.get(s, 0), which, l.span);
                let lo = bound(&l.lo, "lower")?;
                let hi = match l.hi.get(s, 0) {
                    x if l.is_while && x == f64::INFINITY => None,
                    _ => Some(bound(&l.hi, "upper")?),
                };
                for (from, to) in &l.enter {
                    s.copy_within(*from..*from + to.len, to.at);
                }
                l.iteration.run(lo, hi, s, scratch)?;
            }
            Step::DynIndex { x, dims, sel, at, out, span } => {
                let start = position(dims, sel, at, s, *span)?;
                let mut to = out.at;
                kernels::dynamic::runs(dims, sel, &start, |o, n| {
                    s.copy_within(x + o..x + o + n, to);
                    to += n;
                });
            }
            Step::DynUpdate { x, v, dims, sel, at, out, span } => {
                let start = position(dims, sel, at, s, *span)?;
                if *x != out.at {
                    s.copy_within(*x..*x + out.len, out.at);
                }
                let mut k = 0;
                kernels::dynamic::runs(dims, sel, &start, |o, n| {
                    for j in 0..n {
                        s[out.at + o + j] = v.get(s, k + j);
                    }
                    k += n;
                });
            }
        }
    }
    Ok(())
}

/// Where the part at computed positions starts, checked as the interpreter checks it.
fn position(
    dims: &[usize],
    sel: &[Option<usize>],
    at: &[Src],
    s: &[f64],
    span: Span,
) -> Result<[usize; ad_ir::shape::MAX_RANK], RunError> {
    kernels::dynamic::starts(dims, sel, at.iter().map(|p| p.get(s, 0))).map_err(|m| RunError::At(span, m))
}

/// Chooses places and makes steps, one program after another in one slab.
#[derive(Default)]
struct Builder {
    len: usize,
    /// Places free for reuse, by length.
    free: HashMap<usize, Vec<usize>>,
    init: Vec<(usize, Box<[f64]>)>,
}

impl Builder {
    fn alloc(&mut self, len: usize) -> Slot {
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
    fn iteration(&mut self, op: &LoopOp, inputs: &[Slot]) -> Option<Iteration> {
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
        let src = |a: &Atom| match a {
            Atom::Lit(x) => Some(Src::Lit(*x)),
            Atom::Var(v) => Some(Src::One(slot[v.index()]?.at)),
        };
        let (lo, hi) = (src(&e.args[0])?, src(&e.args[1])?);
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

    /// A place written once per run, never reused.
    fn constant(&mut self, data: &[f64]) -> Slot {
        let slot = Slot { at: self.len, len: data.len() };
        self.len += data.len();
        self.init.push((slot.at, data.into()));
        slot
    }

    /// Plans `p`, whose inputs are at `inputs`; `pinned` inputs keep their places (they are
    /// read again later). `None` when some equation cannot be planned.
    fn program(&mut self, p: &Program, inputs: &[Slot], pinned: &[bool]) -> Option<(Vec<Step>, Vec<Out>)> {
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
            if let Prim::Loop(op) = &e.prim {
                let results = self.nested(&mut steps, e, op, &slot, &dies)?;
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
                Prim::Reshape(_) | Prim::StopGradient => match dying(&e.args[0]) {
                    Some(s) => s,
                    None => {
                        let from = place(self, &e.args[0])?;
                        let out = self.alloc(size);
                        steps.push(Step::Copy(from.at, out));
                        out
                    }
                },
                Prim::SumTo(s) if *s == p.shape(e.args[0]) => match dying(&e.args[0]) {
                    Some(s) => s,
                    None => {
                        let from = place(self, &e.args[0])?;
                        let out = self.alloc(size);
                        steps.push(Step::Copy(from.at, out));
                        out
                    }
                },
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
                        at.push(match a {
                            Atom::Lit(x) => Src::Lit(*x),
                            Atom::Var(v) => Src::One(slot[v.index()]?.at),
                        });
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

/// The offset in the slab of each element of `from` (at `at`) broadcast to `to`.
fn broadcast_map(from: Shape, at: usize, to: Shape) -> Box<[usize]> {
    let positions = Array::new(from, (0..from.size()).map(|k| (at + k) as f64).collect());
    kernels::structure::broadcast_to(&positions, to).data().iter().map(|&m| m as usize).collect()
}

/// A reversal's programs (the body, a `while` loop's condition and the backward step)
/// planned in one slab: they share the places of the index, the carried values and the
/// constants, so that the constants are written once per run and each step writes only
/// the state it starts from. `reverse.rs` keeps the tape and the checkpoints as arrays and
/// calls these in place of the interpreter.
#[derive(Debug)]
pub(crate) struct ReversalPlan {
    len: usize,
    init: Vec<(usize, Box<[f64]>)>,
    index: usize,
    carries: Vec<Slot>,
    consts: Vec<Slot>,
    cts: Vec<Slot>,
    carry_shapes: Vec<Shape>,
    body: (Vec<Step>, Vec<Out>),
    cond: Option<(Vec<Step>, Out)>,
    back: (Vec<Step>, Vec<Out>),
    back_shapes: Vec<Shape>,
    slab: std::cell::RefCell<(Vec<f64>, Vec<f64>)>,
}

impl ReversalPlan {
    pub(crate) fn new(op: &ad_ir::region::ReverseOp) -> Option<ReversalPlan> {
        let (body, back) = (&op.primal.body, &op.back);
        let shapes: Vec<Shape> = back.inputs.iter().map(|v| back.var_shape(*v)).collect();
        let mut b = Builder::default();
        let inputs: Vec<Slot> = shapes.iter().map(|s| b.alloc(s.size())).collect();
        let n = body.inputs.len();
        let carries = op.primal.carries;
        let pinned = vec![true; inputs.len()];
        let cond = match &op.primal.cond {
            Some(c) => {
                let (steps, outs) = b.program(c, &inputs[..n], &pinned[..n])?;
                Some((steps, *outs.first()?))
            }
            None => None,
        };
        let body_plan = b.program(body, &inputs[..n], &pinned[..n])?;
        let back_plan = b.program(back, &inputs, &pinned)?;
        (b.len <= MAX_SLAB).then(|| ReversalPlan {
            len: b.len,
            init: b.init,
            index: inputs[0].at,
            carries: inputs[1..=carries].to_vec(),
            consts: inputs[1 + carries..n].to_vec(),
            cts: inputs[n..].to_vec(),
            carry_shapes: shapes[1..=carries].to_vec(),
            body: body_plan,
            cond,
            back: back_plan,
            back_shapes: op.out_shapes(),
            slab: Default::default(),
        })
    }

    /// Prepares the slab for a run with these constants.
    pub(crate) fn start(&self, consts: &[Array]) {
        let (s, _) = &mut *self.slab.borrow_mut();
        s.clear();
        s.resize(self.len, 0.0);
        for (at, data) in &self.init {
            s[*at..*at + data.len()].copy_from_slice(data);
        }
        write(s, &self.consts, consts);
    }

    /// The carried values after iteration `i`, from those before it.
    pub(crate) fn step(&self, i: i64, state: &[Array]) -> Result<Vec<Array>, RunError> {
        let (s, scratch) = &mut *self.slab.borrow_mut();
        s[self.index] = i as f64;
        write(s, &self.carries, state);
        exec(&self.body.0, s, scratch)?;
        Ok(read(s, &self.body.1, &self.carry_shapes))
    }

    /// Whether a `while` loop's condition holds before iteration `i`.
    pub(crate) fn goes(&self, i: i64, state: &[Array]) -> Result<bool, RunError> {
        let Some((steps, go)) = &self.cond else { return Ok(true) };
        let (s, scratch) = &mut *self.slab.borrow_mut();
        s[self.index] = i as f64;
        write(s, &self.carries, state);
        exec(steps, s, scratch)?;
        Ok(match go {
            Out::Slot(g) => s[g.at],
            Out::Lit(x) => *x,
        } != 0.0)
    }

    /// The backward step of iteration `i`: the cotangents before it and the contributions
    /// to the constants' cotangents.
    pub(crate) fn back(&self, i: i64, state: &[Array], ct: &[Array]) -> Result<Vec<Array>, RunError> {
        let (s, scratch) = &mut *self.slab.borrow_mut();
        s[self.index] = i as f64;
        write(s, &self.carries, state);
        write(s, &self.cts, ct);
        exec(&self.back.0, s, scratch)?;
        Ok(read(s, &self.back.1, &self.back_shapes))
    }
}

fn write(s: &mut [f64], slots: &[Slot], values: &[Array]) {
    for (slot, a) in slots.iter().zip(values) {
        s[slot.at..slot.at + slot.len].copy_from_slice(a.data());
    }
}

fn read(s: &[f64], outs: &[Out], shapes: &[Shape]) -> Vec<Array> {
    outs.iter()
        .zip(shapes)
        .map(|(o, shape)| match o {
            Out::Slot(o) => Array::new(*shape, s[o.at..o.at + o.len].to_vec()),
            Out::Lit(x) => Array::full(*shape, *x),
        })
        .collect()
}
