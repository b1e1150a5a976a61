//! Elementwise chains (`ad-eval`'s `chains.rs`: consecutive elementwise steps run in blocks)
//! against the interpreter alone (`--no-compile`): random functions of matrices made of
//! every callable elementwise primitive, `where`, infix operators, single numbers, a row
//! broadcast along the leading axis, a column broadcast (which a chain cannot read, so it
//! ends one), reductions of values a chain computes, small vectors computed in between (which run before the chain that reads
//! them), intermediate values returned as results, and sums over all axes ending chains,
//! must give the same bits (NaN for NaN); and chains must have formed.
//!
//! `AD_CHAIN_CASES=N` runs N programs (default below); `AD_CHAIN_SEED=N` runs only seed N
//! and prints its program.

#[path = "common/random_programs.rs"]
mod random_programs;

use ad_eval::rng::Rng;
use ad_ir::{Array, Shape};
use random_programs::{all_pass, lowered, run_bits, seeds, Draw};

const DEFAULT_CASES: u64 = 60;

struct Gen {
    d: Draw,
    /// Matrix values defined so far (`a0`, `a1`, ...) and small vectors (`v0`, ...).
    matrices: usize,
    vectors: usize,
}

impl Gen {
    fn below(&mut self, k: usize) -> usize {
        self.d.below(k)
    }

    fn lit(&mut self) -> String {
        self.d.lit()
    }

    /// An operand of the matrix shape, or one that broadcasts to it, given how many
    /// matrices and vectors are defined.
    fn leaf(d: &mut Draw, matrices: usize, vectors: usize) -> String {
        match d.below(11) {
            0 | 1 => "x".into(),
            2 => "b".into(),
            3 => "s".into(),
            4 => d.lit(),
            5 if vectors > 0 => format!("v{}", d.below(vectors)),
            6 => "reshape(sum(x, 1), (-1, 1)) / 9".into(),
            // A reduction of a value a chain computes (it must wait for the chain).
            7 if matrices > 0 => format!("reshape(sum(a{}, 1), (-1, 1)) / 9", d.below(matrices)),
            _ if matrices > 0 => format!("a{}", d.below(matrices)),
            _ => "x".into(),
        }
    }

    fn expr(&mut self, depth: usize) -> String {
        let (m, v) = (self.matrices, self.vectors);
        self.d.elementwise(depth, &mut |d| Gen::leaf(d, m, v))
    }

    fn program(&mut self, rows: usize, cols: usize) -> String {
        let mut body = String::new();
        for _ in 0..3 + self.below(6) {
            if self.below(4) == 0 {
                let lit = self.lit();
                body.push_str(&format!("  let v{} = b * {lit} + s\n", self.vectors));
                self.vectors += 1;
            }
            // Every matrix value is bounded, so that long chains stay finite, and has the
            // matrix shape (an expression of `b` and `s` alone would be a row).
            let e = self.expr(3);
            body.push_str(&format!("  let a{} = tanh({e}) * 2 + zeros(({rows}, {cols}))\n", self.matrices));
            self.matrices += 1;
        }
        let last = self.matrices - 1;
        let (other, third) = (self.below(self.matrices), self.below(self.matrices));
        // Sums over all axes end chains: one of a value also returned, one of values that
        // live only inside the chain.
        format!(
            "def f(x: [{rows}, {cols}], b: [{cols}], s: []) {{\n{body}  (a{last}, a{other} + 1, sum(a{last} * 0.5), sum(tanh(a{third}) * 3))\n}}\n"
        )
    }
}

fn case(seed: u64) -> Result<(), String> {
    let mut g = Gen { d: Draw(Rng::new(seed)), matrices: 0, vectors: 0 };
    // The last shape is long enough for a chain to run in pieces on all cores, the last
    // piece shorter than the others.
    let (rows, cols) = [(16, 20), (7, 50), (33, 9), (40, 40), (200, 180)][g.below(5)];
    let src = g.program(rows, cols);
    if std::env::var("AD_CHAIN_SEED").is_ok() {
        println!("{src}");
    }
    let p = lowered(&src, "f").map_err(|e| format!("seed {seed}: {e}\n{src}"))?;
    let values = |n: usize, g: &mut Gen| (0..n).map(|_| g.d.0.uniform() * 4.0 - 2.0).collect::<Vec<_>>();
    let args = vec![
        Array::new(Shape::matrix(rows, cols), values(rows * cols, &mut g)),
        Array::new(Shape::vector(cols), values(cols, &mut g)),
        Array::scalar(0.7),
    ];
    let (fused, plain) = (run_bits(&p, &args, true, false, 1)?, run_bits(&p, &args, false, false, 1)?);
    if fused != plain {
        return Err(format!("seed {seed}: chains and the interpreter differ\n{src}"));
    }
    Ok(())
}

#[test]
fn chains_agree_with_the_interpreter_bit_for_bit() {
    let before = ad_eval::chains_formed();
    let seeds = seeds("CHAIN", DEFAULT_CASES);
    all_pass(&seeds, case);
    let formed = ad_eval::chains_formed() - before;
    assert!(formed >= seeds.len() as u64, "only {formed} chains formed in {} programs", seeds.len());
}
