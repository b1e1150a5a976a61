//! The interpreter: runs a program's equations in order on arrays.
//!
//! A program is first compiled into steps that know, for each operand, whether this is its
//! last use. Last uses hand the array over (`Take`), so a kernel receiving the only
//! reference to a buffer can write its result in place; values are dropped as soon as they
//! are dead.

use crate::kernels;
use ad_ir::prim::Prim;
use ad_ir::{Array, Atom, Program, Shape};
use ad_syntax::Span;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set (by a Ctrl-C handler) to ask running programs and loops to stop.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPT.load(Ordering::Relaxed)
}

thread_local! {
    static COMPILE: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether programs prepared on this thread from now on may run their loops planned in one
/// buffer (`planned.rs`). `--no-compile` turns it off, so that the interpreter alone, the
/// reference semantics, runs everything; the tests run every golden program both ways.
pub fn set_compile(on: bool) {
    COMPILE.with(|c| c.set(on));
}

pub fn compiling() -> bool {
    COMPILE.with(|c| c.get())
}

#[derive(Clone, Debug)]
pub(crate) enum Operand {
    Take(usize),
    Borrow(usize),
    Const(Array),
}

#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub prim: Prim,
    pub args: Vec<Operand>,
    pub out: usize,
    /// The results after the first (a loop's carried values, a chain's results).
    pub extra: Vec<usize>,
    pub shape: Shape,
    /// Values whose last use is this step but that could not be taken (used twice here).
    pub drop_after: Vec<usize>,
    /// For a matrix product: which operands are read transposed (transposes fused into it).
    pub transposed: [bool; 2],
    /// A loop's programs, prepared once, or the elementwise steps this one stands for.
    pub region: Option<Rc<Region>>,
    pub span: Span,
}

/// The programs of a loop equation.
#[derive(Debug)]
pub(crate) enum Region {
    /// A loop planned in one buffer, when its body allows (`planned/`).
    Planned(crate::planned::LoopPlan),
    /// A loop's body and, for a `while` loop, its condition, for the interpreter.
    Loop(Compiled, Option<Compiled>),
    Reverse(crate::reverse::Reversal),
    /// An `if`'s two branches.
    Cond(Compiled, Compiled),
    /// The function of a `custom_jvp` call (its rule is for differentiation only).
    Call(Compiled),
    /// Consecutive elementwise steps run as one chain, in blocks (`chains.rs`).
    Chain(crate::chains::Chain),
    /// A sum of padded arrays, without the padded arrays (`pad_sums.rs`).
    PadSum(crate::pad_sums::PadSum),
}

/// A program prepared for repeated execution.
#[derive(Clone, Debug)]
pub struct Compiled {
    n_vars: usize,
    inputs: Vec<(usize, bool)>,
    steps: Vec<Step>,
    outputs: Vec<Operand>,
    /// The register file of the last run, kept for the next one: a program of many small
    /// equations would otherwise allocate (and the system zero) a fresh one per call,
    /// which costs more than running it.
    spare: std::cell::RefCell<Vec<Option<Array>>>,
    /// The program planned in one slab and compiled once it has run a few times
    /// (`planned::ProgramPlan`), when it may be.
    hot: Option<Rc<crate::planned::HotProgram>>,
}

/// Why a run stopped early: the user asked (Ctrl-C), or a value known only now was wrong
/// (a position out of range, a loop bound that is not an integer), at a place in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    Interrupted,
    At(Span, String),
}

