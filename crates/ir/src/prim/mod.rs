//! The primitive operations of the IR: one enum, with each primitive's name, its static
//! parameters, its class for differentiation and its shape rule; the elementwise ones
//! (`elementwise.rs`) also declare their scalar meaning there. Kernels live in `ad-eval`
//! and derivative rules in `ad-autodiff`, each in one exhaustive `match`, so a new
//! primitive does not compile until it has all of them (ARCHITECTURE.md has the checklist).

use crate::array::Array;
use crate::shape::{broadcast, broadcasts_to, Shape};
use std::hash::{Hash, Hasher};
use std::rc::Rc;

mod decomp;
mod elementwise;
pub use decomp::Decomp;
pub use elementwise::{Binary, Unary};

/// How a primitive's result depends on its operands, as differentiation sees it (JAX
/// declares the same facts with `defjvp_zero`, `deflinear`, `defbilinear` and `defjvp`).
/// Reverse mode transposes only primitives that are linear in some operand; the classes
/// say which, and a test checks that every such primitive has a transpose rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    /// No derivative at all: comparisons, `sign`, `argmax`, `stop_gradient`, constants.
    Zero,
    /// Linear in its operands together (`add`, `sum`, `reshape`, `pad`, ...).
    Linear,
    /// Linear in each operand when the others are held fixed (`mul`, `matmul`).
    Bilinear,
    /// Linear in the operands listed, the others being coefficients: `div` in its
    /// numerator, `where` in its branches, `solve` in its right-hand side.
    LinearIn(&'static [usize]),
    /// Anything else: its JVP rule computes coefficients from the primal values.
    Nonlinear,
}

impl Class {
    /// Whether operand `i` may carry a tangent through a linear use of the primitive.
    pub fn linear_in(self, i: usize) -> bool {
        match self {
            Class::Linear | Class::Bilinear => true,
            Class::LinearIn(ops) => ops.contains(&i),
            Class::Zero | Class::Nonlinear => false,
        }
    }
}

/// An `f64` static parameter, compared and hashed by its bits so that primitives can be keys
/// of hash maps (common subexpression elimination).
#[derive(Clone, Copy, Debug)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, o: &F64) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}
impl Eq for F64 {}
impl Hash for F64 {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h)
    }
}

/// A literal array inside a program, compared by content and hashed by shape and length.
#[derive(Clone, Debug)]
pub struct ConstArray(pub Rc<Array>);

impl PartialEq for ConstArray {
    fn eq(&self, o: &ConstArray) -> bool {
        *self.0 == *o.0
    }
}
impl Eq for ConstArray {}
impl Hash for ConstArray {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.shape().hash(h);
        for x in self.0.data().iter().take(8) {
            x.to_bits().hash(h);
        }
    }
}

/// What `dyn_index` and `dyn_update` select on each leading axis their computed positions
/// address: one position (`None`: `x[i]`, the axis goes away) or a window of a known
/// length starting there (`Some(k)`: `x[i:i + k]`, the axis stays).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct DynSel(pub Vec<Option<usize>>);

impl DynSel {
    /// One position on each of the first `k` axes.
    pub fn picks(k: usize) -> DynSel {
        DynSel(vec![None; k])
    }

    /// How many leading axes (and computed positions) it addresses.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many axes stay (windows).
    pub fn windows(&self) -> usize {
        self.0.iter().filter(|w| w.is_some()).count()
    }

    /// The shape of the part of an array of shape `x` it selects: the windows' lengths,
    /// then `x`'s axes after those addressed.
    pub fn part(&self, x: Shape) -> Result<Shape, String> {
        if self.len() > x.rank() {
            return Err(format!("{} for an array of shape {x}", crate::words::count(self.len(), "index")));
        }
        for (w, d) in self.0.iter().zip(x.dims()) {
            if let Some(k) = w {
                if k > d {
                    return Err(format!(
                        "a slice of {} from an axis of length {d} (array of shape {x})",
                        crate::words::count(*k, "element")
                    ));
                }
            }
        }
        let dims: Vec<usize> = self.0.iter().flatten().chain(&x.dims()[self.len()..]).copied().collect();
        checked_shape(&dims)
    }
}

/// A set of axes of an array, as a bit mask (ranks are at most `MAX_RANK` = 8): the axes a
/// reduction removes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Axes(u8);

impl Axes {
    /// No axis.
    pub const NONE: Axes = Axes(0);

    /// Every axis of an array of rank `rank`.
    pub fn all(rank: usize) -> Axes {
        Axes(((1u16 << rank) - 1) as u8)
    }

    pub fn one(axis: usize) -> Axes {
        Axes(1 << axis)
    }

    pub fn of(axes: &[usize]) -> Axes {
        Axes(axes.iter().fold(0, |m, a| m | (1 << a)))
    }

    pub fn contains(self, axis: usize) -> bool {
        axis < 8 && self.0 & (1 << axis) != 0
    }

    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The axes in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..8).filter(move |a| self.contains(*a))
    }

    /// The single axis, if there is exactly one.
    pub fn single(self) -> Option<usize> {
        (self.count() == 1).then(|| self.0.trailing_zeros() as usize)
    }

    /// The same axes of an array with `k` more leading axes (a batch).
    pub fn shift(self, k: usize) -> Axes {
        Axes(self.0 << k)
    }

    /// Whether every axis is below `rank`.
    pub fn fits(self, rank: usize) -> bool {
        (self.0 as u16) < (1u16 << rank)
    }

    /// The shape left when these axes are removed from `x`.
    pub fn reduce(self, x: Shape) -> Shape {
        let kept: Vec<usize> =
            x.dims().iter().enumerate().filter(|(i, _)| !self.contains(*i)).map(|(_, d)| *d).collect();
        // Removing axes lowers the rank, so the result has a supported rank.
        Shape::from_dims(&kept).unwrap_or_default()
    }

    /// The shape of the reduction kept as size-1 axes (NumPy's `keepdims`), which
    /// broadcasts back against `x`.
    pub fn keep(self, x: Shape) -> Shape {
        let dims: Vec<usize> =
            x.dims().iter().enumerate().map(|(i, d)| if self.contains(i) { 1 } else { *d }).collect();
        Shape::from_dims(&dims).unwrap_or_default()
    }
}

