//! Static shapes of any rank up to `MAX_RANK`, NumPy broadcasting between them, and the
//! memory budget every size from user input is checked against.

use std::fmt;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

/// What reverse mode through a loop may keep of the loop's carried values, in bytes
/// (DESIGN §8: 512 MiB unless `--ad-memory` or `:set memory` says otherwise). A loop whose
/// record would need more is reversed with binomial checkpoints instead.
static TAPE_BUDGET: AtomicU64 = AtomicU64::new(512 << 20);

/// Sets the memory budget of a loop's reversal, in bytes.
pub fn set_tape_budget(bytes: u64) {
    TAPE_BUDGET.store(bytes.max(1), Ordering::Relaxed);
}

/// The memory budget of a loop's reversal, in bytes.
pub fn tape_budget() -> u64 {
    TAPE_BUDGET.load(Ordering::Relaxed)
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

/// The largest rank an array may have (DESIGN §1: "a practical cap such as 8").
pub const MAX_RANK: usize = 8;

/// A static shape: up to [`MAX_RANK`] dimensions. Shapes are interned: each distinct list
/// of dimensions is stored once for the life of the process, and a `Shape` is a reference
/// to it (16 bytes, `Copy`). Equations, variables, arrays and primitives all hold shapes,
/// so this keeps them small (an inline `[usize; 8]` made every shape 72 bytes). Equality
/// and hashing are by the dimensions, as before.
#[derive(Clone, Copy)]
pub struct Shape(&'static [usize]);

impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        std::ptr::eq(self.0, other.0) || self.0 == other.0
    }
}

impl Eq for Shape {}

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl Default for Shape {
    fn default() -> Shape {
        Shape::SCALAR
    }
}

/// The interned dimension lists: each is leaked once, the first time it is met. Programs
/// meet few distinct shapes (a fuzzing campaign a few thousand), so this stays small.
static INTERNED: std::sync::Mutex<Option<std::collections::HashSet<&'static [usize]>>> =
    std::sync::Mutex::new(None);

/// Entries of the per-thread cache in front of [`INTERNED`].
const CACHE: usize = 64;

