//! Static shapes of rank 0, 1 or 2 and NumPy broadcasting between them.

use std::fmt;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Arrays are never larger than this many elements (2^31, 16 GiB of f64) unless the memory
/// budget says otherwise.
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 31;

/// The largest array, in elements, that shapes may describe: the memory budget divided by
/// the size of an `f64`. Anything larger is refused with a located error before any
/// allocation is attempted. A process-wide setting, like the allocator it protects: the
/// command line sets it once from the machine's memory or `--ad-memory`.
static MAX_ELEMENTS: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_ELEMENTS);

/// Sets the memory budget, in bytes, that one array may use.
pub fn set_memory_budget(bytes: u64) {
    let elements = (bytes / 8).clamp(1, usize::MAX as u64 / 2) as usize;
    MAX_ELEMENTS.store(elements, Ordering::Relaxed);
}

/// The largest number of elements an array may have.
pub fn max_elements() -> usize {
    MAX_ELEMENTS.load(Ordering::Relaxed)
}

/// A number of bytes for people: `1.5 GiB`, `640 KiB`, `12 B`.
pub fn human_bytes(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = bytes;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{x:.0} {}", units[u])
    } else {
        format!("{x:.3} {}", units[u]).replace(".000 ", " ")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    rank: u8,
    dims: [usize; 2],
}

impl Shape {
    pub const SCALAR: Shape = Shape { rank: 0, dims: [0, 0] };

    pub fn scalar() -> Shape {
        Shape::SCALAR
    }

    pub fn vector(n: usize) -> Shape {
        Shape { rank: 1, dims: [n, 0] }
    }

    pub fn matrix(m: usize, n: usize) -> Shape {
        Shape { rank: 2, dims: [m, n] }
    }

    /// A shape from a list of dimensions; `None` if the rank exceeds 2.
    pub fn from_dims(dims: &[usize]) -> Option<Shape> {
        match *dims {
            [] => Some(Shape::scalar()),
            [n] => Some(Shape::vector(n)),
            [m, n] => Some(Shape::matrix(m, n)),
            _ => None,
        }
    }

    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }

    pub fn dim(&self, axis: usize) -> usize {
        self.dims()[axis]
    }

    /// Number of elements. Shapes are validated against [`max_elements`] when built from user
    /// input, so this cannot overflow for shapes that exist.
    pub fn size(&self) -> usize {
        self.dims().iter().product()
    }

    /// Number of elements, or `None` if it overflows or exceeds [`max_elements`].
    pub fn checked_size(dims: &[usize]) -> Option<usize> {
        let mut n: usize = 1;
        for &d in dims {
            n = n.checked_mul(d)?;
        }
        (n <= max_elements()).then_some(n)
    }

    pub fn is_scalar(&self) -> bool {
        self.rank == 0
    }

    /// Rows and columns when viewed as a matrix: a vector is a single row, a scalar is 1×1.
    pub fn as_matrix(&self) -> (usize, usize) {
        match self.rank {
            0 => (1, 1),
            1 => (1, self.dims[0]),
            _ => (self.dims[0], self.dims[1]),
        }
    }

    /// The shape with `axis` removed.
    pub fn remove_axis(&self, axis: usize) -> Shape {
        let mut d: Vec<usize> = self.dims().to_vec();
        d.remove(axis);
        // Removing an axis lowers the rank, so the result fits.
        Shape::from_dims(&d).unwrap_or_default()
    }

    /// The shape with a size-1 axis inserted at `axis` (rank ≤ 1 only).
    pub fn insert_axis(&self, axis: usize, len: usize) -> Option<Shape> {
        let mut d: Vec<usize> = self.dims().to_vec();
        if axis > d.len() {
            return None;
        }
        d.insert(axis, len);
        Shape::from_dims(&d)
    }

    /// The dims padded on the left with 1s to rank 2: how broadcasting aligns shapes.
    pub fn padded2(&self) -> [usize; 2] {
        match self.rank {
            0 => [1, 1],
            1 => [1, self.dims[0]],
            _ => self.dims,
        }
    }
}

/// NumPy broadcasting of two shapes: align on the right, a size-1 or missing axis stretches.
pub fn broadcast(a: Shape, b: Shape) -> Option<Shape> {
    let rank = a.rank.max(b.rank) as usize;
    let (pa, pb) = (a.padded2(), b.padded2());
    let mut out = [0usize; 2];
    for i in 0..2 {
        out[i] = match (pa[i], pb[i]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Shape::from_dims(&out[2 - rank..])
}

/// True when `from` broadcasts to exactly `to`.
pub fn broadcasts_to(from: Shape, to: Shape) -> bool {
    from.rank <= to.rank && broadcast(from, to) == Some(to)
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dims() {
            [] => write!(f, "[]"),
            [n] => write!(f, "[{n}]"),
            [m, n] => write!(f, "[{m}, {n}]"),
            _ => unreachable!("rank is at most 2"),
        }
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The shape written as an `.ad` shape argument: `()`, `3`, `(2, 3)`.
pub fn shape_arg(s: Shape) -> String {
    match s.dims() {
        [] => "()".to_string(),
        [n] => format!("{n}"),
        [m, n] => format!("({m}, {n})"),
        _ => unreachable!("rank is at most 2"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let (s, v3, m23, m13, m21) = (
            Shape::scalar(),
            Shape::vector(3),
            Shape::matrix(2, 3),
            Shape::matrix(1, 3),
            Shape::matrix(2, 1),
        );
        assert_eq!(broadcast(s, v3), Some(v3));
        assert_eq!(broadcast(m23, v3), Some(m23));
        assert_eq!(broadcast(m13, m21), Some(Shape::matrix(2, 3)));
        assert_eq!(broadcast(Shape::vector(2), m23), None);
        assert_eq!(broadcast(Shape::vector(1), v3), Some(v3));
        assert!(broadcasts_to(v3, m23));
        assert!(!broadcasts_to(m23, v3));
        assert!(!broadcasts_to(m13, v3));
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(Shape::checked_size(&[100_000_000, 100_000_000]), None);
        assert_eq!(Shape::checked_size(&[usize::MAX, 2]), None);
        assert_eq!(Shape::checked_size(&[3, 4]), Some(12));
        assert_eq!(Shape::matrix(3, 4).to_string(), "[3, 4]");
        assert_eq!(shape_arg(Shape::vector(3)), "3");
    }
}
