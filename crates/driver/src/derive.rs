//! `ad derive`: lower a named function of a file for given parameter shapes, without running
//! the file (its top level is shape-checked to learn the shapes of the names it defines).

use crate::session::Session;
use ad_autodiff::Plan;
use ad_ir::lower::spec::Spec;
use ad_ir::lower::value::{Func, LVal};
use ad_ir::lower::{lower_function, Lowered};
use ad_ir::transform::{JacMode, Mode, Request};
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

/// What `ad derive vmap` maps: the batch size, and per parameter the axis that carries the
/// batch (`--in-axes 0,none,1`: JAX's `in_axes`; `None` for a parameter the batch shares).
#[derive(Clone, Debug, PartialEq)]
pub struct VmapOpts {
    pub batch: usize,
    /// One entry per parameter, or one for all; `None` (the option not given) maps every
    /// parameter at axis 0.
    pub in_axes: Option<InAxes>,
}

impl Default for VmapOpts {
    fn default() -> VmapOpts {
        VmapOpts { batch: VMAP_BATCH, in_axes: None }
    }
}

/// `--in-axes`: a comma-separated list of axes (negative ones count from the end) or `none`.
#[derive(Clone, Debug, PartialEq)]
pub struct InAxes(pub Vec<Option<i64>>);

impl std::str::FromStr for InAxes {
    type Err = String;

    fn from_str(s: &str) -> Result<InAxes, String> {
        let axes = s
            .split(',')
            .map(|a| match a.trim() {
                "none" => Ok(None),
                t => t.parse::<i64>().map(Some).map_err(|_| format!("`{t}` is not an axis or `none`")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InAxes(axes))
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
    let names: Vec<String> = session.top_level_names().iter().map(|k| k.to_string()).collect();
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

/// What can be derived from a function: the modes of `ad derive`, of the REPL's program
/// commands and of golden `derive` directives, all of which come through here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeriveMode {
    /// The function itself, lowered for the given shapes.
    Ir,
    Jvp,
    /// The JVP computed by two reverse passes.
    Jvp2,
    Vjp,
    Grad,
    Hvp,
    Hessian,
    /// The Jacobian by the planner's cheapest plan.
    Jacobian,
    /// The function mapped over a batch (`vmap`): every parameter gets a leading batch
    /// axis, of size [`VMAP_BATCH`] unless `ad derive --batch` says otherwise.
    Vmap,
}

/// The batch size of programs `ad derive vmap` prints by default (`--batch` chooses
/// another); the program for any other size differs only in that number.
pub const VMAP_BATCH: usize = 4;

impl DeriveMode {
    pub const ALL: &'static [DeriveMode] = &[
        DeriveMode::Ir,
        DeriveMode::Jvp,
        DeriveMode::Jvp2,
        DeriveMode::Vjp,
        DeriveMode::Grad,
        DeriveMode::Hvp,
        DeriveMode::Hessian,
        DeriveMode::Jacobian,
        DeriveMode::Vmap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeriveMode::Ir => "ir",
            DeriveMode::Jvp => "jvp",
            DeriveMode::Jvp2 => "jvp2",
            DeriveMode::Vjp => "vjp",
            DeriveMode::Grad => "grad",
            DeriveMode::Hvp => "hvp",
            DeriveMode::Hessian => "hessian",
            DeriveMode::Jacobian => "jacobian",
            DeriveMode::Vmap => "vmap",
        }
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        DeriveMode::ALL.iter().map(|m| m.name())
    }

    /// The request behind a mode, for a program whose parameters from `first` on are the
    /// function's (a closure's captured values come first): forward and reverse modes
    /// differentiate with respect to every parameter, gradients and second derivatives with
    /// respect to the first. `None` for `Ir`.
    /// The request of this mode for a program of `n_params` parameters, differentiating
    /// from parameter `first` on (`batch`: the batch size of `vmap`).
    pub fn request(self, n_params: usize, first: usize, batch: usize) -> Option<Request> {
        let all: Vec<usize> = (first..n_params).collect();
        let (mode, wrt) = match self {
            DeriveMode::Ir => return None,
            DeriveMode::Jvp => (Mode::Jvp, all),
            DeriveMode::Jvp2 => (Mode::Jvp2, all),
            DeriveMode::Vjp => (Mode::Vjp, all),
            DeriveMode::Grad => (Mode::Grad { with_value: false }, vec![first]),
            DeriveMode::Hvp => (Mode::Hvp, vec![first]),
            DeriveMode::Hessian => (Mode::Hessian, vec![first]),
            DeriveMode::Jacobian => (Mode::Jacobian(JacMode::Auto), vec![first]),
            DeriveMode::Vmap => (Mode::Vmap(batch), all),
        };
        Some(Request { mode, wrt })
    }
}

impl std::str::FromStr for DeriveMode {
    type Err = String;

