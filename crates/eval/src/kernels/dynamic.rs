//! Indexing and indexed update at positions computed while the program runs. The positions
//! are checked here, so that one out of range is an error at the user's line rather than a
//! wrong value.

use ad_ir::{Array, Shape};

/// The element offset of the part at `positions` (on the first axes of `x`) and the part's
/// size; a negative position counts from the end, as a constant one does.
pub fn offset(x: Shape, positions: &[Array]) -> Result<(usize, usize), String> {
    offset_in(x.dims(), positions.iter().map(|p| p.data().first().copied().unwrap_or(f64::NAN)))
}

/// [`offset`] in an array with axes `dims`, at positions given as numbers.
pub fn offset_in(dims: &[usize], positions: impl Iterator<Item = f64>) -> Result<(usize, usize), String> {
    let mut offset = 0usize;
    let mut count = 0;
    for (axis, raw) in positions.enumerate() {
        count += 1;
        let len = dims[axis];
        if raw != raw.trunc() || !raw.is_finite() {
            return Err(format!("index {} is not an integer", ad_ir::display::fmt_num(raw, 17)));
        }
        let i = if raw < 0.0 { raw + len as f64 } else { raw };
        if i < 0.0 || i >= len as f64 {
            return Err(format!("index {raw} is out of range for an axis of length {len}"));
        }
        offset = offset * len + i as usize;
    }
    let part: usize = dims[count..].iter().product();
    Ok((offset * part, part))
}

pub fn dyn_index(x: &Array, start: usize, size: usize, out: Shape) -> Array {
    Array::new(out, x.data()[start..start + size].to_vec())
}

/// `x` with `v` written at `start`, in place when `x` is the only reference to its buffer.
pub fn dyn_update(mut x: Array, v: &Array, start: usize) -> Array {
    let n = v.shape().size();
    if let Some(d) = x.data_mut() {
        d[start..start + n].copy_from_slice(v.data());
        return x;
    }
    let mut d = x.data().to_vec();
    d[start..start + n].copy_from_slice(v.data());
    Array::new(x.shape(), d)
}
