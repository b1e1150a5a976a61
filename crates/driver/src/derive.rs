//! `ad derive`: lower a named function of a file for given parameter shapes, without running
//! the file (its top level is shape-checked to learn the shapes of the names it defines).

use crate::session::Session;
use ad_ir::lower::spec::Spec;
use ad_ir::lower::value::{Func, LVal};
use ad_ir::lower::{lower_function, Lowered};
use ad_ir::transform::{Mode, Request};
use ad_ir::Program;
use ad_syntax::ast::{Def, Dim};
use ad_syntax::Diagnostic;
use std::collections::HashMap;
use std::rc::Rc;

/// A `--shape NAME=[d, ...]` option: NAME is a parameter or a dimension name. A tuple
/// parameter takes a tuple of shapes: `--shape p=([3], [])`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeOpt {
    pub name: String,
    pub value: ShapeArg,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ShapeArg {
    Shape(Vec<usize>),
    Tuple(Vec<ShapeArg>),
}

impl ShapeArg {
    fn spec(&self) -> Result<Spec, String> {
        match self {
            ShapeArg::Shape(d) => Ok(Spec::Array(ad_ir::prim::checked_shape(d)?)),
            ShapeArg::Tuple(items) => {
                Ok(Spec::Tuple(items.iter().map(|i| i.spec()).collect::<Result<_, _>>()?))
            }
        }
    }