impl Compiled {
    pub fn new(p: &Program) -> Compiled {
        let n = p.vars.len();
        let end = p.eqns.len();
        // Transposes that only matrix products read are fused into them (`fuse.rs`).
        let fused = crate::fuse::fuse_products(p);
        let keep = crate::fuse::Plan::Keep;
        let plan = |i: usize| fused.as_ref().map_or(&keep, |f| &f[i]);
        // Last use of each variable: (equation, operand position); outputs count as a use
        // after every equation.
        let mut last: Vec<Option<(usize, usize)>> = vec![None; n];
        for (i, e) in p.eqns.iter().enumerate() {
            let Some(args) = plan(i).operands(e) else { continue };
            for (k, a) in args.iter().enumerate() {
                if let Atom::Var(v) = a {
                    last[v.index()] = Some((i, k));
                }
            }
        }
        for a in &p.outputs {
            if let Atom::Var(v) = a {
                last[v.index()] = Some((end, 0));
            }
        }
        let steps = p
            .eqns
            .iter()
            .enumerate()
            .filter_map(|(i, e)| plan(i).operands(e).map(|args| (i, e, plan(i), args)))
            .map(|(i, e, f, eargs)| {
                let mut drop_after = Vec::new();
                let transposed = f.transposed();
                let args = eargs
                    .iter()
                    .enumerate()
                    .map(|(k, a)| match a {
                        Atom::Lit(x) => Operand::Const(Array::scalar(*x)),
                        Atom::Var(v) => {
                            let vi = v.index();
                            let here = eargs.iter().filter(|b| **b == *a).count();
                            match last[vi] {
                                Some((j, kk)) if j == i && here == 1 && kk == k => Operand::Take(vi),
                                Some((j, _)) if j == i => {
                                    if !drop_after.contains(&vi) {
                                        drop_after.push(vi);
                                    }
                                    Operand::Borrow(vi)
                                }
                                _ => Operand::Borrow(vi),
                            }
                        }
                    })
                    .collect();
                let region = match &e.prim {
                    Prim::Loop(op) => Some(Rc::new(
                        match compiling().then(|| crate::planned::LoopPlan::new(op)).flatten() {
                            Some(plan) => Region::Planned(plan),
                            None => {
                                Region::Loop(Compiled::new(&op.body), op.cond.as_ref().map(Compiled::new))
                            }
                        },
                    )),
                    Prim::Cond(op) => {
                        Some(Rc::new(Region::Cond(Compiled::new(&op.then), Compiled::new(&op.els))))
                    }
                    Prim::Custom(op) => Some(Rc::new(Region::Call(Compiled::new(&op.primal)))),
                    // Differentiation leaves this equation in a program only when `bwd`
                    // has a transpose (`ad-autodiff`'s `custom.rs` checks every derived
                    // program), which it has cached here.
                    Prim::CustomLin(op) => match &op.rule {
                        ad_ir::region::CustomRule::Vjp { forward, .. } => match forward.get() {
                            Some(Ok(p)) => Some(Rc::new(Region::Call(Compiled::new(p)))),
                            _ => panic!("internal error: a `custom_vjp` derivative without its forward map"),
                        },
                        ad_ir::region::CustomRule::Jvp(_) => {
                            panic!("internal error: a `custom_jvp` as a `custom_vjp` derivative")
                        }
                    },
                    Prim::ReverseLoop(op) => Some(Rc::new(Region::Reverse(crate::reverse::Reversal {
                        body: Compiled::new(&op.primal.body),
                        cond: op.primal.cond.as_ref().map(Compiled::new),
                        back: Compiled::new(&op.back),
                        carries: op.primal.carries,
                        consts: op.primal.consts(),
                        cotangents: op.cotangents,
                        out_shapes: op.out_shapes(),
                        plan: compiling()
                            .then(|| crate::planned::ReversalPlan::new(op).map(Box::new))
                            .flatten(),
                    }))),
                    _ => None,
                };
                let mut step = Step {
                    prim: f.prim(e),
                    args,
                    transposed,
                    out: e.out.index(),
                    extra: e.extra.iter().map(|v| v.index()).collect(),
                    shape: p.var_shape(e.out),
                    drop_after,
                    region,
                    span: e.span,
                };
                // A result nobody reads is dropped right away.
                for o in e.outs() {
                    if last[o.index()].is_none() {
                        step.drop_after.push(o.index());
                    }
                }
                step
            })
            .collect();
        let mut outputs: Vec<Operand> = p
            .outputs
            .iter()
            .map(|a| match a {
                Atom::Lit(x) => Operand::Const(Array::scalar(*x)),
                Atom::Var(v) => Operand::Borrow(v.index()),
            })
            .collect();
        let steps = hoist_constants(steps, &mut outputs, n);
        // Sums of pads run as one step and elementwise chains in blocks, except in the
        // reference interpreter.
        let steps = if compiling() {
            let steps = crate::pad_sums::fuse_pad_sums(steps, &outputs, |v| p.vars[v].shape);
            crate::chains::form_chains(steps, |v| p.vars[v].shape)
        } else {
            steps
        };
        let inputs = p.inputs.iter().map(|v| (v.index(), last[v.index()].is_some())).collect();
        let hot = compiling().then(|| crate::planned::HotProgram::new(p)).flatten().map(Rc::new);
        Compiled { n_vars: n, inputs, steps, outputs, spare: Default::default(), hot }
    }

