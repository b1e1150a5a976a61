//! Walking row-major arrays of any rank: the strides with which an operand is read when it is
//! broadcast to a result, and a walk over the result's rows (every axis but the last) that
//! keeps each operand's offset. Kernels loop over the last axis themselves, where the data
//! is contiguous and the loops vectorise.

use ad_ir::Shape;

/// The element strides with which an operand of shape `s` is read when broadcast to `out`,
/// one per axis of `out`: 0 along axes where the operand has size 1 or is missing.
pub fn broadcast_strides(s: Shape, out: Shape) -> Vec<usize> {
    let r = out.rank();
    let own = s.strides();
    let lead = r - s.rank();
    (0..r)
        .map(|i| match i.checked_sub(lead) {
            Some(j) if s.dim(j) != 1 => own[j],
            _ => 0,
        })
        .collect()
}

/// The length of the last axis of `out` (1 for a scalar) and the number of rows before it.
pub fn rows(out: Shape) -> (usize, usize) {
    match out.dims().split_last() {
        Some((&n, lead)) => (lead.iter().product(), n),
        None => (1, 1),
    }
}

/// Calls `f(offsets)` for each row of `out` in order, where `offsets[k]` is where operand
/// `k` (read with `strides[k]`, one stride per axis of `out`) starts that row. The caller
/// reads along the row with each operand's last stride.
pub fn for_each_row(out: Shape, strides: &[&[usize]], mut f: impl FnMut(&[usize])) {
    let dims = out.dims();
    let outer = dims.len().saturating_sub(1);
    let mut offsets = vec![0usize; strides.len()];
    if dims.contains(&0) {
        return;
    }
    if outer == 0 {
        f(&offsets);
        return;
    }
    let mut idx = vec![0usize; outer];
    loop {
        f(&offsets);
        // Advance the odometer over the leading axes, last one fastest.
        let mut axis = outer;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            idx[axis] += 1;
            for (o, s) in offsets.iter_mut().zip(strides) {
                *o += s[axis];
            }
            if idx[axis] < dims[axis] {
                break;
            }
            for (o, s) in offsets.iter_mut().zip(strides) {
                *o -= s[axis] * dims[axis];
            }
            idx[axis] = 0;
        }
    }
}

/// The last-axis stride of an operand read with `strides` (0 for a scalar result).
pub fn inner(strides: &[usize]) -> usize {
    strides.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_walked_in_order_with_broadcast_offsets() {
        let out = Shape::from_dims(&[2, 3, 4]).unwrap();
        let a = broadcast_strides(Shape::from_dims(&[3, 1]).unwrap(), out);
        assert_eq!(a, vec![0, 1, 0]);
        let full = broadcast_strides(out, out);
        assert_eq!(full, vec![12, 4, 1]);
        let mut seen = Vec::new();
        for_each_row(out, &[&a, &full], |o| seen.push((o[0], o[1])));
        assert_eq!(seen, vec![(0, 0), (1, 4), (2, 8), (0, 12), (1, 16), (2, 20)]);
        assert_eq!(rows(out), (6, 4));
        assert_eq!(rows(Shape::scalar()), (1, 1));
    }
}
