//! Convolution and pooling kernels against naive references (direct loops over every
//! output, window position and channel) on random sizes, the adjoint kernels by the
//! dot-product test, and a few values computed by hand (notably where "same" padding puts
//! its odd pixel).

use ad_eval::kernels::window::{
    avg_pool2d, avg_pool2d_transpose, conv2d, conv2d_transpose_input, conv2d_transpose_kernel, max_pool2d,
    max_pool2d_pick, max_pool2d_scatter,
};
use ad_ir::prim::Conv;
use ad_ir::window::{Padding, Window};
use ad_ir::{Array, Shape};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..=hi`.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Values on a grid of 0.01 in [-5, 5), so that maxima often tie.
    fn array(&mut self, dims: &[usize]) -> Array {
        let shape = Shape::from_dims(dims).unwrap();
        let data = (0..shape.size()).map(|_| (self.next() % 1000) as f64 / 100.0 - 5.0).collect();
        Array::new(shape, data)
    }
}

fn arr(dims: &[usize], data: Vec<f64>) -> Array {
    Array::new(Shape::from_dims(dims).unwrap(), data)
}

fn dims4(a: &Array) -> [usize; 4] {
    a.shape().dims().try_into().unwrap()
}

/// Offset of `[i, j, k, l]` in a row-major array of dimensions `d`.
fn at(d: [usize; 4], i: usize, j: usize, k: usize, l: usize) -> usize {
    ((i * d[1] + j) * d[2] + k) * d[3] + l
}

/// Every input pixel `(iy, ix)` under output pixel `(oy, ox)`, with the window position
/// `(i, j)`, by the definition: `iy = oy · stride + i - pad_top`, skipping the padding.
fn taps(win: &Window, oy: usize, ox: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    for i in 0..win.size_h {
        for j in 0..win.size_w {
            let iy = (oy * win.stride + i) as isize - win.pad_top as isize;
            let ix = (ox * win.stride + j) as isize - win.pad_left as isize;
            if iy >= 0 && ix >= 0 && (iy as usize) < win.h && (ix as usize) < win.w {
                out.push((i, j, iy as usize, ix as usize));
            }
        }
    }
    out
}

/// The static arguments of a convolution in one group.
fn conv(stride: usize, padding: Padding) -> Conv {
    Conv { stride: stride as u32, padding, groups: 1, strong: false }
}

/// A convolution's sizes and windows, by the definition.
fn conv_window(x: [usize; 4], k: [usize; 4], stride: usize, padding: Padding) -> Window {
    Window::conv(x[1], x[2], k[0], k[1], stride, padding).unwrap()
}

/// Every term of a convolution in `groups` groups by the definition: `f(x index, kernel
/// index, output index)` for each input pixel, kernel tap and channel pair that meet (input
/// channel `c` meets the output channels of its group, through kernel channel `c mod ci`).
fn conv_terms(
    xd: [usize; 4],
    kd: [usize; 4],
    win: &Window,
    groups: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let yd = [xd[0], win.out_h, win.out_w, kd[3]];
    let (ci, og) = (xd[3] / groups, kd[3] / groups);
    for b in 0..xd[0] {
        for oy in 0..win.out_h {
            for ox in 0..win.out_w {
                for (i, j, iy, ix) in taps(win, oy, ox) {
                    for c in 0..xd[3] {
                        let g = c / ci;
                        for o in g * og..(g + 1) * og {
                            f(at(xd, b, iy, ix, c), at(kd, i, j, c % ci, o), at(yd, b, oy, ox, o));
                        }
                    }
                }
            }
        }
    }
}

fn naive_conv(x: &Array, k: &Array, c: Conv) -> Array {
    let (xd, kd) = (dims4(x), dims4(k));
    let win = conv_window(xd, kd, c.stride(), c.padding);
    let yd = [xd[0], win.out_h, win.out_w, kd[3]];
    let mut y = vec![0.0; yd.iter().product()];
    conv_terms(xd, kd, &win, c.groups(), |xi, ki, yi| y[yi] += x.data()[xi] * k.data()[ki]);
    arr(&yd, y)
}

fn naive_conv_transpose_input(ct: &Array, k: &Array, c: Conv, xd: [usize; 4]) -> Array {
    let kd = dims4(k);
    let win = conv_window(xd, kd, c.stride(), c.padding);
    let mut dx = vec![0.0; xd.iter().product()];
    conv_terms(xd, kd, &win, c.groups(), |xi, ki, yi| dx[xi] += ct.data()[yi] * k.data()[ki]);
    arr(&xd, dx)
}

fn naive_conv_transpose_kernel(x: &Array, ct: &Array, c: Conv, kd: [usize; 4]) -> Array {
    let xd = dims4(x);
    let win = conv_window(xd, kd, c.stride(), c.padding);
    let mut dk = vec![0.0; kd.iter().product()];
    conv_terms(xd, kd, &win, c.groups(), |xi, ki, yi| dk[ki] += x.data()[xi] * ct.data()[yi]);
    arr(&kd, dk)
}

/// For each output entry of a max pooling, the offset in `x` of the chosen pixel: the
/// first maximum in row-major window order, or the first NaN.
fn naive_max_positions(x: &Array, size: usize, stride: usize) -> (Vec<usize>, [usize; 4]) {
    let xd = dims4(x);
    let win = Window::pool(xd[1], xd[2], size, stride).unwrap();
    let yd = [xd[0], win.out_h, win.out_w, xd[3]];
    let mut pos = vec![0; yd.iter().product()];
    for b in 0..xd[0] {
        for oy in 0..win.out_h {
            for ox in 0..win.out_w {
                for c in 0..xd[3] {
                    let mut best: Option<usize> = None;
                    for (_, _, iy, ix) in taps(&win, oy, ox) {
                        let q = at(xd, b, iy, ix, c);
                        let v = x.data()[q];
                        best = match best {
                            None => Some(q),
                            Some(p) if x.data()[p].is_nan() => Some(p),
                            Some(_) if v.is_nan() => Some(q),
                            Some(p) if v > x.data()[p] => Some(q),
                            keep => keep,
                        };
                    }
                    pos[at(yd, b, oy, ox, c)] = best.unwrap();
                }
            }
        }
    }
    (pos, yd)
}

fn naive_avg_pool(x: &Array, size: usize, stride: usize) -> Array {
    let xd = dims4(x);
    let win = Window::pool(xd[1], xd[2], size, stride).unwrap();
    let yd = [xd[0], win.out_h, win.out_w, xd[3]];
    let mut y = vec![0.0; yd.iter().product()];
    for b in 0..xd[0] {
        for oy in 0..win.out_h {
            for ox in 0..win.out_w {
                for c in 0..xd[3] {
                    let s: f64 =
                        taps(&win, oy, ox).iter().map(|&(_, _, iy, ix)| x.data()[at(xd, b, iy, ix, c)]).sum();
                    y[at(yd, b, oy, ox, c)] = s / (size * size) as f64;
                }
            }
        }
    }
    arr(&yd, y)
}

fn naive_avg_pool_transpose(ct: &Array, size: usize, stride: usize, xd: [usize; 4]) -> Array {
    let yd = dims4(ct);
    let win = Window::pool(xd[1], xd[2], size, stride).unwrap();
    let mut dx = vec![0.0; xd.iter().product()];
    for b in 0..xd[0] {
        for oy in 0..win.out_h {
            for ox in 0..win.out_w {
                for c in 0..xd[3] {
                    for (_, _, iy, ix) in taps(&win, oy, ox) {
                        dx[at(xd, b, iy, ix, c)] += ct.data()[at(yd, b, oy, ox, c)] / (size * size) as f64;
                    }
                }
            }
        }
    }
    arr(&xd, dx)
}

/// Equal shapes and values within 1e-12 of the reference's largest magnitude (the sums
/// are the same terms in another order).
fn assert_close(got: &Array, want: &Array, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let scale = want.data().iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert!((g - w).abs() <= 1e-12 * scale, "{what}: entry {i} is {g}, expected {w}");
    }
}

