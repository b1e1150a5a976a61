//! A small deterministic random number generator (SplitMix64 to seed, xorshift64* to draw).
//!
//! The fuzzer must produce the same cases from the same seed on every machine and every
//! version of Rust, and it must not depend on other crates, so it carries its own generator.
//! Statistical quality matters little here; reproducibility matters a lot.

/// SplitMix64's finaliser: a good bijective mix of 64 bits, used to derive the seed of each
/// case from the run's seed and the case's index.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // xorshift has a fixed point at zero; mixing never yields zero for two inputs in a
        // row, and the `| 1` rules it out entirely.
        Rng { state: mix(seed) | 1 }
    }

    /// The generator for case `index` of a run seeded with `seed`: each case can be
    /// reproduced on its own, without generating the cases before it.
    pub fn for_case(seed: u64, index: u64) -> Rng {
        Rng::new(mix(seed) ^ mix(index.wrapping_add(0x5851_F42D_4C95_7F2D)))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` must be positive). The modulo bias is irrelevant for fuzzing.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0, "below(0) has no values");
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index chosen with the given relative weights (at least one must be positive).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.below(total.max(1) as usize) as u32;
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }
}
