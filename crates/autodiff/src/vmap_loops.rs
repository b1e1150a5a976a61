//! `vmap` of a loop: one loop over the batch, never one loop per batch element.
//!
//! The body is batched in the carried values that depend on the batch — those whose
//! initial values do, and those the body makes depend on it, to a fixed point — and in the
//! batched constants; the rest stay unbatched, as in the original.
//!
//! When every batch element runs the same iterations (the bounds and a `while` loop's
//! condition do not depend on the batch), that is all. Otherwise (as JAX does for a
//! batched `while` predicate) the loop runs while *any* element still runs, and an element
//! that has stopped keeps its carried values: each iteration computes which elements are
//! active and chooses, per element, the new values or the old ones. A `for` loop whose
//! bounds depend on the batch becomes such a loop: element `e` is active while
//! `lo[e] + k < hi[e]` at iteration `k`, and its body sees the index `lo[e] + k`.

use crate::emitter::Emitter;
use crate::vmap::{vmap_body, with_batch};
use ad_ir::prim::{Axes, Binary, Prim};
use ad_ir::region::{region_program, LoopOp};
use ad_ir::{Atom, Builder, Program, Shape, Var};

/// The batched loop for a loop equation with operands `args` (`flags`: which are batched):
/// its results and which of them are batched.
pub(crate) fn vmap_loop(
    em: &mut Emitter,
    op: &LoopOp,
    args: &[Atom],
    flags: &[bool],
    b: usize,
) -> Result<(Vec<Atom>, Vec<bool>), String> {
    let c = op.carries;
    let bounds = flags[0] || flags[1];
    let consts = &flags[2 + c..];
    // Which carried values depend on the batch, to a fixed point; a masked loop batches all
    // of them (an element's values are chosen per element).
    let mut carried: Vec<bool> = flags[2..2 + c].to_vec();
    let masked = loop {
        let ins: Vec<bool> =
            std::iter::once(bounds).chain(carried.iter().copied()).chain(consts.iter().copied()).collect();
        let (_, outs) = vmap_body(&op.body, &ins, b, None)?;
        let cond = match &op.cond {
            Some(cp) => vmap_body(cp, &ins, b, None)?.1[0],
            None => false,
        };
        let masked = bounds || cond;
        let grown: Vec<bool> = (0..c).map(|j| carried[j] || outs[j] || masked).collect();
        if grown == carried {
            break masked;
        }
        carried = grown;
    };
    let ins: Vec<bool> =
        std::iter::once(bounds).chain(carried.iter().copied()).chain(consts.iter().copied()).collect();
    let (body, _) = vmap_body(&op.body, &ins, b, Some(&carried))?;
    let cond = match &op.cond {
        Some(cp) => Some(vmap_body(cp, &ins, b, None)?.0),
        None => None,
    };
    // The operands: carried values that become batched are broadcast along the batch.
    let mut operands: Vec<Atom> = args[..2].to_vec();
    for j in 0..c {
        let a = args[2 + j];
        operands.push(if carried[j] && !flags[2 + j] {
            let target = with_batch(em.shape(a), b)?;
            em.broadcast_to(a, target)
        } else {
            a
        });
    }
    operands.extend_from_slice(&args[2 + c..]);
    let op = if masked {
        masked_loop(em, op, body, cond, &mut operands, bounds, b)?
    } else {
        LoopOp { body, carries: c, cond, replay: None }
    };
    let shapes: Vec<Shape> = op.out_shapes();
    let outs = em.b.push_multi(Prim::Loop(std::rc::Rc::new(op)), operands, &shapes, em.span);
    for o in &outs {
        em.mark(*o, false);
    }
    Ok((outs.into_iter().map(Atom::Var).collect(), carried))
}

