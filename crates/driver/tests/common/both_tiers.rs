//! Running a program interpreted and compiled, which must agree bit for bit (DESIGN §11).

use ad_driver::Session;
use ad_ir::{Array, Program};

/// Runs `p` in the interpreter, then again with every plan compiled at its first run (a
/// program of small values is planned and compiled whole), and returns the interpreter's
/// results; panics if the two differ in any bit (every NaN counts as the same), and `None`
/// if the program cannot run.
pub fn run_both_ways(s: &Session, p: &Program, inputs: Vec<Array>) -> Option<Vec<Array>> {
    let interpreted = s.run_program(p, inputs.clone())?;
    ad_eval::set_compile_eagerly(true);
    let compiled = s.run_program(p, inputs);
    ad_eval::set_compile_eagerly(false);
    let bits = |xs: &[Array]| -> Vec<u64> {
        xs.iter()
            .flat_map(|a| a.data().iter().map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() }))
            .collect()
    };
    match compiled {
        Some(c) if bits(&c) == bits(&interpreted) => Some(interpreted),
        other => panic!("`{}` compiled gives {other:?}, interpreted {interpreted:?}", p.name),
    }
}
