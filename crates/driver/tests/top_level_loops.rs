//! Top-level loops whose bodies run as one program (`lower/top_loop.rs`): the body is
//! lowered once per loop, whatever the number of iterations, and every name it assigns ends
//! with the value the statement-by-statement reference (`--no-compile`) gives, bit for bit.
//! Bodies that cannot be a program (effects, shapes that depend on the index, carried values
//! that change shape, a `let` that shadows a carried name) run statement by statement.

use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_eval::rng::Rng;
use ad_ir::lower::value::{Arr, LVal};

// Only the drawing of expressions is used here.
#[allow(dead_code)]
#[path = "common/random_programs.rs"]
mod random_programs;
use random_programs::Draw;

/// Every number in a value, as bits (every NaN the same).
fn bits(v: &LVal, out: &mut Vec<u64>) {
    let b = |x: f64| if x.is_nan() { u64::MAX } else { x.to_bits() };
    match v {
        LVal::Num(x) => out.push(b(*x)),
        LVal::Arr(Arr::Val(a)) => out.extend(a.data().iter().map(|&x| b(x))),
        LVal::Tuple(t) => t.iter().for_each(|x| bits(x, out)),
        other => panic!("unexpected value {other:?}"),
    }
}

struct Run {
    out: String,
    lowerings: usize,
    /// Whether a loop's body was lowered as a program.
    body: bool,
    values: Vec<Vec<u64>>,
}

/// Runs `src` with top-level loops compiled or not; returns what it printed, how many
/// functions it lowered, and the bits of the top-level names `names`.
fn run(src: &str, compile: bool, names: &[&str]) -> Run {
    ad_eval::set_compile(compile);
    let buf = SharedBuf::default();
    let mut s = Session::new(Box::new(buf.clone()));
    let r = s.run_source("loop.ad", src);
    ad_eval::set_compile(true);
    if let Err(e) = r {
        panic!("{src}\nfailed: {e:?}");
    }
    let values = names
        .iter()
        .map(|n| {
            let mut b = Vec::new();
            bits(s.global_value(n).unwrap_or_else(|| panic!("no `{n}`")), &mut b);
            b
        })
        .collect();
    let body = s.specializations().iter().any(|e| e.lowered.program.name == "loop body");
    Run { out: buf.take(), lowerings: s.lowerings(), body, values }
}

/// Runs `src` both ways; the printed text and the names' bits must agree. Returns the
/// compiled run.
fn both_ways(src: &str, names: &[&str]) -> Run {
    let reference = run(src, false, names);
    let compiled = run(src, true, names);
    assert_eq!(compiled.out, reference.out, "{src}");
    assert_eq!(compiled.values, reference.values, "{src}");
    compiled
}

const TRAIN: &str = "
seed(0)
let X = randn((64, 2))
let Y = sin(X[:, :1])
def loss(params, X, Y) {
  let (W1, b1, W2, b2) = params
  let out = tanh(X @ W1 + b1) @ W2 + b2
  sum((out - Y) ^ 2) / rows(X)
}
let params = (randn((2, 16)) / sqrt(2), zeros(16), randn((16, 1)) / sqrt(16), zeros(1))
let lr = 0.1
let losses = zeros(STEPS)
for step in 0..STEPS {
  losses[step] = loss(params, X, Y)
  params = params - lr * grad(loss)(params, X, Y)
  lr = lr * 0.99
}
print(losses[STEPS - 1])
";

#[test]
fn a_training_loop_is_lowered_once_and_agrees_bit_for_bit() {
    let names = ["params", "lr", "losses"];
    let short = both_ways(&TRAIN.replace("STEPS", "5"), &names);
    let long = both_ways(&TRAIN.replace("STEPS", "60"), &names);
    // The loop's body once (the index, `params`, `lr` and `losses` are inputs, not
    // constants), and `loss` for the final print, however many iterations run.
    assert_eq!(short.lowerings, long.lowerings);
    assert!(long.lowerings <= 2, "{} lowerings", long.lowerings);
    assert!(long.body);
    assert!(!run(&TRAIN.replace("STEPS", "60"), false, &[]).body);
}

