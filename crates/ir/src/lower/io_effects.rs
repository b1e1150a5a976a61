//! The effects of plotting (`plot`, `scatter`, `hist`, `imshow`, `title`, `xlabel`,
//! `ylabel`, `show`, `savefig`) and of NumPy files (`load`, `save`): their arguments are
//! checked here, while lowering, so that `ad check` finds a misuse without running
//! anything; the session performs them. While checking, `load` gives arrays of the shapes
//! the file's header declares (or that the script saved there).

use super::builtins::{arity, Effect};
use super::value::LVal;
use super::{Lowerer, Mode, Result};
use crate::shape::Shape;
use ad_syntax::{Diagnostic, Span};

/// The plotting builtins.
pub const PLOT_NAMES: &[&str] =
    &["plot", "scatter", "hist", "imshow", "title", "xlabel", "ylabel", "show", "savefig"];

/// The NumPy-file builtins.
pub const FILE_NAMES: &[&str] = &["load", "save"];

/// Bins of `hist` when none are given (as NumPy and Matplotlib).
pub const DEFAULT_BINS: usize = 10;
/// At most this many bins.
const MAX_BINS: usize = 10_000;

/// One plotting call, its arguments checked.
#[derive(Debug, Clone)]
pub enum PlotCall {
    /// `plot(y)` or `plot(x, y)`: a line; a matrix `y` gives one line per column.
    Line {
        x: Option<LVal>,
        y: LVal,
    },
    /// `scatter(x, y)`: points.
    Scatter {
        x: LVal,
        y: LVal,
    },
    /// `hist(x, bins)`: the values of `x` (any shape) counted in `bins` equal bins.
    Hist {
        x: LVal,
        bins: usize,
    },
    /// `imshow(A)`: a matrix as an image (row 0 at the top).
    Image(LVal),
    Title(String),
    XLabel(String),
    YLabel(String),
    /// `show()`: draw the figure on the terminal, if there is one.
    Show,
    /// `savefig(path)`: write the figure as SVG or PNG (by the extension).
    Save(String),
}

/// What a NumPy file holds, as lowering needs to know it while checking: one array
/// (`.npy`, or one member of an `.npz`), or the arrays of an `.npz` in archive order.
#[derive(Debug, Clone, PartialEq)]
pub enum FileShapes {
    Array(Shape),
    Tuple(Vec<Shape>),
}

/// The kind of a NumPy file, from its name: `.npy` or `.npz` (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpKind {
    Npy,
    Npz,
}

pub fn np_kind(path: &str) -> Option<NpKind> {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".npy") {
        Some(NpKind::Npy)
    } else if lower.ends_with(".npz") {
        Some(NpKind::Npz)
    } else {
        None
    }
}

/// The image format `savefig` writes for a file name: `svg` or `png` (any case).
pub fn figure_format(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".svg") {
        Some("svg")
    } else if lower.ends_with(".png") {
        Some("png")
    } else {
        None
    }
}

pub fn is_io_effect(name: &str) -> bool {
    PLOT_NAMES.contains(&name) || FILE_NAMES.contains(&name)
}

fn string_arg(name: &str, v: &LVal, what: &str, span: Span) -> Result<String> {
    match v {
        LVal::Str(s) => Ok(s.to_string()),
        other => {
            Err(Diagnostic::at(span, format!("`{name}` takes {what} (a string), found {}", other.describe())))
        }
    }
}

/// Checks a plotting or NumPy-file call and performs it (eager mode) or gives its result's
/// shape (checking).
pub(super) fn effect(
    lw: &mut Lowerer,
    name: &'static str,
    args: Vec<LVal>,
    span: Span,
    spans: &[Span],
) -> Result<LVal> {
    let at = |i: usize| spans.get(i).copied().unwrap_or(span);
    let e = match name {
        "load" => {
            arity(name, &args, &[1, 2], span)?;
            let path = string_arg(name, &args[0], "a file name", at(0))?;
            if np_kind(&path).is_none() {
                return Err(Diagnostic::at(
                    at(0),
                    format!("`load` reads NumPy files (.npy or .npz), not `{path}`"),
                )
                .with_hint("`read_csv` reads CSV files"));
            }
            let member = match args.get(1) {
                Some(v) => Some(string_arg(name, v, "the name of an array", at(1))?),
                None => None,
            };
            if member.is_some() && np_kind(&path) == Some(NpKind::Npy) {
                return Err(Diagnostic::at(at(1), "an .npy file holds one array: `load(path)` reads it"));
            }
            Effect::Load { path, name: member }
        }
        "save" => {
            arity(name, &args, &[2], span)?;
            let path = string_arg(name, &args[0], "a file name", at(0))?;
            let kind = np_kind(&path).ok_or_else(|| {
                Diagnostic::at(at(0), format!("`save` writes NumPy files (.npy or .npz), not `{path}`"))
                    .with_hint("`write_csv` writes CSV files")
            })?;
            let ok = match (&args[1], kind) {
                (LVal::Tuple(items), NpKind::Npz) => items.iter().all(|x| lw.shape_of(x).is_some()),
                (x, _) => lw.shape_of(x).is_some(),
            };
            if !ok {
                let what = match kind {
                    NpKind::Npy => "an array",
                    NpKind::Npz => "an array or a tuple of arrays",
                };
                return Err(Diagnostic::at(
                    at(1),
                    format!("`save` writes {what} here, found {}", args[1].describe()),
                ));
            }
            Effect::Save(path, args[1].clone())
        }
        _ => Effect::Plot(plot_call(lw, name, &args, span, &at)?),
    };
    if lw.mode == Mode::Eager {
        return lw.host.effect(e, span);
    }
    // Checking: nothing runs; `load` has the shapes its file declares.
    match e {
        Effect::Load { path, name } => {
            let saved = lw.saved.iter().rev().find(|(p, _)| *p == path).map(|(_, s)| s.clone());
            let shapes = match (saved, &name) {
                (Some(FileShapes::Tuple(shapes)), Some(member)) => {
                    let i = member.strip_prefix("arr_").and_then(|i| i.parse::<usize>().ok());
                    match i.and_then(|i| shapes.get(i)) {
                        Some(s) => FileShapes::Array(*s),
                        None => {
                            return Err(Diagnostic::at(
                                at(1),
                                format!(
                                    "`{path}` has no array named `{member}`: the script saved {}",
                                    saved_names(shapes.len())
                                ),
                            ))
                        }
                    }
                }
                (Some(s), _) => s,
                (None, _) => lw.host.load_shapes(&path, name.as_deref(), span)?,
            };
            Ok(match shapes {
                FileShapes::Array(s) => lw.unknown_array(s),
                FileShapes::Tuple(ss) => {
                    LVal::Tuple(ss.into_iter().map(|s| lw.unknown_array(s)).collect::<Vec<_>>().into())
                }
            })
        }
        Effect::Save(path, v) => {
            let shapes = match (&v, np_kind(&path)) {
                (LVal::Tuple(items), _) => {
                    FileShapes::Tuple(items.iter().map(|x| lw.shape_of(x).unwrap_or_default()).collect())
                }
                (x, Some(NpKind::Npz)) => FileShapes::Tuple(vec![lw.shape_of(x).unwrap_or_default()]),
                (x, _) => FileShapes::Array(lw.shape_of(x).unwrap_or_default()),
            };
            lw.saved.push((path, shapes));
            Ok(LVal::unit())
        }
        _ => Ok(LVal::unit()),
    }
}

