//! Sums of padded arrays run as one step (`ad-eval`'s `pad_sums.rs`) against the
//! interpreter alone (`--no-compile`): random functions of a matrix that add pads of
//! elementwise values with random widths on both axes, nested to the left (absorbed) and
//! to the right (not), transposed (written transposed), with operands that are not pads,
//! one value padded twice (the pad whose operand a later step takes stays), other
//! transposes (left alone), a pad read twice (not absorbed),
//! negative zeros (a zero added to -0 makes +0) and NaNs, must give the same bits; and
//! pad sums must have formed. Gradients through shifted slices (whose cotangents are such
//! sums) are checked the same way.
//!
//! `AD_PAD_CASES=N` runs N programs (default below); `AD_PAD_SEED=N` runs only seed N and
//! prints its program.

#[path = "common/random_programs.rs"]
mod random_programs;

use ad_eval::rng::Rng;
use ad_ir::transform::{Mode, Request};
use ad_ir::{Array, Shape};
use random_programs::{all_pass, lowered, run_bits, seeds, Draw};

const DEFAULT_CASES: u64 = 60;

/// A pad of an elementwise value of `x` to the shape (rows, cols): the value is a block of
/// `x` of the shape left after random widths.
fn padded(d: &mut Draw, rows: usize, cols: usize) -> String {
    let (top, left) = (d.below(3), d.below(3));
    let (bottom, right) = (d.below(3), d.below(3));
    let (r, c) = (rows - top - bottom, cols - left - right);
    // `@` stands for the block until the expression is drawn (a function's name may hold
    // an `x`); an expression without it (literals only) is replaced by the block.
    let value = d.elementwise(2, &mut |d| match d.below(5) {
        0 => d.lit(),
        // Negative zeros and NaNs where `x` is 0 or negative.
        1 => "(@ * 0 * -1)".into(),
        2 => "sqrt(@)".into(),
        _ => "@".into(),
    });
    let value = if value.contains('@') { value } else { "@".into() };
    let value = value.replace('@', &format!("x[{}:{}, {}:{}]", top, top + r, left, left + c));
    format!("pad({value}, (({top}, {bottom}), ({left}, {right})))")
}

fn program(d: &mut Draw, rows: usize, cols: usize) -> String {
    let mut body = String::new();
    let mut extra = String::new();
    for k in 0..2 + d.below(4) {
        let terms: Vec<String> = (0..2 + d.below(3)).map(|_| padded(d, rows, cols)).collect();
        let sum = match d.below(4) {
            // Nested to the right: the inner sum is not absorbed by the outer one.
            0 => format!("{} + ({})", terms[0], terms[1..].join(" + ")),
            // A term that is not a pad.
            1 => format!("x * 2 + {}", terms.join(" + ")),
            _ => terms.join(" + "),
        };
        body.push_str(&format!("  let s{k} = {sum}\n"));
        if d.below(3) == 0 {
            // One value padded twice, the pad that runs first added second: the later pad
            // takes the value, so the earlier one, which borrows it, is not absorbed.
            let v = format!("sin(x[1:, :{}])", cols - 1);
            body.push_str(&format!(
                "  let v{k} = {v}\n  let p{k} = pad(v{k}, ((0, 1), (1, 0)))\n  s{k} = s{k} + (pad(v{k}, ((1, 0), (0, 1))) + p{k})\n"
            ));
        }
        if d.below(4) == 0 {
            // A transpose of something else is left as it is.
            body.push_str(&format!("  let u{k} = (x * 2 + s{k})'\n"));
            extra.push_str(&format!(", u{k}"));
        }
        if d.below(3) == 0 {
            // A transpose of a sum, read nowhere else, is written by the sum's step.
            body.push_str(&format!("  let t{k} = ({sum})'\n"));
            extra.push_str(&format!(", t{k}"));
        }
        if d.below(3) == 0 {
            // A pad read twice is computed as it is.
            let p = padded(d, rows, cols);
            body.push_str(&format!("  let q{k} = {p}\n  s{k} = s{k} + q{k} + q{k} * 3\n"));
        }
    }
    let last = body.matches("let s").count() - 1;
    format!("def f(x: [{rows}, {cols}]) {{\n{body}  (s{last}, s0 - s{last}{extra})\n}}\n")
}

fn args(d: &mut Draw, rows: usize, cols: usize) -> Vec<Array> {
    let data = (0..rows * cols)
        .map(|_| match d.below(8) {
            0 => 0.0,
            1 => -0.0,
            _ => d.0.uniform() * 4.0 - 2.0,
        })
        .collect();
    vec![Array::new(Shape::matrix(rows, cols), data)]
}

fn case(seed: u64) -> Result<(), String> {
    let mut d = Draw(Rng::new(seed));
    let (rows, cols) = [(6, 7), (30, 40), (5, 300), (130, 90)][d.below(4)];
    let src = program(&mut d, rows, cols);
    if std::env::var("AD_PAD_SEED").is_ok() {
        println!("{src}");
    }
    let p = lowered(&src, "f").map_err(|e| format!("seed {seed}: {e}\n{src}"))?;
    let x = args(&mut d, rows, cols);
    if run_bits(&p, &x, true, false, 1)? != run_bits(&p, &x, false, false, 1)? {
        return Err(format!("seed {seed}: pad sums and the interpreter differ\n{src}"));
    }
    Ok(())
}

#[test]
fn pad_sums_agree_with_the_interpreter_bit_for_bit() {
    let before = ad_eval::pad_sums_formed();
    let seeds = seeds("PAD", DEFAULT_CASES);
    all_pass(&seeds, case);
    let formed = ad_eval::pad_sums_formed() - before;
    assert!(formed >= seeds.len() as u64, "only {formed} pad sums formed in {} programs", seeds.len());
}

/// The gradients of functions that read their input through shifted slices, and the
/// Hessian of one: their cotangents are sums of pads.
#[test]
fn gradients_through_shifted_slices_agree_with_the_interpreter() {
    let src = "def tv(x: [40, 30]) = sum((x[1:, :] - x[:-1, :]) ^ 2) + sum(x[:, 2:] * x[:, :-2]) + sum(sin(x[1:, 1:]) * x[:-1, :-1])\n\
               def rosen(x: [60]) = sum(100 * (x[1:] - x[:-1] ^ 2) ^ 2 + (1 - x[:-1]) ^ 2)\n";
    let mut d = Draw(Rng::new(7));
    for (name, mode, rows, cols) in
        [("tv", Mode::Grad { with_value: false }, 40, 30), ("rosen", Mode::Hessian, 1, 60)]
    {
        let p = lowered(src, name).unwrap();
        let g = ad_autodiff::derive(&p, &Request { mode, wrt: vec![0] }).unwrap();
        let x = args(&mut d, rows, cols);
        let x = if rows == 1 { vec![Array::new(Shape::vector(cols), x[0].data().to_vec())] } else { x };
        let before = ad_eval::pad_sums_formed();
        assert_eq!(
            run_bits(&g, &x, true, false, 1).unwrap(),
            run_bits(&g, &x, false, false, 1).unwrap(),
            "{name}"
        );
        assert!(ad_eval::pad_sums_formed() > before, "no pad sum formed in the {mode:?} of {name}");
    }
}