/// `⟨a, b⟩` and the sum of the terms' magnitudes, the scale its rounding error is relative to.
fn dot(a: &Array, b: &Array) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape());
    a.data().iter().zip(b.data()).fold((0.0, 0.0), |(s, m), (x, y)| (s + x * y, m + (x * y).abs()))
}

/// The dot-product test `⟨A u, v⟩ = ⟨u, Aᵀ v⟩`, to 1e-12 relative to the terms' magnitude.
fn assert_adjoint(lhs: (f64, f64), rhs: (f64, f64), what: &str) {
    let scale = lhs.1.max(rhs.1).max(1e-300);
    assert!((lhs.0 - rhs.0).abs() <= 1e-12 * scale, "{what}: ⟨Au, v⟩ = {} but ⟨u, Aᵀv⟩ = {}", lhs.0, rhs.0);
}

/// One convolution case: the three kernels against the references, and both adjoints.
fn check_conv(rng: &mut Rng, xd: [usize; 4], kd: [usize; 4], stride: usize, padding: Padding) {
    check_grouped(rng, xd, kd, conv(stride, padding));
}

/// [`check_conv`] for any number of groups.
fn check_grouped(rng: &mut Rng, xd: [usize; 4], kd: [usize; 4], c: Conv) {
    let what = format!("x {xd:?}, k {kd:?}, stride {}, {}, {} groups", c.stride(), c.padding, c.groups);
    let (x, k) = (rng.array(&xd), rng.array(&kd));
    let y = conv2d(&x, &k, c);
    assert_close(&y, &naive_conv(&x, &k, c), &format!("conv2d {what}"));
    let ct = rng.array(y.shape().dims());
    let xs = Shape::from_dims(&xd).unwrap();
    let ks = Shape::from_dims(&kd).unwrap();
    let dx = conv2d_transpose_input(&ct, &k, c, xs);
    assert_close(&dx, &naive_conv_transpose_input(&ct, &k, c, xd), &format!("input {what}"));
    let dk = conv2d_transpose_kernel(&x, &ct, c, ks);
    assert_close(&dk, &naive_conv_transpose_kernel(&x, &ct, c, kd), &format!("kernel {what}"));
    assert_adjoint(dot(&y, &ct), dot(&x, &dx), &format!("input adjoint {what}"));
    assert_adjoint(dot(&y, &ct), dot(&k, &dk), &format!("kernel adjoint {what}"));
}

