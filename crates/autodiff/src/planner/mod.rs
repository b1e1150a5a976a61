//! Jacobians in the cheapest order.
//!
//! A Jacobian is a product of local Jacobians. Forward mode multiplies them from the input
//! side (one JVP per input element), reverse mode from the output side (one VJP per output
//! element), and when the linearized program is a chain, any bracketing is allowed:
//! choosing the cheapest is the matrix-chain problem, solved here by dynamic programming
//! with a cost model that knows dense, diagonal and scalar factors (elementwise steps stay
//! diagonal: a `tanh` of an n-vector is n numbers, never an n×n matrix). Programs that are
//! not chains (a value used twice, residual connections) get forward or reverse mode
//! or an accumulation by vertex elimination in greedy (Markowitz) order, whichever the
//! model says is cheapest; optimal accumulation on general graphs is NP-complete
//! (Naumann 2008).
//!
//! Forward and reverse mode run *batched* where every linear value is a vector or a scalar
//! (see `batch.rs`): all directions in one pass, as a matrix.

mod batch;
pub(crate) use batch::{lift, rows_of, solve_batch, sum_to_batch};
mod chain;
pub use chain::MAX_FACTORS;
mod cost;
mod factor;
mod graph;
mod unrolled;

pub use factor::{Factor, Kind};

use crate::assemble::{finish, jacobian_result};
use crate::nan_safety::needs_nan_safety;
use crate::transpose::{linearize, transpose, Linearized};
use ad_ir::prim::Prim;
use ad_ir::transform::{jacobian_shape, JacMode, Mode, Request};
use ad_ir::{Atom, Eqn, Program, Shape, Tree};
use ad_syntax::Span;
use batch::batch_linear;
use cost::eqns_madds;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Forward,
    Reverse,
    /// The chain's cheapest bracketing.
    Chain,
    /// Vertex elimination on the graph, cheapest vertex first.
    Elimination,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub in_shape: Shape,
    pub out_shape: Shape,
    /// The local Jacobians, input side first, when the linear part is a chain.
    pub factors: Option<Vec<Factor>>,
    /// Multiply-adds of the function and the coefficients of its derivative.
    pub primal: f64,
    /// Multiply-adds of one JVP's (and, transposed, one VJP's) linear part.
    pub per_pass: f64,
    pub forward: f64,
    pub reverse: f64,
    /// The cheapest bracketing and its cost (function included), for chains.
    pub chain: Option<(f64, String)>,
    /// For graphs: the cost of accumulating by vertex elimination (function included), and
    /// the numbers of vertices and edges.
    pub elimination: Option<(f64, usize, usize)>,
    /// Forward and reverse can push all directions through at once.
    pub batched: bool,
    pub choice: Choice,
    /// How reverse mode keeps each loop's carried values: (where, what).
    pub loops: Vec<(Span, String)>,
}

impl Plan {
    pub fn cost(&self, c: Choice) -> f64 {
        match c {
            Choice::Forward => self.forward,
            Choice::Reverse => self.reverse,
            Choice::Chain => self.chain.as_ref().map(|c| c.0).unwrap_or(f64::INFINITY),
            Choice::Elimination => self.elimination.map(|e| e.0).unwrap_or(f64::INFINITY),
        }
    }
}

/// The parameter and result a Jacobian differentiates: one array each.
fn check(p: &Program, param: usize) -> Result<usize, String> {
    let d = p.params.get(param).ok_or("`jacobian` needs an argument")?;
    if d.tree != Tree::Leaf {
        return Err(format!(
            "`jacobian` differentiates with respect to one array, but `{}` is a tuple",
            d.name
        ));
    }
    if !(p.out_tree == Tree::Leaf && p.outputs.len() == 1) {
        return Err(format!("`jacobian` needs a function returning one array; `{}` returns a tuple", p.name));
    }
    Ok(p.params[..param].iter().map(|d| d.tree.leaves()).sum())
}

fn linearized(p: &Program, leaf: usize) -> Result<Linearized, String> {
    linearize(p, &[leaf], needs_nan_safety(p, &[leaf]))
}

/// A Jacobian's plan and the program that carries it out.
pub struct Planned {
    pub plan: Plan,
    /// `f_jacobian` (or `f_jacfwd`, `f_jacrev` when a mode was forced).
    pub program: Program,
}

