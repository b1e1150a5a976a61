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
//! operators, `where`, gathers, copies and indexing at computed positions (one contiguous
//! part) are emitted as instructions; every other scalar function is a call to the
//! primitive's own `eval` (the function the interpreter and the planned steps call), so
//! `exp`, `tanh` or `pow` cannot differ, and a long unary step calls the interpreter's
//! vectorised kernel. Steps whose work is in a kernel (sums, products) call `exec` on that
//! one step. Elements are computed in the order the planned steps compute them, so a result
//! written over its operand reads what the steps read; a chain of elementwise steps runs
//! fused only where computing element by element reads the same (`emit::chain`), and a slab
//! element a block has already read or written is taken from its register.
//!
//! Failures inside a call (a position out of range, a loop bound that is not an integer, a
//! panic) are kept in the `Ctx` and the compiled code returns at once with a code saying so;
//! the caller turns it back into the `RunError` (or resumes the panic). No Rust unwinding
//! crosses compiled frames.
//!
//! `emit.rs` writes a function's instructions; `callouts.rs` holds the functions compiled
//! code calls.

mod callouts;
mod emit;
#[cfg(test)]
mod tests;

use super::steps::Step;
use super::Iteration;
use crate::interp::RunError;
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, SigRef, Signature, Type};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Module};
use emit::Emit;
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
/// Compiles one function with `define`, unless the program is longer than `MAX_STEPS`.
fn compile_one(len: usize, define: impl FnOnce(&mut Compiler) -> Option<usize>) -> Option<(Code, *const u8)> {
    if len > MAX_STEPS {
        return None;
    }
    let mut c = Compiler::new()?;
    define(&mut c)?;
    let (code, addrs) = c.finish()?;
    Some((code, *addrs.first()?))
}

/// Steps compiled to one function, with the code that holds it.
pub(super) fn compile_steps(steps: &[Step]) -> Option<(Code, StepsFn)> {
    let (code, a) = compile_one(steps.len(), |c| c.steps(steps))?;
    // SAFETY: the address is a function `Compiler::steps` compiled.
    Some((code, unsafe { steps_fn(a) }))
}

/// A loop compiled to one function, with the code that holds it.
pub(super) fn compile_loop(it: &Iteration) -> Option<(Code, LoopFn)> {
    let (code, a) = compile_one(it.body.len(), |c| c.looping(it))?;
    // SAFETY: `Compiler::looping` compiled the function with `LoopFn`'s signature.
    Some((code, unsafe { std::mem::transmute::<*const u8, LoopFn>(a) }))
}

/// The function at `a` as compiled steps.
///
/// # Safety
/// `a` is the address of a function `Compiler::steps` compiled, in a module not yet freed.
pub(super) unsafe fn steps_fn(a: *const u8) -> StepsFn {
    // SAFETY: see the contract.
    unsafe { std::mem::transmute::<*const u8, StepsFn>(a) }
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
