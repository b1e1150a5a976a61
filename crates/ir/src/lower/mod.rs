//! Lowering: from AST to values and IR.
//!
//! One lowerer serves three purposes, selected by [`Mode`] and its flags:
//! - **Eager** (`ad run`, the REPL): top-level statements run on concrete arrays; each
//!   primitive goes to [`Host::apply`], each call of a user function to [`Host::call`], which
//!   specialises the function (lowering it in trace mode) and runs the cached program.
//! - **Trace** (specialising a function): the body is lowered into a [`Program`] with array
//!   variables; calls are inlined, constant `for` loops unrolled, and top-level names become
//!   captured inputs.
//! - **Check** (`ad check`): trace mode applied to the top level itself, with abstract
//!   arrays, so that a script is shape-checked without running.
//!
//! Numbers known while lowering ([`LVal::Num`]) are folded, and serve as loop bounds,
//! indices, axes and shapes.

mod axes;
pub mod builtins;
mod call;
mod control;
mod custom;
mod derived;
mod einsum;
mod expr;
pub mod io_effects;
mod reverse_loop;
mod scope;
pub mod spec;
mod statics;
mod stmt;
mod strided;
mod top_loop;
pub mod value;
pub mod vmap;

use crate::array::Array;
use crate::builder::Builder;
use crate::prim::Prim;
pub use crate::program::ScopeId;
use crate::program::{Atom, Capture, ParamDecl, Program, Var};
use crate::shape::Shape;
use ad_syntax::ast::{self, Module};
use ad_syntax::{Diagnostic, FileId, Span};
use spec::Spec;
use std::rc::Rc;
use value::{Arr, Func, LVal, Name};

pub use scope::suggest;

/// The prelude is always the first file a session loads, so its spans are recognisable.
pub const PRELUDE_FILE: FileId = FileId(0);

/// Inline calls nest at most this deep (a runaway higher-order recursion ends here).
const MAX_INLINE_DEPTH: usize = 200;
/// Expressions nest at most this deep while lowering.
const MAX_EXPR_DEPTH: usize = 5000;

pub type Result<T> = std::result::Result<T, Diagnostic>;

/// What lowering needs from the session: top-level names, and at the top level, the
/// interpreter.
///
/// Top-level names live in scopes ([`ScopeId`]): a name written in a file is looked up in
/// that file's scope (`scope(span.file)`), so that a function defined in an imported file
/// reads that file's names wherever it is called from.
pub trait Host {
    /// The scope whose top-level names the text of `file` sees.
    fn scope(&self, file: FileId) -> ScopeId;
    fn global(&self, scope: ScopeId, name: &str) -> Option<LVal>;
    /// Binds a name in `scope` (a name it saw through an import becomes its own).
    fn set_global(&mut self, scope: ScopeId, name: Name, value: LVal);
    /// Every name `scope` sees (for suggestions).
    fn global_names(&self, scope: ScopeId) -> Vec<Name>;
    /// `import "path"` at the top level of `span.file`. `Ok(Some(module))`: the file has
    /// not run in this session; the caller runs its statements (their spans are in a file
    /// of their own, whose scope is new), then calls [`Host::import_done`]. `Ok(None)`: it
    /// ran before, and its names are now in the importer's scope. Errors (a missing file, a
    /// cycle, a syntax error in the file) are located at `span`, or in the imported file.
    fn import(&mut self, _path: &str, span: Span) -> Result<Option<Module>> {
        Err(Diagnostic::at(span, "`import` is not available here"))
    }
    /// The statements of the module [`Host::import`] returned have run (`ok`), or stopped
    /// at an error. When they ran, the names the file bound are brought into the scope of
    /// the importer (the file of `span`).
    fn import_done(&mut self, _span: Span, _ok: bool) {}
    /// Evaluates a primitive on concrete arrays (eager mode).
    fn apply(&mut self, prim: &Prim, args: &[Array], span: Span) -> Result<Array>;
    /// Calls a user function on concrete arguments (eager mode).
    fn call(&mut self, f: &LVal, args: Vec<LVal>, span: Span, arg_spans: &[Span]) -> Result<LVal>;
    /// Calls `f` as [`Host::call`] does, except that lowering does not use the scalar values
    /// of the arguments (a top-level loop's index and carried values, which change from call
    /// to call), and that a function that does not lower gives `None` rather than an error.
    /// So does one that reads any of the top-level names `assigned` (of the scope of
    /// `span`'s file): `f` receives their new values as arguments, but a function it calls
    /// would read the top-level name, which is assigned only when `f` returns. `memo` is
    /// the host's, kept by the caller from one call of the same loop to the next.
    fn call_traced(
        &mut self,
        _f: &LVal,
        _args: Vec<LVal>,
        _assigned: &[Name],
        _span: Span,
        _memo: &mut Option<Box<dyn std::any::Any>>,
    ) -> Option<Result<LVal>> {
        None
    }
    /// Performs an effect at the top level. While checking, only `read_csv` is asked for
    /// (to learn the file's shape).
    fn effect(&mut self, effect: builtins::Effect, span: Span) -> Result<LVal>;
    /// Derives a program (forward, reverse, Hessians...); implemented by `ad-autodiff`.
    fn derive(
        &mut self,
        p: &Program,
        req: &crate::transform::Request,
    ) -> std::result::Result<Program, String>;
    /// The definitions being lowered, innermost last, across every function lowered for
    /// this session at once (a transform lowers the function it differentiates separately,
    /// so `def f(x) = grad(f)(x)` is recursion that only a shared stack can see).
    fn lowering(&mut self) -> &mut Vec<Rc<ast::Def>>;
    /// True once the user asked to stop (Ctrl-C); loops check it.
    fn interrupted(&self) -> bool {
        false
    }
    /// While checking: what `load(path[, name])` would give, from the file's header.
    fn load_shapes(&mut self, path: &str, _name: Option<&str>, span: Span) -> Result<io_effects::FileShapes> {
        Err(Diagnostic::at(span, format!("cannot read `{path}` here")))
    }
    /// A top-level `for` loop of `iterations` iterations starts (eager mode only; loops
    /// inside it report too, and the host shows progress for the outermost).
    fn loop_started(&mut self, _iterations: u64) {}
    /// The loop that started last begins its iteration `done` (counted from 0).
    fn loop_step(&mut self, _done: u64) {}
    /// The loop that started last has ended, normally or not.
    fn loop_ended(&mut self) {}
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Eager,
    Trace,
}