    pub fn run(&self, inputs: Vec<Array>) -> Result<Vec<Array>, RunError> {
        if let Some(out) = self.hot.as_ref().and_then(|h| h.run(&inputs)) {
            return out;
        }
        // A run inside another run of the same program (none today) finds the spare taken
        // and starts a register file of its own.
        let mut regs = self.spare.take();
        regs.clear();
        regs.resize(self.n_vars, None);
        for (&(slot, used), a) in self.inputs.iter().zip(inputs) {
            if used {
                regs[slot] = Some(a);
            }
        }
        // The operands of each step, in one buffer for the whole run.
        let mut args: Vec<Array> = Vec::with_capacity(4);
        for (i, s) in self.steps.iter().enumerate() {
            if i % 64 == 63 && interrupted() {
                return Err(RunError::Interrupted);
            }
            // Empty: every step leaves it so.
            args.extend(
                s.args
                    .iter()
                    .map(|o| match o {
                        Operand::Take(v) => regs[*v].take(),
                        Operand::Borrow(v) => regs[*v].clone(),
                        Operand::Const(a) => Some(a.clone()),
                    })
                    .map(|a| a.unwrap_or_else(|| missing(s.out))),
            );
            match s.region.as_deref() {
                // An equation holding programs gives one result per output of theirs.
                Some(region) => {
                    let outs = run_region(&s.prim, region, std::mem::take(&mut args), s.span)?;
                    for (slot, a) in std::iter::once(&s.out).chain(&s.extra).zip(outs) {
                        regs[*slot] = Some(a);
                    }
                }
                None if s.transposed != [false; 2] => {
                    let [ta, tb] = s.transposed;
                    regs[s.out] =
                        Some(kernels::linalg::matmul_transposed(&args[0], &args[1], ta, tb, s.shape));
                }
                None => {
                    let a = kernels::try_apply_in(&s.prim, &mut args, s.shape)
                        .map_err(|m| RunError::At(s.span, m))?;
                    regs[s.out] = Some(a);
                }
            }
            // What the kernel only read goes now, so that a dead value's buffer is free
            // for the next step.
            args.clear();
            for v in &s.drop_after {
                regs[*v] = None;
            }
        }
        let outputs = self
            .outputs
            .iter()
            .map(|o| match o {
                Operand::Borrow(v) | Operand::Take(v) => regs[*v].clone().unwrap_or_else(|| missing(*v)),
                Operand::Const(a) => a.clone(),
            })
            .collect();
        regs.clear();
        *self.spare.borrow_mut() = regs;
        Ok(outputs)
    }
}

/// Values of at most this many elements that depend on no input are computed once, when
/// the program is prepared; larger ones are computed by every run, so that a program kept
/// in the cache does not hold large arrays it may never use again.
const HOIST_MAX: usize = 1 << 16;