/// Plans the Jacobian of `p` with respect to parameter `param` and builds the program: the
/// plan's choice for `JacMode::Auto`, forward or reverse mode when asked. One call plans
/// once; callers that show the plan (`ad derive jacobian`, `:explain`) and callers that
/// run the program share it.
pub fn plan(p: &Program, param: usize, mode: JacMode) -> Result<Planned, String> {
    let (program, plan) = jacobian(p, param, mode)?;
    let program = finish(p, &Request { mode: Mode::Jacobian(mode), wrt: vec![param] }, program)?;
    Ok(Planned { plan, program })
}

/// The Jacobian program alone, unnamed (Hessians are Jacobians of gradients).
pub(crate) fn jacobian_program(p: &Program, param: usize, mode: JacMode) -> Result<Program, String> {
    jacobian(p, param, mode).map(|(program, _)| program)
}

/// What planning found that emitting the Jacobian reuses: the chain's bracketing, or the
/// graph and its elimination order.
struct Prepared {
    split: Option<Vec<Vec<usize>>>,
    graph: Option<(graph::Graph, graph::Elimination)>,
}

fn plan_of(p: &Program, leaf: usize, l: &Linearized) -> (Plan, Prepared) {
    let em = &l.jvp.em;
    let shape = |a: Atom| em.shape(a);
    let in_shape = p.var_shape(p.inputs[leaf]);
    let out_shape = p.shape(p.outputs[0]);
    let (n_in, n_out) = (in_shape.size() as f64, out_shape.size() as f64);
    let primal = eqns_madds(&em.b.eqns, &shape);
    let per_pass = eqns_madds(&l.linear, &shape);
    // Every linear value gains a batch axis, which must fit under the largest rank.
    let fits = |s: Shape| s.rank() < ad_ir::shape::MAX_RANK;
    let batched =
        fits(in_shape) && fits(out_shape) && l.linear.iter().all(|e| fits(em.shape(Atom::Var(e.out))));
    let factors = chain::chain(l);
    let bracketed = factors
        .as_ref()
        .filter(|f| !f.is_empty() && f.len() <= chain::MAX_FACTORS)
        .map(|f| (chain::bracket(f), f.len()));
    let chain =
        bracketed.as_ref().map(|((cost, split), k)| (primal + cost, chain::describe(split, 0, k - 1)));
    let split = bracketed.map(|((_, split), _)| split);
    // Graphs, and chains too long to bracket exactly, are accumulated by elimination.
    let graph = if factors.as_ref().is_none_or(|f| f.len() > chain::MAX_FACTORS) {
        graph::graph(l).map(|g| {
            let order = graph::plan(&g);
            (g, order)
        })
    } else {
        None
    };
    let elimination = graph.as_ref().map(|(g, e)| (primal + e.cost, g.vertices(), g.edges()));
    let forward = primal + n_in * per_pass;
    let reverse = primal + n_out * per_pass;
    let mut choice = if n_in <= n_out { Choice::Forward } else { Choice::Reverse };
    if forward < reverse {
        choice = Choice::Forward;
    } else if reverse < forward {
        choice = Choice::Reverse;
    }
    if let Some((c, _)) = &chain {
        if *c < forward.min(reverse) {
            choice = Choice::Chain;
        }
    }
    if let Some((c, _, _)) = elimination {
        if c < forward.min(reverse) {
            choice = Choice::Elimination;
        }
    }
    let plan = Plan {
        loops: loop_strategies(l),
        name: p.name.clone(),
        in_shape,
        out_shape,
        factors,
        primal,
        per_pass,
        forward,
        reverse,
        chain,
        elimination,
        batched,
        choice,
    };
    (plan, Prepared { split, graph })
}