/// One axis of an indexing operation: pick one position (the axis disappears) or keep a
/// half-open range.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Sel {
    At(usize),
    Range(usize, usize),
}

/// The static arguments of a convolution: its stride, padding and number of groups.
///
/// With `groups = g` (JAX's `feature_group_count`), the input's channels and the kernel's
/// output channels are split into `g` consecutive groups, and group `i` of the output is
/// the convolution of group `i` of the input with group `i` of the kernel: the kernel is
/// `[kh, kw, c / g, o]`. `g = c` is a depthwise convolution; `vmap` of a convolution whose
/// kernel is batched is one convolution with a group per batch element.
///
/// `strong` makes a term `x[..] * k[..]` with a zero factor exactly 0, even if the other
/// factor is infinite or NaN (`safe_conv2d` and its adjoints: the convolution form of
/// `safe_mul`, which NaN-safe derivatives use where a tangent or cotangent meets an image or
/// a kernel).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Conv {
    pub stride: u32,
    pub padding: crate::window::Padding,
    pub groups: u32,
    pub strong: bool,
}

/// The static arguments of a pooling window: its size and stride (square windows).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Pool {
    pub size: u32,
    pub stride: u32,
}

// The window parameters are `u32` (checked where a script gives them) so that the
// primitives holding one beside a shape, such as `Conv2dTransposeInput(Conv, Shape)`, fit
// in 32 bytes: every equation holds a `Prim`, and a derivative can have millions.
impl Conv {
    pub fn stride(&self) -> usize {
        self.stride as usize
    }

    pub fn groups(&self) -> usize {
        self.groups as usize
    }
}

impl Pool {
    pub fn size(&self) -> usize {
        self.size as usize
    }

