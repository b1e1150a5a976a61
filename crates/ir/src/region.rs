//! Structured control flow inside programs (DESIGN §8): a `for` or `while` loop is one
//! equation holding its body as a sub-program, lowered once however many times it runs.
//!
//! A [`LoopOp`] equation has the operands `[lo, hi, carries.., consts..]` and one result per
//! carried value (the equation's `out`, then its `extra` results). Its body is a closed
//! program with the inputs `[i, carries.., consts..]` and the new carried values as outputs,
//! of the same shapes. The loop runs the body for `i = lo, lo+1, .., hi-1` (no iteration
//! when `hi <= lo`); bounds that are not integers are an error when the loop starts.
//!
//! A `while` loop is the same equation with a condition: a closed program with the body's
//! inputs and one scalar output, evaluated before each iteration; the loop stops at the
//! first iteration whose condition is zero. Its bounds are `0` and infinity, so `i` counts
//! the iterations done, which the derivatives of the loop use as a position in a tape.
//!
//! An `if` on a computed condition is a [`CondOp`]: two closed branches of the same inputs
//! and output shapes, of which one runs.
//!
//! A function with its own derivative rule is a [`CustomOp`]: the function and its rule
//! (`custom_jvp`) or its forward and backward halves (`custom_vjp`), all closed programs.

use crate::program::{Atom, ParamDecl, Program, Tree, Var, VarInfo};
use crate::shape::Shape;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

#[derive(Debug)]
pub struct LoopOp {
    pub body: Program,
    /// How many of the operands after the bounds are carried (the rest are constants the
    /// body reads).
    pub carries: usize,
    /// A `while` loop's condition (the body's inputs, one scalar output).
    pub cond: Option<Program>,
    /// In reverse mode, a loop whose carried values are not recorded (its trip count is
    /// known only when it runs, or recording would pass the memory budget) is linearized
    /// as a loop that recomputes the primal loop alongside the tangents. Transposing it
    /// gives a [`ReverseOp`].
    pub replay: Option<Replay>,
}

/// What a replaying linear loop recomputes: its first `primal.carries` carried values are
/// `primal`'s, the rest their tangents (one per carried value); its body is `primal`'s JVP
/// body with respect to every carried value and the constants `wrt`.
#[derive(Debug, Clone)]
pub struct Replay {
    pub primal: Rc<LoopOp>,
    pub wrt: Vec<usize>,
}

/// The transpose of a replaying linear loop (DESIGN §8): runs the primal loop forwards,
/// keeping what the backward sweep needs (every iteration's carried values when they fit
/// the memory budget, otherwise binomial checkpoints), then runs `back` from the last
/// iteration to the first.
///
/// Operands: `[lo, hi, carries.., consts.., cotangents..]` (the primal loop's bounds,
/// initial carried values and constants, then the cotangents of its final carried values).
/// Results: the cotangents of the initial carried values, then the summed contributions
/// to the cotangents of the constants `wrt`.
#[derive(Debug)]
pub struct ReverseOp {
    pub primal: Rc<LoopOp>,
    /// One step backwards: inputs `[i, carries.., consts.., cotangents..]` (the carried
    /// values before iteration `i`), outputs `[cotangents.., contributions..]`.
    pub back: Program,
    /// How many cotangents are carried backwards (one per carried value; the rest of
    /// `back`'s outputs are contributions summed over the iterations).
    pub cotangents: usize,
    /// The constants (positions among the loop's constants) that `back` gives
    /// contributions to, in order.
    pub wrt: Vec<usize>,
    /// Set when this reversal is the JVP of another one (forward over reverse): its carried
    /// values, constants and cotangents are that one's followed by their tangents. Reverse
    /// mode transposes it by the symmetry of second derivatives.
    pub tangent_of: Option<Rc<ReverseOp>>,
}

impl ReverseOp {
    pub fn out_shapes(&self) -> Vec<Shape> {
        self.back.outputs.iter().map(|a| self.back.shape(*a)).collect()
    }
}

// A loop is identified by its operation's address: two equations are the same loop only
// when they share it (common subexpressions then merge identical loops over identical
// operands), and hashing an address is constant time.
macro_rules! identified_by_address {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, o: &$t) -> bool {
                std::ptr::eq(self, o)
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, h: &mut H) {
                (self as *const $t as usize).hash(h)
            }
        }
    };
}
identified_by_address!(LoopOp);
identified_by_address!(ReverseOp);
identified_by_address!(CondOp);
identified_by_address!(CustomOp);

