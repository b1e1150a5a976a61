//! Reverse mode through loops whose carried values are not recorded in the program
//! (`reverse_loop`) gives the same numbers, bit for bit, however the reversal keeps them:
//! recorded, in two levels of checkpoints, or binomially. The memory budget is a process-wide
//! setting, so this file holds one test.

use ad_driver::derive::lower_named;
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_eval::reverse::{last_reversal, Strategy};
use ad_ir::transform::{Mode, Request};
use ad_ir::Array;

const SOURCE: &str = "
# A damped oscillator stepped until a computed time: a `while` loop.
def energy(p: [2]) {
  let (x, v) = (1, 0)
  let t = 0
  while t < 3 {
    (x, v) = (x + 0.01 * v, v - 0.01 * (p[0] * x + p[1] * v))
    t += 0.01
  }
  x * x + v * v
}
# A recurrence over a computed number of steps: a `for` loop with computed bounds.
def recur(x: [300], w: [2]) {
  let h = w
  for i in 0..sign(abs(w[0]) + 1) * 300 {
    h = tanh(h * x[i] + w) * 0.9
  }
  sum(h)
}
";

fn gradient(s: &mut Session, name: &str, inputs: Vec<Array>) -> (Vec<f64>, Strategy, u64) {
    let p = lower_named(s, name, &[]).unwrap_or_else(|e| panic!("{name}: {}", e.message)).program;
    let req = Request { mode: Mode::Grad { with_value: false }, wrt: vec![0] };
    let g = ad_autodiff::derive(&p, &req).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = s.run_program(&g, inputs).unwrap_or_else(|| panic!("{name}: the gradient did not run"));
    let stats = last_reversal();
    (out.iter().flat_map(|a| a.data().to_vec()).collect(), stats.strategy, stats.forward_steps)
}

#[test]
fn recorded_and_checkpointed_reversals_agree() {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("loops.ad", SOURCE)
        .unwrap_or_else(|e| panic!("{}", ad_syntax::render(&s.sources, &e, false)));
    // Each case: the function, its arguments, its trip count and its carried values' shapes.
    let scalar = ad_ir::Shape::scalar();
    let cases: [(&str, Vec<Array>, u64, Vec<ad_ir::Shape>); 2] = [
        ("energy", vec![Array::new(ad_ir::Shape::vector(2), vec![4.0, 0.1])], 300, vec![scalar; 3]),
        (
            "recur",
            vec![
                Array::new(
                    ad_ir::Shape::vector(300),
                    (0..300).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.1).collect(),
                ),
                Array::new(ad_ir::Shape::vector(2), vec![0.7, -0.3]),
            ],
            300,
            vec![ad_ir::Shape::vector(2)],
        ),
    ];
    for (name, inputs, trips, carried) in cases {
        let state = ad_eval::reverse::state_bytes_of(&carried);
        ad_ir::shape::set_tape_budget(512 << 20);
        let (recorded, strategy, steps) = gradient(&mut s, name, inputs.clone());
        assert_eq!(strategy, Strategy::Recorded, "{name}");
        assert!(steps >= trips && steps <= trips + 1, "{name}: {steps} forward steps");
        // Room for 60 states: checkpoints every 10 steps, and a segment of 10.
        ad_ir::shape::set_tape_budget(60 * state);
        let (two_level, strategy, steps) = gradient(&mut s, name, inputs.clone());
        assert_eq!(strategy, Strategy::TwoLevel, "{name}");
        assert!(steps <= 3 * trips, "{name}: {steps} forward steps");
        // Room for 6 states: binomial checkpoints.
        ad_ir::shape::set_tape_budget(6 * state);
        let (binomial, strategy, steps) = gradient(&mut s, name, inputs.clone());
        assert_eq!(strategy, Strategy::Binomial, "{name}");
        assert!(steps > 2 * trips, "{name}: {steps} forward steps");
        assert!(recorded.iter().all(|x| x.is_finite()) && recorded.iter().any(|x| *x != 0.0), "{name}");
        assert_eq!(recorded, two_level, "{name}: two levels differ from the record");
        assert_eq!(recorded, binomial, "{name}: binomial checkpoints differ from the record");
    }
    ad_ir::shape::set_tape_budget(512 << 20);
}
