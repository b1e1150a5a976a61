//! Every primitive has its derivative rules pinned and checked: a golden fixture with a
//! derived JVP and VJP (`tests/golden/ad/prims/`, which the golden runner checks
//! numerically) and a gradient-check entry (`common/gradcheck_functions.rs`, orders 1 and
//! 2 in both modes). Coverage is read from the programs themselves: a primitive counts as
//! covered when it appears in the lowered program of such a function. Adding a primitive
//! without both fails here, naming it.

mod common;

use ad_driver::derive::{lower_named, DeriveMode};
use ad_driver::golden::{parse_directives, Action};
use ad_driver::Session;
use ad_driver::SharedBuf;
use std::collections::BTreeSet;
use std::path::Path;

/// The primitives in the lowered program of `function` in the script `src`.
fn primitives_of(
    name: &str,
    src: &str,
    function: &str,
    shapes: &[ad_driver::derive::ShapeOpt],
) -> BTreeSet<String> {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    if let Err(e) = s.run_source(name, src) {
        panic!("{name}: {}", ad_syntax::render(&s.sources, &e, false));
    }
    let p = lower_named(&mut s, function, shapes).unwrap_or_else(|e| panic!("{name}: {}", e.message)).program;
    let mut names = BTreeSet::new();
    collect(&p, &mut names);
    names
}

/// The primitives of a program and of the bodies of its loops and branches.
fn collect(p: &ad_ir::Program, names: &mut BTreeSet<String>) {
    for e in &p.eqns {
        names.insert(e.prim.name().to_string());
        match &e.prim {
            ad_ir::Prim::Loop(op) => {
                collect(&op.body, names);
                if let Some(c) = &op.cond {
                    collect(c, names);
                }
            }
            ad_ir::Prim::Cond(op) => {
                for b in op.branches() {
                    collect(b, names);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_primitive_has_fixtures_and_a_gradient_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/ad/prims");
    // Fixtures: functions derived both forward (`jvp`) and in reverse (`vjp`).
    let mut fixtures = BTreeSet::new();
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(directives) = parse_directives(&path, &text) else { continue };
        let derived = |mode: DeriveMode| -> Vec<(String, Vec<ad_driver::derive::ShapeOpt>)> {
            directives
                .iter()
                .filter_map(|d| match &d.action {
                    Action::Derive { mode: m, function, shapes } if *m == mode => {
                        Some((function.clone(), shapes.clone()))
                    }
                    _ => None,
                })
                .collect()
        };
        let vjps = derived(DeriveMode::Vjp);
        for (function, shapes) in derived(DeriveMode::Jvp) {
            if vjps.iter().any(|(f, _)| *f == function) {
                fixtures.extend(primitives_of(&path.display().to_string(), &text, &function, &shapes));
            }
        }
    }
    let mut checked = BTreeSet::new();
    for src in common::gradcheck_functions::FUNCTIONS {
        checked.extend(primitives_of("gradcheck.ad", src, "f", &[]));
    }
    let mut missing = Vec::new();
    for name in ad_ir::prim::all_names() {
        if !fixtures.contains(name) {
            missing.push(format!(
                "`{name}` has no golden fixture with `derive jvp` and `derive vjp` in tests/golden/ad/prims"
            ));
        }
        if !checked.contains(name) {
            missing
                .push(format!("`{name}` has no entry in crates/driver/tests/common/gradcheck_functions.rs"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