    pub fn stride(&self) -> usize {
        self.stride as usize
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Prim {
    Unary(Unary),
    Binary(Binary),
    /// `where(c, a, b)`: elementwise choice, broadcasting all three.
    Where,
    /// NumPy's `matmul`: the product of the last two axes, batched over the others.
    MatMul,
    /// `safe_matmul(a, b)`: `a @ b` in which a term `a[i, k] * b[k, j]` with a zero factor
    /// is exactly 0, even if the other factor is infinite or NaN: the matrix form of
    /// `safe_mul`. NaN-safe derivatives use it where a tangent or cotangent meets a
    /// coefficient matrix.
    SafeMatMul,
    /// `x'`: the last two axes swapped.
    Transpose,
    /// `transpose(x, perm)`: axis `i` of the result is axis `perm[i]` of `x`.
    Permute(Vec<usize>),
    /// `solve(A, B)`: X with A X = B, for square A and a vector or matrix B.
    Solve,
    /// `safe_solve(A, B)`: `solve(A, B)`, except that a column of B that is all zeros gives
    /// a column of exact zeros whatever A holds (a strong zero, for NaN-safe derivatives).
    SafeSolve,
    /// `sum(x)` (all axes), `sum(x, axis)` or `sum(x, (a, b))`: the axes are removed.
    Sum(Axes),
    Amax(Axes),
    /// The lower Cholesky factor `L` of a symmetric positive definite matrix (`A = L Lᵀ`;
    /// only the lower triangle of `A` is read; NaN where `A` is not positive definite).
    Cholesky,
    /// A part of the decomposition `eigh`, `qr` or `svd` of a matrix (`decomp.rs`).
    Decomp(Decomp),
    /// `solve_triangular(T, B, lower)`: solves `T X = B` reading only the lower (or upper)
    /// triangle of `T`.
    SolveTriangular(bool),
    /// `log |det A|`, by LU with partial pivoting (`-inf` for a singular `A`).
    LogAbsDet,
    /// The sign of `det A`: 1, -1, or 0 for a singular `A`.
    SignDet,
    /// The product over axes (all of them, or some).
    Prod(Axes),
    /// Running sums along an axis (from the end when `reverse`, which is the transpose).
    Cumsum(usize, bool),
    /// `flip(x[, axes])`: the elements in reverse order along each of `axes` (NumPy's
    /// `flip`, JAX's `rev`). Negative steps of slices are made from it.
    Flip(Axes),
    Argmax(Option<usize>),
    Reshape(Shape),
    BroadcastTo(Shape),
    /// Sums broadcast axes away: the transpose of `broadcast_to`.
    SumTo(Shape),
    /// `x[...]` with constant positions and ranges, one [`Sel`] per axis of the input.
    Index(Vec<Sel>),
    /// Zero padding, `(before, after)` per axis: the transpose of a rank-preserving index.
    Pad(Vec<(usize, usize)>),
    Concat(usize),
    /// An array literal with computed elements: stacks n equal-shaped operands along a new
    /// leading axis.
    Stack,
    StopGradient,
    Full(Shape, F64),
    Eye(usize),
    Arange(usize),
    Linspace(F64, F64, usize),
    /// `one_hot(labels, classes)`.
    OneHot(usize),
    Const(ConstArray),
    /// `conv2d(x, k, stride, padding, groups)`: `x: [b, h, w, c]`, `k: [kh, kw, c / groups,
    /// o]`, a cross-correlation (no kernel flip).
    Conv2d(Conv),
    /// `conv2d_transpose_input(ct, k, shape, ..)`: the adjoint of `conv2d` in its input, for
    /// an input of the given shape.
    Conv2dTransposeInput(Conv, Shape),
    /// `conv2d_transpose_kernel(x, ct, shape, ..)`: the adjoint of `conv2d` in its kernel,
    /// for a kernel of the given shape.
    Conv2dTransposeKernel(Conv, Shape),
    /// `max_pool2d(x, size, stride)`: the maximum of each window, per channel.
    MaxPool2d(Pool),
    /// `max_pool2d_pick(x, t, ..)`: `t` at the place of each window's maximum of `x` (the
    /// first on ties): the derivative of `max_pool2d`, linear in `t`.
    MaxPool2dPick(Pool),
    /// `max_pool2d_scatter(x, ct, ..)`: the adjoint of the pick in `t`, each entry of `ct`
    /// added at its window's maximum.
    MaxPool2dScatter(Pool),
    /// `avg_pool2d(x, size, stride)`: the mean of each window.
    AvgPool2d(Pool),
    /// `avg_pool2d_transpose(ct, shape, ..)`: the adjoint of `avg_pool2d`.
    AvgPool2dTranspose(Pool, Shape),
    /// `x[i, j]` or `x[i:i + k]` with computed positions: the operands after `x` pick one
    /// position, or start a window of known length, on each of its leading axes (a
    /// negative position counts from the end; one out of range is an error when the
    /// program runs).
    DynIndex(DynSel),
    /// `x[i, j] = v` or `x[i:i + k] = v` with computed positions: `x` with the part there
    /// replaced by `v` (operands `x, v, i, j`; `v` has the part's shape).
    DynUpdate(DynSel),
    /// A `for` or `while` loop over a body lowered once (`region.rs`): several results.
    Loop(Rc<crate::region::LoopOp>),
    /// Reverse mode through a loop whose carried values are not recorded in the program: the
    /// primal loop forwards, then the transposed body backwards (`region.rs`).
    ReverseLoop(Rc<crate::region::ReverseOp>),
    /// `if c { .. } else { .. }` on a computed condition (`region.rs`): several results.
    Cond(Rc<crate::region::CondOp>),
    /// `check(x, ok, message, shown)`: `x`, after checking when the program runs that every
    /// element of `ok` is nonzero; otherwise a run-time error with `message`, its `{}`
    /// replaced by the element of `shown` where `ok` failed. The identity for derivatives.
    Check(Rc<str>),
    /// A function with its own derivative rule (`region.rs`): several results.
    Custom(Rc<crate::region::CustomOp>),
    /// The derivative of a `custom_vjp` function as a linear map (made only by
    /// differentiation): operands `[residuals.., tangents of args.., consts..]`, results the
    /// tangents of its results. Transposing it runs `bwd`; forward mode replaces it by the
    /// transpose of `bwd`, which needs `bwd` linear in its cotangents.
    CustomLin(Rc<crate::region::CustomOp>),
}

/// The names scripts call the primitives other than the elementwise ones by. Together with
/// [`Unary::ALL`] and [`Binary::ALL`] this is every primitive: the builtin name table,
/// completion and the editor grammar are made from them, and a test requires a golden JVP
/// and VJP fixture and a gradient check for each (`tests/primitives.rs`).
pub const STRUCTURAL: &[&str] = &[
    "where",
    "matmul",
    "safe_matmul",
    "transpose",
    "solve",
    "safe_solve",
    "sum",
    "amax",
    "prod",
    "cholesky",
    "eigvalsh",
    "eigh_vectors",
    "qr_q",
    "qr_r",
    "svdvals",
    "svd_u",
    "svd_vt",
    "solve_triangular",
    "logabsdet",
    "signdet",
    "cumsum",
    "flip",
    "argmax",
    "reshape",
    "broadcast_to",
    "sum_to",
    "slice",
    "index",
    "pad",
    "concat",
    "stop_gradient",
    "check",
    "zeros",
    "ones",
    "full",
    "eye",
    "arange",
    "linspace",
    "one_hot",
    "conv2d",
    "conv2d_transpose_input",
    "conv2d_transpose_kernel",
    "safe_conv2d",
    "safe_conv2d_transpose_input",
    "safe_conv2d_transpose_kernel",
    "max_pool2d",
    "max_pool2d_pick",
    "max_pool2d_scatter",
    "avg_pool2d",
    "avg_pool2d_transpose",
];

/// Primitives written as literals rather than called by name: `[a, b]` with computed
/// elements (`stack`) and constant arrays (`const`).
pub const LITERALS: &[&str] = &["stack", "const"];

/// Primitives written as syntax: indexing at computed positions (`x[i]`), indexed update
/// (`x[i] = v`), loops (`for`, `while`) and `if` on a computed condition. (`reverse_loop` is
/// made only by reverse mode.)
pub const SYNTAX: &[&str] = &["dyn_index", "dyn_update", "for", "while", "if", "custom_jvp", "custom_vjp"];

/// The names scripts call primitives by, elementwise ones first (operators without a name,
/// such as `!`, left out).
pub fn names() -> impl Iterator<Item = &'static str> {
    let unary = Unary::ALL.iter().filter(|u| u.callable()).map(|u| u.name());
    let binary = Binary::ALL.iter().filter(|b| b.callable()).map(|b| b.name());
    unary.chain(binary).chain(STRUCTURAL.iter().copied())
}

/// Every primitive's name ([`Prim::name`]), callable or not.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    let unary = Unary::ALL.iter().map(|u| u.name());
    let binary = Binary::ALL.iter().map(|b| b.name());
    unary
        .chain(binary)
        .chain(STRUCTURAL.iter().copied())
        .chain(LITERALS.iter().copied())
        .chain(SYNTAX.iter().copied())
}

