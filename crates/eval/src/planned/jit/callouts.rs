//! The functions compiled code calls: one step it does not do itself, long moves, a nested
//! loop's bounds, and the scalar functions that are not instructions.

use super::{call_out, Ctx};
use crate::planned::steps::{exec, Nested, Step};
use crate::planned::{Iteration, Out, Slot};
use ad_ir::prim::{Binary, Unary};

/// One step the compiled code does not do itself.
pub(super) unsafe extern "C" fn step_call(ctx: *mut Ctx, slab: *mut f64, step: *const Step) -> u32 {
    // SAFETY: `step` points into the plan that owns the compiled code; see `call_out`.
    unsafe { call_out(ctx, slab, |s, scratch| exec(std::slice::from_ref(&*step), s, scratch)) }
}

/// A loop's carried values moved back, when they are too long to move in registers.
pub(super) unsafe extern "C" fn moves_call(ctx: *mut Ctx, slab: *mut f64, it: *const Iteration) -> u32 {
    // SAFETY: as in `step_call`.
    unsafe {
        call_out(ctx, slab, |s, scratch| {
            (*it).move_back(s, scratch);
            Ok(())
        })
    }
}

/// A nested loop's bounds (checked as the planned steps check them, written to `bounds`)
/// and the copies of its carried values into place.
pub(super) unsafe extern "C" fn enter_call(
    ctx: *mut Ctx,
    slab: *mut f64,
    l: *const Nested,
    bounds: *mut i64,
) -> u32 {
    // SAFETY: as in `step_call`; `bounds` is a stack slot of two `i64`s of the caller.
    unsafe {
        call_out(ctx, slab, |s, _| {
            let (lo, hi) = (*l).enter(s)?;
            *bounds = lo;
            *bounds.add(1) = hi.unwrap_or(i64::MAX);
            Ok(())
        })
    }
}

/// A value moved to where a branch leaves it, when it is too long to move in registers.
pub(super) unsafe extern "C" fn put_call(ctx: *mut Ctx, slab: *mut f64, m: *const (Out, Slot)) -> u32 {
    // SAFETY: as in `step_call`.
    unsafe {
        call_out(ctx, slab, |s, _| {
            let (from, to) = *m;
            crate::planned::put(s, from, to);
            Ok(())
        })
    }
}

/// A long unary step on a run, by the interpreter's (vectorised) kernel: `src` is null when
/// the step writes over its operand.
pub(super) unsafe extern "C" fn unary_slice_call(op: u32, dst: *mut f64, src: *const f64, n: usize) {
    // SAFETY: the compiled code passes places of the slab it was planned for, of `n`
    // elements each, either the same place (`src` null) or places that do not overlap.
    let (dst, src) = unsafe {
        let d = std::slice::from_raw_parts_mut(dst, n);
        (d, (!src.is_null()).then(|| std::slice::from_raw_parts(src, n)))
    };
    crate::kernels::elementwise::unary_slice(Unary::ALL[op as usize], dst, src);
}

pub(super) extern "C" fn unary_call(op: u32, x: f64) -> f64 {
    Unary::ALL[op as usize].eval(x)
}

pub(super) extern "C" fn binary_call(op: u32, x: f64, y: f64) -> f64 {
    Binary::ALL[op as usize].eval(x, y)
}