/// The Jacobian program for `mode` (the plan's choice for `Auto`), and the plan.
fn jacobian(p: &Program, param: usize, mode: JacMode) -> Result<(Program, Plan), String> {
    let leaf = check(p, param)?;
    // A result larger than the memory budget is refused before any work: the derivation
    // itself would build programs of that size.
    let (n_in, n_out) = (p.var_shape(p.inputs[leaf]).size(), p.shape(p.outputs[0]).size());
    if n_in.saturating_mul(n_out) > ad_ir::shape::max_elements() {
        return Err(format!(
            "the Jacobian of `{}` cannot be computed: {}",
            p.name,
            ad_ir::prim::too_large(&[n_out, n_in])
        ));
    }
    let mut l = linearized(p, leaf)?;
    let (plan, prepared) = plan_of(p, leaf, &l);
    let choice = match mode {
        JacMode::Forward => Choice::Forward,
        JacMode::Reverse => Choice::Reverse,
        JacMode::Auto => plan.choice,
    };
    let target = jacobian_shape(plan.out_shape, plan.in_shape);
    let (n_in, n_out) = (plan.in_shape.size(), plan.out_shape.size());
    let out_var = l.jvp.tangents[0].and_then(|t| t.var());
    let t_in = l.jvp.tangent_inputs[0];
    let span = p.span;
    l.jvp.em.span = span;
    // The result as a [n_out, n_in] matrix, or None when this way does not apply.
    let flat: Option<Atom> = match (choice, out_var) {
        (_, None) => Some(l.jvp.em.zeros(Shape::matrix(n_out, n_in))),
        (Choice::Chain, Some(_)) => match (&plan.factors, &prepared.split) {
            (Some(f), Some(split)) => chain::emit_chain(&mut l, f, split),
            _ => None,
        },
        (Choice::Elimination, Some(_)) => {
            prepared.graph.as_ref().and_then(|(g, e)| graph::emit(&mut l, g, &e.order))
        }
        (Choice::Forward, Some(out)) if plan.batched => {
            let eqns = std::mem::take(&mut l.linear);
            let em = &mut l.jvp.em;
            batch::seed(em, plan.in_shape)
                .and_then(|seed| batch_linear(em, &eqns, &[(t_in, seed)], n_in, &[out]))
                .map(|r| {
                    let rows = match r[0] {
                        Some(r) => batch::flat(em, r),
                        None => em.zeros(Shape::matrix(n_in, n_out)),
                    };
                    em.emit(Prim::Transpose, [rows])
                })
        }
        (Choice::Reverse, Some(out)) if plan.batched => {
            let seed_var = l.jvp.em.new_var(plan.out_shape, Some("ct".into()), false);
            let n_primal = l.jvp.em.b.eqns.len();
            let cts = transpose(&mut l, &[(Some(Atom::Var(out)), Atom::Var(seed_var))], &[t_in])?;
            let em = &mut l.jvp.em;
            let trans: Vec<Eqn> = em.b.eqns.split_off(n_primal);
            match cts[0] {
                None => Some(em.zeros(Shape::matrix(n_out, n_in))),
                Some(Atom::Var(xbar)) => batch::seed(em, plan.out_shape)
                    .and_then(|seed| batch_linear(em, &trans, &[(seed_var, seed)], n_out, &[xbar]))
                    .map(|r| match r[0] {
                        Some(r) => batch::flat(em, r),
                        None => em.zeros(Shape::matrix(n_out, n_in)),
                    }),
                Some(lit) => Some(em.broadcast_to(lit, Shape::matrix(n_out, n_in))),
            }
        }
        _ => None,
    };
    let Some(flat) = flat else {
        // Not batchable (a linear value is a matrix): one pass per direction, unrolled.
        let unrolled_mode = if choice == Choice::Reverse { JacMode::Reverse } else { JacMode::Forward };
        return Ok((unrolled::jacobian_unrolled(p, param, unrolled_mode)?, plan));
    };
    let b = std::mem::take(&mut l.jvp.em.b);
    Ok((jacobian_result(p, b, &l.jvp.inputs, flat, target), plan))
}

fn count(x: f64) -> String {
    if x >= 1e5 {
        let e = x.log10().floor() as i32;
        format!("{:.2}e{e}", x / 10f64.powi(e))
    } else {
        format!("{}", x.round() as u64)
    }
}

