//! Property tests over random well-shaped programs built from the primitive set: forward
//! mode agrees with central differences, reverse mode passes the dot-product test, the
//! two-VJP JVP agrees with direct JVP, and printed derived programs read back to themselves.

use ad_driver::check::check_derived;
use ad_driver::derive::{lower_named, ShapeOpt};
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_ir::transform::{JacMode, Mode, Request};
use proptest::prelude::*;

#[path = "common/both_tiers.rs"]
mod both_tiers;
use both_tiers::run_both_ways;

/// A random expression of vector shape [3]. Only smooth operations: central differences
/// near a kink could straddle it and fail for the wrong reason.
fn vector(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![Just("x".to_string()), Just("y".to_string()), Just("[0.5, -1, 2]".to_string())];
    leaf.prop_recursive(depth, 24, 3, |inner| {
        let s = scalar_of(inner.clone());
        prop_oneof![
            (inner.clone(), prop_oneof![Just("sin"), Just("cos"), Just("tanh"), Just("sigmoid")])
                .prop_map(|(e, f)| format!("{f}({e})")),
            inner.clone().prop_map(|e| format!("log(1 + ({e}) ^ 2)")),
            inner.clone().prop_map(|e| format!("exp(tanh({e}))")),
            (inner.clone(), inner.clone(), prop_oneof![Just("+"), Just("-"), Just("*")])
                .prop_map(|(a, b, op)| format!("({a} {op} {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} / (1 + ({b}) ^ 2))")),
            (inner.clone(), s.clone()).prop_map(|(a, c)| format!("({a} * {c})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("(outer({a}, {b}) @ {c})")),
            inner.clone().prop_map(|a| format!("concat(({a})[1:], ({a})[:1])")),
            inner.clone().prop_map(|a| format!("reshape(reshape({a}, (3, 1))', 3)")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("[sum({a}), ({b})[0], ({a})[2] * ({b})[1]]")),
            (inner.clone(), inner)
                .prop_map(|(a, b)| format!("sum_to(broadcast_to({a}, (2, 3)) * [[1], [2]], 3) + {b}")),
        ]
    })
    .boxed()
}

fn scalar_of(v: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        Just("s".to_string()),
        v.clone().prop_map(|e| format!("sum({e})")),
        (v.clone(), v.clone()).prop_map(|(a, b)| format!("({a} @ {b})")),
        v.prop_map(|e| format!("logsumexp({e})")),
    ]
    .boxed()
}

fn check(body: &str) -> Result<(), String> {
    let src = format!("def f(x: [3], y: [3], s: []) = {body}\n");
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("prop.ad", &src).map_err(|e| ad_syntax::render(&s.sources, &e, false))?;
    let shapes: Vec<ShapeOpt> = vec![];
    let p = lower_named(&mut s, "f", &shapes).map_err(|e| e.message)?.program;
    // Jacobians by the planner, batched forward and batched reverse agree with each other
    // and with central differences.
    let mut rng = ad_eval::rng::Rng::new(17);
    let x = ad_driver::check::random_point(&p, &mut rng);
    let mut jacobians = Vec::new();
    for jm in [JacMode::Auto, JacMode::Forward, JacMode::Reverse] {
        let req = Request { mode: Mode::Jacobian(jm), wrt: vec![0] };
        let d = ad_autodiff::derive(&p, &req)?;
        check_derived(&s, &p, &d, &req, 6).map_err(|e| format!("{jm:?} Jacobian: {e}\n{src}"))?;
        jacobians.push(run_both_ways(&s, &d, x.clone()).ok_or("the Jacobian did not run")?);
    }
    if !(ad_driver::check::close(&jacobians[0], &jacobians[1], 1e-10, 1e-12)
        && ad_driver::check::close(&jacobians[0], &jacobians[2], 1e-10, 1e-12))
    {
        return Err(format!("Jacobian modes disagree:\n{src}"));
    }
    for mode in [Mode::Jvp, Mode::Vjp, Mode::Jvp2] {
        let req = Request { mode, wrt: vec![0, 1, 2] };
        let d = ad_autodiff::derive(&p, &req)?;
        check_derived(&s, &p, &d, &req, 5).map_err(|e| format!("{mode:?}: {e}\n{src}"))?;
        // The derived program compiled gives the interpreter's bits.
        let inputs = ad_driver::check::random_point(&d, &mut rng);
        run_both_ways(&s, &d, inputs).ok_or_else(|| format!("{mode:?} did not run"))?;
        // Printing a derived program and reading it back gives the same text.
        let text = ad_ir::print_program(&d)?;
        let mut s2 = Session::new(Box::new(SharedBuf::default()));
        s2.run_source("printed.ad", &text).map_err(|e| ad_syntax::render(&s2.sources, &e, false))?;
        let again = lower_named(&mut s2, &d.name, &[]).map_err(|e| e.message);
        // Derived programs with tuple parameters need shapes given; those with plain
        // parameters are annotated and reload directly.
        if let Ok(again) = again {
            let mut q = again.program;
            q.name = d.name.clone();
            assert_eq!(ad_ir::print_program(&q)?, text, "printing is not a fixed point for\n{src}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_differentiate_consistently(body in vector(4)) {
        let scalar = format!("sum({body}) * s");
        prop_assert!(check(&body).is_ok(), "{}", check(&body).unwrap_err());
        prop_assert!(check(&scalar).is_ok(), "{}", check(&scalar).unwrap_err());
    }
}
