//! What the random-program tests share: drawing numbers and elementwise expressions (every
//! callable elementwise primitive, infix operators and `where`), loading a script and
//! lowering one of its functions, and results as bits.

use ad_driver::derive::lower_named;
use ad_driver::{Session, SharedBuf};
use ad_eval::rng::Rng;
use ad_ir::prim::{Binary, Unary};
use ad_ir::{Array, Program};

pub struct Draw(pub Rng);

impl Draw {
    pub fn below(&mut self, k: usize) -> usize {
        (self.0.uniform() * k as f64) as usize % k
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    /// A number literal in [-1, 1).
    pub fn lit(&mut self) -> String {
        format!("{:.3}", self.0.uniform() * 2.0 - 1.0)
    }

    /// An elementwise expression of depth at most `depth` over operands `leaf` writes: a
    /// callable unary or binary primitive, an infix operator, or a `where`.
    pub fn elementwise(&mut self, depth: usize, leaf: &mut dyn FnMut(&mut Draw) -> String) -> String {
        if depth == 0 || self.below(4) == 0 {
            return leaf(self);
        }
        let unary: Vec<&str> = Unary::ALL.iter().filter(|u| u.callable()).map(|u| u.name()).collect();
        let binary: Vec<&str> = Binary::ALL.iter().filter(|b| b.callable()).map(|b| b.name()).collect();
        match self.below(6) {
            0 | 1 => {
                let f = self.pick(&unary);
                format!("{f}({})", self.elementwise(depth - 1, leaf))
            }
            2 | 3 => {
                let f = self.pick(&binary);
                let (a, b) = (self.elementwise(depth - 1, leaf), self.elementwise(depth - 1, leaf));
                format!("{f}({a}, {b})")
            }
            4 => {
                let op = self.pick(&["+", "-", "*", "/"]);
                let (a, b) = (self.elementwise(depth - 1, leaf), self.elementwise(depth - 1, leaf));
                format!("({a} {op} {b})")
            }
            _ => {
                let (c, t, e) =
                    (self.elementwise(depth - 1, leaf), self.lit(), self.elementwise(depth - 1, leaf));
                format!("where({c} > {t}, {e}, {})", leaf(self))
            }
        }
    }
}

/// The function `function` of the script `src`, lowered.
pub fn lowered(src: &str, function: &str) -> Result<Program, String> {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("random.ad", src).map_err(|e| ad_syntax::render(&s.sources, &e, false))?;
    lower_named(&mut s, function, &[]).map(|l| l.program).map_err(|e| e.message)
}

/// Results as bits, every NaN the same.
pub fn bits(out: &[Array]) -> Vec<Vec<u64>> {
    out.iter()
        .map(|a| a.data().iter().map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() }).collect())
        .collect()
}

/// The seeds a random test runs: only `AD_<NAME>_SEED` when it is set, else 0 up to
/// `AD_<NAME>_CASES` (or `default`).
pub fn seeds(name: &str, default: u64) -> Vec<u64> {
    match std::env::var(format!("AD_{name}_SEED")) {
        Ok(s) => vec![s.parse().unwrap_or_else(|_| panic!("AD_{name}_SEED is a number"))],
        Err(_) => {
            let n = std::env::var(format!("AD_{name}_CASES"))
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default);
            (0..n).collect()
        }
    }
}

/// Runs `case` for every seed, and fails with the message of every case that failed.
pub fn all_pass(seeds: &[u64], case: impl Fn(u64) -> Result<(), String>) {
    let failures: Vec<String> = seeds.iter().filter_map(|&s| case(s).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

/// The results of `p` on `args`, as bits, prepared with the compiled paths (`compile`:
/// chains, pad sums, planned and compiled loops; `eager`: compiled at the first run) or by
/// the interpreter alone (`--no-compile`), run `times` times (which must agree).
pub fn run_bits(
    p: &Program,
    args: &[Array],
    compile: bool,
    eager: bool,
    times: usize,
) -> Result<Vec<Vec<u64>>, String> {
    ad_eval::set_compile(compile);
    ad_eval::set_compile_eagerly(eager);
    let c = ad_eval::Compiled::new(p);
    ad_eval::set_compile(true);
    ad_eval::set_compile_eagerly(false);
    let mut last = Vec::new();
    for _ in 0..times {
        let out = c.run(args.to_vec()).map_err(|e| format!("{e:?}"))?;
        let bits = bits(&out);
        if !last.is_empty() && bits != last {
            return Err("two runs of the same program differ".into());
        }
        last = bits;
    }
    Ok(last)
}