fn saved_names(n: usize) -> String {
    match n {
        0 => "no arrays".into(),
        1 => "`arr_0`".into(),
        n => format!("`arr_0` to `arr_{}`", n - 1),
    }
}

fn plot_call(
    lw: &mut Lowerer,
    name: &'static str,
    args: &[LVal],
    span: Span,
    at: &dyn Fn(usize) -> Span,
) -> Result<PlotCall> {
    let array = |lw: &Lowerer, i: usize| -> Result<Shape> {
        lw.shape_of(&args[i]).ok_or_else(|| {
            Diagnostic::at(at(i), format!("`{name}` plots arrays, found {}", args[i].describe()))
        })
    };
    let points = |s: Shape, what: &str, i: usize| -> Result<usize> {
        match s.dims() {
            [n] => Ok(*n),
            _ => Err(Diagnostic::at(at(i), format!("{what} of `{name}` must be a vector, found shape {s}"))),
        }
    };
    Ok(match name {
        "plot" => {
            arity(name, args, &[1, 2], span)?;
            let iy = args.len() - 1;
            let y = array(lw, iy)?;
            let rows = match y.dims() {
                [n] | [n, _] => *n,
                _ => {
                    return Err(Diagnostic::at(
                        at(iy),
                        format!("`plot` draws a vector, or a matrix as one line per column; found shape {y}"),
                    ))
                }
            };
            let x = if args.len() == 2 {
                let n = points(array(lw, 0)?, "the x values", 0)?;
                if n != rows {
                    return Err(Diagnostic::at(
                        span,
                        format!("`plot` has {} but {} y values", crate::words::count(n, "x value"), rows),
                    ));
                }
                Some(args[0].clone())
            } else {
                None
            };
            PlotCall::Line { x, y: args[iy].clone() }
        }
        "scatter" => {
            arity(name, args, &[2], span)?;
            let n = points(array(lw, 0)?, "the x values", 0)?;
            let m = points(array(lw, 1)?, "the y values", 1)?;
            if n != m {
                return Err(Diagnostic::at(
                    span,
                    format!("`scatter` has {} but {} y values", crate::words::count(n, "x value"), m),
                ));
            }
            PlotCall::Scatter { x: args[0].clone(), y: args[1].clone() }
        }
        "hist" => {
            arity(name, args, &[1, 2], span)?;
            array(lw, 0)?;
            let bins = match args.get(1) {
                Some(b) => lw.static_count(b, "the number of bins", at(1))?,
                None => DEFAULT_BINS,
            };
            if bins == 0 || bins > MAX_BINS {
                return Err(Diagnostic::at(at(1), format!("`hist` takes 1 to {MAX_BINS} bins, not {bins}")));
            }
            PlotCall::Hist { x: args[0].clone(), bins }
        }
        "imshow" => {
            arity(name, args, &[1], span)?;
            let s = array(lw, 0)?;
            if s.rank() != 2 {
                return Err(Diagnostic::at(at(0), format!("`imshow` draws a matrix, found shape {s}")));
            }
            PlotCall::Image(args[0].clone())
        }
        "title" | "xlabel" | "ylabel" => {
            arity(name, args, &[1], span)?;
            let s = string_arg(name, &args[0], "a label", at(0))?;
            match name {
                "title" => PlotCall::Title(s),
                "xlabel" => PlotCall::XLabel(s),
                _ => PlotCall::YLabel(s),
            }
        }
        "show" => {
            arity(name, args, &[0], span)?;
            PlotCall::Show
        }
        _ => {
            arity(name, args, &[1], span)?;
            let path = string_arg(name, &args[0], "a file name", at(0))?;
            if figure_format(&path).is_none() {
                return Err(Diagnostic::at(
                    at(0),
                    format!("`savefig` writes .svg or .png files (by the extension), not `{path}`"),
                ));
            }
            PlotCall::Save(path)
        }
    })
}
