//! Benchmark: how long differentiation takes on long programs (`x = sin(x) * 1.0001`
//! repeated N times, then `sum`, as a loop and as a straight line of N statements),
//! separately for lowering, deriving the gradient (JVP, linearize, transpose, simplify) and
//! compiling it for the interpreter, with the peak memory each phase holds (bytes allocated
//! and not yet freed, counted around the allocator; the process's resident size is larger:
//! run it under `/usr/bin/time -v` with one N for that).
//!
//! cargo run --release -p ad-driver --example derive_timing

use ad_driver::derive::lower_named;
use ad_driver::Session;
use ad_driver::SharedBuf;
use ad_ir::transform::{Mode, Request};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

// The same allocator as the `ad` binary, counting the bytes held and their peak.
#[global_allocator]
static ALLOC: Counting = Counting;
static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
struct Counting;
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = HELD.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let now = HELD.fetch_add(new, Ordering::Relaxed) + new;
        PEAK.fetch_max(now, Ordering::Relaxed);
        HELD.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}
/// Megabytes held now, and the peak since the last call (which starts a new peak).
fn held_and_peak() -> (f64, f64) {
    let held = HELD.load(Ordering::Relaxed);
    let peak = PEAK.swap(held, Ordering::Relaxed);
    (held as f64 / 1e6, peak as f64 / 1e6)
}

fn main() {
    let sizes = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => vec![1_000, 10_000, 100_000],
        Some(Ok(n)) => vec![n],
        Some(Err(_)) => {
            eprintln!("usage: derive_timing [N], N the number of steps");
            std::process::exit(1);
        }
    };
    for n in sizes {
        // The chain written as a loop (one loop equation, derived without unrolling) and as
        // a straight line of N statements (what JAX traces from a Python loop).
        let line = "  y = sin(y) * 1.0001\n".repeat(n);
        let src = format!(
            "def deep_loop(x: [8]) {{\n  let y = x\n  for i in 0..{n} {{ y = sin(y) * 1.0001 }}\n  sum(y)\n}}\n\
             def deep_line(x: [8]) {{\n  let y = x\n{line}  sum(y)\n}}\n"
        );
        let mut s = Session::new(Box::new(SharedBuf::default()));
        // The script above is valid for every N (only the loop bound and the number of
        // lines change), so loading, lowering and differentiating it cannot fail.
        s.run_source("deep.ad", &src).unwrap();
        for name in ["deep_loop", "deep_line"] {
            let (base, _) = held_and_peak();
            let t0 = Instant::now();
            let p = lower_named(&mut s, name, &[]).unwrap().program;
            let t1 = Instant::now();
            let (_, lower_peak) = held_and_peak();
            let g =
                ad_autodiff::derive(&p, &Request { mode: Mode::Grad { with_value: false }, wrt: vec![0] })
                    .unwrap();
            let t2 = Instant::now();
            let (_, derive_peak) = held_and_peak();
            let _c = ad_eval::Compiled::new(&g);
            let t3 = Instant::now();
            let (_, compile_peak) = held_and_peak();
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            println!(
                "N = {n:>6}, {name}: program {:>6} equations, gradient {:>6}; lower {:7.1} ms, derive {:7.1} ms, compile {:6.1} ms; \
                 memory above the {base:.0} MB held before: peak {:.0} MB lowering, {:.0} MB deriving, {:.0} MB compiling",
                p.eqns.len(),
                g.eqns.len(),
                ms(t0, t1),
                ms(t1, t2),
                ms(t2, t3),
                lower_peak - base,
                derive_peak - base,
                compile_peak - base,
            );
        }
    }
}
