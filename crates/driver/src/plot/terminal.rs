//! Figures drawn on a terminal: lines, points and histograms in Unicode braille through
//! `textplots` (one colour per series when colour is on), images as coloured half blocks
//! (or shades of grey without colour).

use super::{Figure, Series, PALETTE};
use textplots::{Chart, ColorPlot, LabelBuilder, LabelFormat, Plot, Shape};

/// The drawing area: columns of braille characters (2 dots each) and rows (4 dots each).
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub cols: u32,
    pub rows: u32,
}

impl Default for Size {
    fn default() -> Size {
        Size { cols: 60, rows: 15 }
    }
}

impl Size {
    /// A size for a terminal `width` columns wide, leaving room for the axis labels.
    pub fn for_width(width: usize) -> Size {
        let cols = (width.saturating_sub(14) as u32).clamp(20, 100);
        Size { cols, rows: 15 }
    }
}

/// Tick labels: up to 4 significant digits, as AD prints numbers.
fn tick(v: f32) -> String {
    ad_ir::display::fmt_num(v as f64, 4)
}

fn centred(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{}{text}\n", " ".repeat(width.saturating_sub(n) / 2))
}

/// The figure as text for a terminal. With `color`, series are coloured with ANSI escapes
/// (textplots colours only when standard output is a terminal).
pub fn render(fig: &Figure, size: Size, color: bool) -> String {
    let width = size.cols as usize;
    let mut out = String::new();
    if let Some(t) = &fig.title {
        out.push_str(&centred(t, width));
    }
    if let Some(l) = &fig.ylabel {
        out.push_str(l);
        out.push('\n');
    }
    match fig.image() {
        Some((rows, cols, data)) => out.push_str(&image(rows, cols, data, size, color)),
        None => out.push_str(&chart(fig, size, color)),
    }
    if let Some(l) = &fig.xlabel {
        out.push_str(&centred(l, width));
    }
    out
}

/// The finite runs of a line, as `f32` points.
fn runs(points: &[(f64, f64)]) -> Vec<Vec<(f32, f32)>> {
    super::finite_runs(points)
        .into_iter()
        .map(|r| r.into_iter().map(|(x, y)| (x as f32, y as f32)).collect())
        .collect()
}

type Points = Vec<(f32, f32)>;

fn chart(fig: &Figure, size: Size, color: bool) -> String {
    let (x0, x1, y0, y1) = fig.bounds();
    // Every series' points, kept alive while the chart borrows them: (points, kind,
    // colour).
    let mut data: Vec<(Points, u8, usize)> = Vec::new();
    for (i, s) in fig.series.iter().enumerate() {
        match s {
            Series::Line(p) => data.extend(runs(p).into_iter().map(|r| (r, 0, i))),
            Series::Scatter(p) => data.extend(runs(p).into_iter().map(|r| (r, 1, i))),
            Series::Bars { edges, counts } => {
                // textplots draws the bar between two points at the second one's height.
                let mut pts = vec![(edges[0] as f32, counts.first().copied().unwrap_or(0.0) as f32)];
                pts.extend(counts.iter().enumerate().map(|(k, c)| (edges[k + 1] as f32, *c as f32)));
                data.push((pts, 2, i));
            }
            Series::Image { .. } => {}
        }
    }
    let shapes: Vec<(Shape, usize)> = data
        .iter()
        .map(|(p, kind, i)| {
            let shape = match kind {
                0 if p.len() == 1 => Shape::Points(p),
                0 => Shape::Lines(p),
                1 => Shape::Points(p),
                _ => Shape::Bars(p),
            };
            (shape, *i)
        })
        .collect();
    let mut chart =
        Chart::new_with_y_range(size.cols * 2, size.rows * 4, x0 as f32, x1 as f32, y0 as f32, y1 as f32);
    let mut c: &mut Chart = chart.x_label_format(LabelFormat::Custom(Box::new(tick)));
    c = c.y_label_format(LabelFormat::Custom(Box::new(tick)));
    for (shape, i) in &shapes {
        c = if color {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            c.linecolorplot(shape, rgb::RGB8 { r, g, b })
        } else {
            c.lineplot(shape)
        };
    }
    c.axis();
    c.figures();
    format!("{c}")
}

/// Viridis, by five of its colours and linear interpolation between them.
pub fn colormap(t: f64) -> (u8, u8, u8) {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (STOPS.len() - 1) as f64;
    let k = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The smallest and largest finite values, for colour scales.
pub fn value_range(data: &[f64]) -> (f64, f64) {
    let (lo, hi) = data
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if lo <= hi {
        (lo, hi)
    } else {
        (0.0, 0.0)
    }
}

/// Where a value falls between `lo` and `hi`, from 0 to 1 (NaN for a non-finite value).
pub fn unit(v: f64, lo: f64, hi: f64) -> f64 {
    if !v.is_finite() {
        f64::NAN
    } else if hi > lo {
        (v - lo) / (hi - lo)
    } else {
        0.5
    }
}

/// A matrix as text. With colour, each character shows two pixels (upper and lower half
/// block); without, each pixel is two characters of a shade. Large images are sampled.
fn image(rows: usize, cols: usize, data: &[f64], size: Size, color: bool) -> String {
    let (lo, hi) = value_range(data);
    // Pixels available: with colour a character is two pixels, one above the other;
    // without, a pixel is two characters side by side. Images may be twice as tall as
    // charts.
    let (max_w, max_h) = if color {
        (size.cols as usize, size.rows as usize * 4)
    } else {
        (size.cols as usize / 2, size.rows as usize * 2)
    };
    // Source pixels per drawn pixel: large images are sampled, small ones enlarged by a
    // whole factor (at most 4).
    let fit = (cols as f64 / max_w as f64).max(rows as f64 / max_h as f64);
    let step = if fit >= 1.0 { fit } else { 1.0 / (1.0 / fit).floor().clamp(1.0, 4.0) };
    let (w, h) =
        (((cols as f64 / step).round() as usize).max(1), ((rows as f64 / step).round() as usize).max(1));
    let pixel = |i: usize, j: usize| -> f64 {
        let (r, c) = (((i as f64) * step) as usize, ((j as f64) * step) as usize);
        if rows == 0 || cols == 0 {
            return f64::NAN;
        }
        unit(data[r.min(rows - 1) * cols + c.min(cols - 1)], lo, hi)
    };
    let mut out = String::new();
    if color {
        for i in (0..h).step_by(2) {
            for j in 0..w {
                let top = colormap(pixel(i, j));
                let bottom = if i + 1 < h { Some(colormap(pixel(i + 1, j))) } else { None };
                out.push_str(&format!("\x1b[38;2;{};{};{}m", top.0, top.1, top.2));
                match bottom {
                    Some(b) => out.push_str(&format!("\x1b[48;2;{};{};{}m▀", b.0, b.1, b.2)),
                    None => out.push_str("\x1b[49m▀"),
                }
            }
            out.push_str("\x1b[0m\n");
        }
    } else {
        const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];
        for i in 0..h {
            for j in 0..w {
                let t = pixel(i, j);
                let c = if t.is_nan() { ' ' } else { SHADES[((t * 4.0).round() as usize).min(4)] };
                out.push(c);
                out.push(c);
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "{rows} × {cols}, values from {} to {}\n",
        ad_ir::display::fmt_num(lo, 4),
        ad_ir::display::fmt_num(hi, 4)
    ));
    out
}
