//! Sums of padded arrays run as one step. Reverse mode makes them wherever a value is read
//! through shifted slices (`x[1:]` and `x[:-1]` in a finite difference, a Hessian's
//! basis): the cotangent of each slice is a `pad`, and the cotangents add up. Run as they
//! are, each `pad` fills a new array with zeros and copies its operand into it, and each
//! `+` reads two arrays to write a third. Here `pad(a, wa) + pad(b, wb) + c` is one step
//! that writes each row of the result once, from the rows of `a`, `b` and `c` it covers
//! (`kernels::structure::pad_sum`).
//!
//! The step adds the same numbers in the same order as the steps it replaces (a position
//! outside a term's rows adds that term's zero), so the result is the same to the bit. A
//! `pad` is absorbed only when the sum is the one step that reads its result.

use crate::interp::{Operand, Region, Step};
use ad_ir::prim::{Binary, Prim};
use ad_ir::Shape;
use std::rc::Rc;

/// The terms of a fused sum: each operand of the step is padded by its widths (zero widths
/// for a term that was not padded), then they are added in order.
#[derive(Debug)]
pub(crate) struct PadSum {
    pub widths: Vec<Vec<(usize, usize)>>,
    /// The shape of the sum (before any transpose).
    pub shape: Shape,
    /// Whether the step's result is the sum with its last two axes swapped.
    pub transposed: bool,
}

/// At most this many steps between a `pad` that borrows its operand and the sum that
/// would absorb it are looked at; beyond, it is left as it is.
const MAX_SCAN: usize = 64;

