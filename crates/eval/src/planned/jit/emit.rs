//! Writing a function's instructions from planned steps (see the module above for what
//! they must mean).

use super::callouts::{
    binary_call, enter_call, moves_call, put_call, step_call, unary_call, unary_slice_call,
};
use super::{Signatures, INTERRUPTED, MOVE_IN_REGISTERS, UNROLL};
use crate::interp::INTERRUPT;
use crate::planned::steps::{Branches, Nested, Src, Step, NONE};
use crate::planned::{Iteration, Out, Slot};
use ad_ir::prim::{Binary, Unary};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, Block, BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value,
};
use cranelift_frontend::FunctionBuilder;

/// Which element of a step is being computed: a known one (unrolled) or the loop's counter.
#[derive(Clone, Copy)]
enum Elem {
    At(usize),
    /// The counter `k`, and the slab's address plus `8 k`.
    Dyn(Value, Value),
}

/// An elementwise step whose operation is an instruction (not a call): its result's place
/// and its operands.
fn elementwise(step: &Step) -> Option<(Slot, Vec<&Src>)> {
    match step {
        Step::Unary(op, x, o) if Emit::inline_unary(*op) => Some((*o, vec![x])),
        Step::Binary(op, x, y, o) if inline_binary(*op) => Some((*o, vec![x, y])),
        Step::Where(c, a, b, o) => Some((*o, vec![c, a, b])),
        _ => None,
    }
}

fn inline_binary(op: Binary) -> bool {
    use Binary::*;
    matches!(op, Add | Sub | Mul | Div | Lt | Le | Gt | Ge | Eq | Ne | And | Or)
}

/// The end of the chain of elementwise steps from `steps[i]` that one loop can run (at
/// least `i + 1`): steps of one length, longer than are unrolled (shorter ones are
/// straight-line code already), whose operands are numbers, single elements no step of the
/// chain writes, or runs that either are exactly a result of the chain (element `k` reads
/// element `k`, computed in the same iteration or, for a later step's result, not yet
/// written, as unfused) or lie apart from every result of the chain. Then running the
/// chain element by element reads what running it step by step reads.
pub(super) fn chain(steps: &[Step], i: usize) -> usize {
    let n = match elementwise(&steps[i]) {
        Some((o, _)) if o.len > UNROLL => o.len,
        _ => return i + 1,
    };
    let overlaps = |at: usize, len: usize, s: &Slot| at < s.at + s.len && s.at < at + len;
    let mut outs: Vec<Slot> = Vec::new();
    let mut reads: Vec<&Src> = Vec::new();
    let mut j = i;
    while let Some((o, srcs)) = steps.get(j).and_then(elementwise) {
        if o.len != n {
            break;
        }
        outs.push(o);
        let fits = |src: &&Src| match **src {
            Src::Lit(_) => true,
            Src::One(at) => !outs.iter().any(|s| overlaps(at, 1, s)),
            Src::Run(at) => outs.iter().all(|s| s.at == at || !overlaps(at, n, s)),
            Src::Map(_) => false,
        };
        if !srcs.iter().chain(&reads).all(fits) {
            outs.pop();
            break;
        }
        reads.extend(srcs);
        j += 1;
    }
    j.max(i + 1)
}

/// Emits one function's instructions.
pub(super) struct Emit<'a> {
    pub(super) b: FunctionBuilder<'a>,
    pub(super) slab: Value,
    pub(super) ctx: Value,
    pub(super) params: Vec<Value>,
    /// Returns the code given to it.
    pub(super) fail: Block,
    pub(super) ptr: Type,
    pub(super) sigs: Signatures,
    /// The value of each slab element read or written in the current block, by offset.
    pub(super) known: std::collections::HashMap<usize, Value>,
}

