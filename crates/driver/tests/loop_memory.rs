//! Reverse mode through a million-step loop stays within its memory budget: the peak of
//! the bytes allocated, counted by the allocator, while the gradient runs with a 64 MiB
//! budget stays under 100 MB (recording every step would take about 450 MB). This file
//! holds one test: the allocator's counters are process-wide.

use ad_driver::derive::lower_named;
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_eval::reverse::{last_reversal, Strategy};
use ad_ir::transform::{Mode, Request};
use ad_ir::{Array, Shape};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SOURCE: &str = "
# A damped oscillator stepped 1,000,000 times by a `while` loop (the time step is 1e-5).
def energy(p: [2]) {
  let (x, v) = (1, 0)
  let t = 0
  while t < 1000000 {
    (x, v) = (x + 0.00001 * v, v - 0.00001 * (p[0] * x + p[1] * v))
    t += 1
  }
  x * x + v * v
}
";

// Four million evaluations of the loop's body: about 4 s in a debug build (the loop runs
// planned in one buffer, and the interpreter's crates are optimised in the dev profile).
// `AD_LOOP_BUDGET=1GiB cargo test --release -p ad-driver --test loop_memory -- --nocapture`
// measures another budget (the book's table of memory against recomputation) and prints
// what the reversal did; the bounds are checked for the default budget.
#[test]
fn a_million_step_loop_is_reversed_within_the_budget() {
    let mut s = Session::new(Box::new(SharedBuf::default()));
    s.run_source("memory.ad", SOURCE)
        .unwrap_or_else(|e| panic!("{}", ad_syntax::render(&s.sources, &e, false)));
    let p = lower_named(&mut s, "energy", &[]).unwrap_or_else(|e| panic!("{}", e.message)).program;
    let req = Request { mode: Mode::Grad { with_value: false }, wrt: vec![0] };
    let g = ad_autodiff::derive(&p, &req).unwrap_or_else(|e| panic!("{e}"));
    let budget = std::env::var("AD_LOOP_BUDGET")
        .ok()
        .map(|b| ad_driver::memory::parse_size(&b).unwrap_or_else(|e| panic!("AD_LOOP_BUDGET: {e}")));
    ad_ir::shape::set_tape_budget(budget.unwrap_or(64 << 20));
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    let out =
        s.run_program(&g, vec![Array::new(Shape::vector(2), vec![4.0, 0.5])]).expect("the gradient runs");
    let time = t0.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let stats = last_reversal();
    println!(
        "{:?}, peak {:.1} MB, {:.2} M forward evaluations, {:.2} s",
        stats.strategy,
        peak as f64 / 1e6,
        stats.forward_steps as f64 / 1e6,
        time.as_secs_f64()
    );
    assert_eq!(stats.trips, 1_000_000);
    if budget.is_none() {
        assert_ne!(stats.strategy, Strategy::Recorded, "the record would not fit: {stats:?}");
        assert!(peak < 100_000_000, "peak {peak} bytes over the 100 MB bound ({stats:?})");
    }
    // The gradient the same loop gives when reversed from a full record (`ad run` without a
    // budget), to the digits printed.
    let grad = out[0].data();
    assert!((grad[0] - 0.0507172).abs() < 1e-6 && (grad[1] + 0.229358).abs() < 1e-6, "{grad:?}");
}
