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

/// An equation as the interpreter runs it: its primitive and operands, and for a matrix
/// product which operands it reads transposed.
pub(crate) struct Fused {
    pub prim: Prim,
    pub args: Args,
    pub transposed: [bool; 2],
}

/// Each equation of `p` as the interpreter runs it, or `None` for one it need not run (a
/// transpose or product fused into the equation that reads it).
pub(crate) fn fuse_products(p: &Program) -> Vec<Option<Fused>> {
    let reads = readers(p);
    // The operand each transpose of a matrix (or stack) that only products read is the
    // transpose of.
    let source: Vec<Option<Atom>> = p
        .eqns
        .iter()
        .map(|e| {
            let only_products =
                reads[e.out.index()].iter().all(|&r| r != usize::MAX && p.eqns[r].prim == Prim::MatMul);
            (e.prim == Prim::Transpose && p.shape(e.args[0]).rank() >= 2 && only_products).then(|| e.args[0])
        })
        .collect();
    let mut source_of = vec![None; p.vars.len()];
    for (e, s) in p.eqns.iter().zip(&source) {
        source_of[e.out.index()] = *s;
    }
    let mut plan: Vec<Option<Fused>> = p
        .eqns
        .iter()
        .zip(&source)
        .map(|(e, s)| match (s, &e.prim) {
            (Some(_), _) => None,
            (None, Prim::MatMul) => {
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
                Some(Fused { prim: Prim::MatMul, args, transposed })
            }
            (None, _) => Some(Fused { prim: e.prim.clone(), args: e.args.clone(), transposed: [false; 2] }),
        })
        .collect();
    // `(a @ b)'` of matrices, where the transpose is the product's only reader.
    let index = defining(p);
    for (i, e) in p.eqns.iter().enumerate() {
        let Some(j) = product_under_transpose(p, e, &index, &reads) else { continue };
        let (Some(inner), Some(Fused { prim: Prim::Transpose, .. })) = (&plan[j], &plan[i]) else { continue };
        if inner.args.iter().any(|a| p.shape(*a).rank() < 2) {
            continue;
        }
        let args = [inner.args[1], inner.args[0]].into_iter().collect();
        let transposed = [!inner.transposed[1], !inner.transposed[0]];
        plan[i] = Some(Fused { prim: Prim::MatMul, args, transposed });
        plan[j] = None;
    }
    plan
}

/// The product a transpose `e` reads, when the transpose is its only reader.
fn product_under_transpose(p: &Program, e: &Eqn, index: &[usize], reads: &[Vec<usize>]) -> Option<usize> {
    if e.prim != Prim::Transpose {
        return None;
    }
    let v = e.args[0].var()?;
    let j = index[v.index()];
    (j != usize::MAX && p.eqns[j].prim == Prim::MatMul && reads[v.index()].len() == 1).then_some(j)
}

/// For each variable, the equations that read it (`usize::MAX` for a program output).
fn readers(p: &Program) -> Vec<Vec<usize>> {
    let mut reads = vec![Vec::new(); p.vars.len()];
    for (i, e) in p.eqns.iter().enumerate() {
        for a in &e.args {
            if let Atom::Var(v) = a {
                reads[v.index()].push(i);
            }
        }
    }
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            reads[v.index()].push(usize::MAX);
        }
    }
    reads
}

/// For each variable, the equation that defines it (`usize::MAX` for an input).
fn defining(p: &Program) -> Vec<usize> {
    let mut index = vec![usize::MAX; p.vars.len()];
    for (i, e) in p.eqns.iter().enumerate() {
        for o in e.outs() {
            index[o.index()] = i;
        }
    }
    index
}