impl Prim {
    /// The programs an equation of this primitive holds (loop bodies, branches, custom
    /// rules), for passes that look inside every program.
    pub fn programs(&self) -> Vec<&crate::Program> {
        match self {
            Prim::Loop(op) => op.cond.iter().chain([&op.body]).collect(),
            Prim::ReverseLoop(op) => op.primal.cond.iter().chain([&op.primal.body, &op.back]).collect(),
            Prim::Cond(op) => op.branches().to_vec(),
            Prim::Custom(op) | Prim::CustomLin(op) => op.programs(),
            _ => Vec::new(),
        }
    }

    /// The name a script calls it by.
    /// The form of a convolution with strong zeros (`safe_conv2d`, ..); any other primitive
    /// as it is.
    pub fn with_strong_zeros(&self) -> Prim {
        let strong = |c: &Conv| Conv { strong: true, ..*c };
        match self {
            Prim::Conv2d(c) => Prim::Conv2d(strong(c)),
            Prim::Conv2dTransposeInput(c, s) => Prim::Conv2dTransposeInput(strong(c), *s),
            Prim::Conv2dTransposeKernel(c, s) => Prim::Conv2dTransposeKernel(strong(c), *s),
            other => other.clone(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Prim::Unary(u) => u.name(),
            Prim::Binary(b) => b.name(),
            Prim::Where => "where",
            Prim::MatMul => "matmul",
            Prim::SafeMatMul => "safe_matmul",
            Prim::Transpose | Prim::Permute(_) => "transpose",
            Prim::Solve => "solve",
            Prim::SafeSolve => "safe_solve",
            Prim::Sum(_) => "sum",
            Prim::Amax(_) => "amax",
            Prim::Prod(_) => "prod",
            Prim::Cholesky => "cholesky",
            Prim::Decomp(d) => d.name(),
            Prim::SolveTriangular(_) => "solve_triangular",
            Prim::LogAbsDet => "logabsdet",
            Prim::SignDet => "signdet",
            Prim::Cumsum(..) => "cumsum",
            Prim::Flip(_) => "flip",
            Prim::Argmax(_) => "argmax",
            Prim::Reshape(_) => "reshape",
            Prim::BroadcastTo(_) => "broadcast_to",
            Prim::SumTo(_) => "sum_to",
            Prim::Index(sels) => {
                if sels.iter().all(|s| matches!(s, Sel::Range(..))) {
                    "slice"
                } else {
                    "index"
                }
            }
            Prim::Pad(_) => "pad",
            Prim::Concat(_) => "concat",
            Prim::Stack => "stack",
            Prim::StopGradient => "stop_gradient",
            Prim::Check(_) => "check",
            Prim::Full(_, v) if v.0 == 0.0 => "zeros",
            Prim::Full(_, v) if v.0 == 1.0 => "ones",
            Prim::Full(..) => "full",
            Prim::Eye(_) => "eye",
            Prim::Arange(_) => "arange",
            Prim::Linspace(..) => "linspace",
            Prim::OneHot(_) => "one_hot",
            Prim::Const(_) => "const",
            Prim::Conv2d(c) if c.strong => "safe_conv2d",
            Prim::Conv2dTransposeInput(c, _) if c.strong => "safe_conv2d_transpose_input",
            Prim::Conv2dTransposeKernel(c, _) if c.strong => "safe_conv2d_transpose_kernel",
            Prim::Conv2d(_) => "conv2d",
            Prim::Conv2dTransposeInput(..) => "conv2d_transpose_input",
            Prim::Conv2dTransposeKernel(..) => "conv2d_transpose_kernel",
            Prim::MaxPool2d(_) => "max_pool2d",
            Prim::MaxPool2dPick(_) => "max_pool2d_pick",
            Prim::MaxPool2dScatter(_) => "max_pool2d_scatter",
            Prim::AvgPool2d(_) => "avg_pool2d",
            Prim::AvgPool2dTranspose(..) => "avg_pool2d_transpose",
            Prim::DynIndex(_) => "dyn_index",
            Prim::DynUpdate(_) => "dyn_update",
            Prim::Loop(op) if op.is_while() => "while",
            Prim::Loop(_) => "for",
            Prim::ReverseLoop(_) => "reverse_loop",
            Prim::Cond(_) => "if",
            Prim::Custom(op) => op.keyword(),
            Prim::CustomLin(_) => "custom_vjp_derivative",
        }
    }

    /// How the result depends on the operands, for differentiation.
    pub fn class(&self) -> Class {
        match self {
            Prim::Unary(u) => u.class(),
            Prim::Binary(b) => b.class(),
            Prim::Where => Class::LinearIn(&[1, 2]),
            Prim::MatMul | Prim::SafeMatMul => Class::Bilinear,
            Prim::Solve | Prim::SafeSolve | Prim::SolveTriangular(_) => Class::LinearIn(&[1]),
            Prim::Cholesky | Prim::LogAbsDet | Prim::Decomp(_) => Class::Nonlinear,
            Prim::SignDet => Class::Zero,
            Prim::Transpose
            | Prim::Permute(_)
            | Prim::Sum(_)
            | Prim::Reshape(_)
            | Prim::BroadcastTo(_)
            | Prim::SumTo(_)
            | Prim::Index(_)
            | Prim::Pad(_)
            | Prim::Concat(_)
            | Prim::Stack => Class::Linear,
            Prim::Amax(_) | Prim::Prod(_) => Class::Nonlinear,
            Prim::Cumsum(..) | Prim::Flip(_) => Class::Linear,
            Prim::Argmax(_) | Prim::StopGradient | Prim::OneHot(_) => Class::Zero,
            Prim::Full(..) | Prim::Eye(_) | Prim::Arange(_) | Prim::Linspace(..) | Prim::Const(_) => {
                Class::Zero
            }
            Prim::Conv2d(_) | Prim::Conv2dTransposeInput(..) | Prim::Conv2dTransposeKernel(..) => {
                Class::Bilinear
            }
            Prim::MaxPool2d(_) => Class::Nonlinear,
            Prim::MaxPool2dPick(_) | Prim::MaxPool2dScatter(_) => Class::LinearIn(&[1]),
            Prim::AvgPool2d(_) | Prim::AvgPool2dTranspose(..) => Class::Linear,
            Prim::DynIndex(_) | Prim::Check(_) => Class::LinearIn(&[0]),
            Prim::DynUpdate(_) => Class::LinearIn(&[0, 1]),
            // A loop's derivative is a loop over its body's derivative (`jvp.rs` and
            // `transpose.rs` treat it as a whole, not by a rule per operand).
            Prim::Loop(_) | Prim::ReverseLoop(_) | Prim::Cond(_) | Prim::Custom(_) | Prim::CustomLin(_) => {
                Class::Nonlinear
            }
        }
    }

    pub fn is_elementwise(&self) -> bool {
        matches!(self, Prim::Unary(_) | Prim::Binary(_) | Prim::Where | Prim::StopGradient)
    }

    /// The shape of the result for operands of the given shapes, or a message saying why the
    /// operands do not fit (the caller adds the location).
    pub fn infer(&self, args: &[Shape]) -> Result<Shape, String> {
        let out = self.infer_structure(args)?;
        // Broadcasting and products can describe results far larger than their operands.
        checked_shape(out.dims())
    }

    /// The shape of the result, without the memory budget's limit on its size: for
    /// transformations, which may describe an array too large to exist and then report it
    /// at the user's call instead of building it.
    pub fn infer_structure(&self, args: &[Shape]) -> Result<Shape, String> {
        let arity = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(crate::words::arity(
                    &format!("`{}`", self.name()),
                    &crate::words::count(n, "operand"),
                    args.len(),
                ))
            }
        };
        match self {
            Prim::Check(_) => {
                arity(3)?;
                Ok(args[0])
            }
            Prim::Unary(_) | Prim::StopGradient => {
                arity(1)?;
                Ok(args[0])
            }
            Prim::Binary(b) => {
                arity(2)?;
                broadcast(args[0], args[1]).ok_or_else(|| {
                    format!("shapes {} and {} do not broadcast in `{}`", args[0], args[1], b.name())
                })
            }
            Prim::Where => {
                arity(3)?;
                broadcast(args[0], args[1]).and_then(|s| broadcast(s, args[2])).ok_or_else(|| {
                    format!("shapes {}, {} and {} do not broadcast in `where`", args[0], args[1], args[2])
                })
            }
            Prim::MatMul | Prim::SafeMatMul => {
                arity(2)?;
                matmul_shape(args[0], args[1])
            }
            Prim::Decomp(d) => {
                arity(1)?;
                d.infer(args[0])
            }
            Prim::Cholesky | Prim::LogAbsDet | Prim::SignDet => {
                arity(1)?;
                let (batch, _) = square_stack(self.name(), args[0])?;
                Ok(if *self == Prim::Cholesky { args[0] } else { batch })
            }
            Prim::SolveTriangular(_) | Prim::Solve | Prim::SafeSolve => {
                arity(2)?;
                let (a, b) = (args[0], args[1]);
                let call = if let Prim::SolveTriangular(_) = self {
                    "solve_triangular(T, B, lower)"
                } else {
                    "solve(A, B)"
                };
                let (batch, n) = square_stack(self.name(), a).map_err(|_| {
                    format!("`{call}` needs a square matrix (or a stack of them) first; got shape {a}")
                })?;
                // The batch axes are the same (lowering broadcast them).
                let rows =
                    if rhs_is_vector(a, b) { b.rank().checked_sub(1) } else { b.rank().checked_sub(2) };
                match rows {
                    Some(r) if b.rank() >= 1 && b.rank() <= a.rank() && b.dims()[..r] == *batch.dims() && b.dim(r) == n => {
                        Ok(b)
                    }
                    _ => Err(format!(
                        "`{call}` needs B with as many rows as the matrix, and leading (batch) axes that broadcast against the matrices'; got {a} and {b}"
                    )),
                }
            }
            Prim::Transpose => {
                arity(1)?;
                let mut dims = args[0].dims().to_vec();
                let r = dims.len();
                if r >= 2 {
                    dims.swap(r - 2, r - 1);
                }
                ranked(&dims)
            }
            Prim::Permute(perm) => {
                arity(1)?;
                let x = args[0];
                let mut seen = vec![false; x.rank()];
                if perm.len() != x.rank()
                    || perm.iter().any(|&p| p >= x.rank() || std::mem::replace(&mut seen[p], true))
                {
                    return Err(format!(
                        "{perm:?} is not a permutation of the {} of an array of shape {x}",
                        crate::words::count(x.rank(), "axis")
                    ));
                }
                ranked(&perm.iter().map(|&p| x.dim(p)).collect::<Vec<_>>())
            }
            Prim::Cumsum(axis, _) => {
                arity(1)?;
                if *axis < args[0].rank() {
                    Ok(args[0])
                } else {
                    Err(format!("axis {axis} is out of range for an array of shape {}", args[0]))
                }
            }
            Prim::Flip(axes) => {
                arity(1)?;
                if axes.fits(args[0].rank()) {
                    Ok(args[0])
                } else {
                    Err(format!(
                        "axes {:?} are out of range for an array of shape {}",
                        axes.iter().collect::<Vec<_>>(),
                        args[0]
                    ))
                }
            }
            Prim::Sum(axes) | Prim::Amax(axes) | Prim::Prod(axes) => {
                arity(1)?;
                let x = args[0];
                if axes.fits(x.rank()) {
                    Ok(axes.reduce(x))
                } else {
                    Err(format!(
                        "axes {:?} are out of range for an array of shape {x}",
                        axes.iter().collect::<Vec<_>>()
                    ))
                }
            }
            Prim::Argmax(axis) => {
                arity(1)?;
                let x = args[0];
                match axis {
                    None => Ok(Shape::scalar()),
                    Some(a) if *a < x.rank() => Ok(x.remove_axis(*a)),
                    Some(a) => Err(format!("axis {a} is out of range for an array of shape {x}")),
                }
            }
            Prim::Reshape(s) => {
                arity(1)?;
                if s.size() == args[0].size() {
                    Ok(*s)
                } else {
                    Err(format!(
                        "cannot reshape an array of shape {} ({}) to {s}",
                        args[0],
                        crate::words::count(args[0].size(), "element")
                    ))
                }
            }
            Prim::BroadcastTo(s) => {
                arity(1)?;
                if broadcasts_to(args[0], *s) {
                    Ok(*s)
                } else {
                    Err(format!("cannot broadcast shape {} to {s}", args[0]))
                }
            }
            Prim::SumTo(s) => {
                arity(1)?;
                if broadcasts_to(*s, args[0]) {
                    Ok(*s)
                } else {
                    Err(format!("cannot sum shape {} down to {s}", args[0]))
                }
            }
            Prim::Index(sels) => {
                arity(1)?;
                index_shape(args[0], sels)
            }
            Prim::Pad(widths) => {
                arity(1)?;
                let x = args[0];
                if widths.len() != x.rank() {
                    return Err(format!("`pad` needs one (before, after) pair per axis of {x}"));
                }
                let dims: Option<Vec<usize>> = x
                    .dims()
                    .iter()
                    .zip(widths)
                    .map(|(d, (lo, hi))| d.checked_add(*lo)?.checked_add(*hi))
                    .collect();
                let dims = dims.ok_or_else(|| too_large(&[usize::MAX]))?;
                ranked(&dims)
            }
            Prim::Concat(axis) => {
                arity(2)?;
                let (a, b) = (args[0], args[1]);
                if a.rank() != b.rank() || a.rank() == 0 {
                    return Err(format!(
                        "cannot concatenate shapes {a} and {b}: ranks must be equal and at least 1"
                    ));
                }
                if *axis >= a.rank() {
                    return Err(format!("axis {axis} is out of range for shapes {a} and {b}"));
                }
                let mut dims = a.dims().to_vec();
                for (i, (x, y)) in a.dims().iter().zip(b.dims()).enumerate() {
                    if i == *axis {
                        dims[i] = x + y;
                    } else if x != y {
                        return Err(format!("cannot concatenate shapes {a} and {b} along axis {axis}"));
                    }
                }
                ranked(&dims)
            }
            Prim::Stack => {
                let Some(first) = args.first() else {
                    return Ok(Shape::vector(0));
                };
                if let Some(bad) = args.iter().find(|s| *s != first) {
                    return Err(format!("array literal elements have different shapes: {first} and {bad}"));
                }
                let dims: Vec<usize> =
                    std::iter::once(args.len()).chain(first.dims().iter().copied()).collect();
                ranked(&dims)
            }
            Prim::Full(s, _) => {
                arity(0)?;
                Ok(*s)
            }
            Prim::Eye(n) => {
                arity(0)?;
                ranked(&[*n, *n])
            }
            Prim::Arange(n) | Prim::Linspace(_, _, n) => {
                arity(0)?;
                ranked(&[*n])
            }
            Prim::OneHot(k) => {
                arity(1)?;
                let dims: Vec<usize> = args[0].dims().iter().copied().chain([*k]).collect();
                ranked(&dims)
            }
            Prim::Const(a) => {
                arity(0)?;
                Ok(a.0.shape())
            }
            Prim::Conv2d(c) => {
                arity(2)?;
                let (x, k) = (image(args[0], "the input")?, image(args[1], "the kernel")?);
                grouped(c, x, k, args[0], args[1])?;
                let w = Window::conv(x[1], x[2], k[0], k[1], c.stride(), c.padding)?;
                ranked(&[x[0], w.out_h, w.out_w, k[3]])
            }
            Prim::Conv2dTransposeInput(c, xs) => {
                arity(2)?;
                let (x, k) = (image(*xs, "the input")?, image(args[1], "the kernel")?);
                grouped(c, x, k, *xs, args[1])?;
                let w = Window::conv(x[1], x[2], k[0], k[1], c.stride(), c.padding)?;
                expect_shape(args[0], &[x[0], w.out_h, w.out_w, k[3]], self.name())?;
                Ok(*xs)
            }
            Prim::Conv2dTransposeKernel(c, ks) => {
                arity(2)?;
                let (x, k) = (image(args[0], "the input")?, image(*ks, "the kernel")?);
                grouped(c, x, k, args[0], *ks)?;
                let w = Window::conv(x[1], x[2], k[0], k[1], c.stride(), c.padding)?;
                expect_shape(args[1], &[x[0], w.out_h, w.out_w, k[3]], self.name())?;
                Ok(*ks)
            }
            Prim::MaxPool2d(p) | Prim::AvgPool2d(p) => {
                arity(1)?;
                pooled(args[0], p)
            }
            Prim::MaxPool2dPick(p) => {
                arity(2)?;
                expect_shape(args[1], args[0].dims(), self.name())?;
                pooled(args[0], p)
            }
            Prim::MaxPool2dScatter(p) => {
                arity(2)?;
                let out = pooled(args[0], p)?;
                expect_shape(args[1], out.dims(), self.name())?;
                Ok(args[0])
            }
            Prim::AvgPool2dTranspose(p, xs) => {
                arity(1)?;
                let out = pooled(*xs, p)?;
                expect_shape(args[0], out.dims(), self.name())?;
                Ok(*xs)
            }
            Prim::DynIndex(sel) => {
                arity(1 + sel.len())?;
                positions(&args[1..])?;
                sel.part(args[0])
            }
            Prim::DynUpdate(sel) => {
                arity(2 + sel.len())?;
                let (x, v) = (args[0], args[1]);
                positions(&args[2..])?;
                if sel.part(x)? != v {
                    return Err(format!(
                        "cannot place a value of shape {v} at {} of an array of shape {x}",
                        crate::words::count(sel.len(), "index")
                    ));
                }
                Ok(x)
            }
            Prim::ReverseLoop(op) => {
                let primal = &op.primal;
                let (c, k) = (primal.carries, primal.consts());
                arity(2 + c + k + op.cotangents)?;
                positions(&args[..2])?;
                let ins: Vec<Shape> = op.back.inputs.iter().map(|v| op.back.var_shape(*v)).collect();
                if ins[0] != Shape::scalar() || ins[1..] != args[2..] {
                    return Err("the operands of `reverse_loop` do not match its body's inputs".into());
                }
                let outs = op.out_shapes();
                if outs.len() < op.cotangents || outs[..op.cotangents] != args[2 + c + k..] {
                    return Err("the cotangents of `reverse_loop` do not keep their shapes".into());
                }
                outs.first().copied().ok_or_else(|| "`reverse_loop` has no result".to_string())
            }
            Prim::Loop(op) => {
                let carries = op.carries;
                arity(2 + carries + op.consts())?;
                positions(&args[..2])?;
                let ins: Vec<Shape> = op.body.inputs.iter().map(|v| op.body.var_shape(*v)).collect();
                if ins[0] != Shape::scalar() || ins[1..] != args[2..] {
                    return Err("the operands of `for` do not match its body's inputs".into());
                }
                let outs = op.out_shapes();
                if outs.len() != carries || outs[..] != args[2..2 + carries] {
                    return Err("the results of a loop's body do not match its carried values".into());
                }
                // The first result; `verify` checks the others.
                outs.first().copied().ok_or_else(|| "a loop carries no value".to_string())
            }
            Prim::Custom(op) => {
                arity(op.primal.inputs.len())?;
                let ins: Vec<Shape> = op.primal.inputs.iter().map(|v| op.primal.var_shape(*v)).collect();
                if ins[..] != args[..] {
                    return Err(format!(
                        "the operands of `{}` do not match its function's inputs",
                        op.keyword()
                    ));
                }
                op.out_shapes()
                    .first()
                    .copied()
                    .ok_or_else(|| format!("a `{}` function gives no value", op.keyword()))
            }
            Prim::CustomLin(op) => {
                let crate::region::CustomRule::Vjp { bwd, .. } = &op.rule else {
                    return Err("a `custom_jvp` has no linear derivative equation".into());
                };
                let r = op.residuals();
                arity(bwd.inputs.len() - op.primal.outputs.len() + op.args)?;
                let ins: Vec<Shape> = bwd.inputs.iter().map(|v| bwd.var_shape(*v)).collect();
                let tangents: Vec<Shape> =
                    op.primal.inputs[..op.args].iter().map(|v| op.primal.var_shape(*v)).collect();
                let n_out = op.primal.outputs.len();
                if ins[..r] != args[..r]
                    || tangents[..] != args[r..r + op.args]
                    || ins[r + n_out..] != args[r + op.args..]
                {
                    return Err("the operands of a `custom_vjp` derivative do not match its programs".into());
                }
                op.out_shapes()
                    .first()
                    .copied()
                    .ok_or_else(|| "a `custom_vjp` function gives no value".to_string())
            }
            Prim::Cond(op) => {
                arity(1 + op.then.inputs.len())?;
                positions(&args[..1])?;
                for p in op.branches() {
                    let ins: Vec<Shape> = p.inputs.iter().map(|v| p.var_shape(*v)).collect();
                    if ins[..] != args[1..] {
                        return Err("the operands of `if` do not match its branches' inputs".into());
                    }
                }
                let (a, b) =
                    (op.out_shapes(), op.els.outputs.iter().map(|x| op.els.shape(*x)).collect::<Vec<_>>());
                if a != b {
                    return Err("the branches of `if` give results of different shapes".into());
                }
                a.first().copied().ok_or_else(|| "an `if` gives no value".to_string())
            }
        }
    }
}

