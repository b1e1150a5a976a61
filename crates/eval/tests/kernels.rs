//! Kernels against naive reference implementations, over every broadcasting combination
//! and both the allocating and the in-place paths.

use ad_eval::kernels::{self, elementwise, reduce, structure};
use ad_ir::prim::{Axes, Binary, Prim, Sel, Unary};
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

/// Every unary function, and an array with a number, on shared operands (the result goes
/// into a new buffer, written without zeroing it first: every element must be written) and
/// on sole owners (in place), at lengths around the vector widths and past the size that
/// runs on all cores; each element the scalar function's, to the bit.
#[test]
fn unary_and_number_operations_write_every_element() {
    for n in [0, 1, 7, 8, 9, 100, 1027, 40_000] {
        let a = arr(Shape::vector(n), n as u64);
        for &op in Unary::ALL {
            let expected: Vec<u64> =
                a.data().iter().map(|&x| ad_ir::scalar::unary(op, x).to_bits()).collect();
            let bits = |r: &Array| r.data().iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
            let shared = elementwise::unary(op, a.clone());
            assert_eq!(bits(&shared), expected, "{op:?} shared, n = {n}");
            let owned = elementwise::unary(op, Array::new(a.shape(), a.data().to_vec()));
            assert_eq!(bits(&owned), expected, "{op:?} in place, n = {n}");
        }
        let two = Array::scalar(2.5);
        let sum = elementwise::binary(Binary::Add, a.clone(), two.clone(), a.shape());
        let expected: Vec<f64> = a.data().iter().map(|x| x + 2.5).collect();
        assert_eq!(sum.data(), &expected[..], "array + number, n = {n}");
        let quotient = elementwise::binary(Binary::Div, two, a.clone(), a.shape());
        let expected: Vec<f64> = a.data().iter().map(|x| 2.5 / x).collect();
        assert_eq!(quotient.data(), &expected[..], "number / array, n = {n}");
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
    // Inner dimension 1 (outer products, written directly): small, empty, and large enough
    // to be written on all cores; their entries are single products, so exact.
    let outer = [(64, 1, 16), (3, 1, 0), (0, 1, 4), (300, 1, 300)];
    for (m, k, n) in
        [(1, 1, 1), (3, 4, 5), (70, 80, 90), (200, 150, 100), (1, 300, 1), (5, 0, 3)].into_iter().chain(outer)
    {
        let a = arr(Shape::matrix(m, k), 1);
        let b = arr(Shape::matrix(k, n), 2);
        let c = kernels::apply(&Prim::MatMul, vec![a.clone(), b.clone()], Shape::matrix(m, n));
        assert_eq!(c.data().len(), m * n);
        for i in 0..m {
            for j in 0..n {
                let e: f64 = (0..k).map(|p| a.data()[i * k + p] * b.data()[p * n + j]).sum();
                assert!((c.data()[i * n + j] - e).abs() < 1e-9 * (1.0 + e.abs()), "{m}x{k}x{n} at {i},{j}");
                if k == 1 {
                    assert_eq!(c.data()[i * n + j], e, "{m}x{k}x{n} at {i},{j}");
                }
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

/// A stack of products too small for more than one core each, but many: they are shared
/// out between the cores, and each must give the bits it gives alone (plain and with
/// transposed operands, with a broadcast stack).
#[test]
fn stacked_products_shared_between_cores_match_each_product_alone() {
    use ad_eval::kernels::linalg::matmul_transposed;
    let (m, k, n) = (60, 70, 50);
    for (stack_a, stack_b) in [(vec![40], vec![40]), (vec![8, 5], vec![5])] {
        let mut da = stack_a.clone();
        da.extend([m, k]);
        let mut db = stack_b.clone();
        db.extend([k, n]);
        let (a, b) = (arr(sh(&da), 7), arr(sh(&db), 8));
        let out = ad_ir::prim::matmul_shape(a.shape(), b.shape()).unwrap();
        let got = kernels::apply(&Prim::MatMul, vec![a.clone(), b.clone()], out);
        // The same products with a's stack transposed in memory, read through the flag.
        let mut dt = stack_a.clone();
        dt.extend([k, m]);
        let perm: Vec<usize> = (0..da.len() - 2).chain([da.len() - 1, da.len() - 2]).collect();
        let at = structure::permute(&a, &perm, sh(&dt));
        let got_t = matmul_transposed(&at, &b, true, false, out);
        let batch: usize = out.dims()[..out.rank() - 2].iter().product();
        let b_batch: usize = stack_b.iter().product();
        for e in 0..batch {
            let ai = Array::new(Shape::matrix(m, k), a.data()[e * m * k..(e + 1) * m * k].to_vec());
            let be = e % b_batch;
            let bi = Array::new(Shape::matrix(k, n), b.data()[be * k * n..(be + 1) * k * n].to_vec());
            let alone = kernels::apply(&Prim::MatMul, vec![ai, bi], Shape::matrix(m, n));
            let part = &got.data()[e * m * n..(e + 1) * m * n];
            assert_eq!(part, alone.data(), "stack {stack_a:?} @ {stack_b:?}, element {e}");
            let part_t = &got_t.data()[e * m * n..(e + 1) * m * n];
            for (g, w) in part_t.iter().zip(alone.data()) {
                assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "transposed, element {e}");
            }
        }
    }
}

/// A product reading transposed operands (the interpreter's fused transposes) equals the
/// product of the transposes, small and large, single and stacked (with a broadcast stack).
#[test]
fn transposed_operands_match_materialised_transposes() {
    use ad_eval::kernels::linalg::matmul_transposed;
    for (m, k, n) in
        [(3, 4, 5), (70, 80, 90), (1, 100, 70), (65, 64, 66), (16, 64, 1), (2, 64, 16), (64, 7, 1), (9, 6, 3)]
    {
        for (stack_a, stack_b) in
            [(vec![], vec![]), (vec![3], vec![3]), (vec![2, 3], vec![1]), (vec![], vec![4])]
        {
            for (ta, tb) in [(true, false), (false, true), (true, true)] {
                let dims = |stack: &[usize], r: usize, c: usize, t: bool| {
                    let mut d = stack.to_vec();
                    d.extend(if t { [c, r] } else { [r, c] });
                    sh(&d)
                };
                let (sa, sb) = (dims(&stack_a, m, k, ta), dims(&stack_b, k, n, tb));
                let (a, b) = (arr(sa, 5), arr(sb, 6));
                let plain = |x: &Array, t: bool| {
                    let s = x.shape();
                    if !t {
                        return x.clone();
                    }
                    let mut d = s.dims().to_vec();
                    let r = d.len();
                    d.swap(r - 2, r - 1);
                    structure::transpose(x, sh(&d))
                };
                let (pa, pb) = (plain(&a, ta), plain(&b, tb));
                let out = ad_ir::prim::matmul_shape(pa.shape(), pb.shape()).unwrap();
                let want = kernels::apply(&Prim::MatMul, vec![pa, pb], out);
                let got = matmul_transposed(&a, &b, ta, tb, out);
                assert_eq!(got.shape(), out);
                // Small products read in place must give the bits the product of the
                // materialised transposes gives (planned loops compute the latter).
                let exact = m * n * k <= 64 * 64 || m == 1 || n == 1;
                for (g, w) in got.data().iter().zip(want.data()) {
                    let ok = if exact {
                        g.to_bits() == w.to_bits()
                    } else {
                        (g - w).abs() <= 1e-12 * (1.0 + w.abs())
                    };
                    assert!(ok, "{m}x{k}x{n} {stack_a:?} {stack_b:?} {ta} {tb}: {g} against {w}");
                }
            }
        }
    }
}

#[test]
fn reductions_and_sum_to() {
    let a = Array::new(Shape::matrix(2, 3), vec![1.0, 5.0, 3.0, 4.0, 2.0, 6.0]);
    assert_eq!(reduce::sum(&a, Axes::all(2), Shape::scalar()).data(), &[21.0]);
    assert_eq!(reduce::sum(&a, Axes::one(0), Shape::vector(3)).data(), &[5.0, 7.0, 9.0]);
    assert_eq!(reduce::sum(&a, Axes::one(1), Shape::vector(2)).data(), &[9.0, 12.0]);
    assert_eq!(reduce::amax(&a, Axes::one(0), Shape::vector(3)).data(), &[4.0, 5.0, 6.0]);
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

/// A sum of pads is the pads added left to right, to the bit: over ranks 1 to 3, widths on
/// every axis, an axis of length 0, negative zeros (a zero added to -0 is +0) and NaNs;
/// and the same written transposed.
#[test]
fn pad_sums_are_the_pads_added_in_order() {
    let dims = |d: &[usize]| Shape::from_dims(d).unwrap();
    // (the sum's dims, each term's widths)
    type Case<'a> = (&'a [usize], &'a [&'a [(usize, usize)]]);
    let cases: [Case; 6] = [
        (&[9], &[&[(2, 0)], &[(0, 2)], &[(1, 1)]]),
        // Whole tiles of eight rows by eight columns (moved through vector registers where
        // the processor has AVX-512) and ragged ones, in a batch of two.
        (&[2, 19, 21], &[&[(0, 0), (0, 0), (0, 1)], &[(0, 0), (1, 0), (3, 0)]]),
        (&[4, 5], &[&[(0, 0), (0, 0)], &[(1, 0), (2, 0)]]),
        (&[3, 4, 6], &[&[(1, 0), (0, 2), (3, 0)], &[(0, 1), (1, 1), (0, 3)]]),
        (&[3, 0], &[&[(1, 0), (0, 0)], &[(0, 1), (0, 0)]]),
        (&[2, 19, 5], &[&[(0, 0), (2, 1), (0, 1)], &[(1, 0), (0, 3), (1, 0)]]),
    ];
    for (k, (out, widths)) in cases.into_iter().enumerate() {
        let out = dims(out);
        let terms: Vec<Array> = widths
            .iter()
            .enumerate()
            .map(|(t, w)| {
                let d: Vec<usize> =
                    out.dims().iter().zip(w.iter()).map(|(n, (lo, hi))| n - lo - hi).collect();
                let mut a = arr(dims(&d), (k * 10 + t) as u64);
                // Negative zeros and a NaN among the values.
                let data: Vec<f64> = a
                    .data()
                    .iter()
                    .enumerate()
                    .map(|(i, x)| match i % 7 {
                        _ if t == 0 && i % 2 == 0 => -0.0,
                        0 => -0.0,
                        3 if t == 1 => f64::NAN,
                        _ => *x,
                    })
                    .collect();
                a = Array::new(a.shape(), data);
                a
            })
            .collect();
        let padded: Vec<Array> = terms.iter().zip(widths).map(|(a, w)| structure::pad(a, w, out)).collect();
        let mut expected = padded[0].clone();
        for p in &padded[1..] {
            expected = elementwise::binary(Binary::Add, expected, p.clone(), out);
        }
        let widths: Vec<Vec<(usize, usize)>> = widths.iter().map(|w| w.to_vec()).collect();
        let got = structure::pad_sum(&terms, &widths, out, false);
        let bits = |a: &Array| a.data().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&expected), "case {k}");
        // Written transposed: the sum's last two axes swapped.
        let mut t = out.dims().to_vec();
        let r = t.len();
        if r >= 2 {
            t.swap(r - 2, r - 1);
        }
        let got = structure::pad_sum(&terms, &widths, out, true);
        assert_eq!(got.shape(), dims(&t), "case {k}");
        assert_eq!(bits(&got), bits(&structure::transpose(&expected, dims(&t))), "case {k} transposed");
    }
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

/// Reference walks over arrays of any rank: the row-major position of a multi-index, and
/// every multi-index of a shape in order.
fn position(s: Shape, idx: &[usize]) -> usize {
    idx.iter().zip(s.strides()).map(|(i, st)| i * st).sum()
}

fn indices(s: Shape) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &d in s.dims() {
        out = out.into_iter().flat_map(|p| (0..d).map(move |i| [p.clone(), vec![i]].concat())).collect();
    }
    out
}

/// Element of `a` at the multi-index `idx` of a result it is broadcast to.
fn at_broadcast(a: &Array, idx: &[usize]) -> f64 {
    let s = a.shape();
    let lead = idx.len() - s.rank();
    let own: Vec<usize> = (0..s.rank()).map(|j| if s.dim(j) == 1 { 0 } else { idx[lead + j] }).collect();
    a.data()[position(s, &own)]
}

fn sh(d: &[usize]) -> Shape {
    Shape::from_dims(d).unwrap()
}

#[test]
fn rank_n_broadcasting_matches_reference() {
    let shapes =
        [sh(&[]), sh(&[4]), sh(&[3, 1]), sh(&[2, 1, 4]), sh(&[2, 3, 4]), sh(&[1, 3, 1]), sh(&[5, 2, 3, 4])];
    for (k, &sa) in shapes.iter().enumerate() {
        for (l, &sb) in shapes.iter().enumerate() {
            let Some(out) = broadcast(sa, sb) else { continue };
            let (a, b) = (arr(sa, k as u64), arr(sb, 50 + l as u64));
            let expected: Vec<f64> =
                indices(out).iter().map(|i| at_broadcast(&a, i) - at_broadcast(&b, i)).collect();
            let got = elementwise::binary(Binary::Sub, a.clone(), b.clone(), out);
            assert_eq!(got.data(), &expected[..], "{sa} - {sb}");
            let c = arr(sa, 7);
            let cond = Array::new(sa, c.data().iter().map(|x| f64::from(*x > 0.0)).collect());
            let sel = elementwise::select(&cond, &a, &b, out);
            let expected: Vec<f64> = indices(out)
                .iter()
                .map(
                    |i| if at_broadcast(&cond, i) != 0.0 { at_broadcast(&a, i) } else { at_broadcast(&b, i) },
                )
                .collect();
            assert_eq!(sel.data(), &expected[..], "where {sa} {sb}");
            if sa.rank() <= out.rank() {
                let bt = structure::broadcast_to(&a, out);
                let expected: Vec<f64> = indices(out).iter().map(|i| at_broadcast(&a, i)).collect();
                assert_eq!(bt.data(), &expected[..], "broadcast_to {sa} {out}");
            }
        }
    }
}

#[test]
fn rank_n_reductions_match_reference() {
    let s = sh(&[2, 3, 4, 5]);
    let a = arr(s, 3);
    for mask in 0u8..16 {
        let axes_list: Vec<usize> = (0..4).filter(|i| mask & (1 << i) != 0).collect();
        let axes = Axes::of(&axes_list);
        let out = axes.reduce(s);
        let mut sum = vec![0.0; out.size()];
        let mut max = vec![f64::NEG_INFINITY; out.size()];
        for idx in indices(s) {
            let kept: Vec<usize> = (0..4).filter(|i| !axes.contains(*i)).map(|i| idx[i]).collect();
            let o = position(out, &kept);
            let x = a.data()[position(s, &idx)];
            sum[o] += x;
            max[o] = max[o].max(x);
        }
        let got = reduce::sum(&a, axes, out);
        for (u, v) in got.data().iter().zip(&sum) {
            assert!((u - v).abs() < 1e-12, "sum over {axes_list:?}");
        }
        // Over leading axes the terms are added in the reference's order: the same bits.
        if axes_list.iter().enumerate().all(|(k, &i)| k == i) && axes_list.len() < 4 {
            assert_eq!(got.data(), &sum[..], "sum over leading axes {axes_list:?}");
        }
        assert_eq!(reduce::amax(&a, axes, out).data(), &max[..], "amax over {axes_list:?}");
        // sum_to the shape with the reduced axes kept as 1s.
        let kept = axes.keep(s);
        let st = reduce::sum_to(&a, kept);
        assert_eq!(st.shape(), kept);
        for (u, v) in st.data().iter().zip(&sum) {
            assert!((u - v).abs() < 1e-12, "sum_to {kept}");
        }
    }
    for axis in 0..4 {
        let out = s.remove_axis(axis);
        let got = reduce::argmax(&a, Some(axis), out);
        for (o, idx) in indices(out).iter().enumerate() {
            let along: Vec<f64> = (0..s.dim(axis))
                .map(|j| {
                    let mut full = idx.clone();
                    full.insert(axis, j);
                    a.data()[position(s, &full)]
                })
                .collect();
            let best = along.iter().enumerate().fold(0, |b, (j, x)| if *x > along[b] { j } else { b });
            assert_eq!(got.data()[o], best as f64, "argmax along {axis}");
        }
    }
}

#[test]
fn rank_n_structure_matches_reference() {
    let s = sh(&[3, 4, 5]);
    let a = arr(s, 11);
    // Permutations.
    for perm in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1], [2, 0, 1], [1, 2, 0]] {
        let out = sh(&perm.iter().map(|&p| s.dim(p)).collect::<Vec<_>>());
        let got = structure::permute(&a, &perm, out);
        for idx in indices(out) {
            let mut src = [0; 3];
            for (i, &p) in perm.iter().enumerate() {
                src[p] = idx[i];
            }
            assert_eq!(got.data()[position(out, &idx)], a.data()[position(s, &src)], "{perm:?}");
        }
    }
    let t = structure::transpose(&a, sh(&[3, 5, 4]));
    assert_eq!(t.data(), structure::permute(&a, &[0, 2, 1], sh(&[3, 5, 4])).data());
    // Indexing, then padding back.
    let sels = [Sel::Range(1, 3), Sel::At(2), Sel::Range(0, 5)];
    let got = structure::index(&a, &sels, sh(&[2, 5]));
    for i in 0..2 {
        for k in 0..5 {
            assert_eq!(got.data()[i * 5 + k], a.data()[position(s, &[i + 1, 2, k])]);
        }
    }
    let block = structure::index(&a, &[Sel::Range(1, 3), Sel::Range(1, 3), Sel::Range(2, 4)], sh(&[2, 2, 2]));
    let padded = structure::pad(&block, &[(1, 0), (1, 1), (2, 1)], s);
    for idx in indices(s) {
        let inside = (1..3).contains(&idx[0]) && (1..3).contains(&idx[1]) && (2..4).contains(&idx[2]);
        let expected = if inside { a.data()[position(s, &idx)] } else { 0.0 };
        assert_eq!(padded.data()[position(s, &idx)], expected, "{idx:?}");
    }
    // Concatenation along each axis.
    for axis in 0..3 {
        let mut d = s.dims().to_vec();
        d[axis] *= 2;
        let out = sh(&d);
        let got = structure::concat(&a, &a, axis, out);
        for idx in indices(out) {
            let mut src = idx.clone();
            src[axis] %= s.dim(axis);
            assert_eq!(got.data()[position(out, &idx)], a.data()[position(s, &src)], "axis {axis}");
        }
    }
}

