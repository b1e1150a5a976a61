//! Indexing and indexed update at positions computed while the program runs: one position
//! (`x[i]`) or a window of known length (`x[i:i + k]`) on each leading axis. The positions
//! are checked here, so that one out of range is an error at the user's line rather than a
//! wrong value.

use ad_ir::prim::DynSel;
use ad_ir::shape::MAX_RANK;
use ad_ir::{Array, Shape};

/// Where the part starts on each addressed axis, from positions given as numbers: a
/// negative position counts from the end, as a constant one does, and must lie inside the
/// axis. A window must lie inside the axis as written: `x[i:i + k]` with `i` negative would
/// be empty or shorter in NumPy, never `k` elements, so it is an error.
pub fn starts(
    dims: &[usize],
    sel: &[Option<usize>],
    positions: impl Iterator<Item = f64>,
) -> Result<[usize; MAX_RANK], String> {
    let mut at = [0usize; MAX_RANK];
    for (axis, raw) in positions.enumerate() {
        let len = dims[axis];
        if raw != raw.trunc() || !raw.is_finite() {
            return Err(format!("index {} is not an integer", ad_ir::display::fmt_num(raw, 17)));
        }
        let i = if raw < 0.0 && sel[axis].is_none() { raw + len as f64 } else { raw };
        match sel[axis] {
            None if i < 0.0 || i >= len as f64 => {
                return Err(format!("index {raw} is out of range for an axis of length {len}"));
            }
            Some(k) if i < 0.0 || i + k as f64 > len as f64 => {
                return Err(format!(
                    "the slice {raw}:{} is out of range for an axis of length {len}",
                    raw + k as f64
                ));
            }
            _ => at[axis] = i as usize,
        }
    }
    Ok(at)
}

/// Calls `f(offset, len)` for each contiguous run of the part starting at `at`, in the
/// part's row-major order: the window on the last addressed axis and everything after it
/// are contiguous in the array.
pub fn runs(dims: &[usize], sel: &[Option<usize>], at: &[usize], mut f: impl FnMut(usize, usize)) {
    let m = sel.len();
    let rest: usize = dims[m..].iter().product();
    if m == 0 {
        f(0, rest);
        return;
    }
    // Strides of the addressed axes, in elements.
    let mut stride = [0usize; MAX_RANK];
    let mut s = rest;
    for a in (0..m).rev() {
        stride[a] = s;
        s *= dims[a];
    }
    let size = |a: usize| sel[a].unwrap_or(1);
    let run = size(m - 1) * rest;
    let base: usize = (0..m).map(|a| at[a] * stride[a]).sum();
    // An odometer over the windows of the axes before the last.
    let mut idx = [0usize; MAX_RANK];
    loop {
        let off: usize = base + (0..m - 1).map(|a| idx[a] * stride[a]).sum::<usize>();
        f(off, run);
        let mut a = m - 1;
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < size(a) {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// The part of `x` that `sel` selects at `positions`.
pub fn dyn_index(x: &Array, sel: &DynSel, positions: &[Array], out: Shape) -> Result<Array, String> {
    let shape = x.shape();
    let dims = shape.dims();
    let at = starts(dims, &sel.0, positions.iter().map(first))?;
    let mut data = Vec::with_capacity(out.size());
    let d = x.data();
    runs(dims, &sel.0, &at, |o, n| data.extend_from_slice(&d[o..o + n]));
    Ok(Array::new(out, data))
}

/// `x` with `v` written at the part `sel` selects at `positions`, in place when `x` is the
/// only reference to its buffer.
pub fn dyn_update(mut x: Array, v: &Array, sel: &DynSel, positions: &[Array]) -> Result<Array, String> {
    let shape = x.shape();
    let at = starts(shape.dims(), &sel.0, positions.iter().map(first))?;
    let src = v.data();
    let write = |d: &mut [f64]| {
        let mut k = 0;
        runs(shape.dims(), &sel.0, &at, |o, n| {
            d[o..o + n].copy_from_slice(&src[k..k + n]);
            k += n;
        });
    };
    if let Some(d) = x.data_mut() {
        write(d);
        return Ok(x);
    }
    let mut d = x.data().to_vec();
    write(&mut d);
    Ok(Array::new(shape, d))
}

fn first(p: &Array) -> f64 {
    p.data().first().copied().unwrap_or(f64::NAN)
}
