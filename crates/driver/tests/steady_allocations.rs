//! Steady state allocates nothing per equation: a program run again reuses its register
//! file and hands dead buffers to the kernels that can write in place, and a loop planned
//! in one buffer allocates nothing per iteration. Counted by the allocator (calls, not
//! bytes); this file's tests share its counter, so they run one at a time.

use ad_driver::derive::lower_named;
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_ir::{Array, Program, Shape};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter only
// observes that it happened.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests count process-wide: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lowered(src: &str, function: &str) -> Program {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("steady.ad", src).unwrap_or_else(|e| panic!("{}", ad_syntax::render(&s.sources, &e, false)));
    lower_named(&mut s, function, &[]).unwrap_or_else(|e| panic!("{}", e.message)).program
}

/// Allocations made by the fifth run of `p` on `x` (the first ones fill the register file
/// and any caches, and a program of small values is planned and compiled at its third).
fn steady_allocations(p: &Program, x: &Array) -> usize {
    let c = ad_eval::Compiled::new(p);
    for _ in 0..4 {
        c.run(vec![x.clone()]).expect("the program runs");
    }
    let before = CALLS.load(Ordering::Relaxed);
    let out = c.run(vec![x.clone()]).expect("the program runs");
    let n = CALLS.load(Ordering::Relaxed) - before;
    drop(out);
    n
}

#[test]
fn straight_line_code_allocates_per_run_not_per_equation() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Elementwise equations on a vector: each result is written over an operand that dies
    // there (a scalar operand included), and the operands of every step share one buffer,
    // so a run allocates the same few times (the list of operands, the first result, which
    // reads the argument the caller keeps, the lists of inputs and results) whatever its
    // length. (Before: 705 allocations for 301 equations.)
    let program = |n: usize| {
        let mut body = String::from("def f(x: [64]) {\n  let y = x * 0.5\n");
        for _ in 0..n {
            body.push_str("  y = tanh(y * 0.9 + 0.1)\n");
        }
        body.push_str("  y\n}\n");
        lowered(&body, "f")
    };
    let (short, long) = (program(10), program(100));
    assert!(long.eqns.len() >= 300, "{} equations", long.eqns.len());
    let x = Array::new(Shape::vector(64), (0..64).map(|i| i as f64 / 64.0).collect());
    let (a, b) = (steady_allocations(&short, &x), steady_allocations(&long, &x));
    assert_eq!(
        a,
        b,
        "{} equations allocated {a} times, {} equations {b} times",
        short.eqns.len(),
        long.eqns.len()
    );
    assert!(b <= 6, "a run allocated {b} times");
}

#[test]
fn planned_loops_allocate_nothing_per_iteration() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The same loop run 1,000 and 4,000 times allocates the same number of times.
    let src = |n: usize| {
        format!("def f(x: [8]) {{\n  let h = x\n  for i in 0..{n} {{\n    h = tanh(h * 0.9 + 0.1) + h[0] * 0.01\n  }}\n  h\n}}\n")
    };
    let x = Array::new(Shape::vector(8), (0..8).map(|i| i as f64 / 8.0).collect());
    let short = steady_allocations(&lowered(&src(1000), "f"), &x);
    let long = steady_allocations(&lowered(&src(4000), "f"), &x);
    assert_eq!(short, long, "allocations grow with the trip count");
    assert!(long <= 8, "a planned loop's run allocated {long} times");
}

#[test]
fn values_that_depend_on_no_input_are_computed_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A basis and the arrays made from it alone (as in a Hessian's program) are computed
    // when the program is prepared: 10 or 100 such equations, a run allocates the same.
    let program = |n: usize| {
        let mut body = String::from("def f(x: [40]) {\n  let c = eye(40)[:, :20] * 2\n");
        for _ in 0..n {
            body.push_str("  c = c * 0.5 + eye(40)[:, 1:21]\n");
        }
        body.push_str("  x @ c\n}\n");
        lowered(&body, "f")
    };
    let (short, long) = (program(10), program(100));
    assert!(long.eqns.len() >= 300, "{} equations", long.eqns.len());
    let x = Array::new(Shape::vector(40), (0..40).map(|i| i as f64 / 40.0).collect());
    let (a, b) = (steady_allocations(&short, &x), steady_allocations(&long, &x));
    assert_eq!(
        a,
        b,
        "{} equations allocated {a} times, {} equations {b} times",
        short.eqns.len(),
        long.eqns.len()
    );
}
