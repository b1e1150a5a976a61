//! The Jacobian planner: its choices on the seed's two chains and on a table of other
//! shapes, and the values of every plan against forward and reverse mode.

use ad_autodiff::Choice;
use ad_driver::check::{close, random_point};
use ad_driver::derive::lower_named;
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_eval::rng::Rng;
use ad_ir::transform::{JacMode, Mode, Request};

/// The plan `jacobian` makes for `p`.
fn plan(p: &ad_ir::Program, param: usize) -> Result<ad_autodiff::Plan, String> {
    ad_autodiff::plan(p, param, JacMode::Auto).map(|planned| planned.plan)
}

/// A chain x_{i+1} = tanh(W_i x_i) through the given dimensions, as a script.
fn chain_src(dims: &[usize]) -> String {
    let mut s = String::from("seed(1)\n");
    let mut body = "x".to_string();
    for (i, w) in dims.windows(2).enumerate() {
        s.push_str(&format!("let W{i} = randn(({}, {})) / sqrt({})\n", w[1], w[0], w[0]));
        body = format!("tanh(W{i} @ {body})");
    }
    s.push_str(&format!("def f(x: [{}]) = {body}\n", dims[0]));
    s
}

fn session(src: &str) -> (Session, ad_ir::Program) {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("planner.ad", src)
        .unwrap_or_else(|e| panic!("{}", ad_syntax::render(&s.sources, &e, false)));
    let p = lower_named(&mut s, "f", &[]).unwrap().program;
    (s, p)
}

/// The Jacobian by each mode agrees to 1e-10 relative.
fn values_agree(s: &Session, p: &ad_ir::Program) {
    let mut rng = Rng::new(9);
    let x = random_point(p, &mut rng);
    let run = |mode: JacMode| {
        let j = ad_autodiff::derive(p, &Request { mode: Mode::Jacobian(mode), wrt: vec![0] }).unwrap();
        s.run_program(&j, x.clone()).unwrap()
    };
    let (auto, fwd, rev) = (run(JacMode::Auto), run(JacMode::Forward), run(JacMode::Reverse));
    assert!(close(&auto, &fwd, 1e-10, 1e-300), "jacobian and jacfwd differ");
    assert!(close(&auto, &rev, 1e-10, 1e-300), "jacobian and jacrev differ");
}

#[test]
fn funnel_reverse_or_better() {
    // 1000, 100, 10, 1: one VJP against a thousand JVPs.
    let (s, p) = session(&chain_src(&[1000, 100, 10, 1]));
    let plan = plan(&p, 0).unwrap();
    let chosen = plan.cost(plan.choice);
    assert!(plan.forward > 10.0 * plan.reverse, "{} vs {}", plan.forward, plan.reverse);
    assert!(chosen <= plan.reverse, "chose {:?} at {chosen}, reverse costs {}", plan.choice, plan.reverse);
    values_agree(&s, &p);
}

#[test]
fn hourglass_multiplies_the_middle_first() {
    // 1000, 1, 1000, 1, 1000: the middle factors make a number; forward and reverse both
    // need a thousand passes.
    let (s, p) = session(&chain_src(&[1000, 1, 1000, 1, 1000]));
    let plan = plan(&p, 0).unwrap();
    assert_eq!(plan.choice, Choice::Chain);
    let (chain, _) = plan.chain.clone().unwrap();
    assert!(chain * 3.0 < plan.forward.min(plan.reverse), "{chain} vs {} / {}", plan.forward, plan.reverse);
    values_agree(&s, &p);
}