#[test]
fn conv2d_matches_the_reference_on_random_sizes() {
    let mut rng = Rng::new(7);
    let mut checked = 0;
    while checked < 300 {
        let xd = [rng.int(1, 3), rng.int(1, 11), rng.int(1, 11), rng.int(1, 4)];
        let kd = [rng.int(1, 5), rng.int(1, 5), xd[3], rng.int(1, 4)];
        let stride = rng.int(1, 3);
        let padding = if rng.int(0, 1) == 0 { Padding::Same } else { Padding::Valid };
        if Window::conv(xd[1], xd[2], kd[0], kd[1], stride, padding).is_err() {
            continue;
        }
        check_conv(&mut rng, xd, kd, stride, padding);
        checked += 1;
    }
}

#[test]
fn conv2d_in_groups_matches_the_reference_on_random_sizes() {
    // Groups split the input's channels and the kernel's outputs: depthwise (one channel
    // per group), several channels per group, pointwise kernels, and blocks run in parallel.
    let mut rng = Rng::new(23);
    let mut checked = 0;
    while checked < 200 {
        let groups = rng.int(1, 4);
        let xd = [rng.int(1, 3), rng.int(1, 9), rng.int(1, 9), groups * rng.int(1, 3)];
        let kd = [rng.int(1, 4), rng.int(1, 4), xd[3] / groups, groups * rng.int(1, 3)];
        let c = Conv {
            stride: rng.int(1, 3) as u32,
            padding: [Padding::Same, Padding::Valid][rng.int(0, 1)],
            groups: groups as u32,
            strong: false,
        };
        if Window::conv(xd[1], xd[2], kd[0], kd[1], c.stride(), c.padding).is_err() {
            continue;
        }
        check_grouped(&mut rng, xd, kd, c);
        checked += 1;
    }
    check_grouped(
        &mut rng,
        [2, 5, 3, 6],
        [1, 1, 2, 9],
        Conv { stride: 1, padding: Padding::Same, groups: 3, strong: false },
    );
    check_grouped(
        &mut rng,
        [3, 40, 40, 16],
        [3, 3, 4, 8],
        Conv { stride: 1, padding: Padding::Same, groups: 4, strong: false },
    );
    check_grouped(
        &mut rng,
        [1, 30, 30, 16],
        [5, 5, 1, 16],
        Conv { stride: 2, padding: Padding::Valid, groups: 16, strong: false },
    );
}

