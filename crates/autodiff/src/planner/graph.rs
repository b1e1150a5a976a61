//! Graphs: when a linear value feeds several steps (a residual connection, `x * sum(x)`),
//! the linear part is a graph whose edges are local Jacobians. Its Jacobian is accumulated
//! by eliminating the intermediate vertices one by one: eliminating v replaces every path
//! u → v → w by an edge u → w carrying the product (added to an existing u → w edge). The
//! order matters as much as a chain's bracketing, and choosing it optimally is NP-complete
//! (Naumann 2008), so vertices are eliminated greedily, cheapest first by the cost model
//! (Markowitz order).

use super::factor::{add, dense, factor, materialize, mul, product_cost, sum_cost, Factor, Kind, Val};
use crate::transpose::Linearized;
use ad_ir::{Atom, Var};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Graphs with more vertices than this are not planned (the greedy search is quadratic).
const MAX_VERTICES: usize = 3000;

pub struct Graph {
    sizes: Vec<usize>,
    input: usize,
    output: usize,
    /// (from, to, local Jacobian): several edges may join one pair (`t + t`).
    edges: Vec<(usize, usize, Factor)>,
}

impl Graph {
    pub fn vertices(&self) -> usize {
        self.sizes.len()
    }

    pub fn edges(&self) -> usize {
        self.edges.len()
    }
}

/// The linear part as a graph of vector (or scalar) values, if every linear value has rank
/// at most 1.
pub fn graph(l: &Linearized) -> Option<Graph> {
    let em = &l.jvp.em;
    let input = *l.jvp.tangent_inputs.first()?;
    let output = l.jvp.tangents.first().copied().flatten()?.var()?;
    let mut index: HashMap<Var, usize> = HashMap::new();
    let mut sizes = Vec::new();
    let mut vertex = |v: Var, sizes: &mut Vec<usize>| -> Option<usize> {
        let s = em.shape(Atom::Var(v));
        if s.rank() > 1 {
            return None;
        }
        Some(*index.entry(v).or_insert_with(|| {
            sizes.push(s.size());
            sizes.len() - 1
        }))
    };
    let input_v = vertex(input, &mut sizes)?;
    let mut edges = Vec::new();
    for (i, e) in l.linear.iter().enumerate() {
        // A step with several results (a loop) is not one edge per operand: forward or
        // reverse mode takes it whole.
        if !e.extra.is_empty() {
            return None;
        }
        let w = vertex(e.out, &mut sizes)?;
        for (k, a) in e.args.iter().enumerate() {
            let Atom::Var(u) = a else { continue };
            if !em.is_linear(*a) {
                continue;
            }
            let uv = vertex(*u, &mut sizes)?;
            let f = factor(em, e, i, k, em.shape(*a), em.shape(Atom::Var(e.out)));
            edges.push((uv, w, f));
        }
        if sizes.len() > MAX_VERTICES {
            return None;
        }
    }
    let output_v = *index.get(&output)?;
    // f(x) = x needs no accumulation (forward and reverse handle it).
    if output_v == input_v {
        return None;
    }
    Some(Graph { sizes, input: input_v, output: output_v, edges })
}

/// The elimination order and its cost in multiply-adds.
pub struct Elimination {
    pub cost: f64,
    pub order: Vec<usize>,
}

/// Edges by (from, to), keeping the kind (planning) or the value (emitting).
struct Adjacency<T> {
    edges: BTreeMap<(usize, usize), T>,
    preds: Vec<BTreeSet<usize>>,
    succs: Vec<BTreeSet<usize>>,
}

impl<T: Copy> Adjacency<T> {
    fn new(n: usize) -> Adjacency<T> {
        Adjacency { edges: BTreeMap::new(), preds: vec![BTreeSet::new(); n], succs: vec![BTreeSet::new(); n] }
    }

    fn get(&self, u: usize, w: usize) -> Option<T> {
        self.edges.get(&(u, w)).copied()
    }

    fn set(&mut self, u: usize, w: usize, t: T) {
        self.edges.insert((u, w), t);
        self.succs[u].insert(w);
        self.preds[w].insert(u);
    }