#[test]
fn batched_matmul_matches_reference() {
    let cases = [
        (sh(&[2, 3, 4]), sh(&[2, 4, 5])),
        (sh(&[2, 3, 4]), sh(&[4, 5])),
        (sh(&[3, 4]), sh(&[2, 4, 5])),
        (sh(&[2, 1, 3, 4]), sh(&[3, 4, 2])),
        (sh(&[2, 3, 4]), sh(&[4])),
        (sh(&[4]), sh(&[2, 4, 5])),
    ];
    for (k, (sa, sb)) in cases.into_iter().enumerate() {
        let out = ad_ir::prim::matmul_shape(sa, sb).unwrap();
        let (a, b) = (arr(sa, k as u64), arr(sb, 30 + k as u64));
        // Reference: promote vectors, broadcast the batch, sum over the inner axis.
        let a2 = if sa.rank() == 1 { a.reshaped(sh(&[1, sa.dim(0)])) } else { a.clone() };
        let b2 = if sb.rank() == 1 { b.reshaped(sh(&[sb.dim(0), 1])) } else { b.clone() };
        let full = ad_ir::prim::matmul_shape(a2.shape(), b2.shape()).unwrap();
        let kk = a2.shape().dim(a2.shape().rank() - 1);
        let expected: Vec<f64> = indices(full)
            .iter()
            .map(|idx| {
                let r = idx.len();
                (0..kk)
                    .map(|p| {
                        let ia = [&idx[..r - 1], &[p]].concat();
                        let ib = [&idx[..r - 2], &[p], &idx[r - 1..]].concat();
                        at_broadcast(&a2, &ia) * at_broadcast(&b2, &ib)
                    })
                    .sum()
            })
            .collect();
        let got = kernels::apply(&Prim::MatMul, vec![a, b], out);
        assert_eq!(got.shape(), out);
        for (u, v) in got.data().iter().zip(&expected) {
            assert!((u - v).abs() < 1e-9 * (1.0 + v.abs()), "{sa} @ {sb}");
        }
    }
}

