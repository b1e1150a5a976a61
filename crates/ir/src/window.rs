//! The geometry of sliding windows over images: where a convolution's kernel or a pooling
//! window lands, how large the result is and how much zero padding surrounds the image.
//! Shape checking and the kernels both use it, so they cannot disagree.
//!
//! The rules are JAX's and TensorFlow's. With `"valid"` padding the window stays inside the
//! image: `out = (h - kh) / stride + 1`. With `"same"` padding `out = ceil(h / stride)` and
//! the image is padded by `max((out - 1) · stride + kh - h, 0)` pixels in all, half at the
//! top (rounded down) and the rest, so the odd pixel, at the bottom; likewise left and right.
//! Pooling windows never pad.

use std::fmt;

/// How a convolution treats the border of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Pad with zeros so that the result has `ceil(h / stride)` rows (and likewise columns).
    Same,
    /// No padding: only windows entirely inside the image.
    Valid,
}

impl Padding {
    /// The padding a script names: `"same"` or `"valid"`.
    pub fn from_name(name: &str) -> Option<Padding> {
        match name {
            "same" => Some(Padding::Same),
            "valid" => Some(Padding::Valid),
            _ => None,
        }
    }

    /// The name scripts use for this padding.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Same => "same",
            Padding::Valid => "valid",
        }
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the windows of a convolution or a pooling lie on an `h × w` image: each output
/// pixel `(oy, ox)` reads the input rows `oy · stride - pad_top ..` (`size_h` of them) and
/// columns `ox · stride - pad_left ..` (`size_w`), where rows and columns outside the image
/// are zeros (a convolution) or absent (pooling, which never pads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// The input image's rows and columns.
    pub h: usize,
    pub w: usize,
    /// The window's (kernel's) rows and columns.
    pub size_h: usize,
    pub size_w: usize,
    /// The step between windows, the same along both axes.
    pub stride: usize,
    /// The result's rows and columns.
    pub out_h: usize,
    pub out_w: usize,
    /// Zero rows above the image and zero columns left of it; the padding below and right
    /// is [`Window::pad_bottom`] and [`Window::pad_right`].
    pub pad_top: usize,
    pub pad_left: usize,
}

