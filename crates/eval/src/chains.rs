//! Elementwise chains run in blocks: consecutive elementwise steps (`+`, `tanh`, `where`
//! ...) with results of one shape run as one step, which computes a block of a few hundred
//! elements of every result in turn and writes only the values read after the chain. The
//! values that live only inside the chain never exist as arrays, so a chain of k
//! operations reads and writes memory about once instead of k times, and allocates once.
//!
//! Every element is computed by the same scalar function, on the same operands, as the
//! steps would have computed it (the slice kernels share the elementwise kernels' table of
//! functions), so the results are the same to the bit. Operands from outside the chain
//! are arrays of the chain's size, single numbers, or rows repeated along the leading axes
//! (a bias); a step reading anything else ends the chain.

use crate::interp::{Operand, Region, Step};
use crate::kernels::elementwise::{
    binary_slice, binary_uninit, select_slice, select_uninit, unary_slice, unary_uninit,
};
use ad_ir::prim::{Binary, Prim, Unary};
use ad_ir::{Array, Shape};
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::rc::Rc;

/// Elements per block: a block of every value of a chain stays in the first-level cache.
const BLOCK: usize = 256;
/// Results smaller than this are left to the steps (a chain saves little there).
pub(crate) const MIN_LEN: usize = 256;
/// At most this many operations in one chain (their blocks must fit in the cache).
pub(crate) const MAX_OPS: usize = 24;

/// Where an operation's operand comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Src {
    /// The result of an earlier operation of the chain.
    Op(usize),
    /// Operand `i` of the chain step, an array with as many elements as the chain's results.
    Full(usize),
    /// Operand `i`, a single number.
    Scalar(usize),
    /// Operand `i`, a row of `n` elements repeated along the leading axes.
    Row(usize, usize),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Unary(Unary),
    Binary(Binary),
    Where,
}

