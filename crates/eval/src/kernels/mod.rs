//! One kernel per primitive. Shapes were checked when the program was lowered, so kernels
//! trust them; `out` is the result shape the program declares.

pub mod create;
pub mod dynamic;
pub mod elementwise;
pub mod factor;
pub mod layout;
pub mod linalg;
pub mod reduce;
pub(crate) mod simd;
pub mod structure;
pub mod window;

use ad_ir::prim::Prim;
use ad_ir::{Array, Shape};

/// Applies `prim` to `args` like [`apply`], checking positions computed at run time: only
/// indexing and updating at such positions can fail (a position out of range).
pub fn try_apply(prim: &Prim, mut args: Vec<Array>, out: Shape) -> Result<Array, String> {
    try_apply_in(prim, &mut args, out)
}

/// [`try_apply`] on operands in a buffer the caller reuses (the interpreter's, so that a
/// step allocates no list of operands): the operands a kernel consumes are taken from it,
/// and the caller clears what is left.
pub fn try_apply_in(prim: &Prim, args: &mut Vec<Array>, out: Shape) -> Result<Array, String> {
    match prim {
        Prim::DynIndex(sel) => dynamic::dyn_index(&args[0], sel, &args[1..], out),
        Prim::DynUpdate(sel) => {
            let positions = args.split_off(2);
            let v = operand(args, prim);
            let x = operand(args, prim);
            dynamic::dyn_update(x, &v, sel, &positions)
        }
        Prim::Check(message) => {
            let failed = args[1].data().iter().position(|ok| *ok == 0.0);
            match failed {
                None => Ok(args.swap_remove(0)),
                Some(k) => {
                    let shown = &args[2];
                    let value = shown.data().get(k).or(shown.data().first()).copied().unwrap_or(f64::NAN);
                    Err(message
                        .replace("{}", &ad_ir::display::fmt_num(value, ad_ir::display::DEFAULT_PRECISION)))
                }
            }
        }
        _ => Ok(apply_in(prim, args, out)),
    }
}

/// Applies `prim` to `args`, consuming them so that a sole owner's buffer can be reused.
pub fn apply(prim: &Prim, mut args: Vec<Array>, out: Shape) -> Array {
    apply_in(prim, &mut args, out)
}

/// [`apply`] on operands in a buffer the caller reuses (see [`try_apply_in`]).
pub fn apply_in(prim: &Prim, args: &mut Vec<Array>, out: Shape) -> Array {
    match prim {
        Prim::Unary(u) => {
            let a = operand(args, prim);
            elementwise::unary(*u, a)
        }
        Prim::Binary(b) => {
            let y = operand(args, prim);
            let x = operand(args, prim);
            elementwise::binary(*b, x, y, out)
        }
        Prim::Where => elementwise::select(&args[0], &args[1], &args[2], out),
        Prim::MatMul => linalg::matmul(&args[0], &args[1], out),
        Prim::SafeMatMul => linalg::safe_matmul(&args[0], &args[1], out),
        Prim::Solve => factor::solve(&args[0], &args[1], out),
        Prim::SafeSolve => factor::safe_solve(&args[0], &args[1], out),
        Prim::Cholesky => factor::cholesky(&args[0]),
        Prim::Decomp(d) => factor::decomp(&args[0], *d, out),
        Prim::SolveTriangular(lower) => factor::solve_triangular(&args[0], &args[1], *lower, out),
        Prim::LogAbsDet => factor::slogdet(&args[0], true, out),
        Prim::SignDet => factor::slogdet(&args[0], false, out),
        Prim::Transpose => structure::transpose(&args[0], out),
        Prim::Permute(perm) => structure::permute(&args[0], perm, out),
        Prim::Sum(axis) => reduce::sum(&args[0], *axis, out),
        Prim::Amax(axis) => reduce::amax(&args[0], *axis, out),
        Prim::Prod(axes) => reduce::prod(&args[0], *axes, out),
        Prim::Cumsum(axis, reverse) => reduce::cumsum(&args[0], *axis, *reverse),
        Prim::Flip(axes) => structure::flip(&args[0], *axes),
        Prim::Argmax(axis) => reduce::argmax(&args[0], *axis, out),
        Prim::Reshape(s) => args[0].reshaped(*s),
        Prim::BroadcastTo(s) => structure::broadcast_to(&args[0], *s),
        Prim::SumTo(s) => reduce::sum_to(&args[0], *s),
        Prim::Index(sels) => structure::index(&args[0], sels, out),
        Prim::Pad(w) => structure::pad(&args[0], w, out),
        Prim::Concat(axis) => structure::concat(&args[0], &args[1], *axis, out),
        Prim::Stack => structure::stack(args, out),
        Prim::StopGradient => operand(args, prim),
        Prim::Full(s, v) => Array::full(*s, v.0),
        Prim::Eye(n) => create::eye(*n),
        Prim::Arange(n) => create::arange(*n),
        Prim::Linspace(a, b, n) => create::linspace(a.0, b.0, *n),
        Prim::OneHot(k) => create::one_hot(&args[0], *k, out),
        Prim::Const(c) => (*c.0).clone(),
        Prim::Conv2d(c) => window::conv2d(&args[0], &args[1], *c),
        Prim::Conv2dTransposeInput(c, s) => window::conv2d_transpose_input(&args[0], &args[1], *c, *s),
        Prim::Conv2dTransposeKernel(c, s) => window::conv2d_transpose_kernel(&args[0], &args[1], *c, *s),
        Prim::MaxPool2d(p) => window::max_pool2d(&args[0], p.size(), p.stride()),
        Prim::MaxPool2dPick(p) => window::max_pool2d_pick(&args[0], &args[1], p.size(), p.stride()),
        Prim::MaxPool2dScatter(p) => window::max_pool2d_scatter(&args[0], &args[1], p.size(), p.stride()),
        Prim::AvgPool2d(p) => window::avg_pool2d(&args[0], p.size(), p.stride()),
        Prim::AvgPool2dTranspose(p, s) => window::avg_pool2d_transpose(&args[0], p.size(), p.stride(), *s),
        // Positions are checked by `try_apply`, and loops run in the interpreter, which calls
        // neither of these here.
        Prim::DynIndex(_)
        | Prim::DynUpdate(_)
        | Prim::Check(_)
        | Prim::Loop(_)
        | Prim::ReverseLoop(_)
        | Prim::Cond(_)
        | Prim::Custom(_)
        | Prim::CustomLin(_) => {
            panic!("internal error: `{}` reached the infallible kernel table", prim.name())
        }
    }
}

/// The last operand. Verified programs give every primitive its operands, so a missing one
/// is a bug, shown as one rather than as a NaN.
fn operand(args: &mut Vec<Array>, prim: &Prim) -> Array {
    args.pop().unwrap_or_else(|| panic!("internal error: `{}` applied to too few operands", prim.name()))
}
