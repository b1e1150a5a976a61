//! The compiled tier (DESIGN §11): a planned program's steps compiled to machine code with
//! cranelift.
//!
//! A planned program already has everything a compiler needs: every value has a fixed place
//! in the slab, every step's operands are offsets known in advance. Compiling it removes
//! what is left of interpretation — the dispatch on each step and on each operand's kind,
//! the bounds checks — so a loop body of scalar arithmetic runs as straight-line code with
//! its operands at constant offsets from one pointer.
//!
//! The compiled code means exactly what `steps::exec` means, bit for bit. Arithmetic that
//! IEEE 754 rounds correctly (`+ - * /`, `sqrt`, negation, `abs`), comparisons, logical
//! operators, `where`, gathers and copies are emitted as instructions; every other scalar
//! function is a call to the primitive's own `eval` (the function the interpreter and the
//! planned steps call), so `exp`, `tanh` or `pow` cannot differ. Steps whose work is in a
//! kernel (sums, products, computed positions) call `exec` on that one step. Elements are
//! computed in the order the planned steps compute them, loads and stores included, so a
//! result written over its operand reads what the steps read.
//!
//! Failures inside a call (a position out of range, a loop bound that is not an integer, a
//! panic) are kept in the `Ctx` and the compiled code returns at once with a code saying so;
//! the caller turns it back into the `RunError` (or resumes the panic). No Rust unwinding
//! crosses compiled frames.

use super::steps::{exec, Branches, Nested, Src, Step, NONE};
use super::{Iteration, Out, Slot};
use crate::interp::{RunError, INTERRUPT};
use ad_ir::prim::{Binary, Unary};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, InstBuilder, MemFlagsData, SigRef, Signature, StackSlotData,
    StackSlotKind, Type, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Module};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Compiled steps: `(slab, ctx) -> code`.
pub(super) type StepsFn = unsafe extern "C" fn(*mut f64, *mut Ctx) -> u32;
/// A compiled loop: `(slab, ctx, lo, hi) -> code`, `hi = i64::MAX` for a `while` loop.
pub(super) type LoopFn = unsafe extern "C" fn(*mut f64, *mut Ctx, i64, i64) -> u32;

const OK: u32 = 0;
const FAILED: u32 = 1;
const INTERRUPTED: u32 = 2;

/// Elementwise steps of at most this many elements are unrolled; longer ones loop.
const UNROLL: usize = 8;
/// Moves of at most this many elements in all are done in registers; longer ones call out.
const MOVE_IN_REGISTERS: usize = 32;
/// Programs of more steps than this are left to the planned steps: compiling them would
/// cost more than it saves on any run that is not very long.
pub(super) const MAX_STEPS: usize = 20_000;

/// What compiled code shares with the functions it calls: the slab's length (to make a
/// slice of it again), the scratch buffer the steps use, and a failure to report.
pub(super) struct Ctx<'a> {
    len: usize,
    scratch: &'a mut Vec<f64>,
    failure: Option<Failure>,
}

enum Failure {
    Run(RunError),
    Panic(Box<dyn Any + Send>),
}

/// Machine code, freed when dropped.
pub(super) struct Code {
    module: Option<JITModule>,
}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the function pointers into this module live only in the structure that
            // owns this `Code` (`Native`), which drops them with it, and no compiled function
            // runs while its owner is being dropped.
            unsafe { m.free_memory() };
        }
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code")
    }
}

/// Runs compiled steps on the slab.
pub(super) fn run_steps(f: StepsFn, s: &mut [f64], scratch: &mut Vec<f64>) -> Result<(), RunError> {
    let mut ctx = Ctx { len: s.len(), scratch, failure: None };
    // SAFETY: `f` was compiled from steps planned for a slab of this length (the plans check
    // it before calling), every offset it uses lies inside it, and the slab is borrowed
    // mutably for the call.
    let code = unsafe { f(s.as_mut_ptr(), &mut ctx) };
    finish(code, ctx)
}

/// Runs a compiled loop from `lo` to `hi` (none for a `while` loop) on the slab.
pub(super) fn run_loop(
    f: LoopFn,
    lo: i64,
    hi: Option<i64>,
    s: &mut [f64],
    scratch: &mut Vec<f64>,
) -> Result<(), RunError> {
    let mut ctx = Ctx { len: s.len(), scratch, failure: None };
    // SAFETY: as in `run_steps`.
    let code = unsafe { f(s.as_mut_ptr(), &mut ctx, lo, hi.unwrap_or(i64::MAX)) };
    finish(code, ctx)
}

