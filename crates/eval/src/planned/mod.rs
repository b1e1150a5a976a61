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
mod jit;
mod steps;

use crate::interp::{interrupted, RunError};
use ad_ir::region::LoopOp;
use ad_ir::{Array, Shape};
use builder::Builder;
use steps::{exec, Step};

/// The largest result of an elementwise, gather or reduction step in a planned body. Beyond
/// it the interpreter's vectorised kernels (and its chains) are faster than a step's general
/// loop, and the per-equation cost the plan saves no longer matters. Measured per iteration
/// of `s = s * 0.999 + s * s * 0.001 - 0.0001` in a function: planned 0.73 vs 0.97 µs at
/// 512 elements, 1.48 vs 1.31 at 1,024, 6.7 vs 3.3 at 4,096; a 2-16-1 network's training
/// step on 64 points (values of 1,024 elements), 12.2 µs planned vs 9.5.
const MAX_STEP: usize = 512;

/// The largest slab a loop may plan (in elements, 256 MiB).
const MAX_SLAB: usize = 1 << 25;

/// A plan runs compiled (`jit.rs`) once it is hot: from its first run if that run loops at
/// least this many times (or is a `while` loop), else from its third.
const HOT_TRIPS: i64 = 64;
const HOT_RUNS: u32 = 2;

