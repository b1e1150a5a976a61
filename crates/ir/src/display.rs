//! Printing values as `.ad` literals (DESIGN §1, "Printing values"): up to P significant
//! digits, trailing zeros dropped, exponent form outside 1e-4 ≤ |x| < 1e16, matrices one row
//! per line with aligned columns, and long axes elided around `...`.

use crate::array::Array;

/// Default number of significant digits.
pub const DEFAULT_PRECISION: usize = 6;

/// Arrays with more elements than this print only the first and last three of each axis.
const ELIDE_ABOVE: usize = 1000;
const EDGE: usize = 3;

/// A number with `p` significant digits (1 ≤ p ≤ 17).
pub fn fmt_num(x: f64, p: usize) -> String {
    let p = p.clamp(1, 17);
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Round to p significant digits first; the exponent after rounding decides the form.
    let sci = format!("{:.*e}", p - 1, x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let s = if exp >= 0 {
            let e = exp as usize;
            if digits.len() > e + 1 {
                format!("{}.{}", &digits[..e + 1], &digits[e + 1..])
            } else {
                format!("{}{}", digits, "0".repeat(e + 1 - digits.len()))
            }
        } else {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        };
        format!("{sign}{}", strip_zeros(&s))
    } else {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits.clone() };
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{}e{es}{:02}", strip_zeros(&m), exp.abs())
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Positions of one axis to show: all of them, or the first and last three with a gap
/// (`None`) between.
fn axis_positions(n: usize, elide: bool) -> Vec<Option<usize>> {
    if elide && n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// An array as an `.ad` literal: nested brackets at every rank, the innermost rows aligned
/// in columns (one width per column position across the whole array), a blank line between
/// blocks of rank 3 and more (two between blocks of rank 4, ...), and the first and last
/// three positions of each axis around `...` past 1000 elements.
pub fn fmt_array(a: &Array, p: usize) -> String {
    let shape = a.shape();
    let elide = shape.size() > ELIDE_ABOVE;
    let dims = shape.dims();
    match dims {
        [] => fmt_num(a.data()[0], p),
        [n] => {
            let items: Vec<String> = axis_positions(*n, elide)
                .into_iter()
                .map(|j| j.map_or_else(|| "...".to_string(), |j| fmt_num(a.data()[j], p)))
                .collect();
            format!("[{}]", items.join(", "))
        }
        _ => {
            // Column widths over every row shown.
            let n = dims[dims.len() - 1];
            let cols = axis_positions(n, elide);
            let mut widths = vec![0usize; cols.len()];
            let rows = shape.size() / n.max(1);
            for r in 0..rows {
                for (w, j) in widths.iter_mut().zip(&cols) {
                    let text = j.map_or(3, |j| fmt_num(a.data()[r * n + j], p).chars().count());
                    *w = (*w).max(text);
                }
            }
            let layout = Layout { a, p, elide, cols: &cols, widths: &widths };
            layout.block(dims, 0, 0)
        }
    }
}

/// What rendering the blocks of an array of rank 2 or more needs.
struct Layout<'a> {
    a: &'a Array,
    p: usize,
    elide: bool,
    cols: &'a [Option<usize>],
    widths: &'a [usize],
}

impl Layout<'_> {
    /// The block with dimensions `dims` starting at element `offset`, whose opening bracket
    /// is at column `depth`.
    fn block(&self, dims: &[usize], offset: usize, depth: usize) -> String {
        let [n] = dims else {
            if dims[0] == 0 {
                return "[]".into();
            }
            let stride: usize = dims[1..].iter().product();
            let items: Vec<String> = axis_positions(dims[0], self.elide)
                .into_iter()
                .map(|i| {
                    i.map_or_else(
                        || "...".to_string(),
                        |i| self.block(&dims[1..], offset + i * stride, depth + 1),
                    )
                })
                .collect();
            // Rows of no elements stay on one line: `[[], [], []]`.
            let sep = if dims.last() == Some(&0) {
                ", ".to_string()
            } else {
                format!(",\n{}{}", "\n".repeat(dims.len() - 2), " ".repeat(depth + 1))
            };
            return format!("[{}]", items.join(&sep));
        };
        if *n == 0 {
            return "[]".into();
        }
        let last = self.cols.len() - 1;
        let mut line = String::from("[");
        for (c, (j, w)) in self.cols.iter().zip(self.widths).enumerate() {
            let text = j.map_or_else(|| "...".to_string(), |j| fmt_num(self.a.data()[offset + j], self.p));
            if c == last {
                line.push_str(&format!("{text:<w$}"));
            } else {
                let with_comma = format!("{text},");
                line.push_str(&format!("{with_comma:<0$}  ", w + 1));
            }
        }
        line.push(']');
        line
    }
}

