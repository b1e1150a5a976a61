//! A cost model in multiply-adds: what a program's arithmetic costs, ignoring data movement
//! (reshapes, broadcasts, indexing) and constants. Used to compare ways of computing a
//! derivative.

use ad_ir::prim::Decomp;
use ad_ir::{Atom, Eqn, Prim, Shape};

/// Estimated multiply-adds of some equations, given the shapes of their values.
pub fn eqns_madds(eqns: &[Eqn], shape: &dyn Fn(Atom) -> Shape) -> f64 {
    eqns.iter().map(|e| eqn_madds(&e.prim, &e.args, shape(Atom::Var(e.out)), &shape)).sum()
}

fn eqn_madds(prim: &Prim, args: &[Atom], out: Shape, shape: &dyn Fn(Atom) -> Shape) -> f64 {
    let out_size = out.size() as f64;
    match prim {
        Prim::Unary(_) | Prim::Binary(_) | Prim::Where => out_size,
        // Each element of the result is a dot product of length k (batched or not).
        Prim::MatMul | Prim::SafeMatMul => {
            let a = shape(args[0]);
            out_size * a.dim(a.rank() - 1) as f64
        }
        // Each element of the (forward) convolution's result is a dot product over a window
        // of the kernel's size; the adjoints do the same work.
        Prim::Conv2d(_) => out_size * window_len(shape(args[1])),
        Prim::Conv2dTransposeInput(..) => shape(args[0]).size() as f64 * window_len(shape(args[1])),
        Prim::Conv2dTransposeKernel(_, k) => shape(args[1]).size() as f64 * window_len(*k),
        Prim::MaxPool2d(_)
        | Prim::MaxPool2dPick(_)
        | Prim::MaxPool2dScatter(_)
        | Prim::AvgPool2d(_)
        | Prim::AvgPool2dTranspose(..) => shape(args[0]).size() as f64,
        // The factorisations do their work once per matrix of a stack.
        Prim::Cholesky => {
            let (count, n, _) = stack(shape(args[0]));
            count * n.powi(3) / 3.0
        }
        Prim::Decomp(d) => {
            let (count, m, n) = stack(shape(args[0]));
            let (big, small) = (m.max(n), m.min(n));
            count
                * match d {
                    // A symmetric eigendecomposition: about 9n³ with the vectors, 4n³/3 without.
                    Decomp::EighValues => 4.0 * small.powi(3) / 3.0,
                    Decomp::EighVectors => 9.0 * small.powi(3),
                    // Householder QR and forming the thin Q: about 4mn² together.
                    Decomp::QrQ | Decomp::QrR => 4.0 * big * small * small,
                    // A Golub–Kahan SVD: about 4mn² + 8n³ (n the smaller side).
                    Decomp::SvdS | Decomp::SvdU | Decomp::SvdVt => {
                        4.0 * big * small * small + 8.0 * small.powi(3)
                    }
                }
        }
        Prim::LogAbsDet | Prim::SignDet => {
            let (count, n, _) = stack(shape(args[0]));
            count * 2.0 * n.powi(3) / 3.0
        }
        // `k` right-hand sides per matrix: the size of B over the matrices' count and rows.
        Prim::SolveTriangular(_) => {
            let (count, n, _) = stack(shape(args[0]));
            let k = shape(args[1]).size() as f64 / (count * n).max(1.0);
            count * n * n * k / 2.0
        }
        Prim::Solve | Prim::SafeSolve => {
            let (count, n, _) = stack(shape(args[0]));
            let k = shape(args[1]).size() as f64 / (count * n).max(1.0);
            count * (n * n * n / 3.0 + n * n * k)
        }
        Prim::Sum(_)
        | Prim::Amax(_)
        | Prim::Prod(_)
        | Prim::Cumsum(..)
        | Prim::Flip(_)
        | Prim::Argmax(_)
        | Prim::SumTo(_) => shape(args[0]).size() as f64,
        // Data movement and constants: no arithmetic.
        Prim::Transpose
        | Prim::Permute(_)
        | Prim::Reshape(_)
        | Prim::BroadcastTo(_)
        | Prim::Index(_)
        | Prim::Pad(_)
        | Prim::Concat(_)
        | Prim::Stack
        | Prim::StopGradient
        | Prim::Check(_)
        | Prim::Full(..)
        | Prim::Eye(_)
        | Prim::Arange(_)
        | Prim::Linspace(..)
        | Prim::OneHot(_)
        | Prim::Const(_)
        | Prim::DynIndex(_)
        | Prim::DynUpdate(_) => 0.0,
        // The body's cost once per iteration; a trip count known only at run time counts as
        // one iteration (the planner compares plans of the same program, which share it).
        Prim::Loop(op) => {
            let trips = ad_ir::region::LoopOp::static_trips(args).unwrap_or(1) as f64;
            trips * eqns_madds(&op.body.eqns, &|a| op.body.shape(a))
        }
        // Forwards and backwards, once each per iteration (recomputation by checkpointing
        // is decided when it runs).
        Prim::ReverseLoop(op) => {
            let trips = ad_ir::region::LoopOp::static_trips(args).unwrap_or(1) as f64;
            let body = &op.primal.body;
            trips
                * (eqns_madds(&body.eqns, &|a| body.shape(a))
                    + eqns_madds(&op.back.eqns, &|a| op.back.shape(a)))
        }
        Prim::Custom(op) => eqns_madds(&op.primal.eqns, &|a| op.primal.shape(a)),
        Prim::CustomLin(op) => {
            op.programs().iter().map(|p| eqns_madds(&p.eqns, &|a| p.shape(a))).fold(0.0, f64::max)
        }
        // The dearer branch: which one runs is known only when it runs.
        Prim::Cond(op) => {
            op.branches().iter().map(|p| eqns_madds(&p.eqns, &|a| p.shape(a))).fold(0.0, f64::max)
        }
    }
}

/// The multiply-adds of one output of a convolution with kernel `[kh, kw, c, o]`.
fn window_len(k: Shape) -> f64 {
    k.dims().iter().take(3).product::<usize>() as f64
}

/// The number of matrices in a stack of shape `[.., m, n]`, and `m`, `n`, as counts of
/// work.
fn stack(s: Shape) -> (f64, f64, f64) {
    let (count, m, n) = s.matrix_stack();
    (count as f64, m as f64, n as f64)
}