thread_local! {
    static EAGER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static COMPILED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many plans this thread has compiled to machine code (the tests check that the
/// compiled tier ran).
pub fn compiled_plans() -> u64 {
    COMPILED.with(|c| c.get())
}

/// Whether plans are compiled at their first run on this thread (`set_compile_eagerly`).
fn eager() -> bool {
    EAGER.with(|c| c.get())
}

fn count_compiled() {
    COMPILED.with(|c| c.set(c.get() + 1));
}

/// Whether plans prepared on this thread are compiled at their first run, however cold
/// (the tests run every golden program this way, so that the compiled tier runs all of
/// them).
pub fn set_compile_eagerly(on: bool) {
    EAGER.with(|c| c.set(on));
}

/// A plan's compiled form, made once the plan is hot; none when it cannot be compiled.
#[derive(Debug)]
struct Hot<N> {
    runs: std::cell::Cell<u32>,
    eager: bool,
    native: std::cell::OnceCell<Option<N>>,
}

impl<N> Default for Hot<N> {
    fn default() -> Self {
        Hot { runs: Default::default(), eager: eager(), native: Default::default() }
    }
}

impl<N> Hot<N> {
    /// The compiled form for a run of `trips` iterations (none when unknown), compiled now
    /// with `compile` if the plan has become hot.
    fn native(&self, trips: Option<i64>, compile: impl FnOnce() -> Option<N>) -> Option<&N> {
        let runs = self.runs.get();
        self.runs.set(runs.saturating_add(1));
        if let Some(n) = self.native.get() {
            return n.as_ref();
        }
        if !(self.eager || runs >= HOT_RUNS || trips.is_none_or(|t| t >= HOT_TRIPS)) {
            return None;
        }
        self.native.get_or_init(compile).as_ref()
    }

    /// The compiled form, if it has been made.
    fn ready(&self) -> Option<&N> {
        self.native.get().and_then(Option::as_ref)
    }
}

/// A loop compiled to one function.
#[derive(Debug)]
struct NativeLoop {
    f: jit::LoopFn,
    _code: jit::Code,
}

impl NativeLoop {
    fn new(it: &Iteration) -> Option<NativeLoop> {
        let (code, f) = jit::compile_loop(it)?;
        count_compiled();
        Some(NativeLoop { f, _code: code })
    }
}

/// A whole program (not a loop) planned in one slab and compiled, for a program that runs
/// often: a function called from a top-level loop, a gradient taken at every training step.
/// `HotProgram` makes it once the program is hot.
#[derive(Debug)]
pub(crate) struct ProgramPlan {
    len: usize,
    init: Vec<(usize, Box<[f64]>)>,
    inputs: Vec<Slot>,
    steps: Vec<Step>,
    outs: Vec<Out>,
    out_shapes: Vec<Shape>,
    slab: std::cell::RefCell<(Vec<f64>, Vec<f64>)>,
    native: Option<NativeSteps>,
}

/// Steps compiled to one function.
#[derive(Debug)]
struct NativeSteps {
    f: jit::StepsFn,
    _code: jit::Code,
}

impl NativeSteps {
    fn new(steps: &[Step]) -> Option<NativeSteps> {
        let (code, f) = jit::compile_steps(steps)?;
        count_compiled();
        Some(NativeSteps { f, _code: code })
    }
}

/// The largest value of a program that is planned and compiled whole. Compiled steps run
/// one element at a time, while the interpreter's kernels run four or eight lanes at a time:
/// past a few dozen elements the kernels win back more than the interpreter's cost per
/// equation (measured on the Rosenbrock function of 100 variables: 3.1 µs per gradient
/// compiled whole, 1.6 µs interpreted), so only programs of small values are compiled whole.
const MAX_PROGRAM_VALUE: usize = 32;

/// A program kept until it is hot (by `Hot`'s rule: its third run, or its first eagerly),
/// then planned and compiled whole; it stays with the interpreter if it cannot be planned.
#[derive(Debug)]
pub(crate) struct HotProgram {
    program: std::cell::RefCell<Option<ad_ir::Program>>,
    hot: Hot<ProgramPlan>,
}

impl HotProgram {
    /// Keeps `p` if it is worth planning: small enough to compile, with small values only
    /// (the builder decides the rest).
    pub(crate) fn new(p: &ad_ir::Program) -> Option<HotProgram> {
        let small =
            p.eqns.len() <= jit::MAX_STEPS && p.vars.iter().all(|v| v.shape.size() <= MAX_PROGRAM_VALUE);
        small.then(|| HotProgram { program: std::cell::RefCell::new(Some(p.clone())), hot: Hot::default() })
    }

    /// Runs the program planned, once it is hot; none while it is not (or cannot be), when
    /// the interpreter runs it.
    pub(crate) fn run(&self, inputs: &[Array]) -> Option<Result<Vec<Array>, RunError>> {
        // A program has no trip count: only its runs make it hot.
        let plan = self.hot.native(Some(0), || ProgramPlan::new(&self.program.borrow_mut().take()?))?;
        plan.run(inputs)
    }
}

impl ProgramPlan {
    fn new(p: &ad_ir::Program) -> Option<ProgramPlan> {
        let mut b = Builder::default();
        let inputs: Vec<Slot> = p.inputs.iter().map(|v| b.alloc(p.var_shape(*v).size())).collect();
        // The inputs are written at every run, so their places may be reused after their
        // last use.
        let (steps, outs) = b.program(p, &inputs, &vec![false; inputs.len()])?;
        let out_shapes = p
            .outputs
            .iter()
            .map(|a| match a {
                ad_ir::Atom::Var(v) => p.var_shape(*v),
                ad_ir::Atom::Lit(_) => Shape::scalar(),
            })
            .collect();
        let native = NativeSteps::new(&steps);
        (b.len <= MAX_SLAB).then_some(ProgramPlan {
            len: b.len,
            init: b.init,
            inputs,
            steps,
            outs,
            out_shapes,
            slab: Default::default(),
            native,
        })
    }

    /// Runs the program on `inputs`; none if it is already running (a run inside another
    /// run of the same program, which then goes to the interpreter).
    pub(crate) fn run(&self, inputs: &[Array]) -> Option<Result<Vec<Array>, RunError>> {
        let mut slab = self.slab.try_borrow_mut().ok()?;
        let (s, scratch) = &mut *slab;
        s.resize(self.len, 0.0);
        // Constants are written at every run: a step may write over one after its last use.
        for (at, data) in &self.init {
            s[*at..*at + data.len()].copy_from_slice(data);
        }
        write(s, &self.inputs, inputs);
        let ran = run(self.native.as_ref().map(|n| n.f), &self.steps, s, scratch);
        Some(ran.map(|()| read(s, &self.outs, &self.out_shapes)))
    }
}

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
    /// Boxed: compiled code refers to it, and the plan may move.
    iteration: Box<Iteration>,
    spare: std::cell::RefCell<Vec<f64>>,
    hot: Hot<NativeLoop>,
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
            iteration: Box::new(iteration),
            spare: Default::default(),
            hot: Hot::default(),
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
        let trips = hi.map(|h| h.saturating_sub(lo));
        match self.hot.native(trips, || NativeLoop::new(&self.iteration)) {
            Some(n) => jit::run_loop(n.f, lo, hi, &mut s, &mut Vec::new())?,
            None => self.iteration.run(lo, hi, &mut s, &mut Vec::new())?,
        }
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
            self.move_back(s, scratch);
        }
        Ok(())
    }

    /// Moves the carried values from where the body leaves them to where it reads them.
    /// Every value moves only after all are read: one carried value's new place may be
    /// another's old one.
    fn move_back(&self, s: &mut [f64], scratch: &mut Vec<f64>) {
        if let [(from, to)] = self.moves.as_slice() {
            put(s, *from, *to);
        } else {
            settle(s, scratch, self.moves.iter().copied());
        }
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
    hot: Hot<NativeReversal>,
}

