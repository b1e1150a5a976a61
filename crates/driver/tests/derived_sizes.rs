//! Derived programs are no longer than JAX's jaxprs for the same functions (equations
//! counted after simplification, nested calls flattened on JAX's side). The JAX counts are
//! from `jax.make_jaxpr` (JAX 0.4, x64), quoted in the issue and the book.

use ad_driver::derive::{lower_named, ShapeOpt};
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_ir::transform::{Mode, Request};

fn count(src: &str, f: &str, mode: Mode, wrt: Vec<usize>) -> usize {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("sizes.ad", src).unwrap();
    let shapes: Vec<ShapeOpt> = vec![];
    let p = lower_named(&mut s, f, &shapes).unwrap().program;
    let d = ad_autodiff::derive(&p, &Request { mode, wrt }).unwrap();
    d.eqns.len()
}

const MLP: &str =
    "def loss(W1: [784, 256], b1: [256], W2: [256, 10], b2: [10], X: [256, 784], Y: [256, 10]) {
  let h = tanh(X @ W1 + b1)
  cross_entropy(h @ W2 + b2, Y)
}";
const ROSEN: &str = "def rosen(x: [100]) = sum(100 * (x[1:] - x[:-1] ^ 2) ^ 2 + (1 - x[:-1]) ^ 2)";
const SINX: &str = "def f(x: [3]) = sum(sin(x) * x)";

#[test]
fn mlp_gradient_is_no_longer_than_jax() {
    let n = count(MLP, "loss", Mode::Grad { with_value: false }, vec![0, 1, 2, 3]);
    println!("MLP four-parameter gradient: {n} equations (JAX: 52)");
    assert!(n <= 52, "{n}");
}

#[test]
fn rosenbrock_gradient_and_hvp_are_no_longer_than_jax() {
    let g = count(ROSEN, "rosen", Mode::Grad { with_value: false }, vec![0]);
    let h = count(ROSEN, "rosen", Mode::Hvp, vec![0]);
    println!("Rosenbrock gradient: {g} equations (JAX: 26); HVP: {h} (JAX: 55)");
    assert!(g <= 26, "{g}");
    assert!(h <= 55, "{h}");
}

#[test]
fn sin_times_x_gradient_is_no_longer_than_jax() {
    let n = count(SINX, "f", Mode::Grad { with_value: false }, vec![0]);
    println!("sum(sin(x) * x) gradient: {n} equations (JAX: 9)");
    assert!(n <= 9, "{n}");
}
