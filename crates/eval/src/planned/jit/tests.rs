//! Compiled steps, fused or not, against the planned steps, and where chains stop.

use super::emit::chain;
use super::{compile_steps, run_steps};
use crate::planned::steps::{exec, Src, Step};
use crate::planned::Slot;
use ad_ir::prim::{Binary, Unary};

const N: usize = 10;

fn slot(at: usize) -> Slot {
    Slot { at, len: N }
}

fn add(x: Src, y: Src, out: usize) -> Step {
    Step::Binary(Binary::Add, x, y, slot(out))
}

/// Runs `steps` on a slab by the planned steps and compiled, and returns both slabs.
fn both(steps: &[Step]) -> (Vec<f64>, Vec<f64>) {
    let start: Vec<f64> = (0..8 * N).map(|k| (k as f64 * 0.37).sin()).collect();
    let mut planned = start.clone();
    exec(steps, &mut planned, &mut Vec::new()).expect("the steps run");
    let (_code, f) = compile_steps(steps).expect("the steps compile");
    let mut compiled = start;
    run_steps(f, &mut compiled, &mut Vec::new()).expect("the compiled steps run");
    (planned, compiled)
}

#[test]
fn chains_stop_where_running_element_by_element_would_read_something_else() {
    // Disjoint runs, a result read at the same element, a result written over its
    // operand: one chain.
    let fine = [
        add(Src::Run(0), Src::Run(N), 2 * N),
        Step::Binary(Binary::Mul, Src::Run(2 * N), Src::Lit(3.0), slot(2 * N)),
        Step::Unary(Unary::Neg, Src::Run(2 * N), slot(3 * N)),
    ];
    assert_eq!(chain(&fine, 0), 3);
    // Every element of the second step reads element 5 of the first's result: fused, its
    // first elements would read it before the first step computed it.
    let one = [add(Src::Run(0), Src::Run(N), 2 * N), add(Src::One(2 * N + 5), Src::Run(N), 3 * N)];
    assert_eq!(chain(&one, 0), 1);
    // A later step writes the single element an earlier one reads.
    let later = [add(Src::One(3 * N + 1), Src::Run(N), 2 * N), add(Src::Run(0), Src::Run(N), 3 * N)];
    assert_eq!(chain(&later, 0), 1);
    // A run overlapping a result without coinciding.
    let shifted = [add(Src::Run(0), Src::Run(N), 2 * N), add(Src::Run(2 * N + 1), Src::Run(N), 4 * N)];
    assert_eq!(chain(&shifted, 0), 1);
    // Other lengths, broadcasts and calls end a chain; short steps do not start one.
    let exp = [add(Src::Run(0), Src::Run(N), 2 * N), Step::Unary(Unary::Exp, Src::Run(2 * N), slot(3 * N))];
    assert_eq!(chain(&exp, 0), 1);
    let map =
        [add(Src::Run(0), Src::Run(N), 2 * N), add(Src::Map((0..N).rev().collect()), Src::Lit(1.0), 3 * N)];
    assert_eq!(chain(&map, 0), 1);
    let short = [
        Step::Binary(Binary::Add, Src::Run(0), Src::Run(N), Slot { at: 2 * N, len: 4 }),
        Step::Binary(Binary::Add, Src::Run(0), Src::Run(N), Slot { at: 3 * N, len: 4 }),
    ];
    assert_eq!(chain(&short, 0), 1);
}

#[test]
fn compiled_steps_fused_or_not_leave_the_slab_as_the_planned_steps_do() {
    let cases: Vec<Vec<Step>> = vec![
        // A chain: in place, a result read back, comparisons and `where`.
        vec![
            add(Src::Run(0), Src::Run(N), 2 * N),
            Step::Binary(Binary::Mul, Src::Run(2 * N), Src::One(N + 3), slot(2 * N)),
            Step::Binary(Binary::Lt, Src::Run(2 * N), Src::Lit(0.1), slot(4 * N)),
            Step::Where(Src::Run(4 * N), Src::Run(2 * N), Src::Run(0), slot(5 * N)),
            Step::Unary(Unary::Sqrt, Src::Run(5 * N), slot(0)),
        ],
        // The hazards of the test above, which must run unfused.
        vec![add(Src::Run(0), Src::Run(N), 2 * N), add(Src::One(2 * N + 5), Src::Run(N), 3 * N)],
        vec![add(Src::One(3 * N + 1), Src::Run(N), 2 * N), add(Src::Run(0), Src::Run(N), 3 * N)],
        vec![add(Src::Run(0), Src::Run(N), 2 * N), add(Src::Run(2 * N + 1), Src::Run(N), 4 * N)],
        // A long call by the vectorised kernel, in place and not.
        vec![
            Step::Unary(Unary::Tanh, Src::Run(0), slot(0)),
            Step::Unary(Unary::Exp, Src::Run(N), slot(6 * N)),
        ],
    ];
    for steps in &cases {
        let (planned, compiled) = both(steps);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&planned), bits(&compiled), "{steps:?}");
    }
}