/// A reversal's three programs compiled, into one module.
#[derive(Debug)]
struct NativeReversal {
    body: jit::StepsFn,
    cond: Option<jit::StepsFn>,
    back: jit::StepsFn,
    _code: jit::Code,
}

impl NativeReversal {
    fn new(p: &ReversalPlan) -> Option<NativeReversal> {
        let cond_steps = p.cond.as_ref().map_or(0, |c| c.0.len());
        if p.body.0.len() + p.back.0.len() + cond_steps > jit::MAX_STEPS {
            return None;
        }
        let mut c = jit::Compiler::new()?;
        c.steps(&p.body.0)?;
        c.steps(&p.back.0)?;
        if let Some((steps, _)) = &p.cond {
            c.steps(steps)?;
        }
        let (code, addrs) = c.finish()?;
        // SAFETY: each address is a function `Compiler::steps` compiled.
        let f = |a: *const u8| unsafe { jit::steps_fn(a) };
        count_compiled();
        Some(NativeReversal {
            body: f(addrs[0]),
            back: f(addrs[1]),
            cond: addrs.get(2).map(|a| f(*a)),
            _code: code,
        })
    }
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
            hot: Hot::default(),
        })
    }

    /// Prepares the slab for a run of `trips` iterations (none when unknown) with these
    /// constants.
    pub(crate) fn start(&self, trips: Option<i64>, consts: &[Array]) {
        self.hot.native(trips, || NativeReversal::new(self));
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
        run(self.hot.ready().map(|n| n.body), &self.body.0, s, scratch)?;
        Ok(read(s, &self.body.1, &self.carry_shapes))
    }

    /// Whether a `while` loop's condition holds before iteration `i`.
    pub(crate) fn goes(&self, i: i64, state: &[Array]) -> Result<bool, RunError> {
        let Some((steps, go)) = &self.cond else { return Ok(true) };
        let (s, scratch) = &mut *self.slab.borrow_mut();
        s[self.index] = i as f64;
        write(s, &self.carries, state);
        run(self.hot.ready().and_then(|n| n.cond), steps, s, scratch)?;
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
        run(self.hot.ready().map(|n| n.back), &self.back.0, s, scratch)?;
        Ok(read(s, &self.back.1, &self.back_shapes))
    }
}

