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
//! scalar semantics (`Unary::eval`, `Binary::eval`); sums group their terms as the
//! interpreter's kernels do, and small matrix products call the same product; so planned
//! and interpreted runs agree bit for bit. Loops (and `if`s) inside a body are planned in
//! the same slab. A body with anything else (a large elementwise operation, which the
//! interpreter's kernels vectorise better, a large product, a reversal) is not planned and
//! runs in the interpreter.
//!
//! `builder.rs` chooses the places and makes the steps; `steps.rs` runs them.

mod builder;
mod steps;

use crate::interp::{interrupted, RunError};
use ad_ir::region::LoopOp;
use ad_ir::{Array, Shape};
use builder::Builder;
use steps::{exec, Step};

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