#[test]
fn a_table_of_shapes() {
    struct Case {
        name: &'static str,
        src: String,
        expect: fn(&ad_autodiff::Plan) -> bool,
    }
    let cases = vec![
        // Few inputs, many outputs: forward.
        Case {
            name: "wide",
            src: chain_src(&[3, 200, 500]),
            expect: |p| p.choice != Choice::Reverse && p.cost(p.choice) <= p.forward,
        },
        // Many inputs, few outputs: reverse (or a chain as cheap).
        Case {
            name: "tall",
            src: chain_src(&[500, 200, 3]),
            expect: |p| p.cost(p.choice) <= p.reverse && p.forward > p.reverse,
        },
        // Small, large, small: the chain is cheaper than either mode.
        Case { name: "diamond", src: chain_src(&[10, 1000, 10]), expect: |p| p.choice == Choice::Chain },
        // Elementwise steps only: the Jacobian is diagonal and the chain keeps it so.
        Case {
            name: "elementwise",
            src: "def f(x: [300]) = sin(exp(tanh(x) * 0.5)) * 2".into(),
            expect: |p| p.choice == Choice::Chain && p.cost(Choice::Chain) * 100.0 < p.forward,
        },
        // Not a chain (x is used twice): forward or reverse, by cost.
        Case {
            name: "not a chain",
            src: "seed(2)\nlet W = randn((5, 40))\ndef f(x: [40]) = tanh(W @ x) * sum(x)\n".into(),
            expect: |p| {
                p.chain.is_none() && p.elimination.is_some() && p.cost(p.choice) <= p.forward.min(p.reverse)
            },
        },
        // Residual connections: a graph, accumulated by vertex elimination.
        Case {
            name: "residual",
            src: "seed(3)\nlet W1 = randn((30, 30)) / 6\nlet W2 = randn((30, 30)) / 6\n\
                  def f(x: [30]) {\n  let h = x + tanh(W1 @ x)\n  h + tanh(W2 @ h)\n}\n"
                .into(),
            expect: |p| p.elimination.is_some() && p.cost(p.choice) <= p.forward.min(p.reverse),
        },
        // A scalar input.
        Case {
            name: "scalar in",
            src: "def f(x: []) = [sin(x), x ^ 2, exp(x)]".into(),
            expect: |p| p.cost(p.choice) <= p.reverse,
        },
    ];
    for c in cases {
        let (s, p) = session(&c.src);
        let plan = plan(&p, 0).unwrap();
        assert!((c.expect)(&plan), "{}: {}", c.name, plan.render(&|_| None));
        values_agree(&s, &p);
    }
}

#[test]
fn matrix_valued_programs_are_batched() {
    // The linear values are matrices: their batches have rank 3, and all directions still go
    // through in one pass (DESIGN §9), with a program that does not grow with the input.
    let (s, p) = session("def f(x: [4]) = sum(outer(x, x) @ outer(x, x), 1)");
    let plan = plan(&p, 0).unwrap();
    assert!(plan.batched);
    values_agree(&s, &p);
    let j = ad_autodiff::plan(&p, 0, JacMode::Forward).unwrap().program;
    assert!(j.eqns.len() < 40, "{} equations", j.eqns.len());
}

#[test]
fn values_of_the_largest_rank_fall_back_to_unrolled_passes() {
    // A batch of rank-8 values would need rank 9: one pass per element instead.
    let (s, p) = session("def f(x: [1, 1, 1, 1, 1, 1, 1, 3]) = sin(x) * x");
    let plan = plan(&p, 0).unwrap();
    assert!(!plan.batched);
    values_agree(&s, &p);
}

#[test]
fn long_chains_are_eliminated_not_bracketed() {
    // 2 × 400 elementwise steps: more factors than the bracketing's dynamic programme takes
    // (its cost is cubic in the length), so the plan accumulates them by elimination.
    // Written out: a loop this long would be one loop equation, not a chain.
    let src = format!("def f(x: [8]) {{\n  let y = x\n{}  y\n}}\n", "  y = sin(y) * 1.0001\n".repeat(400));
    let (s, p) = session(&src);
    let plan = plan(&p, 0).unwrap();
    let factors = plan.factors.as_ref().map_or(0, |f| f.len());
    assert!(factors > ad_autodiff::MAX_FACTORS, "{factors} factors");
    assert!(plan.chain.is_none());
    assert_eq!(plan.choice, Choice::Elimination);
    values_agree(&s, &p);
}
