//! `vmap` of a loop and of a loop's reversal: one loop over the batch, never one loop per
//! batch element.
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
//!
//! A reversal (`reverse_loop`) is batched the same way: its primal loop as above, its
//! backward step in the cotangents that depend on the batch (to a fixed point). Masked, an
//! inactive element's cotangents pass through its backward step unchanged and it
//! contributes nothing to the constants' cotangents (the derivative of keeping the old
//! values).

use crate::emitter::Emitter;
use crate::loops::{emit_loop, emit_reverse};
use crate::vmap::{vmap_body, with_batch};
use ad_ir::prim::{Axes, Binary, Prim};
use ad_ir::region::{region_program, LoopOp, ReverseOp};
use ad_ir::{Atom, Builder, Program, Shape, Var};
use std::rc::Rc;

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
    let (carried, masked) = carried_flags(op, flags, b)?;
    let (body, cond) = batched_primal(op, bounds, &carried, &flags[2 + c..], b)?;
    let mut operands = batched_operands(em, &args[..2 + c + op.consts()], flags, &carried, b)?;
    let (body, cond) = if masked {
        let m = Masked::new(em, &body, cond, &mut operands, bounds, c, b);
        (m.body()?, Some(m.cond()?))
    } else {
        (body, cond)
    };
    let outs = emit_loop(em, body, cond, c, operands, false);
    Ok((outs.into_iter().map(Atom::Var).collect(), carried))
}

/// The batched reversal for a `ReverseLoop` equation with operands `args` (`[lo, hi,
/// carries.., consts.., cotangents..]`, `flags`: which are batched): its results
/// (cotangents, then contributions) and which of them are batched.
pub(crate) fn vmap_reverse(
    em: &mut Emitter,
    rev: &ReverseOp,
    args: &[Atom],
    flags: &[bool],
    b: usize,
) -> Result<(Vec<Atom>, Vec<bool>), String> {
    let op = &rev.primal;
    let (c, k, n) = (op.carries, op.consts(), rev.cotangents);
    let bounds = flags[0] || flags[1];
    let (carried, masked) = carried_flags(op, &flags[..2 + c + k], b)?;
    let consts: Vec<bool> = flags[2 + c..2 + c + k].to_vec();
    // The cotangents that depend on the batch, to a fixed point over the backward step.
    let mut cts: Vec<bool> = if masked { vec![true; n] } else { flags[2 + c + k..].to_vec() };
    let back_in =
        |cts: &[bool]| -> Vec<bool> { [body_inputs(bounds, &carried, &consts), cts.to_vec()].concat() };
    let contributions = loop {
        let (_, outs) = vmap_body(&rev.back, &back_in(&cts), b, None)?;
        let grown: Vec<bool> = (0..n).map(|j| cts[j] || outs[j]).collect();
        if grown == cts {
            break outs[n..].to_vec();
        }
        cts = grown;
    };
    let contributions: Vec<bool> = if masked { vec![true; contributions.len()] } else { contributions };
    let want: Vec<bool> = cts.iter().chain(&contributions).copied().collect();
    let (back, _) = vmap_body(&rev.back, &back_in(&cts), b, Some(&want))?;
    let (body, cond) = batched_primal(op, bounds, &carried, &consts, b)?;
    // Operands: the primal loop's, then the cotangents.
    let mut operands = batched_operands(em, &args[..2 + c + k], &flags[..2 + c + k], &carried, b)?;
    let ct_operands = widen(em, &args[2 + c + k..], &flags[2 + c + k..], &cts, b)?;
    let new = if masked {
        let m = Masked::new(em, &body, cond, &mut operands, bounds, c, b);
        let primal = LoopOp { body: m.body()?, carries: c, cond: Some(m.cond()?), replay: None };
        ReverseOp {
            primal: Rc::new(primal),
            back: m.back(&back, n)?,
            cotangents: n,
            wrt: rev.wrt.clone(),
            tangent_of: None,
        }
    } else {
        let primal = LoopOp { body, carries: c, cond, replay: None };
        ReverseOp { primal: Rc::new(primal), back, cotangents: n, wrt: rev.wrt.clone(), tangent_of: None }
    };
    operands.extend(ct_operands);
    let outs = emit_reverse(em, new, operands);
    Ok((outs.into_iter().map(Atom::Var).collect(), want))
}

