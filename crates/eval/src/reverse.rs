//! Reverse mode through a loop whose carried values the program does not record
//! (`Prim::ReverseLoop`, DESIGN §8): the primal loop runs forwards keeping what the backward
//! sweep needs, then the backward step runs from the last iteration to the first.
//!
//! What is kept depends on the memory budget (`ad_ir::shape::tape_budget`):
//! - **Recorded**: every iteration's carried values, when they fit. Each iteration's body
//!   then runs once forwards (and its intermediates once more inside the backward step).
//! - **Two levels**, when they do not but half the budget holds every `k`-th state for a
//!   segment length `k` that also fits in the other half: each segment is recomputed once
//!   from its checkpoint, recorded, and reversed (one extra forward evaluation per step).
//! - **Binomial checkpoints** (Griewank and Walther's `revolve`) beyond that: with `s`
//!   snapshots and at most `r` recomputations of each step, `C(s + r, s)` steps can be
//!   reversed, so the recomputation grows like the `s`-th root of the trip count.
//!
//! A `for` loop knows its trip count before it starts; a `while` loop records until the
//! budget is reached, then only counts its remaining iterations, and reverses with
//! checkpoints placed for the count it found (an online scheme: one extra forward sweep
//! at most).

use crate::interp::{Compiled, RunError};
use crate::kernels;
use ad_ir::prim::{Binary, Prim};
use ad_ir::{Array, Shape};
use std::cell::Cell;

/// At most this many snapshots are placed by the binomial schedule (besides the loop's
/// initial values): 64 snapshots reverse 10^9 steps with 4 recomputations of each, and the
/// schedule's recursion stays shallow.
const MAX_SNAPSHOTS: usize = 64;

/// What the last reversal did, for tests and for the book's table of memory against
/// recomputation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReversalStats {
    /// Iterations of the loop.
    pub trips: u64,
    /// Evaluations of the body, forwards (the recorded reversal needs `trips`).
    pub forward_steps: u64,
    /// The most carried states held at once.
    pub peak_states: u64,
    /// How the carried values were kept.
    pub strategy: Strategy,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    #[default]
    Recorded,
    TwoLevel,
    Binomial,
}

thread_local! {
    static LAST: Cell<ReversalStats> = Cell::new(ReversalStats::default());
}

/// What the last reversal on this thread did.
pub fn last_reversal() -> ReversalStats {
    LAST.with(|s| s.get())
}

/// The programs of a reversal, prepared once.
#[derive(Debug)]
pub(crate) struct Reversal {
    pub body: Compiled,
    pub cond: Option<Compiled>,
    pub back: Compiled,
    pub carries: usize,
    pub consts: usize,
    pub cotangents: usize,
    /// The shapes of the backward step's results (for a loop of no iterations).
    pub out_shapes: Vec<Shape>,
    /// The three programs planned in one buffer, when they can be (`planned.rs`).
    pub plan: Option<Box<crate::planned::ReversalPlan>>,
}

type State = Vec<Array>;

struct Run<'a> {
    r: &'a Reversal,
    consts: Vec<Array>,
    lo: i64,
    stats: ReversalStats,
    held: u64,
}