/// Computes the steps that depend on no input (`eye(n)`, its slices, products of
/// constants: a Hessian's basis, say) once, here, and gives their values to the steps that
/// read them as constants; the steps themselves are removed. A step that fails (a check
/// that does not hold) stays, to report its error when the program runs. The same kernels
/// compute the same values, so the results are the same to the bit.
fn hoist_constants(mut steps: Vec<Step>, outputs: &mut [Operand], n_vars: usize) -> Vec<Step> {
    // Most programs have no such step (nothing to compute without an input): they are
    // returned as they are.
    let seed = |s: &Step| s.region.is_none() && s.args.iter().all(|o| matches!(o, Operand::Const(_)));
    if !steps.iter().any(seed) {
        return steps;
    }
    let mut known: Vec<Option<Array>> = vec![None; n_vars];
    let constant = |o: &mut Operand, known: &[Option<Array>]| {
        if let Operand::Take(v) | Operand::Borrow(v) = *o {
            if let Some(a) = &known[v] {
                *o = Operand::Const(a.clone());
            }
        }
    };
    // In place, in order: each step first reads the constants found before it.
    steps.retain_mut(|s| {
        for o in &mut s.args {
            constant(o, &known);
        }
        if !seed(s) || !s.extra.is_empty() || s.shape.size() > HOIST_MAX {
            return true;
        }
        let mut args: Vec<Array> = s
            .args
            .iter()
            .filter_map(|o| match o {
                Operand::Const(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        let value = match s.transposed {
            [false, false] => kernels::try_apply_in(&s.prim, &mut args, s.shape).ok(),
            [ta, tb] => Some(kernels::linalg::matmul_transposed(&args[0], &args[1], ta, tb, s.shape)),
        };
        match value {
            Some(a) => {
                known[s.out] = Some(a);
                false
            }
            None => true,
        }
    });
    for o in outputs {
        constant(o, &known);
    }
    steps
}

/// Runs an equation that holds programs (a loop, a reversal, an `if`, a call with its own
/// derivative rule) on its operands.
fn run_region(prim: &Prim, region: &Region, args: Vec<Array>, span: Span) -> Result<Vec<Array>, RunError> {
    match (prim, region) {
        (Prim::Loop(op), Region::Planned(plan)) => {
            let (lo, hi) = loop_bounds(&args, op.is_while(), span)?;
            plan.run(lo, hi, args.into_iter().skip(2).collect())
        }
        (Prim::Loop(op), Region::Loop(body, cond)) => run_loop(body, cond.as_ref(), op.carries, args, span),
        (_, Region::Cond(then, els)) => {
            let mut args = args.into_iter();
            let c = args.next().map(|a| holds(&[a])).unwrap_or(false);
            if c {
                then.run(args.collect())
            } else {
                els.run(args.collect())
            }
        }
        (_, Region::Call(f)) => f.run(args),
        (_, Region::Chain(chain)) => Ok(chain.run(args)),
        (_, Region::PadSum(sum)) => {
            Ok(vec![kernels::structure::pad_sum(&args, &sum.widths, sum.shape, sum.transposed)])
        }
        (_, Region::Reverse(r)) => {
            let (lo, hi) = loop_bounds(&args, r.cond.is_some(), span)?;
            crate::reverse::run(r, lo, hi, args)
        }
        // `Compiled::new` prepares loop programs only for loop equations.
        (_, Region::Planned(_) | Region::Loop(..)) => {
            panic!("internal error: loop programs prepared for `{}`", prim.name())
        }
    }
}

/// Runs a loop: `args` are its bounds, carried values and constants. A `while` loop (with
/// `cond`) has the bounds 0 and infinity, and stops at its condition.
fn run_loop(
    body: &Compiled,
    cond: Option<&Compiled>,
    carries: usize,
    args: Vec<Array>,
    span: Span,
) -> Result<Vec<Array>, RunError> {
    let (lo, hi) = loop_bounds(&args, cond.is_some(), span)?;
    let hi = hi.unwrap_or(i64::MAX);
    let mut it = args.into_iter().skip(2);
    let mut carried: Vec<Array> = it.by_ref().take(carries).collect();
    let consts: Vec<Array> = it.collect();
    let inputs = |i: i64, carried: &mut Vec<Array>, take: bool| {
        let mut inputs = Vec::with_capacity(1 + carried.len() + consts.len());
        inputs.push(Array::scalar(i as f64));
        if take {
            inputs.append(carried);
        } else {
            inputs.extend(carried.iter().cloned());
        }
        inputs.extend(consts.iter().cloned());
        inputs
    };
    for i in lo..hi {
        // A `while` may never end: it checks for Ctrl-C on every iteration (a relaxed
        // atomic load, cheap next to running the body).
        if (cond.is_some() || (i - lo) % 1024 == 1023) && interrupted() {
            return Err(RunError::Interrupted);
        }
        if let Some(c) = cond {
            if !holds(&c.run(inputs(i, &mut carried, false))?) {
                break;
            }
        }
        carried = body.run(inputs(i, &mut carried, true))?;
    }
    Ok(carried)
}

/// Whether a `while` loop's condition, the result of its program, holds (is not zero).
pub(crate) fn holds(go: &[Array]) -> bool {
    go.first().and_then(|a| a.data().first().copied()).unwrap_or(0.0) != 0.0
}

/// A loop's bounds, the first two of `args`: integers, and for a `while` loop no upper bound
/// (its operand is infinity).
fn loop_bounds(args: &[Array], is_while: bool, span: Span) -> Result<(i64, Option<i64>), RunError> {
    if is_while && args[1].data().first() == Some(&f64::INFINITY) {
        return Ok((bound(&args[0], "lower", span)?, None));
    }
    Ok((bound(&args[0], "lower", span)?, Some(bound(&args[1], "upper", span)?)))
}

/// A loop bound: an integer.
fn bound(a: &Array, which: &str, span: Span) -> Result<i64, RunError> {
    bound_value(a.data().first().copied().unwrap_or(f64::NAN), which, span)
}

/// A loop bound given as a number: an integer.
pub(crate) fn bound_value(x: f64, which: &str, span: Span) -> Result<i64, RunError> {
    if x != x.trunc() || !x.is_finite() || x.abs() > 9.0e15 {
        return Err(RunError::At(
            span,
            format!("the loop's {which} bound must be an integer, found {}", ad_ir::display::fmt_num(x, 17)),
        ));
    }
    Ok(x as i64)
}

/// A register read before it was written or after it was dropped: a bug in `Compiled::new`
/// or in a verified program, shown as a bug rather than as a NaN in a result.
#[cold]
fn missing(v: usize) -> Array {
    panic!("internal error: the interpreter read variable {v}, which holds no value")
}