/// Computed positions and loop bounds are scalars.
fn positions(args: &[Shape]) -> Result<(), String> {
    match args.iter().find(|s| !s.is_scalar()) {
        Some(s) => Err(format!("a position or bound must be a scalar, found shape {s}")),
        None => Ok(()),
    }
}

use crate::window::Window;

/// The four sizes of an NHWC image or an HWIO kernel.
fn image(s: Shape, what: &str) -> Result<[usize; 4], String> {
    match s.dims() {
        [a, b, c, d] => Ok([*a, *b, *c, *d]),
        _ => Err(format!("{what} must have rank 4 (`[batch, height, width, channels]` or `[height, width, in, out]`), found shape {s}")),
    }
}

/// Checks that an input's channels `x[3]` and a kernel's `k[2]` (input channels per group)
/// and `k[3]` (output channels) fit a convolution in `c.groups` groups.
fn grouped(c: &Conv, x: [usize; 4], k: [usize; 4], xs: Shape, ks: Shape) -> Result<(), String> {
    let g = c.groups();
    if g == 0 {
        return Err("a convolution needs at least one group".into());
    }
    if x[3] != k[2] * g {
        return Err(if g == 1 {
            format!("`conv2d` of an input with {} channels ({xs}) by a kernel for {} ({ks})", x[3], k[2])
        } else {
            format!(
                "`conv2d` in {g} groups of an input with {} channels ({xs}) needs a kernel for {} / {g} channels per group, found {} ({ks})",
                x[3], x[3], k[2]
            )
        });
    }
    if !k[3].is_multiple_of(g) {
        return Err(format!(
            "`conv2d` in {g} groups needs a kernel whose {} output channels ({ks}) split into {g} groups",
            k[3]
        ));
    }
    Ok(())
}