    fn from_str(s: &str) -> Result<DeriveMode, String> {
        DeriveMode::ALL.iter().copied().find(|m| m.name() == s).ok_or_else(|| {
            format!(
                "unknown derive mode `{s}`; the modes are: {}",
                DeriveMode::names().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// A function lowered for some shapes and the program derived from it.
pub struct Derivation {
    /// The function as lowered.
    pub primal: Program,
    /// What was derived (`None` for `ir`, where `program` is `primal`).
    pub request: Option<Request>,
    pub program: Program,
    /// For Jacobians: the plan the program carries out.
    pub plan: Option<Plan>,
}

impl Derivation {
    /// The text `ad derive` prints: for Jacobians the plan first, as comments, then the
    /// imports the program needs (when it reads names of files the script does not see),
    /// then the program.
    pub fn text(&self, session: &Session) -> Result<String, Diagnostic> {
        let plan = self.plan.as_ref().map(|p| p.render(&|s| locate(session, s))).unwrap_or_default();
        let program = ad_ir::print_program(&self.program).map_err(|m| Diagnostic::at(self.primal.span, m))?;
        // A function of an imported file reads that file's top-level names: the text
        // imports what it needs to mean the same.
        let notes = session.imports_for(&self.program);
        Ok(plan + &notes + &program)
    }
}

/// Derives from a lowered function whose parameters from `first` on are its arguments.
/// Errors about the function as a whole (a tuple argument to `jacobian`, a result that
/// holds a function) point at its definition, as they do when a script calls it.
pub fn derive_lowered(primal: Program, mode: DeriveMode, first: usize) -> Result<Derivation, Diagnostic> {
    derive_lowered_batch(primal, mode, first, VMAP_BATCH)
}

/// [`derive_lowered`] with the batch size of `vmap` given.
pub fn derive_lowered_batch(
    primal: Program,
    mode: DeriveMode,
    first: usize,
    batch: usize,
) -> Result<Derivation, Diagnostic> {
    let at = primal.span;
    let Some(request) = mode.request(primal.params.len(), first, batch) else {
        return Ok(Derivation { program: primal.clone(), primal, request: None, plan: None });
    };
    if primal.params.len() <= first {
        return Err(Diagnostic::at(at, format!("`{}` has no parameters to differentiate", primal.name)));
    }
    // A Jacobian is planned once: the plan is shown and its program printed.
    let (program, plan) = match request.mode {
        Mode::Jacobian(m) => {
            let planned = ad_autodiff::plan(&primal, first, m).map_err(|e| Diagnostic::at(at, e))?;
            (planned.program, Some(planned.plan))
        }
        _ => (ad_autodiff::derive(&primal, &request).map_err(|e| Diagnostic::at(at, e))?, None),
    };
    Ok(Derivation { primal, request: Some(request), program, plan })
}

/// `ad derive MODE FILE FN`: derives from the function `fname` of the loaded file, for the
/// shapes its annotations and the `--shape` options give (and what `vmap` maps).
pub fn derive_named(
    session: &mut Session,
    fname: &str,
    shapes: &[ShapeOpt],
    mode: DeriveMode,
    vmap: &VmapOpts,
) -> Result<Derivation, Diagnostic> {
    let lowered = lower_named(session, fname, shapes)?;
    let Some(in_axes) = &vmap.in_axes else {
        return derive_lowered_batch(lowered.program, mode, 0, vmap.batch);
    };
    let primal = lowered.program;
    let at = primal.span;
    if mode != DeriveMode::Vmap {
        return Err(Diagnostic::at(at, "`--in-axes` is for `ad derive vmap`"));
    }
    let n = primal.params.len();
    let axes: Vec<Option<i64>> = match in_axes.0.as_slice() {
        [one] => vec![*one; n],
        each if each.len() == n => each.to_vec(),
        each => {
            return Err(Diagnostic::at(
                at,
                format!("`--in-axes` gives {} axes for a function of {n} parameters", each.len()),
            )
            .with_hint("give one axis (or `none`) per parameter, or one for all"))
        }
    };
    let wrt: Vec<usize> = (0..n).filter(|i| axes[*i].is_some()).collect();
    if wrt.is_empty() {
        return Err(Diagnostic::at(
            at,
            "`vmap` needs at least one mapped parameter (all `--in-axes` are `none`)",
        ));
    }
    let request = Request { mode: Mode::Vmap(vmap.batch), wrt };
    let program = ad_autodiff::derive(&primal, &request).map_err(|e| Diagnostic::at(at, e))?;
    let program = batch_axes_in_place(program, &primal, &axes).map_err(|e| Diagnostic::at(at, e))?;
    Ok(Derivation { primal, request: Some(request), program, plan: None })
}

/// A batched program whose mapped parameters take their batch axis where `axes` says
/// (JAX's `in_axes`) instead of first: each such parameter is read through a transpose
/// that moves the batch axis to the front, as the program expects it.
fn batch_axes_in_place(mut p: Program, primal: &Program, axes: &[Option<i64>]) -> Result<Program, String> {
    let mut first_leaf = 0;
    let mut moves = Vec::new();
    for (decl, axis) in primal.params.iter().zip(axes) {
        let leaves = decl.tree.leaves();
        if let Some(axis) = axis {
            for leaf in first_leaf..first_leaf + leaves {
                let v = p.inputs[leaf];
                let s = p.var_shape(v);
                // The batched parameter has one axis more than the function's.
                let rank = s.rank() as i64;
                let k = if *axis < 0 { axis + rank } else { *axis };
                if k < 0 || k >= rank {
                    let name = &decl.name;
                    return Err(format!(
                        "`--in-axes` maps axis {axis} of `{name}`, whose batched shape {s} has {rank} axes"
                    ));
                }
                if k > 0 {
                    moves.push((leaf, k as usize));
                }
            }
        }
        first_leaf += leaves;
    }
    // Each moved parameter gets a new variable with the batch axis in place; its old
    // variable becomes the transpose of the new one, computed first.
    let mut front = Vec::with_capacity(moves.len());
    for (leaf, k) in moves {
        let old = p.inputs[leaf];
        let s = p.var_shape(old);
        let shape = s
            .remove_axis(0)
            .insert_axis(k, s.dim(0))
            .ok_or("internal error: a moved axis changed the rank")?;
        let new = ad_ir::Var(u32::try_from(p.vars.len()).map_err(|_| "the program has too many variables")?);
        let name = p.vars[old.index()].name.take();
        p.vars.push(ad_ir::VarInfo { shape, name });
        p.inputs[leaf] = new;
        let mut perm = vec![k];
        perm.extend((0..s.rank()).filter(|a| *a != k));
        front.push(ad_ir::Eqn {
            out: old,
            prim: ad_ir::Prim::Permute(perm),
            args: [ad_ir::Atom::Var(new)].into_iter().collect(),
            span: p.span,
            extra: Box::default(),
        });
    }
    front.append(&mut p.eqns);
    p.eqns = front;
    ad_ir::verify(&p).map_err(|e| format!("internal error: {e}"))?;
    Ok(p)
}

/// The REPL's program commands (`:jvp f(x)`, `:explain f(x)`, ...): derives from a call of
/// the function value `f` with arguments of the structures of `args`.
pub fn derive_call(
    session: &mut Session,
    f: &LVal,
    args: &[LVal],
    span: ad_syntax::Span,
    arg_spans: &[ad_syntax::Span],
    mode: DeriveMode,
) -> Result<Derivation, Diagnostic> {
    let specs: Vec<Spec> = args.iter().map(Spec::of).collect();
    let leaves: usize = Spec::of(f).leaves() + specs.iter().map(Spec::leaves).sum::<usize>();
    let lowered = lower_function(session, f, &specs, &vec![None; leaves], span, arg_spans)?;
    // A closure's captured values are its first parameter; the call's arguments follow.
    let first = usize::from(Spec::of(f).leaves() > 0);
    // In the REPL the call is what the user wrote: errors point there.
    derive_lowered(lowered.program, mode, first).map_err(|d| Diagnostic::at(span, d.message))
}

/// The plan of a Jacobian as the REPL's `:explain` shows it: plain lines, not comments.
pub fn explain(session: &Session, plan: &Plan) -> String {
    let text = plan.render(&|span| locate(session, span));
    text.lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect::<Vec<_>>().join("\n") + "\n"
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
