//! Numeric checks of derived programs, as JAX's `check_grads` does: central differences
//! along random directions for forward mode, the dot-product test ⟨u, J v⟩ = ⟨Jᵀu, v⟩ for
//! reverse mode, and differences of gradients for second order. The golden-test runner
//! checks every derived program this way, so a golden file cannot bless a wrong derivative.

use crate::Session;
use ad_eval::rng::Rng;
use ad_ir::transform::{Mode, Request};
use ad_ir::{Array, Program, Shape};

/// Relative tolerance for comparing a derivative with central differences (step 1e-5).
const FD_RTOL: f64 = 1e-6;
const FD_ATOL: f64 = 1e-7;
const STEP: f64 = 1e-5;

fn dot(a: &[Array], b: &[Array]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.data().iter().zip(y.data()).map(|(p, q)| p * q).sum::<f64>()).sum()
}

fn norm(a: &[Array]) -> f64 {
    dot(a, a).sqrt()
}

/// `f` applied elementwise to two lists of arrays of the same shapes.
fn zip_with(a: &[Array], b: &[Array], f: impl Fn(f64, f64) -> f64) -> Vec<Array> {
    a.iter()
        .zip(b)
        .map(|(x, y)| Array::new(x.shape(), x.data().iter().zip(y.data()).map(|(p, q)| f(*p, *q)).collect()))
        .collect()
}

/// x + h·v
fn axpy(x: &[Array], h: f64, v: &[Array]) -> Vec<Array> {
    zip_with(x, v, |p, q| p + h * q)
}

/// (a − b)·scale
fn sub_scaled(a: &[Array], b: &[Array], scale: f64) -> Vec<Array> {
    zip_with(a, b, |p, q| (p - q) * scale)
}

/// A matrix (a Jacobian or Hessian, flattened to rows of the vector's size) times a vector.
fn matvec(m: &Array, v: &Array) -> Vec<f64> {
    let n = v.shape().size().max(1);
    m.data().chunks(n).map(|row| row.iter().zip(v.data()).map(|(a, b)| a * b).sum()).collect()
}

/// Whether two lists of arrays agree: `‖a − b‖ ≤ rtol·max(‖a‖, ‖b‖) + atol`.
pub fn close(a: &[Array], b: &[Array], rtol: f64, atol: f64) -> bool {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.shape() != y.shape()) {
        return false;
    }
    let d = norm(&sub_scaled(a, b, 1.0));
    d <= rtol * norm(a).max(norm(b)) + atol || (d.is_nan() && a.iter().zip(b).all(|(x, y)| nan_eq(x, y)))
}

fn nan_eq(x: &Array, y: &Array) -> bool {
    x.data().iter().zip(y.data()).all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
}