#[test]
fn conv2d_pointwise_kernels() {
    // A 1 × 1 kernel with stride 1 multiplies the image directly, without a window matrix.
    let mut rng = Rng::new(11);
    for padding in [Padding::Same, Padding::Valid] {
        check_conv(&mut rng, [2, 5, 3, 4], [1, 1, 4, 6], 1, padding);
        check_conv(&mut rng, [2, 5, 3, 4], [1, 1, 4, 6], 2, padding);
    }
}

#[test]
fn conv2d_over_several_blocks_of_the_window_matrix() {
    // The window matrix is built in blocks of 2^17 elements: 3 × 3 × 1 columns give
    // 14563-row blocks, so 2 × 90 × 90 output pixels take two; 5 × 5 × 16 columns give
    // 327-row blocks, so 30 × 30 output pixels take three, the last one short.
    let mut rng = Rng::new(13);
    check_conv(&mut rng, [2, 90, 90, 1], [3, 3, 1, 2], 1, Padding::Same);
    check_conv(&mut rng, [1, 30, 30, 16], [5, 5, 16, 3], 1, Padding::Same);
    check_conv(&mut rng, [1, 62, 61, 16], [5, 4, 16, 2], 2, Padding::Valid);
}

/// The images of a batch, each as a batch of one.
fn images(x: &Array) -> Vec<Array> {
    let d = dims4(x);
    let len = d[1] * d[2] * d[3];
    x.data().chunks(len.max(1)).map(|c| arr(&[1, d[1], d[2], d[3]], c.to_vec())).collect()
}

#[test]
fn conv2d_in_parallel() {
    // Past 4e6 multiply-adds with several blocks the blocks run on all cores: for the
    // result and the input's gradient, by disjoint rows and images. Each image's part equals
    // the same call on that image alone (below the threshold, so sequential), bit for bit.
    let mut rng = Rng::new(37);
    let cases = [
        ([3, 40, 40, 16], [3, 3, 16, 8], 1, Padding::Same),
        ([2, 50, 50, 8], [5, 5, 8, 5], 1, Padding::Same),
        ([4, 61, 47, 8], [4, 3, 8, 16], 2, Padding::Valid),
    ];
    for (xd, kd, stride, padding) in cases {
        check_conv(&mut rng, xd, kd, stride, padding);
        let (x, k) = (rng.array(&xd), rng.array(&kd));
        let y = conv2d(&x, &k, conv(stride, padding));
        let ct = rng.array(y.shape().dims());
        let dx = conv2d_transpose_input(&ct, &k, conv(stride, padding), x.shape());
        let dk = conv2d_transpose_kernel(&x, &ct, conv(stride, padding), k.shape());
        let (mut y_parts, mut dx_parts, mut dk_sum) = (vec![], vec![], vec![0.0; dk.data().len()]);
        for (xi, cti) in images(&x).iter().zip(images(&ct)) {
            y_parts.extend_from_slice(conv2d(xi, &k, conv(stride, padding)).data());
            dx_parts.extend_from_slice(
                conv2d_transpose_input(&cti, &k, conv(stride, padding), xi.shape()).data(),
            );
            let dki = conv2d_transpose_kernel(xi, &cti, conv(stride, padding), k.shape());
            dk_sum.iter_mut().zip(dki.data()).for_each(|(s, v)| *s += v);
        }
        assert_eq!(y.data(), y_parts);
        assert_eq!(dx.data(), dx_parts);
        assert_close(&dk, &arr(&kd, dk_sum), "kernel gradient by images");
    }
}

