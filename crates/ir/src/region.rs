//! Structured control flow inside programs (DESIGN §8): a `for` loop is one equation holding
//! its body as a sub-program, lowered once however many times it runs.
//!
//! A [`LoopOp`] equation has the operands `[lo, hi, carries.., consts..]` and one result per
//! carried value (the equation's `out`, then its `extra` results). Its body is a closed
//! program with the inputs `[i, carries.., consts..]` and the new carried values as outputs,
//! of the same shapes. The loop runs the body for `i = lo, lo+1, .., hi-1` (no iteration
//! when `hi <= lo`); bounds that are not integers are an error when the loop starts.

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
}

// A loop is identified by its body: two equations are the same loop only when they share
// it (common subexpressions then merge identical loops over identical operands), and
// hashing a body's address is constant time.
impl PartialEq for LoopOp {
    fn eq(&self, o: &LoopOp) -> bool {
        std::ptr::eq(self, o)
    }
}
impl Eq for LoopOp {}
impl Hash for LoopOp {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as *const LoopOp as usize).hash(h)
    }
}

impl LoopOp {
    pub fn new(body: Program, carries: usize) -> Rc<LoopOp> {
        Rc::new(LoopOp { body, carries })
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

    /// The trip count when both bounds are literals.
    pub fn static_trips(args: &[Atom]) -> Option<usize> {
        LoopOp::static_bounds(args).map(|(lo, hi)| (hi - lo).max(0.0) as usize)
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
    let out_tree = if outputs.len() == 1 { Tree::Leaf } else { Tree::Tuple(vec![Tree::Leaf; outputs.len()]) };
    Program { name: name.to_string(), vars, inputs, params, captures: vec![], eqns, outputs, out_tree, span }
}
