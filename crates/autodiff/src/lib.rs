//! Differentiation as program transformation: forward mode (one JVP rule per primitive),
//! reverse mode by linearize + transpose (transpose rules for linear primitives only), the
//! derived programs built from them (gradients, HVPs, Hessians, Jacobians, the two-VJP JVP),
//! and the simplifier that runs after every transformation.

pub mod batch;
pub mod cost;
pub mod derive;
pub mod emitter;
pub mod jvp;
pub mod jvp_rules;
pub mod planner;
pub mod simplify;
pub mod transpose;
pub mod transpose_rules;

pub use derive::{derive, jacobian_shape, JacMode, Mode, Request};
pub use simplify::simplify;