#[test]
fn conv2d_kernels_larger_than_the_image_with_same_padding() {
    let mut rng = Rng::new(17);
    for stride in 1..=3 {
        check_conv(&mut rng, [2, 3, 2, 2], [5, 6, 2, 3], stride, Padding::Same);
        check_conv(&mut rng, [1, 1, 1, 1], [4, 4, 1, 1], stride, Padding::Same);
    }
}

#[test]
fn conv2d_by_hand() {
    // x = 1..16 on a 4 × 4 image, kernel [[1, 2], [3, 4]].
    let x = arr(&[1, 4, 4, 1], (1..=16).map(f64::from).collect());
    let k = arr(&[2, 2, 1, 1], vec![1.0, 2.0, 3.0, 4.0]);
    // Stride 2, "same": (2 - 1) · 2 + 2 - 4 = 0 pixels of padding, so the same as "valid":
    // 1·1 + 2·2 + 3·5 + 4·6 = 44, and so on.
    let want = [44.0, 64.0, 124.0, 144.0];
    assert_eq!(conv2d(&x, &k, conv(2, Padding::Same)).data(), want);
    assert_eq!(conv2d(&x, &k, conv(2, Padding::Valid)).data(), want);
    // Stride 1, "same": one pixel of padding, at the bottom and right. The top-left output
    // is the full window (44, not the 4·1 that padding at the top and left would give); the
    // last row and column see zeros below and to the right.
    let y = conv2d(&x, &k, conv(1, Padding::Same));
    assert_eq!(y.shape().dims(), [1, 4, 4, 1]);
    #[rustfmt::skip]
    let want = [
        44.0, 54.0, 64.0, 28.0,
        84.0, 94.0, 104.0, 44.0,
        124.0, 134.0, 144.0, 60.0,
        41.0, 44.0, 47.0, 16.0,
    ];
    assert_eq!(y.data(), want);
    // A 3 × 3 kernel of ones, stride 2, "same": 2 × 2 outputs and (2 - 1) · 2 + 3 - 4 = 1
    // pixel of padding, at the bottom and right: windows cover rows 0–2 and 2–3.
    let ones = arr(&[3, 3, 1, 1], vec![1.0; 9]);
    let y = conv2d(&x, &ones, conv(2, Padding::Same));
    assert_eq!(y.shape().dims(), [1, 2, 2, 1]);
    assert_eq!(y.data(), [54.0, 45.0, 72.0, 54.0]);
    // Two input and two output channels: output channel o sums k[.., c, o] · x[.., c].
    let x2 = arr(&[1, 1, 2, 2], vec![1.0, 10.0, 2.0, 20.0]);
    let k2 = arr(&[1, 2, 2, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, -1.0]);
    // Valid: one output pixel; o = 0: 1·1 + 10·0 + 2·1 + 20·0.5 = 13; o = 1: 10·1 + 2·1 - 20 = -8.
    assert_eq!(conv2d(&x2, &k2, conv(1, Padding::Valid)).data(), [13.0, -8.0]);
}

