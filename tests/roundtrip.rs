//! Printed programs are programs: for every function that every example and language test
//! specialises, print its IR as `.ad`, load the printed text, lower it for the same shapes,
//! and check that it computes the same values and prints the same text again. A function
//! of an imported file reads that file's names: its text is loaded with the imports the
//! session says it needs (`Session::imports_for`), as `ad derive` prints them.

use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_ir::lower::lower_function;
use ad_ir::lower::spec::Spec;
use ad_ir::{print_program, Array, Program, Shape, Tree};
use std::path::{Path, PathBuf};

fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for dir in ["examples", "tests/golden/lang", "tests/golden/lang/modules"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let p = e.path();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            // Scripts that write files are left out: tests must not write into the tree.
            if p.extension().is_some_and(|x| x == "ad") && !text.contains("write_csv") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// The argument structures of a program's parameters, rebuilt from its inputs.
fn param_specs(p: &Program) -> Vec<Spec> {
    fn build(t: &Tree, shapes: &mut impl Iterator<Item = Shape>) -> Spec {
        match t {
            Tree::Leaf => Spec::Array(shapes.next().unwrap()),
            Tree::Tuple(ts) => Spec::Tuple(ts.iter().map(|t| build(t, shapes)).collect()),
            Tree::Opaque(_) => unreachable!("printable programs have no function parameters"),
        }
    }
    let mut shapes = p.inputs.iter().map(|v| p.var_shape(*v));
    p.params.iter().map(|d| build(&d.tree, &mut shapes)).collect()
}

fn same(a: &Array, b: &Array) -> bool {
    a.shape() == b.shape()
        && a.data().iter().zip(b.data()).all(|(x, y)| {
            x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-13 * x.abs().max(y.abs())
        })
}

#[test]
fn printed_programs_rerun_to_the_same_values() {
    let mut checked = 0;
    for file in files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut s = Session::new(Box::new(SharedBuf::default()));
        if let Err(e) = s.run_source(&file.to_string_lossy(), &text) {
            panic!("{} failed: {}", file.display(), ad_syntax::render(&s.sources, &e, false));
        }
        for entry in s.specializations() {
            let original = &entry.lowered;
            let mut program = original.program.clone();
            program.name = "roundtrip_copy".into();
            let Ok(printed) = print_program(&program) else { continue };
            let context = format!("{} / {}:\n{printed}", file.display(), original.program.name);
            let mut s2 = Session::new(Box::new(SharedBuf::default()));
            s2.run_source(&file.to_string_lossy(), &text).unwrap();
            // Read as a file beside the script, so that its imports are found.
            let beside = file.with_file_name("<printed>");
            let loaded = s2.imports_for(&program) + &printed;
            if let Err(e) = s2.run_source(&beside.to_string_lossy(), &loaded) {
                panic!(
                    "printed program does not load: {}\n{context}",
                    ad_syntax::render(&s2.sources, &e, false)
                );
            }
            let f = s2.global_value("roundtrip_copy").unwrap().clone();
            let specs = param_specs(&program);
            let n_leaves: usize = specs.iter().map(Spec::leaves).sum();
            let reloaded =
                lower_function(&mut s2, &f, &specs, &vec![None; n_leaves], ad_syntax::Span::DUMMY, &[])
                    .unwrap_or_else(|e| panic!("printed program does not lower: {e:?}\n{context}"));
            // Printing is a fixed point.
            let mut again = reloaded.program.clone();
            again.name = "roundtrip_copy".into();
            assert_eq!(print_program(&again).unwrap(), printed, "printing is not idempotent for {context}");
            // Same values on random inputs (inputs the original treated as constants keep
            // their values).
            let mut x: u64 = 0x2545F4914F6CDD1D;
            let mut leaves: Vec<Array> = program.inputs[..n_leaves]
                .iter()
                .map(|v| {
                    let shape = program.var_shape(*v);
                    let data = (0..shape.size())
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            (x % 2000) as f64 / 1000.0 - 1.0
                        })
                        .collect();
                    Array::new(shape, data)
                })
                .collect();
            for (i, value) in &original.static_deps {
                if *i < n_leaves {
                    leaves[*i] = Array::scalar(*value);
                }
            }
            // Random inputs can be refused when the program runs (a computed position that
            // is not an integer): then both must refuse them.
            let (a, b) = match (
                s.run_program(&original.program, leaves.clone()),
                s2.run_program(&reloaded.program, leaves.clone()),
            ) {
                (Some(a), Some(b)) => (a, b),
                (None, None) => continue,
                (a, _) => panic!(
                    "only the {} runs on {leaves:?}\n{context}",
                    if a.is_some() { "original" } else { "copy" }
                ),
            };
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert!(same(x, y), "different values: {x:?} vs {y:?}\n{context}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} programs were checked");
}