    fn remove_vertex(&mut self, v: usize) {
        for u in std::mem::take(&mut self.preds[v]) {
            self.edges.remove(&(u, v));
            self.succs[u].remove(&v);
        }
        for w in std::mem::take(&mut self.succs[v]) {
            self.edges.remove(&(v, w));
            self.preds[w].remove(&v);
        }
    }

    /// The pairs (u, w) that eliminating v connects.
    fn through(&self, v: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for &u in &self.preds[v] {
            for &w in &self.succs[v] {
                out.push((u, w));
            }
        }
        out
    }
}

/// The cost of eliminating `v`, and the kinds of the edges it makes.
fn elimination_cost(g: &Graph, adj: &Adjacency<Kind>, v: usize) -> (f64, Vec<(usize, usize, Kind)>) {
    let mut cost = 0.0;
    let mut made = Vec::new();
    for (u, w) in adj.through(v) {
        let (ka, kb) = (adj.get(v, w).unwrap_or(Kind::Dense), adj.get(u, v).unwrap_or(Kind::Dense));
        let (c, mut k) = product_cost(ka, kb, g.sizes[w], g.sizes[v], g.sizes[u]);
        cost += c;
        if let Some(existing) = adj.get(u, w) {
            let (c2, k2) = sum_cost(k, existing, g.sizes[w], g.sizes[u]);
            cost += c2;
            k = k2;
        }
        made.push((u, w, k));
    }
    (cost, made)
}

/// Eliminates every vertex but the input and the output, cheapest first.
pub fn plan(g: &Graph) -> Elimination {
    let mut adj: Adjacency<Kind> = Adjacency::new(g.vertices());
    let mut cost = 0.0;
    for (u, w, f) in &g.edges {
        cost += f.materialize_cost();
        let k = match adj.get(*u, *w) {
            Some(existing) => {
                let (c, k) = sum_cost(f.kind, existing, g.sizes[*w], g.sizes[*u]);
                cost += c;
                k
            }
            None => f.kind,
        };
        adj.set(*u, *w, k);
    }
    let mut remaining: BTreeSet<usize> =
        (0..g.vertices()).filter(|v| *v != g.input && *v != g.output).collect();
    let mut order = Vec::new();
    // Each round eliminates the cheapest remaining value; the loop ends when none is left.
    while let Some((best, (c, made))) = remaining
        .iter()
        .map(|&v| (v, elimination_cost(g, &adj, v)))
        .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.0.cmp(&b.0)))
    {
        cost += c;
        adj.remove_vertex(best);
        for (u, w, k) in made {
            adj.set(u, w, k);
        }
        remaining.remove(&best);
        order.push(best);
    }
    Elimination { cost, order }
}

/// Emits the Jacobian by eliminating vertices in `order`; the result is `[n_out, n_in]`
/// (`None` when a factor cannot be made).
pub fn emit(l: &mut Linearized, g: &Graph, order: &[usize]) -> Option<Atom> {
    let safe = g.edges.iter().any(|(_, _, f)| f.safe);
    let mut adj: Adjacency<Val> = Adjacency::new(g.vertices());
    for (u, w, f) in &g.edges {
        let v = materialize(l, f)?;
        let v = match adj.get(*u, *w) {
            Some(existing) => add(&mut l.jvp.em, existing, v),
            None => v,
        };
        adj.set(*u, *w, v);
    }
    for &v in order {
        let mut made = Vec::new();
        for (u, w) in adj.through(v) {
            let (a, b) = (adj.get(v, w), adj.get(u, v));
            let (Some(a), Some(b)) = (a, b) else { continue };
            let mut p = mul(&mut l.jvp.em, a, b, safe);
            if let Some(existing) = adj.get(u, w) {
                p = add(&mut l.jvp.em, existing, p);
            }
            made.push((u, w, p));
        }
        adj.remove_vertex(v);
        for (u, w, p) in made {
            adj.set(u, w, p);
        }
    }
    let em = &mut l.jvp.em;
    Some(match adj.get(g.input, g.output) {
        Some(v) => dense(em, v),
        None => em.zeros(ad_ir::Shape::matrix(g.sizes[g.output], g.sizes[g.input])),
    })
}
