//! Kernels compiled for the widest vector instructions the processor has. The binary is
//! built for baseline x86-64 (two doubles per instruction); a kernel declared with
//! [`wide_fn!`] is compiled again for AVX-512 and for AVX2, and the copy the processor
//! supports is chosen at run time, so the same loop runs eight or four lanes at a time.
//!
//! The results are the same to the bit whichever copy runs: Rust never contracts a product
//! and a sum into a fused multiply-add (it gives LLVM no permission to), so every copy
//! performs the same roundings in the same order; only the number of lanes differs.

/// The instruction sets a kernel can be compiled for, widest first.
#[derive(Clone, Copy)]
pub(crate) enum Level {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The widest level this processor supports (detected once).
pub(crate) fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        use std::sync::OnceLock;
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            if has!("avx512f") && has!("avx512dq") && has!("avx2") && has!("fma") {
                Level::Avx512
            } else if has!("avx2") && has!("fma") {
                Level::Avx2
            } else {
                Level::Baseline
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Level::Baseline
}

/// `wide_fn! { fn name[generics](args) -> R = plain; }` defines `name`, which calls the
/// `#[inline(always)]` function `plain` compiled for AVX-512, AVX2 or the baseline,
/// whichever is the widest the processor has. `plain` must be a function (not a closure):
/// only a function marked `#[inline(always)]` is reliably inlined into the copies compiled
/// for the wider instructions (a closure is compiled once, for the baseline, and called).
macro_rules! wide_fn {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident [$($gen:tt)*] ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? = $plain:path;
    ) => {
        $(#[$attr])*
        $vis fn $name<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
                unsafe fn avx512<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
                    $plain($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<$($gen)*>($($arg: $ty),*) $(-> $ret)? {
                    $plain($($arg),*)
                }
                match $crate::kernels::simd::level() {
                    // SAFETY: the processor supports these instructions (`level` checked).
                    $crate::kernels::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernels::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::simd::Level::Baseline => {}
                }
            }
            $plain($($arg),*)
        }
    };
}

pub(crate) use wide_fn;