#[test]
fn conv2d_transposes_by_hand() {
    // A 1 × 3 × 3 × 1 image, a 2 × 2 kernel, "valid", stride 1: a cotangent of ones spreads
    // the kernel over the image (the middle pixel is under all four windows).
    let k = arr(&[2, 2, 1, 1], vec![1.0, 2.0, 3.0, 4.0]);
    let ct = arr(&[1, 2, 2, 1], vec![1.0; 4]);
    let xs = Shape::from_dims(&[1, 3, 3, 1]).unwrap();
    let dx = conv2d_transpose_input(&ct, &k, conv(1, Padding::Valid), xs);
    assert_eq!(dx.data(), [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    // The kernel's cotangent sums the image under each kernel position.
    let x = arr(&[1, 3, 3, 1], (1..=9).map(f64::from).collect());
    let ks = Shape::from_dims(&[2, 2, 1, 1]).unwrap();
    let dk = conv2d_transpose_kernel(&x, &ct, conv(1, Padding::Valid), ks);
    assert_eq!(
        dk.data(),
        [1.0 + 2.0 + 4.0 + 5.0, 2.0 + 3.0 + 5.0 + 6.0, 4.0 + 5.0 + 7.0 + 8.0, 5.0 + 6.0 + 8.0 + 9.0]
    );
}

#[test]
fn conv2d_empty_sizes() {
    let mut rng = Rng::new(19);
    // No images, no input channels, no output channels, an empty image with "same".
    for (xd, kd) in [
        ([0, 5, 4, 2], [3, 3, 2, 3]),
        ([2, 5, 4, 0], [3, 3, 0, 3]),
        ([2, 5, 4, 2], [3, 3, 2, 0]),
        ([2, 0, 4, 2], [3, 3, 2, 3]),
    ] {
        for stride in [1, 2] {
            let padding = if xd[1] == 0 { Padding::Same } else { Padding::Valid };
            let (x, k) = (rng.array(&xd), rng.array(&kd));
            let y = conv2d(&x, &k, conv(stride, padding));
            let win = conv_window(xd, kd, stride, padding);
            assert_eq!(y.shape().dims(), [xd[0], win.out_h, win.out_w, kd[3]]);
            assert!(y.data().iter().all(|&v| v == 0.0));
            check_conv(&mut rng, xd, kd, stride, padding);
        }
    }
}

/// One pooling case: the pooled values, pick and scatter against the references, and the
/// adjoints of pick/scatter and avg/avg-transpose.
fn check_pool(rng: &mut Rng, x: &Array, size: usize, stride: usize) {
    let what = format!("x {:?}, size {size}, stride {stride}", x.shape());
    let xd = dims4(x);
    let (pos, yd) = naive_max_positions(x, size, stride);
    let y = max_pool2d(x, size, stride);
    let want: Vec<f64> = pos.iter().map(|&q| x.data()[q]).collect();
    assert_eq!(y.shape().dims(), yd, "{what}");
    // Compared bitwise, so NaNs compare too: a maximum is a copy, not a computation.
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(y.data()), bits(&want), "max_pool2d {what}");
    let t = rng.array(&xd);
    let picked = max_pool2d_pick(x, &t, size, stride);
    let want: Vec<f64> = pos.iter().map(|&q| t.data()[q]).collect();
    assert_eq!(picked.data(), want, "max_pool2d_pick {what}");
    let ct = rng.array(&yd);
    let dx = max_pool2d_scatter(x, &ct, size, stride);
    let mut want = vec![0.0; x.shape().size()];
    for (&q, g) in pos.iter().zip(ct.data()) {
        want[q] += g;
    }
    assert_close(&dx, &arr(&xd, want), &format!("max_pool2d_scatter {what}"));
    assert_adjoint(dot(&picked, &ct), dot(&t, &dx), &format!("pick/scatter adjoint {what}"));
    let avg = avg_pool2d(x, size, stride);
    if x.data().iter().all(|v| v.is_finite()) {
        assert_close(&avg, &naive_avg_pool(x, size, stride), &format!("avg_pool2d {what}"));
    }
    let davg = avg_pool2d_transpose(&ct, size, stride, x.shape());
    assert_close(&davg, &naive_avg_pool_transpose(&ct, size, stride, xd), &format!("avg transpose {what}"));
    assert_adjoint(dot(&avg_pool2d(&t, size, stride), &ct), dot(&t, &davg), &format!("avg adjoint {what}"));
}

#[test]
fn pooling_matches_the_reference_on_random_sizes() {
    let mut rng = Rng::new(23);
    let mut checked = 0;
    while checked < 300 {
        let xd = [rng.int(1, 3), rng.int(1, 11), rng.int(1, 11), rng.int(1, 4)];
        let (size, stride) = (rng.int(1, 4), rng.int(1, 3));
        if size > xd[1] || size > xd[2] {
            continue;
        }
        let x = rng.array(&xd);
        check_pool(&mut rng, &x, size, stride);
        checked += 1;
    }
}

#[test]
fn max_pooling_ties_and_nans() {
    let mut rng = Rng::new(29);
    // Random images with few distinct values (many ties), NaNs and infinities.
    for case in 0..200 {
        let xd = [rng.int(1, 2), rng.int(2, 8), rng.int(2, 8), rng.int(1, 3)];
        let (size, stride) = (rng.int(1, xd[1].min(xd[2]).min(3)), rng.int(1, 3));
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1.0];
        let n = xd.iter().product();
        let data = (0..n)
            .map(|_| if case % 2 == 0 { specials[rng.int(0, 5)] } else { rng.int(0, 2) as f64 })
            .collect();
        check_pool(&mut rng, &arr(&xd, data), size, stride);
    }
}