impl Kind {
    /// The operation of an elementwise primitive, if it is one.
    pub(crate) fn of(prim: &Prim) -> Option<Kind> {
        match prim {
            Prim::Unary(u) => Some(Kind::Unary(*u)),
            Prim::Binary(b) => Some(Kind::Binary(*b)),
            Prim::Where => Some(Kind::Where),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Op {
    pub kind: Kind,
    pub args: Vec<Src>,
}

/// A chain: its operations in order, and which of their results leave it.
#[derive(Debug)]
pub(crate) struct Chain {
    pub shape: Shape,
    pub ops: Vec<Op>,
    /// The operations whose results are read after the chain, in the order of the step's
    /// results.
    pub results: Vec<usize>,
    /// The operation whose elements a sum over all axes that ends the chain adds up: its
    /// number is the step's last result.
    pub sum: Option<usize>,
}

/// A sum over all axes, added up block by block in the order `reduce::sum_slice` adds
/// (eight running sums over whole chunks of eight, combined, then the rest), so that it is
/// the same to the bit. Blocks hold whole chunks of eight but the last.
#[derive(Default)]
struct Lanes {
    acc: [f64; 8],
    tail: Vec<f64>,
}

impl Lanes {
    fn add(&mut self, xs: &[f64]) {
        let chunks = xs.chunks_exact(8);
        self.tail.extend_from_slice(chunks.remainder());
        for c in chunks {
            for (a, x) in self.acc.iter_mut().zip(c) {
                *a += x;
            }
        }
    }

    fn total(&self) -> f64 {
        let a = &self.acc;
        let mut s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        for x in &self.tail {
            s += x;
        }
        s
    }
}

impl Chain {
    /// Runs the chain on the step's operands (taken ones may be written over: the first
    /// result goes into the buffer of a full-size operand the step holds the only
    /// reference to, as the elementwise kernels write into a dying operand). Long results
    /// are computed in pieces on all cores.
    pub(crate) fn run(&self, mut args: Vec<Array>) -> Vec<Array> {
        let len = self.shape.size();
        let full = |s: &Src| match s {
            Src::Full(i) => Some(*i),
            _ => None,
        };
        // The first result's buffer: a dying operand's (then read and written through a
        // block), or, like every other result, a new buffer that the operations write into
        // without zeroing it first. None when the chain's only result is its sum.
        let mut reused = None;
        let mut first = Vec::new();
        if !self.results.is_empty() {
            for i in self.ops.iter().flat_map(|o| o.args.iter().filter_map(full)) {
                if let Some(d) = args[i].data_mut() {
                    first = std::mem::take(d);
                    reused = Some(i);
                    break;
                }
            }
            if reused.is_none() {
                first = Vec::with_capacity(len);
            }
        }
        let mut rest: Vec<Vec<f64>> = self.results.iter().skip(1).map(|_| Vec::with_capacity(len)).collect();
        let inputs = Inputs {
            data: args.iter().map(|a| a.data()).collect(),
            reused,
            spread: args.iter().enumerate().map(|(i, a)| self.spread(i, a.data())).collect(),
        };
        // The results' buffers: the reused one, if any, then the fresh ones (their memory not
        // yet initialised, written by `run_range` and declared so below).
        let (reused_buffer, mut fresh): (Option<&mut [f64]>, Vec<&mut Vec<f64>>) = match reused {
            Some(_) => (Some(first.as_mut_slice()), rest.iter_mut().collect()),
            None => {
                (None, std::iter::once(&mut first).chain(rest.iter_mut()).take(self.results.len()).collect())
            }
        };
        let outs: Vec<Part> = reused_buffer
            .map(Part::Reused)
            .into_iter()
            .chain(fresh.iter_mut().map(|v| Part::Fresh(&mut v.spare_capacity_mut()[..len])))
            .collect();
        let mut lanes = self.sum.map(|_| Lanes::default());
        // A chain that ends in a sum runs in order (`form_chains` makes none that long).
        if len > PARALLEL_ABOVE && lanes.is_none() {
            use rayon::prelude::*;
            let mut pieces: Vec<Vec<Part>> = (0..len.div_ceil(PIECE)).map(|_| Vec::new()).collect();
            for out in outs {
                for (piece, part) in pieces.iter_mut().zip(out.pieces()) {
                    piece.push(part);
                }
            }
            pieces.into_par_iter().enumerate().for_each(|(k, mut outs)| {
                self.run_range((k * PIECE, PIECE.min(len - k * PIECE)), &mut outs, &inputs, None)
            });
        } else {
            let mut outs = outs;
            self.run_range((0, len), &mut outs, &inputs, lanes.as_mut());
        }
        for v in fresh {
            // SAFETY: `run_range` wrote every element of every fresh result: each block of
            // `0..len` (split into pieces or not) was written by the operation that computes
            // the result (`write_fresh`, which writes all of the block), within the `len`
            // elements of capacity reserved above.
            unsafe { v.set_len(len) };
        }
        let mut results: Vec<Array> = std::iter::once(first)
            .chain(rest)
            .take(self.results.len())
            .map(|d| Array::new(self.shape, d))
            .collect();
        results.extend(lanes.map(|l| Array::scalar(l.total())));
        results
    }

    /// Operand `i` laid out once for the whole run so that every block reads a slice of it:
    /// a single number repeated over a block, or a repeated row of `m` elements repeated
    /// until a block starting anywhere in it fits (`m - 1 + BLOCK` elements, fewer for a
    /// chain shorter than a block); empty for the other operands.
    fn spread(&self, i: usize, data: &[f64]) -> Vec<f64> {
        let read_as = self.ops.iter().flat_map(|o| &o.args).find_map(|s| match *s {
            Src::Scalar(j) if j == i => Some(1),
            Src::Row(j, m) if j == i => Some(m),
            _ => None,
        });
        // A block reads at most this many elements from where it starts.
        let n = BLOCK.min(self.shape.size());
        match read_as {
            Some(1) => vec![data[0]; n],
            Some(m) => {
                // The row, then what is there so far copied after it until it is long enough
                // (a few copies, each as long as all before it).
                let want = m - 1 + n;
                let mut out = Vec::with_capacity(want);
                out.extend_from_slice(&data[..m]);
                while out.len() < want {
                    out.extend_from_within(..(want - out.len()).min(out.len()));
                }
                out
            }
            None => Vec::new(),
        }
    }

    /// Computes `len` elements of the results from position `offset` on into `outs` (the
    /// first result, then the others), block by block, and adds the summed operation's
    /// into `lanes`.
    fn run_range(
        &self,
        (offset, len): (usize, usize),
        outs: &mut [Part],
        inputs: &Inputs,
        mut lanes: Option<&mut Lanes>,
    ) {
        // A result is computed straight into its place in the result, and later operations
        // read it there; only the first result, when it reuses an operand's buffer, goes
        // through a block of its own (the operations of a block read that operand's
        // elements, which it would overwrite) and is copied out after every operation.
        let through_block = |r: usize| r == 0 && inputs.reused.is_some();
        let mut in_place = vec![false; self.ops.len()];
        for (r, &k) in self.results.iter().enumerate() {
            in_place[k] = !through_block(r);
        }
        let mut blocks: Vec<Vec<f64>> =
            in_place.iter().map(|&direct| if direct { Vec::new() } else { vec![0.0; BLOCK] }).collect();
        for start in (0..len).step_by(BLOCK) {
            let n = BLOCK.min(len - start);
            let at = offset + start;
            let mut outs_here = outs.iter_mut();
            // The reused operand's elements for this block, read through the first result.
            let first: Option<&[f64]> = match inputs.reused {
                Some(_) => match outs_here.next() {
                    Some(Part::Reused(o)) => Some(&o[start..start + n]),
                    _ => unreachable!("a reused buffer is the first result's (`run`)"),
                },
                None => None,
            };
            // Where each operation's block of elements is: its own buffer, or (once
            // written) its result; and the result's memory it is to be written into.
            // (Arrays, not collected vectors: this runs for every block. A chain has at most
            // MAX_OPS operations, `Builder::add`.)
            let mut at_op: [Option<&mut [f64]>; MAX_OPS] = [const { None }; MAX_OPS];
            for (place, b) in at_op.iter_mut().zip(blocks.iter_mut()) {
                if !b.is_empty() {
                    *place = Some(&mut b[..n]);
                }
            }
            let mut unwritten: [Option<&mut [MaybeUninit<f64>]>; MAX_OPS] = [const { None }; MAX_OPS];
            for (out, &k) in outs_here.zip(&self.results[usize::from(first.is_some())..]) {
                let Part::Fresh(o) = out else { unreachable!("only the first result reuses a buffer") };
                unwritten[k] = Some(&mut o[start..start + n]);
            }
            for (k, op) in self.ops.iter().enumerate() {
                let (done, now) = at_op.split_at_mut(k);
                let operand = |slot: usize| -> &[f64] {
                    match (op.args[slot], first) {
                        (Src::Op(j), _) => {
                            let Some(block) = done[j].as_deref() else {
                                unreachable!("every operation has a block or its result's place")
                            };
                            block
                        }
                        // The dying operand whose buffer the first result reuses: this
                        // block of it is read here and written only after every operation.
                        (Src::Full(i), Some(first)) if inputs.reused == Some(i) => first,
                        (Src::Full(i), _) => &inputs.data[i][at..at + n],
                        // Spread in `run` for every single-number operand.
                        (Src::Scalar(i), _) => &inputs.spread[i][..n],
                        // The row from the position the block starts at, wrapping around.
                        (Src::Row(i, m), _) => &inputs.spread[i][at % m..at % m + n],
                    }
                };
                let arity = op.args.len();
                let arg = |slot: usize| if slot < arity { operand(slot) } else { &[][..] };
                let args = [arg(0), arg(1), arg(2)];
                if let Some(memory) = unwritten[k].take() {
                    now[0] = Some(write_fresh(op.kind, memory, &args[..arity]));
                    continue;
                }
                let Some(dst) = now[0].as_deref_mut() else {
                    unreachable!("every operation has a block or its result's place (set above)")
                };
                match op.kind {
                    Kind::Unary(u) => unary_slice(u, dst, Some(args[0])),
                    Kind::Binary(b) => binary_slice(b, dst, args[0], args[1]),
                    Kind::Where => select_slice(dst, args[0], args[1], args[2]),
                }
            }
            if let (Some(k), Some(lanes)) = (self.sum, lanes.as_deref_mut()) {
                let Some(block) = at_op[k].as_deref() else {
                    unreachable!("every operation has a block or its result's place")
                };
                lanes.add(block);
            }
            // `at_op` and `unwritten` are not used past this point, so `outs` may be borrowed
            // again.
            if first.is_some() {
                if let Some(Part::Reused(o)) = outs.first_mut() {
                    o[start..start + n].copy_from_slice(&blocks[self.results[0]][..n]);
                }
            }
        }
    }
}

/// Computes one operation of a chain into memory not yet initialised, all of which it
/// writes, and returns that memory as numbers.
fn write_fresh<'d>(kind: Kind, dst: &'d mut [MaybeUninit<f64>], args: &[&[f64]]) -> &'d mut [f64] {
    let n = dst.len();
    assert!(args.iter().all(|a| a.len() == n), "a chain's operand has the wrong length");
    match kind {
        Kind::Unary(u) => unary_uninit(u, dst, args[0]),
        Kind::Binary(b) => binary_uninit(b, dst, args[0], args[1]),
        Kind::Where => select_uninit(dst, args[0], args[1], args[2]),
    }
    // SAFETY: each of these kernels writes `dst[i]` for every `i` at which all its operands
    // have an element, which is every `i < n`: they all have length `n` (asserted above).
    // `MaybeUninit<f64>` has the layout of `f64`.
    unsafe { &mut *(dst as *mut [MaybeUninit<f64>] as *mut [f64]) }
}

/// Where a result goes: the buffer of the dying operand it reuses (holding that operand's
/// numbers until each block is written), or a new buffer's memory, not yet initialised.
enum Part<'a> {
    Reused(&'a mut [f64]),
    Fresh(&'a mut [MaybeUninit<f64>]),
}

impl<'a> Part<'a> {
    /// The parts of each piece computed on its own core.
    fn pieces(self) -> Vec<Part<'a>> {
        match self {
            Part::Reused(s) => s.chunks_mut(PIECE).map(Part::Reused).collect(),
            Part::Fresh(s) => s.chunks_mut(PIECE).map(Part::Fresh).collect(),
        }
    }
}

/// What a chain reads: its operands' elements (the reused one's through the first result),
/// and single numbers spread over a block.
struct Inputs<'a> {
    data: Vec<&'a [f64]>,
    reused: Option<usize>,
    /// Each single-number or repeated-row operand laid out for blocks to read
    /// ([`Chain::spread`]; empty for the other operands).
    spread: Vec<Vec<f64>>,
}

