//! Jacobians one pass per basis direction, for programs whose linear values are matrices
//! (where tangents cannot be batched): the one-direction program is derived once and
//! inlined once per direction.

use crate::assemble::jacobian_result;
use crate::first_order::first_order;
use ad_ir::prim::{ConstArray, Prim};
use ad_ir::transform::{jacobian_shape, JacMode, Mode, Request};
use ad_ir::{Array, Atom, Builder, Program, Shape, Var};
use std::rc::Rc;

/// Unrolled Jacobians (one pass per basis direction, inlined) stop at this many equations:
/// past it, the program alone would take gigabytes.
const MAX_UNROLLED_EQNS: usize = 4_000_000;

/// Directions of at most this many elements are written as literals (they read best);
/// larger ones as `one_hot`, so that n directions cost n small equations instead of n²
/// numbers in the program.
const LITERAL_DIRECTION: usize = 16;

/// The basis direction `k` of shape `s`: a one-hot array with a 1 at flat position `k`.
fn basis(b: &mut Builder, s: Shape, k: usize, span: ad_syntax::Span) -> Atom {
    if s.size() <= LITERAL_DIRECTION {
        let mut d = vec![0.0; s.size()];
        d[k] = 1.0;
        return b.emit(Prim::Const(ConstArray(Rc::new(Array::new(s, d)))), vec![], span);
    }
    let flat = b.emit(Prim::OneHot(s.size()), vec![Atom::Lit(k as f64)], span);
    if s.rank() == 1 {
        flat
    } else {
        b.emit(Prim::Reshape(s), vec![flat], span)
    }
}

/// The Jacobian of `p`'s single array result with respect to its array parameter `i` (the
/// planner has checked both), by one JVP per input element (forward) or one VJP per output
/// element (reverse), unrolled: for programs whose linear values are matrices, where
/// batching does not apply. The primal part is shared after simplification.
pub(crate) fn jacobian_unrolled(p: &Program, i: usize, mode: JacMode) -> Result<Program, String> {
    let leaf = p.param_ranges()[i].start;
    let in_shape = p.var_shape(p.inputs[leaf]);
    let out_shape = p.shape(p.outputs[0]);
    let (n_in, n_out) = (in_shape.size(), out_shape.size());
    let forward = match mode {
        JacMode::Forward => true,
        JacMode::Reverse => false,
        JacMode::Auto => n_in <= n_out,
    };
    // The one-direction program, then one inlined copy of it per basis direction.
    let (dir_prog, dir_shape) = if forward {
        (first_order(p, &Request { mode: Mode::Jvp, wrt: vec![i] })?, in_shape)
    } else {
        (first_order(p, &Request { mode: Mode::Vjp, wrt: vec![i] })?, out_shape)
    };
    let mut b = Builder::new();
    let inputs: Vec<Var> =
        p.inputs.iter().map(|v| b.new_var(p.var_shape(*v), p.vars[v.index()].name.clone())).collect();
    let n_params = p.param_leaves();
    let span = p.span;
    let count = if forward { n_in } else { n_out };
    let flat_len = if forward { n_out } else { n_in };
    if count.saturating_mul(dir_prog.eqns.len().max(1)) > MAX_UNROLLED_EQNS {
        return Err(format!(
            "the Jacobian of `{}` would take {count} passes of {} equations each, more than the limit of {MAX_UNROLLED_EQNS} equations",
            p.name,
            dir_prog.eqns.len()
        ));
    }
    let mut parts = Vec::with_capacity(count);
    for k in 0..count {
        let e = basis(&mut b, dir_shape, k, span);
        // The direction program's inputs: parameters, the direction, then captures.
        let mut args: Vec<Atom> = inputs[..n_params].iter().map(|v| Atom::Var(*v)).collect();
        args.push(e);
        args.extend(inputs[n_params..].iter().map(|v| Atom::Var(*v)));
        let outs = b.inline(&dir_prog, &args);
        // Forward: (out, out_dot); reverse: (out, in_bar).
        let d = outs[1];
        let flat = Shape::vector(flat_len);
        let d = if b.shape(d) == flat { d } else { b.emit(Prim::Reshape(flat), vec![d], span) };
        parts.push(d);
    }
    let stacked = b.emit(Prim::Stack, parts, span);
    // Forward stacks columns: transpose them into rows.
    let rows = if forward && n_out > 1 { b.emit(Prim::Transpose, vec![stacked], span) } else { stacked };
    Ok(jacobian_result(p, b, &inputs, rows, jacobian_shape(out_shape, in_shape)))
}