#[test]
fn max_pooling_by_hand() {
    // One 2 × 2 window per quarter: a plain maximum, a tie (the first in row-major order
    // wins), a NaN (it wins over larger numbers) and two NaNs (the first wins).
    #[rustfmt::skip]
    let x = arr(&[1, 4, 4, 1], vec![
        1.0, 4.0,   3.0, 7.0,
        2.0, 3.0,   7.0, 7.0,

        5.0, f64::NAN,   f64::NEG_INFINITY, f64::NAN,
        9.0, 1.0,        f64::NAN, 8.0,
    ]);
    let t = arr(&[1, 4, 4, 1], (0..16).map(f64::from).collect());
    let y = max_pool2d(&x, 2, 2);
    assert_eq!(y.data()[..2], [4.0, 7.0]);
    assert!(y.data()[2].is_nan() && y.data()[3].is_nan());
    // The positions: 1 (the 4), 3 (the first 7), 9 (the NaN) and 11 (the first NaN).
    assert_eq!(max_pool2d_pick(&x, &t, 2, 2).data(), [1.0, 3.0, 9.0, 11.0]);
    let ct = arr(&[1, 2, 2, 1], vec![10.0, 20.0, 30.0, 40.0]);
    let dx = max_pool2d_scatter(&x, &ct, 2, 2);
    let mut want = vec![0.0; 16];
    (want[1], want[3], want[9], want[11]) = (10.0, 20.0, 30.0, 40.0);
    assert_eq!(dx.data(), want);
    // Overlapping windows (3 × 3, stride 1) that all choose the centre add up there.
    let mut data = vec![0.0; 25];
    data[12] = 1.0;
    let x = arr(&[1, 5, 5, 1], data);
    let dx = max_pool2d_scatter(&x, &arr(&[1, 3, 3, 1], vec![1.0; 9]), 3, 1);
    assert_eq!(dx.data()[12], 9.0);
    assert_eq!(dx.data().iter().sum::<f64>(), 9.0);
}

