//! Kernels against naive reference implementations, over every broadcasting combination
//! and both the allocating and the in-place paths.

use ad_eval::kernels::{self, elementwise, reduce, structure};
use ad_ir::prim::{Binary, Prim, Sel};
use ad_ir::shape::broadcast;
use ad_ir::{Array, Shape};

fn arr(shape: Shape, seed: u64) -> Array {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let data = (0..shape.size())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1000) as f64 / 100.0 - 5.0
        })
        .collect();
    Array::new(shape, data)
}

/// Element (i, j) of `a` broadcast to a padded [m, n].
fn at(a: &Array, i: usize, j: usize) -> f64 {
    let [m, n] = a.shape().padded2();
    a.data()[(if m == 1 { 0 } else { i }) * n + if n == 1 { 0 } else { j }]
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape::scalar(),
        Shape::vector(1),
        Shape::vector(4),
        Shape::matrix(1, 4),
        Shape::matrix(3, 1),
        Shape::matrix(3, 4),
        Shape::matrix(1, 1),
    ]
}

#[test]
fn binary_broadcasting_matches_reference() {
    type Op = (Binary, fn(f64, f64) -> f64);
    let ops: [Op; 3] =
        [(Binary::Add, |x, y| x + y), (Binary::Sub, |x, y| x - y), (Binary::Div, |x, y| x / y)];
    for (op, f) in ops {
        for (k, sa) in shapes().into_iter().enumerate() {
            for (l, sb) in shapes().into_iter().enumerate() {
                let Some(out) = broadcast(sa, sb) else { continue };
                let (a, b) = (arr(sa, k as u64), arr(sb, 100 + l as u64));
                let [m, n] = out.padded2();
                let expected: Vec<f64> = (0..m)
                    .flat_map(|i| (0..n).map(move |j| (i, j)))
                    .map(|(i, j)| f(at(&a, i, j), at(&b, i, j)))
                    .collect();
                // Shared operands: the allocating path.
                let shared = elementwise::binary(op, a.clone(), b.clone(), out);
                // Sole owners: the in-place path where shapes allow.
                let (a2, b2) = (Array::new(sa, a.data().to_vec()), Array::new(sb, b.data().to_vec()));
                let owned = elementwise::binary(op, a2, b2, out);
                assert_eq!(shared.shape(), out);
                assert_eq!(shared.data(), &expected[..], "{op:?} {sa} {sb}");
                assert_eq!(owned.data(), &expected[..], "{op:?} {sa} {sb} in place");
                // The inputs the caller still holds are untouched.
                assert_eq!(a.data(), arr(sa, k as u64).data());
            }
        }
    }
}

#[test]
fn where_broadcasts() {
    let c = Array::new(Shape::matrix(2, 1), vec![1.0, 0.0]);
    let a = Array::new(Shape::vector(3), vec![1.0, 2.0, 3.0]);
    let b = Array::scalar(-1.0);
    let r = elementwise::select(&c, &a, &b, Shape::matrix(2, 3));
    assert_eq!(r.data(), &[1.0, 2.0, 3.0, -1.0, -1.0, -1.0]);
}

#[test]
fn matmul_matches_reference_in_every_rank_combination() {
    for (m, k, n) in [(1, 1, 1), (3, 4, 5), (70, 80, 90), (200, 150, 100), (1, 300, 1), (5, 0, 3)] {
        let a = arr(Shape::matrix(m, k), 1);
        let b = arr(Shape::matrix(k, n), 2);
        let c = kernels::apply(&Prim::MatMul, vec![a.clone(), b.clone()], Shape::matrix(m, n));
        for i in 0..m {
            for j in 0..n {
                let e: f64 = (0..k).map(|p| a.data()[i * k + p] * b.data()[p * n + j]).sum();
                assert!((c.data()[i * n + j] - e).abs() < 1e-9 * (1.0 + e.abs()), "{m}x{k}x{n} at {i},{j}");
            }
        }
        let v = arr(Shape::vector(k), 3);
        let mv = kernels::apply(&Prim::MatMul, vec![a.clone(), v.clone()], Shape::vector(m));
        for i in 0..m {
            let e: f64 = (0..k).map(|p| a.data()[i * k + p] * v.data()[p]).sum();
            assert!((mv.data()[i] - e).abs() < 1e-9 * (1.0 + e.abs()));
        }
    }
}

#[test]
fn reductions_and_sum_to() {
    let a = Array::new(Shape::matrix(2, 3), vec![1.0, 5.0, 3.0, 4.0, 2.0, 6.0]);
    assert_eq!(reduce::sum(&a, None, Shape::scalar()).data(), &[21.0]);
    assert_eq!(reduce::sum(&a, Some(0), Shape::vector(3)).data(), &[5.0, 7.0, 9.0]);
    assert_eq!(reduce::sum(&a, Some(1), Shape::vector(2)).data(), &[9.0, 12.0]);
    assert_eq!(reduce::amax(&a, Some(0), Shape::vector(3)).data(), &[4.0, 5.0, 6.0]);
    assert_eq!(reduce::argmax(&a, Some(1), Shape::vector(2)).data(), &[1.0, 2.0]);
    assert_eq!(reduce::sum_to(&a, Shape::matrix(2, 1)).data(), &[9.0, 12.0]);
    assert_eq!(reduce::sum_to(&a, Shape::matrix(1, 3)).data(), &[5.0, 7.0, 9.0]);
    assert_eq!(reduce::sum_to(&a, Shape::scalar()).data(), &[21.0]);
    let long: Vec<f64> = (0..1001).map(|i| i as f64).collect();
    assert_eq!(reduce::sum_slice(&long), 500500.0);
}

#[test]
fn structure_kernels() {
    let a = Array::new(Shape::matrix(2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let t = structure::transpose(&a, Shape::matrix(3, 2));
    assert_eq!(t.data(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let big = arr(Shape::matrix(70, 45), 9);
    let bt = structure::transpose(&structure::transpose(&big, Shape::matrix(45, 70)), Shape::matrix(70, 45));
    assert_eq!(bt.data(), big.data());
    let s = structure::index(&a, &[Sel::Range(0, 2), Sel::At(1)], Shape::vector(2));
    assert_eq!(s.data(), &[2.0, 5.0]);
    let p =
        structure::pad(&Array::new(Shape::matrix(1, 1), vec![7.0]), &[(1, 0), (0, 1)], Shape::matrix(2, 2));
    assert_eq!(p.data(), &[0.0, 0.0, 7.0, 0.0]);
    let c = structure::concat(&a, &a, 1, Shape::matrix(2, 6));
    assert_eq!(c.data(), &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 4.0, 5.0, 6.0]);
    let b = structure::broadcast_to(&Array::new(Shape::matrix(2, 1), vec![1.0, 2.0]), Shape::matrix(2, 2));
    assert_eq!(b.data(), &[1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn solve_inverts_products() {
    let a = Array::new(Shape::matrix(3, 3), vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0]);
    let x = Array::new(Shape::matrix(3, 2), vec![1.0, -2.0, 0.5, 3.0, 2.0, 1.0]);
    let b = kernels::apply(&Prim::MatMul, vec![a.clone(), x.clone()], Shape::matrix(3, 2));
    let y = kernels::apply(&Prim::Solve, vec![a, b], Shape::matrix(3, 2));
    for (u, v) in y.data().iter().zip(x.data()) {
        assert!((u - v).abs() < 1e-12);
    }
}