/// Results longer than this are computed on all cores, in pieces of `PIECE` elements (the
/// elementwise kernels' threshold and piece).
const PARALLEL_ABOVE: usize = 32_768;
const PIECE: usize = 16_384;

/// How an operand of shape `s` from outside a chain whose results have shape `out` is
/// read, as operand `i` of the chain step; `None` when the chain cannot read it.
pub(crate) fn outside(i: usize, s: Shape, out: Shape) -> Option<Src> {
    if s.size() == out.size() {
        return Some(Src::Full(i));
    }
    if s.size() == 1 {
        return Some(Src::Scalar(i));
    }
    // A row: every axis but the last missing or of size 1, the last one the result's.
    let dims = s.dims();
    let last = *dims.last()?;
    let row = dims[..dims.len() - 1].iter().all(|&d| d == 1) && out.dims().last() == Some(&last);
    (row && dims.len() <= out.rank()).then_some(Src::Row(i, last))
}

/// Replaces each run of two or more consecutive elementwise steps with results of one
/// shape (at least [`MIN_LEN`] elements) and operands a chain can read by one chain step.
/// `shape_of` gives the shape of each register.
pub(crate) fn form_chains(steps: Vec<Step>, shape_of: impl Fn(usize) -> Shape) -> Vec<Step> {
    let chainable = |s: &Step| {
        s.region.is_none()
            && s.transposed == [false; 2]
            && s.extra.is_empty()
            && s.shape.size() >= MIN_LEN
            && Kind::of(&s.prim).is_some()
    };
    if steps.windows(2).all(|w| !(chainable(&w[0]) && chainable(&w[1]))) {
        return steps;
    }
    let mut out = Vec::with_capacity(steps.len());
    let mut group: Vec<Step> = Vec::new();
    let mut building: Option<Builder> = None;
    for s in steps {
        // A sum over all axes of a value the chain computes ends it.
        if let Some(b) = building.as_mut() {
            if b.add_sum(&s) {
                group.push(s);
                flush(&mut out, &mut group, building.take());
                continue;
            }
        }
        if chainable(&s) {
            let b = building.get_or_insert_with(|| Builder::new(s.shape));
            if b.add(&s, &shape_of) {
                group.push(s);
                continue;
            }
            // This step cannot join: the chain so far ends, and a new one may start here.
            flush(&mut out, &mut group, building.take());
            let mut b = Builder::new(s.shape);
            if b.add(&s, &shape_of) {
                building = Some(b);
                group.push(s);
            } else {
                out.push(s);
            }
            continue;
        }
        // A step that neither reads what the chain computes nor ends the life of what it
        // reads runs before the chain, which goes on gathering (derived programs
        // interleave the small operations that make a coefficient with the large ones
        // that use it).
        if building.as_ref().is_some_and(|b| b.independent(&s)) {
            out.push(s);
            continue;
        }
        flush(&mut out, &mut group, building.take());
        out.push(s);
    }
    flush(&mut out, &mut group, building.take());
    out
}