#[test]
fn while_loops_and_loops_nested_in_an_interpreted_loop() {
    let src = "
let x = [1, 2, 3]
let n = 0
while sum(x) < 1000 {
  x = x * 1.5 + 1
  n += 1
}
let acc = zeros(3)
for epoch in 0..3 {
  for i in 0..4 {
    acc = acc + epoch * i * x
  }
  print(epoch, sum(acc))
}
let X = [1, 2]
let total = 0
for e in 0..3 {
  X = X * 2
  for i in 0..4 {
    total = total + sum(X) * i
  }
  print(total)
}
let picked = 0
for i in 0..30 {
  picked = picked + x[mod(i, 3)] * i
}
";
    let r = both_ways(src, &["x", "n", "acc", "total", "picked"]);
    assert_eq!(r.out.lines().count(), 6);
    // The `while` body once; the inner `for` (reading `epoch`, an enclosing loop's index,
    // as an input) once for all three epochs (the outer loop prints: statement by
    // statement); the loop reading `X`, which changes between its runs, once (its program
    // reads `X` as a captured input); the last body once, though it indexes by the loop's
    // index.
    assert_eq!(r.lowerings, 4);
}

/// A body with effects runs them at the top level and the runs of statements between them
/// as programs: a fresh random batch each step (declared by an effect, read by the program
/// after it), a loss declared by a program and printed by the statement after it, and a
/// `print` inside an `if` on the index.
#[test]
fn effects_run_between_parts_that_are_programs() {
    let src = "
seed(3)
def loss(w, x, y) = sum((x @ w - y) ^ 2) / rows(x)
let w = zeros(3)
let target = [1, -2, 0.5]
let seen = 0
for step in 0..40 {
  let x = randn((8, 3))
  let y = x @ target
  let l = loss(w, x, y)
  w = w - 0.1 * grad(loss)(w, x, y)
  seen += 1
  if mod(step, 10) == 0 {
    print(step, l)
  }
}
print(w, seen)
";
    let r = both_ways(src, &["w", "seen"]);
    assert!(r.body);
    assert_eq!(r.out.lines().count(), 5);
    // One program for the statements between `randn` and the `if` however many steps
    // run, and `loss` for nothing else.
    let short = run(&src.replace("0..40", "0..12"), true, &[]);
    assert_eq!(short.lowerings, r.lowerings);
}

#[test]
fn bodies_that_cannot_be_programs_run_statement_by_statement() {
    let cases = [
        // An effect in the body.
        ("let x = 0\nfor i in 0..3 {\n  x = x + i\n  print(x)\n}\n", "x"),
        // A shape that depends on the index.
        ("let x = 0\nfor i in 0..4 {\n  x = x + sum(ones(i + 1))\n}\n", "x"),
        // A carried value that changes shape: the first iteration runs as a program, the
        // next ones cannot reuse it.
        ("let x = [1]\nfor i in 0..4 {\n  x = concat((x, [i]))\n}\n", "x"),
        // A `let` at the top of the body shadows the carried name.
        ("let x = 1\nfor i in 0..3 {\n  x = x + 1\n  let x = 100\n}\n", "x"),
        // A function the body calls reads a top-level name the body assigns: statement by
        // statement it sees each new value at once (the program would see it only after
        // the iteration).
        ("let w = 1\ndef f(x) = x * w\nlet y = 0\nfor i in 0..4 {\n  w = w + 1\n  y = y + f(2)\n}\n", "y"),
        ("let w = 1\ndef loss(v) = sum(v * v) * w\nlet v = [1, 2]\nfor i in 0..4 {\n  w = w * 2\n  v = v - 0.01 * grad(loss)(v)\n}\n", "v"),
        // A statement with an effect assigns a top-level name that the program after it
        // reads, directly and through a function: each iteration sees the new value.
        ("let lr = 1\ndef scaled(x) = x * lr\nlet s = 0\nlet t = 0\nfor i in 0..6 {\n  if mod(i, 2) == 0 {\n    lr = lr * 0.5\n    print(lr)\n  }\n  s = s + lr * i\n}\nfor i in 0..6 {\n  if mod(i, 2) == 0 {\n    lr = lr * 0.5\n    print(lr)\n  }\n  t = t + scaled(i)\n}\n", "s"),
        ("let lr = 1\ndef scaled(x) = x * lr\nlet s = 0\nlet t = 0\nfor i in 0..6 {\n  if mod(i, 2) == 0 {\n    lr = lr * 0.5\n    print(lr)\n  }\n  s = s + lr * i\n}\nfor i in 0..6 {\n  if mod(i, 2) == 0 {\n    lr = lr * 0.5\n    print(lr)\n  }\n  t = t + scaled(i)\n}\n", "t"),
        // A carried function value.
        ("let f = x => x\nlet y = 2\nfor i in 0..3 {\n  f = x => x * 2\n  y = f(y)\n}\n", "y"),
    ];
    for (src, name) in cases {
        both_ways(src, &[name]);
    }
    let shadow = run(cases[3].0, true, &["x"]);
    assert_eq!(shadow.values, vec![vec![4f64.to_bits()]]);
    // `ones(i + 1)` needs the index's value while lowering: no program is made (one per
    // value of the index would be).
    let by_index = run(cases[1].0, true, &["x"]);
    assert!(!by_index.body && by_index.lowerings == 0, "{} lowerings", by_index.lowerings);
    let growing = run(cases[2].0, true, &["x"]);
    assert_eq!(growing.values[0].len(), 5);
    assert_eq!(growing.lowerings, 1);
}

