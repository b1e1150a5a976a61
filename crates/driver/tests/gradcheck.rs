//! Gradient checks in the manner of JAX's `check_grads`, for every primitive and library
//! function: forward mode against central differences, reverse mode by the dot-product test,
//! and order 2 by checking the derived programs themselves the same way. Hessian-vector
//! products are cross-checked four ways.

use ad_driver::check::{check_derived, close, random_like, random_point};
use ad_driver::derive::{lower_named, ShapeOpt};
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_eval::rng::Rng;
use ad_ir::program::Program;
use ad_ir::transform::{Mode, Request};
use ad_ir::{Array, Tree};

mod common;
use common::gradcheck_functions::FUNCTIONS;

fn setup(src: &str) -> (Session, Program) {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("gradcheck.ad", src)
        .unwrap_or_else(|e| panic!("{src}: {}", ad_syntax::render(&s.sources, &e, false)));
    let shapes: Vec<ShapeOpt> = vec![];
    let p = lower_named(&mut s, "f", &shapes).unwrap().program;
    (s, p)
}

fn all(p: &Program) -> Vec<usize> {
    (0..p.params.len()).collect()
}

/// `p` with only output `k` (a scalar or array), for differentiating one result.
fn only_output(p: &Program, k: usize) -> Program {
    let mut q = p.clone();
    q.outputs = vec![p.outputs[k]];
    q.out_tree = Tree::Leaf;
    q
}

/// `p` with its outputs summed into one scalar, for gradients and Hessians.
fn summed(p: &Program) -> Program {
    let mut q = p.clone();
    let mut b = ad_ir::Builder { vars: q.vars.clone(), eqns: q.eqns.clone() };
    let sums: Vec<ad_ir::Atom> = q
        .outputs
        .iter()
        .map(|o| b.emit(ad_ir::Prim::Sum(ad_ir::prim::Axes::all(q.shape(*o).rank())), vec![*o], q.span))
        .collect();
    let mut acc = sums[0];
    for s in &sums[1..] {
        acc = b.emit(ad_ir::Prim::Binary(ad_ir::Binary::Add), vec![acc, *s], q.span);
    }
    // sin keeps the function curved, so that second derivatives are not trivially zero.
    let acc = b.emit(ad_ir::Prim::Unary(ad_ir::Unary::Sin), vec![acc], q.span);
    q.vars = b.vars;
    q.eqns = b.eqns;
    q.outputs = vec![acc];
    q.out_tree = Tree::Leaf;
    q
}

#[test]
fn first_order_forward_and_reverse() {
    for src in FUNCTIONS {
        let (s, p) = setup(src);
        for mode in [Mode::Jvp, Mode::Vjp, Mode::Jvp2] {
            let req = Request { mode, wrt: all(&p) };
            let d = ad_autodiff::derive(&p, &req).unwrap_or_else(|e| panic!("{src}: {e}"));
            check_derived(&s, &p, &d, &req, 1).unwrap_or_else(|e| panic!("{src} {mode:?}: {e}"));
        }
    }
}

#[test]
fn second_order_by_checking_derived_programs() {
    for src in FUNCTIONS {
        let (s, p) = setup(src);
        // Derivatives of the JVP and of the VJP, themselves checked numerically.
        for first in [Mode::Jvp, Mode::Vjp] {
            let d1 = ad_autodiff::derive(&p, &Request { mode: first, wrt: all(&p) }).unwrap();
            for second in [Mode::Jvp, Mode::Vjp] {
                let req = Request { mode: second, wrt: all(&d1) };
                let d2 = ad_autodiff::derive(&d1, &req).unwrap_or_else(|e| panic!("{src}: {e}"));
                check_derived(&s, &d1, &d2, &req, 2)
                    .unwrap_or_else(|e| panic!("{src} {second:?} of {first:?}: {e}"));
            }
        }
    }
}