impl ReversalPlan {
    /// Reverses `trips` iterations of a `for` loop from `lo` entirely in the slab, the
    /// record one flat buffer of carried values (the caller has checked that it fits the
    /// budget, as for a recorded reversal, and called `start`): no array is made per
    /// iteration. Returns the cotangents before the loop, then the contributions to the
    /// constants' cotangents. The same steps run in the same order as in `step` and `back`,
    /// and contributions are added in the same order, so the results are the same bits.
    pub(crate) fn recorded(
        &self,
        lo: i64,
        trips: u64,
        init: &[Array],
        ct: &[Array],
    ) -> Result<Vec<Array>, RunError> {
        let (s, scratch) = &mut *self.slab.borrow_mut();
        let s = s.as_mut_slice();
        let native = self.hot.ready();
        let width: usize = self.carries.iter().map(|c| c.len).sum();
        let mut tape = Vec::with_capacity(width * trips as usize);
        write(s, &self.carries, init);
        for j in 0..trips {
            if j % 1024 == 1023 && interrupted() {
                return Err(RunError::Interrupted);
            }
            for c in &self.carries {
                tape.extend_from_slice(&s[c.at..c.at + c.len]);
            }
            s[self.index] = (lo + j as i64) as f64;
            run(native.map(|n| n.body), &self.body.0, s, scratch)?;
            settle(s, scratch, self.body.1.iter().copied().zip(self.carries.iter().copied()));
        }
        let n_ct = self.cts.len();
        write(s, &self.cts, ct);
        let mut acc: Vec<Vec<f64>> = self.back_shapes[n_ct..].iter().map(|sh| vec![0.0; sh.size()]).collect();
        for j in (0..trips).rev() {
            if j % 1024 == 1023 && interrupted() {
                return Err(RunError::Interrupted);
            }
            let mut k = j as usize * width;
            for c in &self.carries {
                s[c.at..c.at + c.len].copy_from_slice(&tape[k..k + c.len]);
                k += c.len;
            }
            s[self.index] = (lo + j as i64) as f64;
            run(native.map(|n| n.back), &self.back.0, s, scratch)?;
            for (a, out) in acc.iter_mut().zip(&self.back.1[n_ct..]) {
                match *out {
                    Out::Slot(o) => a.iter_mut().zip(&s[o.at..o.at + o.len]).for_each(|(a, c)| *a += c),
                    Out::Lit(x) => a.iter_mut().for_each(|a| *a += x),
                }
            }
            settle(s, scratch, self.back.1[..n_ct].iter().copied().zip(self.cts.iter().copied()));
        }
        let outs: Vec<Out> = self.cts.iter().map(|c| Out::Slot(*c)).collect();
        let mut result = read(s, &outs, &self.back_shapes[..n_ct]);
        result.extend(acc.into_iter().zip(&self.back_shapes[n_ct..]).map(|(a, sh)| Array::new(*sh, a)));
        Ok(result)
    }
}

/// Runs steps compiled when they have been (`f`), else as steps.
fn run(
    f: Option<jit::StepsFn>,
    steps: &[Step],
    s: &mut [f64],
    scratch: &mut Vec<f64>,
) -> Result<(), RunError> {
    match f {
        Some(f) => jit::run_steps(f, s, scratch),
        None => exec(steps, s, scratch),
    }
}

/// Moves values to their places, all read before any is written (a value's new place may
/// be another's old one).
fn settle(s: &mut [f64], scratch: &mut Vec<f64>, moves: impl Iterator<Item = (Out, Slot)> + Clone) {
    scratch.clear();
    for (o, t) in moves.clone() {
        match o {
            Out::Slot(f) => scratch.extend_from_slice(&s[f.at..f.at + f.len]),
            Out::Lit(x) => scratch.extend(std::iter::repeat_n(x, t.len)),
        }
    }
    let mut k = 0;
    for (_, t) in moves {
        s[t.at..t.at + t.len].copy_from_slice(&scratch[k..k + t.len]);
        k += t.len;
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