/// Which carried values of `op` depend on the batch (to a fixed point), and whether the
/// loop must be masked (its elements would run different iterations; then every carried
/// value is batched).
fn carried_flags(op: &LoopOp, flags: &[bool], b: usize) -> Result<(Vec<bool>, bool), String> {
    let c = op.carries;
    let bounds = flags[0] || flags[1];
    let consts = &flags[2 + c..];
    let mut carried: Vec<bool> = flags[2..2 + c].to_vec();
    loop {
        let ins = body_inputs(bounds, &carried, consts);
        let (_, outs) = vmap_body(&op.body, &ins, b, None)?;
        let cond = match &op.cond {
            Some(cp) => vmap_body(cp, &ins, b, None)?.1[0],
            None => false,
        };
        let masked = bounds || cond;
        let grown: Vec<bool> = (0..c).map(|j| carried[j] || outs[j] || masked).collect();
        if grown == carried {
            return Ok((carried, masked));
        }
        carried = grown;
    }
}

/// Which of a loop body's inputs `[i, carries.., consts..]` are batched: the index when the
/// bounds are.
fn body_inputs(bounds: bool, carried: &[bool], consts: &[bool]) -> Vec<bool> {
    [&[bounds][..], carried, consts].concat()
}

/// The body (its carried values batched as `carried`) and condition of `op` batched.
fn batched_primal(
    op: &LoopOp,
    bounds: bool,
    carried: &[bool],
    consts: &[bool],
    b: usize,
) -> Result<(Program, Option<Program>), String> {
    let ins = body_inputs(bounds, carried, consts);
    let (body, _) = vmap_body(&op.body, &ins, b, Some(carried))?;
    let cond = match &op.cond {
        Some(cp) => Some(vmap_body(cp, &ins, b, None)?.0),
        None => None,
    };
    Ok((body, cond))
}

/// A loop's operands `[lo, hi, carries.., consts..]` with the carried values that become
/// batched broadcast along the batch.
fn batched_operands(
    em: &mut Emitter,
    args: &[Atom],
    flags: &[bool],
    carried: &[bool],
    b: usize,
) -> Result<Vec<Atom>, String> {
    let c = carried.len();
    let mut operands: Vec<Atom> = args[..2].to_vec();
    operands.extend(widen(em, &args[2..2 + c], &flags[2..2 + c], carried, b)?);
    operands.extend_from_slice(&args[2 + c..]);
    Ok(operands)
}

/// `args` (batched as `flags`), those that must be batched (`want`) broadcast along it.
fn widen(
    em: &mut Emitter,
    args: &[Atom],
    flags: &[bool],
    want: &[bool],
    b: usize,
) -> Result<Vec<Atom>, String> {
    let mut out = Vec::with_capacity(args.len());
    for ((a, f), w) in args.iter().zip(flags).zip(want) {
        out.push(if *w && !*f {
            let target = with_batch(em.shape(*a), b)?;
            em.broadcast_to(*a, target)
        } else {
            *a
        });
    }
    Ok(out)
}

/// The programs of a masked loop: a `while` over the iteration count `k` whose inputs are
/// `[k, carries.., consts.., (lo, hi)]`; each starts by finding the active elements (and the
/// index they see). With batched bounds, `lo` and `hi` (broadcast to `[B]`) become two more
/// constants and the operands' bounds `0, ∞`.
struct Masked {
    /// The batched body, whose inputs give the shapes of the carried values and constants.
    like: Program,
    cond: Option<Program>,
    bounds: bool,
    c: usize,
    batch: Shape,
}

/// The start of one of a masked loop's programs.
struct Start {
    b: Builder,
    inputs: Vec<Var>,
    /// The body's inputs: the index it sees, the carried values, the constants.
    ins: Vec<Atom>,
    carries: Vec<Var>,
    active: Atom,
}

impl Masked {
    fn new(
        em: &mut Emitter,
        like: &Program,
        cond: Option<Program>,
        operands: &mut Vec<Atom>,
        bounds: bool,
        c: usize,
        b: usize,
    ) -> Masked {
        let batch = Shape::vector(b);
        if bounds {
            for k in 0..2 {
                let x = operands[k];
                operands.push(if em.shape(x) == batch { x } else { em.broadcast_to(x, batch) });
            }
            operands[0] = Atom::Lit(0.0);
            operands[1] = Atom::Lit(f64::INFINITY);
        }
        Masked { like: like.clone(), cond, bounds, c, batch }
    }

