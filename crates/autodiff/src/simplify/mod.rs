//! Simplification, run after every transformation: constant folding, algebraic identities
//! (`x*1`, `x+0`, `x*0`, `--x`), no-op `broadcast_to`/`sum_to`/`reshape`/`transpose`,
//! broadcasts absorbed by the elementwise operation that uses them, common subexpressions
//! (`rewrite.rs`), then dead code (`dce.rs`). Repeated until nothing changes. The bodies of
//! loops are simplified once, before the rounds, carried values a loop never changes
//! become constants (`carries.rs`), and constants that are numbers become numbers in the
//! body (`literals.rs`). `if` equations are simplified as a whole first (`conds.rs`).

mod carries;
mod conds;
mod dce;
mod literals;
mod rewrite;

use ad_ir::{Prim, Program};

/// At most this many rounds; each is linear in the program's size.
const MAX_ROUNDS: usize = 6;

pub fn simplify(mut p: Program) -> Program {
    if let Some(q) = conds::simplify_conds(&p) {
        p = q;
    }
    // Loop bodies first, once each (the rounds below copy loops as they are).
    for e in &mut p.eqns {
        if let Prim::Loop(op) = &e.prim {
            e.prim = Prim::Loop(op.map(|p| simplify(p.clone())));
        }
        if let Prim::Custom(op) = &e.prim {
            e.prim = Prim::Custom(op.map(|p| simplify(p.clone())));
        }
    }
    if let Some(q) = carries::constant_carries(&p) {
        p = q;
    }
    if let Some(q) = literals::literal_consts(&p) {
        p = q;
    }
    // The input can be large (a derivative before simplification, with the parts of the
    // JVP that reverse mode does not need): the first pass rewrites only the equations the
    // results need, instead of copying the program once more to drop the others first.
    let live = dce::live_eqns(&p);
    let mut size = live.iter().filter(|k| **k).count();
    let (rewritten, mut settled) = rewrite::rewrite(&p, Some(&live));
    drop(p);
    let mut cur = dce::dce(rewritten);
    for _ in 1..MAX_ROUNDS {
        // A pass that settled is a fixed point (dead-code elimination, which follows, only
        // removes equations no rule looks at): another would rebuild the program for nothing.
        if settled || cur.eqns.len() >= size {
            break;
        }
        size = cur.eqns.len();
        let (rewritten, s) = rewrite::rewrite(&cur, None);
        settled = s;
        cur = dce::dce(rewritten);
    }
    cur
}