thread_local! {
    static FORMED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many chains this thread has formed (the tests check that chains ran).
pub fn chains_formed() -> u64 {
    FORMED.with(|c| c.get())
}

/// Emits the steps gathered so far: one chain step for two or more, else the step itself.
fn flush(out: &mut Vec<Step>, group: &mut Vec<Step>, building: Option<Builder>) {
    match building {
        Some(b) if group.len() >= 2 => {
            if let Some(step) = b.finish(group) {
                FORMED.with(|c| c.set(c.get() + 1));
                out.push(step);
                group.clear();
                return;
            }
            out.append(group);
        }
        _ => out.append(group),
    }
}

/// A chain being gathered: its operations, the registers they produce, and the chain
/// step's operands.
struct Builder {
    shape: Shape,
    ops: Vec<Op>,
    /// Register → the operation of the chain that produces it.
    produced: HashMap<usize, usize>,
    /// Register (or, for a constant, a fresh key past every register) → operand index.
    operands: Vec<Operand>,
    by_register: HashMap<usize, usize>,
    /// Registers whose last use is in the chain.
    dying: Vec<usize>,
    /// The sum that ends the chain: the operation it adds up and its register.
    sum: Option<(usize, usize)>,
}

impl Builder {
    fn new(shape: Shape) -> Builder {
        Builder {
            shape,
            ops: Vec::new(),
            produced: HashMap::new(),
            operands: Vec::new(),
            by_register: HashMap::new(),
            dying: Vec::new(),
            sum: None,
        }
    }

    /// Whether `s` can run before the chain instead of after the steps gathered so far:
    /// it reads no value they produce, and the chain's operands outlive it.
    fn independent(&self, s: &Step) -> bool {
        let reads_chain = s.args.iter().any(|o| match o {
            Operand::Take(v) | Operand::Borrow(v) => self.produced.contains_key(v),
            Operand::Const(_) => false,
        });
        let ends_operand =
            s.args.iter().any(|o| matches!(o, Operand::Take(v) if self.by_register.contains_key(v)));
        let drops =
            s.drop_after.iter().any(|v| self.produced.contains_key(v) || self.by_register.contains_key(v));
        !(reads_chain || ends_operand || drops)
    }

    /// Ends the chain with `s` if it sums a value the chain computes over all its axes, and
    /// the chain is short enough to run in order (a sum is added up in one order).
    fn add_sum(&mut self, s: &Step) -> bool {
        let summed = match s.args.as_slice() {
            [Operand::Take(v) | Operand::Borrow(v)] => self.produced.get(v).copied(),
            _ => None,
        };
        let Some(k) = summed else { return false };
        let whole = matches!(s.prim, Prim::Sum(_)) && s.shape.rank() == 0 && s.region.is_none();
        if !whole || self.sum.is_some() || self.shape.size() > PARALLEL_ABOVE {
            return false;
        }
        for o in &s.args {
            if let Operand::Take(v) = o {
                self.dying.push(*v);
            }
        }
        self.dying.extend(&s.drop_after);
        self.sum = Some((k, s.out));
        true
    }

    /// Adds the step if the chain can take it (its result has the chain's shape, there is
    /// room, and every operand is readable).
    fn add(&mut self, s: &Step, shape_of: &impl Fn(usize) -> Shape) -> bool {
        if s.shape != self.shape || self.ops.len() >= MAX_OPS || self.sum.is_some() {
            return false;
        }
        let mut args = Vec::with_capacity(s.args.len());
        let (mut operands, mut by_register) = (self.operands.clone(), self.by_register.clone());
        for o in &s.args {
            let src = match o {
                Operand::Take(v) | Operand::Borrow(v) => match self.produced.get(v) {
                    Some(&k) => Src::Op(k),
                    None => {
                        let i = *by_register.entry(*v).or_insert_with(|| {
                            operands.push(Operand::Borrow(*v));
                            operands.len() - 1
                        });
                        match outside(i, shape_of(*v), self.shape) {
                            Some(src) => src,
                            None => return false,
                        }
                    }
                },
                Operand::Const(a) => {
                    operands.push(Operand::Const(a.clone()));
                    match outside(operands.len() - 1, a.shape(), self.shape) {
                        Some(src) => src,
                        None => return false,
                    }
                }
            };
            args.push(src);
        }
        let Some(kind) = Kind::of(&s.prim) else { return false };
        self.operands = operands;
        self.by_register = by_register;
        for o in &s.args {
            if let Operand::Take(v) = o {
                self.dying.push(*v);
            }
        }
        self.dying.extend(&s.drop_after);
        self.produced.insert(s.out, self.ops.len());
        self.ops.push(Op { kind, args });
        true
    }

    /// The chain step: results are the values read after the chain (those that do not die
    /// in it); operands whose last use is in the chain are taken.
    fn finish(self, group: &[Step]) -> Option<Step> {
        let mut results: Vec<usize> = Vec::new();
        let mut result_regs: Vec<usize> = Vec::new();
        for s in group {
            if let Some(&k) = self.produced.get(&s.out) {
                if !self.dying.contains(&s.out) {
                    results.push(k);
                    result_regs.push(s.out);
                }
            }
        }
        // The sum is the last result, if anything reads it.
        let sum = self.sum.filter(|(_, reg)| !self.dying.contains(reg));
        result_regs.extend(sum.map(|(_, reg)| reg));
        let (&out, extra) = result_regs.split_first()?;
        let operands = self
            .operands
            .into_iter()
            .map(|o| match o {
                Operand::Borrow(v) if self.dying.contains(&v) => Operand::Take(v),
                o => o,
            })
            .collect();
        let first = &group[0];
        Some(Step {
            prim: first.prim.clone(),
            args: operands,
            out,
            extra: extra.to_vec(),
            shape: self.shape,
            drop_after: Vec::new(),
            transposed: [false; 2],
            region: Some(Rc::new(Region::Chain(Chain {
                shape: self.shape,
                ops: self.ops,
                results,
                sum: sum.map(|(k, _)| k),
            }))),
            span: first.span,
        })
    }
}