    fn start(&self) -> Result<Start, String> {
        let (c, like, span) = (self.c, &self.like, self.like.span);
        let mut b = Builder::new();
        let k = b.new_var(Shape::scalar(), Some("k".into()));
        let mut inputs = vec![k];
        let var = |b: &mut Builder, v: &Var| b.new_var(like.var_shape(*v), like.vars[v.index()].name.clone());
        let carries: Vec<Var> = like.inputs[1..1 + c].iter().map(|v| var(&mut b, v)).collect();
        let consts: Vec<Var> = like.inputs[1 + c..].iter().map(|v| var(&mut b, v)).collect();
        inputs.extend(&carries);
        inputs.extend(&consts);
        let (index, active) = if self.bounds {
            let lo = b.new_var(self.batch, Some("lo".into()));
            let hi = b.new_var(self.batch, Some("hi".into()));
            inputs.extend([lo, hi]);
            let i = b.push(Prim::Binary(Binary::Add), [Atom::Var(lo), Atom::Var(k)], self.batch, span);
            let active = b.push(Prim::Binary(Binary::Lt), [Atom::Var(i), Atom::Var(hi)], self.batch, span);
            (Atom::Var(i), Atom::Var(active))
        } else {
            let all: Vec<Atom> = inputs.iter().map(|v| Atom::Var(*v)).collect();
            let cp = self.cond.as_ref().ok_or("internal error: a masked loop without bounds or condition")?;
            let go = b.inline(cp, &all)[0];
            (Atom::Var(k), go)
        };
        let mut ins = vec![index];
        ins.extend(carries.iter().chain(&consts).map(|v| Atom::Var(*v)));
        Ok(Start { b, inputs, ins, carries, active })
    }

    fn finish(&self, s: Start, outputs: Vec<Atom>) -> Program {
        region_program(&self.like.name, s.b.vars, s.inputs, s.b.eqns, outputs, self.like.span)
    }

    /// The condition: whether any element is active.
    fn cond(&self) -> Result<Program, String> {
        let mut s = self.start()?;
        let span = self.like.span;
        let any = s.b.push(Prim::Sum(Axes::all(1)), [s.active], Shape::scalar(), span);
        let go = s.b.push(Prim::Binary(Binary::Gt), [Atom::Var(any), Atom::Lit(0.0)], Shape::scalar(), span);
        Ok(self.finish(s, vec![Atom::Var(go)]))
    }

    /// The body: the batched body's new values where active, the old ones elsewhere.
    fn body(&self) -> Result<Program, String> {
        let mut s = self.start()?;
        let new = s.b.inline(&self.like, &s.ins);
        let mut outs = Vec::with_capacity(self.c);
        for (n, old) in new.iter().zip(&s.carries) {
            outs.push(choose(&mut s.b, s.active, *n, Atom::Var(*old), self.like.span));
        }
        Ok(self.finish(s, outs))
    }

    /// The backward step from the batched one `back` (inputs `[i, carries.., consts..,
    /// cotangents (n)..]`): where inactive, the cotangents pass unchanged and the
    /// contributions are zero.
    fn back(&self, back: &Program, n: usize) -> Result<Program, String> {
        let mut s = self.start()?;
        let first = back.inputs.len() - n;
        let cts: Vec<Var> = back.inputs[first..]
            .iter()
            .map(|v| s.b.new_var(back.var_shape(*v), back.vars[v.index()].name.clone()))
            .collect();
        s.inputs.extend(&cts);
        let mut ins = s.ins.clone();
        ins.extend(cts.iter().map(|v| Atom::Var(*v)));
        let outs = s.b.inline(back, &ins);
        let span = self.like.span;
        let mut masked = Vec::with_capacity(outs.len());
        for (j, o) in outs.iter().enumerate() {
            let old = if j < n { Atom::Var(cts[j]) } else { Atom::Lit(0.0) };
            masked.push(choose(&mut s.b, s.active, *o, old, span));
        }
        Ok(self.finish(s, masked))
    }
}

/// `new` where the batch element is active, else `old` (`active` is `[B]`, `new` `[B, ..]`).
fn choose(b: &mut Builder, active: Atom, new: Atom, old: Atom, span: ad_syntax::Span) -> Atom {
    let s = b.shape(new);
    let mut dims = vec![1; s.rank()];
    dims[0] = s.dim(0);
    let column = match Shape::from_dims(&dims) {
        Some(shape) if shape.rank() > 1 => Atom::Var(b.push(Prim::Reshape(shape), [active], shape, span)),
        _ => active,
    };
    Atom::Var(b.push(Prim::Where, [column, new, old], s, span))
}