#[test]
fn an_iteration_that_fails_as_a_program_runs_again_statement_by_statement() {
    // In the program `v[i]` is a computed index, checked as it runs; the fourth iteration
    // fails after adding 1 to `total`.
    let src =
        "let v = [1, 2, 3]\nlet total = 0\nfor i in 0..5 {\n  total = total + 1\n  total = total + v[i]\n}\n";
    let mut messages = Vec::new();
    for compile in [false, true] {
        ad_eval::set_compile(compile);
        let mut s = Session::new(Box::new(SharedBuf::default()));
        let r = s.run_source("err.ad", src);
        ad_eval::set_compile(true);
        let errors = r.expect_err("an index out of range");
        messages.push(format!("{errors:?}"));
        // Iterations 0 to 2 ran, and the failing one's first assignment.
        let mut b = Vec::new();
        bits(s.global_value("total").unwrap_or_else(|| panic!("no total")), &mut b);
        assert_eq!(b, vec![10f64.to_bits()], "compile {compile}");
        assert_eq!(s.specializations().iter().any(|e| e.lowered.program.name == "loop body"), compile);
    }
    assert!(messages[0].contains("out of range"), "{}", messages[0]);
    assert_eq!(messages[0], messages[1]);
}

/// Random top-level loops: elementwise statements (every callable elementwise primitive,
/// infix operators, `where`) over a vector, a matrix and a number the loop carries and the
/// loop's index, with statements with effects between them (a `print` in an `if`, a
/// random draw), names declared by one part and read by the next, and updates at computed
/// positions; run with loops compiled and statement by statement, they must print the same
/// and assign the same bits. `AD_LOOP_CASES=N` runs N scripts (seeds from 0),
/// `AD_LOOP_SEED=N` only the script of seed N (printed).
#[test]
fn random_loops_agree_with_the_statement_by_statement_reference() {
    let seeds = random_programs::seeds("LOOP", 40);
    let mut programs = 0;
    for seed in seeds {
        let src = random_loop(seed);
        if std::env::var("AD_LOOP_SEED").is_ok() {
            println!("{src}");
        }
        let r = both_ways(&src, &["v", "M", "c"]);
        programs += usize::from(r.body);
    }
    assert!(programs > 0, "no loop body ran as a program");
}

fn random_loop(seed: u64) -> String {
    let mut d = Draw(Rng::new(seed));
    let mut leaf = |d: &mut Draw| -> String {
        match d.below(6) {
            0 => "v".into(),
            1 => "M".into(),
            2 => "c".into(),
            3 => "(i * 0.1)".into(),
            4 => "w".into(),
            _ => d.lit(),
        }
    };
    let mut body = Vec::new();
    for _ in 0..2 + d.below(5) {
        // Results are squashed into (-1, 1) so that they stay finite over the iterations.
        let stmt = match d.below(8) {
            0 | 1 => {
                format!("v = tanh(sum_to(({}) * ones((3, 4)), (4,)) * 0.5)", d.elementwise(3, &mut leaf))
            }
            2 | 3 => format!("M = tanh(({}) * ones((3, 4)) * 0.5)", d.elementwise(3, &mut leaf)),
            4 => format!("c = tanh(sum({}) * 0.1)", d.elementwise(2, &mut leaf)),
            5 => format!("let w = sum_to(tanh({}) * ones((3, 4)), (4,))", d.elementwise(2, &mut leaf)),
            6 => "if mod(i, 3) == 0 {\n    print(i, sum(v), c)\n  }".to_string(),
            _ => format!("v[mod(i, 4)] = tanh(sum({}))", d.elementwise(2, &mut leaf)),
        };
        body.push(stmt);
    }
    if d.below(3) == 0 {
        body.insert(d.below(body.len() + 1), "let w = rand((4,))".into());
    }
    format!(
        "seed({seed})\nlet v = [0.1, -0.2, 0.3, 0.4]\nlet M = [[0.5, -0.1, 0.2, 0.0], [0.3, 0.3, -0.3, 0.1], [0.0, 0.2, 0.4, -0.5]]\nlet c = 0.25\nlet w = zeros(4)\nfor i in 0..{} {{\n  {}\n}}\nprint(v, M, c)\n",
        5 + d.below(20),
        body.join("\n  ")
    )
}
