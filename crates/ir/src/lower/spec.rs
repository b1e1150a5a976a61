//! The structure of a value with arrays abstracted to their shapes: the key under which a
//! function is specialised, and the recipe for flattening values into a program's inputs
//! and rebuilding results from its outputs.

use super::value::{Arr, Func, LVal, Name};
use crate::array::Array;
use crate::program::Tree;
use crate::shape::Shape;
use ad_syntax::ast;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Spec {
    Array(Shape),
    Tuple(Vec<Spec>),
    Func(FuncSpec),
    Str(Rc<str>),
    None,
}

/// A function value's code (by identity) and the structure of what it captured.
#[derive(Clone, Debug)]
pub enum FuncSpec {
    Def(Rc<ast::Def>),
    Overloads(Vec<Rc<ast::Def>>),
    Closure(Rc<ast::Lambda>, Vec<(Name, Spec)>),
    Builtin(&'static str),
    Transform(crate::transform::Mode, Box<Spec>, Vec<usize>, bool),
    Vmap(Box<Spec>, Rc<super::value::VmapAxes>),
    Custom(super::value::CustomKind, Box<Spec>, Vec<Spec>),
}

impl PartialEq for FuncSpec {
    fn eq(&self, o: &FuncSpec) -> bool {
        match (self, o) {
            (FuncSpec::Def(a), FuncSpec::Def(b)) => Rc::ptr_eq(a, b),
            (FuncSpec::Overloads(a), FuncSpec::Overloads(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Rc::ptr_eq(x, y))
            }
            (FuncSpec::Closure(a, ea), FuncSpec::Closure(b, eb)) => Rc::ptr_eq(a, b) && ea == eb,
            (FuncSpec::Builtin(a), FuncSpec::Builtin(b)) => a == b,
            (FuncSpec::Transform(m, f, a, t), FuncSpec::Transform(m2, f2, a2, t2)) => {
                m == m2 && f == f2 && a == a2 && t == t2
            }
            (FuncSpec::Vmap(f, a), FuncSpec::Vmap(f2, a2)) => f == f2 && a == a2,
            (FuncSpec::Custom(k, f, r), FuncSpec::Custom(k2, f2, r2)) => k == k2 && f == f2 && r == r2,
            _ => false,
        }
    }
}
impl Eq for FuncSpec {}
impl Hash for FuncSpec {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            FuncSpec::Def(d) => (0u8, Rc::as_ptr(d) as usize).hash(h),
            FuncSpec::Closure(l, env) => {
                (1u8, Rc::as_ptr(l) as usize).hash(h);
                env.hash(h)
            }
            FuncSpec::Builtin(n) => (2u8, n).hash(h),
            FuncSpec::Overloads(ds) => {
                3u8.hash(h);
                ds.iter().for_each(|d| (Rc::as_ptr(d) as usize).hash(h))
            }
            FuncSpec::Transform(m, f, a, t) => (4u8, m, f, a, t).hash(h),
            FuncSpec::Vmap(f, a) => (5u8, f, a).hash(h),
            FuncSpec::Custom(k, f, r) => (6u8, k, f, r).hash(h),
        }
    }
}

impl Spec {
    pub fn of(v: &LVal) -> Spec {
        match v {
            LVal::Num(_) => Spec::Array(Shape::scalar()),
            LVal::Arr(a) => Spec::Array(a.shape()),
            LVal::Tuple(t) => Spec::Tuple(t.iter().map(Spec::of).collect()),
            LVal::Func(f) => Spec::Func(match &**f {
                Func::Def(d) => FuncSpec::Def(d.clone()),
                Func::Overloads(ds) => FuncSpec::Overloads(ds.clone()),
                Func::Closure { lam, env } => FuncSpec::Closure(
                    lam.clone(),
                    env.iter().map(|(n, v)| (n.clone(), Spec::of(v))).collect(),
                ),
                Func::Builtin(b) => FuncSpec::Builtin(b),
                Func::Transform { mode, f, argnums, tuple } => {
                    FuncSpec::Transform(*mode, Box::new(Spec::of(f)), argnums.clone(), *tuple)
                }
                Func::Vmap { f, axes } => FuncSpec::Vmap(Box::new(Spec::of(f)), axes.clone()),
                Func::Custom { kind, f, rules } => {
                    FuncSpec::Custom(*kind, Box::new(Spec::of(f)), rules.iter().map(Spec::of).collect())
                }
            }),
            LVal::Str(s) => Spec::Str(s.clone()),
            LVal::None => Spec::None,
        }
    }

    pub fn leaves(&self) -> usize {
        match self {
            Spec::Array(_) => 1,
            Spec::Tuple(t) => t.iter().map(Spec::leaves).sum(),
            Spec::Func(FuncSpec::Closure(_, env)) => env.iter().map(|(_, s)| s.leaves()).sum(),
            Spec::Func(FuncSpec::Transform(_, f, _, _)) | Spec::Func(FuncSpec::Vmap(f, _)) => f.leaves(),
            Spec::Func(FuncSpec::Custom(_, f, r)) => f.leaves() + r.iter().map(Spec::leaves).sum::<usize>(),
            Spec::Func(_) | Spec::Str(_) | Spec::None => 0,
        }
    }

