//! Running IR: arrays on faer, one kernel per primitive, the interpreter, deterministic
//! random numbers and CSV files.
//!
//! This crate knows nothing of source text.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod chains;
pub mod csv;
mod fuse;
pub mod interp;
pub mod kernels;
mod pad_sums;
mod planned;
pub mod reverse;
pub mod rng;

pub use chains::chains_formed;
pub use interp::{compiling, interrupted, set_compile, Compiled, RunError, INTERRUPT};
pub use pad_sums::pad_sums_formed;
pub use planned::{compiled_plans, set_compile_eagerly};

/// Evaluates one primitive on concrete arrays (the top level's path), after checking shapes.
pub fn apply(prim: &ad_ir::Prim, args: &[ad_ir::Array]) -> Result<ad_ir::Array, String> {
    let shapes: Vec<ad_ir::Shape> = args.iter().map(|a| a.shape()).collect();
    let out = prim.infer(&shapes)?;
    kernels::try_apply(prim, args.to_vec(), out)
}

/// Sets faer's default to sequential: small products are much faster without threads, and
/// large ones ask for parallelism explicitly.
pub fn init() {
    faer::set_global_parallelism(faer::Par::Seq);
}
