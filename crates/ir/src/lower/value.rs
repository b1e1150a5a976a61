//! Values as lowering sees them. The same type serves the top level (where arrays are
//! concrete) and function bodies being traced into IR (where arrays are variables).

use crate::array::Array;
use crate::display::{fmt_array, fmt_num};
use crate::program::Var;
use crate::shape::Shape;
use ad_syntax::ast;
use std::rc::Rc;

pub type Name = Rc<str>;

#[derive(Clone, Debug)]
pub enum LVal {
    /// A number known while lowering (a literal, a loop counter, a shape): constant-folded,
    /// usable as a loop bound, index or axis.
    Num(f64),
    Arr(Arr),
    Tuple(Rc<[LVal]>),
    Func(Rc<Func>),
    Str(Rc<str>),
    /// `none`: "no axis" in `vmap`'s axis arguments.
    None,
}

/// The value of a traced scalar, and the inputs (position, value) it was computed from.
/// Using it as a constant makes the specialisation depend on those inputs' values.
#[derive(Clone, Debug)]
pub struct Known {
    pub value: f64,
    pub deps: Rc<Vec<(usize, f64)>>,
}

#[derive(Clone, Debug)]
pub enum Arr {
    /// A variable of the program being built. `known` is its value when it is a scalar
    /// computed from inputs whose values the lowering was shown (see `Lowered::static_deps`).
    Var { var: Var, shape: Shape, known: Option<Known> },
    /// A concrete array (top-level evaluation).
    Val(Array),
}

impl Arr {
    pub fn shape(&self) -> Shape {
        match self {
            Arr::Var { shape, .. } => *shape,
            Arr::Val(a) => a.shape(),
        }
    }
}

#[derive(Debug)]
pub enum Func {
    /// A top-level `def`. Top-level names in its body are looked up when it is lowered.
    Def(Rc<ast::Def>),
    /// Several `def`s of one name in one file, told apart by their number of parameters.
    Overloads(Vec<Rc<ast::Def>>),
    /// A lambda with the values of the local names it mentions.
    Closure { lam: Rc<ast::Lambda>, env: Vec<(Name, LVal)> },
    /// A primitive or library function implemented by the interpreter.
    Builtin(&'static str),
    /// A function derived from `f`: `grad(f, argnums)`, `hessian(f)`, `jacobian(f)`, ...
    /// `tuple` is set when the argument numbers were given as a tuple (the gradient is then a
    /// tuple too).
    Transform { mode: crate::transform::Mode, f: LVal, argnums: Vec<usize>, tuple: bool },
    /// `vmap(f, in_axes, out_axes)`.
    Vmap { f: LVal, axes: Rc<VmapAxes> },
    /// `custom_jvp(f, rule)`: `f`, differentiated by `rule(primals, tangents)`; or
    /// `custom_vjp(f, fwd, bwd)`: `f`, differentiated in reverse by `fwd` and `bwd`.
    Custom { kind: CustomKind, f: LVal, rules: Vec<LVal> },
}

/// Which of the two ways of giving a function its own derivative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CustomKind {
    Jvp,
    Vjp,
}

impl CustomKind {
    pub fn keyword(self) -> &'static str {
        match self {
            CustomKind::Jvp => "custom_jvp",
            CustomKind::Vjp => "custom_vjp",
        }
    }
}

/// Which axis of each argument `vmap` maps over, and where the batch axis goes in each
/// result: one entry for all (`0`, `none`) or one per argument or result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AxisArg {
    All(Option<i64>),
    Each(Vec<Option<i64>>),
}

impl AxisArg {
    /// The entry for argument or result `i` of `n`.
    pub fn get(&self, i: usize) -> Option<i64> {
        match self {
            AxisArg::All(a) => *a,
            AxisArg::Each(v) => v.get(i).copied().flatten(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmapAxes {
    pub in_axes: AxisArg,
    pub out_axes: AxisArg,
}

impl Func {
    pub fn name(&self) -> String {
        match self {
            Func::Def(d) => d.name.name.to_string(),
            Func::Overloads(ds) => ds.first().map(|d| d.name.name.to_string()).unwrap_or_default(),
            Func::Closure { .. } => "<lambda>".to_string(),
            Func::Builtin(n) => n.to_string(),
            Func::Transform { mode, f, .. } => {
                let inner = match f {
                    LVal::Func(g) => g.name(),
                    _ => "?".into(),
                };
                format!("{}({inner})", mode.suffix())
            }
            Func::Vmap { f, .. } => {
                let inner = match f {
                    LVal::Func(g) => g.name(),
                    _ => "?".into(),
                };
                format!("vmap({inner})")
            }
            Func::Custom { kind, f, .. } => {
                let inner = match f {
                    LVal::Func(g) => g.name(),
                    _ => "?".into(),
                };
                format!("{}({inner})", kind.keyword())
            }
        }
    }
}

impl LVal {
    pub fn unit() -> LVal {
        LVal::Tuple(Rc::from(Vec::new()))
    }

    pub fn is_unit(&self) -> bool {
        matches!(self, LVal::Tuple(t) if t.is_empty())
    }

    pub fn array(a: Array) -> LVal {
        LVal::Arr(Arr::Val(a))
    }

    /// A short description for error messages: "an array of shape [3]", "a tuple", ...
    pub fn describe(&self) -> String {
        match self {
            LVal::Num(_) => "a number".into(),
            LVal::Arr(a) if a.shape().is_scalar() => "a scalar".into(),
            LVal::Arr(a) => format!("an array of shape {}", a.shape()),
            LVal::Tuple(t) => format!("a tuple of {}", crate::words::count(t.len(), "element")),
            LVal::Func(f) => format!("the function `{}`", f.name()),
            LVal::Str(_) => "a string".into(),
            LVal::None => "`none`".into(),
        }
    }

    /// The value in `.ad` literal syntax (concrete values only; traced arrays print as their
    /// shape).
    pub fn display(&self, precision: usize) -> String {
        match self {
            LVal::Num(x) => fmt_num(*x, precision),
            LVal::Arr(Arr::Val(a)) => fmt_array(a, precision),
            LVal::Arr(Arr::Var { shape, .. }) => format!("<f64{shape}>"),
            LVal::Tuple(t) => {
                let parts: Vec<String> = t.iter().map(|v| v.display(precision)).collect();
                if parts.len() == 1 {
                    format!("({},)", parts[0])
                } else {
                    format!("({})", parts.join(", "))
                }
            }
            LVal::Func(f) => format!("<function {}>", f.name()),
            LVal::Str(s) => format!("{s:?}"),
            LVal::None => "none".into(),
        }
    }
}

/// The function `f` after defining `d` under its name: `d` replaces a previous definition,
/// unless that one came from the same file with a different number of parameters, in which
/// case both remain (overloading by arity, as in `mean(x)` and `mean(x, axis)`).
pub fn define(previous: Option<&LVal>, d: Rc<ast::Def>) -> LVal {
    let same_file_other_arity =
        |e: &Rc<ast::Def>| e.span.file == d.span.file && e.params.len() != d.params.len();
    let mut set: Vec<Rc<ast::Def>> = match previous {
        Some(LVal::Func(f)) => match &**f {
            Func::Def(e) => vec![e.clone()],
            Func::Overloads(es) => es.clone(),
            _ => vec![],
        },
        _ => vec![],
    };
    set.retain(same_file_other_arity);
    if set.is_empty() {
        return LVal::Func(Rc::new(Func::Def(d)));
    }
    set.push(d);
    LVal::Func(Rc::new(Func::Overloads(set)))
}