/// Transposes of matrices larger than a cache block, with ragged edges in both directions
/// (tiles of four rows and the rows left over), and of stacks of them.
#[test]
fn transposes_of_every_size_match_reference() {
    for dims in [[37, 70], [64, 33], [4, 4], [3, 9], [1, 9], [9, 1], [0, 3], [33, 32], [2, 5]] {
        for stack in [vec![], vec![2]] {
            let mut d = stack.clone();
            d.extend(dims);
            let s = sh(&d);
            let a = arr(s, 21);
            let r = d.len();
            let mut t = d.clone();
            t.swap(r - 2, r - 1);
            let out = sh(&t);
            let got = structure::transpose(&a, out);
            for idx in indices(out) {
                let mut src = idx.clone();
                src.swap(r - 2, r - 1);
                assert_eq!(got.data()[position(out, &idx)], a.data()[position(s, &src)], "{d:?} at {idx:?}");
            }
        }
    }
}

/// Zero padding, any widths on every axis (none, before, after, both), of arrays with and
/// without elements, against zeros with the array copied in.
#[test]
fn padding_matches_reference() {
    let widths = [(0, 0), (2, 0), (0, 3), (1, 2)];
    for dims in [vec![5], vec![3, 4], vec![2, 3, 4], vec![2, 0], vec![0, 3]] {
        let s = sh(&dims);
        let a = arr(s, 33);
        for w0 in widths {
            for w1 in widths {
                let w: Vec<(usize, usize)> =
                    (0..dims.len()).map(|i| if i + 1 == dims.len() { w1 } else { w0 }).collect();
                let out = sh(&dims.iter().zip(&w).map(|(d, (lo, hi))| d + lo + hi).collect::<Vec<_>>());
                let got = structure::pad(&a, &w, out);
                assert_eq!(got.data().len(), out.size());
                for idx in indices(out) {
                    let src: Option<Vec<usize>> = idx
                        .iter()
                        .zip(&w)
                        .zip(&dims)
                        .map(|((&i, &(lo, _)), &d)| i.checked_sub(lo).filter(|&j| j < d))
                        .collect();
                    let want = src.map_or(0.0, |src| a.data()[position(s, &src)]);
                    assert_eq!(got.data()[position(out, &idx)], want, "{dims:?} {w:?} at {idx:?}");
                }
            }
        }
    }
}
