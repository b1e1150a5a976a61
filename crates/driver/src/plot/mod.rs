//! Figures: the plotting calls of a script collect series into the current figure until
//! `show()` or `savefig(path)` completes it. A completed figure is drawn on the terminal
//! (`terminal.rs`, when the output is one) or written as SVG or PNG (`files.rs`).
//!
//! `show()` and `savefig` with no new series since the last completed figure use that
//! figure again, so `savefig("a.svg"); show()` saves and shows the same plot (and so does
//! `show(); savefig("a.svg")`).

pub mod files;
pub mod terminal;

use crate::Session;
use ad_ir::lower::io_effects::PlotCall;
use ad_ir::lower::spec::flatten;
use ad_ir::lower::value::LVal;
use ad_ir::Array;

/// A terminal that figures are drawn on: its size, and whether to colour.
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    pub color: bool,
    pub size: terminal::Size,
}

impl Screen {
    /// Standard output's terminal: its width, and colour unless `NO_COLOR` is set or
    /// `TERM` is `dumb`.
    pub fn stdout() -> Screen {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let color = std::env::var_os("NO_COLOR").is_none() && !dumb;
        let size = match console::Term::stdout().size_checked() {
            Some((_, cols)) => terminal::Size::for_width(cols as usize),
            None => terminal::Size::default(),
        };
        Screen { color, size }
    }
}

/// Performs a plotting call for the session.
pub fn perform(s: &mut Session, call: PlotCall) -> Result<(), String> {
    match call {
        PlotCall::Show => {
            show(s);
            Ok(())
        }
        PlotCall::Save(path) => {
            let fig = s
                .figures
                .complete()
                .ok_or_else(|| format!("there is no figure to save in `{path}`: plot something first"))?;
            files::save(fig, &path)
        }
        call => s.figures.add(call),
    }
}

/// Completes the current figure and draws it, when the output is a terminal.
pub fn show(s: &mut Session) {
    let screen = s.screen;
    let text = match (s.figures.complete(), screen) {
        (Some(fig), Some(screen)) => terminal::render(fig, screen.size, screen.color),
        _ => return,
    };
    s.write_out(&text);
}

/// One series of a figure, in data coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Series {
    /// Points joined by lines; a non-finite point breaks the line.
    Line(Vec<(f64, f64)>),
    /// Points.
    Scatter(Vec<(f64, f64)>),
    /// A histogram: `counts[k]` values fell in `[edges[k], edges[k + 1])` (the last bin
    /// includes its right edge, as NumPy's).
    Bars { edges: Vec<f64>, counts: Vec<f64> },
    /// A matrix shown as an image, row 0 at the top.
    Image { rows: usize, cols: usize, data: Vec<f64> },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figure {
    pub series: Vec<Series>,
    pub title: Option<String>,
    pub xlabel: Option<String>,
    pub ylabel: Option<String>,
}

/// The largest magnitude an axis reaches.
const LIMIT: f64 = 1e300;

/// The colours of successive series (Matplotlib's "tab10").
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

impl Figure {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.title.is_none() && self.xlabel.is_none() && self.ylabel.is_none()
    }

    /// The image this figure shows, if it is one.
    pub fn image(&self) -> Option<(usize, usize, &[f64])> {
        self.series.iter().find_map(|s| match s {
            Series::Image { rows, cols, data } => Some((*rows, *cols, data.as_slice())),
            _ => None,
        })
    }

    /// The data range `(xmin, xmax, ymin, ymax)` of the series, over finite values; a
    /// histogram's bars start at 0. Empty or degenerate ranges are widened so that every
    /// axis has a length.
    pub fn bounds(&self) -> (f64, f64, f64, f64) {
        let (mut x0, mut x1, mut y0, mut y1) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        let mut add = |x: f64, y: f64| {
            if x.is_finite() && y.is_finite() {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        };
        for s in &self.series {
            match s {
                Series::Line(p) | Series::Scatter(p) => p.iter().for_each(|&(x, y)| add(x, y)),
                Series::Bars { edges, counts } => {
                    for (k, c) in counts.iter().enumerate() {
                        add(edges[k], 0.0);
                        add(edges[k + 1], *c);
                    }
                }
                Series::Image { rows, cols, .. } => {
                    add(0.0, 0.0);
                    add(*cols as f64, *rows as f64);
                }
            }
        }
        let widen = |a: f64, b: f64| -> (f64, f64) {
            if a > b || a.is_nan() || b.is_nan() {
                (0.0, 1.0)
            } else if a == b {
                let d = if a == 0.0 { 1.0 } else { a.abs() * 0.1 };
                (a - d, b + d)
            } else {
                (a, b)
            }
        };
        // Axes span at most ±1e300, so that their length is finite (plotting libraries
        // loop or fail on an infinite one); values past that are drawn off the edge.
        let clamp = |(a, b): (f64, f64)| (a.clamp(-LIMIT, LIMIT), b.clamp(-LIMIT, LIMIT));
        let (x0, x1) = clamp(widen(x0, x1));
        let (y0, y1) = clamp(widen(y0, y1));
        (x0, x1, y0, y1)
    }
}