impl Plan {
    /// The plan as `#` comment lines: the factors of a chain with their shapes and kinds,
    /// and the estimated multiply-adds of forward, reverse and the chosen plan. `locate`
    /// names a span's place (e.g. `line 3`).
    pub fn render(&self, locate: &dyn Fn(Span) -> Option<String>) -> String {
        let mut s = format!(
            "# jacobian of `{}`: f64{} -> f64{}, result {}\n",
            self.name,
            self.in_shape,
            self.out_shape,
            jacobian_shape(self.out_shape, self.in_shape)
        );
        let (n_in, n_out) = (self.in_shape.size(), self.out_shape.size());
        match &self.factors {
            Some(f) if !f.is_empty() => {
                s.push_str("# the linear part is a chain of local Jacobians (F1 acts first):\n");
                for (i, x) in f.iter().enumerate() {
                    let shape = match x.kind {
                        Kind::Dense => format!("[{}, {}]", x.rows, x.cols),
                        Kind::Diagonal => format!("[{}] on the diagonal", x.rows),
                        Kind::Scalar => format!("[{}, {}] times a number", x.rows, x.cols),
                    };
                    let place = locate(x.span).map(|l| format!(", {l}")).unwrap_or_default();
                    s.push_str(&format!(
                        "#   F{:<3} {:<9} {:<26} from `{}`{place}\n",
                        i + 1,
                        x.kind.name(),
                        shape,
                        x.label
                    ));
                }
                if self.chain.is_none() {
                    s.push_str(&format!(
                        "# more than {} factors: accumulated by eliminating values, cheapest first\n",
                        chain::MAX_FACTORS
                    ));
                }
            }
            _ => match self.elimination {
                Some((_, v, e)) => s.push_str(&format!(
                    "# the linear part is a graph (a value feeds several steps) of {v} values and {e} local \
                     Jacobians,\n# accumulated by eliminating values, cheapest first (Markowitz order)\n"
                )),
                None => s.push_str(
                    "# the linear part is not a chain or a graph of vectors: forward or reverse mode\n",
                ),
            },
        }
        let how = if self.batched { "all at once" } else { "one pass each" };
        s.push_str("# estimated multiply-adds (the function itself included):\n");
        let mark = |c: Choice| if c == self.choice { "   <- chosen" } else { "" };
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut line = |label: String, cost: f64, c: Choice| {
            s.push_str(&format!("#   {label:<36} {:>9}{}\n", count(cost), mark(c)));
        };
        line(format!("forward: {n_in} JVP{} ({how})", plural(n_in)), self.forward, Choice::Forward);
        line(format!("reverse: {n_out} VJP{} ({how})", plural(n_out)), self.reverse, Choice::Reverse);
        if let Some((c, b)) = &self.chain {
            line(format!("chain:   {b}"), *c, Choice::Chain);
        }
        if let Some((c, v, _)) = self.elimination {
            line(format!("elimination of {} values", v.saturating_sub(2)), c, Choice::Elimination);
        }
        for (span, what) in &self.loops {
            let place = locate(*span).map(|l| format!(" at {l}")).unwrap_or_default();
            s.push_str(&format!("# the loop{place}: {what}\n"));
        }
        s
    }
}

/// How reverse mode keeps the carried values of each loop of a linearized program, and why.
fn loop_strategies(l: &Linearized) -> Vec<(Span, String)> {
    let budget = ad_ir::shape::human_bytes(ad_ir::shape::tape_budget() as f64);
    let mut notes = Vec::new();
    for e in &l.linear {
        let Prim::Loop(op) = &e.prim else { continue };
        let note = match &op.replay {
            Some(r) => {
                let why = if r.primal.is_while() {
                    "a `while` loop (its trip count is known when it ends)"
                } else if ad_ir::region::LoopOp::static_trips(&e.args).is_none() {
                    "its bounds are computed when it runs"
                } else {
                    "a tape of every iteration would pass the memory budget"
                };
                format!(
                    "{why}:\n#   reversed by `reverse_loop`, which records its carried values up to the memory budget\n#   ({budget}), then keeps checkpoints of them (two levels, or binomially)"
                )
            }
            None => {
                let trips = ad_ir::region::LoopOp::static_trips(&e.args).unwrap_or(0);
                let state: usize = op.out_shapes().iter().map(|s| s.size()).sum();
                format!(
                    "{trips} iterations: reverse mode records its carried values in a tape of {} (the memory budget is {budget})",
                    ad_ir::shape::human_bytes((trips * state * 8) as f64)
                )
            }
        };
        notes.push((e.span, note));
    }
    notes
}