/// The shape of each window's result of a pooling over `x`.
fn pooled(x: Shape, p: &Pool) -> Result<Shape, String> {
    let x = image(x, "the input")?;
    let w = Window::pool(x[1], x[2], p.size(), p.stride())?;
    ranked(&[x[0], w.out_h, w.out_w, x[3]])
}

fn expect_shape(s: Shape, dims: &[usize], name: &str) -> Result<(), String> {
    if s.dims() == dims {
        Ok(())
    } else {
        Err(format!(
            "`{name}` needs an operand of shape {}, found {s}",
            Shape::from_dims(dims).unwrap_or_default()
        ))
    }
}

/// A shape of the given dimensions, if the rank is supported (sizes are checked later).
fn ranked(dims: &[usize]) -> Result<Shape, String> {
    Shape::from_dims(dims)
        .ok_or_else(|| format!("arrays have rank at most {}, not {}", crate::shape::MAX_RANK, dims.len()))
}

/// Whether the right-hand side `b` of a solve with the matrix (or stack) `a` is a vector per
/// matrix: when it has one axis fewer than `a` (NumPy 1's rule, so that a batch of vectors
/// needs no trailing axis); otherwise it is a matrix per matrix.
pub fn rhs_is_vector(a: Shape, b: Shape) -> bool {
    b.rank() + 1 == a.rank()
}