/// A specialised function, ready to run or print.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub program: Program,
    /// The structure of the result, to rebuild values from the program's outputs.
    pub out_spec: Spec,
    /// Scalar inputs whose value the lowering used as a constant: (input index, value). The
    /// program is valid only for calls where those inputs have these values.
    pub static_deps: Vec<(usize, f64)>,
    /// Every top-level name the function read, with the structure it had; the program is
    /// valid only while each name still has that structure.
    pub global_deps: Vec<(ScopeId, Name, Spec)>,
}

pub struct Lowerer<'h> {
    pub(crate) host: &'h mut dyn Host,
    pub(crate) mode: Mode,
    pub(crate) b: Builder,
    /// Local scopes, innermost last. Below them are the top-level names of the host.
    pub(crate) frames: Vec<Vec<(Name, LVal)>>,
    /// Inside a function body: effects, `while` and data-dependent `if` are errors.
    pub(crate) in_function: bool,
    /// Top-level names read inside function bodies become captured inputs (specialising).
    capture_globals: bool,
    captures: Vec<(ScopeId, Name, LVal)>,
    pub(crate) inputs: Vec<Var>,
    pub(crate) static_deps: Vec<(usize, f64)>,
    global_deps: Vec<(ScopeId, Name, Spec)>,
    pub(crate) inline_depth: usize,
    pub(crate) depth: usize,
    /// While checking: the CSV files the script has written so far, with the shape each will
    /// read back as.
    pub(crate) written: Vec<(String, Shape)>,
    /// While checking: the NumPy files the script has saved so far, with their shapes.
    pub(crate) saved: Vec<(String, io_effects::FileShapes)>,
    /// While checking: the files imported (and checked) so far, whose definitions are
    /// checked with the script's.
    pub(crate) imported: Vec<Module>,
    /// Parts of top-level loops' bodies that run as programs: the loop's span and the
    /// part's first statement, and the names passed in, with the function made of the
    /// part (one per part, so its specialisation is found again when the loop runs again
    /// inside an enclosing one).
    pub(crate) bodies: top_loop::PartDefs,
}