thread_local! {
    /// Recently interned shapes, by a hash of their dimensions: most lookups (the
    /// interpreter computing a result's shape, derivation computing an equation's) find
    /// their shape here without taking the lock.
    static RECENT: [std::cell::Cell<&'static [usize]>; CACHE] =
        const { [const { std::cell::Cell::new(&[]) }; CACHE] };
}

fn intern(d: &[usize]) -> Shape {
    if d.is_empty() {
        return Shape::SCALAR;
    }
    // A multiplicative hash of the dimensions picks the cache entry.
    let h = d.iter().fold(d.len() as u64, |h, &x| (h ^ x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let slot = (h >> 58) as usize % CACHE;
    RECENT.with(|recent| {
        let cached = recent[slot].get();
        if cached == d {
            return Shape(cached);
        }
        let found = {
            // A panic while holding the lock leaves the set as it was: still usable.
            let mut set = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
            let set = set.get_or_insert_with(Default::default);
            match set.get(d) {
                Some(s) => *s,
                None => {
                    let leaked: &'static [usize] = Box::leak(d.to_vec().into_boxed_slice());
                    set.insert(leaked);
                    leaked
                }
            }
        };
        recent[slot].set(found);
        Shape(found)
    })
}

// The accessors below are marked `#[inline]`: the interpreter calls them for every step from
// another crate, and without the mark they are calls that cannot be inlined there.
impl Shape {
    pub const SCALAR: Shape = Shape(&[]);

    #[inline]
    pub fn scalar() -> Shape {
        Shape::SCALAR
    }

    pub fn vector(n: usize) -> Shape {
        intern(&[n])
    }

    pub fn matrix(m: usize, n: usize) -> Shape {
        intern(&[m, n])
    }

    /// A shape from a list of dimensions; `None` if the rank exceeds [`MAX_RANK`].
    pub fn from_dims(d: &[usize]) -> Option<Shape> {
        if d.len() > MAX_RANK {
            return None;
        }
        Some(intern(d))
    }

    #[inline]
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    #[inline]
    pub fn dims(&self) -> &'static [usize] {
        self.0
    }

    #[inline]
    pub fn dim(&self, axis: usize) -> usize {
        self.0[axis]
    }

    /// Number of elements. Shapes are validated against [`max_elements`] when built from user
    /// input, so this cannot overflow for shapes that exist.
    #[inline]
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

    #[inline]
    pub fn is_scalar(&self) -> bool {
        self.0.is_empty()
    }

    /// Rows and columns when viewed as a matrix: a vector is a single row, a scalar is 1×1,
    /// and higher ranks fold their leading axes into the rows.
    #[inline]
    pub fn as_matrix(&self) -> (usize, usize) {
        match self.0 {
            [] => (1, 1),
            [n] => (1, *n),
            [rows @ .., n] => (rows.iter().product(), *n),
        }
    }

    /// A stack of matrices `[.., m, n]` (rank at least 2) as the number of matrices and
    /// `m`, `n`.
    pub fn matrix_stack(&self) -> (usize, usize, usize) {
        let r = self.rank();
        (self.0[..r - 2].iter().product(), self.0[r - 2], self.0[r - 1])
    }

    /// The shape with `axis` removed.
    pub fn remove_axis(&self, axis: usize) -> Shape {
        let mut dims = [0; MAX_RANK];
        let r = self.rank();
        dims[..axis].copy_from_slice(&self.0[..axis]);
        dims[axis..r - 1].copy_from_slice(&self.0[axis + 1..]);
        intern(&dims[..r - 1])
    }

    /// The shape with an axis of length `len` inserted before `axis`; `None` past the
    /// largest rank or for an axis out of range.
    pub fn insert_axis(&self, axis: usize, len: usize) -> Option<Shape> {
        let r = self.rank();
        if axis > r || r == MAX_RANK {
            return None;
        }
        let mut dims = [0; MAX_RANK];
        dims[..axis].copy_from_slice(&self.0[..axis]);
        dims[axis] = len;
        dims[axis + 1..=r].copy_from_slice(&self.0[axis..]);
        Some(intern(&dims[..=r]))
    }

    /// The dims padded on the left with 1s to rank 2 (for shapes of rank at most 2).
    pub fn padded2(&self) -> [usize; 2] {
        match self.0 {
            [] => [1, 1],
            [n] => [1, *n],
            [m, n, ..] => [*m, *n],
        }
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.rank()];
        for i in (0..self.rank().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
}

/// NumPy broadcasting of two shapes: align on the right, a size-1 or missing axis stretches.
pub fn broadcast(a: Shape, b: Shape) -> Option<Shape> {
    if a == b || b.is_scalar() {
        return Some(a);
    }
    if a.is_scalar() {
        return Some(b);
    }
    let rank = a.rank().max(b.rank());
    // Axis `i` of the result, counted from the right, with missing axes read as 1.
    let from_right = |s: Shape, i: usize| if i < s.rank() { s.0[s.rank() - 1 - i] } else { 1 };
    let mut out = [0usize; MAX_RANK];
    for i in 0..rank {
        out[rank - 1 - i] = match (from_right(a, i), from_right(b, i)) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    if out[..rank] == *a.0 {
        return Some(a);
    }
    if out[..rank] == *b.0 {
        return Some(b);
    }
    Shape::from_dims(&out[..rank])
}

/// True when `from` broadcasts to exactly `to`.
pub fn broadcasts_to(from: Shape, to: Shape) -> bool {
    from.rank() <= to.rank() && broadcast(from, to) == Some(to)
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.dims().iter().map(|d| d.to_string()).collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The shape written as an `.ad` shape argument: `()`, `3`, `(2, 3)`, `(2, 3, 4)`.
pub fn shape_arg(s: Shape) -> String {
    match s.dims() {
        [] => "()".to_string(),
        [n] => format!("{n}"),
        dims => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
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
        // Any rank: aligned on the right, size-1 and missing axes stretch.
        let d = |x: &[usize]| Shape::from_dims(x).unwrap();
        assert_eq!(broadcast(d(&[2, 1, 3]), d(&[4, 1])), Some(d(&[2, 4, 3])));
        assert_eq!(broadcast(d(&[4, 1]), d(&[2, 1, 3])), Some(d(&[2, 4, 3])));
        assert_eq!(broadcast(d(&[5, 1, 1, 2]), d(&[3, 1])), Some(d(&[5, 1, 3, 2])));
        assert_eq!(broadcast(s, d(&[2, 3, 4])), Some(d(&[2, 3, 4])));
        assert_eq!(broadcast(d(&[2, 3, 4]), d(&[3, 1])), Some(d(&[2, 3, 4])));
        assert_eq!(broadcast(d(&[2, 3, 4]), d(&[2, 4])), None);
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(Shape::checked_size(&[100_000_000, 100_000_000]), None);
        assert_eq!(Shape::checked_size(&[usize::MAX, 2]), None);
        assert_eq!(Shape::checked_size(&[3, 4]), Some(12));
        assert_eq!(Shape::matrix(3, 4).to_string(), "[3, 4]");
        assert_eq!(shape_arg(Shape::vector(3)), "3");
    }

    #[test]
    fn shapes_are_interned_and_compared_by_dimensions() {
        let a = Shape::from_dims(&[2, 3, 4]).unwrap();
        let b = Shape::matrix(2, 3).insert_axis(2, 4).unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.dims(), b.dims()), "one copy of each list of dimensions");
        assert_eq!(a.remove_axis(1), Shape::matrix(2, 4));
        assert_eq!(a.insert_axis(0, 5).unwrap().dims(), [5, 2, 3, 4]);
        assert_eq!(a.insert_axis(3, 1).unwrap().dims(), [2, 3, 4, 1]);
        assert_eq!(Shape::vector(3).remove_axis(0), Shape::SCALAR);
        assert_ne!(Shape::vector(3), Shape::vector(4));
        assert_eq!(Shape::default(), Shape::scalar());
        // Shapes made on another thread are the same shapes.
        let c = std::thread::spawn(|| Shape::from_dims(&[2, 3, 4]).unwrap()).join().unwrap();
        assert!(std::ptr::eq(a.dims(), c.dims()));
        assert_eq!(std::mem::size_of::<Shape>(), 16);
    }
}