#[test]
fn hessian_vector_products_agree_four_ways() {
    for src in FUNCTIONS {
        let (s, p) = setup(src);
        let f = summed(&p);
        let run = |q: &Program, inputs: Vec<Array>| s.run_program(q, inputs).unwrap();
        let mut rng = Rng::new(3);
        let x = random_point(&f, &mut rng);
        // The first parameter is the one differentiated; the others stay fixed.
        let v = random_like(&x[..1], &mut rng);
        let with = |extra: &[Array]| -> Vec<Array> {
            let mut i = x.clone();
            i.extend_from_slice(extra);
            i
        };
        let wrt = vec![0];
        // 1. Forward over reverse: hvp.
        let hvp = ad_autodiff::derive(&f, &Request { mode: Mode::Hvp, wrt: wrt.clone() }).unwrap();
        let a = run(&hvp, with(&v));
        // 2. Reverse over forward: the gradient of x ↦ (J v)(x).
        let jvp = ad_autodiff::derive(&f, &Request { mode: Mode::Jvp, wrt: wrt.clone() }).unwrap();
        let jv = only_output(&jvp, 1);
        let g_of_jv =
            ad_autodiff::derive(&jv, &Request { mode: Mode::Grad { with_value: false }, wrt: wrt.clone() })
                .unwrap();
        let b = run(&g_of_jv, with(&v));
        // 3. Reverse over reverse: the VJP of the gradient with cotangent v.
        let grad =
            ad_autodiff::derive(&f, &Request { mode: Mode::Grad { with_value: false }, wrt: wrt.clone() })
                .unwrap();
        let vjp_of_grad = ad_autodiff::derive(&grad, &Request { mode: Mode::Vjp, wrt: wrt.clone() }).unwrap();
        let c = run(&vjp_of_grad, with(&v))[1..2].to_vec();
        // 4. Central differences of the gradient.
        let h = 1e-5;
        let shift = |sgn: f64| -> Vec<Array> {
            let mut xs = x.clone();
            xs[0] = Array::new(
                x[0].shape(),
                x[0].data().iter().zip(v[0].data()).map(|(a, b)| a + sgn * h * b).collect(),
            );
            xs
        };
        let (hi, lo) = (run(&grad, shift(1.0)), run(&grad, shift(-1.0)));
        let d = vec![Array::new(
            hi[0].shape(),
            hi[0].data().iter().zip(lo[0].data()).map(|(p, q)| (p - q) / (2.0 * h)).collect(),
        )];
        assert!(close(&a, &b, 1e-10, 1e-12), "{src}: fwd-over-rev {a:?} vs rev-over-fwd {b:?}");
        assert!(close(&a, &c, 1e-10, 1e-12), "{src}: fwd-over-rev {a:?} vs rev-over-rev {c:?}");
        // `stop_gradient` stays in the gradient program, where differences see through it.
        if !src.contains("stop_gradient") {
            assert!(close(&a, &d, 1e-5, 1e-6), "{src}: fwd-over-rev {a:?} vs differences {d:?}");
        }
    }
}

/// `jacobian` (whatever strategy the planner picks: a mode, a bracketed chain, an
/// elimination) agrees with `jacfwd` and `jacrev` on every function, per output and per
/// parameter, and on the sum of the outputs.
#[test]
fn jacobians_agree_three_ways() {
    use ad_ir::transform::JacMode;
    for src in FUNCTIONS {
        let (s, p) = setup(src);
        let mut programs: Vec<Program> = (0..p.outputs.len()).map(|k| only_output(&p, k)).collect();
        programs.push(summed(&p));
        for q in &programs {
            let mut rng = Rng::new(5);
            let x = random_point(q, &mut rng);
            for param in 0..q.params.len() {
                let run = |mode: JacMode| {
                    let req = Request { mode: Mode::Jacobian(mode), wrt: vec![param] };
                    let j = ad_autodiff::derive(q, &req).unwrap_or_else(|e| panic!("{src}: {e}"));
                    s.run_program(&j, x.clone()).unwrap_or_else(|| panic!("{src}: the Jacobian does not run"))
                };
                let (auto, fwd, rev) = (run(JacMode::Auto), run(JacMode::Forward), run(JacMode::Reverse));
                assert!(
                    close(&auto, &fwd, 1e-9, 1e-12),
                    "{src}: jacobian and jacfwd differ for parameter {param}"
                );
                assert!(
                    close(&auto, &rev, 1e-9, 1e-12),
                    "{src}: jacobian and jacrev differ for parameter {param}"
                );
            }
        }
    }
}