impl<'h> Lowerer<'h> {
    fn new(host: &'h mut dyn Host, mode: Mode, capture_globals: bool) -> Lowerer<'h> {
        Lowerer {
            host,
            mode,
            b: Builder::new(),
            frames: Vec::new(),
            in_function: false,
            capture_globals,
            captures: Vec::new(),
            inputs: Vec::new(),
            static_deps: Vec::new(),
            global_deps: Vec::new(),
            inline_depth: 0,
            depth: 0,
            written: Vec::new(),
            saved: Vec::new(),
            imported: Vec::new(),
            bodies: Vec::new(),
        }
    }

    /// A fresh input variable; `known` is its value when the caller showed it.
    fn input(&mut self, shape: Shape, known: Option<f64>, name: Option<Name>) -> LVal {
        let var = self.b.new_var(shape, name);
        let idx = self.inputs.len();
        self.inputs.push(var);
        let known = known.map(|value| value::Known { value, deps: Rc::new(vec![(idx, value)]) });
        LVal::Arr(Arr::Var { var, shape, known })
    }

    /// Input variables shaped like `spec`, with known scalar values taken from `known`.
    fn abstract_value(
        &mut self,
        spec: &Spec,
        known: &mut impl Iterator<Item = Option<f64>>,
        name: Option<Name>,
    ) -> LVal {
        use spec::FuncSpec;
        match spec {
            Spec::Array(s) => {
                let k = known.next().flatten();
                self.input(*s, k, name)
            }
            Spec::Tuple(t) => {
                LVal::Tuple(t.iter().map(|s| self.abstract_value(s, known, None)).collect::<Vec<_>>().into())
            }
            Spec::Func(FuncSpec::Def(d)) => LVal::Func(Rc::new(Func::Def(d.clone()))),
            Spec::Func(FuncSpec::Overloads(ds)) => LVal::Func(Rc::new(Func::Overloads(ds.clone()))),
            Spec::Func(FuncSpec::Builtin(b)) => LVal::Func(Rc::new(Func::Builtin(b))),
            Spec::Func(FuncSpec::Closure(lam, env)) => {
                let env = env
                    .iter()
                    .map(|(n, s)| (n.clone(), self.abstract_value(s, known, Some(n.clone()))))
                    .collect();
                LVal::Func(Rc::new(Func::Closure { lam: lam.clone(), env }))
            }
            Spec::Func(FuncSpec::Transform(mode, f, argnums, tuple)) => {
                let f = self.abstract_value(f, known, None);
                LVal::Func(Rc::new(Func::Transform {
                    mode: *mode,
                    f,
                    argnums: argnums.clone(),
                    tuple: *tuple,
                }))
            }
            Spec::Func(FuncSpec::Vmap(f, axes)) => {
                let f = self.abstract_value(f, known, None);
                LVal::Func(Rc::new(Func::Vmap { f, axes: axes.clone() }))
            }
            Spec::Func(FuncSpec::Custom(kind, f, r)) => {
                let f = self.abstract_value(f, known, None);
                let rules = r.iter().map(|x| self.abstract_value(x, known, None)).collect();
                LVal::Func(Rc::new(Func::Custom { kind: *kind, f, rules }))
            }
            Spec::Str(s) => LVal::Str(s.clone()),
            Spec::None => LVal::None,
        }
    }

    /// The atom for an array-like value, materialising constants in trace mode.
    pub(crate) fn atom(&mut self, v: &LVal, span: Span) -> Result<Atom> {
        match v {
            LVal::Num(x) => Ok(Atom::Lit(*x)),
            LVal::Arr(Arr::Var { var, .. }) => Ok(Atom::Var(*var)),
            LVal::Arr(Arr::Val(a)) => {
                if let (true, Some(x)) = (a.shape().is_scalar(), a.as_scalar()) {
                    return Ok(Atom::Lit(x));
                }
                let prim = Prim::Const(crate::prim::ConstArray(Rc::new(a.clone())));
                Ok(Atom::Var(self.b.push(prim, vec![], a.shape(), span)))
            }
            other => Err(Diagnostic::at(span, format!("expected an array, found {}", other.describe()))),
        }
    }

    /// Flattens a traced result into program outputs.
    fn flatten_output(&mut self, v: &LVal, outs: &mut Vec<Atom>, span: Span) -> Result<Spec> {
        Ok(match v {
            LVal::Num(_) | LVal::Arr(_) => {
                let a = self.atom(v, span)?;
                outs.push(a);
                Spec::of(v)
            }
            LVal::Tuple(t) => {
                let mut specs = Vec::new();
                for x in t.iter() {
                    specs.push(self.flatten_output(x, outs, span)?);
                }
                Spec::Tuple(specs)
            }
            LVal::Func(f) => {
                match &**f {
                    Func::Closure { env, .. } => {
                        for (_, x) in env {
                            self.flatten_output(x, outs, span)?;
                        }
                    }
                    Func::Transform { f, .. } | Func::Vmap { f, .. } => {
                        self.flatten_output(f, outs, span)?;
                    }
                    Func::Custom { f, rules, .. } => {
                        self.flatten_output(f, outs, span)?;
                        for r in rules {
                            self.flatten_output(r, outs, span)?;
                        }
                    }
                    _ => {}
                }
                Spec::of(v)
            }
            LVal::Str(_) | LVal::None => Spec::of(v),
        })
    }

    /// The scope of the top-level names that code written at `span` sees.
    pub(crate) fn scope_at(&self, span: Span) -> ScopeId {
        self.host.scope(span.file)
    }

    /// A top-level name of `scope`, as seen from here. Inside a function being specialised,
    /// arrays become captured inputs (the program refers to them by name and scope).
    pub(crate) fn global(&mut self, scope: ScopeId, name: &str) -> Option<LVal> {
        if !self.capture_globals {
            return self.host.global(scope, name);
        }
        if let Some((_, _, v)) = self.captures.iter().find(|(s, n, _)| *s == scope && &**n == name) {
            return Some(v.clone());
        }
        let v = self.host.global(scope, name)?;
        let spec = Spec::of(&v);
        let name: Name = name.into();
        if !self.global_deps.iter().any(|(s, n, _)| *s == scope && *n == name) {
            self.global_deps.push((scope, name.clone(), spec.clone()));
        }
        if spec.leaves() == 0 {
            return Some(v);
        }
        let mut known = Vec::new();
        spec::known_scalars(&v, &mut known);
        let abs = self.abstract_value(&spec, &mut known.into_iter(), Some(name.clone()));
        self.captures.push((scope, name, abs.clone()));
        Some(abs)
    }

    pub(crate) fn check_interrupt(&self, span: Span) -> Result<()> {
        if self.host.interrupted() {
            Err(Diagnostic::at(span, "interrupted"))
        } else {
            Ok(())
        }
    }

    pub(crate) fn is_check(&self) -> bool {
        self.mode == Mode::Trace && !self.in_function && !self.capture_globals
    }
}

/// Evaluates one expression at the top level (the REPL's commands use it).
pub fn eval_expr(host: &mut dyn Host, e: &ast::Expr) -> Result<LVal> {
    Lowerer::new(host, Mode::Eager, false).expr(e)
}

/// The value an expression would have, with arrays abstracted to their shapes: nothing
/// runs (the REPL's `:type`).
pub fn check_expr(host: &mut dyn Host, e: &ast::Expr) -> Result<LVal> {
    Lowerer::new(host, Mode::Trace, false).expr(e)
}

pub use derived::transform_value as transform;

/// Runs one top-level statement eagerly. Returns the value of an expression statement.
pub fn run_stmt(host: &mut dyn Host, stmt: &ast::Stmt) -> Result<Option<LVal>> {
    let mut lw = Lowerer::new(host, Mode::Eager, false);
    lw.stmt(stmt)
}

/// Shape-checks a module without running it: the top level is traced with abstract arrays,
/// and every `def` whose parameters all have constant shape annotations is lowered.
pub fn check_module(host: &mut dyn Host, module: &Module) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut lw = Lowerer::new(host, Mode::Trace, false);
    for s in &module.stmts {
        if let Err(e) = lw.stmt(s) {
            errors.push(e);
            if !matches!(s.kind, ast::StmtKind::Def(_)) {
                break;
            }
        }
    }
    // Definitions are checked once the whole file is read, so that they may call functions
    // defined after them; those of the files it imported are checked too.
    let imported = std::mem::take(&mut lw.imported);
    for s in imported.iter().chain(std::iter::once(module)).flat_map(|m| &m.stmts) {
        let ast::StmtKind::Def(d) = &s.kind else { continue };
        let dims: Option<Vec<Spec>> = d
            .params
            .iter()
            .map(|p| p.annot.as_ref().and_then(statics::annot_shape).map(Spec::Array))
            .collect();
        if let Some(specs) = dims {
            let f = LVal::Func(Rc::new(Func::Def(d.clone())));
            let known = vec![None; specs.len()];
            let spans: Vec<Span> = d.params.iter().map(|p| p.name.span).collect();
            if let Err(e) = lower_function(lw.host, &f, &specs, &known, d.span, &spans) {
                errors.push(e);
            }
        }
    }
    errors
}