    fn parse(text: &str) -> Result<ShapeArg, String> {
        let t = text.trim();
        if let Some(inner) = t.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let dims = if inner.trim().is_empty() {
                vec![]
            } else {
                inner
                    .split(',')
                    .map(|d| {
                        d.trim().parse::<usize>().map_err(|_| format!("`{}` is not a dimension", d.trim()))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            if dims.len() > 2 {
                return Err("arrays have rank at most 2".into());
            }
            return Ok(ShapeArg::Shape(dims));
        }
        if let Some(inner) = t.strip_prefix('(').and_then(|d| d.strip_suffix(')')) {
            // Split at the commas outside brackets.
            let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '[' | '(' => depth += 1,
                    ']' | ')' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(&inner[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if !inner[start..].trim().is_empty() {
                parts.push(&inner[start..]);
            }
            return Ok(ShapeArg::Tuple(parts.into_iter().map(ShapeArg::parse).collect::<Result<_, _>>()?));
        }
        Err(format!("`{t}` is not a shape; write it as [d, ...] (or a tuple of shapes: ([3], []))"))
    }
}

impl std::str::FromStr for ShapeOpt {
    type Err = String;

    fn from_str(s: &str) -> Result<ShapeOpt, String> {
        let (name, value) =
            s.split_once('=').ok_or("expected NAME=[d, ...], e.g. x=[3] or W=[2,3] or n=[5]")?;
        Ok(ShapeOpt { name: name.trim().to_string(), value: ShapeArg::parse(value)? })
    }
}

/// Loads `text` for deriving: syntax and shape errors are reported; nothing runs.
pub fn load(session: &mut Session, name: &str, text: &str) -> Result<(), Vec<Diagnostic>> {
    let errors = session.check_source(name, text);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The error for a function name that the loaded file does not define, if it does not;
/// there is no code to point at, since the name comes from the command line.
pub fn missing_function(session: &Session, fname: &str) -> Diagnostic {
    let names: Vec<String> = session.globals.keys().map(|k| k.to_string()).collect();
    let d = Diagnostic::error(format!("no function named `{fname}` in this file"));
    match ad_ir::lower::suggest(fname, names.iter().map(|s| s.as_str())) {
        Some(s) => d.with_hint(format!("did you mean `{s}`?")),
        None => d,
    }
}

/// The definition called `fname`, with the argument structures given by its annotations
/// and the `--shape` options.
pub fn signature(
    session: &Session,
    fname: &str,
    shapes: &[ShapeOpt],
) -> Result<(LVal, Vec<Spec>), Diagnostic> {
    let f = session.global_value(fname).cloned().ok_or_else(|| missing_function(session, fname))?;
    let def: Rc<Def> = match &f {
        LVal::Func(func) => match &**func {
            Func::Def(d) => d.clone(),
            Func::Overloads(ds) => {
                let d = Diagnostic::error(format!(
                    "`{fname}` has {} definitions (with {} parameters); derive works on one",
                    ds.len(),
                    ds.iter().map(|d| d.params.len().to_string()).collect::<Vec<_>>().join(", ")
                ));
                return Err(ds.iter().fold(d, |d, def| d.with_label(def.name.span, "defined here")));
            }
            _ => return Err(Diagnostic::error(format!("`{fname}` is not a `def`"))),
        },
        other => return Err(Diagnostic::error(format!("`{fname}` is {}, not a function", other.describe()))),
    };
    let given: HashMap<&str, &ShapeArg> = shapes.iter().map(|s| (s.name.as_str(), &s.value)).collect();
    for s in shapes {
        let is_param = def.params.iter().any(|p| *p.name.name == *s.name);
        let is_dim = def
            .params
            .iter()
            .filter_map(|p| p.annot.as_ref())
            .flat_map(|a| &a.dims)
            .any(|d| matches!(d, Dim::Named(id) if *id.name == *s.name));
        if !is_param && !is_dim {
            return Err(Diagnostic::at(
                def.name.span,
                format!("`--shape {}`: `{fname}` has no parameter or dimension of that name", s.name),
            ));
        }
        if is_dim && !is_param && !matches!(&s.value, ShapeArg::Shape(d) if d.len() == 1) {
            return Err(Diagnostic::error(format!(
                "`--shape {}=[..]`: a dimension takes one number, e.g. {}=[5]",
                s.name, s.name
            )));
        }
    }
    let mut specs = Vec::new();
    for p in &def.params {
        if let Some(v) = given.get(&*p.name.name) {
            specs.push(v.spec().map_err(|m| Diagnostic::at(p.name.span, m))?);
            continue;
        }
        let Some(annot) = &p.annot else {
            return Err(Diagnostic::at(p.name.span, format!("parameter `{}` has no shape", p.name.name))
                .with_hint(format!(
                    "annotate it (`{}: [3]`) or pass `--shape {}=[3]`",
                    p.name.name, p.name.name
                )));
        };
        let mut dims = Vec::new();
        for d in &annot.dims {
            match d {
                Dim::Known(n, _) => dims.push(*n as usize),
                Dim::Named(id) => match given.get(&*id.name) {
                    Some(ShapeArg::Shape(d)) if d.len() == 1 => dims.push(d[0]),
                    _ => {
                        return Err(Diagnostic::at(
                            id.span,
                            format!("the dimension `{}` is not known", id.name),
                        )
                        .with_hint(format!(
                            "pass `--shape {}=[5]` (or give the whole parameter a shape)",
                            id.name
                        )))
                    }
                },
            }
        }
        let shape = ad_ir::prim::checked_shape(&dims).map_err(|m| Diagnostic::at(annot.span, m))?;
        specs.push(Spec::Array(shape));
    }
    Ok((f, specs))
}

/// Lowers `fname` for the shapes its signature and the options give.
pub fn lower_named(session: &mut Session, fname: &str, shapes: &[ShapeOpt]) -> Result<Lowered, Diagnostic> {
    let (f, specs) = signature(session, fname, shapes)?;
    let known = vec![None; specs.iter().map(Spec::leaves).sum()];
    let (span, spans) = match &f {
        LVal::Func(func) => match &**func {
            Func::Def(d) => (d.span, d.params.iter().map(|p| p.name.span).collect()),
            _ => (ad_syntax::Span::DUMMY, vec![]),
        },
        _ => (ad_syntax::Span::DUMMY, vec![]),
    };
    lower_function(session, &f, &specs, &known, span, &spans)
}

/// The modes of `ad derive`.
pub const MODES: &[&str] = &["ir", "jvp", "jvp2", "vjp", "grad", "hvp", "hessian", "jacobian"];

/// The request behind a mode: forward and reverse modes differentiate with respect to every
/// parameter, gradients and second derivatives with respect to the first.
pub fn request(mode: &str, n_params: usize) -> Option<Request> {
    let all: Vec<usize> = (0..n_params).collect();
    let (mode, wrt) = match mode {
        "jvp" => (Mode::Jvp, all),
        "jvp2" => (Mode::Jvp2, all),
        "vjp" => (Mode::Vjp, all),
        "grad" => (Mode::Grad { with_value: false }, vec![0]),
        "hvp" => (Mode::Hvp, vec![0]),
        "hessian" => (Mode::Hessian, vec![0]),
        "jacobian" => (Mode::Jacobian(ad_ir::transform::JacMode::Auto), vec![0]),
        _ => return None,
    };
    Some(Request { mode, wrt })
}

/// The program `ad derive MODE` prints for `fname`.
pub fn derive_program(
    session: &mut Session,
    mode: &str,
    fname: &str,
    shapes: &[ShapeOpt],
) -> Result<Program, Diagnostic> {
    let lowered = lower_named(session, fname, shapes)?;
    derive_from(lowered.program, mode, fname)
}

/// The program `mode` derives from the lowered function `p`.
fn derive_from(p: Program, mode: &str, fname: &str) -> Result<Program, Diagnostic> {
    if mode == "ir" {
        return Ok(p);
    }
    let req = request(mode, p.params.len()).ok_or_else(|| {
        Diagnostic::error(format!("unknown derive mode `{mode}`; the modes are: {}", MODES.join(", ")))
    })?;
    if p.params.is_empty() {
        return Err(Diagnostic::at(p.span, format!("`{fname}` has no parameters to differentiate")));
    }
    ad_autodiff::derive(&p, &req).map_err(|m| Diagnostic::at(p.span, m))
}

/// The text `ad derive MODE` prints for `fname`. For `jacobian`, the plan comes first, as
/// comments.
pub fn derive(
    session: &mut Session,
    mode: &str,
    fname: &str,
    shapes: &[ShapeOpt],
) -> Result<String, Diagnostic> {
    let lowered = lower_named(session, fname, shapes)?;
    // Errors about the function as a whole (a tuple argument to `jacobian`, a result that
    // holds a function) point at its definition, as they do when a script calls it.
    let at = lowered.program.span;
    // A Jacobian is planned once: the plan is shown and its program printed.
    let (plan, program) = if mode == "jacobian" {
        let planned = ad_autodiff::plan(&lowered.program, 0, ad_ir::transform::JacMode::Auto)
            .map_err(|m| Diagnostic::at(at, m))?;
        (planned.plan.render(&|s| locate(session, s)), planned.program)
    } else {
        (String::new(), derive_from(lowered.program, mode, fname)?)
    };
    Ok(plan + &ad_ir::print_program(&program).map_err(|m| Diagnostic::at(at, m))?)
}

/// `line N` for a span in a file the session knows.
pub fn locate(session: &Session, span: ad_syntax::Span) -> Option<String> {
    if span.is_dummy() || session.sources.get(span.file).is_none() {
        return None;
    }
    let (line, _) = session.sources.line_col(span.file, span.start as usize);
    // Lines of REPL entries and the prelude mean little to a reader; files' lines do.
    (!session.sources.name(span.file).starts_with('<')).then(|| format!("line {line}"))
}
