//! What a differentiation request asks for. The transformations themselves live in
//! `ad-autodiff`; lowering reaches them through `Host::derive`.

use crate::shape::Shape;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `f_jvp(args.., args_dot..) -> (out, out_dot)`
    Jvp,
    /// As `Jvp`, computed as the VJP of the VJP (the transpose of u ↦ uᵀJ).
    Jvp2,
    /// `f_vjp(args.., out_bar) -> (out, args_bar..)`
    Vjp,
    /// `f_grad(args..) -> grad`, or `(value, grad)`.
    Grad {
        with_value: bool,
    },
    /// `f_hvp(args.., v) -> H·v`
    Hvp,
    Hessian,
    Jacobian(JacMode),
    /// `f_vmap(args..)`: `f` applied to a batch, the parameters `wrt` (and the results)
    /// with a leading batch axis of this size.
    Vmap(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JacMode {
    /// One JVP per input element.
    Forward,
    /// One VJP per output element.
    Reverse,
    /// Forward when the input has at most as many elements as the output, else reverse.
    Auto,
}

impl Mode {
    pub fn suffix(self) -> &'static str {
        match self {
            Mode::Jvp => "jvp",
            Mode::Jvp2 => "jvp2",
            Mode::Vjp => "vjp",
            Mode::Grad { with_value: false } => "grad",
            Mode::Grad { with_value: true } => "value_and_grad",
            Mode::Hvp => "hvp",
            Mode::Hessian => "hessian",
            Mode::Jacobian(JacMode::Forward) => "jacfwd",
            Mode::Jacobian(JacMode::Reverse) => "jacrev",
            Mode::Jacobian(JacMode::Auto) => "jacobian",
            Mode::Vmap(_) => "vmap",
        }
    }

    /// What the mode computes, for messages: "gradient", "Hessian", ...
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Jvp | Mode::Jvp2 => "JVP",
            Mode::Vjp => "VJP",
            Mode::Grad { .. } => "gradient",
            Mode::Hvp => "Hessian-vector product",
            Mode::Hessian => "Hessian",
            Mode::Jacobian(_) => "Jacobian",
            Mode::Vmap(_) => "batched program",
        }
    }
}

/// Which derivative of `p`, with respect to which parameters (indices into `p.params`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    pub mode: Mode,
    pub wrt: Vec<usize>,
}

/// The shape of a Jacobian: output axes then input axes (JAX's rule), flattened to
/// `[size(out), size(in)]` only when that would pass the largest rank.
pub fn jacobian_shape(out: Shape, input: Shape) -> Shape {
    let dims: Vec<usize> = out.dims().iter().chain(input.dims()).copied().collect();
    Shape::from_dims(&dims).unwrap_or_else(|| Shape::matrix(out.size(), input.size()))
}