fn finish(code: u32, ctx: Ctx) -> Result<(), RunError> {
    match (code, ctx.failure) {
        (OK, _) => Ok(()),
        (INTERRUPTED, _) => Err(RunError::Interrupted),
        (_, Some(Failure::Run(e))) => Err(e),
        (_, Some(Failure::Panic(p))) => std::panic::resume_unwind(p),
        (_, None) => panic!("internal error: compiled code failed without saying why"),
    }
}

/// Runs `f` on the slab behind `slab`, keeping a failure or a panic in the context.
///
/// # Safety
/// `ctx` and `slab` are the pointers `run_steps` or `run_loop` passed to compiled code, which
/// passes them on unchanged; no other reference to the slab is alive during the call.
unsafe fn call_out(
    ctx: *mut Ctx,
    slab: *mut f64,
    f: impl FnOnce(&mut [f64], &mut Vec<f64>) -> Result<(), RunError>,
) -> u32 {
    // SAFETY: see the function's contract.
    let ctx = unsafe { &mut *ctx };
    let s = unsafe { std::slice::from_raw_parts_mut(slab, ctx.len) };
    match catch_unwind(AssertUnwindSafe(|| f(s, ctx.scratch))) {
        Ok(Ok(())) => OK,
        Ok(Err(e)) => {
            ctx.failure = Some(Failure::Run(e));
            FAILED
        }
        Err(p) => {
            ctx.failure = Some(Failure::Panic(p));
            FAILED
        }
    }
}

/// One step the compiled code does not do itself.
unsafe extern "C" fn step_call(ctx: *mut Ctx, slab: *mut f64, step: *const Step) -> u32 {
    // SAFETY: `step` points into the plan that owns the compiled code; see `call_out`.
    unsafe { call_out(ctx, slab, |s, scratch| exec(std::slice::from_ref(&*step), s, scratch)) }
}