impl Run<'_> {
    fn inputs(&self, j: u64, state: &[Array], extra: &[Array]) -> Vec<Array> {
        let mut v = Vec::with_capacity(1 + state.len() + self.consts.len() + extra.len());
        v.push(Array::scalar((self.lo + j as i64) as f64));
        v.extend(state.iter().cloned());
        v.extend(self.consts.iter().cloned());
        v.extend(extra.iter().cloned());
        v
    }

    /// One forward step from the values before iteration `j`.
    fn step(&mut self, j: u64, state: &[Array]) -> Result<State, RunError> {
        if crate::interp::interrupted() {
            return Err(RunError::Interrupted);
        }
        self.stats.forward_steps += 1;
        match &self.r.plan {
            Some(p) => p.step(self.lo + j as i64, state),
            None => self.r.body.run(self.inputs(j, state, &[])),
        }
    }

    /// Whether iteration `j` runs (a `while` loop's condition; always for a `for`).
    fn goes(&self, j: u64, state: &[Array]) -> Result<bool, RunError> {
        match (&self.r.plan, &self.r.cond) {
            (Some(p), _) => p.goes(self.lo + j as i64, state),
            (None, None) => Ok(true),
            (None, Some(c)) => Ok(crate::interp::holds(&c.run(self.inputs(j, state, &[]))?)),
        }
    }

    /// The values before iteration `to`, from those before iteration `from`.
    fn advance(&mut self, from: u64, state: &[Array], to: u64) -> Result<State, RunError> {
        let mut s = state.to_vec();
        for j in from..to {
            s = self.step(j, &s)?;
        }
        Ok(s)
    }

    /// The backward step of iteration `j`: updates the cotangents and adds to `acc`.
    fn back(&mut self, j: u64, state: &[Array], ct: &mut State, acc: &mut State) -> Result<(), RunError> {
        let mut outs = match &self.r.plan {
            Some(p) => p.back(self.lo + j as i64, state, ct)?,
            None => self.r.back.run(self.inputs(j, state, ct))?,
        };
        let contributions = outs.split_off(self.r.cotangents);
        *ct = outs;
        for (a, c) in acc.iter_mut().zip(contributions) {
            let s = a.shape();
            let prev = std::mem::replace(a, Array::scalar(0.0));
            *a = kernels::apply(&Prim::Binary(Binary::Add), vec![prev, c], s);
        }
        Ok(())
    }

    fn hold(&mut self, n: u64) {
        self.held += n;
        self.stats.peak_states = self.stats.peak_states.max(self.held);
    }

    /// Reverses iterations `a..b` from the values before `a`, with `free` more snapshots.
    fn binomial(
        &mut self,
        a: u64,
        state: &[Array],
        b: u64,
        free: usize,
        ct: &mut State,
        acc: &mut State,
    ) -> Result<(), RunError> {
        let l = b - a;
        if l == 0 {
            return Ok(());
        }
        if l == 1 {
            return self.back(a, state, ct, acc);
        }
        if free == 0 {
            // No snapshot left: every step is recomputed from `a`.
            for j in (a..b).rev() {
                let s = self.advance(a, state, j)?;
                self.back(j, &s, ct, acc)?;
            }
            return Ok(());
        }
        // The fewest recomputations `r` that can reverse `l` steps with `free` snapshots;
        // the snapshot goes where the rest can be reversed with one snapshot fewer.
        let mut r = 1;
        while beta(free, r) < l {
            r += 1;
        }
        let m = a + l.saturating_sub(beta(free - 1, r)).max(1);
        let snapshot = self.advance(a, state, m)?;
        self.hold(1);
        self.binomial(m, &snapshot, b, free - 1, ct, acc)?;
        drop(snapshot);
        self.held -= 1;
        self.binomial(a, state, m, free, ct, acc)
    }
}

/// `C(s + r, s)`, the number of steps `s` snapshots and `r` recomputations can reverse,
/// saturating.
fn beta(s: usize, r: u64) -> u64 {
    let mut x: u128 = 1;
    for k in 1..=s as u128 {
        x = x * (r as u128 + k) / k;
        if x > u64::MAX as u128 {
            return u64::MAX;
        }
    }
    x as u64
}

/// Bytes one carried state takes, with each array's bookkeeping: its buffer, the shared
/// header around it (allocated separately, with the allocator's rounding) and the array
/// itself in the state's vector.
fn state_bytes(s: &[Array]) -> u64 {
    state_bytes_of(&s.iter().map(Array::shape).collect::<Vec<_>>())
}

/// Bytes one carried state of arrays of these shapes takes in a reversal's record.
pub fn state_bytes_of(shapes: &[Shape]) -> u64 {
    let each = |s: &Shape| (s.size() as u64 * 8).max(16) + 48 + std::mem::size_of::<Array>() as u64;
    32 + shapes.iter().map(each).sum::<u64>()
}

