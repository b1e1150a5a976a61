//! `derive`: the one entry point of differentiation. Checks a request, dispatches it to the
//! first-order recipes or to the Jacobian planner, and finishes the result. Every result is
//! an ordinary program with parameters and a result structure, so it prints as `.ad` and
//! can be derived again.

use crate::assemble::finish;
use crate::first_order::{check_scalar_output, first_order, grad_program, single_array_param};
use crate::planner;
use ad_ir::Program;

pub use ad_ir::transform::{jacobian_shape, JacMode, Mode, Request};

/// The program `req` derives from `p`.
pub fn derive(p: &Program, req: &Request) -> Result<Program, String> {
    for &i in &req.wrt {
        let d = p.params.get(i).ok_or_else(|| format!("`{}` has no parameter {i}", p.name))?;
        if d.tree.holds_function() {
            return Err(format!("cannot differentiate with respect to `{}`: it holds a function", d.name));
        }
    }
    if p.out_tree.holds_function() {
        return Err(format!("cannot differentiate `{}`: its result holds a function", p.name));
    }
    let out = match req.mode {
        Mode::Hessian => finish(p, req, hessian_program(p, &req.wrt)?)?,
        Mode::Vmap(b) => crate::vmap::vmap_program(p, req, b)?,
        Mode::Jacobian(m) => {
            let i = single_array_param(p, &req.wrt, "`jacobian`")?;
            planner::plan(p, i, m)?.program
        }
        _ => finish(p, req, first_order(p, req)?)?,
    };
    // A `custom_vjp` derivative left to run forwards needs its `bwd` transposed.
    crate::custom::check_derived(&out)?;
    Ok(out)
}

/// The Hessian: forward over reverse, all directions at once where the program allows.
fn hessian_program(p: &Program, wrt: &[usize]) -> Result<Program, String> {
    let i = single_array_param(p, wrt, "`hessian`")?;
    check_scalar_output(p, "`hessian`")?;
    let g = grad_program(p, &[i], &p.param_ranges()[i].clone().collect::<Vec<_>>(), false)?;
    planner::jacobian_program(&g, i, JacMode::Forward)
}
