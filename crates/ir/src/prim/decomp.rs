//! The parts of the matrix decompositions `eigh`, `qr` and `svd` (DESIGN §10): each part is
//! a primitive of one matrix operand, computed from the decomposition of that matrix, so
//! that a derivative needing another part of the same decomposition asks for it (common
//! subexpressions merge it with the user's). Every part is signed so that it is a function
//! of the matrix (the decompositions themselves are unique only up to signs).

use crate::shape::Shape;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Decomp {
    /// The eigenvalues of the symmetric part `(A + Aᵀ)/2` of a square matrix, ascending
    /// (NumPy's `eigvalsh`).
    EighValues,
    /// The unit eigenvectors (columns) of the symmetric part, in the order of the
    /// eigenvalues, each with its largest component (the first of equal ones) positive.
    EighVectors,
    /// `Q` of the reduced QR decomposition `A = Q R` of an `[m, n]` matrix (`[m, k]` with
    /// `k = min(m, n)`, orthonormal columns), signed so that `R`'s diagonal is nonnegative.
    QrQ,
    /// `R` of the same decomposition (`[k, n]`, upper triangular, diagonal nonnegative).
    QrR,
    /// The singular values of an `[m, n]` matrix, descending (`[k]`, `k = min(m, n)`).
    SvdS,
    /// `U` of the reduced SVD `A = U diag(s) Vt` (`[m, k]`), each column with its largest
    /// component positive.
    SvdU,
    /// `Vt` of the reduced SVD (`[k, n]`), each row signed as its column of `U`.
    SvdVt,
}

impl Decomp {
    pub const ALL: [Decomp; 7] = [
        Decomp::EighValues,
        Decomp::EighVectors,
        Decomp::QrQ,
        Decomp::QrR,
        Decomp::SvdS,
        Decomp::SvdU,
        Decomp::SvdVt,
    ];

    /// The name scripts call it by (and derived programs print).
    pub fn name(self) -> &'static str {
        match self {
            Decomp::EighValues => "eigvalsh",
            Decomp::EighVectors => "eigh_vectors",
            Decomp::QrQ => "qr_q",
            Decomp::QrR => "qr_r",
            Decomp::SvdS => "svdvals",
            Decomp::SvdU => "svd_u",
            Decomp::SvdVt => "svd_vt",
        }
    }

    pub fn from_name(name: &str) -> Option<Decomp> {
        Decomp::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The part's shape for a matrix of shape `a`, or a stack of them (`[.., m, n]`: the
    /// part of each, stacked along the same leading axes).
    pub fn infer(self, a: Shape) -> Result<Shape, String> {
        let [batch @ .., m, n] = a.dims() else {
            return Err(format!(
                "`{}` takes a matrix (or a stack of them), not an array of shape {a}",
                self.name()
            ));
        };
        let (m, n) = (*m, *n);
        let k = m.min(n);
        let part: &[usize] = match self {
            Decomp::EighValues | Decomp::EighVectors if m != n => {
                return Err(format!("`{}` takes a square matrix, not an array of shape {a}", self.name()));
            }
            Decomp::EighValues => &[n],
            Decomp::EighVectors => &[n, n],
            Decomp::QrQ => &[m, k],
            Decomp::QrR => &[k, n],
            Decomp::SvdS => &[k],
            Decomp::SvdU => &[m, k],
            Decomp::SvdVt => &[k, n],
        };
        Shape::from_dims(&[batch, part].concat())
            .ok_or_else(|| format!("`{}` of shape {a}: too many axes", self.name()))
    }
}