/// The loop that runs while any batch element is active, keeping the carried values of the
/// others: a `while` loop over the iteration count `k`. With batched bounds, `lo` and `hi`
/// (broadcast to `[B]`) become two more constants of it, and `operands` its bounds `0, ∞`.
fn masked_loop(
    em: &mut Emitter,
    op: &LoopOp,
    body: Program,
    cond: Option<Program>,
    operands: &mut Vec<Atom>,
    bounds: bool,
    b: usize,
) -> Result<LoopOp, String> {
    let c = op.carries;
    let batch = Shape::vector(b);
    if bounds {
        for k in 0..2 {
            let x = operands[k];
            operands.push(if em.shape(x) == batch { x } else { em.broadcast_to(x, batch) });
        }
        operands[0] = Atom::Lit(0.0);
        operands[1] = Atom::Lit(f64::INFINITY);
    }
    // One program makes the condition (any element active) and the other the body (new
    // values where active, old ones elsewhere); both start by finding the active elements.
    let build = |whole: bool| -> Result<Program, String> {
        let mut bd = Builder::new();
        let span = body.span;
        let k = bd.new_var(Shape::scalar(), Some("k".into()));
        let mut inputs = vec![k];
        let carries: Vec<Var> = (0..c)
            .map(|j| {
                bd.new_var(
                    body.var_shape(body.inputs[1 + j]),
                    body.vars[body.inputs[1 + j].index()].name.clone(),
                )
            })
            .collect();
        inputs.extend(&carries);
        let consts: Vec<Var> = body.inputs[1 + c..]
            .iter()
            .map(|v| bd.new_var(body.var_shape(*v), body.vars[v.index()].name.clone()))
            .collect();
        inputs.extend(&consts);
        let (index, active) = if bounds {
            let lo = bd.new_var(batch, Some("lo".into()));
            let hi = bd.new_var(batch, Some("hi".into()));
            inputs.extend([lo, hi]);
            let i = bd.push(Prim::Binary(Binary::Add), [Atom::Var(lo), Atom::Var(k)], batch, span);
            let active = bd.push(Prim::Binary(Binary::Lt), [Atom::Var(i), Atom::Var(hi)], batch, span);
            (Atom::Var(i), Atom::Var(active))
        } else {
            let ins: Vec<Atom> = inputs.iter().map(|v| Atom::Var(*v)).collect();
            let cp = cond.as_ref().ok_or("internal error: a masked loop without bounds or condition")?;
            let go = bd.inline(cp, &ins)[0];
            (Atom::Var(k), go)
        };
        let mut ins = vec![index];
        ins.extend(carries.iter().chain(&consts).map(|v| Atom::Var(*v)));
        let outs = if whole {
            let any = bd.push(Prim::Sum(Axes::all(1)), [active], Shape::scalar(), span);
            let go =
                bd.push(Prim::Binary(Binary::Gt), [Atom::Var(any), Atom::Lit(0.0)], Shape::scalar(), span);
            vec![Atom::Var(go)]
        } else {
            let new = bd.inline(&body, &ins);
            new.iter()
                .zip(&carries)
                .map(|(n, old)| {
                    let s = bd.shape(Atom::Var(*old));
                    let mask = column(&mut bd, active, s, span);
                    Atom::Var(bd.push(Prim::Where, [mask, *n, Atom::Var(*old)], s, span))
                })
                .collect()
        };
        Ok(region_program(&body.name, bd.vars, inputs, bd.eqns, outs, span))
    };
    Ok(LoopOp { body: build(false)?, carries: c, cond: Some(build(true)?), replay: None })
}

/// The active elements `[B]` shaped to choose along the batch axis of values of shape `s`
/// (`[B, 1, .., 1]`).
fn column(bd: &mut Builder, active: Atom, s: Shape, span: ad_syntax::Span) -> Atom {
    let mut dims = vec![1; s.rank()];
    dims[0] = s.dim(0);
    let shape = Shape::from_dims(&dims).unwrap_or(s);
    if shape.rank() == 1 {
        return active;
    }
    Atom::Var(bd.push(Prim::Reshape(shape), [active], shape, span))
}
