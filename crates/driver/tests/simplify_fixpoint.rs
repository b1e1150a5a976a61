//! Simplification stops when a pass settles (no rule built an equation it did not simplify),
//! without a last pass to confirm that nothing changes. This checks the claim: simplifying
//! any derived program again leaves it as it is: the JVP and VJP of every function the
//! gradient checks use (every primitive and library function, loops, `if`, `vmap`), and
//! every program the golden files derive.

mod common;

use ad_driver::derive::lower_named;
use ad_driver::golden::{collect, parse_directives, produce, Action};
use ad_driver::{Session, SharedBuf};
use ad_ir::transform::{Mode, Request};
use common::gradcheck_functions::FUNCTIONS;
use std::path::Path;

#[test]
fn simplified_programs_are_fixed_points() {
    let mut checked = 0;
    for src in FUNCTIONS {
        let mut s = Session::new(Box::new(SharedBuf::default()));
        s.run_source("fixpoint.ad", src)
            .unwrap_or_else(|e| panic!("{src}: {}", ad_syntax::render(&s.sources, &e, false)));
        let p = lower_named(&mut s, "f", &[]).unwrap_or_else(|e| panic!("{src}: {}", e.message)).program;
        let wrt: Vec<usize> = (0..p.params.len()).collect();
        for mode in [Mode::Jvp, Mode::Vjp] {
            let d = ad_autodiff::derive(&p, &Request { mode, wrt: wrt.clone() })
                .unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_fixed_point(&d, &format!("the {mode:?} of {src}"));
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} programs checked");
}

fn assert_fixed_point(d: &ad_ir::Program, what: &str) {
    let again = ad_autodiff::simplify(d.clone());
    assert_eq!(ad_ir::print_program(d), ad_ir::print_program(&again), "simplifying {what} again changed it");
    assert_eq!(d.eqns.len(), again.eqns.len(), "{what}");
}

#[test]
fn golden_derived_programs_are_fixed_points() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/ad");
    let mut checked = 0;
    for path in collect(&[root]) {
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(directives) = parse_directives(&path, &text) else { continue };
        for d in directives {
            let Action::Derive { mode, function, .. } = &d.action else { continue };
            let Ok((_, Some(derived))) = produce(&path, &text, &d.action) else { continue };
            // The planner's programs are built from simplified pieces; the others are what
            // `derive` returns.
            if derived.plan.is_none() {
                let what = format!("{} of {function} in {}", mode.name(), path.display());
                assert_fixed_point(&derived.program, &what);
                checked += 1;
            }
        }
    }
    assert!(checked >= 100, "only {checked} golden programs checked");
}