/// Runs a reversal: `args` are `[lo, hi, carries.., consts.., cotangents..]` with the
/// bounds already checked (`lo`, and `hi` or none for a `while` loop).
pub(crate) fn run(r: &Reversal, lo: i64, hi: Option<i64>, args: Vec<Array>) -> Result<Vec<Array>, RunError> {
    let mut it = args.into_iter().skip(2);
    let init: State = it.by_ref().take(r.carries).collect();
    let consts: Vec<Array> = it.by_ref().take(r.consts).collect();
    let mut ct: State = it.collect();
    if let Some(p) = &r.plan {
        p.start(hi.map(|h| h.saturating_sub(lo)), &consts);
    }
    let budget = ad_ir::shape::tape_budget();
    let slots = (budget / state_bytes(&init)).max(1);
    // A planned `for` loop whose record fits is reversed in its slab, the record flat.
    if let (Some(p), Some(h)) = (&r.plan, hi) {
        let trips = (h - lo).max(0) as u64;
        if trips <= slots {
            let out = p.recorded(lo, trips, &init, &ct)?;
            let stats = ReversalStats {
                trips,
                forward_steps: trips,
                peak_states: trips + 1,
                strategy: Strategy::Recorded,
            };
            LAST.with(|s| s.set(stats));
            return Ok(out);
        }
    }
    let mut acc: State = r.out_shapes[r.cotangents..].iter().map(|s| Array::full(*s, 0.0)).collect();
    let mut run = Run { r, consts, lo, stats: ReversalStats::default(), held: 1 };
    // Forwards: record while the record fits; a `for` loop that will not fit goes straight
    // to checkpoints.
    let mut tape: Vec<State> = Vec::new();
    let mut n: u64 = 0;
    let recording = |n: u64| hi.is_none_or(|h| ((h - lo).max(0) as u64) <= slots) && n < slots;
    let mut state = init.clone();
    let trips = loop {
        if hi.is_some_and(|h| lo + n as i64 >= h) || !run.goes(n, &state)? {
            break n;
        }
        if hi.is_some() && !recording(n) && tape.is_empty() {
            // A `for` loop whose record would not fit: its trip count is known.
            break (hi.unwrap_or(lo) - lo).max(0) as u64;
        }
        let next = run.step(n, &state)?;
        if recording(n) {
            tape.push(std::mem::replace(&mut state, next));
            run.hold(1);
        } else {
            if !tape.is_empty() {
                // The record no longer fits: keep counting, then use checkpoints.
                tape.clear();
                run.held = 1;
            }
            state = next;
        }
        n += 1;
    };
    run.stats.trips = trips;
    if tape.len() as u64 == trips {
        for j in (0..trips).rev() {
            let s = tape.pop().unwrap_or_default();
            run.back(j, &s, &mut ct, &mut acc)?;
        }
    } else {
        drop(tape);
        drop(state);
        run.held = 1;
        // Two levels when a checkpoint every `stride` steps and one segment fit.
        let half = (slots / 2).max(1);
        let stride = trips.div_ceil(half).max(1);
        if stride <= half && slots >= 4 {
            run.stats.strategy = Strategy::TwoLevel;
            let mut checkpoints = vec![init.clone()];
            let mut s = init.clone();
            let mut j = 0;
            while j + stride < trips {
                s = run.advance(j, &s, j + stride)?;
                j += stride;
                checkpoints.push(s.clone());
                run.hold(1);
            }
            drop(s);
            for (q, start) in checkpoints.into_iter().enumerate().rev() {
                let from = q as u64 * stride;
                let to = (from + stride).min(trips);
                let mut segment = vec![start];
                for j in from..to - 1 {
                    let next = run.step(j, &segment[segment.len() - 1])?;
                    segment.push(next);
                    run.hold(1);
                }
                for j in (from..to).rev() {
                    let s = segment.pop().unwrap_or_default();
                    run.back(j, &s, &mut ct, &mut acc)?;
                }
                run.held = 1 + q as u64;
            }
        } else {
            run.stats.strategy = Strategy::Binomial;
            let free = ((slots - 1) as usize).min(MAX_SNAPSHOTS);
            run.binomial(0, &init, trips, free, &mut ct, &mut acc)?;
        }
    }
    LAST.with(|s| s.set(run.stats));
    ct.extend(acc);
    Ok(ct)
}

#[cfg(test)]
mod tests {
    use super::beta;

    #[test]
    fn binomial_counts() {
        assert_eq!(beta(0, 5), 1);
        assert_eq!(beta(1, 5), 6);
        assert_eq!(beta(2, 3), 10);
        assert_eq!(beta(20, 8), 3_108_105);
        assert_eq!(beta(64, 1000), u64::MAX);
    }
}