fn describe(a: &[Array]) -> String {
    a.iter()
        .map(|x| x.data().iter().take(6).map(|v| format!("{v:.8}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Random arrays shaped like the parameter leaves of `p`, in [0.5, 1.5): positive and away
/// from 0, where `log`, `sqrt`, `abs` and `relu` are smooth.
pub fn random_point(p: &Program, rng: &mut Rng) -> Vec<Array> {
    let n = p.param_leaves();
    p.inputs[..n]
        .iter()
        .map(|v| {
            let s = p.var_shape(*v);
            Array::new(s, (0..s.size()).map(|_| 0.5 + rng.uniform()).collect())
        })
        .collect()
}

pub fn random_like(xs: &[Array], rng: &mut Rng) -> Vec<Array> {
    xs.iter().map(|a| Array::new(a.shape(), (0..a.shape().size()).map(|_| rng.normal()).collect())).collect()
}

/// Leaves of the parameters `wrt` (indices into `p.params`), in input order.
fn wrt_leaves(p: &Program, wrt: &[usize]) -> Vec<usize> {
    let ranges = p.param_ranges();
    ranges.into_iter().enumerate().filter(|(i, _)| wrt.contains(i)).flat_map(|(_, r)| r).collect()
}

/// Checks `derived` (made from `primal` by `req`) numerically at a random point.
///
/// `stop_gradient` changes derivatives on purpose, so central differences of a function
/// that uses it may legitimately disagree; then forward and reverse mode must still agree
/// with each other (the dot-product test between a fresh JVP and a fresh VJP).
pub fn check_derived(
    s: &Session,
    primal: &Program,
    derived: &Program,
    req: &Request,
    seed: u64,
) -> Result<(), String> {
    match check_against_differences(s, primal, derived, req, seed) {
        Err(e) if primal.eqns.iter().any(|q| q.prim == ad_ir::Prim::StopGradient) => {
            forward_reverse_agree(s, primal, &req.wrt, seed).map_err(|e2| format!("{e}; and {e2}"))
        }
        r => r,
    }
}

/// ⟨u, J v⟩ by forward mode equals ⟨Jᵀu, v⟩ by reverse mode.
pub fn forward_reverse_agree(s: &Session, primal: &Program, wrt: &[usize], seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x5555);
    let jvp = ad_autodiff::derive(primal, &Request { mode: Mode::Jvp, wrt: wrt.to_vec() })?;
    let vjp = ad_autodiff::derive(primal, &Request { mode: Mode::Vjp, wrt: wrt.to_vec() })?;
    let x = random_point(primal, &mut rng);
    let leaves = wrt_leaves(primal, wrt);
    let v: Vec<Array> = leaves.iter().map(|i| random_like(&x[*i..*i + 1], &mut rng).remove(0)).collect();
    let mut inputs = x.clone();
    inputs.extend(v.iter().cloned());
    let out = s.run_program(&jvp, inputs).ok_or("the JVP could not run")?;
    let n = out.len() / 2;
    let (y, ydot) = out.split_at(n);
    let u = random_like(y, &mut rng);
    let mut inputs = x;
    inputs.extend(u.iter().cloned());
    let out = s.run_program(&vjp, inputs).ok_or("the VJP could not run")?;
    let xbar = &out[n..];
    let (lhs, rhs) = (dot(&u, ydot), dot(xbar, &v));
    if (lhs - rhs).abs() > 1e-9 * lhs.abs().max(rhs.abs()) + 1e-12 {
        return Err(format!("forward and reverse mode disagree: ⟨u, J v⟩ = {lhs}, ⟨Jᵀu, v⟩ = {rhs}"));
    }
    Ok(())
}

fn check_against_differences(
    s: &Session,
    primal: &Program,
    derived: &Program,
    req: &Request,
    seed: u64,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    if let Mode::Vmap(b) = req.mode {
        return check_vmap(s, primal, derived, req, b, &mut rng);
    }
    let x = random_point(primal, &mut rng);
    let leaves = wrt_leaves(primal, &req.wrt);
    let run = |p: &Program, inputs: Vec<Array>| -> Result<Vec<Array>, String> {
        s.run_program(p, inputs)
            .ok_or_else(|| format!("`{}` could not run (a captured name is missing)", p.name))
    };
    // A direction that moves only the differentiated leaves.
    let direction = |rng: &mut Rng| -> Vec<Array> {
        let v = random_like(&x, rng);
        v.into_iter()
            .enumerate()
            .map(|(i, a)| if leaves.contains(&i) { a } else { Array::full(a.shape(), 0.0) })
            .collect()
    };
    let fd = |v: &[Array]| -> Result<Vec<Array>, String> {
        let hi = run(primal, axpy(&x, STEP, v))?;
        let lo = run(primal, axpy(&x, -STEP, v))?;
        Ok(sub_scaled(&hi, &lo, 0.5 / STEP))
    };
    let y = run(primal, x.clone())?;
    let pick = |v: &[Array]| -> Vec<Array> { leaves.iter().map(|i| v[*i].clone()).collect() };
    match req.mode {
        Mode::Jvp | Mode::Jvp2 => {
            let v = direction(&mut rng);
            let mut inputs = x.clone();
            inputs.extend(pick(&v));
            let out = run(derived, inputs)?;
            let (yy, ydot) = out.split_at(y.len());
            if !close(yy, &y, 1e-12, 1e-12) {
                return Err(format!(
                    "the derived program's value differs from the function's: {} vs {}",
                    describe(yy),
                    describe(&y)
                ));
            }
            let expected = fd(&v)?;
            if !close(ydot, &expected, FD_RTOL, FD_ATOL) {
                return Err(format!(
                    "JVP {} differs from central differences {}",
                    describe(ydot),
                    describe(&expected)
                ));
            }
        }
        Mode::Vjp => {
            let v = direction(&mut rng);
            let u = random_like(&y, &mut rng);
            let mut inputs = x.clone();
            inputs.extend(u.iter().cloned());
            let out = run(derived, inputs)?;
            let xbar = &out[y.len()..];
            let lhs = dot(xbar, &pick(&v));
            let rhs = dot(&u, &fd(&v)?);
            if (lhs - rhs).abs() > FD_RTOL * lhs.abs().max(rhs.abs()) + FD_ATOL {
                return Err(format!("dot-product test failed: ⟨x̄, v⟩ = {lhs} but ⟨u, J v⟩ = {rhs}"));
            }
        }
        Mode::Grad { with_value } => {
            let v = direction(&mut rng);
            let out = run(derived, x.clone())?;
            let g = if with_value { &out[1..] } else { &out[..] };
            let lhs = dot(g, &pick(&v));
            let rhs = dot(&[Array::scalar(1.0)], &fd(&v)?);
            if (lhs - rhs).abs() > FD_RTOL * lhs.abs().max(rhs.abs()) + FD_ATOL {
                return Err(format!("gradient along a direction is {lhs}, central differences give {rhs}"));
            }
        }
        Mode::Hvp | Mode::Hessian => {
            // Second order: compare with central differences of the gradient.
            let grad = ad_autodiff::derive(
                primal,
                &Request { mode: Mode::Grad { with_value: false }, wrt: req.wrt.clone() },
            )?;
            let v = direction(&mut rng);
            let hi = run(&grad, axpy(&x, STEP, &v))?;
            let lo = run(&grad, axpy(&x, -STEP, &v))?;
            let expected = sub_scaled(&hi, &lo, 0.5 / STEP);
            let got = if req.mode == Mode::Hvp {
                let mut inputs = x.clone();
                inputs.extend(pick(&v));
                run(derived, inputs)?
            } else {
                let h = run(derived, x.clone())?;
                vec![Array::new(expected[0].shape(), matvec(&h[0], &pick(&v)[0]))]
            };
            if !close(&got, &expected, 1e-5, 1e-6) {
                return Err(format!(
                    "H·v {} differs from differences of gradients {}",
                    describe(&got),
                    describe(&expected)
                ));
            }
        }
        Mode::Vmap(_) => unreachable!("checked above"),
        Mode::Jacobian(_) => {
            let j = run(derived, x.clone())?;
            let v = direction(&mut rng);
            let jv = matvec(&j[0], &pick(&v)[0]);
            let expected = fd(&v)?;
            let flat: Vec<f64> = expected.iter().flat_map(|a| a.data().to_vec()).collect();
            let (a, b) =
                (Array::new(Shape::vector(jv.len()), jv), Array::new(Shape::vector(flat.len()), flat));
            if !close(std::slice::from_ref(&a), std::slice::from_ref(&b), FD_RTOL, FD_ATOL) {
                return Err(format!(
                    "J·v {} differs from central differences {}",
                    describe(&[a]),
                    describe(&[b])
                ));
            }
        }
    }
    Ok(())
}

/// A batched program against the function applied to each batch element in turn.
fn check_vmap(
    s: &Session,
    primal: &Program,
    derived: &Program,
    req: &Request,
    b: usize,
    rng: &mut Rng,
) -> Result<(), String> {
    let run = |p: &Program, inputs: Vec<Array>| -> Result<Vec<Array>, String> {
        s.run_program(p, inputs)
            .ok_or_else(|| format!("`{}` could not run (a captured name is missing)", p.name))
    };
    let leaves = wrt_leaves(primal, &req.wrt);
    let xs = random_point(derived, rng);
    let batched = run(derived, xs.clone())?;
    // Element `i` of a batched array `[B, *s]`.
    let element = |a: &Array, i: usize| -> Array {
        let inner = Shape::from_dims(&a.shape().dims()[1..]).unwrap_or_default();
        let n = inner.size();
        Array::new(inner, a.data()[i * n..(i + 1) * n].to_vec())
    };
    for i in 0..b {
        let inputs: Vec<Array> = xs
            .iter()
            .enumerate()
            .map(|(k, a)| if leaves.contains(&k) { element(a, i) } else { a.clone() })
            .collect();
        let expected = run(primal, inputs)?;
        let got: Vec<Array> = batched.iter().map(|a| element(a, i)).collect();
        if !close(&got, &expected, 1e-12, 1e-12) {
            return Err(format!(
                "batch element {i} is {}, but the function gives {}",
                describe(&got),
                describe(&expected)
            ));
        }
    }
    Ok(())
}

/// The argument structures of a program's parameters, rebuilt from its inputs.
pub fn param_specs(p: &Program) -> Vec<ad_ir::lower::spec::Spec> {
    use ad_ir::lower::spec::Spec;
    use ad_ir::Tree;
    fn build(t: &Tree, shapes: &mut impl Iterator<Item = Shape>) -> Spec {
        match t {
            Tree::Leaf | Tree::Opaque(_) => Spec::Array(shapes.next().unwrap_or_default()),
            Tree::Tuple(ts) => Spec::Tuple(ts.iter().map(|t| build(t, shapes)).collect()),
        }
    }
    let mut shapes = p.inputs.iter().map(|v| p.var_shape(*v));
    p.params.iter().map(|d| build(&d.tree, &mut shapes)).collect()
}

/// Checks a derived program end to end: numerically against its function, and its printed
/// text (loaded back as a script) against the program itself. The file is run for the
/// values of the top-level names the programs read.
pub fn verify_derivation(
    file: &str,
    text: &str,
    d: &crate::derive::Derivation,
    printed: &str,
) -> Result<(), String> {
    let render = |s: &Session, e: &[ad_syntax::Diagnostic]| ad_syntax::render(&s.sources, e, false);
    let mut s = Session::new(Box::new(crate::SharedBuf::default()));
    s.run_source(file, text).map_err(|e| render(&s, &e))?;
    let Some(req) = &d.request else { return Ok(()) };
    let derived = &d.program;
    check_derived(&s, &d.primal, derived, req, 7)?;
    // The printed program computes what the derived program computes. It is read as if it
    // were a file beside the script (its imports are relative to the script's directory).
    let beside = std::path::Path::new(file).with_file_name("<printed>");
    s.run_source(&beside.to_string_lossy(), printed).map_err(|e| render(&s, &e))?;
    let name = derived.name.clone();
    let f =
        s.global_value(&name).cloned().ok_or_else(|| format!("the printed text does not define `{name}`"))?;
    let specs = param_specs(derived);
    let n: usize = specs.iter().map(|x| x.leaves()).sum();
    let reloaded =
        ad_ir::lower::lower_function(&mut s, &f, &specs, &vec![None; n], ad_syntax::Span::DUMMY, &[])
            .map_err(|e| render(&s, &[e]))?;
    let mut rng = Rng::new(11);
    let x = random_point(derived, &mut rng);
    let a = s.run_program(derived, x.clone()).ok_or("the derived program could not run")?;
    let b = s.run_program(&reloaded.program, x).ok_or("the printed program could not run")?;
    if !close(&a, &b, 1e-12, 1e-12) {
        return Err(format!(
            "the printed program computes {} but the derived one {}",
            describe(&b),
            describe(&a)
        ));
    }
    Ok(())
}