impl Window {
    /// The windows of a convolution of an `h × w` image with a `kh × kw` kernel.
    pub fn conv(
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<Window, String> {
        check_positive("kernel", kh, kw, stride)?;
        let ((out_h, pad_top), (out_w, pad_left)) = match padding {
            Padding::Valid => {
                if kh > h || kw > w {
                    return Err(format!("the kernel ({kh} × {kw}) is larger than the image ({h} × {w})"));
                }
                ((valid_len(h, kh, stride), 0), (valid_len(w, kw, stride), 0))
            }
            Padding::Same => (same_len(h, kh, stride)?, same_len(w, kw, stride)?),
        };
        Ok(Window { h, w, size_h: kh, size_w: kw, stride, out_h, out_w, pad_top, pad_left })
    }

    /// The windows of a pooling with `size × size` windows (no padding).
    pub fn pool(h: usize, w: usize, size: usize, stride: usize) -> Result<Window, String> {
        check_positive("window", size, size, stride)?;
        if size > h || size > w {
            return Err(format!("the window ({size} × {size}) is larger than the image ({h} × {w})"));
        }
        let (out_h, out_w) = (valid_len(h, size, stride), valid_len(w, size, stride));
        Ok(Window { h, w, size_h: size, size_w: size, stride, out_h, out_w, pad_top: 0, pad_left: 0 })
    }

    /// Zero rows below the image: what the last window needs beyond the last row.
    pub fn pad_bottom(&self) -> usize {
        far_pad(self.out_h, self.stride, self.size_h, self.h, self.pad_top)
    }

    /// Zero columns right of the image.
    pub fn pad_right(&self) -> usize {
        far_pad(self.out_w, self.stride, self.size_w, self.w, self.pad_left)
    }
}

/// Window sizes and the stride must be at least 1: a window of no pixels reads nothing and
/// a stride of 0 never moves.
fn check_positive(what: &str, kh: usize, kw: usize, stride: usize) -> Result<(), String> {
    if kh == 0 || kw == 0 {
        return Err(format!("the {what} must be at least 1 × 1, not {kh} × {kw}"));
    }
    if stride == 0 {
        return Err("the stride must be at least 1, not 0".to_string());
    }
    Ok(())
}

/// The number of windows of `k` pixels, `stride` apart, inside `n` pixels (`k ≤ n`).
fn valid_len(n: usize, k: usize, stride: usize) -> usize {
    (n - k) / stride + 1
}

/// The result's length and the padding before the image along one axis, for `"same"`.
fn same_len(n: usize, k: usize, stride: usize) -> Result<(usize, usize), String> {
    let out = n.div_ceil(stride);
    if out == 0 {
        // An empty image has no windows, so no padding is needed.
        return Ok((0, 0));
    }
    // `(out - 1) · stride < n`, so the product cannot overflow; the sum can only for sizes
    // no array has.
    let span = ((out - 1) * stride)
        .checked_add(k)
        .ok_or_else(|| format!("the kernel size {k} is too large for an image of {n} pixels"))?;
    let total = span.saturating_sub(n);
    Ok((out, total / 2))
}

/// The padding after the image along one axis: what the windows reach past its end.
fn far_pad(out: usize, stride: usize, k: usize, n: usize, before: usize) -> usize {
    if out == 0 {
        return 0;
    }
    ((out - 1) * stride + k).saturating_sub(n + before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(h: usize, w: usize, kh: usize, kw: usize, s: usize, p: Padding) -> Window {
        Window::conv(h, w, kh, kw, s, p).unwrap()
    }

    #[test]
    fn window_valid_sizes() {
        let win = conv(28, 28, 3, 3, 1, Padding::Valid);
        assert_eq!((win.out_h, win.out_w, win.pad_top, win.pad_left), (26, 26, 0, 0));
        assert_eq!((win.pad_bottom(), win.pad_right()), (0, 0));
        // Rows left over by the stride are dropped, not padded.
        let win = conv(7, 8, 3, 2, 2, Padding::Valid);
        assert_eq!((win.out_h, win.out_w), (3, 4));
        assert_eq!((win.pad_bottom(), win.pad_right()), (0, 0));
        let win = conv(5, 5, 5, 5, 3, Padding::Valid);
        assert_eq!((win.out_h, win.out_w), (1, 1));
    }

    #[test]
    fn window_same_sizes_and_padding() {
        // Stride 1: the result has the image's size; a 3-pixel kernel pads one on each side.
        let win = conv(28, 27, 3, 3, 1, Padding::Same);
        assert_eq!((win.out_h, win.out_w, win.pad_top, win.pad_left), (28, 27, 1, 1));
        assert_eq!((win.pad_bottom(), win.pad_right()), (1, 1));
        // An even kernel pads one pixel in all, at the bottom and right.
        let win = conv(4, 4, 2, 2, 1, Padding::Same);
        assert_eq!((win.out_h, win.pad_top, win.pad_bottom()), (4, 0, 1));
        // Stride 2 on 4 pixels with a 3-pixel kernel: 2 outputs, (2-1)·2 + 3 - 4 = 1 pixel of
        // padding, which goes to the bottom.
        let win = conv(4, 4, 3, 3, 2, Padding::Same);
        assert_eq!((win.out_h, win.pad_top, win.pad_bottom()), (2, 0, 1));
        // 5 pixels, stride 2, kernel 4: 3 outputs, (3-1)·2 + 4 - 5 = 3 pixels, 1 above, 2 below.
        let win = conv(5, 5, 4, 4, 2, Padding::Same);
        assert_eq!((win.out_h, win.pad_top, win.pad_bottom()), (3, 1, 2));
        // A stride larger than the kernel may need no padding (rows: 2 outputs, (2-1)·3 + 1
        // - 6 < 0) or some, all of it after the image (columns: (3-1)·3 + 2 - 7 = 1).
        let win = conv(6, 7, 1, 2, 3, Padding::Same);
        assert_eq!((win.out_h, win.out_w, win.pad_top, win.pad_left), (2, 3, 0, 0));
        assert_eq!((win.pad_bottom(), win.pad_right()), (0, 1));
        // A kernel larger than the image is allowed with "same".
        let win = conv(3, 2, 5, 5, 1, Padding::Same);
        assert_eq!((win.out_h, win.out_w, win.pad_top, win.pad_left), (3, 2, 2, 2));
        assert_eq!((win.pad_bottom(), win.pad_right()), (2, 2));
    }

    #[test]
    fn window_same_matches_the_formula() {
        for n in 1..12 {
            for k in 1..7 {
                for s in 1..5 {
                    let win = conv(n, n, k, k, s, Padding::Same);
                    let out = n.div_ceil(s);
                    let total = ((out as i64 - 1) * s as i64 + k as i64 - n as i64).max(0) as usize;
                    assert_eq!(win.out_h, out);
                    assert_eq!(win.pad_top, total / 2);
                    assert_eq!(win.pad_top + win.pad_bottom(), total, "n={n} k={k} s={s}");
                }
            }
        }
    }

    #[test]
    fn window_empty_images() {
        let win = conv(0, 5, 3, 3, 2, Padding::Same);
        assert_eq!((win.out_h, win.out_w, win.pad_top, win.pad_bottom()), (0, 3, 0, 0));
        assert!(Window::conv(0, 5, 3, 3, 1, Padding::Valid).is_err());
    }

    #[test]
    fn window_pool_sizes() {
        let win = Window::pool(28, 27, 2, 2).unwrap();
        assert_eq!((win.out_h, win.out_w, win.pad_top, win.pad_left), (14, 13, 0, 0));
        let win = Window::pool(7, 7, 3, 1).unwrap();
        assert_eq!((win.out_h, win.out_w), (5, 5));
        assert_eq!((win.size_h, win.size_w, win.stride), (3, 3, 1));
    }

    #[test]
    fn window_errors_name_the_sizes() {
        assert_eq!(
            Window::conv(3, 4, 5, 5, 1, Padding::Valid).unwrap_err(),
            "the kernel (5 × 5) is larger than the image (3 × 4)"
        );
        assert_eq!(
            Window::conv(6, 4, 2, 5, 1, Padding::Valid).unwrap_err(),
            "the kernel (2 × 5) is larger than the image (6 × 4)"
        );
        assert_eq!(
            Window::conv(6, 4, 2, 2, 0, Padding::Same).unwrap_err(),
            "the stride must be at least 1, not 0"
        );
        assert_eq!(
            Window::conv(6, 4, 0, 2, 1, Padding::Same).unwrap_err(),
            "the kernel must be at least 1 × 1, not 0 × 2"
        );
        assert_eq!(
            Window::pool(2, 5, 3, 1).unwrap_err(),
            "the window (3 × 3) is larger than the image (2 × 5)"
        );
        assert_eq!(Window::pool(4, 4, 0, 1).unwrap_err(), "the window must be at least 1 × 1, not 0 × 0");
        assert_eq!(Window::pool(4, 4, 2, 0).unwrap_err(), "the stride must be at least 1, not 0");
    }

    #[test]
    fn window_padding_names() {
        for p in [Padding::Same, Padding::Valid] {
            assert_eq!(Padding::from_name(p.name()), Some(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(Padding::from_name("SAME"), None);
    }
}