/// The batch axes (as a shape) and the size of a square matrix or a stack of them
/// (`[.., n, n]`).
pub fn square_stack(name: &str, a: Shape) -> Result<(Shape, usize), String> {
    match a.dims() {
        [batch @ .., m, n] if m == n => Ok((ranked(batch)?, *n)),
        _ => Err(format!("`{name}` needs a square matrix (or a stack of them); got shape {a}")),
    }
}

/// A shape from dimensions coming from user input, refusing absurd sizes.
pub fn checked_shape(dims: &[usize]) -> Result<Shape, String> {
    let shape = ranked(dims)?;
    match Shape::checked_size(dims) {
        Some(_) => Ok(shape),
        None => Err(too_large(dims)),
    }
}

/// The message for an array over the memory budget.
pub fn too_large(dims: &[usize]) -> String {
    let elements: f64 = dims.iter().map(|&d| d as f64).product();
    format!(
        "an array of shape [{}] is too large: {} elements need {}, and the memory budget allows {} per array",
        dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" × "),
        crate::shape::human_bytes(elements * 8.0),
        crate::shape::human_bytes(crate::shape::max_elements() as f64 * 8.0),
    )
}

/// NumPy's `matmul` shapes: `[.., m, k] @ [.., k, n] -> [.., m, n]` with the leading (batch)
/// axes broadcast; a vector on the left is a row, on the right a column, and its axis goes.
pub fn matmul_shape(a: Shape, b: Shape) -> Result<Shape, String> {
    let mismatch = || format!("shapes {a} and {b} do not fit in `@`: inner dimensions differ");
    let (ra, rb) = (a.rank(), b.rank());
    if ra == 0 || rb == 0 {
        return Err(format!("`@` needs arrays of rank 1 or more, got shapes {a} and {b}"));
    }
    let k_a = a.dim(ra - 1);
    let k_b = if rb == 1 { b.dim(0) } else { b.dim(rb - 2) };
    if k_a != k_b {
        return Err(mismatch());
    }
    let batch = |s: Shape| Shape::from_dims(&s.dims()[..s.rank().saturating_sub(2)]).unwrap_or_default();
    let batch = broadcast(batch(a), batch(b))
        .ok_or_else(|| format!("the batch axes of shapes {a} and {b} do not broadcast in `@`"))?;
    let mut dims = batch.dims().to_vec();
    if ra > 1 {
        dims.push(a.dim(ra - 2));
    }
    if rb > 1 {
        dims.push(b.dim(rb - 1));
    }
    ranked(&dims)
}

pub fn index_shape(x: Shape, sels: &[Sel]) -> Result<Shape, String> {
    if sels.len() != x.rank() {
        return Err(format!(
            "an array of shape {x} takes {}, got {}",
            crate::words::count_irregular(x.rank(), "index", "indices"),
            sels.len()
        ));
    }
    let mut dims = Vec::new();
    for (axis, (sel, &d)) in sels.iter().zip(x.dims()).enumerate() {
        match *sel {
            Sel::At(i) if i < d => {}
            Sel::At(i) => return Err(format!("index {i} is out of range for axis {axis} of length {d}")),
            Sel::Range(a, b) if a <= b && b <= d => dims.push(b - a),
            Sel::Range(a, b) => {
                return Err(format!("slice {a}:{b} is out of range for axis {axis} of length {d}"));
            }
        }
    }
    checked_shape(&dims)
}
