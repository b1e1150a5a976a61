//! Shared by several test files.

pub mod gradcheck_functions;
