//! The compiled tier against the interpreter (DESIGN §11): random functions with loops in
//! them, and their gradients (whose reversals run planned too), run three ways — by the
//! interpreter alone (`--no-compile`), planned with the default policy (run cold as steps
//! first, compiled once hot) and compiled at the first run — must give the same results bit
//! for bit (NaN for NaN).
//!
//! The generator writes loop bodies from every callable elementwise primitive (so each one's
//! compiled form meets its interpreted one), operands that are runs, single elements,
//! numbers and broadcasts of other shapes, gathers (indexing, slices, reversals,
//! concatenation), sums, positions computed at run time, an `if` and a nested `while` in the
//! body, and vectors both shorter and longer than the compiler unrolls.
//!
//! `AD_TIER_CASES=N` runs N programs (default below); `AD_TIER_SEED=N` runs only seed N and
//! prints its program.

#[path = "common/random_programs.rs"]
mod random_programs;

use ad_eval::rng::Rng;
use ad_ir::{Array, Shape};
use random_programs::{all_pass, lowered, run_bits, seeds, Draw};

const DEFAULT_CASES: u64 = 60;

struct Gen {
    d: Draw,
    n: usize,
}

impl Gen {
    fn below(&mut self, k: usize) -> usize {
        self.d.below(k)
    }

    fn lit(&mut self) -> String {
        self.d.lit()
    }

    /// An expression of shape `[n]` of depth at most `depth`.
    fn vector(&mut self, depth: usize) -> String {
        let n = self.n;
        self.d.elementwise(depth, &mut |d| Gen::leaf(d, n))
    }

    fn leaf(d: &mut Draw, n: usize) -> String {
        match d.below(12) {
            0 | 1 => "s".into(),
            2 => "x".into(),
            3 => "p".into(),
            4 => d.lit(),
            5 => "(i / 7)".into(),
            6 => "s[::-1]".into(),
            7 if n > 1 => "concat((s[1:], s[:1]), 0)".into(),
            8 => format!("s[{}]", d.below(n)),
            // A broadcast of another shape: a column against a row, summed back.
            9 => "sum(reshape(s, (1, -1)) * reshape(x, (-1, 1)), 0) / 4".into(),
            10 => "s[mod(i, rows(s))]".into(),
            _ => "t".into(),
        }
    }

    fn statement(&mut self) -> String {
        match self.below(7) {
            0..=2 => format!("    s = 0.5 * s + 0.5 * tanh({})\n", self.vector(3)),
            3 => "    t = t + sum(s) * 0.01\n".into(),
            4 => format!(
                "    if t > {} {{\n      s = s * 0.9\n    }} else {{\n      s = s + {}\n    }}\n",
                self.lit(),
                self.lit()
            ),
            5 => {
                "    let r = abs(t) + 1\n    while r > 0.5 {\n      r = r / 2\n    }\n    s = s + r * 0.01\n"
                    .into()
            }
            _ => format!("    s[mod(i, rows(s))] += {} * p\n", self.lit()),
        }
    }

    fn program(&mut self, trips: usize) -> String {
        let n = self.n;
        let mut body = String::new();
        for _ in 0..2 + self.below(4) {
            body.push_str(&self.statement());
        }
        format!(
            "def f(x: [{n}], p: []) {{\n  let s = x * 0.5\n  let t = 0\n  for i in 0..{trips} {{\n{body}  }}\n  (s, t)\n}}\n\
             def loss(x: [{n}], p: []) {{\n  let (s, t) = f(x, p)\n  sum(s) + t\n}}\n\
             def g(x: [{n}], p: []) {{\n  grad(loss, (0, 1))(x, p)\n}}\n"
        )
    }
}

/// Runs seed `seed`'s program three ways; an error describes a disagreement.
fn case(seed: u64) -> Result<(), String> {
    let mut g = Gen { d: Draw(Rng::new(seed)), n: [1, 3, 9, 13][seed as usize % 4] };
    // Short loops run cold as steps until their third run; long ones compile at the first.
    let trips = if seed.is_multiple_of(3) { 70 } else { 5 + g.below(20) };
    let src = g.program(trips);
    if std::env::var_os("AD_TIER_SEED").is_some() {
        println!("{src}");
    }
    let x = Array::new(Shape::vector(g.n), (0..g.n).map(|k| (k as f64 * 0.7).sin()).collect());
    let args = vec![x, Array::scalar(0.3)];
    for name in ["f", "g"] {
        let p = lowered(&src, name).map_err(|e| format!("{src}\n{e}"))?;
        let reference = run_bits(&p, &args, false, false, 1);
        for (eager, times) in [(false, 4), (true, 2)] {
            let other = run_bits(&p, &args, true, eager, times);
            if other != reference {
                return Err(format!(
                    "seed {seed}, {name}, eager {eager}:\n{src}\ninterpreted {reference:?}\ncompiled {other:?}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn compiled_loops_agree_with_the_interpreter_bit_for_bit() {
    let seeds = seeds("TIER", DEFAULT_CASES);
    let before = ad_eval::compiled_plans();
    all_pass(&seeds, case);
    // The test is void unless the compiled tier ran: every program's loop and its gradient's
    // reversal are compiled in the eager runs.
    assert!(ad_eval::compiled_plans() - before >= 2 * seeds.len() as u64, "the compiled tier did not run");
}