fn mem() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl Emit<'_> {
    fn offset(at: usize) -> i32 {
        // Plans are at most `MAX_SLAB` (2^25) elements, so byte offsets fit in 31 bits.
        (at * 8) as i32
    }

    /// Reads the element at `base + at`. An element of the slab this block has already
    /// read or written is not read again: its value is known.
    fn load(&mut self, base: Value, at: usize) -> Value {
        if base == self.slab {
            if let Some(x) = self.known.get(&at) {
                return *x;
            }
        }
        let x = self.b.ins().load(types::F64, mem(), base, Self::offset(at));
        if base == self.slab {
            self.known.insert(at, x);
        }
        x
    }

    fn store(&mut self, x: Value, base: Value, at: usize) {
        self.b.ins().store(mem(), x, base, Self::offset(at));
        if base == self.slab {
            self.known.insert(at, x);
        } else {
            // A store at a computed address may write any element.
            self.known.clear();
        }
    }

    /// Continues in `block`: what was known about the slab held in the previous block only.
    fn switch(&mut self, block: Block) {
        self.b.switch_to_block(block);
        self.known.clear();
    }

    fn addr(&mut self, p: *const u8) -> Value {
        self.b.ins().iconst(self.ptr, p as i64)
    }

    /// Returns from the function with `code` unless it is `OK`.
    fn check(&mut self, code: Value) {
        let next = self.b.create_block();
        self.b.ins().brif(code, self.fail, &[BlockArg::Value(code)], next, &[]);
        self.switch(next);
    }

    /// Calls `f(ctx, slab, p)` and returns if it fails.
    fn call(&mut self, f: *const u8, p: *const u8) -> Value {
        let (callee, p) = (self.addr(f), self.addr(p));
        let call = self.b.ins().call_indirect(self.sigs.call, callee, &[self.ctx, self.slab, p]);
        let code = self.b.inst_results(call)[0];
        self.check(code);
        code
    }

    /// The value of operand `x` at element `k`.
    fn src(&mut self, x: &Src, k: Elem) -> Value {
        match (x, k) {
            (Src::Lit(v), _) => self.b.ins().f64const(*v),
            (Src::One(at), _) => self.load(self.slab, *at),
            (Src::Run(at), Elem::At(k)) => self.load(self.slab, at + k),
            (Src::Run(at), Elem::Dyn(_, row)) => self.load(row, *at),
            (Src::Map(m), Elem::At(k)) => self.load(self.slab, m[k]),
            (Src::Map(m), Elem::Dyn(k, _)) => {
                let table = self.addr(m.as_ptr() as *const u8);
                self.mapped(table, k)
            }
        }
    }

    /// The slab's element whose offset is entry `k` of `table`.
    fn mapped(&mut self, table: Value, k: Value) -> Value {
        let off = self.b.ins().ishl_imm_u(k, 3);
        let entry = self.b.ins().iadd(table, off);
        let at = self.b.ins().load(types::I64, mem(), entry, 0);
        let bytes = self.b.ins().ishl_imm_u(at, 3);
        let p = self.b.ins().iadd(self.slab, bytes);
        self.b.ins().load(types::F64, mem(), p, 0)
    }

    /// Calls `f` for elements `0..n` in order: unrolled when short, else in a loop.
    fn range(&mut self, n: usize, mut f: impl FnMut(&mut Self, Elem)) {
        if n <= UNROLL {
            for k in 0..n {
                f(self, Elem::At(k));
            }
            return;
        }
        let header = self.b.create_block();
        let body = self.b.create_block();
        let done = self.b.create_block();
        let k = self.b.append_block_param(header, types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.ins().jump(header, &[BlockArg::Value(zero)]);
        self.switch(header);
        let more = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, k, n as i64);
        self.b.ins().brif(more, body, &[], done, &[]);
        self.switch(body);
        let off = self.b.ins().ishl_imm_u(k, 3);
        let row = self.b.ins().iadd(self.slab, off);
        f(self, Elem::Dyn(k, row));
        let next = self.b.ins().iadd_imm_s(k, 1);
        self.b.ins().jump(header, &[BlockArg::Value(next)]);
        self.switch(done);
    }

    /// Computes `len` elements with `f` and stores element `k` at `out + k`, in order.
    fn each(&mut self, out: Slot, mut f: impl FnMut(&mut Self, Elem) -> Value) {
        self.range(out.len, |e, k| {
            let x = f(e, k);
            match k {
                Elem::At(k) => e.store(x, e.slab, out.at + k),
                Elem::Dyn(_, row) => e.store(x, row, out.at),
            }
        });
    }

    /// The address of element `k` of an array at the address `base`, and an element offset.
    fn at(&mut self, base: Value, k: Elem) -> (Value, usize) {
        match k {
            Elem::At(k) => (base, k),
            Elem::Dyn(k, _) => {
                let off = self.b.ins().ishl_imm_u(k, 3);
                (self.b.ins().iadd(base, off), 0)
            }
        }
    }

    /// Indexing or indexed update at computed positions, when the part is one contiguous
    /// run (every addressed axis but the last takes one position) and does not overlap
    /// where it goes: the positions are checked as `kernels::dynamic::starts` checks them,
    /// and any that fails sends the step to the planned steps, which report the error.
    /// Returns false (emitting nothing) for the other cases.
    fn dynamic(&mut self, step: &Step) -> bool {
        let (x, dims, sel, at) = match step {
            Step::DynIndex { x, dims, sel, at, .. } | Step::DynUpdate { x, dims, sel, at, .. } => {
                (*x, dims, sel, at)
            }
            _ => return false,
        };
        let m = sel.len();
        if m == 0 || sel[..m - 1].iter().any(Option::is_some) {
            return false;
        }
        let size: usize = dims.iter().product();
        let rest: usize = dims[m..].iter().product();
        let run = sel[m - 1].unwrap_or(1) * rest;
        match step {
            Step::DynIndex { out, .. } if out.at + out.len <= x || out.at >= x + size => {}
            Step::DynUpdate { out, .. } if out.at == x => {}
            _ => return false,
        }
        let (slow, join) = (self.b.create_block(), self.b.create_block());
        // The start's offset in elements, from the positions, checked.
        let mut start = self.b.ins().iconst(types::I64, 0);
        let mut stride = rest;
        let mut strides = vec![0; m];
        for a in (0..m).rev() {
            strides[a] = stride;
            stride *= dims[a];
        }
        for (a, p) in at.iter().enumerate() {
            let len = self.b.ins().f64const(dims[a] as f64);
            let raw = self.src(p, Elem::At(0));
            let whole = self.b.ins().trunc(raw);
            let integer = self.b.ins().fcmp(FloatCC::Equal, raw, whole);
            let zero = self.b.ins().f64const(0.0);
            let i = match sel[a] {
                None => {
                    let negative = self.b.ins().fcmp(FloatCC::LessThan, raw, zero);
                    let wrapped = self.b.ins().fadd(raw, len);
                    self.b.ins().select(negative, wrapped, raw)
                }
                Some(_) => raw,
            };
            let end = match sel[a] {
                None => self.b.ins().f64const(1.0),
                Some(k) => self.b.ins().f64const(k as f64),
            };
            let last = self.b.ins().fadd(i, end);
            let from_zero = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, i, zero);
            let inside = self.b.ins().fcmp(FloatCC::LessThanOrEqual, last, len);
            let ok = self.b.ins().band(integer, from_zero);
            let ok = self.b.ins().band(ok, inside);
            let next = self.b.create_block();
            self.b.ins().brif(ok, next, &[], slow, &[]);
            self.switch(next);
            let i = self.b.ins().fcvt_to_sint(types::I64, i);
            let term = self.b.ins().imul_imm_s(i, strides[a] as i64);
            start = self.b.ins().iadd(start, term);
        }
        let bytes = self.b.ins().ishl_imm_u(start, 3);
        let part = self.b.ins().iadd(self.slab, bytes);
        match step {
            Step::DynIndex { out, .. } => {
                debug_assert_eq!(out.len, run);
                self.each(*out, |e, k| {
                    let (p, k) = e.at(part, k);
                    e.load(p, x + k)
                });
            }
            Step::DynUpdate { v, .. } => self.range(run, |e, k| {
                let value = e.src(v, k);
                let (p, k) = e.at(part, k);
                e.store(value, p, x + k);
            }),
            _ => {}
        }
        self.b.ins().jump(join, &[]);
        self.switch(slow);
        self.call(step_call as *const u8, step as *const Step as *const u8);
        self.b.ins().jump(join, &[]);
        self.switch(join);
        true
    }

    fn truth(&mut self, cc: FloatCC, x: Value, y: Value) -> Value {
        let c = self.b.ins().fcmp(cc, x, y);
        let (one, zero) = (self.b.ins().f64const(1.0), self.b.ins().f64const(0.0));
        self.b.ins().select(c, one, zero)
    }

    /// `x != 0`, as the steps test a condition (true for NaN).
    fn nonzero(&mut self, x: Value) -> Value {
        let zero = self.b.ins().f64const(0.0);
        self.b.ins().fcmp(FloatCC::NotEqual, x, zero)
    }

    /// Whether a unary operation is an instruction rather than a call.
    fn inline_unary(op: Unary) -> bool {
        matches!(op, Unary::Neg | Unary::Abs | Unary::Sqrt | Unary::Not)
    }

    /// A long unary step on a run: the kernel's vectorised loop, unless the operand and
    /// the result overlap without coinciding (then element by element, as the steps do).
    fn unary_run(&mut self, op: Unary, x: usize, o: Slot) {
        let overlap = x != o.at && x < o.at + o.len && o.at < x + o.len;
        if overlap {
            self.each(o, |e, k| {
                let x = e.src(&Src::Run(x), k);
                e.unary(op, x)
            });
            return;
        }
        let index = Unary::ALL.iter().position(|u| *u == op).unwrap_or_default();
        let f = self.addr(unary_slice_call as *const u8);
        let i = self.b.ins().iconst(types::I32, index as i64);
        let dst = self.b.ins().iadd_imm_s(self.slab, (o.at * 8) as i64);
        let src = if x == o.at {
            self.b.ins().iconst(self.ptr, 0)
        } else {
            self.b.ins().iadd_imm_s(self.slab, (x * 8) as i64)
        };
        let n = self.b.ins().iconst(types::I64, o.len as i64);
        self.b.ins().call_indirect(self.sigs.slice, f, &[i, dst, src, n]);
        // The call wrote the result's place.
        self.known.clear();
    }

    fn unary(&mut self, op: Unary, x: Value) -> Value {
        match op {
            Unary::Neg => self.b.ins().fneg(x),
            Unary::Abs => self.b.ins().fabs(x),
            Unary::Sqrt => self.b.ins().sqrt(x),
            Unary::Not => {
                let zero = self.b.ins().f64const(0.0);
                self.truth(FloatCC::Equal, x, zero)
            }
            _ => {
                let index = Unary::ALL.iter().position(|u| *u == op).unwrap_or_default();
                let (f, i) =
                    (self.addr(unary_call as *const u8), self.b.ins().iconst(types::I32, index as i64));
                let call = self.b.ins().call_indirect(self.sigs.unary, f, &[i, x]);
                self.b.inst_results(call)[0]
            }
        }
    }

    fn binary(&mut self, op: Binary, x: Value, y: Value) -> Value {
        let compare = match op {
            Binary::Add => return self.b.ins().fadd(x, y),
            Binary::Sub => return self.b.ins().fsub(x, y),
            Binary::Mul => return self.b.ins().fmul(x, y),
            Binary::Div => return self.b.ins().fdiv(x, y),
            Binary::Lt => Some(FloatCC::LessThan),
            Binary::Le => Some(FloatCC::LessThanOrEqual),
            Binary::Gt => Some(FloatCC::GreaterThan),
            Binary::Ge => Some(FloatCC::GreaterThanOrEqual),
            Binary::Eq => Some(FloatCC::Equal),
            Binary::Ne => Some(FloatCC::NotEqual),
            Binary::And | Binary::Or => {
                let (a, b) = (self.nonzero(x), self.nonzero(y));
                let c = if op == Binary::And { self.b.ins().band(a, b) } else { self.b.ins().bor(a, b) };
                let (one, zero) = (self.b.ins().f64const(1.0), self.b.ins().f64const(0.0));
                return self.b.ins().select(c, one, zero);
            }
            _ => None,
        };
        if let Some(c) = compare {
            return self.truth(c, x, y);
        }
        let index = Binary::ALL.iter().position(|b| *b == op).unwrap_or_default();
        let (f, i) = (self.addr(binary_call as *const u8), self.b.ins().iconst(types::I32, index as i64));
        let call = self.b.ins().call_indirect(self.sigs.binary, f, &[i, x, y]);
        self.b.inst_results(call)[0]
    }

    /// Emits steps in order; a chain of elementwise steps (`chain`) runs as one loop.
    pub(super) fn steps(&mut self, steps: &[Step]) {
        let mut i = 0;
        while i < steps.len() {
            let end = chain(steps, i);
            if end > i + 1 {
                self.fused(&steps[i..end]);
            } else {
                self.step(&steps[i]);
            }
            i = end;
        }
    }

    /// A chain of elementwise steps of one length in one loop: at each element every step
    /// computes its element in turn, and a step reading another's result at the same
    /// element takes it from the register it was computed in.
    fn fused(&mut self, chain: &[Step]) {
        let Some((first, _)) = elementwise(&chain[0]) else { return };
        self.range(first.len, |e, k| {
            let mut computed: std::collections::HashMap<usize, Value> = Default::default();
            for step in chain {
                let Some((o, srcs)) = elementwise(step) else { continue };
                let v: Vec<Value> = srcs
                    .iter()
                    .map(|src| match src {
                        Src::Run(at) if computed.contains_key(at) => computed[at],
                        _ => e.src(src, k),
                    })
                    .collect();
                let x = match step {
                    Step::Unary(op, ..) => e.unary(*op, v[0]),
                    Step::Binary(op, ..) => e.binary(*op, v[0], v[1]),
                    _ => {
                        let c = e.nonzero(v[0]);
                        e.b.ins().select(c, v[1], v[2])
                    }
                };
                match k {
                    Elem::At(k) => e.store(x, e.slab, o.at + k),
                    Elem::Dyn(_, row) => e.store(x, row, o.at),
                }
                computed.insert(o.at, x);
            }
        });
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Unary(op, Src::Run(x), o) if o.len > UNROLL && !Self::inline_unary(*op) => {
                self.unary_run(*op, *x, *o)
            }
            Step::Unary(op, x, o) => self.each(*o, |e, k| {
                let x = e.src(x, k);
                e.unary(*op, x)
            }),
            Step::Binary(op, x, y, o) => self.each(*o, |e, k| {
                let (x, y) = (e.src(x, k), e.src(y, k));
                e.binary(*op, x, y)
            }),
            Step::Where(c, a, b, o) => self.each(*o, |e, k| {
                let (c, a, b) = (e.src(c, k), e.src(a, k), e.src(b, k));
                let c = e.nonzero(c);
                e.b.ins().select(c, a, b)
            }),
            Step::Gather(map, o) => {
                if o.len <= UNROLL {
                    for (k, &m) in map.iter().enumerate() {
                        let x = if m == NONE { self.b.ins().f64const(0.0) } else { self.load(self.slab, m) };
                        self.store(x, self.slab, o.at + k);
                    }
                } else {
                    let table = self.addr(map.as_ptr() as *const u8);
                    self.each(*o, |e, k| {
                        let Elem::Dyn(k, _) = k else { unreachable!("long steps loop") };
                        e.gathered(table, k)
                    });
                }
            }
            Step::Copy(from, to) if to.len <= MOVE_IN_REGISTERS => {
                self.put(Out::Slot(Slot { at: *from, len: to.len }), *to);
            }
            Step::Loop(l) => self.nested(l),
            Step::Cond(b) => self.branches(b),
            Step::DynIndex { .. } | Step::DynUpdate { .. } if self.dynamic(step) => {}
            _ => {
                self.call(step_call as *const u8, step as *const Step as *const u8);
            }
        }
    }

    /// A gather's element `k`: the slab at the offset in the table, or 0 for padding.
    fn gathered(&mut self, table: Value, k: Value) -> Value {
        let off = self.b.ins().ishl_imm_u(k, 3);
        let entry = self.b.ins().iadd(table, off);
        let at = self.b.ins().load(types::I64, mem(), entry, 0);
        let pad = self.b.ins().icmp_imm_u(IntCC::Equal, at, NONE as i64);
        // Padding reads element 0 (the slab is never empty when a gather reads it) and
        // selects zero instead, so no branch is needed.
        let zero_at = self.b.ins().iconst(types::I64, 0);
        let at = self.b.ins().select(pad, zero_at, at);
        let bytes = self.b.ins().ishl_imm_u(at, 3);
        let p = self.b.ins().iadd(self.slab, bytes);
        let x = self.b.ins().load(types::F64, mem(), p, 0);
        let zero = self.b.ins().f64const(0.0);
        self.b.ins().select(pad, zero, x)
    }

    /// Writes a value where it is read next (`put`), in registers: everything is read
    /// before anything is written, as `copy_within` does.
    fn put(&mut self, from: Out, to: Slot) {
        match from {
            Out::Slot(f) => {
                let xs: Vec<Value> = (0..to.len).map(|k| self.load(self.slab, f.at + k)).collect();
                for (k, x) in xs.into_iter().enumerate() {
                    self.store(x, self.slab, to.at + k);
                }
            }
            Out::Lit(v) => {
                let x = self.b.ins().f64const(v);
                for k in 0..to.len {
                    self.store(x, self.slab, to.at + k);
                }
            }
        }
    }

    fn out(&mut self, o: Out) -> Value {
        match o {
            Out::Slot(s) => self.load(self.slab, s.at),
            Out::Lit(x) => self.b.ins().f64const(x),
        }
    }

    /// A loop from `lo` to `hi` (i64 values), as `Iteration::run` runs it.
    pub(super) fn iteration(&mut self, it: &Iteration, lo: Value, hi: Value) {
        let header = self.b.create_block();
        let body = self.b.create_block();
        let done = self.b.create_block();
        let i = self.b.append_block_param(header, types::I64);
        self.b.ins().jump(header, &[BlockArg::Value(lo)]);
        self.switch(header);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.b.ins().brif(more, body, &[], done, &[]);
        self.switch(body);
        // Ctrl-C is read on every iteration: one byte, which costs less than counting.
        let flag = self.addr(&INTERRUPT as *const _ as *const u8);
        let stop = self.b.ins().uload8(types::I32, mem(), flag, 0);
        let go_on = self.b.create_block();
        let interrupted = self.b.ins().iconst(types::I32, INTERRUPTED as i64);
        self.b.ins().brif(stop, self.fail, &[BlockArg::Value(interrupted)], go_on, &[]);
        self.switch(go_on);
        let index = self.b.ins().fcvt_from_sint(types::F64, i);
        self.store(index, self.slab, it.index);
        if let Some((steps, go)) = &it.cond {
            self.steps(steps);
            let go = self.out(*go);
            let go = self.nonzero(go);
            let next = self.b.create_block();
            self.b.ins().brif(go, next, &[], done, &[]);
            self.switch(next);
        }
        self.steps(&it.body);
        let moved: usize = it.moves.iter().map(|(_, to)| to.len).sum();
        if moved <= MOVE_IN_REGISTERS {
            // Every value is read before any is written: one carried value's new place may
            // be another's old one.
            let mut values = Vec::with_capacity(moved);
            for (from, to) in &it.moves {
                for k in 0..to.len {
                    values.push(match from {
                        Out::Slot(f) => self.load(self.slab, f.at + k),
                        Out::Lit(x) => self.b.ins().f64const(*x),
                    });
                }
            }
            let mut values = values.into_iter();
            for (_, to) in &it.moves {
                for k in 0..to.len {
                    if let Some(x) = values.next() {
                        self.store(x, self.slab, to.at + k);
                    }
                }
            }
        } else {
            self.call(moves_call as *const u8, it as *const Iteration as *const u8);
        }
        let next = self.b.ins().iadd_imm_s(i, 1);
        self.b.ins().jump(header, &[BlockArg::Value(next)]);
        self.switch(done);
    }

    fn nested(&mut self, l: &Nested) {
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 3));
        let bounds = self.b.ins().stack_addr(self.ptr, slot, 0);
        let f = self.addr(enter_call as *const u8);
        let p = self.addr(l as *const Nested as *const u8);
        let call = self.b.ins().call_indirect(self.sigs.enter, f, &[self.ctx, self.slab, p, bounds]);
        let code = self.b.inst_results(call)[0];
        self.check(code);
        let lo = self.b.ins().load(types::I64, mem(), bounds, 0);
        let hi = self.b.ins().load(types::I64, mem(), bounds, 8);
        self.iteration(&l.iteration, lo, hi);
    }

    fn branches(&mut self, br: &Branches) {
        let c = self.src(&br.c, Elem::At(0));
        let c = self.nonzero(c);
        let (then, els, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(c, then, &[], els, &[]);
        for (block, (steps, moves)) in [(then, &br.then), (els, &br.els)] {
            self.switch(block);
            self.steps(steps);
            for m in moves {
                if m.1.len <= MOVE_IN_REGISTERS {
                    self.put(m.0, m.1);
                } else {
                    self.call(put_call as *const u8, m as *const (Out, Slot) as *const u8);
                }
            }
            self.b.ins().jump(join, &[]);
        }
        self.switch(join);
    }
}
