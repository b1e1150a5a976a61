//! Figures written to files through `plotters`: SVG, or PNG (by the extension). Text is
//! laid out with the DejaVu Sans font shipped in `crates/driver/fonts/` (registered once,
//! so no system font is needed; PNG text is drawn with it).

use super::terminal::{colormap, unit, value_range};
use super::{Figure, Series, PALETTE};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Pixels of a saved figure.
pub const SIZE: (u32, u32) = (800, 500);
/// Images are sampled down to at most this many cells a side (an SVG holds one rectangle
/// per cell).
const MAX_CELLS: usize = 160;

static FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

fn register_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err("internal error: the font shipped with AD does not load".into())
    }
}

/// Writes `fig` to `path`, as SVG or PNG by the extension.
pub fn save(fig: &Figure, path: &str) -> Result<(), String> {
    register_font()?;
    let cannot = |e: std::io::Error| format!("cannot write `{path}`: {}", crate::session::io_reason(&e));
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".png") {
        // Find out that the file cannot be written before drawing, with the system's reason.
        std::fs::File::create(path).map_err(cannot)?;
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        draw(&root, fig)?;
        root.present().map_err(|e| format!("cannot write `{path}`: {e}"))
    } else {
        let svg = svg(fig)?;
        std::fs::write(path, svg).map_err(cannot)
    }
}

/// The figure as an SVG document.
pub fn svg(fig: &Figure) -> Result<String, String> {
    register_font()?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw(&root, fig)?;
        root.present().map_err(|e| format!("cannot draw the figure: {e}"))?;
    }
    Ok(text)
}

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("cannot draw the figure: {e}");
    root.fill(&WHITE).map_err(err)?;
    let (x0, x1, mut y0, mut y1) = fig.bounds();
    let image = fig.image();
    if image.is_none() {
        // A little room above and below the data, as plotting libraries leave.
        let pad = (y1 - y0) * 0.04;
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let mut builder = ChartBuilder::on(root);
    builder.margin(16).x_label_area_size(44).y_label_area_size(64);
    if let Some(t) = &fig.title {
        builder.caption(t, ("sans-serif", 26));
    }
    // An image has row 0 at the top.
    let (ya, yb) = if image.is_some() { (y1, y0) } else { (y0, y1) };
    let mut chart = builder.build_cartesian_2d(x0..x1, ya..yb).map_err(err)?;
    let mut mesh = chart.configure_mesh();
    // Tick labels as AD prints numbers: `100`, not `100.0`.
    let tick = |v: &f64| ad_ir::display::fmt_num(*v, 4);
    mesh.x_label_formatter(&tick).y_label_formatter(&tick);
    if image.is_some() {
        mesh.disable_mesh();
    }
    if let Some(l) = &fig.xlabel {
        mesh.x_desc(l);
    }
    if let Some(l) = &fig.ylabel {
        mesh.y_desc(l);
    }
    mesh.label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()
        .map_err(err)?;
    // Points far outside the axes are moved to within one axis length of them: the line
    // keeps its direction, and pixel coordinates stay far from overflowing.
    let (xs, ys) = (x1 - x0, y1 - y0);
    let clip = |(x, y): (f64, f64)| (x.clamp(x0 - xs, x1 + xs), y.clamp(y0 - ys, y1 + ys));
    for (i, s) in fig.series.iter().enumerate() {
        let color = rgb(PALETTE[i % PALETTE.len()]);
        match s {
            Series::Line(points) => {
                for run in super::finite_runs(points) {
                    let run: Vec<(f64, f64)> = run.into_iter().map(clip).collect();
                    if run.len() == 1 {
                        chart
                            .draw_series(std::iter::once(Circle::new(run[0], 2, color.filled())))
                            .map_err(err)?;
                    } else {
                        chart.draw_series(LineSeries::new(run, color.stroke_width(2))).map_err(err)?;
                    }
                }
            }
            Series::Scatter(points) => {
                let finite = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite());
                chart.draw_series(finite.map(|p| Circle::new(clip(p), 3, color.filled()))).map_err(err)?;
            }
            Series::Bars { edges, counts } => {
                let bar = |k: usize| [clip((edges[k], 0.0)), clip((edges[k + 1], counts[k]))];
                let bars = (0..counts.len()).map(|k| Rectangle::new(bar(k), color.mix(0.75).filled()));
                chart.draw_series(bars).map_err(err)?;
                let outlines = (0..counts.len()).map(|k| Rectangle::new(bar(k), WHITE.stroke_width(1)));
                chart.draw_series(outlines).map_err(err)?;
            }
            Series::Image { rows, cols, data } => {
                let (lo, hi) = value_range(data);
                let step = (*rows.max(cols) as f64 / MAX_CELLS as f64).max(1.0);
                let (h, w) = ((*rows as f64 / step).ceil() as usize, (*cols as f64 / step).ceil() as usize);
                let cells = (0..h).flat_map(|i| (0..w).map(move |j| (i, j))).filter_map(|(i, j)| {
                    let (r, c) = (((i as f64) * step) as usize, ((j as f64) * step) as usize);
                    let t = unit(*data.get(r * cols + c)?, lo, hi);
                    if t.is_nan() {
                        return None;
                    }
                    let (top, left) = (i as f64 * step, j as f64 * step);
                    let (bottom, right) = ((top + step).min(*rows as f64), (left + step).min(*cols as f64));
                    Some(Rectangle::new([(left, top), (right, bottom)], rgb(colormap(t)).filled()))
                });
                chart.draw_series(cells).map_err(err)?;
            }
        }
    }
    Ok(())
}