/// A call of a function with its own derivative rule (DESIGN §10):
/// `custom_jvp(f, rule)(args..)` or `custom_vjp(f, fwd, bwd)(args..)`. Operands `[args..,
/// consts..]` (the arguments' leaves, then values the function or its rules read from
/// outside them); results: the function's result leaves. `primal` has the inputs `[args..,
/// consts..]`; running the equation runs it.
#[derive(Debug)]
pub struct CustomOp {
    pub primal: Program,
    pub rule: CustomRule,
    /// How many operands are arguments (the rest are constants).
    pub args: usize,
}

// Held once per call site behind the operation's `Rc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CustomRule {
    /// `custom_jvp`: the rule, with the inputs `[args.., tangents of args.., consts..]` and
    /// the outputs `[result.., tangents of result..]`.
    Jvp(Program),
    /// `custom_vjp`: `fwd` has the function's inputs and the outputs `[result..,
    /// residuals..]`; `bwd` the inputs `[residuals.., cotangents of result.., consts..]` and
    /// one cotangent per argument leaf as outputs. `forward` caches the transpose of `bwd`
    /// in the result's cotangents, which forward mode uses (or why there is none: `bwd` is
    /// not linear in them).
    Vjp { fwd: Program, bwd: Program, forward: std::cell::OnceCell<Result<Program, String>> },
}

impl CustomOp {
    pub fn out_shapes(&self) -> Vec<Shape> {
        self.primal.outputs.iter().map(|a| self.primal.shape(*a)).collect()
    }

    /// How many residuals a `custom_vjp`'s `fwd` passes to its `bwd` (0 for `custom_jvp`).
    pub fn residuals(&self) -> usize {
        match &self.rule {
            CustomRule::Jvp(_) => 0,
            CustomRule::Vjp { fwd, .. } => fwd.outputs.len() - self.primal.outputs.len(),
        }
    }

    /// The name scripts write: `custom_jvp` or `custom_vjp`.
    pub fn keyword(&self) -> &'static str {
        match &self.rule {
            CustomRule::Jvp(_) => "custom_jvp",
            CustomRule::Vjp { .. } => "custom_vjp",
        }
    }

    /// The programs it holds: the function, then its rule (or `fwd` and `bwd`).
    pub fn programs(&self) -> Vec<&Program> {
        match &self.rule {
            CustomRule::Jvp(r) => vec![&self.primal, r],
            CustomRule::Vjp { fwd, bwd, .. } => vec![&self.primal, fwd, bwd],
        }
    }

    /// The same operation with every program transformed by `f`.
    pub fn map(&self, mut f: impl FnMut(&Program) -> Program) -> Rc<CustomOp> {
        let rule = match &self.rule {
            CustomRule::Jvp(r) => CustomRule::Jvp(f(r)),
            CustomRule::Vjp { fwd, bwd, .. } => {
                CustomRule::Vjp { fwd: f(fwd), bwd: f(bwd), forward: Default::default() }
            }
        };
        Rc::new(CustomOp { primal: f(&self.primal), rule, args: self.args })
    }
}

/// `if c { .. } else { .. }` on a condition computed when the program runs (DESIGN §8):
/// only the chosen branch runs.
///
/// A [`CondOp`] equation has the operands `[c, args..]` and one result per output of its
/// branches. Both branches are closed programs with the inputs `args` and outputs of the
/// same shapes; `then` runs when `c` is nonzero, `els` otherwise.
#[derive(Debug)]
pub struct CondOp {
    pub then: Program,
    pub els: Program,
}

impl CondOp {
    pub fn new(then: Program, els: Program) -> Rc<CondOp> {
        Rc::new(CondOp { then, els })
    }

    /// The same `if` with both branches transformed by `f` (which is told which branch it
    /// transforms: `true` for `then`).
    pub fn map(&self, mut f: impl FnMut(&Program, bool) -> Program) -> Rc<CondOp> {
        CondOp::new(f(&self.then, true), f(&self.els, false))
    }

    pub fn branches(&self) -> [&Program; 2] {
        [&self.then, &self.els]
    }