    /// The printable structure: functions become opaque groups of leaves.
    pub fn tree(&self) -> Tree {
        match self {
            Spec::Array(_) => Tree::Leaf,
            Spec::Tuple(t) => Tree::Tuple(t.iter().map(Spec::tree).collect()),
            Spec::Func(_) | Spec::Str(_) | Spec::None => Tree::Opaque(self.leaves()),
        }
    }

    /// Rebuilds a concrete value from arrays, in the order [`flatten`] produces them.
    pub fn unflatten(&self, leaves: &mut impl Iterator<Item = Array>) -> LVal {
        match self {
            Spec::Array(s) => LVal::Arr(Arr::Val(leaves.next().unwrap_or_else(|| {
                panic!("internal error: a program returned fewer arrays than its result has ({s} missing)")
            }))),
            Spec::Tuple(t) => LVal::Tuple(t.iter().map(|s| s.unflatten(leaves)).collect()),
            Spec::Func(FuncSpec::Def(d)) => LVal::Func(Rc::new(Func::Def(d.clone()))),
            Spec::Func(FuncSpec::Overloads(ds)) => LVal::Func(Rc::new(Func::Overloads(ds.clone()))),
            Spec::Func(FuncSpec::Builtin(b)) => LVal::Func(Rc::new(Func::Builtin(b))),
            Spec::Func(FuncSpec::Closure(lam, env)) => LVal::Func(Rc::new(Func::Closure {
                lam: lam.clone(),
                env: env.iter().map(|(n, s)| (n.clone(), s.unflatten(leaves))).collect(),
            })),
            Spec::Func(FuncSpec::Transform(mode, f, argnums, tuple)) => {
                LVal::Func(Rc::new(Func::Transform {
                    mode: *mode,
                    f: f.unflatten(leaves),
                    argnums: argnums.clone(),
                    tuple: *tuple,
                }))
            }
            Spec::Func(FuncSpec::Vmap(f, axes)) => {
                LVal::Func(Rc::new(Func::Vmap { f: f.unflatten(leaves), axes: axes.clone() }))
            }
            Spec::Func(FuncSpec::Custom(kind, f, r)) => {
                let f = f.unflatten(leaves);
                let rules = r.iter().map(|x| x.unflatten(leaves)).collect();
                LVal::Func(Rc::new(Func::Custom { kind: *kind, f, rules }))
            }
            Spec::Str(s) => LVal::Str(s.clone()),
            Spec::None => LVal::None,
        }
    }
}

/// Calls `visit` on the array leaves of a value (numbers and arrays), depth first through
/// tuples, the values closures captured, and the functions derived functions wrap. This is
/// the one definition of the order in which values become a program's inputs.
pub fn for_each_leaf(v: &LVal, visit: &mut impl FnMut(&LVal)) {
    match v {
        LVal::Num(_) | LVal::Arr(_) => visit(v),
        LVal::Tuple(t) => t.iter().for_each(|x| for_each_leaf(x, visit)),
        LVal::Func(f) => match &**f {
            Func::Closure { env, .. } => env.iter().for_each(|(_, x)| for_each_leaf(x, visit)),
            Func::Transform { f, .. } | Func::Vmap { f, .. } => for_each_leaf(f, visit),
            Func::Custom { f, rules, .. } => {
                for_each_leaf(f, visit);
                rules.iter().for_each(|r| for_each_leaf(r, visit));
            }
            _ => {}
        },
        LVal::Str(_) | LVal::None => {}
    }
}

/// The arrays inside a concrete value, depth first. Numbers become scalar arrays.
pub fn flatten(v: &LVal, out: &mut Vec<Array>) {
    for_each_leaf(v, &mut |x| match x {
        LVal::Num(x) => out.push(Array::scalar(*x)),
        LVal::Arr(Arr::Val(a)) => out.push(a.clone()),
        // Traced arrays have no value; callers flatten concrete values only, so meeting one
        // is a bug, shown as one rather than as NaNs in a result.
        LVal::Arr(Arr::Var { shape, .. }) => {
            panic!("internal error: a traced array of shape {shape} was passed where a value was needed")
        }
        _ => {}
    })
}

/// For each leaf of a concrete value: its value if it is a scalar. Lowering may use these
/// as constants (loop bounds, axes), recording that it did.
pub fn known_scalars(v: &LVal, out: &mut Vec<Option<f64>>) {
    for_each_leaf(v, &mut |x| match x {
        LVal::Num(x) => out.push(Some(*x)),
        LVal::Arr(Arr::Val(a)) => out.push(a.as_scalar().filter(|_| a.shape().is_scalar())),
        LVal::Arr(Arr::Var { known, shape, .. }) => {
            out.push(known.as_ref().filter(|_| shape.is_scalar()).map(|k| k.value))
        }
        _ => {}
    })
}

/// [`known_scalars`] of a call's inputs: the function's captured values, then the arguments.
pub fn call_known_scalars(f: &LVal, args: &[LVal]) -> Vec<Option<f64>> {
    let mut known = Vec::new();
    known_scalars(f, &mut known);
    for a in args {
        known_scalars(a, &mut known);
    }
    known
}