/// A loop's carried values moved back, when they are too long to move in registers.
unsafe extern "C" fn moves_call(ctx: *mut Ctx, slab: *mut f64, it: *const Iteration) -> u32 {
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
unsafe extern "C" fn enter_call(ctx: *mut Ctx, slab: *mut f64, l: *const Nested, bounds: *mut i64) -> u32 {
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
unsafe extern "C" fn put_call(ctx: *mut Ctx, slab: *mut f64, m: *const (Out, Slot)) -> u32 {
    // SAFETY: as in `step_call`.
    unsafe {
        call_out(ctx, slab, |s, _| {
            let (from, to) = *m;
            super::put(s, from, to);
            Ok(())
        })
    }
}

/// A long unary step on a run, by the interpreter's (vectorised) kernel: `src` is null when
/// the step writes over its operand.
unsafe extern "C" fn unary_slice_call(op: u32, dst: *mut f64, src: *const f64, n: usize) {
    // SAFETY: the compiled code passes places of the slab it was planned for, of `n`
    // elements each, either the same place (`src` null) or places that do not overlap.
    let (dst, src) = unsafe {
        let d = std::slice::from_raw_parts_mut(dst, n);
        (d, (!src.is_null()).then(|| std::slice::from_raw_parts(src, n)))
    };
    crate::kernels::elementwise::unary_slice(Unary::ALL[op as usize], dst, src);
}

extern "C" fn unary_call(op: u32, x: f64) -> f64 {
    Unary::ALL[op as usize].eval(x)
}

extern "C" fn binary_call(op: u32, x: f64, y: f64) -> f64 {
    Binary::ALL[op as usize].eval(x, y)
}

/// Compiles functions into one module.
pub(super) struct Compiler {
    module: JITModule,
    fctx: FunctionBuilderContext,
    ptr: Type,
    ids: Vec<FuncId>,
}

impl Compiler {
    /// A compiler for this machine, or none when cranelift does not support it (the plans
    /// then run as steps).
    pub(super) fn new() -> Option<Compiler> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").ok()?;
        flags.set("use_colocated_libcalls", "false").ok()?;
        flags.set("is_pic", "false").ok()?;
        let isa = cranelift_native::builder().ok()?.finish(settings::Flags::new(flags)).ok()?;
        let module = JITModule::new(JITBuilder::with_isa(isa, cranelift_module::default_libcall_names()));
        let ptr = module.target_config().pointer_type();
        Some(Compiler { module, fctx: FunctionBuilderContext::new(), ptr, ids: Vec::new() })
    }

    /// Compiles steps into a `StepsFn`; returns its index among this compiler's functions.
    pub(super) fn steps(&mut self, steps: &[Step]) -> Option<usize> {
        self.function(false, |e| {
            e.steps(steps);
        })
    }

    /// Compiles a loop into a `LoopFn`; returns its index among this compiler's functions.
    pub(super) fn looping(&mut self, it: &Iteration) -> Option<usize> {
        self.function(true, |e| {
            let (lo, hi) = (e.params[2], e.params[3]);
            e.iteration(it, lo, hi);
        })
    }

    fn function(&mut self, looping: bool, body: impl FnOnce(&mut Emit)) -> Option<usize> {
        let ptr = self.ptr;
        let mut sig = self.module.make_signature();
        sig.params.extend([AbiParam::new(ptr), AbiParam::new(ptr)]);
        if looping {
            sig.params.extend([AbiParam::new(types::I64), AbiParam::new(types::I64)]);
        }
        sig.returns.push(AbiParam::new(types::I32));
        let id = self.module.declare_anonymous_function(&sig).ok()?;
        let mut ctx = self.module.make_context();
        ctx.func.signature = sig;
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let fail = b.create_block();
        let code = b.append_block_param(fail, types::I32);
        let sigs = Signatures::new(&mut b, &self.module, ptr);
        let mut e =
            Emit { b, slab: params[0], ctx: params[1], params, fail, ptr, sigs, known: Default::default() };
        body(&mut e);
        let ok = e.b.ins().iconst(types::I32, OK as i64);
        e.b.ins().return_(&[ok]);
        e.b.switch_to_block(fail);
        e.b.ins().return_(&[code]);
        e.b.seal_all_blocks();
        e.b.finalize(self.module.target_config());
        self.module.define_function(id, &mut ctx).ok()?;
        self.module.clear_context(&mut ctx);
        self.ids.push(id);
        Some(self.ids.len() - 1)
    }

    /// Finishes the module: its code and the address of each function, in order.
    pub(super) fn finish(mut self) -> Option<(Code, Vec<*const u8>)> {
        self.module.finalize_definitions().ok()?;
        let addrs = self.ids.iter().map(|id| self.module.get_finalized_function(*id)).collect();
        Some((Code { module: Some(self.module) }, addrs))
    }
}

/// The signatures of the functions compiled code calls.
struct Signatures {
    unary: SigRef,
    binary: SigRef,
    /// `(ctx, slab, pointer) -> code`: `step_call` and `moves_call`.
    call: SigRef,
    slice: SigRef,
    enter: SigRef,
}

impl Signatures {
    fn new(b: &mut FunctionBuilder, module: &JITModule, ptr: Type) -> Signatures {
        let sig = |params: &[Type], ret: Type| {
            let mut s: Signature = module.make_signature();
            s.params.extend(params.iter().map(|t| AbiParam::new(*t)));
            s.returns.push(AbiParam::new(ret));
            s
        };
        Signatures {
            unary: b.import_signature(sig(&[types::I32, types::F64], types::F64)),
            binary: b.import_signature(sig(&[types::I32, types::F64, types::F64], types::F64)),
            call: b.import_signature(sig(&[ptr, ptr, ptr], types::I32)),
            enter: b.import_signature(sig(&[ptr, ptr, ptr, ptr], types::I32)),
            slice: b.import_signature({
                let mut s: Signature = module.make_signature();
                s.params.extend([types::I32, ptr, ptr, types::I64].map(AbiParam::new));
                s
            }),
        }
    }
}

/// Which element of a step is being computed: a known one (unrolled) or the loop's counter.
#[derive(Clone, Copy)]
enum Elem {
    At(usize),
    /// The counter `k`, and the slab's address plus `8 k`.
    Dyn(Value, Value),
}

/// Emits one function's instructions.
struct Emit<'a> {
    b: FunctionBuilder<'a>,
    slab: Value,
    ctx: Value,
    params: Vec<Value>,
    /// Returns the code given to it.
    fail: Block,
    ptr: Type,
    sigs: Signatures,
    /// The value of each slab element read or written in the current block, by offset.
    known: std::collections::HashMap<usize, Value>,
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

    fn steps(&mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
        }
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
    fn iteration(&mut self, it: &Iteration, lo: Value, hi: Value) {
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