/// The figure being built and the one completed last.
#[derive(Default)]
pub struct Figures {
    current: Figure,
    last: Option<Figure>,
}

fn values(v: &LVal) -> Array {
    let mut leaves = Vec::new();
    flatten(v, &mut leaves);
    leaves.into_iter().next().unwrap_or_else(|| Array::scalar(f64::NAN))
}

impl Figures {
    /// True when the current figure has series or labels that were neither shown nor saved.
    pub fn pending(&self) -> bool {
        !self.current.is_empty()
    }

    /// Completes the current figure, or gives the last completed one again when nothing was
    /// plotted since.
    pub fn complete(&mut self) -> Option<&Figure> {
        if !self.current.is_empty() {
            self.last = Some(std::mem::take(&mut self.current));
        }
        self.last.as_ref()
    }

    /// Adds a series or a label to the current figure (calls other than `show` and
    /// `savefig`). An image is a figure of its own.
    pub fn add(&mut self, call: PlotCall) -> Result<(), String> {
        let fig = &mut self.current;
        let has_image = fig.image().is_some();
        let is_image = matches!(call, PlotCall::Image(_));
        let adds_series = matches!(
            call,
            PlotCall::Line { .. } | PlotCall::Scatter { .. } | PlotCall::Hist { .. } | PlotCall::Image(_)
        );
        if adds_series && (has_image || (is_image && !fig.series.is_empty())) {
            return Err(
                "an image is a figure of its own: call `show()` or `savefig(path)` before plotting more"
                    .into(),
            );
        }
        match call {
            PlotCall::Line { x, y } => {
                let y = values(&y);
                let (n, k) = match y.shape().dims() {
                    [n, k] => (*n, *k),
                    [n] => (*n, 1),
                    _ => (1, 1),
                };
                let xs: Vec<f64> = match &x {
                    Some(x) => values(x).data().to_vec(),
                    None => (0..n).map(|i| i as f64).collect(),
                };
                for j in 0..k {
                    let pts = (0..n).map(|i| (xs[i], y.data()[i * k + j])).collect();
                    fig.series.push(Series::Line(pts));
                }
            }
            PlotCall::Scatter { x, y } => {
                let (x, y) = (values(&x), values(&y));
                fig.series
                    .push(Series::Scatter(x.data().iter().copied().zip(y.data().iter().copied()).collect()));
            }
            PlotCall::Hist { x, bins } => {
                let (edges, counts) = histogram(values(&x).data(), bins);
                fig.series.push(Series::Bars { edges, counts });
            }
            PlotCall::Image(a) => {
                let a = values(&a);
                let (rows, cols) = match a.shape().dims() {
                    [m, n] => (*m, *n),
                    _ => (1, a.shape().size()),
                };
                fig.series.push(Series::Image { rows, cols, data: a.data().to_vec() });
            }
            PlotCall::Title(s) => fig.title = Some(s),
            PlotCall::XLabel(s) => fig.xlabel = Some(s),
            PlotCall::YLabel(s) => fig.ylabel = Some(s),
            PlotCall::Show | PlotCall::Save(_) => {}
        }
        Ok(())
    }
}

/// The finite runs of a line: a NaN or an infinity breaks it.
pub fn finite_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            if let Some(run) = out.last_mut() {
                run.push((x, y));
            }
        } else if out.last().is_some_and(|r| !r.is_empty()) {
            out.push(Vec::new());
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// NumPy's `histogram(x, bins)`: `bins` equal bins between the smallest and the largest
/// finite value (a constant gives the bins around it, ±0.5), the last bin closed.
pub fn histogram(data: &[f64], bins: usize) -> (Vec<f64>, Vec<f64>) {
    let finite = data.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|k| if k == bins { hi } else { lo + width * k as f64 }).collect();
    let mut counts = vec![0.0; bins];
    for v in data.iter().copied().filter(|v| v.is_finite()) {
        let k = (((v - lo) / width) as usize).min(bins - 1);
        counts[k] += 1.0;
    }
    (edges, counts)
}