/// Specialises the function value `f` to arguments of structure `args`.
///
/// `known` gives, for every leaf of `f` and then of the arguments, its value if it is a
/// scalar the caller knows; lowering may treat those as constants (and records it in
/// [`Lowered::static_deps`]).
pub fn lower_function(
    host: &mut dyn Host,
    f: &LVal,
    args: &[Spec],
    known: &[Option<f64>],
    span: Span,
    arg_spans: &[Span],
) -> Result<Lowered> {
    if let LVal::Func(func) = f {
        if let Func::Builtin(name) = &**func {
            if builtins::is_effect(name) {
                return Err(Diagnostic::at(
                    span,
                    format!("`{name}` cannot be differentiated or traced: it is an effect, not a function of its arguments"),
                )
                .with_hint("call it at the top level and pass its result in"));
            }
        }
    }
    let mut lw = Lowerer::new(host, Mode::Trace, true);
    let mut known = known.iter().copied();
    let f_spec = Spec::of(f);
    let f_abs = lw.abstract_value(&f_spec, &mut known, None);
    let (fname, pnames): (String, Vec<Name>) = match f {
        LVal::Func(func) => match &**func {
            Func::Def(d) => (d.name.name.to_string(), d.params.iter().map(|p| p.name.name.clone()).collect()),
            Func::Overloads(ds) => match ds.iter().find(|d| d.params.len() == args.len()) {
                Some(d) => (d.name.name.to_string(), d.params.iter().map(|p| p.name.name.clone()).collect()),
                None => (func.name(), vec![]),
            },
            Func::Closure { lam, .. } => {
                ("lambda".into(), lam.params.iter().map(|p| p.name.clone()).collect())
            }
            Func::Builtin(b) => (b.to_string(), vec![]),
            Func::Transform { .. } | Func::Vmap { .. } | Func::Custom { .. } => (func.name(), vec![]),
        },
        _ => ("f".into(), vec![]),
    };
    let mut params = Vec::new();
    if f_spec.leaves() > 0 {
        params.push(ParamDecl { name: "closure".into(), tree: f_spec.tree() });
    }
    let mut arg_vals = Vec::new();
    for (i, s) in args.iter().enumerate() {
        let name: Name = pnames.get(i).cloned().unwrap_or_else(|| format!("arg{i}").into());
        arg_vals.push(lw.abstract_value(s, &mut known, Some(name.clone())));
        params.push(ParamDecl { name, tree: s.tree() });
    }
    let n_params = lw.inputs.len();
    let out = lw.call_value(f_abs, arg_vals, span, arg_spans)?;
    let mut outputs = Vec::new();
    let out_spec = lw.flatten_output(&out, &mut outputs, span)?;
    debug_assert_eq!(
        lw.inputs.len() - n_params,
        lw.captures.iter().map(|(_, _, v)| Spec::of(v).leaves()).sum::<usize>()
    );
    let captures = lw
        .captures
        .iter()
        .map(|(scope, n, v)| Capture { name: n.clone(), tree: Spec::of(v).tree(), scope: *scope })
        .collect();
    let def_span = match f {
        LVal::Func(func) => match &**func {
            Func::Def(d) => d.span,
            Func::Overloads(ds) => ds.first().map(|d| d.span).unwrap_or(span),
            Func::Closure { lam, .. } => lam.span,
            Func::Builtin(_) | Func::Transform { .. } | Func::Vmap { .. } | Func::Custom { .. } => span,
        },
        _ => span,
    };
    let program = Program {
        name: fname,
        vars: lw.b.vars,
        inputs: lw.inputs,
        params,
        captures,
        eqns: lw.b.eqns,
        outputs,
        out_tree: out_spec.tree(),
        span: def_span,
    };
    if cfg!(debug_assertions) {
        if let Err(e) = crate::verify::verify(&program) {
            panic!("internal error: lowering produced an invalid program: {e}");
        }
    }
    Ok(Lowered { program, out_spec, static_deps: lw.static_deps, global_deps: lw.global_deps })
}
