//! A fuzzer for the `ad` binary.
//!
//! It makes cases three ways (random well-formed programs from a grammar, mutations of the
//! repository's `.ad` files, byte noise), runs each against `ad run`, `ad check`,
//! `ad derive` (every mode) or the piped REPL with a time and a memory limit, classifies
//! the result (a crash, a hang, an unlocated error, ...), and minimises what it finds.
//! `tests/fuzz.rs` runs a short seeded campaign inside `cargo test`; `src/main.rs` is the
//! long run (`cargo run --release -p ad-fuzz -- --minutes 30`). See `book/src/fuzzing.md`.
#![deny(unsafe_code)]

pub mod campaign;
pub mod classify;
pub mod corpus;
pub mod gen;
pub mod minimize;
pub mod mutate;
pub mod noise;
pub mod regress;
pub mod rng;
pub mod run;
pub mod target;
