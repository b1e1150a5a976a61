//! Differentiation as program transformation: forward mode (one JVP rule per primitive),
//! reverse mode by linearize + transpose (transpose rules for linear primitives only), the
//! derived programs built from them (gradients, HVPs, Hessians, Jacobians, the two-VJP JVP),
//! and the simplifier that runs after every transformation.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod assemble;
mod conds;
mod custom;
mod derive;
mod emitter;
mod first_order;
mod jvp;
mod jvp_rules;
mod loops;
mod nan_safety;
mod planner;
mod simplify;
mod transpose;
mod transpose_rules;
mod vmap;
mod vmap_loops;
mod vmap_rules;

pub use derive::{derive, jacobian_shape, JacMode, Mode, Request};
pub use planner::{plan, Choice, Factor, Kind, Plan, Planned, MAX_FACTORS};
pub use simplify::simplify;