/// A number written into program text so that it reads back as exactly the same `f64`.
pub fn program_literal(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if x == x.trunc() && x.abs() < 1e15 {
        if x == 0.0 && x.is_sign_negative() {
            "-0".into()
        } else {
            format!("{}", x as i64)
        }
    } else {
        // Rust's Debug form is the shortest string that reads back to the same value.
        format!("{x:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape;

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(3.5, 6), "3.5");
        assert_eq!(fmt_num(1.5e-7, 6), "1.5e-07");
        assert_eq!(fmt_num(0.0001, 6), "0.0001");
        assert_eq!(fmt_num(1.0 / 3.0, 6), "0.333333");
        assert_eq!(fmt_num(2.0 / 3.0, 3), "0.667");
        assert_eq!(fmt_num(1234567.0, 6), "1234570");
        assert_eq!(fmt_num(1e16, 6), "1e+16");
        assert_eq!(fmt_num(-2.5e20, 6), "-2.5e+20");
        assert_eq!(fmt_num(100.0, 6), "100");
        assert_eq!(fmt_num(0.1 + 0.2, 17), "0.30000000000000004");
        assert_eq!(fmt_num(f64::NAN, 6), "nan");
        assert_eq!(fmt_num(f64::NEG_INFINITY, 6), "-inf");
        assert_eq!(fmt_num(9.9999999, 6), "10");
    }

    #[test]
    fn matrices_align() {
        let a = Array::new(Shape::matrix(2, 2), vec![1.0, 2.5, -3.0, 4.0]);
        assert_eq!(fmt_array(&a, 6), "[[1,   2.5],\n [-3,  4  ]]");
        let v = Array::new(Shape::vector(3), vec![1.0, 2.5, -3.0]);
        assert_eq!(fmt_array(&v, 6), "[1, 2.5, -3]");
    }

    #[test]
    fn long_arrays_elide() {
        let v = Array::new(Shape::vector(2000), (0..2000).map(|i| i as f64).collect());
        assert_eq!(fmt_array(&v, 6), "[0, 1, 2, ..., 1997, 1998, 1999]");
        let m = Array::new(Shape::matrix(100, 100), (0..10000).map(|i| (i % 100) as f64).collect());
        let s = fmt_array(&m, 6);
        assert_eq!(s.lines().count(), 7);
        assert!(s.starts_with("[[0,  1,  2,  ...,  97,  98,  99],"), "{s}");
        assert_eq!(s.lines().nth(3), Some(" ...,"));
    }

    #[test]
    fn higher_ranks_nest_with_blank_lines() {
        let a =
            Array::new(Shape::from_dims(&[2, 2, 2]).unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 80.0]);
        assert_eq!(fmt_array(&a, 6), "[[[1,  2 ],\n  [3,  4 ]],\n\n [[5,  6 ],\n  [7,  80]]]");
        let b = Array::new(Shape::from_dims(&[1, 1, 1, 2]).unwrap(), vec![1.0, 2.0]);
        assert_eq!(fmt_array(&b, 6), "[[[[1,  2]]]]");
        let e = Array::new(Shape::from_dims(&[2, 0, 3]).unwrap(), vec![]);
        assert_eq!(fmt_array(&e, 6), "[[],\n\n []]");
        let big = Array::new(Shape::from_dims(&[10, 10, 20]).unwrap(), (0..2000).map(|i| i as f64).collect());
        let s = fmt_array(&big, 6);
        assert!(s.starts_with("[[[0,     1,     2,     ...,  17,    18,    19  ],"), "{s}");
        assert!(s.contains("\n\n ...,\n\n"), "{s}");
    }

    #[test]
    fn literals_round_trip() {
        for x in [0.1, 1e-7, 3.0, -2.0, 1.0 / 3.0, 6.02e23, 1e300] {
            assert_eq!(program_literal(x).parse::<f64>().unwrap(), x);
        }
        assert_eq!(program_literal(3.0), "3");
    }
}
