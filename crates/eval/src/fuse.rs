//! Transposes fused into matrix products, so that the interpreter never materialises them.
//!
//! Derived programs are full of transposes feeding products: reverse mode turns `a @ b`
//! into `ct @ b'` and `a' @ ct`, and attention's scores read `k'`. faer reads a transposed
//! operand for free (a view with swapped strides), so a transpose whose only readers are
//! products need not be computed: each product reads its source transposed instead. A
//! transpose *of* a product read by nothing else is the product of the transposed
//! operands in the other order, `(a @ b)' = b' @ a'`, which fuses the same way.
//! `linalg::matmul_transposed` runs the fused products.

use ad_ir::program::Args;
use ad_ir::{Atom, Eqn, Prim, Program};

/// How the interpreter runs an equation.
pub(crate) enum Plan {
    /// As it is.
    Keep,
    /// Not at all: a transpose or product fused into the equation that reads it.
    Skip,
    /// As a matrix product of these operands, reading those flagged transposed.
    Product(Args, [bool; 2]),
}

impl Plan {
    /// The operands the interpreter passes to `e` (none when it skips it).
    pub(crate) fn operands<'a>(&'a self, e: &'a Eqn) -> Option<&'a Args> {
        match self {
            Plan::Keep => Some(&e.args),
            Plan::Skip => None,
            Plan::Product(args, _) => Some(args),
        }
    }

    /// The primitive the interpreter runs for `e`.
    pub(crate) fn prim(&self, e: &Eqn) -> Prim {
        match self {
            Plan::Product(..) => Prim::MatMul,
            _ => e.prim.clone(),
        }
    }

    /// Which operands a product reads transposed.
    pub(crate) fn transposed(&self) -> [bool; 2] {
        match self {
            Plan::Product(_, t) => *t,
            _ => [false; 2],
        }
    }
}

/// How the interpreter runs each equation of `p`; `None` when it runs them all as they are
/// (no transposes: most programs of many equations are elementwise chains).
pub(crate) fn fuse_products(p: &Program) -> Option<Vec<Plan>> {
    if !p.eqns.iter().any(|e| e.prim == Prim::Transpose) {
        return None;
    }
    let reads = Readers::of(p);
    // For each variable that is a transpose of a matrix (or stack) that only products
    // read, the operand it is the transpose of.
    let mut source_of = vec![None; p.vars.len()];
    let mut plan: Vec<Plan> = p
        .eqns
        .iter()
        .map(|e| {
            if e.prim == Prim::Transpose && !reads.other[e.out.index()] && p.shape(e.args[0]).rank() >= 2 {
                source_of[e.out.index()] = Some(e.args[0]);
                Plan::Skip
            } else {
                Plan::Keep
            }
        })
        .collect();
    // The product that computes each variable, for the transposes of products below.
    let mut product_at = vec![None; p.vars.len()];
    for (j, (e, plan)) in p.eqns.iter().zip(plan.iter_mut()).enumerate() {
        if e.prim != Prim::MatMul {
            continue;
        }
        product_at[e.out.index()] = Some(j);
        let mut transposed = [false; 2];
        let args = e
            .args
            .iter()
            .enumerate()
            .map(|(k, a)| match a.var().and_then(|v| source_of[v.index()]) {
                Some(src) => {
                    transposed[k] = true;
                    src
                }
                None => *a,
            })
            .collect();
        if transposed != [false; 2] {
            *plan = Plan::Product(args, transposed);
        }
    }
    // `(a @ b)'` of matrices, where the transpose is the product's only reader.
    for (i, e) in p.eqns.iter().enumerate() {
        if e.prim != Prim::Transpose || !matches!(plan[i], Plan::Keep) {
            continue;
        }
        let Some(v) = e.args[0].var() else { continue };
        let Some(j) = product_at[v.index()].filter(|_| reads.count[v.index()] == 1) else { continue };
        let (args, transposed) = match &plan[j] {
            Plan::Product(args, t) => (args.clone(), *t),
            Plan::Keep => (p.eqns[j].args.clone(), [false; 2]),
            Plan::Skip => continue,
        };
        if args.iter().any(|a| p.shape(*a).rank() < 2) {
            continue;
        }
        plan[i] = Plan::Product([args[1], args[0]].into_iter().collect(), [!transposed[1], !transposed[0]]);
        plan[j] = Plan::Skip;
    }
    Some(plan)
}

/// How each variable is read: how many times (as an operand or an output), and whether
/// by anything other than a matrix product (an output counts as such a reader).
struct Readers {
    count: Vec<u32>,
    other: Vec<bool>,
}

impl Readers {
    fn of(p: &Program) -> Readers {
        let mut r = Readers { count: vec![0; p.vars.len()], other: vec![false; p.vars.len()] };
        let mut read = |a: &Atom, product: bool| {
            if let Atom::Var(v) = a {
                r.count[v.index()] += 1;
                r.other[v.index()] |= !product;
            }
        };
        for e in &p.eqns {
            for a in &e.args {
                read(a, e.prim == Prim::MatMul);
            }
        }
        for a in &p.outputs {
            read(a, false);
        }
        r
    }
}