#[test]
fn avg_pooling_by_hand() {
    let x = arr(&[1, 4, 4, 1], (1..=16).map(f64::from).collect());
    assert_eq!(avg_pool2d(&x, 2, 2).data(), [3.5, 5.5, 11.5, 13.5]);
    // 3 × 3 windows with stride 1: the means of the centres' neighbourhoods.
    assert_eq!(avg_pool2d(&x, 3, 1).data(), [6.0, 7.0, 10.0, 11.0]);
    // The transpose spreads each entry over its window, divided by 4; the middle of a 3 × 3
    // image is in all four 2 × 2 windows of stride 1.
    let dx = avg_pool2d_transpose(
        &arr(&[1, 2, 2, 1], vec![4.0; 4]),
        2,
        1,
        Shape::from_dims(&[1, 3, 3, 1]).unwrap(),
    );
    assert_eq!(dx.data(), [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
}

#[test]
fn pooling_empty_sizes() {
    let mut rng = Rng::new(31);
    for xd in [[0, 4, 4, 2], [2, 4, 5, 0]] {
        let x = rng.array(&xd);
        let y = max_pool2d(&x, 2, 2);
        assert_eq!(y.shape().dims(), [xd[0], 2, 2, xd[3]]);
        assert_eq!(avg_pool2d(&x, 2, 2).shape(), y.shape());
        check_pool(&mut rng, &x, 2, 2);
    }
}

/// Equal shapes, and values that are both NaN, equal infinities, or within 1e-12 of the
/// reference's largest finite magnitude.
fn assert_close_nonfinite(got: &Array, want: &Array, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let scale = want.data().iter().filter(|v| v.is_finite()).fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-12 * scale;
        assert!(ok, "{what}: entry {i} is {g}, expected {w}");
    }
}

/// An array like `a` with about a quarter of its entries zero and, where `poison`, a few
/// infinite or NaN.
fn with_zeros_and_poison(rng: &mut Rng, a: &Array, poison: bool) -> Array {
    let data = a
        .data()
        .iter()
        .map(|v| match rng.int(0, 19) {
            0..=4 => 0.0,
            5 if poison => f64::NAN,
            6 if poison => f64::INFINITY,
            _ => *v,
        })
        .collect();
    Array::new(a.shape(), data)
}

#[test]
fn conv2d_strong_zeros() {
    // `safe_conv2d` and its adjoints: a term with a zero factor is 0 even when the other is
    // infinite or NaN, so a zero cotangent cancels a NaN pixel; other terms propagate as
    // usual. Against the definition with `safe_mul`'s product, in groups and not.
    let strong = ad_ir::scalar::safe_mul;
    let mut rng = Rng::new(41);
    for case in 0..60 {
        let groups = rng.int(1, 3);
        let xd = [rng.int(1, 2), rng.int(2, 7), rng.int(2, 7), groups * rng.int(1, 2)];
        let kd = [rng.int(1, 3), rng.int(1, 3), xd[3] / groups, groups * rng.int(1, 2)];
        let padding = [Padding::Same, Padding::Valid][rng.int(0, 1)];
        let c = Conv { stride: rng.int(1, 2) as u32, padding, groups: groups as u32, strong: true };
        let Ok(win) = Window::conv(xd[1], xd[2], kd[0], kd[1], c.stride(), c.padding) else { continue };
        let yd = [xd[0], win.out_h, win.out_w, kd[3]];
        // One operand poisoned at a time, as in derivatives (the tangent or cotangent is
        // finite; the image or kernel it meets may not be).
        let (x, k, ct) = (rng.array(&xd), rng.array(&kd), rng.array(&yd));
        let (x, k, ct) = match case % 3 {
            0 => (with_zeros_and_poison(&mut rng, &x, true), with_zeros_and_poison(&mut rng, &k, false), ct),
            1 => (x, with_zeros_and_poison(&mut rng, &k, true), with_zeros_and_poison(&mut rng, &ct, false)),
            _ => (with_zeros_and_poison(&mut rng, &x, true), k, with_zeros_and_poison(&mut rng, &ct, false)),
        };
        let what = format!("case {case}: x {xd:?}, k {kd:?}, {c:?}");
        let mut y = vec![0.0; yd.iter().product()];
        conv_terms(xd, kd, &win, groups, |xi, ki, yi| y[yi] += strong(x.data()[xi], k.data()[ki]));
        assert_close_nonfinite(&conv2d(&x, &k, c), &arr(&yd, y), &format!("conv2d {what}"));
        let mut dx = vec![0.0; xd.iter().product()];
        conv_terms(xd, kd, &win, groups, |xi, ki, yi| dx[xi] += strong(ct.data()[yi], k.data()[ki]));
        let got = conv2d_transpose_input(&ct, &k, c, x.shape());
        assert_close_nonfinite(&got, &arr(&xd, dx), &format!("input {what}"));
        let mut dk = vec![0.0; kd.iter().product()];
        conv_terms(xd, kd, &win, groups, |xi, ki, yi| dk[ki] += strong(x.data()[xi], ct.data()[yi]));
        let got = conv2d_transpose_kernel(&x, &ct, c, k.shape());
        assert_close_nonfinite(&got, &arr(&kd, dk), &format!("kernel {what}"));
    }
    // A NaN pixel whose every term meets a zero cotangent gives an exact 0 kernel
    // gradient; the ordinary adjoint gives NaN.
    let x = arr(&[1, 2, 2, 1], vec![1.0, f64::NAN, 2.0, 3.0]);
    let ct = arr(&[1, 2, 2, 1], vec![1.0, 0.0, 1.0, 1.0]);
    let c = Conv { stride: 1, padding: Padding::Valid, groups: 1, strong: true };
    let ks = Shape::from_dims(&[1, 1, 1, 1]).unwrap();
    assert_eq!(conv2d_transpose_kernel(&x, &ct, c, ks).data(), [6.0]);
    assert!(conv2d_transpose_kernel(&x, &ct, Conv { strong: false, ..c }, ks).data()[0].is_nan());
}
