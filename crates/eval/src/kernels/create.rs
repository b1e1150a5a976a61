//! Kernels that create arrays from static parameters or labels.

use ad_ir::{Array, Shape};

pub fn eye(n: usize) -> Array {
    let mut data = vec![0.0; n * n];
    for i in 0..n {
        data[i * n + i] = 1.0;
    }
    Array::new(Shape::matrix(n, n), data)
}

pub fn arange(n: usize) -> Array {
    Array::new(Shape::vector(n), (0..n).map(|i| i as f64).collect())
}

pub fn linspace(a: f64, b: f64, n: usize) -> Array {
    let data = match n {
        0 => vec![],
        1 => vec![a],
        _ => {
            (0..n).map(|i| if i + 1 == n { b } else { a + (b - a) * (i as f64) / ((n - 1) as f64) }).collect()
        }
    };
    Array::new(Shape::vector(n), data)
}

/// Rows of zeros with a 1 at each label's position; a label that is not one of 0..k (as in
/// JAX) gives a row of zeros.
pub fn one_hot(labels: &Array, k: usize, out: Shape) -> Array {
    let mut data = vec![0.0; out.size()];
    for (i, &l) in labels.data().iter().enumerate() {
        if l >= 0.0 && l == l.trunc() && (l as usize) < k {
            data[i * k + l as usize] = 1.0;
        }
    }
    Array::new(out, data)
}
