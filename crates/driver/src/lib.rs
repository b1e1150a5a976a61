//! The session: source text to values. Owns the top-level names, the prelude, the
//! specialisation cache and the effects (printing, random numbers, files); used by the CLI
//! and the REPL.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
mod call;
pub mod check;
pub mod derive;
pub mod golden;
pub mod memory;
mod modules;
pub mod npy;
mod output;
pub mod plot;
pub mod progress;
pub mod session;

pub use output::SharedBuf;
pub use session::{read_source, Session};