thread_local! {
    static FORMED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many pad-sum steps this thread has formed (the tests check that they formed).
pub fn pad_sums_formed() -> u64 {
    FORMED.with(|c| c.get())
}

/// Replaces each `+` of two arrays of its shape, at least one of them a `pad` only it
/// reads, by a pad-sum step; a sum whose first operand is such a step's result, read only
/// there, extends it (`(p + q) + r` adds left to right, as one step does); a transpose
/// (`x'`) of such a result, read only there, makes the step write its result transposed.
pub(crate) fn fuse_pad_sums(
    steps: Vec<Step>,
    outputs: &[Operand],
    shape_of: impl Fn(usize) -> Shape,
) -> Vec<Step> {
    let plain_step = |s: &Step| s.region.is_none() && s.transposed == [false; 2] && s.extra.is_empty();
    if !steps.iter().any(|s| matches!(s.prim, Prim::Pad(_)))
        || !steps.iter().any(|s| s.prim == Prim::Binary(Binary::Add) && plain_step(s))
    {
        return steps;
    }
    // How many times each register is read (the outputs count).
    let mut reads = std::collections::HashMap::<usize, usize>::new();
    for o in steps.iter().flat_map(|s| &s.args).chain(outputs) {
        if let Operand::Take(v) | Operand::Borrow(v) = o {
            *reads.entry(*v).or_default() += 1;
        }
    }
    let mut f = Fusion { out: Vec::with_capacity(steps.len()), producer: Default::default(), reads };
    for s in steps {
        if let Prim::Pad(_) = s.prim {
            if plain_step(&s) && s.args.len() == 1 {
                f.producer.insert(s.out, f.out.len());
            }
        }
        let s = match s.prim {
            Prim::Binary(Binary::Add) if plain_step(&s) && s.args.len() == 2 => f.sum(s, &shape_of),
            Prim::Transpose if plain_step(&s) && s.args.len() == 1 => f.transpose(s),
            _ => Some(s),
        };
        if let Some(s) = s {
            f.out.push(Some(s));
        }
    }
    f.out.into_iter().flatten().collect()
}

struct Fusion {
    /// The steps so far; an absorbed step leaves `None`.
    out: Vec<Option<Step>>,
    /// Register → the position in `out` of the pad or pad-sum step that computes it.
    producer: std::collections::HashMap<usize, usize>,
    /// How many times each register is read.
    reads: std::collections::HashMap<usize, usize>,
}

impl Fusion {
    /// The position of the pad step (or, with `sums`, the untransposed pad-sum step) that
    /// computes operand `o`, if that step can be absorbed: `o` is its only reader, and the operands it borrows outlive the steps in between (it
    /// reads them later than it did: none of those steps may take or drop them; they are
    /// looked at only when they are few, so that a long program does not cost a scan per
    /// sum).
    fn absorbable(&self, o: &Operand, sums: bool) -> Option<usize> {
        let (Operand::Take(v) | Operand::Borrow(v)) = o else { return None };
        let i = *self.producer.get(v)?;
        let p = self.out[i].as_ref()?;
        let kind_ok = match p.region.as_deref() {
            None => true,
            Some(Region::PadSum(sum)) => sums && !sum.transposed,
            Some(_) => false,
        };
        let ends = |s: &Step, r: usize| {
            s.args.iter().any(|o| matches!(o, Operand::Take(t) if *t == r)) || s.drop_after.contains(&r)
        };
        let between = &self.out[i + 1..];
        let outlives = p.args.iter().all(|o| match o {
            Operand::Borrow(r) => between.len() <= MAX_SCAN && !between.iter().flatten().any(|s| ends(s, *r)),
            Operand::Take(_) | Operand::Const(_) => true,
        });
        (self.reads.get(v) == Some(&1) && kind_ok && outlives).then_some(i)
    }

    /// `a + b` as a pad-sum step, if either operand is absorbed (the other then being an
    /// array of the sum's shape); `None` when it is (the step is in `out`), else the step.
    fn sum(&mut self, s: Step, shape_of: &impl Fn(usize) -> Shape) -> Option<Step> {
        let shape = s.shape;
        // A pad-sum is absorbed only as the first operand: `(p + q) + r` adds its terms in
        // order, `a + (p + q)` does not. A term has the sum's shape (no broadcasting).
        let of_shape =
            |i: Option<usize>| i.filter(|&i| self.out[i].as_ref().is_some_and(|p| p.shape == shape));
        let (a, b) =
            (of_shape(self.absorbable(&s.args[0], true)), of_shape(self.absorbable(&s.args[1], false)));
        let plain = |o: &Operand| match o {
            Operand::Take(v) | Operand::Borrow(v) => shape_of(*v) == shape,
            Operand::Const(a) => a.shape() == shape,
        };
        if (a.is_none() && b.is_none())
            || (a.is_none() && !plain(&s.args[0]))
            || (b.is_none() && !plain(&s.args[1]))
        {
            return Some(s);
        }
        let mut fused = Step {
            prim: s.prim.clone(),
            args: Vec::new(),
            out: s.out,
            extra: Vec::new(),
            shape,
            drop_after: s.drop_after.clone(),
            transposed: [false; 2],
            region: None,
            span: s.span,
        };
        let mut widths = Vec::new();
        for (operand, source) in s.args.into_iter().zip([a, b]) {
            let Some(i) = source else {
                widths.push(vec![(0, 0); shape.rank()]);
                fused.args.push(operand);
                continue;
            };
            // The absorbed step is gone: its operands and the values it dropped move here.
            let Some(p) = self.out[i].take() else { unreachable!("absorbable() checked the step is there") };
            fused.drop_after.extend(p.drop_after);
            match (&p.prim, p.region.as_deref()) {
                (Prim::Pad(w), None) => widths.push(w.clone()),
                (_, Some(Region::PadSum(inner))) => widths.extend(inner.widths.iter().cloned()),
                _ => unreachable!("only pad and pad-sum steps are producers"),
            }
            fused.args.extend(p.args);
        }
        // Operands are fetched in term order, which need not be the order the absorbed
        // steps ran in: a register read by two terms and taken by one is borrowed by
        // both and dropped after the step, as `Compiled::new` does for a value read
        // twice by one step.
        let taken: Vec<usize> = fused
            .args
            .iter()
            .filter_map(|o| if let Operand::Take(v) = o { Some(*v) } else { None })
            .collect();
        for v in taken {
            let same = |o: &Operand| matches!(o, Operand::Take(r) | Operand::Borrow(r) if *r == v);
            if fused.args.iter().filter(|o| same(o)).count() > 1 {
                for o in fused.args.iter_mut().filter(|o| matches!(o, Operand::Take(r) if *r == v)) {
                    *o = Operand::Borrow(v);
                }
                fused.drop_after.push(v);
            }
        }
        fused.region = Some(Rc::new(Region::PadSum(PadSum { widths, shape, transposed: false })));
        FORMED.with(|c| c.set(c.get() + 1));
        self.producer.insert(fused.out, self.out.len());
        self.out.push(Some(fused));
        None
    }

    /// `x'` of a pad-sum's result read only here: the pad-sum step, moved here, writes its
    /// result transposed; `None` when it does, else the step.
    fn transpose(&mut self, s: Step) -> Option<Step> {
        let Some(i) = self.absorbable(&s.args[0], true) else { return Some(s) };
        let Some(Region::PadSum(sum)) = self.out[i].as_ref().and_then(|p| p.region.as_deref()) else {
            return Some(s);
        };
        if sum.shape.rank() < 2 {
            return Some(s);
        }
        let region =
            Region::PadSum(PadSum { widths: sum.widths.clone(), shape: sum.shape, transposed: true });
        let Some(mut p) = self.out[i].take() else { unreachable!("absorbable() checked the step is there") };
        p.region = Some(Rc::new(region));
        p.out = s.out;
        p.shape = s.shape;
        p.span = s.span;
        p.drop_after.extend(s.drop_after);
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(prim: Prim, args: Vec<Operand>, out: usize) -> Step {
        Step {
            prim,
            args,
            out,
            extra: Vec::new(),
            shape: Shape::vector(4),
            drop_after: Vec::new(),
            transposed: [false; 2],
            region: None,
            span: ad_syntax::Span::DUMMY,
        }
    }

    /// `v + pad(v, w)`: the pad borrows `v` and the sum takes it, but the sum's step reads
    /// the terms in the sum's order, `v` first: taking it there would leave nothing for
    /// the pad's term. Both read it borrowed, and it is dropped after the step.
    #[test]
    fn a_register_two_terms_read_is_borrowed_by_both() {
        let steps = vec![
            step(Prim::Pad(vec![(0, 0)]), vec![Operand::Borrow(0)], 1),
            step(Prim::Binary(Binary::Add), vec![Operand::Take(0), Operand::Take(1)], 2),
        ];
        let fused = fuse_pad_sums(steps, &[Operand::Take(2)], |_| Shape::vector(4));
        assert_eq!(fused.len(), 1);
        let s = &fused[0];
        assert!(matches!(s.region.as_deref(), Some(Region::PadSum(_))));
        assert!(matches!(s.args[..], [Operand::Borrow(0), Operand::Borrow(0)]), "{:?}", s.args);
        assert_eq!(s.drop_after, [0]);
    }
}
