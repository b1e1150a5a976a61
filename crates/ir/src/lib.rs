//! The IR of AD: shapes, arrays, primitives, programs (SSA equations with static shapes and
//! spans), lowering from the AST, the verifier and the `.ad` printer.
//!
//! Passes are functions `Program -> Program`; the transformations live in `ad-autodiff`, the
//! interpreter in `ad-eval`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod array;
pub mod builder;
pub mod display;
pub mod lower;
pub mod prim;
pub mod print;
pub mod program;
pub mod region;
pub mod scalar;
pub mod shape;
pub mod transform;
pub mod verify;
pub mod window;
pub mod words;

pub use array::Array;
pub use builder::{Builder, Subst};
pub use prim::{Binary, Prim, Sel, Unary};
pub use print::print_program;
pub use program::{args_of, Args, Atom, Eqn, Program, Tree, Var, VarInfo};
pub use shape::Shape;
pub use verify::verify;