    /// The shapes of the results.
    pub fn out_shapes(&self) -> Vec<Shape> {
        self.then.outputs.iter().map(|a| self.then.shape(*a)).collect()
    }
}

impl LoopOp {
    pub fn new(body: Program, carries: usize) -> Rc<LoopOp> {
        Rc::new(LoopOp { body, carries, cond: None, replay: None })
    }

    /// A `while` loop: its operands' bounds are `0` and infinity.
    pub fn new_while(cond: Program, body: Program, carries: usize) -> Rc<LoopOp> {
        Rc::new(LoopOp { body, carries, cond: Some(cond), replay: None })
    }

    /// The same loop with its body and condition transformed by `f`.
    pub fn map(&self, mut f: impl FnMut(&Program) -> Program) -> Rc<LoopOp> {
        let (body, cond) = (f(&self.body), self.cond.as_ref().map(&mut f));
        Rc::new(LoopOp { body, carries: self.carries, cond, replay: self.replay.clone() })
    }

    pub fn is_while(&self) -> bool {
        self.cond.is_some()
    }

    /// The number of constants the body reads.
    pub fn consts(&self) -> usize {
        self.body.inputs.len() - 1 - self.carries
    }

    /// The shapes of the results (the carried values').
    pub fn out_shapes(&self) -> Vec<Shape> {
        self.body.outputs.iter().map(|a| self.body.shape(*a)).collect()
    }

    /// The bounds `(lo, hi)` of a loop with operands `args`, when both are literals.
    pub fn static_bounds(args: &[Atom]) -> Option<(f64, f64)> {
        Some((args.first()?.lit()?, args.get(1)?.lit()?))
    }

    /// The trip count when both bounds are literals (not a `while` loop's, whose upper
    /// bound is infinite).
    pub fn static_trips(args: &[Atom]) -> Option<usize> {
        LoopOp::static_bounds(args)
            .filter(|(_, hi)| hi.is_finite())
            .map(|(lo, hi)| (hi - lo).max(0.0) as usize)
    }
}

/// A closed sub-program from its parts: every input is a parameter of its own (regions have
/// no captures), and the outputs are a flat tuple (a single output is a leaf).
pub fn region_program(
    name: &str,
    vars: Vec<VarInfo>,
    inputs: Vec<Var>,
    eqns: Vec<crate::program::Eqn>,
    outputs: Vec<Atom>,
    span: ad_syntax::Span,
) -> Program {
    let params = inputs
        .iter()
        .enumerate()
        .map(|(k, v)| ParamDecl {
            name: vars[v.index()].name.clone().unwrap_or_else(|| format!("a{k}").into()),
            tree: Tree::Leaf,
        })
        .collect();
    let out_tree = flat_tree(outputs.len());
    Program { name: name.to_string(), vars, inputs, params, captures: vec![], eqns, outputs, out_tree, span }
}

/// The program made of `p`'s first `n` equations with the outputs `outputs`, keeping only
/// the equations those outputs need (the same inputs and variables as `p`).
pub fn restrict(p: &Program, n: usize, outputs: Vec<Atom>, name: &str) -> Program {
    let mut needed = vec![false; p.vars.len()];
    for a in &outputs {
        if let Atom::Var(v) = a {
            needed[v.index()] = true;
        }
    }
    let mut keep = vec![false; n];
    for (k, e) in p.eqns[..n].iter().enumerate().rev() {
        if e.outs().any(|o| needed[o.index()]) {
            keep[k] = true;
            for a in &e.args {
                if let Atom::Var(v) = a {
                    needed[v.index()] = true;
                }
            }
        }
    }
    let eqns = p.eqns[..n].iter().zip(keep).filter(|(_, k)| *k).map(|(e, _)| e.clone()).collect();
    let out_tree = flat_tree(outputs.len());
    Program {
        name: name.to_string(),
        vars: p.vars.clone(),
        inputs: p.inputs.clone(),
        params: p.params.clone(),
        captures: p.captures.clone(),
        eqns,
        outputs,
        out_tree,
        span: p.span,
    }
}

/// The structure of a region's flat outputs: a leaf for one, else a tuple of leaves.
pub fn flat_tree(n: usize) -> Tree {
    if n == 1 {
        Tree::Leaf
    } else {
        Tree::Tuple(vec![Tree::Leaf; n])
    }
}
